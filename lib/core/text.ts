/**
 * Text from outside (file names, class names, client headers) made safe to
 * print: one line, no terminal escapes.
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
