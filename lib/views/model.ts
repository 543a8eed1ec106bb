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
 * import { seedCnn } from "../model/models.ts";
 * import { summaryTable } from "./model.ts";
 * const model = seedCnn({ inputSize: 128, channels: 1, numClasses: 4 });
 * summaryTable(model);
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
 * import { architectureTable } from "./model.ts";
 * architectureTable({ architectures: ["seedCnn", "vgg", "resnet"], inputSize: 128, channels: 1, numClasses: 4 });
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

/**
 * How big each layer's output is (values per image, log scale): the
 * convolution blocks trade resolution for channels, the head collapses to
 * the class scores.
 *
 * @example
 * ```ts
 * import { seedCnn } from "../model/models.ts";
 * import { layerShapesChart } from "./model.ts";
 * const model = seedCnn({ inputSize: 128, channels: 1, numClasses: 4 });
 * layerShapesChart(model);
 * model.dispose();
 * ```
 */
export function layerShapesChart(model: LayersModel): Displayable {
  const layers = model.layers.filter((l) => !Array.isArray(l.outputShape[0]));
  const values = layers.map((l) =>
    (l.outputShape as (number | null)[]).slice(1).reduce<number>(
      (a, b) => a * (b ?? 1),
      1,
    )
  );
  const shapes = layers.map((l) =>
    `(${(l.outputShape as (number | null)[]).slice(1).join("×")})`
  );
  return figure({
    data: [{
      type: "bar",
      x: layers.map((l) => l.name),
      y: values,
      text: shapes,
      hovertext: layers.map((l, i) =>
        `${l.getClassName()} ${shapes[i]}: ${
          values[i].toLocaleString("en-US")
        } values`
      ),
      hoverinfo: "text",
    }],
    layout: {
      title: {
        text: `${model.name}: output size per layer (values per image)`,
      },
      yaxis: { type: "log", title: { text: "values per image (log)" } },
      xaxis: { tickangle: -45 },
      height: 420,
      margin: { b: 120 },
    },
  }, {
    text: `${model.name}: ` +
      layers.map((l, i) => `${l.name} ${shapes[i]}`).join(" → "),
  });
}
