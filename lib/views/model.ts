/**
 * Notebook views of the models: layer tables, parameter counts and a chart of
 * how the activations shrink through the network.
 *
 * @module
 */
import { type Displayable, htmlTable } from "../core/display.ts";
import {
  type Architecture,
  buildModel,
  type ModelOptions,
} from "../model/models.ts";
import { modelSummary } from "../model/summary.ts";
import { figure } from "../core/plot.ts";
import type { LayersModel } from "../core/tf.ts";

/**
 * The layer-by-layer summary of a model as a table, with the parameter
 * counts in the caption (like Keras' `model.summary()`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { seedCnn } from "../model/models.ts";
 * import { summaryTable } from "./model.ts";
 * const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
 * const lines = (summaryTable(model)[JUPYTER_DISPLAY]()["text/plain"] as string)
 *   .split("\n");
 * assert.equal(
 *   lines[0],
 *   "seed_cnn: 158,852 parameters (158,852 trainable, 0 non-trainable)",
 * );
 * assert.equal(lines.length, 3 + model.layers.length); // caption, head, rule
 * assert.match(lines[3], /^conv1 +Conv2D +\(None, 30, 30, 32\) +320$/);
 * model.dispose();
 * ```
 */
export function summaryTable(model: LayersModel): Displayable {
  const s = modelSummary(model);
  return htmlTable({
    rows: s.rows.map((r) => ({
      layer: r.layer,
      type: r.type,
      "output shape": r.outputShape,
      params: r.params.toLocaleString("en-US"),
    })),
    caption: `${s.name}: ${s.totalParams.toLocaleString("en-US")} parameters ` +
      `(${s.trainableParams.toLocaleString("en-US")} trainable, ` +
      `${s.nonTrainableParams.toLocaleString("en-US")} non-trainable)`,
  });
}

/**
 * Builds each architecture once (then disposes it) and tabulates layers and
 * parameters side by side.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { architectureTable } from "./model.ts";
 * const table = architectureTable({
 *   architectures: ["seedCnn", "resnet"],
 *   inputSize: 32,
 *   channels: 1,
 *   numClasses: 4,
 * });
 * const text = table[JUPYTER_DISPLAY]()["text/plain"] as string;
 * assert.equal(text.split("\n")[0], "Architectures at 32×32×1, 4 classes");
 * assert.match(text, /\nseedCnn +10 +158,852 +158,852 +0\.6\n/);
 * assert.match(text, /\nresnet +54 +698,020 /);
 * ```
 */
export function architectureTable(
  options: ModelOptions & { architectures: Architecture[] },
): Displayable {
  const rows = options.architectures.map((arch) => {
    const model = buildModel(arch, options);
    try {
      const s = modelSummary(model);
      return {
        architecture: arch,
        layers: s.rows.length,
        parameters: s.totalParams.toLocaleString("en-US"),
        trainable: s.trainableParams.toLocaleString("en-US"),
        "size (MB, float32)": (s.totalParams * 4 / 1e6).toFixed(1),
      };
    } finally {
      model.dispose();
    }
  });
  return htmlTable({
    rows,
    caption: `Architectures at ${options.inputSize}×${options.inputSize}×` +
      `${options.channels}, ${options.numClasses} classes`,
  });
}

/** Height of one layer's row in {@linkcode layerShapesChart}, in CSS pixels. */
export const LAYER_ROW_HEIGHT = 18;

/**
 * How big each layer's output is (values per image, log scale), as
 * horizontal bars, one row per layer from the input down to the class
 * scores, each row labelled with the layer's name and output shape: the
 * convolution blocks trade resolution for channels, the head collapses to
 * the class scores. The chart grows {@linkcode LAYER_ROW_HEIGHT} pixels per
 * layer, so the labels of a 50-layer ResNet stay readable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { type Figure, PLOTLY_MIME } from "../core/plot.ts";
 * import { seedCnn } from "../model/models.ts";
 * import { layerShapesChart, LAYER_ROW_HEIGHT } from "./model.ts";
 * const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
 * const chart = layerShapesChart(model)[JUPYTER_DISPLAY]();
 * const { data: [bars], layout } = chart[PLOTLY_MIME] as Figure;
 * assert.equal(bars.orientation, "h");
 * assert.deepEqual((bars.x as number[]).slice(0, 2), [30 * 30 * 32, 15 * 15 * 32]);
 * assert.equal((bars.x as number[]).at(-1), 4); // the class scores
 * assert.equal((bars.y as string[])[0], "conv1 (30×30×32)");
 * assert.ok((layout?.height as number) >= model.layers.length * LAYER_ROW_HEIGHT);
 * assert.match(chart["text/plain"] as string, /^seed_cnn: conv1 \(30×30×32\) → /);
 * model.dispose();
 * ```
 */
export function layerShapesChart(model: LayersModel): Displayable {
  const layers = model.layers.filter((l) => !Array.isArray(l.outputShape[0]));
  const dims = layers.map((l) => (l.outputShape as (number | null)[]).slice(1));
  const values = dims.map((d) => d.reduce<number>((a, b) => a * (b ?? 1), 1));
  const shapes = dims.map((d) => `(${d.join("×")})`);
  const labels = layers.map((l, i) => `${l.name} ${shapes[i]}`);
  return figure({
    data: [{
      type: "bar",
      orientation: "h",
      x: values,
      y: labels,
      hovertext: layers.map((l, i) =>
        `${l.name}: ${l.getClassName()} ${shapes[i]}, ${
          values[i].toLocaleString("en-US")
        } values`
      ),
      hoverinfo: "text",
      marker: { color: "steelblue" },
    }],
    layout: {
      title: {
        text: `${model.name}: output size per layer (values per image)`,
      },
      xaxis: {
        type: "log",
        title: { text: "values per image (log scale)" },
        automargin: true,
      },
      yaxis: {
        autorange: "reversed",
        automargin: true,
        tickfont: { size: 11 },
        dtick: 1,
      },
      bargap: 0.25,
      height: 160 + LAYER_ROW_HEIGHT * layers.length,
      margin: { t: 60, b: 60 },
    },
  }, {
    text: `${model.name}: ` + labels.join(" → "),
  });
}
