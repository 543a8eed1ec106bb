/**
 * `deno task train`: prepares the data, trains a model into a run folder with
 * live progress, evaluates the best model on the held-out test split (full
 * and de-duplicated) and prints a summary.
 *
 * ```sh
 * deno task train -- --data DIR --arch seedCnn --size 128 --epochs 10 --out models/NAME \
 *   [--batch-size 32] [--lr 0.001] [--seed 42] [--val 0.15] [--test 0.15] \
 *   [--no-augment] [--class-weights balanced] [--patience 5] [--lr-patience 2] [--resume]
 * ```
 *
 * Every flag, its type, default and help is declared once in
 * {@linkcode TRAIN_CLI}; `deno task train --help` prints the usage generated
 * from it. An `--out` folder that already holds a run is refused unless
 * `--resume` is given; then training continues from its last completed epoch
 * (`--epochs` may be raised; other settings must match). Ctrl-C stops after
 * the current batch; the last checkpoint stays, and `--resume` continues.
 *
 * The command runs as named stages: {@linkcode parseTrainArgs} parses the
 * command line and checks the combinations of flags, then `main` checks the
 * run folder, prepares the data, trains, evaluates the test split and writes
 * the run files.
 *
 * @module
 */
import { existsSync, readdirSync } from "node:fs";
import { relative, resolve } from "node:path";
import {
  type AugmentOptions,
  DEFAULT_AUGMENT_OPTIONS,
  resolveAugmentOptions,
} from "../data/augment.ts";
import {
  type FlagValues,
  parseFlags,
  runCli,
  taskArgs,
  UsageError,
} from "../core/cli.ts";
import { hasCheckpoint } from "./checkpoint.ts";
import { readTrainState } from "./resume.ts";
import {
  prepareData,
  type PreparedData,
  resolveDataSource,
} from "../data/prepare.ts";
import { type Architecture, ARCHITECTURES } from "../model/models.ts";
import { projectPaths } from "../core/paths.ts";
import { formatDuration, terminalProgress } from "./progress.ts";
import { updateModelMetadata } from "../model/saved_model.ts";
import { DEFAULTS } from "../core/defaults.ts";
import { DEFAULT_NEAR_THRESHOLD } from "../data/audit.ts";
import { type Clahe, claheProblems } from "../core/clahe.ts";
import {
  datasetRecord,
  evaluateSplit,
  runPaths,
  trainModel,
  type TrainOptions,
  type TrainResult,
  type TrainSplit,
  updateRunManifest,
} from "./train.ts";

/** The training command line: every flag with its type, default and help. */
export const TRAIN_CLI = {
  command: "deno task train",
  summary:
    "Prepares the data, trains a model into a run folder with live progress,\n" +
    "evaluates the best model on the held-out test split (full and\n" +
    "de-duplicated) and prints a summary.",
  flags: {
    data: {
      type: "string",
      value: "DIR",
      defaultText: "BRAIN_MRI_DATA, data/, else synthetic",
      help: "dataset root (Kaggle layout or class\nfolders)",
    },
    arch: {
      type: "string",
      choices: Object.keys(ARCHITECTURES) as Architecture[],
      default: DEFAULTS.arch,
      help: "architecture",
    },
    size: {
      type: "integer",
      default: DEFAULTS.imageSize,
      help: "image side in pixels",
    },
    clahe: {
      type: "number",
      value: "CLIP",
      default: 0,
      help: "contrast-limited adaptive histogram equalisation\n" +
        "of every resized scan, clipped at CLIP times the\n" +
        "mean bin count (e.g. 2; as OpenCV's createCLAHE);\n" +
        "recorded in the model, so predict and serve\n" +
        "apply it too; 0 = off",
    },
    "clahe-tiles": {
      type: "integer",
      value: "N",
      default: 8,
      help: "CLAHE's tiles per side (N×N)",
    },
    epochs: { type: "integer", default: DEFAULTS.epochs, help: "most epochs" },
    out: {
      type: "string",
      value: "DIR",
      defaultText: "models/<arch>-<size>",
      help: "run folder",
    },
    "batch-size": {
      type: "integer",
      default: DEFAULTS.batchSize,
      help: "batch size",
    },
    lr: {
      type: "number",
      default: DEFAULTS.learningRate,
      help: "Adam's learning rate",
    },
    seed: {
      type: "integer",
      default: DEFAULTS.seed,
      help: "seed of the split and of training",
    },
    "train-seed": {
      type: "integer",
      defaultText: "--seed",
      help: "seed of training alone (initial weights, order,\n" +
        "augmentation, dropout), the split keeping --seed:\n" +
        "runs that differ only here share their splits\n" +
        "and can form an ensemble",
    },
    val: {
      type: "number",
      default: DEFAULTS.validationFraction,
      help: "validation fraction",
    },
    test: {
      type: "number",
      default: DEFAULTS.testFraction,
      help: "test fraction carved from Training",
    },
    "group-radius": {
      type: "integer",
      value: "BITS",
      default: DEFAULT_NEAR_THRESHOLD,
      help: "scans whose perceptual hashes differ by at\n" +
        "most BITS of 64 (chained) stay in one split:\n" +
        "the default keeps near-duplicates together; a\n" +
        "wider radius also keeps look-alike slices\n" +
        "(neighbours of one patient) together",
    },
    "no-augment": { type: "boolean", help: "train without augmentation" },
    augment: {
      type: "string",
      value: "JSON",
      help: "augmentation ranges instead of the defaults,\n" +
        `e.g. '{"rotation":15,"zoom":0.15}'; keys:\n${
          Object.keys(DEFAULT_AUGMENT_OPTIONS).join(", ")
        }`,
    },
    "class-weights": {
      type: "string",
      value: "W",
      help: '"balanced", or weights "glioma=1.2,notumor=0.8"',
    },
    patience: {
      type: "integer",
      defaultText: `${DEFAULTS.earlyStoppingPatience}; 0 = off`,
      help: "early-stopping patience, epochs",
    },
    "lr-patience": {
      type: "integer",
      defaultText: `${DEFAULTS.plateauPatience}; 0 = off`,
      help: "epochs without improvement before halving the\nlearning rate",
    },
    cosine: {
      type: "boolean",
      help: "cosine learning-rate decay over --epochs instead\n" +
        "of halving on plateaus",
    },
    "cosine-over": {
      type: "string",
      choices: ["epochs", "time"],
      defaultText: "epochs",
      help: "what the cosine decay runs over: --epochs, or\n" +
        "the --max-minutes budget (reaching its floor as\n" +
        "it runs out); implies --cosine",
    },
    ema: {
      type: "number",
      value: "DECAY",
      help: "validate, select and save an exponential moving\n" +
        `average of the weights (e.g. ${DEFAULTS.emaDecay}), updated after\n` +
        "every batch",
    },
    "weight-decay": {
      type: "number",
      default: 0,
      help: "decoupled weight decay of the kernels (AdamW\n" +
        "style: each step scales them by 1 - lr·X),\n0 = off",
    },
    "label-smoothing": {
      type: "number",
      value: "E",
      default: 0,
      help: "train against targets 1 - E + E/k and E/k\n" +
        "instead of one-hot (e.g. 0.1), 0 = off; the\n" +
        "validation loss stays cross-entropy",
    },
    mixup: {
      type: "number",
      value: "ALPHA",
      default: 0,
      help: "blend each training batch with a shuffle of\n" +
        "itself, images and labels, by a weight drawn\n" +
        "from Beta(ALPHA, ALPHA) (e.g. 0.2), 0 = off",
    },
    "max-minutes": {
      type: "number",
      value: "M",
      help: "training time budget: stop after the epoch past\n" +
        "which one more would exceed it",
    },
    refit: {
      type: "boolean",
      help: "final fit of settings already chosen on\n" +
        "validation: train on the training and validation\n" +
        "splits together (same test split), no validation,\n" +
        "no early stopping; needs --cosine; the epoch with\n" +
        "the lowest training loss is kept",
    },
    "model-options": {
      type: "string",
      value: "JSON",
      help: "extra options for the architecture, e.g.\n" +
        `'{"filters":[32,64,128,256]}'`,
    },
    "no-test": {
      type: "boolean",
      help: "do not evaluate the test split (for experiments:\n" +
        "select on validation, test only the final choice)",
    },
    resume: {
      type: "boolean",
      help: "continue the run in --out from its checkpoint",
    },
  },
} as const;

type TrainFlags = FlagValues<typeof TRAIN_CLI>;

/** Parsed command line. */
export interface TrainCliOptions {
  /** Dataset root, or undefined for the resolved default. */
  data?: string;
  /** Architecture. */
  arch: Architecture;
  /** Image side. */
  size: number;
  /** Epochs. */
  epochs: number;
  /** Run folder, absolute. */
  out: string;
  /** Batch size. */
  batchSize: number;
  /** Learning rate. */
  lr: number;
  /** Seed of the split (and of training, unless `trainSeed` is given). */
  seed: number;
  /** Seed of training alone, when it differs from the split's. */
  trainSeed?: number;
  /** Validation fraction. */
  val: number;
  /** Test fraction. */
  test: number;
  /** Grouping radius of the split, in pHash bits. */
  groupRadius: number;
  /** Augmentation: on with the default ranges, off, or these ranges. */
  augment: boolean | AugmentOptions;
  /** Class weights spec. */
  classWeights?: "balanced" | Record<string, number>;
  /** Early-stopping patience (0 = off). */
  patience: number;
  /** Reduce-on-plateau patience (0 = off). */
  lrPatience: number;
  /** Cosine learning-rate decay instead of reduce-on-plateau. */
  cosine: boolean;
  /** What the cosine decay runs over: epochs or the time budget. */
  cosineOver: "epochs" | "time";
  /** Training time budget in minutes, if any. */
  maxMinutes?: number;
  /** Decay of the weights' moving average, if one is kept. */
  ema?: number;
  /** Decoupled weight decay (0 = off). */
  weightDecay: number;
  /** Label smoothing of the training loss (0 = off). */
  labelSmoothing: number;
  /** Mixup's α (0 = off). */
  mixup: number;
  /** CLAHE of every scan, or none. */
  clahe?: Clahe;
  /** Train on training + validation, without validation (a final refit). */
  refit: boolean;
  /** Extra options for the architecture's factory. */
  modelOptions: Record<string, unknown>;
  /** Evaluate the held-out test split at the end (off for experiments). */
  evalTest: boolean;
  /** Resume. */
  resume: boolean;
}

// ---------------------------------------------------------------- parse

function atLeast(value: number, flag: string, min: number): number {
  if (value < min) {
    throw new UsageError(
      `--${flag} must be an integer >= ${min} (got "${value}")`,
    );
  }
  return value;
}

function fraction(value: number, flag: string): number {
  if (!(value >= 0 && value < 1)) {
    throw new UsageError(
      `--${flag} must be a number in [0, 1) (got "${value}")`,
    );
  }
  return value;
}

/** A JSON object given on the command line, or a usage error. */
function jsonObject(text: string, flag: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UsageError(`--${flag} must be a JSON object (got "${text}")`);
  }
  return value as Record<string, unknown>;
}

/** The augmentation options there are: the keys of the defaults. */
const AUGMENT_KEYS = Object.keys(DEFAULT_AUGMENT_OPTIONS);

function augmentArg(text: string): AugmentOptions {
  const value = jsonObject(text, "augment");
  const unknown = Object.keys(value).filter((k) => !AUGMENT_KEYS.includes(k));
  if (unknown.length) {
    throw new UsageError(
      `--augment: unknown key ${unknown.map((k) => `"${k}"`).join(", ")} ` +
        `(known: ${AUGMENT_KEYS.join(", ")})`,
    );
  }
  try {
    resolveAugmentOptions(value as AugmentOptions);
  } catch (error) {
    throw new UsageError(
      `--augment: ${error instanceof Error ? error.message : error}`,
    );
  }
  return value as AugmentOptions;
}

function classWeightsArg(
  text: string | undefined,
): TrainCliOptions["classWeights"] {
  if (text === undefined || text === "balanced") return text;
  const weights: Record<string, number> = {};
  for (const part of text.split(",")) {
    const [name, w] = part.split("=");
    const weight = Number(w);
    if (!name || !(weight > 0)) {
      throw new UsageError(
        `--class-weights must be "balanced" or "class=weight,..." (got "${text}")`,
      );
    }
    weights[name.trim()] = weight;
  }
  return weights;
}

function augmentation(values: TrainFlags): boolean | AugmentOptions {
  if (values.augment === undefined) return !values["no-augment"];
  if (values["no-augment"]) {
    throw new UsageError("--augment and --no-augment cannot be combined");
  }
  return augmentArg(values.augment);
}

/** The numeric flags a type cannot fully check: ranges and bounds. */
function checkNumbers(values: TrainFlags) {
  atLeast(values.size, "size", 1);
  atLeast(values.epochs, "epochs", 1);
  atLeast(values["batch-size"], "batch-size", 1);
  const { lr, seed, ema } = values;
  if (!(lr > 0)) {
    throw new UsageError(`--lr must be a positive number (got "${lr}")`);
  }
  if (!Number.isSafeInteger(seed)) {
    throw new UsageError(`--seed must be an integer (got "${seed}")`);
  }
  const trainSeed = values["train-seed"];
  if (trainSeed !== undefined && !Number.isSafeInteger(trainSeed)) {
    throw new UsageError(
      `--train-seed must be an integer (got "${trainSeed}")`,
    );
  }
  const maxMinutes = values["max-minutes"];
  if (maxMinutes !== undefined && !(maxMinutes > 0)) {
    throw new UsageError(
      `--max-minutes must be a positive number (got "${maxMinutes}")`,
    );
  }
  if (ema !== undefined && !(ema > 0 && ema < 1)) {
    throw new UsageError(`--ema must be a decay in (0, 1) (got "${ema}")`);
  }
  const weightDecay = values["weight-decay"];
  if (!(weightDecay >= 0)) {
    throw new UsageError(
      `--weight-decay must be a number >= 0 (got "${weightDecay}")`,
    );
  }
  const smoothing = values["label-smoothing"];
  if (!(smoothing >= 0 && smoothing < 1)) {
    throw new UsageError(
      `--label-smoothing must be in [0, 1) (got "${smoothing}")`,
    );
  }
  if (!(values.mixup >= 0 && Number.isFinite(values.mixup))) {
    throw new UsageError(
      `--mixup must be a number >= 0 (got "${values.mixup}")`,
    );
  }
  const clahe = claheArg(values);
  if (clahe) {
    const [problem] = claheProblems(clahe, values.size);
    if (problem) {
      throw new UsageError(
        problem.replace("clahe.clipLimit", "--clahe")
          .replace("clahe.tiles", "--clahe-tiles"),
      );
    }
  }
  const val = fraction(values.val, "val");
  const test = fraction(values.test, "test");
  if (val + test >= 1) {
    throw new UsageError("--val plus --test must be below 1");
  }
  const radius = values["group-radius"];
  if (!(radius >= 0 && radius <= 64)) {
    throw new UsageError(
      `--group-radius must be a whole number of bits in 0..64 (got "${radius}")`,
    );
  }
}

/** The CLAHE the flags ask for, or none (`--clahe 0`). */
function claheArg(values: TrainFlags): Clahe | undefined {
  return values.clahe === 0
    ? undefined
    : { clipLimit: values.clahe, tiles: values["clahe-tiles"] };
}

/**
 * The learning-rate schedule and stopping flags, checked together: a cosine
 * decay replaces the plateau cuts, a time-long one needs a budget, and a
 * refit (no validation) needs a cosine decay and no early stopping.
 */
function schedule(values: TrainFlags) {
  const cosineOver = values["cosine-over"] ?? "epochs";
  if (cosineOver === "time" && values["max-minutes"] === undefined) {
    throw new UsageError("--cosine-over time needs --max-minutes");
  }
  const cosine = values.cosine || values["cosine-over"] !== undefined;
  if (cosine && values["lr-patience"] !== undefined) {
    throw new UsageError("--cosine and --lr-patience cannot be combined");
  }
  const refit = values.refit;
  if (refit && !cosine) {
    throw new UsageError(
      "--refit needs --cosine (or --cosine-over): without validation there " +
        "is no loss for reduce-on-plateau to watch",
    );
  }
  if (refit && values.patience !== undefined && values.patience !== 0) {
    throw new UsageError(
      "--refit trains without validation: early stopping is off (drop --patience)",
    );
  }
  if (refit && values.val === 0) {
    throw new UsageError(
      "--refit needs a validation split to merge (--val > 0)",
    );
  }
  const patience = values.patience ?? DEFAULTS.earlyStoppingPatience;
  const lrPatience = values["lr-patience"] ?? DEFAULTS.plateauPatience;
  return {
    cosine,
    cosineOver,
    refit,
    patience: refit ? 0 : atLeast(patience, "patience", 0),
    lrPatience: cosine ? 0 : atLeast(lrPatience, "lr-patience", 0),
  };
}

/**
 * Parses the training command line (a leading `--` is dropped) and checks
 * the combinations of flags. Throws `UsageError` (from `../core/cli.ts`) on
 * any mistake.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTrainArgs } from "./train_cli.ts";
 * const o = parseTrainArgs(["--", "--arch", "vgg", "--epochs", "3", "--out", "runs/vgg"]);
 * assert.equal(o.arch, "vgg");
 * assert.equal(o.epochs, 3);
 * assert.equal(o.batchSize, 32);
 * assert.ok(o.out.endsWith("runs/vgg"));
 * assert.throws(() => parseTrainArgs(["--cosine-over", "time"]), /needs --max-minutes/);
 * ```
 */
export function parseTrainArgs(args: readonly string[]): TrainCliOptions {
  return trainCliOptions(parseFlags(TRAIN_CLI, args).values);
}

/** The parsed flags, checked together, as {@linkcode TrainCliOptions}. */
function trainCliOptions(values: TrainFlags): TrainCliOptions {
  checkNumbers(values);
  const plan = schedule(values);
  const classWeights = classWeightsArg(values["class-weights"]);
  const { arch, size } = values;
  return {
    ...(values.data !== undefined ? { data: resolve(values.data) } : {}),
    arch,
    size,
    epochs: values.epochs,
    out: resolve(values.out ?? `${projectPaths().models}/${arch}-${size}`),
    batchSize: values["batch-size"],
    lr: values.lr,
    seed: values.seed,
    ...(values["train-seed"] !== undefined &&
        values["train-seed"] !== values.seed
      ? { trainSeed: values["train-seed"] }
      : {}),
    val: values.val,
    test: values.test,
    groupRadius: values["group-radius"],
    augment: augmentation(values),
    ...(classWeights ? { classWeights } : {}),
    ...plan,
    ...(values["max-minutes"] !== undefined
      ? { maxMinutes: values["max-minutes"] }
      : {}),
    ...(values.ema !== undefined ? { ema: values.ema } : {}),
    weightDecay: values["weight-decay"],
    labelSmoothing: values["label-smoothing"],
    mixup: values.mixup,
    ...(claheArg(values) ? { clahe: claheArg(values) } : {}),
    modelOptions: values["model-options"] === undefined
      ? {}
      : jsonObject(values["model-options"], "model-options"),
    evalTest: !values["no-test"],
    resume: values.resume,
  };
}

// ---------------------------------------------------------------- stages

function pct(x: number): string {
  return Number.isFinite(x) ? `${(100 * x).toFixed(2)} %` : "–";
}

function shown(path: string): string {
  const rel = relative(Deno.cwd(), path);
  return rel && !rel.startsWith("..") ? rel : path;
}

/**
 * Why the run folder cannot be used, or `null` when it can: a folder holding
 * a run is refused without `--resume`, a non-empty folder without a
 * checkpoint always.
 */
async function runFolderProblem(o: TrainCliOptions): Promise<string | null> {
  const paths = runPaths(o.out);
  if (await hasCheckpoint(paths.checkpoint)) {
    if (o.resume) return null;
    const state = await readTrainState(paths.checkpoint);
    return `${shown(paths.root)} already holds a training run ` +
      `(${state.config.arch} ${state.config.inputSize}px, checkpoint after ` +
      `epoch ${state.epochsCompleted} of ${state.config.epochs}). ` +
      "Pass --resume to continue it, or choose another --out.";
  }
  if (existsSync(paths.root) && readdirSync(paths.root).length > 0) {
    return `${shown(paths.root)} exists and holds no checkpoint to resume; ` +
      "choose another --out or remove it.";
  }
  if (o.resume) {
    console.log(
      `nothing to resume in ${shown(paths.root)}: starting a new run`,
    );
  }
  return null;
}

/** Prepares (decodes, caches, splits) the dataset and says what it holds. */
async function prepareTrainingData(
  o: TrainCliOptions,
): Promise<PreparedData> {
  const data = await prepareData({
    source: o.data ?? await resolveDataSource(),
    size: o.size,
    seed: o.seed,
    validation: o.val,
    test: o.test,
    nearThreshold: o.groupRadius,
    clahe: o.clahe,
    log: (m) => console.log(m),
  });
  if (data.source.synthetic) console.log(`data: ${data.source.reason}`);
  for (const e of data.errors) console.warn(`skipped ${e.path}: ${e.reason}`);
  console.log(
    `data: ${data.source.root} — ${data.classes.length} classes, ` +
      `train ${data.train.labels.length}, validation ${data.validation.labels.length}, ` +
      `test ${data.test.labels.length} (${data.testDeduplicated.labels.length} after de-duplication)`,
  );
  return data;
}

/** One split holding the images of `a` then those of `b`. */
function mergeSplits(a: TrainSplit, b: TrainSplit): TrainSplit {
  const pixels = new Uint8Array(a.pixels.length + b.pixels.length);
  pixels.set(a.pixels);
  pixels.set(b.pixels, a.pixels.length);
  const labels = new Int32Array(a.labels.length + b.labels.length);
  labels.set(a.labels);
  labels.set(b.labels, a.labels.length);
  return { pixels, labels };
}

/** What is trained and validated on: a refit trains on both, validates none. */
function trainingSplits(o: TrainCliOptions, data: PreparedData) {
  if (!o.refit) return { train: data.train, validation: data.validation };
  const train = mergeSplits(data.train, data.validation);
  console.log(
    `refit: training on train + validation (${train.labels.length} images), ` +
      "no validation; the test split is unchanged",
  );
  return {
    train,
    validation: { pixels: new Uint8Array(0), labels: new Int32Array(0) },
  };
}

/** `trainModel`'s options for this command line, data and run folder. */
function trainOptions(
  o: TrainCliOptions,
  data: PreparedData,
  signal: AbortSignal,
): TrainOptions {
  const split = {
    validation: o.val,
    test: o.test,
    ...(o.refit ? { validationTrained: true } : {}),
    ...(o.groupRadius !== DEFAULT_NEAR_THRESHOLD
      ? { groupRadius: o.groupRadius }
      : {}),
    ...(o.trainSeed !== undefined ? { seed: o.seed } : {}),
  };
  return {
    ...trainingSplits(o, data),
    classes: data.classes,
    size: o.size,
    arch: o.arch,
    modelOptions: o.modelOptions,
    epochs: o.epochs,
    batchSize: o.batchSize,
    learningRate: o.lr,
    seed: o.trainSeed ?? o.seed,
    augment: o.augment,
    ...(o.classWeights ? { classWeights: o.classWeights } : {}),
    earlyStopping: o.patience > 0 ? { patience: o.patience } : false,
    reduceLrOnPlateau: o.lrPatience > 0 ? { patience: o.lrPatience } : false,
    cosineDecay: o.cosine ? { over: o.cosineOver } : false,
    ...(o.ema !== undefined ? { ema: { decay: o.ema } } : {}),
    weightDecay: o.weightDecay,
    labelSmoothing: o.labelSmoothing,
    mixup: o.mixup,
    clahe: data.clahe,
    ...(o.maxMinutes !== undefined ? { maxSeconds: o.maxMinutes * 60 } : {}),
    runDir: runPaths(o.out).root,
    resume: o.resume,
    datasetFingerprint: data.fingerprint,
    split,
    manifestExtra: {
      dataset: datasetRecord({ ...data.source, fingerprint: data.fingerprint }),
      split: {
        seed: o.seed,
        ...split,
        testImages: data.test.labels.length,
        testDeduplicatedImages: data.testDeduplicated.labels.length,
      },
    },
    callbacks: terminalProgress(),
    signal,
  };
}

/**
 * Trains with live progress. The first Ctrl-C stops after the current batch
 * (the checkpoint stays for `--resume`); a second one quits at once.
 */
async function train(
  o: TrainCliOptions,
  data: PreparedData,
): Promise<TrainResult> {
  const controller = new AbortController();
  const onInterrupt = () => {
    if (controller.signal.aborted) Deno.exit(130);
    console.error(
      "\ninterrupted: stopping after this batch (Ctrl-C again to quit now); " +
        "continue later with --resume",
    );
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    return await trainModel(trainOptions(o, data, controller.signal));
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

/** The test split's metrics (full and de-duplicated) and their summary line. */
interface TestOutcome {
  /** The finite metrics, or `null` when the test split was not evaluated. */
  metrics: Record<string, number> | null;
  /** One line for the summary. */
  line: string;
}

/** Evaluates the trained model on the test split, full and de-duplicated. */
async function evaluateTestSplit(
  o: TrainCliOptions,
  result: TrainResult,
  data: PreparedData,
): Promise<TestOutcome> {
  if (!o.evalTest) {
    return { metrics: null, line: "not evaluated (--no-test)" };
  }
  const test = await evaluateSplit(result.model, data.test, { size: o.size });
  const dedup = await evaluateSplit(result.model, data.testDeduplicated, {
    size: o.size,
  });
  const all = {
    test_acc: test.acc,
    test_loss: test.loss,
    test_images: test.count,
    test_dedup_acc: dedup.acc,
    test_dedup_loss: dedup.loss,
    test_dedup_images: dedup.count,
  };
  return {
    metrics: Object.fromEntries(
      Object.entries(all).filter(([, v]) => Number.isFinite(v)),
    ),
    line: `${pct(test.acc)} on ${test.count} images; ` +
      `${pct(dedup.acc)} on ${dedup.count} de-duplicated`,
  };
}

/** Training milliseconds per image per epoch, over every epoch run. */
function msPerImage(result: TrainResult): number {
  const history = result.history;
  const seconds = history.reduce((s, r) => s + r.trainSeconds, 0);
  const images = history.reduce(
    (s, r) => s + r.imagesPerSecond * r.trainSeconds,
    0,
  );
  return images ? (1000 * seconds) / images : NaN;
}

/** Records the test metrics in the model's metadata and the run manifest. */
async function writeRunFiles(
  o: TrainCliOptions,
  test: TestOutcome,
  cli: { wallSeconds: number; args: string[] },
): Promise<void> {
  const paths = runPaths(o.out);
  if (test.metrics && existsSync(paths.model)) {
    await updateModelMetadata(paths.model, { metrics: test.metrics });
  }
  await updateRunManifest(paths.root, {
    test: test.metrics,
    testEvaluated: o.evalTest,
    cli,
  });
}

/** The closing summary: run, kept epoch, test accuracy, time and speed. */
function summary(
  o: TrainCliOptions,
  result: TrainResult,
  test: TestOutcome,
  wallSeconds: number,
): string {
  const paths = runPaths(o.out);
  const best = result.best;
  const resumed = result.resumedFrom
    ? `, resumed after epoch ${result.resumedFrom}`
    : "";
  return [
    "",
    `run:            ${shown(paths.root)} (${result.stopReason}, ` +
    `${result.history.length} epochs${resumed})`,
    o.refit
      ? `kept epoch:     ${best?.epoch ?? "–"} (lowest training loss ${
        best?.loss.toFixed(4) ?? "–"
      }; refit, no validation)`
      : `best epoch:     ${best?.epoch ?? "–"} (val_loss ${
        best?.val_loss?.toFixed(4) ?? "–"
      }, val acc ${pct(best?.val_acc ?? NaN)})`,
    `test accuracy:  ${test.line}`,
    `wall time:      ${formatDuration(wallSeconds)} (training ${
      formatDuration(result.seconds)
    })`,
    `speed:          ${msPerImage(result).toFixed(2)} ms/image/epoch`,
    `model:          ${shown(paths.model)}`,
  ].join("\n");
}

/** The command once parsed: the stages in order. Returns the exit code. */
async function trainCommand(
  o: TrainCliOptions,
  args: string[],
  wall0: number,
): Promise<number> {
  const problem = await runFolderProblem(o);
  if (problem) {
    console.error(`train: ${problem}`);
    return 1;
  }
  const data = await prepareTrainingData(o);
  const result = await train(o, data);
  try {
    const test = await evaluateTestSplit(o, result, data);
    const wallSeconds = (performance.now() - wall0) / 1000;
    await writeRunFiles(o, test, { wallSeconds, args });
    console.log(summary(o, result, test, wallSeconds));
    return result.stopReason === "aborted" ? 130 : 0;
  } finally {
    result.model.dispose();
  }
}

/**
 * Runs the command: `--help` prints the usage (0), a usage error prints it
 * with the error (2); otherwise it trains. Returns the exit code (0 ok, 1
 * failure, 2 usage, 130 interrupted).
 *
 * Trains a model on a dataset, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { main } from "./train_cli.ts";
 * Deno.exit(await main(["--size", "64", "--epochs", "2", "--out", "runs/tiny"]));
 * ```
 */
export function main(args: readonly string[] = Deno.args): Promise<number> {
  const wall0 = performance.now();
  return runCli(
    TRAIN_CLI,
    ({ values }) =>
      trainCommand(trainCliOptions(values), taskArgs(args), wall0),
    { args },
  );
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`train: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
