/**
 * The service's request log: one JSON object per request, on one line, with
 * every control character escaped, so a client can neither forge a line nor
 * send escape sequences to the terminal reading it.
 *
 * @module
 */

/** One request, as the log records it. */
export interface RequestLogEntry {
  /** When the answer was sent (ISO 8601). */
  time: string;
  /** The request method (`null` when no request line was read). */
  method: string | null;
  /** The path of the request target (`null` when none was read). */
  path: string | null;
  /** The status answered. */
  status: number;
  /** Milliseconds from the request's arrival to its answer. */
  ms: number;
  /** Request bytes read (the head, or the body for a routed request). */
  bytes: number;
  /** The client's address (`host:port`), `null` when not known. */
  client: string | null;
  /** Why, for a 4xx or 5xx answer. */
  error?: string;
}

/**
 * The log line of one request: `JSON.stringify` of the entry, and also the
 * characters JSON leaves raw that a terminal may act on (DEL, the C1
 * controls such as the one-byte CSI, the Unicode line and paragraph
 * separators) written as `\uXXXX` escapes. The line is still valid JSON and
 * parses back to the same entry.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatRequestLog } from "./request_log.ts";
 * const entry = {
 *   time: "2026-01-01T00:00:00.000Z",
 *   method: "POST",
 *   path: "/predict",
 *   status: 415,
 *   ms: 1.5,
 *   bytes: 12,
 *   client: "127.0.0.1:50000",
 *   error: "file part \"a\n\u001b[31m\u0000\u009b.jpg\" is not a JPEG or PNG",
 * };
 * const line = formatRequestLog(entry);
 * assert.ok(!/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(line));
 * assert.deepEqual(JSON.parse(line), entry);
 * ```
 */
export function formatRequestLog(entry: RequestLogEntry): string {
  return JSON.stringify(entry).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * A request logger writing each entry's line ({@linkcode formatRequestLog})
 * to `log`: stderr by default, nowhere for `false`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requestLogger } from "./request_log.ts";
 * const lines: string[] = [];
 * const logger = requestLogger((line) => lines.push(line))!;
 * logger({ time: "t", method: "GET", path: "/health", status: 200, ms: 1, bytes: 0, client: null });
 * assert.equal(JSON.parse(lines[0]).path, "/health");
 * assert.equal(requestLogger(false), undefined);
 * ```
 */
export function requestLogger(
  log: ((line: string) => void) | false | undefined,
): ((entry: RequestLogEntry) => void) | undefined {
  if (log === false) return undefined;
  const write = log ?? ((line: string) => console.error(line));
  return (entry) => write(formatRequestLog(entry));
}
