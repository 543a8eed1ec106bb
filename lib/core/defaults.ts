/**
 * The project's defaults, in one place: the command-line tools, `trainModel`,
 * the notebooks' parameters and the docs all read them from here, so a
 * default changed here changes everywhere at once.
 *
 * @example Every tool trains 10 epochs unless told otherwise
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULTS } from "./defaults.ts";
 * assert.equal(DEFAULTS.epochs, 10);
 * assert.equal(DEFAULTS.validationFraction, DEFAULTS.testFraction);
 * ```
 *
 * @module
 */

/** The default of every run setting a user can change. */
export interface Defaults {
  /** Seed of every random choice: splits, initial weights, augmentation. */
  readonly seed: number;
  /** Side of the square input images, in pixels. */
  readonly imageSize: number;
  /** Share of the scans carved out for validation. */
  readonly validationFraction: number;
  /** Share of the scans carved out for testing (when there is no `Testing/`). */
  readonly testFraction: number;
  /** The architecture trained when none is named. */
  readonly arch: "seedCnn" | "vgg" | "resnet";
  /** Most epochs to train. */
  readonly epochs: number;
  /** Training batch size. */
  readonly batchSize: number;
  /** Batch size of validation and inference. */
  readonly evalBatchSize: number;
  /**
   * Images per forward pass of `deno task predict`: 1, so that a scan's
   * probabilities never depend on the other files and equal `serve`'s.
   */
  readonly predictBatchSize: number;
  /** Adam's initial learning rate. */
  readonly learningRate: number;
  /** Epochs without a better validation loss before training stops. */
  readonly earlyStoppingPatience: number;
  /** Epochs without a better validation loss before the rate is cut. */
  readonly plateauPatience: number;
  /** What the learning rate is multiplied by on a plateau. */
  readonly plateauFactor: number;
  /** The lowest learning rate a plateau cut or a cosine decay reaches. */
  readonly minLearningRate: number;
  /** Weight of the old value in the weights' moving average, when on. */
  readonly emaDecay: number;
  /**
   * The largest image, in pixels (width × height), that any decode path
   * accepts: its header is read first and a bigger image is refused before
   * anything is decoded. 50 megapixels is far above any MRI slice (the
   * Kaggle scans are at most 1,920 × 1,080) and far below what it would
   * take to exhaust memory.
   */
  readonly maxPixels: number;
  /**
   * The most bytes unpacking a dataset archive may write, all entries
   * together (4 GiB). The Kaggle dataset unpacks to about 150 MB; an archive
   * that would unpack to more is refused as it streams, before the disk fills.
   */
  readonly maxUnpackedBytes: number;
}

/** The project's defaults (see {@linkcode Defaults}). */
export const DEFAULTS: Defaults = Object.freeze({
  seed: 42,
  imageSize: 128,
  validationFraction: 0.15,
  testFraction: 0.15,
  arch: "seedCnn",
  epochs: 10,
  batchSize: 32,
  evalBatchSize: 64,
  predictBatchSize: 1,
  learningRate: 1e-3,
  earlyStoppingPatience: 5,
  plateauPatience: 2,
  plateauFactor: 0.5,
  minLearningRate: 1e-5,
  emaDecay: 0.998,
  maxPixels: 50_000_000,
  maxUnpackedBytes: 4 * 1024 ** 3,
});
