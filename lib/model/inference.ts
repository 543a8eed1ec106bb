/**
 * Running a model on packed images: class probabilities in batches, in
 * inference mode, optionally averaged with each image's mirror (test-time
 * augmentation). Evaluation, prediction, the service and the notebooks all
 * call this one function, so a scan gets the same probabilities everywhere.
 *
 * @module
 */
import { DEFAULTS } from "../core/defaults.ts";
import { isTta, type Tta } from "./saved_model.ts";
import { type LayersModel, type Tensor, tf } from "../core/tf.ts";

/** Options for {@linkcode predictProbabilities}. */
export interface PredictOptions {
  /** Packed grayscale images, `count * size * size` bytes. */
  pixels: Uint8Array;
  /** Image side. */
  size: number;
  /** Pixel scale (default 1/255). */
  scale?: number;
  /** Images per batch (default `DEFAULTS.evalBatchSize`, 64). */
  batchSize?: number;
  /**
   * Test-time augmentation: `"hflip"` averages the probabilities of each
   * image and its left-right mirror (the mirror is one of the training
   * augmentations). Default `"none"`.
   */
  tta?: Tta;
}

/**
 * Class probabilities for packed uint8 images, in batches, in inference mode.
 * Returns `count * numClasses` values, row-major. Leaks no tensor.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { predictProbabilities } from "./inference.ts";
 * import { seedCnn } from "./models.ts";
 * const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
 * const pixels = new Uint8Array(2 * 32 * 32).fill(128); // two grey images
 * const probs = await predictProbabilities(model, { pixels, size: 32 });
 * assert.equal(probs.length, 2 * 4); // a row of 4 classes per image
 * const rowSum = probs.slice(0, 4).reduce((a, b) => a + b, 0);
 * assert.ok(Math.abs(rowSum - 1) < 1e-5);
 * // A uniform image is its own mirror: test-time augmentation changes nothing.
 * const hflip = await predictProbabilities(model, { pixels, size: 32, tta: "hflip" });
 * hflip.forEach((p, i) => assert.ok(Math.abs(p - probs[i]) < 1e-6));
 * model.dispose();
 * ```
 */
export async function predictProbabilities(
  model: LayersModel,
  options: PredictOptions,
): Promise<Float32Array> {
  const area = options.size * options.size;
  const count = options.pixels.length / area;
  if (!Number.isInteger(count)) {
    throw new Error(
      `predictProbabilities: ${options.pixels.length} bytes are not whole ` +
        `${options.size}×${options.size} images`,
    );
  }
  const batchSize = options.batchSize ?? DEFAULTS.evalBatchSize;
  const scale = options.scale ?? 1 / 255;
  if (options.tta !== undefined && !isTta(options.tta)) {
    throw new Error(
      `predictProbabilities: tta must be "none" or "hflip" (got "${options.tta}")`,
    );
  }
  const numClasses = (model.outputs[0].shape.at(-1) ?? 0) as number;
  const out = new Float32Array(count * numClasses);
  for (let start = 0; start < count; start += batchSize) {
    const end = Math.min(count, start + batchSize);
    const probs = tf.tidy(() => {
      const x = tf.tensor4d(
        options.pixels.subarray(start * area, end * area),
        [end - start, options.size, options.size, 1],
        "float32",
      ).mul(scale);
      const p = model.predict(x) as Tensor;
      if (options.tta !== "hflip") return p;
      const mirrored = model.predict(tf.reverse(x, 2)) as Tensor;
      return p.add(mirrored).div(2);
    });
    out.set(await probs.data() as Float32Array, start * numClasses);
    probs.dispose();
  }
  return out;
}
