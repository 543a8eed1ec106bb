/**
 * Text and values from outside (file names, class names, client headers, JSON
 * read from files) made safe to check and print: one line, no terminal
 * escapes.
 *
 * @module
 */

const NAMED: Record<string, string> = {
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

/**
 * Escapes the control characters of `text` (C0, DEL, C1, and the Unicode
 * line and paragraph separators) as `\n`, `\r`, `\t` or `\xNN` / `\u{NNNN}`,
 * and a backslash as `\\`, so a file name or a client's header fits on one
 * honest line and cannot move the cursor or colour a terminal.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeControl } from "./text.ts";
 * assert.equal(escapeControl("scan\n2026 GET /x 200\u0000.jpg"), "scan\\n2026 GET /x 200\\x00.jpg");
 * assert.equal(escapeControl("\x1b[31mglioma"), "\\x1b[31mglioma");
 * assert.equal(escapeControl("a\\b\u2028"), "a\\\\b\\u{2028}");
 * assert.equal(escapeControl("glioma.png"), "glioma.png");
 * ```
 */
export function escapeControl(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex -- matching control characters is the point
    /[\\\x00-\x1f\x7f-\x9f\u2028\u2029]/g,
    (c) => {
      const code = c.charCodeAt(0);
      return NAMED[c] ??
        (code < 0x100
          ? `\\x${code.toString(16).padStart(2, "0")}`
          : `\\u{${code.toString(16)}}`);
    },
  );
}

/**
 * A value read from a file, as it may appear in a message: JSON, with every
 * control character escaped (JSON leaves DEL and the C1 characters raw, and
 * those can drive a terminal), cut to `maxLength` characters with `...`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shownValue } from "./text.ts";
 * assert.equal(shownValue({ epoch: -1 }), '{"epoch":-1}');
 * assert.equal(shownValue("a\u009bb"), '"a\\u009bb"');
 * assert.equal(shownValue("x".repeat(50), 10), '"xxxxxx...');
 * ```
 */
export function shownValue(value: unknown, maxLength = Infinity): string {
  const text = (JSON.stringify(value) ?? String(value)).replace(
    /[\u007f-\u009f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return text.length > maxLength ? `${text.slice(0, maxLength - 3)}...` : text;
}

/**
 * Whether a value parsed from JSON is an object (not `null`, not an array).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isRecord } from "./text.ts";
 * assert.equal(isRecord({ a: 1 }), true);
 * assert.equal(isRecord([1]), false);
 * assert.equal(isRecord(null), false);
 * ```
 */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
