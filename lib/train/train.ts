/**
 * Training: {@linkcode trainModel} trains a CNN on packed uint8 images (the
 * {@linkcode SplitData} that `prepareData` returns) with a hand-written batch
 * loop, and — given a run folder — keeps everything needed to use, audit and
 * resume the run:
 *
 * ```text
 * models/<run>/
 *   model/          the best-on-validation model (tfjs Layers + metadata.json)
 *   history.json    per-epoch loss, acc, val_loss, val_acc, lr, seconds, images/s
 *   manifest.json   config, dataset fingerprint, classes, versions, timings, metrics
 *   checkpoint/     the last completed epoch: weights, optimizer state, loop state
 * ```
 *
 * What it does, per epoch: shuffles the training images with a seed derived
 * from `(seed, "shuffle/<epoch>")`; per batch, builds the input tensor from
 * the uint8 pixels (`/255`), augments it with `applyAugmentation` keyed by
 * `(seed, epoch, batch)`, seeds every Dropout layer from `(seed, epoch, batch,
 * layer)` and takes one Adam step on sparse categorical cross-entropy
 * (optionally class-weighted); then evaluates the validation split in
 * batches, keeps the best weights (lowest validation loss), applies
 * reduce-on-plateau and early stopping, and writes a checkpoint.
 *
 * Every random choice is a function of the seed and the position in the run,
 * and the checkpoint holds the full optimizer state (Adam's moments,
 * iteration count and β-powers), so a run resumed from its checkpoint takes
 * the same steps as one that was never interrupted.
 *
 * The optimizer is tfjs's Adam (with Keras' ε = 1e-7): unlike the fused
 * `NativeAdam` of ./models.ts, it can hand out and take back its state
 * (`getWeights`/`setWeights`) and change its learning rate mid-run, which
 * checkpoints and reduce-on-plateau need. TensorFlow's fused kernels
 * (`useNativeKernels`) are still used for the forward and backward passes.
 *
 * Progress goes to callbacks ({@linkcode TrainCallbacks}); ./progress.ts
 * makes them for a terminal and for a notebook.
 *
 * @module
 */
import { existsSync, readdirSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { writeTextAtomic } from "../core/atomic.ts";
import {
  applyAugmentation,
  type AugmentOptions,
  resolveAugmentOptions,
  type ResolvedAugmentOptions,
} from "../data/augment.ts";
import {
  hasCheckpoint,
  loadCheckpoint,
  readCheckpointFile,
  readCheckpointState,
  saveCheckpoint,
} from "./checkpoint.ts";
import type { SplitData } from "../data/prepare.ts";
import { type Architecture, buildModel } from "../model/models.ts";
import { useNativeKernels } from "../model/native_kernels.ts";
import { deriveSeed, rng } from "../core/random.ts";
import {
  defaultPreprocessing,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  type ModelMetadata,
  saveModel,
  type TrainingSplit,
  type TrainingSummary,
} from "../model/saved_model.ts";
import { type LayersModel, type Scalar, type Tensor, tf } from "../core/tf.ts";
import { versions } from "../core/versions.ts";

type Optimizer = import("@tensorflow/tfjs-node").Optimizer;
type Variable = import("@tensorflow/tfjs-node").Variable;

/** The images and labels {@linkcode trainModel} needs from a split. */
export type TrainSplit = Pick<SplitData, "pixels" | "labels">;

/** One epoch's numbers (as in `history.json`). */
export interface EpochRecord {
  /** Epoch number, 1-based. */
  epoch: number;
  /** Mean training loss over the epoch (class-weighted when weights are set). */
  loss: number;
  /** Training accuracy over the epoch. */
  acc: number;
  /** Validation loss (unweighted), null without a validation split. */
  val_loss: number | null;
  /** Validation accuracy, null without a validation split. */
  val_acc: number | null;
  /** Learning rate used during the epoch. */
  lr: number;
  /** Wall-clock seconds of the epoch (training + validation + saving). */
  seconds: number;
  /** Seconds of the training batches alone. */
  trainSeconds: number;
  /** Training images per second. */
  imagesPerSecond: number;
}

/** Why training stopped. */
export type StopReason =
  | "completed"
  | "early-stopping"
  | "time-budget"
  | "aborted";

/** Early stopping on the monitored loss. */
export interface EarlyStoppingOptions {
  /** Epochs without improvement before stopping (default 5). */
  patience?: number;
  /** Smallest decrease that counts as an improvement (default 0). */
  minDelta?: number;
}

/** Reduce the learning rate when the monitored loss stops improving. */
export interface ReduceLrOnPlateauOptions {
  /** Epochs without improvement before reducing (default 2). */
  patience?: number;
  /** Multiplier of the learning rate (default 0.5). */
  factor?: number;
  /** Lowest learning rate (default 1e-5). */
  minLr?: number;
  /** Smallest decrease that counts as an improvement (default 0). */
  minDelta?: number;
}

/** An exponential moving average of the weights (Polyak averaging). */
export interface EmaOptions {
  /**
   * Weight of the old average at each batch (default 0.998: an average
   * over roughly the last 500 batches). Early on it is
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
  /** Restore the best weights at the end. */
  restoreBestWeights: boolean;
  /** Validation batch size. */
  evalBatchSize: number;
}

/** What {@linkcode TrainCallbacks.onTrainBegin} gets. */
export interface TrainBeginInfo {
  /** Run name (the run folder's name), if any. */
  run?: string;
  /** The run's settings. */
  config: RunConfig;
  /** Epochs already done (non-zero when resuming). */
  startEpoch: number;
  /** Batches per epoch. */
  batchesPerEpoch: number;
  /** Training images. */
  trainImages: number;
  /** Validation images. */
  validationImages: number;
  /** History so far (when resuming). */
  history: EpochRecord[];
  /** Current learning rate. */
  learningRate: number;
}

/** What {@linkcode TrainCallbacks.onBatchEnd} gets. */
export interface BatchEndInfo {
  /** Epoch, 0-based. */
  epoch: number;
  /** Batch, 0-based. */
  batch: number;
  /** Batches in the epoch. */
  batches: number;
  /** Epochs in the run. */
  epochs: number;
  /** Mean loss over the epoch so far. */
  loss: number;
  /** Accuracy over the epoch so far. */
  acc: number;
  /** Images trained on this epoch so far. */
  seen: number;
  /** Seconds since the epoch began. */
  seconds: number;
  /** Training images per second this epoch. */
  imagesPerSecond: number;
}

/** What {@linkcode TrainCallbacks.onEpochEnd} gets. */
export interface EpochEndInfo {
  /** The epoch just finished. */
  record: EpochRecord;
  /** All epochs so far. */
  history: EpochRecord[];
  /** Epochs in the run. */
  epochs: number;
  /** Whether this epoch is the best so far. */
  improved: boolean;
  /** The best epoch so far. */
  best: EpochRecord;
  /** The learning rate for the next epoch (lower after a plateau). */
  nextLearningRate: number;
  /** Set when training stops after this epoch. */
  stopReason?: StopReason;
}

/** What {@linkcode TrainCallbacks.onTrainEnd} gets. */
export interface TrainEndInfo {
  /** All epochs. */
  history: EpochRecord[];
  /** The best epoch (undefined when none ran). */
  best?: EpochRecord;
  /** Why training stopped. */
  stopReason: StopReason;
  /** Training wall-clock seconds over all sessions of the run. */
  seconds: number;
}

/** Hooks called during training (any may be async). */
export interface TrainCallbacks {
  /** Before the first epoch of this session. */
  onTrainBegin?(info: TrainBeginInfo): void | Promise<void>;
  /** Before each epoch (0-based). */
  onEpochBegin?(epoch: number, epochs: number): void | Promise<void>;
  /** After each training batch. */
  onBatchEnd?(info: BatchEndInfo): void | Promise<void>;
  /** After each epoch (validation done, checkpoint written). */
  onEpochEnd?(info: EpochEndInfo): void | Promise<void>;
  /** After training (best weights restored, model saved). */
  onTrainEnd?(info: TrainEndInfo): void | Promise<void>;
  /** Messages (resuming, saving, warnings). */
  onLog?(message: string): void;
}

/** Options for {@linkcode trainModel}. */
export interface TrainOptions {
  /** Training images. */
  train: TrainSplit;
  /** Validation images (may be empty: then the training loss is monitored). */
  validation: TrainSplit;
  /** Class names in label order. */
  classes: string[];
  /** Image side in pixels (the pixels are `size*size` bytes per image). */
  size: number;
  /** Architecture to build (default `"seedCnn"`); ignored when `model` is given. */
  arch?: Architecture;
  /** Extra factory options (e.g. `{ dropout: 0.3 }`, `{ filters: [16, 32] }`). */
  modelOptions?: Record<string, unknown>;
  /**
   * A ready, uncompiled model to train instead of building `arch` (then
   * `arch` is only its recorded name; default the model's name). When
   * resuming, pass the same model as before. It stays the caller's.
   */
  model?: LayersModel;
  /** Epochs (default 10). */
  epochs?: number;
  /** Batch size (default 32). */
  batchSize?: number;
  /** Adam's initial learning rate (default 0.001). */
  learningRate?: number;
  /** Seed of everything random (default 42). */
  seed?: number;
  /** Augmentation: true (default ranges, the default), false, or ranges. */
  augment?: boolean | AugmentOptions;
  /**
   * Class weights in the loss: `"balanced"` (`n / (k · n_c)`), weights by
   * class name, or by index. Default none.
   */
  classWeights?: "balanced" | Record<string, number> | number[];
  /** Early stopping (default patience 5), or false. */
  earlyStopping?: EarlyStoppingOptions | false;
  /** Reduce-on-plateau (default patience 2, factor 0.5, min 1e-5), or false. */
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
  /** Put the best epoch's weights back into the model at the end (default true). */
  restoreBestWeights?: boolean;
  /** Batch size of validation (default 64). */
  evalBatchSize?: number;
  /** Run folder; without one nothing is written. */
  runDir?: string;
  /**
   * Continue the run in `runDir` from its checkpoint. Without it, a run
   * folder holding a checkpoint is refused.
   */
  resume?: boolean;
  /** Dataset fingerprint, for the manifest and metadata (and resume checks). */
  datasetFingerprint?: string;
  /** Anything else to record in the manifest (data source, split sizes...). */
  manifestExtra?: Record<string, unknown>;
  /**
   * The validation and test fractions the data was split with, recorded in
   * the saved model's metadata (`training.split`) so that evaluation can
   * re-derive the same splits (with `seed`); `validationTrained` marks a
   * refit, whose training data includes the validation split.
   */
  split?: TrainingSplit;
  /** Progress hooks. */
  callbacks?: TrainCallbacks | TrainCallbacks[];
  /** Stops after the current batch when aborted (the last checkpoint stays). */
  signal?: AbortSignal;
  /** Use TensorFlow's fused CPU kernels (`useNativeKernels`, default true). */
  nativeKernels?: boolean;
}

/** What {@linkcode trainModel} returns. */
export interface TrainResult {
  /**
   * The trained model (best weights when `restoreBestWeights`); yours to
   * dispose, which also frees its optimizer.
   */
  model: LayersModel;
  /** The optimizer (owned by the model). */
  optimizer: Optimizer;
  /** Every epoch of the run, including those before a resume. */
  history: EpochRecord[];
  /** The best epoch (lowest validation loss). */
  best?: EpochRecord;
  /** Why training stopped. */
  stopReason: StopReason;
  /** The run's settings. */
  config: RunConfig;
  /** Epochs done before this session (0 unless resumed). */
  resumedFrom: number;
  /** Training wall-clock seconds over all sessions. */
  seconds: number;
  /** The run folder, absolute, when there is one. */
  runDir?: string;
}

/** The loop state kept in the checkpoint. */
export interface TrainState {
  /** Settings the run started with. */
  config: RunConfig;
  /** Dataset fingerprint the run started with. */
  datasetFingerprint: string;
  /** Training images the run started with. */
  trainImages: number;
  /** Epochs completed. */
  epochsCompleted: number;
  /** All epochs so far. */
  history: EpochRecord[];
  /** Learning rate for the next epoch. */
  learningRate: number;
  /** Best monitored loss so far and its epoch (1-based; 0 for none). */
  best: { loss: number | null; epoch: number };
  /** Early stopping's best and wait. */
  earlyStopping: { best: number | null; wait: number };
  /** Reduce-on-plateau's best and wait. */
  plateau: { best: number | null; wait: number };
  /** Set once the run has stopped. */
  stopReason: StopReason | null;
  /** Batches averaged into the weights' moving average (with `ema`). */
  emaUpdates?: number;
  /** Training wall-clock seconds so far. */
  seconds: number;
  /** When the run started. */
  startedAt: string;
  /** Each resume: epochs done at the time and when. */
  resumes: { epochsCompleted: number; at: string }[];
}

/** Options of the cosine learning-rate decay. */
export interface CosineDecayOptions {
  /** Learning rate reached after the last epoch (default 1e-5). */
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

/**
 * The learning rate of a cosine decay at the start of epoch `epoch`
 * (0-based) of `epochs`: `minLr + (lr - minLr) · (1 + cos(π · epoch / epochs)) / 2`.
 * Any unit works: for a decay over a time budget, `epoch` is the seconds
 * spent and `epochs` the budget's seconds (past the end it stays at `minLr`).
 *
 * @example
 * ```ts
 * import { cosineLearningRate } from "./train.ts";
 * console.log(cosineLearningRate({ learningRate: 1e-3, minLr: 0, epoch: 5, epochs: 10 })); // 0.0005
 * ```
 */
export function cosineLearningRate(
  options: {
    learningRate: number;
    minLr: number;
    epoch: number;
    epochs: number;
  },
): number {
  const { learningRate, minLr, epoch, epochs } = options;
  const t = Math.min(1, Math.max(0, epoch / epochs));
  return minLr + (learningRate - minLr) * 0.5 * (1 + Math.cos(Math.PI * t));
}

/** `manifest.json` of a run folder. */
export interface RunManifest {
  /** Always `"brain-mri-cnn/run"`. */
  format: "brain-mri-cnn/run";
  /** Manifest version (1). */
  version: 1;
  /** Run name. */
  run: string;
  /** `"running"` or why it stopped. */
  status: "running" | StopReason;
  /** When the run started. */
  startedAt: string;
  /** When this file was last written. */
  updatedAt: string;
  /** The settings. */
  config: RunConfig;
  /** The data it trained on. */
  data: {
    fingerprint: string;
    classes: string[];
    trainImages: number;
    validationImages: number;
    trainCounts: Record<string, number>;
    validationCounts: Record<string, number>;
  };
  /** The network. */
  model: { arch: string; params: number };
  /** Library versions. */
  versions: Record<string, string>;
  /** Timings. */
  timings: {
    epochs: number;
    trainingSeconds: number;
    meanEpochSeconds: number;
    msPerImagePerEpoch: number;
    meanImagesPerSecond: number;
  };
  /** Each resume. */
  resumes: { epochsCompleted: number; at: string }[];
  /** Final and best epochs. */
  metrics: { final?: EpochRecord; best?: EpochRecord; bestEpoch: number };
  /** Anything the caller added (`manifestExtra`, test metrics...). */
  extra: Record<string, unknown>;
}

/** File and folder names inside a run folder. */
export const RUN_FILES = {
  /** The best model (saved-model format). */
  model: "model",
  /** Per-epoch history. */
  history: "history.json",
  /** Run manifest. */
  manifest: "manifest.json",
  /** Checkpoint of the last completed epoch. */
  checkpoint: "checkpoint",
} as const;

const BEST_WEIGHTS_FILE = "best.bin";
const EMA_WEIGHTS_FILE = "ema.bin";

/**
 * The paths inside a run folder.
 *
 * @example
 * ```ts
 * import { runPaths } from "./train.ts";
 * console.log(runPaths("models/demo").checkpoint); // ".../models/demo/checkpoint"
 * ```
 */
export function runPaths(runDir: string): {
  root: string;
  model: string;
  history: string;
  manifest: string;
  checkpoint: string;
} {
  const root = resolve(runDir);
  return {
    root,
    model: join(root, RUN_FILES.model),
    history: join(root, RUN_FILES.history),
    manifest: join(root, RUN_FILES.manifest),
    checkpoint: join(root, RUN_FILES.checkpoint),
  };
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

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
 * Class weights by class name from a spec: `"balanced"` gives
 * `n / (k · n_c)` (classes absent from `labels` get 1); a map or array gives
 * those weights (missing classes get 1).
 *
 * @example
 * ```ts
 * import { resolveClassWeights } from "./train.ts";
 * const w = resolveClassWeights("balanced", ["a", "b"], new Int32Array([0, 0, 0, 1]));
 * console.log(w); // { a: 0.666..., b: 2 }
 * ```
 */
export function resolveClassWeights(
  spec: "balanced" | Record<string, number> | number[],
  classes: readonly string[],
  labels: Int32Array,
): Record<string, number> {
  const out: Record<string, number> = {};
  if (spec === "balanced") {
    const counts = classCounts(labels, classes);
    const n = labels.length;
    for (const c of classes) {
      out[c] = counts[c] > 0 ? n / (classes.length * counts[c]) : 1;
    }
    return out;
  }
  if (typeof spec === "string") {
    fail(`classWeights must be "balanced", a map or an array (got "${spec}")`);
  }
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

function classCounts(
  labels: Int32Array,
  classes: readonly string[],
): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(
    classes.map((c) => [c, 0]),
  );
  for (const l of labels) counts[classes[l]]++;
  return counts;
}

function resolveConfig(options: TrainOptions): RunConfig {
  const size = positiveInteger("size", options.size);
  const classes = options.classes;
  if (!Array.isArray(classes) || classes.length < 2) {
    fail("classes must list at least two class names");
  }
  for (
    const [name, split] of [["train", options.train], [
      "validation",
      options.validation,
    ]] as const
  ) {
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
  const learningRate = options.learningRate ?? 1e-3;
  if (!(learningRate > 0 && Number.isFinite(learningRate))) {
    fail(`learningRate must be a positive number (got ${learningRate})`);
  }
  const seed = options.seed ?? 42;
  if (!Number.isSafeInteger(seed)) {
    fail(`seed must be an integer (got ${seed})`);
  }
  const augment = options.augment ?? true;
  const es = options.earlyStopping ?? {};
  const cosine = options.cosineDecay ?? false;
  if (cosine !== false && options.reduceLrOnPlateau) {
    fail("cosineDecay and reduceLrOnPlateau cannot both be on");
  }
  const rp = options.reduceLrOnPlateau ?? (cosine === false ? {} : false);
  const maxSeconds = options.maxSeconds ?? null;
  if (maxSeconds !== null && !(maxSeconds > 0)) {
    fail(`maxSeconds must be > 0 (got ${maxSeconds})`);
  }
  const config: RunConfig = {
    arch: options.model
      ? (options.arch ?? options.model.name)
      : (options.arch ?? "seedCnn"),
    modelOptions: { ...(options.modelOptions ?? {}) },
    inputSize: size,
    channels: 1,
    classes: [...classes],
    epochs: positiveInteger("epochs", options.epochs ?? 10),
    batchSize: positiveInteger("batchSize", options.batchSize ?? 32),
    learningRate,
    seed,
    augmentation: augment === false
      ? false
      : resolveAugmentOptions(augment === true ? {} : augment),
    classWeights: options.classWeights === undefined
      ? null
      : resolveClassWeights(
        options.classWeights,
        classes,
        options.train.labels,
      ),
    earlyStopping: es === false ? false : {
      patience: positiveInteger("earlyStopping.patience", es.patience ?? 5),
      minDelta: es.minDelta ?? 0,
    },
    reduceLrOnPlateau: rp === false ? false : {
      patience: positiveInteger("reduceLrOnPlateau.patience", rp.patience ?? 2),
      factor: rp.factor ?? 0.5,
      minLr: rp.minLr ?? 1e-5,
      minDelta: rp.minDelta ?? 0,
    },
    cosineDecay: cosine === false ? false : {
      minLr: (cosine === true ? undefined : cosine.minLr) ?? 1e-5,
      over: (cosine === true ? undefined : cosine.over) ?? "epochs",
    },
    maxSeconds,
    weightDecay: options.weightDecay ?? 0,
    labelSmoothing: options.labelSmoothing ?? 0,
    ema: !options.ema ? false : {
      decay: (options.ema === true ? undefined : options.ema.decay) ?? 0.998,
    },
    restoreBestWeights: options.restoreBestWeights ?? true,
    evalBatchSize: positiveInteger(
      "evalBatchSize",
      options.evalBatchSize ?? 64,
    ),
  };
  if (!(config.weightDecay >= 0 && Number.isFinite(config.weightDecay))) {
    fail(`weightDecay must be a number >= 0 (got ${config.weightDecay})`);
  }
  if (!(config.labelSmoothing >= 0 && config.labelSmoothing < 1)) {
    fail(`labelSmoothing must be in [0, 1) (got ${config.labelSmoothing})`);
  }
  if (config.ema && !(config.ema.decay > 0 && config.ema.decay < 1)) {
    fail(`ema.decay must be in (0, 1) (got ${config.ema.decay})`);
  }
  if (
    config.cosineDecay &&
    !(["epochs", "time"] as unknown[]).includes(config.cosineDecay.over)
  ) {
    fail(
      `cosineDecay.over must be "epochs" or "time" (got ${
        JSON.stringify(config.cosineDecay.over)
      })`,
    );
  }
  if (config.cosineDecay && config.cosineDecay.over === "time" && !maxSeconds) {
    fail('cosineDecay over "time" needs a time budget (maxSeconds)');
  }
  if (
    config.reduceLrOnPlateau &&
    !(config.reduceLrOnPlateau.factor > 0 &&
      config.reduceLrOnPlateau.factor < 1)
  ) {
    fail(
      `reduceLrOnPlateau.factor must be in (0, 1) (got ${config.reduceLrOnPlateau.factor})`,
    );
  }
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

/** Differences between a saved run's settings and new ones (epochs may differ). */
function configDifferences(saved: RunConfig, now: RunConfig): string[] {
  const out: string[] = [];
  // Settings added after version 1 of the run format: absent means off.
  const added: Partial<RunConfig> = {
    cosineDecay: false,
    maxSeconds: null,
    ema: false,
    weightDecay: 0,
    labelSmoothing: 0,
  };
  // Cosine decays of runs before `over` existed ran over epochs.
  const upgrade = (key: keyof RunConfig, value: unknown) =>
    key === "cosineDecay" && value
      ? { over: "epochs", ...(value as CosineDecayOptions) }
      : value;
  for (const key of Object.keys(now) as (keyof RunConfig)[]) {
    if (key === "epochs") continue;
    const a = JSON.stringify(
      sortKeys(upgrade(key, key in saved ? saved[key] : added[key])),
    );
    const b = JSON.stringify(sortKeys(now[key]));
    if (a !== b) out.push(`${key}: ${a} in the run, ${b} now`);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Tensors
// ---------------------------------------------------------------------------

/**
 * Builds a `[n, size, size, 1]` float32 batch in [0, 1] from packed uint8
 * pixels and image indices.
 *
 * @example
 * ```ts
 * import { batchTensor } from "./train.ts";
 * const pixels = new Uint8Array([0, 255, 255, 0, 51, 51, 51, 51]);
 * const x = batchTensor(pixels, [1], 2);
 * console.log(x.shape, Array.from(x.dataSync())); // [1, 2, 2, 1] [0.2, 0.2, 0.2, 0.2]
 * x.dispose();
 * ```
 */
export function batchTensor(
  pixels: Uint8Array,
  indices: ArrayLike<number>,
  size: number,
): import("../core/tf.ts").Tensor4D {
  const area = size * size;
  const buf = new Float32Array(indices.length * area);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    buf.set(pixels.subarray(i * area, (i + 1) * area), k * area);
  }
  return tf.tidy(() =>
    tf.div(tf.tensor4d(buf, [indices.length, size, size, 1]), 255)
  );
}

/**
 * Keras' sparse categorical cross-entropy on probabilities, per sample; with
 * `labelSmoothing` ε the target is `(1 − ε)·onehot + ε/k` (Keras'
 * `CategoricalCrossentropy({label_smoothing})`). Tensors are not disposed:
 * call it inside `tf.tidy`.
 *
 * @example
 * ```ts
 * import { tf } from "../core/tf.ts";
 * import { crossEntropy } from "./train.ts";
 *
 * const loss = tf.tidy(() =>
 *   crossEntropy(tf.tensor2d([[0.5, 0.5]]), tf.tensor1d([0], "int32"), {
 *     labelSmoothing: 0.1,
 *   }).arraySync()
 * );
 * console.log(loss); // [0.693…]: a 50/50 guess costs ln 2 whatever the target
 * ```
 */
export function crossEntropy(
  probs: Tensor,
  labels: Tensor,
  options: { labelSmoothing?: number } = {},
): Tensor {
  const eps = 1e-7;
  const smoothing = options.labelSmoothing ?? 0;
  const numClasses = probs.shape[probs.shape.length - 1];
  let p = tf.clipByValue(probs, eps, 1 - eps);
  p = tf.div(p, tf.sum(p, -1, true));
  p = tf.clipByValue(p, eps, 1 - eps);
  let target = tf.oneHot(
    labels as import("../core/tf.ts").Tensor1D,
    numClasses,
  );
  if (smoothing > 0) {
    target = tf.add(tf.mul(target, 1 - smoothing), smoothing / numClasses);
  }
  return tf.neg(tf.sum(tf.mul(target, tf.log(p)), -1));
}

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
  /** Batch size (default 64). */
  batchSize?: number;
}

/**
 * Loss, accuracy and predictions of a model on packed uint8 images, in
 * batches (inference mode: dropout off, batch-norm statistics fixed).
 *
 * @example
 * ```ts ignore
 * import { evaluateSplit } from "./train.ts";
 * const { acc, loss } = await evaluateSplit(model, data.test, { size: 128 });
 * ```
 */
export async function evaluateSplit(
  model: LayersModel,
  split: TrainSplit,
  options: EvaluateSplitOptions,
): Promise<SplitMetrics> {
  const n = split.labels.length;
  const batchSize = options.batchSize ?? 64;
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

interface DropoutLike {
  getClassName(): string;
  name: string;
  seed?: number;
  layers?: DropoutLike[];
}

/** Every Dropout layer of a model, nested models included. */
function dropoutLayers(model: LayersModel): DropoutLike[] {
  const out: DropoutLike[] = [];
  const visit = (layers: DropoutLike[]) => {
    for (const layer of layers) {
      if (layer.getClassName() === "Dropout") out.push(layer);
      if (Array.isArray(layer.layers)) visit(layer.layers);
    }
  };
  visit(model.layers as unknown as DropoutLike[]);
  return out;
}

function seedDropout(
  layers: DropoutLike[],
  seed: number,
  epoch: number,
  batch: number,
): void {
  for (const layer of layers) {
    layer.seed = deriveSeed(seed, `dropout/${epoch}/${batch}/${layer.name}`);
  }
}

/**
 * Seeds every Dropout layer of a model (nested models included) for one
 * training step and returns how many there are. tfjs draws a Dropout mask
 * from `Math.random` unless the layer has a `seed`, and a fixed seed repeats
 * the same mask at every step; a seed derived from `(seed, epoch, batch,
 * layer name)`, set before each step, gives a fresh mask per step that a
 * resumed run draws again. {@linkcode trainModel} calls it before each batch.
 *
 * @example
 * ```ts
 * import { buildModel } from "../model/models.ts";
 * import { seedDropoutLayers } from "./train.ts";
 * const model = buildModel("seedCnn", { inputSize: 32, channels: 1, numClasses: 4 });
 * console.log(seedDropoutLayers(model, { seed: 42, epoch: 0, batch: 0 })); // 1
 * model.dispose();
 * ```
 */
export function seedDropoutLayers(
  model: LayersModel,
  key: { seed: number; epoch: number; batch: number },
): number {
  const layers = dropoutLayers(model);
  seedDropout(layers, key.seed, key.epoch, key.batch);
  return layers.length;
}

function setLearningRate(optimizer: Optimizer, lr: number): void {
  (optimizer as unknown as { learningRate: number }).learningRate = lr;
}

function weightSnapshot(model: LayersModel): Uint8Array {
  return tensorsSnapshot(model.getWeights());
}

/** The values of `tensors`, float32, one after the other. */
function tensorsSnapshot(values: readonly Tensor[]): Uint8Array {
  const total = values.reduce((s, t) => s + t.size, 0);
  const out = new Float32Array(total);
  let offset = 0;
  for (const t of values) {
    out.set(t.dataSync() as Float32Array, offset);
    offset += t.size;
  }
  return new Uint8Array(out.buffer);
}

function restoreSnapshot(model: LayersModel, bytes: Uint8Array): void {
  const tensors = snapshotTensors(bytes, model.weights);
  model.setWeights(tensors);
  tf.dispose(tensors);
}

/** New tensors, shaped like `like`, holding a {@linkcode tensorsSnapshot}. */
function snapshotTensors(
  bytes: Uint8Array,
  like: readonly { shape: readonly (number | null)[]; dtype: string }[],
): Tensor[] {
  const floats = new Float32Array(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  );
  const total = like.reduce(
    (s, w) => s + (w.shape as number[]).reduce((a, b) => a * b, 1),
    0,
  );
  if (total !== floats.length) {
    throw new Error(
      `weights snapshot holds ${floats.length} values, the model ${total}`,
    );
  }
  let offset = 0;
  const tensors = like.map((w) => {
    const n = (w.shape as number[]).reduce((a, b) => a * b, 1);
    const t = tf.tensor(
      floats.subarray(offset, offset + n),
      w.shape as number[],
      w.dtype as "float32",
    );
    offset += n;
    return t;
  });
  return tensors;
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

function isNonEmptyDir(path: string): boolean {
  try {
    return readdirSync(path).length > 0;
  } catch {
    return false;
  }
}

function callbackList(
  callbacks: TrainCallbacks | TrainCallbacks[] | undefined,
): TrainCallbacks[] {
  return callbacks === undefined
    ? []
    : Array.isArray(callbacks)
    ? callbacks
    : [callbacks];
}

function summaryOf(history: EpochRecord[]) {
  const n = history.length;
  const trainSeconds = history.reduce((s, r) => s + r.trainSeconds, 0);
  const seconds = history.reduce((s, r) => s + r.seconds, 0);
  const images = history.reduce(
    (s, r) => s + r.imagesPerSecond * r.trainSeconds,
    0,
  );
  return {
    epochs: n,
    meanEpochSeconds: n ? seconds / n : 0,
    msPerImagePerEpoch: images ? (1000 * trainSeconds) / images : 0,
    meanImagesPerSecond: trainSeconds ? images / trainSeconds : 0,
  };
}

/**
 * Trains a model (see the module documentation for what happens per epoch
 * and what lands in the run folder). Throws before training if the options
 * are invalid, if `runDir` holds a checkpoint and `resume` is not set, or if
 * a resumed run's settings or data differ from the saved ones.
 *
 * @example
 * ```ts ignore
 * import { prepareData } from "../data/prepare.ts";
 * import { trainModel } from "./train.ts";
 * import { terminalProgress } from "./progress.ts";
 * const data = await prepareData({ size: 64 });
 * const result = await trainModel({
 *   train: data.train, validation: data.validation, classes: data.classes,
 *   size: 64, arch: "seedCnn", epochs: 5, runDir: "models/demo",
 *   datasetFingerprint: data.fingerprint, callbacks: terminalProgress(),
 * });
 * console.log(result.best);
 * result.model.dispose();
 * ```
 */
export async function trainModel(options: TrainOptions): Promise<TrainResult> {
  const config = resolveConfig(options);
  const callbacks = callbackList(options.callbacks);
  const log = (message: string) => {
    for (const c of callbacks) c.onLog?.(message);
  };
  const call = async <K extends keyof TrainCallbacks>(
    name: K,
    ...args: Parameters<NonNullable<TrainCallbacks[K]>>
  ) => {
    for (const c of callbacks) {
      const f = c[name] as ((...a: unknown[]) => unknown) | undefined;
      if (f) await f.apply(c, args);
    }
  };
  const paths = options.runDir ? runPaths(options.runDir) : undefined;
  const runName = paths ? basename(paths.root) : undefined;
  const fingerprint = options.datasetFingerprint ?? "";

  // --- An existing run? -----------------------------------------------------
  let saved: TrainState | undefined;
  if (paths) {
    if (await hasCheckpoint(paths.checkpoint)) {
      const state = await readCheckpointState<TrainState>(paths.checkpoint);
      if (!options.resume) {
        throw new Error(
          `${paths.root} already holds a training run (checkpoint after ` +
            `epoch ${state.epochsCompleted} of ${state.config.epochs}); ` +
            "resume it or choose another run folder",
        );
      }
      const diffs = configDifferences(state.config, config);
      if (diffs.length) {
        throw new Error(
          `cannot resume ${paths.root}: the settings differ (${
            diffs.join("; ")
          })`,
        );
      }
      if (state.datasetFingerprint !== fingerprint) {
        throw new Error(
          `cannot resume ${paths.root}: the dataset differs (fingerprint ` +
            `${state.datasetFingerprint.slice(0, 12) || "none"} in the run, ` +
            `${fingerprint.slice(0, 12) || "none"} now)`,
        );
      }
      if (state.trainImages !== options.train.labels.length) {
        throw new Error(
          `cannot resume ${paths.root}: ${state.trainImages} training images ` +
            `in the run, ${options.train.labels.length} now`,
        );
      }
      saved = state;
    } else if (isNonEmptyDir(paths.root) && !options.resume) {
      throw new Error(
        `${paths.root} exists and is not empty (but holds no checkpoint to ` +
          "resume); choose another run folder or remove it",
      );
    }
  }

  if (options.nativeKernels ?? true) useNativeKernels();
  const ownModel = !options.model;
  const model = options.model ?? buildModel(config.arch as Architecture, {
    inputSize: config.inputSize,
    channels: config.channels,
    numClasses: config.classes.length,
    seed: config.seed,
    ...config.modelOptions,
  });
  const optimizer = tf.train.adam(config.learningRate, 0.9, 0.999, 1e-7);
  /** The moving average of `model.weights`, with `ema`. */
  let shadows: Variable[] | undefined;
  try {
    model.compile({
      optimizer,
      loss: "sparseCategoricalCrossentropy",
      metrics: ["accuracy"],
    });
    (model as unknown as { isOptimizerOwned: boolean }).isOptimizerOwned = true;
    const result = await run();
    return result;
  } catch (error) {
    if (ownModel) model.dispose();
    else optimizer.dispose();
    throw error;
  } finally {
    if (shadows) tf.dispose(shadows);
  }

  async function run(): Promise<TrainResult> {
    const now = () => new Date().toISOString();
    const state: TrainState = saved
      ? { ...saved, config: { ...saved.config, epochs: config.epochs } }
      : {
        config,
        datasetFingerprint: fingerprint,
        trainImages: options.train.labels.length,
        epochsCompleted: 0,
        history: [],
        learningRate: config.learningRate,
        best: { loss: null, epoch: 0 },
        earlyStopping: { best: null, wait: 0 },
        plateau: { best: null, wait: 0 },
        stopReason: null,
        seconds: 0,
        startedAt: now(),
        resumes: [],
      };
    let best: Uint8Array | undefined;
    const resumedFrom = saved ? saved.epochsCompleted : 0;
    if (saved && paths) {
      await loadCheckpoint<TrainState>({
        dir: paths.checkpoint,
        model,
        optimizer,
      });
      best = await readCheckpointFile(paths.checkpoint, BEST_WEIGHTS_FILE);
      state.resumes = [...state.resumes, {
        epochsCompleted: state.epochsCompleted,
        at: now(),
      }];
      // A run stopped at its epoch limit may be extended.
      if (
        state.stopReason === "completed" &&
        state.epochsCompleted < config.epochs
      ) {
        state.stopReason = null;
      }
      if (state.stopReason === "aborted") state.stopReason = null;
      log(
        `resuming ${paths.root} after epoch ${state.epochsCompleted} ` +
          `(learning rate ${state.learningRate})`,
      );
    }
    setLearningRate(optimizer, state.learningRate);

    const train = options.train;
    const validation = options.validation;
    const nTrain = train.labels.length;
    const nVal = validation.labels.length;
    const batchSize = config.batchSize;
    const batches = Math.ceil(nTrain / batchSize);
    const size = config.inputSize;
    const weightsByIndex = config.classWeights
      ? config.classes.map((c) => config.classWeights![c])
      : undefined;
    const dropouts = dropoutLayers(model);
    const variables = model.trainableWeights.map((w) =>
      (w as unknown as { read(): Variable }).read()
    );
    const kernels = variables.filter((v) => v.rank >= 2);
    const versionInfo = versions();
    const params = model.countParams();
    const liveWeights = model.weights.map((w) =>
      (w as unknown as { read(): Variable }).read()
    );
    if (config.ema) {
      const savedEma = saved && paths
        ? await readCheckpointFile(paths.checkpoint, EMA_WEIGHTS_FILE)
        : undefined;
      if (saved && !savedEma) {
        throw new Error(
          `cannot resume ${paths!.root}: its checkpoint has no ` +
            `${EMA_WEIGHTS_FILE} (the weights' moving average)`,
        );
      }
      const initial = snapshotTensors(
        savedEma ?? tensorsSnapshot(liveWeights),
        liveWeights,
      );
      shadows = initial.map((t) => tf.variable(t, false));
      tf.dispose(initial);
    }
    /**
     * Puts the moving average into the model; returns the live weights (to
     * put back) and the average (for the checkpoint).
     */
    const swapInAverage = () => {
      if (!shadows) return undefined;
      const live = weightSnapshot(model);
      const average = tensorsSnapshot(shadows);
      restoreSnapshot(model, average);
      return { live, average };
    };

    const manifest = (status: RunManifest["status"]): RunManifest => ({
      format: "brain-mri-cnn/run",
      version: 1,
      run: runName ?? "",
      status,
      startedAt: state.startedAt,
      updatedAt: now(),
      config: state.config,
      data: {
        fingerprint,
        classes: config.classes,
        trainImages: nTrain,
        validationImages: nVal,
        trainCounts: classCounts(train.labels, config.classes),
        validationCounts: classCounts(validation.labels, config.classes),
      },
      model: { arch: config.arch, params },
      versions: versionInfo,
      timings: { trainingSeconds: state.seconds, ...summaryOf(state.history) },
      resumes: state.resumes,
      metrics: {
        final: state.history.at(-1),
        best: state.history.find((r) => r.epoch === state.best.epoch),
        bestEpoch: state.best.epoch,
      },
      extra: { ...(options.manifestExtra ?? {}) },
    });
    const writeRunFiles = async (status: RunManifest["status"]) => {
      if (!paths) return;
      await writeTextAtomic(
        paths.history,
        JSON.stringify(state.history, null, 2) + "\n",
      );
      await writeTextAtomic(
        paths.manifest,
        JSON.stringify(manifest(status), null, 2) + "\n",
      );
    };
    const metadata = (): ModelMetadata => {
      const bestRecord = state.history.find((r) =>
        r.epoch === state.best.epoch
      );
      const training: TrainingSummary = {
        ...(runName ? { run: runName } : {}),
        epochs: state.epochsCompleted,
        bestEpoch: state.best.epoch,
        batchSize,
        learningRate: config.learningRate,
        seed: config.seed,
        augmentation: config.augmentation ? { ...config.augmentation } : false,
        classWeights: config.classWeights,
        ...(state.stopReason ? { stopReason: state.stopReason } : {}),
        trainImages: nTrain,
        validationImages: nVal,
        seconds: state.seconds,
        ...(options.split ? { split: { ...options.split } } : {}),
      };
      const metrics: Record<string, number> = {};
      if (bestRecord) {
        for (const key of ["loss", "acc", "val_loss", "val_acc"] as const) {
          const v = bestRecord[key];
          if (typeof v === "number" && Number.isFinite(v)) metrics[key] = v;
        }
      }
      return {
        format: MODEL_FORMAT,
        formatVersion: MODEL_FORMAT_VERSION,
        classes: config.classes,
        inputSize: size,
        channels: config.channels,
        preprocessing: defaultPreprocessing(size),
        arch: config.arch,
        training,
        datasetFingerprint: fingerprint,
        metrics,
        createdAt: now(),
        versions: versionInfo,
      };
    };

    if (paths) {
      await Deno.mkdir(paths.root, { recursive: true });
      await writeRunFiles("running");
    }
    await call("onTrainBegin", {
      ...(runName ? { run: runName } : {}),
      config: state.config,
      startEpoch: state.epochsCompleted,
      batchesPerEpoch: batches,
      trainImages: nTrain,
      validationImages: nVal,
      history: [...state.history],
      learningRate: state.learningRate,
    });

    const labelsTensorOf = (indices: Uint32Array) => {
      const l = new Int32Array(indices.length);
      for (let k = 0; k < indices.length; k++) l[k] = train.labels[indices[k]];
      return l;
    };

    let aborted = false;
    for (
      let epoch = state.epochsCompleted;
      epoch < config.epochs && state.stopReason === null;
      epoch++
    ) {
      if (config.cosineDecay) {
        const byTime = config.cosineDecay.over === "time";
        state.learningRate = cosineLearningRate({
          learningRate: config.learningRate,
          minLr: config.cosineDecay.minLr,
          epoch: byTime ? state.seconds : epoch,
          epochs: byTime ? config.maxSeconds! : config.epochs,
        });
        setLearningRate(optimizer, state.learningRate);
      }
      await call("onEpochBegin", epoch, config.epochs);
      const t0 = performance.now();
      const order = new Uint32Array(
        rng(deriveSeed(config.seed, `shuffle/${epoch}`)).shuffle(
          Array.from({ length: nTrain }, (_, i) => i),
        ),
      );
      let lossSum = 0;
      let correctSum = 0;
      let seen = 0;
      for (let b = 0; b < batches; b++) {
        if (options.signal?.aborted) {
          aborted = true;
          break;
        }
        const indices = order.subarray(
          b * batchSize,
          Math.min(nTrain, (b + 1) * batchSize),
        );
        const n = indices.length;
        const raw = batchTensor(train.pixels, indices, size);
        let x = raw;
        if (config.augmentation) {
          x = applyAugmentation(raw, {
            ...config.augmentation,
            seed: config.seed,
            epoch,
            batch: b,
          });
          raw.dispose();
        }
        const labels = labelsTensorOf(indices);
        const y = tf.tensor1d(labels, "int32");
        const w = weightsByIndex
          ? tf.tensor1d(Float32Array.from(labels, (l) => weightsByIndex[l]))
          : undefined;
        seedDropout(dropouts, config.seed, epoch, b);
        let correct: Tensor | undefined;
        const lossT = optimizer.minimize(
          () => {
            const probs = model.apply(x, { training: true }) as Tensor;
            let perSample = crossEntropy(probs, y, {
              labelSmoothing: config.labelSmoothing,
            });
            if (w) perSample = tf.mul(perSample, w);
            correct = tf.keep(
              tf.sum(tf.cast(tf.equal(tf.argMax(probs, -1), y), "float32")),
            );
            return tf.mean(perSample) as Scalar;
          },
          true,
          variables,
        )!;
        const [lossV, correctV] = await Promise.all([
          lossT.data(),
          correct!.data(),
        ]);
        tf.dispose([x, y, lossT, correct!]);
        if (w) w.dispose();
        if (config.weightDecay > 0) {
          const keep = 1 - state.learningRate * config.weightDecay;
          tf.tidy(() => kernels.forEach((v) => v.assign(tf.mul(v, keep))));
        }
        if (shadows && config.ema) {
          const updates = state.emaUpdates ?? 0;
          const d = Math.min(config.ema.decay, (1 + updates) / (10 + updates));
          tf.tidy(() => {
            shadows!.forEach((v, i) =>
              v.assign(tf.add(tf.mul(v, d), tf.mul(liveWeights[i], 1 - d)))
            );
          });
          state.emaUpdates = updates + 1;
        }
        lossSum += lossV[0] * n;
        correctSum += correctV[0];
        seen += n;
        const seconds = (performance.now() - t0) / 1000;
        await call("onBatchEnd", {
          epoch,
          batch: b,
          batches,
          epochs: config.epochs,
          loss: lossSum / seen,
          acc: correctSum / seen,
          seen,
          seconds,
          imagesPerSecond: seen / seconds,
        });
        if (!Number.isFinite(lossV[0])) {
          throw new Error(
            `trainModel: the loss became ${lossV[0]} at epoch ${epoch + 1}, ` +
              `batch ${b + 1} (learning rate ${state.learningRate} too high?)`,
          );
        }
      }
      if (aborted) break;
      const trainSeconds = (performance.now() - t0) / 1000;
      // Validation, the best snapshot and the saved model use the average.
      const swap = swapInAverage();
      const val = nVal
        ? await evaluateSplit(model, validation, {
          size,
          batchSize: config.evalBatchSize,
        })
        : undefined;
      const record: EpochRecord = {
        epoch: epoch + 1,
        loss: lossSum / seen,
        acc: correctSum / seen,
        val_loss: val ? val.loss : null,
        val_acc: val ? val.acc : null,
        lr: state.learningRate,
        seconds: 0,
        trainSeconds,
        imagesPerSecond: seen / trainSeconds,
      };
      state.history.push(record);
      state.epochsCompleted = epoch + 1;
      const monitored = record.val_loss ?? record.loss;

      const improved = state.best.loss === null || monitored < state.best.loss;
      if (improved) {
        state.best = { loss: monitored, epoch: epoch + 1 };
        best = weightSnapshot(model);
      }
      let stopReason: StopReason | undefined;
      if (config.earlyStopping) {
        const es = state.earlyStopping;
        if (
          es.best === null ||
          monitored < es.best - config.earlyStopping.minDelta
        ) {
          state.earlyStopping = { best: monitored, wait: 0 };
        } else {
          state.earlyStopping = { best: es.best, wait: es.wait + 1 };
          if (state.earlyStopping.wait >= config.earlyStopping.patience) {
            stopReason = "early-stopping";
          }
        }
      }
      if (config.reduceLrOnPlateau) {
        const rp = config.reduceLrOnPlateau;
        const p = state.plateau;
        if (p.best === null || monitored < p.best - rp.minDelta) {
          state.plateau = { best: monitored, wait: 0 };
        } else if (p.wait + 1 >= rp.patience) {
          state.plateau = { best: p.best, wait: 0 };
          if (state.learningRate > rp.minLr) {
            const next = Math.max(state.learningRate * rp.factor, rp.minLr);
            log(
              `epoch ${epoch + 1}: validation loss has not improved for ` +
                `${rp.patience} epochs; learning rate ${state.learningRate} → ${next}`,
            );
            state.learningRate = next;
            setLearningRate(optimizer, next);
          }
        } else {
          state.plateau = { best: p.best, wait: p.wait + 1 };
        }
      }
      if (!stopReason && epoch + 1 >= config.epochs) stopReason = "completed";
      if (!stopReason && config.maxSeconds !== null) {
        const spent = (performance.now() - t0) / 1000;
        if (state.seconds + 2 * spent > config.maxSeconds) {
          stopReason = "time-budget";
        }
      }
      state.stopReason = stopReason ?? null;

      if (paths && improved) {
        await saveModel({ model, dir: paths.model, metadata: metadata() });
      }
      // Training goes on from the live weights.
      if (swap) restoreSnapshot(model, swap.live);
      record.seconds = (performance.now() - t0) / 1000;
      state.seconds += record.seconds;
      if (paths) {
        await saveCheckpoint({
          dir: paths.checkpoint,
          model,
          optimizer,
          state,
          extraFiles: {
            ...(best ? { [BEST_WEIGHTS_FILE]: best } : {}),
            ...(swap ? { [EMA_WEIGHTS_FILE]: swap.average } : {}),
          },
        });
        await writeRunFiles("running");
      }
      await call("onEpochEnd", {
        record,
        history: [...state.history],
        epochs: config.epochs,
        improved,
        best: state.history.find((r) => r.epoch === state.best.epoch)!,
        nextLearningRate: state.learningRate,
        ...(stopReason ? { stopReason } : {}),
      });
    }

    const stopReason: StopReason = aborted
      ? "aborted"
      : state.stopReason ?? "completed";
    if (config.restoreBestWeights && best) restoreSnapshot(model, best);
    else if (shadows) restoreSnapshot(model, tensorsSnapshot(shadows));
    if (paths) {
      const finalState = { ...state, stopReason };
      Object.assign(state, finalState);
      if (config.restoreBestWeights && best) {
        await saveModel({ model, dir: paths.model, metadata: metadata() });
      }
      await writeRunFiles(stopReason);
    }
    const bestRecord = state.history.find((r) => r.epoch === state.best.epoch);
    await call("onTrainEnd", {
      history: [...state.history],
      ...(bestRecord ? { best: bestRecord } : {}),
      stopReason,
      seconds: state.seconds,
    });
    return {
      model,
      optimizer,
      history: state.history,
      ...(bestRecord ? { best: bestRecord } : {}),
      stopReason,
      config: state.config,
      resumedFrom,
      seconds: state.seconds,
      ...(paths ? { runDir: paths.root } : {}),
    };
  }
}

/**
 * Reads a run folder's `manifest.json`.
 *
 * @example
 * ```ts ignore
 * import { readRunManifest } from "./train.ts";
 * const manifest = await readRunManifest("models/resnet-128-e1");
 * console.log(manifest.metrics.best);
 * ```
 */
export async function readRunManifest(runDir: string): Promise<RunManifest> {
  const path = runPaths(runDir).manifest;
  if (!existsSync(path)) {
    throw new Error(`${runDir}: no ${RUN_FILES.manifest} (not a run folder?)`);
  }
  return JSON.parse(await Deno.readTextFile(path)) as RunManifest;
}

/**
 * Adds entries to the `extra` section of a run's manifest (e.g. test-set
 * metrics computed after training), atomically.
 *
 * @example
 * ```ts ignore
 * import { updateRunManifest } from "./train.ts";
 * await updateRunManifest("models/resnet-128-e1", { test: { acc: 0.95 } });
 * ```
 */
export async function updateRunManifest(
  runDir: string,
  extra: Record<string, unknown>,
): Promise<RunManifest> {
  const manifest = await readRunManifest(runDir);
  manifest.extra = { ...manifest.extra, ...extra };
  manifest.updatedAt = new Date().toISOString();
  await writeTextAtomic(
    runPaths(runDir).manifest,
    JSON.stringify(manifest, null, 2) + "\n",
  );
  return manifest;
}
