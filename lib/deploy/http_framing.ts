/**
 * Following HTTP/1.1 message framing on a byte stream, as much as a
 * connection guard needs (lib/deploy/conn_guard.ts): where a head ends, what
 * a request head says (method, target, how its body is framed), and where a
 * body ends (`Content-Length` or `Transfer-Encoding: chunked`).
 *
 * Stricter than a full server on purpose: a head whose framing could be read
 * two ways (both `Content-Length` and `Transfer-Encoding`, differing lengths,
 * a transfer coding other than chunked last) or that is not well formed is
 * refused with a {@linkcode FramingError}, so the guard and the server behind
 * it never disagree on where a request starts.
 *
 * @module
 */

/** The largest request head accepted, in bytes (larger: 431). */
export const MAX_HEAD_BYTES = 16 * 1024;

/** The most header fields a request may have (more: 431). */
export const MAX_HEADER_FIELDS = 100;

/** The longest chunk-size line (with extensions) of a chunked body. */
const MAX_CHUNK_LINE = 1024;

/** A head or body that cannot be framed: answered with `status`. */
export class FramingError extends Error {
  /** The HTTP status to answer with (400 or 431). */
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "FramingError";
    this.status = status;
  }
}

const LF = 10;
const CR = 13;

/**
 * The index just past the blank line that ends a head in `bytes`, or -1 if
 * there is none yet. Lines end in LF with an optional CR before it. Searching
 * starts at `from` (an index the previous search had reached).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { headEnd } from "./http_framing.ts";
 * const text = (s: string) => new TextEncoder().encode(s);
 * assert.equal(headEnd(text("GET / HTTP/1.1\r\nHost: a\r\n\r\nbody")), 27);
 * assert.equal(headEnd(text("GET / HTTP/1.1\nHost: a\n\n")), 24);
 * assert.equal(headEnd(text("GET / HTTP/1.1\r\nHost: a\r\n")), -1);
 * ```
 */
export function headEnd(bytes: Uint8Array, from = 0): number {
  for (let i = bytes.indexOf(LF, from); i >= 0; i = bytes.indexOf(LF, i + 1)) {
    if (bytes[i + 1] === LF) return i + 2;
    if (bytes[i + 1] === CR && bytes[i + 2] === LF) return i + 3;
  }
  return -1;
}

/** How a message's body is framed. */
export type BodyFraming =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "close" };

/** What a request head says. */
export interface RequestHead {
  /** The method, e.g. `POST`. */
  method: string;
  /** The request target, e.g. `/predict?x=1`. */
  target: string;
  /** How the body that follows is framed (never `close` for a request). */
  body: BodyFraming;
  /** The head's lines (request line first), without their line ends. */
  lines: string[];
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// deno-lint-ignore no-control-regex -- refusing control characters is the point
const FIELD_VALUE = /^[^\x00-\x08\x0a-\x1f\x7f]*$/;
const REQUEST_LINE = /^(\S+) ([\x21-\x7e\x80-\xff]+) HTTP\/1\.[01]$/;

/**
 * Parses a request head (its bytes up to and including the blank line, as
 * {@linkcode headEnd} found it). Throws {@linkcode FramingError}: 431 for
 * more than {@linkcode MAX_HEADER_FIELDS} fields, 400 for a malformed request
 * line or field, or framing that could be read two ways.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FramingError, parseRequestHead } from "./http_framing.ts";
 * const head = (s: string) => new TextEncoder().encode(s + "\r\n\r\n");
 * const post = parseRequestHead(head("POST /predict HTTP/1.1\r\nContent-Length: 12"));
 * assert.equal(post.method, "POST");
 * assert.deepEqual(post.body, { kind: "length", length: 12 });
 * const chunked = parseRequestHead(head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked"));
 * assert.deepEqual(chunked.body, { kind: "chunked" });
 * assert.throws(
 *   () => parseRequestHead(head("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked")),
 *   FramingError,
 * );
 * ```
 */
export function parseRequestHead(bytes: Uint8Array): RequestHead {
  const lines = new TextDecoder("latin1").decode(bytes).split(/\r?\n/);
  while (lines.at(-1) === "") lines.pop();
  const requestLine = lines[0] ?? "";
  const match = requestLine.match(REQUEST_LINE);
  if (!match || !TOKEN.test(match[1])) {
    throw new FramingError(400, "malformed request line");
  }
  if (lines.length - 1 > MAX_HEADER_FIELDS) {
    throw new FramingError(
      431,
      `more than ${MAX_HEADER_FIELDS} header fields`,
    );
  }
  const fields = lines.slice(1).map(parseField);
  return {
    method: match[1],
    target: match[2],
    body: requestBodyFraming(fields),
    lines,
  };
}

/** One `name: value` line (name lowercased, value trimmed); 400 if malformed. */
function parseField(line: string): [string, string] {
  const colon = line.indexOf(":");
  const name = line.slice(0, colon);
  const value = line.slice(colon + 1).trim();
  if (colon < 1 || !TOKEN.test(name) || !FIELD_VALUE.test(value)) {
    throw new FramingError(
      400,
      `malformed header field ${JSON.stringify(line.slice(0, 64))}`,
    );
  }
  return [name.toLowerCase(), value];
}

/** The body framing a request's fields give; 400 where it is ambiguous. */
function requestBodyFraming(fields: [string, string][]): BodyFraming {
  const lengths = fields.filter(([n]) => n === "content-length").map(([, v]) =>
    v
  );
  const codings = fields.filter(([n]) => n === "transfer-encoding")
    .flatMap(([, v]) => v.split(",")).map((c) => c.trim().toLowerCase());
  if (codings.length > 0) {
    if (lengths.length > 0) {
      throw new FramingError(
        400,
        "both Content-Length and Transfer-Encoding: send one",
      );
    }
    if (codings.at(-1) !== "chunked") {
      throw new FramingError(
        400,
        `unsupported Transfer-Encoding ${codings.join(", ")}`,
      );
    }
    return { kind: "chunked" };
  }
  if (lengths.length === 0) return { kind: "none" };
  if (new Set(lengths).size > 1 || !/^\d{1,15}$/.test(lengths[0])) {
    throw new FramingError(
      400,
      `invalid Content-Length ${JSON.stringify(lengths.join(", "))}`,
    );
  }
  const length = Number(lengths[0]);
  return length === 0 ? { kind: "none" } : { kind: "length", length };
}

/** What a response head says, for following the responses on a connection. */
export interface ResponseHead {
  /** The status code. */
  status: number;
  /** How its body is framed (given the method of the request it answers). */
  body: BodyFraming;
}

/**
 * Parses a response head: its status and how its body is framed, given the
 * request's method (a `HEAD` answer, a 1xx, 204 or 304 has no body).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseResponseHead } from "./http_framing.ts";
 * const head = new TextEncoder().encode(
 *   "HTTP/1.1 200 OK\r\ncontent-length: 59\r\n\r\n",
 * );
 * assert.deepEqual(parseResponseHead(head, "GET"), {
 *   status: 200,
 *   body: { kind: "length", length: 59 },
 * });
 * assert.deepEqual(parseResponseHead(head, "HEAD").body, { kind: "none" });
 * ```
 */
export function parseResponseHead(
  bytes: Uint8Array,
  method: string,
): ResponseHead {
  const lines = new TextDecoder("latin1").decode(bytes).split(/\r?\n/);
  const status = Number(lines[0].match(/^HTTP\/\d\.\d (\d{3})/)?.[1] ?? NaN);
  if (!Number.isInteger(status)) {
    throw new FramingError(502, "malformed response head");
  }
  if (method === "HEAD" || status < 200 || status === 204 || status === 304) {
    return { status, body: { kind: "none" } };
  }
  let length: number | undefined;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim().toLowerCase();
    if (name === "transfer-encoding" && value.endsWith("chunked")) {
      return { status, body: { kind: "chunked" } };
    }
    if (name === "content-length") length = Number(value);
  }
  if (length === undefined || !Number.isSafeInteger(length)) {
    return { status, body: { kind: "close" } };
  }
  return {
    status,
    body: length === 0 ? { kind: "none" } : { kind: "length", length },
  };
}

/**
 * Follows one body through the chunks of a stream: `feed` takes the next
 * bytes and says how many of them belong to the body and whether it ended.
 *
 * @example A chunked body split across two reads, then the next request
 * ```ts
 * import assert from "node:assert/strict";
 * import { BodyReader } from "./http_framing.ts";
 * const text = (s: string) => new TextEncoder().encode(s);
 * const body = new BodyReader({ kind: "chunked" });
 * assert.deepEqual(body.feed(text("5\r\nhel")), { used: 6, done: false });
 * assert.deepEqual(body.feed(text("lo\r\n0\r\n\r\nGET /")), { used: 9, done: true });
 * const fixed = new BodyReader({ kind: "length", length: 3 });
 * assert.deepEqual(fixed.feed(text("abcdef")), { used: 3, done: true });
 * ```
 */
export class BodyReader {
  #framing: BodyFraming;
  #remaining: number;
  /** Where a chunked body is: its size line, data, data's line end, trailers. */
  #state: "size" | "data" | "dataEnd" | "trailer" = "size";
  #line = "";
  #trailerBytes = 0;

  /** A reader for a body framed as `framing`. */
  constructor(framing: BodyFraming) {
    this.#framing = framing;
    this.#remaining = framing.kind === "length" ? framing.length : 0;
  }

  /** Whether the body has ended (a `none` body has, at once). */
  get done(): boolean {
    return this.#framing.kind === "none" ||
      (this.#framing.kind === "length" && this.#remaining === 0);
  }

  /**
   * Takes `bytes` (the stream's next bytes): how many belong to this body,
   * and whether it ended with them. Throws {@linkcode FramingError} for a
   * malformed chunked body.
   */
  feed(bytes: Uint8Array): { used: number; done: boolean } {
    switch (this.#framing.kind) {
      case "none":
        return { used: 0, done: true };
      case "close":
        return { used: bytes.length, done: false };
      case "length": {
        const used = Math.min(this.#remaining, bytes.length);
        this.#remaining -= used;
        return { used, done: this.#remaining === 0 };
      }
      case "chunked":
        return this.#feedChunked(bytes);
    }
  }

  #feedChunked(bytes: Uint8Array): { used: number; done: boolean } {
    let i = 0;
    while (i < bytes.length) {
      if (this.#state === "data") {
        const used = Math.min(this.#remaining, bytes.length - i);
        i += used;
        this.#remaining -= used;
        if (this.#remaining === 0) this.#state = "dataEnd";
        continue;
      }
      const byte = bytes[i++];
      if (byte !== LF) {
        this.#line += String.fromCharCode(byte);
        this.#checkLineLength();
        continue;
      }
      const line = this.#line.replace(/\r$/, "");
      this.#line = "";
      if (this.#endOfLine(line)) return { used: i, done: true };
    }
    return { used: i, done: false };
  }

  /** Bounds a size line or the trailers: 400 beyond them. */
  #checkLineLength(): void {
    const limit = this.#state === "trailer" ? MAX_HEAD_BYTES : MAX_CHUNK_LINE;
    if (this.#line.length + this.#trailerBytes > limit) {
      throw new FramingError(400, "chunked body: a line too long");
    }
  }

  /** Acts on one complete line of a chunked body; true once it has ended. */
  #endOfLine(line: string): boolean {
    if (this.#state === "dataEnd") {
      if (line !== "") {
        throw new FramingError(400, "chunked body: bad chunk end");
      }
      this.#state = "size";
      return false;
    }
    if (this.#state === "trailer") {
      this.#trailerBytes += line.length + 2;
      return line === "";
    }
    const size = line.split(";", 1)[0].trim();
    if (!/^[0-9a-fA-F]{1,12}$/.test(size)) {
      throw new FramingError(400, "chunked body: bad chunk size");
    }
    this.#remaining = parseInt(size, 16);
    this.#state = this.#remaining === 0 ? "trailer" : "data";
    return false;
  }
}
