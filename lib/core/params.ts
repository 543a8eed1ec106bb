/**
 * Notebook and run parameters, read from environment variables so that
 * headless runs (`deno task report`) can change them without editing cells.
 * A variable that is unset or blank takes its default from
 * {@linkcode DEFAULTS} (`./defaults.ts`), the same default every command-line
 * tool uses; the three training refinements are off unless set.
 *
 * | variable                    | default                          | what                                  |
 * | --------------------------- | -------------------------------- | ------------------------------------- |
 * | `BRAIN_MRI_SEED`            | `DEFAULTS.seed`                  | seed of every random choice           |
 * | `BRAIN_MRI_IMAGE_SIZE`      | `DEFAULTS.imageSize`             | side of the square input images       |
 * | `BRAIN_MRI_VAL`             | `DEFAULTS.validationFraction`    | validation fraction                   |
 * | `BRAIN_MRI_TEST`            | `DEFAULTS.testFraction`          | test fraction (carved from Training)  |
 * | `BRAIN_MRI_ARCH`            | `DEFAULTS.arch`                  | architecture to train                 |
 * | `BRAIN_MRI_EPOCHS`          | `DEFAULTS.epochs`                | most epochs to train                  |
 * | `BRAIN_MRI_BATCH`           | `DEFAULTS.batchSize`             | batch size                            |
 * | `BRAIN_MRI_LR`              | `DEFAULTS.learningRate`          | Adam's initial learning rate          |
 * | `BRAIN_MRI_RUN`             | `<arch>-<size>-notebook`         | run folder name under `models/`       |
 * | `BRAIN_MRI_EMA`             | 0 (off)                          | decay of the weights' moving average  |
 * | `BRAIN_MRI_WEIGHT_DECAY`    | 0 (off)                          | decoupled weight decay                |
 * | `BRAIN_MRI_LABEL_SMOOTHING` | 0 (off)                          | label smoothing of the training loss  |
 *
 * @module
 */
import { DEFAULTS } from "./defaults.ts";

/** The value of a training refinement (EMA, weight decay, label smoothing) that is off. */
const OFF = 0;

/** The parameters every notebook shares. */
export interface RunParams {
  /** Seed of every random choice. */
  seed: number;
  /** Side of the square input images. */
  size: number;
  /** Validation fraction. */
  validation: number;
  /** Test fraction (when carved from Training). */
  test: number;
}

function numberFrom(
  env: Record<string, string | undefined>,
  name: string,
  fallback: number,
  check: (n: number) => boolean,
): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || !check(value)) {
    throw new Error(`${name}=${raw} is not a valid value`);
  }
  return value;
}

/**
 * Reads the run parameters from the environment, with defaults; a malformed
 * value is an error naming the variable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULTS } from "./defaults.ts";
 * import { runParams } from "./params.ts";
 * assert.deepEqual(runParams({ env: { BRAIN_MRI_SEED: "7" } }), {
 *   seed: 7,
 *   size: DEFAULTS.imageSize,
 *   validation: DEFAULTS.validationFraction,
 *   test: DEFAULTS.testFraction,
 * });
 * assert.throws(
 *   () => runParams({ env: { BRAIN_MRI_VAL: "1.5" } }),
 *   /BRAIN_MRI_VAL=1\.5 is not a valid value/,
 * );
 * ```
 */
export function runParams(
  options: { env?: Record<string, string | undefined> } = {},
): RunParams {
  const env = options.env ?? Deno.env.toObject();
  const fraction = (n: number) => n >= 0 && n < 1;
  return {
    seed: numberFrom(env, "BRAIN_MRI_SEED", DEFAULTS.seed, Number.isInteger),
    size: numberFrom(
      env,
      "BRAIN_MRI_IMAGE_SIZE",
      DEFAULTS.imageSize,
      (n) => Number.isInteger(n) && n >= 16 && n <= 1024,
    ),
    validation: numberFrom(
      env,
      "BRAIN_MRI_VAL",
      DEFAULTS.validationFraction,
      fraction,
    ),
    test: numberFrom(env, "BRAIN_MRI_TEST", DEFAULTS.testFraction, fraction),
  };
}

/** Training parameters (notebook 03, `deno task report`). */
export interface TrainParams {
  /** Architecture. */
  arch: "seedCnn" | "vgg" | "resnet";
  /** Most epochs. */
  epochs: number;
  /** Batch size. */
  batchSize: number;
  /** Initial learning rate. */
  learningRate: number;
  /** Run folder name under `models/`. */
  run: string;
  /** Decay of the weights' moving average (`trainModel`'s `ema`); 0 = off. */
  ema: number;
  /** Decoupled weight decay (`trainModel`'s `weightDecay`); 0 = off. */
  weightDecay: number;
  /** Label smoothing of the training loss; 0 = off. */
  labelSmoothing: number;
}

/**
 * Reads the training parameters from the environment, with defaults (see
 * the module documentation); a malformed value is an error naming the
 * variable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULTS } from "./defaults.ts";
 * import { trainParams } from "./params.ts";
 * const train = trainParams({
 *   env: { BRAIN_MRI_EPOCHS: "3", BRAIN_MRI_ARCH: "resnet" },
 * });
 * assert.equal(train.epochs, 3);
 * assert.equal(train.batchSize, DEFAULTS.batchSize);
 * assert.equal(train.run, `resnet-${DEFAULTS.imageSize}-notebook`);
 * assert.equal(train.ema, 0); // off
 * ```
 */
export function trainParams(
  options: { env?: Record<string, string | undefined> } = {},
): TrainParams {
  const env = options.env ?? Deno.env.toObject();
  const arch = env.BRAIN_MRI_ARCH?.trim() || DEFAULTS.arch;
  if (!["seedCnn", "vgg", "resnet"].includes(arch)) {
    throw new Error(
      `BRAIN_MRI_ARCH=${arch} is not one of seedCnn, vgg, resnet`,
    );
  }
  const size = runParams(options).size;
  return {
    arch: arch as TrainParams["arch"],
    epochs: numberFrom(
      env,
      "BRAIN_MRI_EPOCHS",
      DEFAULTS.epochs,
      (n) => Number.isInteger(n) && n >= 1,
    ),
    batchSize: numberFrom(
      env,
      "BRAIN_MRI_BATCH",
      DEFAULTS.batchSize,
      (n) => Number.isInteger(n) && n >= 1,
    ),
    learningRate: numberFrom(
      env,
      "BRAIN_MRI_LR",
      DEFAULTS.learningRate,
      (n) => n > 0 && n < 1,
    ),
    run: env.BRAIN_MRI_RUN?.trim() || `${arch}-${size}-notebook`,
    ema: numberFrom(env, "BRAIN_MRI_EMA", OFF, (n) => n >= 0 && n < 1),
    weightDecay: numberFrom(
      env,
      "BRAIN_MRI_WEIGHT_DECAY",
      OFF,
      (n) => n >= 0 && Number.isFinite(n),
    ),
    labelSmoothing: numberFrom(
      env,
      "BRAIN_MRI_LABEL_SMOOTHING",
      OFF,
      (n) => n >= 0 && n < 1,
    ),
  };
}
