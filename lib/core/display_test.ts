import assert from "node:assert/strict";
import {
  displayable,
  escapeHtml,
  htmlTable,
  JUPYTER_DISPLAY,
} from "./display.ts";

Deno.test("display: the symbol is the one the Deno kernel looks for", () => {
  assert.equal(JUPYTER_DISPLAY, Symbol.for("Jupyter.display"));
  const d = displayable({ "text/plain": "x" });
  assert.deepEqual(
    d[Symbol.for("Jupyter.display") as typeof JUPYTER_DISPLAY](),
    {
      "text/plain": "x",
    },
  );
});

Deno.test("display: escapeHtml escapes markup", () => {
  assert.equal(
    escapeHtml(`<a href="x">&</a>`),
    "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;",
  );
});

Deno.test("display: htmlTable from objects, with caption and text fallback", () => {
  const bundle = htmlTable({
    rows: [{ class: "glioma", images: 1321 }, {
      class: "<b>",
      images: 0.123456,
    }],
    caption: "Counts",
  })[JUPYTER_DISPLAY]();
  const html = bundle["text/html"] as string;
  assert.match(html, /<caption>Counts<\/caption>/);
  assert.match(html, /<th>class<\/th><th>images<\/th>/);
  assert.match(html, /<td>glioma<\/td><td>1321<\/td>/);
  assert.match(html, /<td>&lt;b&gt;<\/td><td>0.1235<\/td>/);
  assert.equal(
    bundle["text/plain"],
    "Counts\nclass   images\n------  ------\nglioma  1321\n<b>     0.1235",
  );
});

Deno.test("display: htmlTable from arrays with explicit columns", () => {
  const bundle = htmlTable({ rows: [[1, 2], [3, 4]], columns: ["a", "b"] })[
    JUPYTER_DISPLAY
  ]();
  assert.match(
    bundle["text/html"] as string,
    /<tr><td>3<\/td><td>4<\/td><\/tr>/,
  );
});
