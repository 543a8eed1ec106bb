/**
 * Validation: {@linkcode evaluateSplit} measures a model's loss, accuracy
 * and predicted classes on packed uint8 images, in batches and in inference
 * mode (Dropout off, batch-norm statistics fixed). `trainModel` runs it on
 * the validation split after every epoch; the loss is the plain
 * cross-entropy (no class weights, no label smoothing), so that it can be
 * compared between runs.
 *
 * @example An untrained seed CNN on four blank images
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildModel } from "../model/models.ts";
 * import { evaluateSplit } from "./evaluate_split.ts";
 *
 * const model = buildModel("seedCnn", { inputSize: 32, channels: 1, numClasses: 4 });
 * const images = { pixels: new Uint8Array(4 * 32 * 32), labels: new Int32Array([0, 1, 2, 3]) };
 * const metrics = await evaluateSplit(model, images, { size: 32, batchSize: 3 });
 * assert.equal(metrics.count, 4);
 * // Blank images all look alike: one class is predicted, one of four right.
 * assert.equal(new Set(metrics.predicted).size, 1);
 * assert.equal(metrics.acc, 0.25);
 * model.dispose();
 * ```
 *
 * @module
 */
import { DEFAULTS } from "../core/defaults.ts";
import { type LayersModel, type Tensor, tf } from "../core/tf.ts";
import type { TrainSplit } from "./config.ts";
import { batchTensor, crossEntropy } from "./step.ts";

/** Loss and accuracy of a model on a split. */
export interface SplitMetrics {
  /** Mean cross-entropy (unweighted). */
  loss: number;
  /** Accuracy. */
  acc: number;
  /** Images. */
  count: number;
  /** Predicted class per image. */
  predicted: Int32Array;
}

/** Options for {@linkcode evaluateSplit}. */
export interface EvaluateSplitOptions {
  /** Image side. */
  size: number;
  /** Batch size (default `DEFAULTS.evalBatchSize`). */
  batchSize?: number;
}

/**
 * Loss, accuracy and predictions of a model on packed uint8 images, in
 * batches (inference mode: dropout off, batch-norm statistics fixed); NaN
 * loss and accuracy for an empty split. See the module example.
 */
export async function evaluateSplit(
  model: LayersModel,
  split: TrainSplit,
  options: EvaluateSplitOptions,
): Promise<SplitMetrics> {
  const n = split.labels.length;
  const batchSize = options.batchSize ?? DEFAULTS.evalBatchSize;
  const predicted = new Int32Array(n);
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < n; start += batchSize) {
    const end = Math.min(n, start + batchSize);
    const indices = Array.from({ length: end - start }, (_, k) => start + k);
    const x = batchTensor(split.pixels, indices, options.size);
    const y = tf.tensor1d(split.labels.subarray(start, end), "int32");
    const [lossT, predT] = tf.tidy(() => {
      const probs = model.predict(x) as Tensor;
      return [tf.sum(crossEntropy(probs, y)), tf.argMax(probs, -1)];
    });
    const [lossV, pred] = await Promise.all([lossT.data(), predT.data()]);
    tf.dispose([x, y, lossT, predT]);
    lossSum += lossV[0];
    for (let k = 0; k < pred.length; k++) {
      predicted[start + k] = pred[k];
      if (pred[k] === split.labels[start + k]) correct++;
    }
  }
  return {
    loss: n ? lossSum / n : NaN,
    acc: n ? correct / n : NaN,
    count: n,
    predicted,
  };
}
