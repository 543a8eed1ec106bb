/**
 * Keras-style model summaries: one row per layer (name, class, output shape,
 * parameters, whether it trains) and the total, trainable and non-trainable
 * parameter counts. The model notebook shows them as tables.
 *
 * @module
 */
import type { LayersModel } from "../core/tf.ts";

/** One row of {@linkcode modelSummary}. */
export interface SummaryRow {
  /** Layer name. */
  layer: string;
  /** Layer class, e.g. `Conv2D`. */
  type: string;
  /** Output shape, Keras style, e.g. `(None, 126, 126, 32)`. */
  outputShape: string;
  /** Number of weights (trainable or not). */
  params: number;
  /** Whether the layer's weights train. */
  trainable: boolean;
}

/** What {@linkcode modelSummary} returns. */
export interface ModelSummary {
  /** Model name. */
  name: string;
  /** One row per top-level layer (a nested model is one row). */
  rows: SummaryRow[];
  /** All weights. */
  totalParams: number;
  /** Weights the optimizer updates. */
  trainableParams: number;
  /** Frozen weights and batch-norm statistics. */
  nonTrainableParams: number;
}

/**
 * A layer's output shape as Keras prints it: `None` for the batch, a
 * trailing comma for one dimension, several shapes joined by commas.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatShape } from "./summary.ts";
 * assert.equal(formatShape([null, 126, 126, 32]), "(None, 126, 126, 32)");
 * assert.equal(formatShape([null]), "(None,)");
 * assert.equal(formatShape([[null, 4], [null, 2]]), "(None, 4), (None, 2)");
 * ```
 */
export function formatShape(shape: unknown): string {
  if (Array.isArray(shape) && shape.some(Array.isArray)) {
    return shape.map(formatShape).join(", ");
  }
  const dims = (shape as (number | null)[]).map((d) =>
    d === null ? "None" : String(d)
  );
  return `(${dims.join(", ")}${dims.length === 1 ? "," : ""})`;
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Layer-by-layer summary (for `htmlTable({ rows })`) and parameter counts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { seedCnn } from "./models.ts";
 * import { modelSummary } from "./summary.ts";
 * const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
 * const { rows, totalParams, nonTrainableParams } = modelSummary(model);
 * assert.deepEqual(rows[0], {
 *   layer: "conv1",
 *   type: "Conv2D",
 *   outputShape: "(None, 30, 30, 32)",
 *   params: 320,
 *   trainable: true,
 * });
 * assert.equal(totalParams, 158_852);
 * assert.equal(nonTrainableParams, 0);
 * model.dispose();
 * ```
 */
export function modelSummary(model: LayersModel): ModelSummary {
  const rows = model.layers.map((layer) => ({
    layer: layer.name,
    type: layer.getClassName(),
    outputShape: formatShape(layer.outputShape),
    params: layer.countParams(),
    trainable: layer.trainable && layer.trainableWeights.length > 0,
  }));
  const totalParams = model.countParams();
  const trainableParams = model.trainableWeights.reduce(
    (n, w) => n + size(w.shape as number[]),
    0,
  );
  return {
    name: model.name,
    rows,
    totalParams,
    trainableParams,
    nonTrainableParams: totalParams - trainableParams,
  };
}
