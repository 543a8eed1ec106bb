/**
 * The settings of a training run: {@linkcode resolveConfig} checks what
 * `trainModel` was given and fills in the defaults (from `DEFAULTS` in
 * `core/defaults.ts`), giving the {@linkcode RunConfig} that a run folder's
 * manifest and checkpoint record; {@linkcode configDifferences} says what a
 * resume would change.
 *
 * @example A run with nothing but its data gets the project's defaults
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULTS } from "../core/defaults.ts";
 * import { resolveConfig } from "./config.ts";
 *
 * const images = { pixels: new Uint8Array(2 * 4), labels: new Int32Array([0, 1]) };
 * const config = resolveConfig({
 *   train: images, validation: images, classes: ["a", "b"], size: 2,
 * });
 * assert.equal(config.epochs, DEFAULTS.epochs);
 * assert.equal(config.batchSize, DEFAULTS.batchSize);
 * assert.deepEqual(config.earlyStopping, {
 *   patience: DEFAULTS.earlyStoppingPatience,
 *   minDelta: 0,
 * });
 * ```
 *
 * @module
 */
import { DEFAULTS } from "../core/defaults.ts";
import type { LayersModel } from "../core/tf.ts";
import {
  type AugmentOptions,
  resolveAugmentOptions,
  type ResolvedAugmentOptions,
} from "../data/augment.ts";
import { type Clahe, claheProblems } from "../core/clahe.ts";
import type { SplitData } from "../data/prepare.ts";
import type { Architecture } from "../model/models.ts";

/** The images and labels training needs from a split. */
export type TrainSplit = Pick<SplitData, "pixels" | "labels">;

/** Early stopping on the monitored loss. */
export interface EarlyStoppingOptions {
  /** Epochs without improvement before stopping (default `DEFAULTS.earlyStoppingPatience`). */
  patience?: number;
  /** Smallest decrease that counts as an improvement (default 0). */
  minDelta?: number;
}

/** Reduce the learning rate when the monitored loss stops improving. */
export interface ReduceLrOnPlateauOptions {
  /** Epochs without improvement before reducing (default `DEFAULTS.plateauPatience`). */
  patience?: number;
  /** Multiplier of the learning rate (default `DEFAULTS.plateauFactor`). */
  factor?: number;
  /** Lowest learning rate (default `DEFAULTS.minLearningRate`). */
  minLr?: number;
  /** Smallest decrease that counts as an improvement (default 0). */
  minDelta?: number;
}

/** Options of the cosine learning-rate decay. */
export interface CosineDecayOptions {
  /** Learning rate reached after the last epoch (default `DEFAULTS.minLearningRate`). */
  minLr?: number;
  /**
   * What the decay runs over: `"epochs"` (the default; `epochs` long) or
   * `"time"`: the training time budget (`maxSeconds`, required), so that the
   * rate reaches `minLr` when the budget runs out however fast the machine
   * is. With `"time"` each epoch's rate follows from the seconds spent before
   * it (recorded in the history), so it depends on the machine's speed.
   */
  over?: "epochs" | "time";
}

/** An exponential moving average of the weights (Polyak averaging). */
export interface EmaOptions {
  /**
   * Weight of the old average at each batch (default `DEFAULTS.emaDecay`,
   * 0.998: an average over roughly the last 500 batches). Early on it is
   * `min(decay, (1 + n) / (10 + n))` after `n` batches, as in TensorFlow's
   * `ExponentialMovingAverage` with `num_updates`.
   */
  decay?: number;
}

/** The settings of a run, as recorded in its manifest and checkpoint. */
export interface RunConfig {
  /** Architecture name. */
  arch: string;
  /** Extra options given to the architecture's factory. */
  modelOptions: Record<string, unknown>;
  /** Input side in pixels. */
  inputSize: number;
  /** Input channels (1). */
  channels: number;
  /** Class names in label order. */
  classes: string[];
  /** Epochs to train (may be raised when resuming). */
  epochs: number;
  /** Batch size. */
  batchSize: number;
  /** Initial learning rate. */
  learningRate: number;
  /** The run's seed. */
  seed: number;
  /** Augmentation ranges, or false when off. */
  augmentation: ResolvedAugmentOptions | false;
  /** Loss weight of each class, by name, or null for none. */
  classWeights: Record<string, number> | null;
  /** Early stopping, or false when off. */
  earlyStopping: Required<EarlyStoppingOptions> | false;
  /** Reduce-on-plateau, or false when off. */
  reduceLrOnPlateau: Required<ReduceLrOnPlateauOptions> | false;
  /** Cosine learning-rate decay over `epochs`, or false when off. */
  cosineDecay: Required<CosineDecayOptions> | false;
  /** Training time budget in seconds, or null for none. */
  maxSeconds: number | null;
  /** Moving average of the weights, or false when off. */
  ema: Required<EmaOptions> | false;
  /** Decoupled weight decay of the kernels per step (0 = off). */
  weightDecay: number;
  /** Label smoothing of the training loss (0 = off). */
  labelSmoothing: number;
  /** Mixup's α: each batch mixed with a shuffle of itself (0 = off). */
  mixup: number;
  /** The CLAHE the images were prepared with, or null for none. */
  clahe: Clahe | null;
  /** Restore the best weights at the end. */
  restoreBestWeights: boolean;
  /** Validation batch size. */
  evalBatchSize: number;
}

/**
 * What {@linkcode resolveConfig} reads: the data, the model and the recipe
 * (the part of `trainModel`'s options that makes a {@linkcode RunConfig}).
 */
export interface RunConfigOptions {
  /** Training images. */
  train: TrainSplit;
  /** Validation images (may be empty: then the training loss is monitored). */
  validation: TrainSplit;
  /** Class names in label order. */
  classes: string[];
  /** Image side in pixels (the pixels are `size*size` bytes per image). */
  size: number;
  /** Architecture to build (default `DEFAULTS.arch`); ignored when `model` is given. */
  arch?: Architecture;
  /** Extra factory options (e.g. `{ dropout: 0.3 }`, `{ filters: [16, 32] }`). */
  modelOptions?: Record<string, unknown>;
  /**
   * A ready, uncompiled model to train instead of building `arch` (then
   * `arch` is only its recorded name; default the model's name). When
   * resuming, pass the same model as before. It stays the caller's.
   */
  model?: LayersModel;
  /** Epochs (default `DEFAULTS.epochs`). */
  epochs?: number;
  /** Batch size (default `DEFAULTS.batchSize`). */
  batchSize?: number;
  /** Adam's initial learning rate (default `DEFAULTS.learningRate`). */
  learningRate?: number;
  /** Seed of everything random (default `DEFAULTS.seed`). */
  seed?: number;
  /** Augmentation: true (default ranges, the default), false, or ranges. */
  augment?: boolean | AugmentOptions;
  /**
   * Class weights in the loss: `"balanced"` (`n / (k · n_c)`), weights by
   * class name, or by index. Default none.
   */
  classWeights?: "balanced" | Record<string, number> | number[];
  /** Early stopping (default patience `DEFAULTS.earlyStoppingPatience`), or false. */
  earlyStopping?: EarlyStoppingOptions | false;
  /**
   * Reduce-on-plateau (default patience `DEFAULTS.plateauPatience`, factor
   * `DEFAULTS.plateauFactor`, floor `DEFAULTS.minLearningRate`), or false.
   */
  reduceLrOnPlateau?: ReduceLrOnPlateauOptions | false;
  /**
   * Cosine decay of the learning rate from `learningRate` at the first epoch
   * to `minLr` after the last (`epochs`), set at the start of every epoch;
   * `true` for the defaults. Default off. Replaces reduce-on-plateau, which
   * is then off unless given explicitly (giving both is an error).
   */
  cosineDecay?: CosineDecayOptions | boolean;
  /**
   * Training time budget in seconds (epochs, validation and checkpoints):
   * the run stops (reason `time-budget`) after the epoch past which one more
   * epoch of the same length would exceed it. Default none.
   */
  maxSeconds?: number;
  /**
   * Keep an exponential moving average of all the weights (batch-norm
   * statistics included), updated after every batch; validation, the best
   * epoch, the saved model and the returned model use the average, the
   * training loss and accuracy the live weights. `true` for the defaults.
   * Default off.
   */
  ema?: EmaOptions | boolean;
  /**
   * Decoupled weight decay (AdamW, Loshchilov & Hutter): after every step,
   * each kernel (every trainable weight of rank ≥ 2: convolution and dense
   * kernels, not biases or batch-norm scales) is multiplied by
   * `1 - learningRate · weightDecay`, with the epoch's learning rate.
   * Default 0 (off).
   */
  weightDecay?: number;
  /**
   * Label smoothing ε of the training loss, in [0, 1): the target of each
   * image is `1 − ε + ε/k` for its class and `ε/k` for the others, which
   * keeps the network from driving its logits to extremes. Validation loss
   * (and so early stopping, the best epoch and plateaus) stays the plain
   * cross-entropy, comparable between runs. Default 0 (off).
   */
  labelSmoothing?: number;
  /**
   * Mixup's α (Zhang et al., 2018): each training batch is blended with a
   * shuffle of itself, `λ·x + (1 − λ)·x'`, and its loss with it, `λ·CE(y) +
   * (1 − λ)·CE(y')`, with λ from Beta(α, α) drawn per batch from the run's
   * seed (folded so each image keeps the larger share). Small α (0.1–0.4)
   * mixes gently. Validation is never mixed. Default 0 (off).
   */
  mixup?: number;
  /**
   * The CLAHE the images were prepared with (`prepareData`'s `clahe`),
   * recorded in the run and in the saved model's preprocessing so that
   * evaluate, predict and serve apply it to new scans. It is a record, not a
   * step: `trainModel` trains on the pixels as given. Default none.
   */
  clahe?: Clahe | null;
  /** Put the best epoch's weights back into the model at the end (default true). */
  restoreBestWeights?: boolean;
  /** Batch size of validation (default `DEFAULTS.evalBatchSize`). */
  evalBatchSize?: number;
}

function fail(problem: string): never {
  throw new Error(`trainModel: ${problem}`);
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    fail(`${name} must be a positive integer (got ${value})`);
  }
  return value;
}

/**
 * How many labels of each class there are, by class name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { classCounts } from "./config.ts";
 * assert.deepEqual(classCounts(new Int32Array([0, 1, 1]), ["a", "b", "c"]), {
 *   a: 1,
 *   b: 2,
 *   c: 0,
 * });
 * ```
 */
export function classCounts(
  labels: Int32Array,
  classes: readonly string[],
): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(
    classes.map((c) => [c, 0]),
  );
  for (const l of labels) counts[classes[l]]++;
  return counts;
}

/**
 * Class weights by class name from a spec: `"balanced"` gives
 * `n / (k · n_c)` (classes absent from `labels` get 1); a map or array gives
 * those weights (missing classes get 1).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveClassWeights } from "./config.ts";
 * const w = resolveClassWeights("balanced", ["a", "b"], new Int32Array([0, 0, 0, 1]));
 * assert.deepEqual(w, { a: 4 / 6, b: 2 });
 * ```
 */
export function resolveClassWeights(
  spec: "balanced" | Record<string, number> | number[],
  classes: readonly string[],
  labels: Int32Array,
): Record<string, number> {
  if (spec === "balanced") return balancedWeights(classes, labels);
  if (typeof spec === "string") {
    fail(`classWeights must be "balanced", a map or an array (got "${spec}")`);
  }
  const out: Record<string, number> = {};
  for (const [i, c] of classes.entries()) {
    const w = Array.isArray(spec) ? spec[i] : spec[c] ?? spec[String(i)];
    out[c] = w ?? 1;
  }
  const known = new Set([...classes, ...classes.map((_, i) => String(i))]);
  if (!Array.isArray(spec)) {
    for (const key of Object.keys(spec)) {
      if (!known.has(key)) {
        fail(
          `classWeights names an unknown class "${key}" (classes: ${
            classes.join(", ")
          })`,
        );
      }
    }
  }
  for (const [c, w] of Object.entries(out)) {
    if (!(Number.isFinite(w) && w > 0)) {
      fail(`class weight of "${c}" must be a positive number (got ${w})`);
    }
  }
  return out;
}

/** `n / (k · n_c)` per class; 1 for a class without labels. */
function balancedWeights(
  classes: readonly string[],
  labels: Int32Array,
): Record<string, number> {
  const out: Record<string, number> = {};
  const counts = classCounts(labels, classes);
  const n = labels.length;
  for (const c of classes) {
    out[c] = counts[c] > 0 ? n / (classes.length * counts[c]) : 1;
  }
  return out;
}

/** Checks the image side, the classes and both splits; returns the side. */
function checkData(options: RunConfigOptions): number {
  const size = positiveInteger("size", options.size);
  const classes = options.classes;
  if (!Array.isArray(classes) || classes.length < 2) {
    fail("classes must list at least two class names");
  }
  const splits = [["train", options.train], [
    "validation",
    options.validation,
  ]] as const;
  for (const [name, split] of splits) {
    if (!split || !(split.pixels instanceof Uint8Array)) {
      fail(`${name}.pixels must be a Uint8Array`);
    }
    if (split.pixels.length !== split.labels.length * size * size) {
      fail(
        `${name} has ${split.labels.length} labels but ${split.pixels.length} ` +
          `pixel bytes (expected ${split.labels.length}·${size}·${size})`,
      );
    }
    for (const l of split.labels) {
      if (!(l >= 0 && l < classes.length)) {
        fail(`${name} has label ${l}, outside 0..${classes.length - 1}`);
      }
    }
  }
  if (options.train.labels.length === 0) fail("the training split is empty");
  return size;
}

/** The learning rate and the seed, checked. */
function checkOptimizerStart(
  options: RunConfigOptions,
): { learningRate: number; seed: number } {
  const learningRate = options.learningRate ?? DEFAULTS.learningRate;
  if (!(learningRate > 0 && Number.isFinite(learningRate))) {
    fail(`learningRate must be a positive number (got ${learningRate})`);
  }
  const seed = options.seed ?? DEFAULTS.seed;
  if (!Number.isSafeInteger(seed)) {
    fail(`seed must be an integer (got ${seed})`);
  }
  return { learningRate, seed };
}

/**
 * The learning-rate schedule as given: cosine decay or reduce-on-plateau
 * (plateau is on by default unless a cosine decay replaces it), and the
 * time budget.
 */
function scheduleOptions(options: RunConfigOptions) {
  const cosine = options.cosineDecay ?? false;
  if (cosine !== false && options.reduceLrOnPlateau) {
    fail("cosineDecay and reduceLrOnPlateau cannot both be on");
  }
  const plateau = options.reduceLrOnPlateau ?? (cosine === false ? {} : false);
  const maxSeconds = options.maxSeconds ?? null;
  if (maxSeconds !== null && !(maxSeconds > 0)) {
    fail(`maxSeconds must be > 0 (got ${maxSeconds})`);
  }
  return { cosine, plateau, maxSeconds };
}

function resolveEarlyStopping(
  es: EarlyStoppingOptions | false,
): RunConfig["earlyStopping"] {
  return es === false ? false : {
    patience: positiveInteger(
      "earlyStopping.patience",
      es.patience ?? DEFAULTS.earlyStoppingPatience,
    ),
    minDelta: es.minDelta ?? 0,
  };
}

function resolvePlateau(
  rp: ReduceLrOnPlateauOptions | false,
): RunConfig["reduceLrOnPlateau"] {
  return rp === false ? false : {
    patience: positiveInteger(
      "reduceLrOnPlateau.patience",
      rp.patience ?? DEFAULTS.plateauPatience,
    ),
    factor: rp.factor ?? DEFAULTS.plateauFactor,
    minLr: rp.minLr ?? DEFAULTS.minLearningRate,
    minDelta: rp.minDelta ?? 0,
  };
}

function resolveCosine(
  cosine: CosineDecayOptions | boolean,
): RunConfig["cosineDecay"] {
  return cosine === false ? false : {
    minLr: (cosine === true ? undefined : cosine.minLr) ??
      DEFAULTS.minLearningRate,
    over: (cosine === true ? undefined : cosine.over) ?? "epochs",
  };
}

function resolveEma(ema: EmaOptions | boolean | undefined): RunConfig["ema"] {
  return !ema ? false : {
    decay: (ema === true ? undefined : ema.decay) ?? DEFAULTS.emaDecay,
  };
}

/** The checks that need the whole config. */
function checkConfig(config: RunConfig): void {
  if (!(config.weightDecay >= 0 && Number.isFinite(config.weightDecay))) {
    fail(`weightDecay must be a number >= 0 (got ${config.weightDecay})`);
  }
  if (!(config.labelSmoothing >= 0 && config.labelSmoothing < 1)) {
    fail(`labelSmoothing must be in [0, 1) (got ${config.labelSmoothing})`);
  }
  if (!(config.mixup >= 0 && Number.isFinite(config.mixup))) {
    fail(`mixup must be a number >= 0 (got ${config.mixup})`);
  }
  if (config.clahe) {
    const problems = claheProblems(config.clahe, config.inputSize);
    if (problems.length > 0) fail(problems.join("; "));
  }
  if (config.ema && !(config.ema.decay > 0 && config.ema.decay < 1)) {
    fail(`ema.decay must be in (0, 1) (got ${config.ema.decay})`);
  }
  const cosine = config.cosineDecay;
  if (cosine && !(["epochs", "time"] as unknown[]).includes(cosine.over)) {
    fail(
      `cosineDecay.over must be "epochs" or "time" (got ${
        JSON.stringify(cosine.over)
      })`,
    );
  }
  if (cosine && cosine.over === "time" && !config.maxSeconds) {
    fail('cosineDecay over "time" needs a time budget (maxSeconds)');
  }
  const plateau = config.reduceLrOnPlateau;
  if (plateau && !(plateau.factor > 0 && plateau.factor < 1)) {
    fail(`reduceLrOnPlateau.factor must be in (0, 1) (got ${plateau.factor})`);
  }
}

/**
 * Checks `trainModel`'s data and settings and fills in the defaults (see
 * {@linkcode RunConfigOptions}); throws `trainModel: <problem>` on the first
 * problem found.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveConfig } from "./config.ts";
 *
 * const images = { pixels: new Uint8Array(2 * 4), labels: new Int32Array([0, 1]) };
 * const config = resolveConfig({
 *   train: images, validation: images, classes: ["a", "b"], size: 2,
 *   cosineDecay: true, ema: true,
 * });
 * assert.equal(config.reduceLrOnPlateau, false); // the cosine decay replaces it
 * assert.equal(config.cosineDecay && config.cosineDecay.over, "epochs");
 * assert.throws(
 *   () => resolveConfig({ train: images, validation: images, classes: ["a", "b"], size: 2, epochs: 0 }),
 *   /epochs must be a positive integer \(got 0\)/,
 * );
 * ```
 */
export function resolveConfig(options: RunConfigOptions): RunConfig {
  const size = checkData(options);
  const { learningRate, seed } = checkOptimizerStart(options);
  const augment = options.augment ?? true;
  const { cosine, plateau, maxSeconds } = scheduleOptions(options);
  const config: RunConfig = {
    arch: options.model
      ? (options.arch ?? options.model.name)
      : (options.arch ?? DEFAULTS.arch),
    modelOptions: { ...(options.modelOptions ?? {}) },
    inputSize: size,
    channels: 1,
    classes: [...options.classes],
    epochs: positiveInteger("epochs", options.epochs ?? DEFAULTS.epochs),
    batchSize: positiveInteger(
      "batchSize",
      options.batchSize ?? DEFAULTS.batchSize,
    ),
    learningRate,
    seed,
    augmentation: augment === false
      ? false
      : resolveAugmentOptions(augment === true ? {} : augment),
    classWeights: options.classWeights === undefined
      ? null
      : resolveClassWeights(
        options.classWeights,
        options.classes,
        options.train.labels,
      ),
    earlyStopping: resolveEarlyStopping(options.earlyStopping ?? {}),
    reduceLrOnPlateau: resolvePlateau(plateau),
    cosineDecay: resolveCosine(cosine),
    maxSeconds,
    weightDecay: options.weightDecay ?? 0,
    labelSmoothing: options.labelSmoothing ?? 0,
    mixup: options.mixup ?? 0,
    clahe: options.clahe
      ? { clipLimit: options.clahe.clipLimit, tiles: options.clahe.tiles }
      : null,
    ema: resolveEma(options.ema),
    restoreBestWeights: options.restoreBestWeights ?? true,
    evalBatchSize: positiveInteger(
      "evalBatchSize",
      options.evalBatchSize ?? DEFAULTS.evalBatchSize,
    ),
  };
  checkConfig(config);
  return config;
}

/** A copy of `value` with every object's keys in sorted order (for comparing JSON). */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value).sort().map((k) => [
        k,
        sortKeys((value as Record<string, unknown>)[k]),
      ]),
    );
  }
  return value;
}

// Settings added after version 1 of the run format: absent means off.
const ADDED_SETTINGS: Partial<RunConfig> = {
  cosineDecay: false,
  maxSeconds: null,
  ema: false,
  weightDecay: 0,
  labelSmoothing: 0,
  mixup: 0,
  clahe: null,
};

/** A saved setting as it reads today: cosine decays of runs before `over` existed ran over epochs. */
function upgradeSetting(key: keyof RunConfig, value: unknown): unknown {
  return key === "cosineDecay" && value
    ? { over: "epochs", ...(value as CosineDecayOptions) }
    : value;
}

/**
 * Differences between a saved run's settings and new ones, one line each
 * (`key: <saved> in the run, <new> now`); `epochs` may differ (a run can be
 * extended). Settings a run saved before they existed count as off.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { configDifferences, resolveConfig } from "./config.ts";
 *
 * const images = { pixels: new Uint8Array(2 * 4), labels: new Int32Array([0, 1]) };
 * const base = { train: images, validation: images, classes: ["a", "b"], size: 2 };
 * const saved = resolveConfig(base);
 * assert.deepEqual(configDifferences(saved, resolveConfig({ ...base, epochs: 20 })), []);
 * assert.deepEqual(configDifferences(saved, resolveConfig({ ...base, batchSize: 4 })), [
 *   "batchSize: 32 in the run, 4 now",
 * ]);
 * ```
 */
export function configDifferences(saved: RunConfig, now: RunConfig): string[] {
  const out: string[] = [];
  for (const key of Object.keys(now) as (keyof RunConfig)[]) {
    if (key === "epochs") continue;
    const a = JSON.stringify(
      sortKeys(
        upgradeSetting(key, key in saved ? saved[key] : ADDED_SETTINGS[key]),
      ),
    );
    const b = JSON.stringify(sortKeys(now[key]));
    if (a !== b) out.push(`${key}: ${a} in the run, ${b} now`);
  }
  return out;
}
