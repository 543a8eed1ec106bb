/**
 * Notebook and run parameters, read from environment variables so that
 * headless runs (`deno task report`) can change them without editing cells.
 *
 * | variable              | default | what                                   |
 * | --------------------- | ------- | -------------------------------------- |
 * | `BRAIN_MRI_SEED`      | 42      | seed of every random choice            |
 * | `BRAIN_MRI_IMAGE_SIZE`| 128     | side of the square input images        |
 * | `BRAIN_MRI_VAL`       | 0.15    | validation fraction                    |
 * | `BRAIN_MRI_TEST`      | 0.15    | test fraction (carved from Training)   |
 * | `BRAIN_MRI_ARCH`      | seedCnn | architecture to train                  |
 * | `BRAIN_MRI_EPOCHS`    | 10      | most epochs to train                   |
 * | `BRAIN_MRI_BATCH`     | 32      | batch size                             |
 * | `BRAIN_MRI_LR`        | 0.001   | Adam's initial learning rate           |
 * | `BRAIN_MRI_RUN`       | `<arch>-<size>-notebook` | run folder name under models/ |
 *
 * @module
 */
import { DEFAULTS } from "./defaults.ts";

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
 * import { runParams } from "./params.ts";
 * console.log(runParams({ env: { BRAIN_MRI_SEED: "7" } }).seed); // 7
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
 * Reads the training parameters from the environment, with defaults.
 *
 * @example
 * ```ts
 * import { trainParams } from "./params.ts";
 * console.log(trainParams({ env: { BRAIN_MRI_EPOCHS: "3" } }).epochs); // 3
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
    ema: numberFrom(env, "BRAIN_MRI_EMA", 0, (n) => n >= 0 && n < 1),
    weightDecay: numberFrom(
      env,
      "BRAIN_MRI_WEIGHT_DECAY",
      0,
      (n) => n >= 0 && Number.isFinite(n),
    ),
    labelSmoothing: numberFrom(
      env,
      "BRAIN_MRI_LABEL_SMOOTHING",
      0,
      (n) => n >= 0 && n < 1,
    ),
  };
}
