import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { JUPYTER_DISPLAY } from "./display.ts";
import { barChart, figure, PLOTLY_MIME, plotlyJsPath } from "./plot.ts";

Deno.test("plot: a figure carries Plotly JSON, HTML and text", () => {
  const bundle = figure({
    data: [{ type: "scatter", x: [1, 2], y: [3, 4] }],
    layout: { title: { text: "T</script>" } },
  })[JUPYTER_DISPLAY]();
  const spec = bundle[PLOTLY_MIME] as { data: unknown[]; layout: unknown };
  assert.deepEqual(spec.data, [{ type: "scatter", x: [1, 2], y: [3, 4] }]);
  const html = bundle["text/html"] as string;
  assert.match(html, /Plotly\.newPlot/);
  assert.ok(
    !html.includes("T</script>"),
    "a closing script tag in data is escaped",
  );
  assert.equal(
    bundle["text/plain"],
    "Plotly figure: T</script> (1 trace: scatter)",
  );
  // plotly.js itself never travels in the bundle.
  assert.ok(html.length < 5000);
});

Deno.test("plot: every figure gets its own element id", () => {
  const a = figure({ data: [] })[JUPYTER_DISPLAY]()["text/html"] as string;
  const b = figure({ data: [] })[JUPYTER_DISPLAY]()["text/html"] as string;
  const id = (s: string) => s.match(/id="(plot-[^"]+)"/)?.[1];
  assert.ok(id(a) && id(b) && id(a) !== id(b));
});

Deno.test("plot: barChart has one bar trace and a readable text fallback", () => {
  const bundle = barChart({ x: ["a", "b"], y: [1, 2], title: "Counts" })[
    JUPYTER_DISPLAY
  ]();
  const spec = bundle[PLOTLY_MIME] as { data: { type: string; y: number[] }[] };
  assert.equal(spec.data[0].type, "bar");
  assert.deepEqual(spec.data[0].y, [1, 2]);
  assert.equal(bundle["text/plain"], "Counts\na: 1\nb: 2");
});

Deno.test("plot: the plotly.js bundle that reports embed is installed", () => {
  assert.ok(existsSync(plotlyJsPath()), plotlyJsPath());
});
