/**
 * Plotly figures as notebook display objects.
 *
 * A figure's MIME bundle carries:
 * - the Plotly JSON (`application/vnd.plotly.v1+json`), which JupyterLab draws
 *   with the jupyterlab-plotly renderer that set-up installs into `.venv/`;
 * - an HTML rendering (a `<div>` and a `Plotly.newPlot` call) used where no
 *   renderer exists, such as the exported HTML reports: the notebook runner
 *   embeds plotly.js (from `npm:plotly.js-dist`) once per report page, not
 *   once per figure;
 * - a plain-text fallback.
 *
 * plotly.js itself (10 MB) never travels in a kernel message.
 *
 * @module
 */
import { join } from "node:path";
import { type Displayable, displayable } from "./display.ts";
import { projectPaths } from "./paths.ts";

/** The MIME type of Plotly JSON. */
export const PLOTLY_MIME = "application/vnd.plotly.v1+json";

/** A Plotly trace (loosely typed: Plotly has hundreds of attributes). */
export type Trace = Record<string, unknown>;

/** A Plotly figure. */
export interface Figure {
  /** Traces. */
  data: Trace[];
  /** Layout (title, axes, size...). */
  layout?: Record<string, unknown>;
  /** Config (displayModeBar...). */
  config?: Record<string, unknown>;
}

/**
 * Path of the plotly.js bundle that exported reports embed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { plotlyJsPath } from "./plot.ts";
 * assert.match(plotlyJsPath(), /\/node_modules\/plotly\.js-dist\/plotly\.js$/);
 * ```
 */
export function plotlyJsPath(): string {
  return join(projectPaths().nodeModules, "plotly.js-dist", "plotly.js");
}

/** Options for {@linkcode figure}. */
export interface FigureOptions {
  /** Text for the plain-text fallback. */
  text?: string;
}

/**
 * A displayable Plotly figure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "./display.ts";
 * import { figure, PLOTLY_MIME } from "./plot.ts";
 * const fig = figure({
 *   data: [{ type: "bar", x: ["a", "b"], y: [1, 2] }],
 *   layout: { title: { text: "Two bars" } },
 * })[JUPYTER_DISPLAY]();
 * assert.deepEqual(fig[PLOTLY_MIME], {
 *   data: [{ type: "bar", x: ["a", "b"], y: [1, 2] }],
 *   layout: { title: { text: "Two bars" } },
 *   config: { responsive: true },
 * });
 * assert.equal(fig["text/plain"], "Plotly figure: Two bars (1 trace: bar)");
 * assert.match(fig["text/html"] as string, /Plotly\.newPlot/);
 * ```
 */
export function figure(fig: Figure, options: FigureOptions = {}): Displayable {
  const spec = {
    data: fig.data,
    layout: fig.layout ?? {},
    config: { responsive: true, ...fig.config },
  };
  const id = `plot-${crypto.randomUUID()}`;
  const json = JSON.stringify(spec).replace(/<\//g, "<\\/");
  const html =
    `<div id="${id}" class="brain-mri-plot" style="min-height:360px"></div>
<script type="text/javascript">(function () {
  var fig = ${json}, tries = 0;
  function draw() {
    var el = document.getElementById("${id}");
    if (!el) return;
    if (window.Plotly) { window.Plotly.newPlot(el, fig.data, fig.layout, fig.config); }
    else if (++tries < 200) { setTimeout(draw, 50); }
    else { el.textContent = "plotly.js is not loaded on this page; the figure's data is in the notebook's Plotly output."; }
  }
  draw();
})();</script>`;
  const title = (fig.layout?.title as { text?: string } | undefined)?.text;
  const text = options.text ??
    `Plotly figure${title ? `: ${title}` : ""} (${fig.data.length} trace${
      fig.data.length === 1 ? "" : "s"
    }: ${fig.data.map((t) => t.type ?? "scatter").join(", ")})`;
  return displayable({
    [PLOTLY_MIME]: spec,
    "text/html": html,
    "text/plain": text,
  });
}

/** Options for {@linkcode barChart}. */
export interface BarChartOptions {
  /** Category labels. */
  x: string[];
  /** Bar heights. */
  y: number[];
  /** Chart title. */
  title?: string;
  /** X axis title. */
  xTitle?: string;
  /** Y axis title. */
  yTitle?: string;
}

/**
 * A bar chart figure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "./display.ts";
 * import { barChart, type Figure, PLOTLY_MIME } from "./plot.ts";
 * const chart = barChart({
 *   x: ["glioma", "notumor"],
 *   y: [1321, 1595],
 *   title: "Images per class",
 * });
 * const fig = chart[JUPYTER_DISPLAY]();
 * const [bars] = (fig[PLOTLY_MIME] as Figure).data;
 * assert.deepEqual(bars.y, [1321, 1595]);
 * assert.deepEqual(bars.text, ["1321", "1595"]);
 * assert.equal(fig["text/plain"], "Images per class\nglioma: 1321\nnotumor: 1595");
 * ```
 */
export function barChart(options: BarChartOptions): Displayable {
  return figure({
    data: [{
      type: "bar",
      x: options.x,
      y: options.y,
      text: options.y.map(String),
      textposition: "auto",
    }],
    layout: {
      title: { text: options.title ?? "" },
      xaxis: { title: { text: options.xTitle ?? "" } },
      yaxis: { title: { text: options.yTitle ?? "" } },
      height: 380,
    },
  }, {
    text: `${options.title ?? "bar chart"}\n` +
      options.x.map((x, i) => `${x}: ${options.y[i]}`).join("\n"),
  });
}
