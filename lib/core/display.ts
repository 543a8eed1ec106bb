/**
 * Rich display objects for the Deno Jupyter kernel.
 *
 * The kernel shows any value with a `[Symbol.for("Jupyter.display")]()`
 * method by the MIME bundle that method returns. Helpers here build such
 * objects and never touch `Deno.jupyter`, so they work (and are tested)
 * outside a kernel too.
 *
 * @module
 */

/** The symbol the Deno kernel looks for. */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for(
  "Jupyter.display",
) as never;

/** A MIME bundle: MIME type → data. */
export type MimeBundle = Record<string, unknown>;

/** A value the Deno kernel renders by its MIME bundle. */
export interface Displayable {
  /** Returns the MIME bundle to show. */
  [JUPYTER_DISPLAY](): MimeBundle;
}

/**
 * Wraps a MIME bundle as a displayable value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { displayable, JUPYTER_DISPLAY } from "./display.ts";
 * const d = displayable({ "text/plain": "hi", "text/html": "<b>hi</b>" });
 * assert.equal(d[JUPYTER_DISPLAY]()["text/plain"], "hi");
 * assert.equal(JUPYTER_DISPLAY, Symbol.for("Jupyter.display"));
 * ```
 */
export function displayable(bundle: MimeBundle): Displayable {
  return { [JUPYTER_DISPLAY]: () => bundle };
}

/**
 * Escapes text for HTML.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeHtml } from "./display.ts";
 * assert.equal(escapeHtml('<a & "b">'), "&lt;a &amp; &quot;b&quot;&gt;");
 * ```
 */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(
    />/g,
    "&gt;",
  ).replace(/"/g, "&quot;");
}

/** Options for {@linkcode htmlTable}. */
export interface HtmlTableOptions {
  /** Rows, as objects (keys are columns) or arrays. */
  rows: ReadonlyArray<Record<string, unknown> | ReadonlyArray<unknown>>;
  /** Column headers; defaults to the first object row's keys. */
  columns?: string[];
  /** A caption above the table. */
  caption?: string;
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  }
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/**
 * A table shown as HTML in the notebook, with an aligned plain-text fallback.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { htmlTable, JUPYTER_DISPLAY } from "./display.ts";
 * const t = htmlTable({
 *   rows: [{ class: "glioma", images: 1321 }, { class: "notumor", images: 0.5 }],
 * })[JUPYTER_DISPLAY]();
 * assert.equal(
 *   t["text/plain"],
 *   "class    images\n" +
 *     "-------  ------\n" +
 *     "glioma   1321\n" +
 *     "notumor  0.5000",
 * );
 * assert.match(t["text/html"] as string, /<th>class<\/th><th>images<\/th>/);
 * ```
 */
export function htmlTable(options: HtmlTableOptions): Displayable {
  const first = options.rows[0];
  const columns = options.columns ??
    (first && !Array.isArray(first) ? Object.keys(first) : []);
  const cells = options.rows.map((row) =>
    Array.isArray(row)
      ? row.map(cell)
      : columns.map((c) => cell((row as Record<string, unknown>)[c]))
  );
  const head = columns.map((c) => `<th>${escapeHtml(c)}</th>`).join("");
  const body = cells.map((r) =>
    `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`
  ).join("");
  const caption = options.caption
    ? `<caption>${escapeHtml(options.caption)}</caption>`
    : "";
  const html =
    `<table class="brain-mri-table">${caption}<thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
  const widths = columns.map((c, i) =>
    Math.max(c.length, ...cells.map((r) => (r[i] ?? "").length))
  );
  const line = (r: string[]) =>
    r.map((c, i) => (c ?? "").padEnd(widths[i])).join("  ").trimEnd();
  const text = [
    ...(options.caption ? [options.caption] : []),
    line(columns),
    line(widths.map((w) => "-".repeat(w))),
    ...cells.map(line),
  ].join("\n");
  return displayable({ "text/html": html, "text/plain": text });
}
