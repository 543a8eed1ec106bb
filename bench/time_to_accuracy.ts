/**
 * Time to accuracy: wall time for the project (tfjs-node, `trainModel` of
 * lib/train/train.ts) to reach given VALIDATION accuracies, against Keras
 * (TensorFlow 2.21, bench/time_to_accuracy_keras.py), with the same network,
 * input size, data and machine.
 *
 * What runs, in order (each step in its own child process of this one, never
 * two at the same time):
 *
 * 1. Data: `prepareData({ source: --data, size: 128, seed: 42, validation:
 *    0.15, test: 0.2 })`, the duplicate-aware split of the project's model
 *    experiments. Only train and validation are used (never test). They are
 *    written once, as raw uint8 pixels (N×128×128) and int32 labels plus a
 *    `header.json`, to `.cache/bench/time_to_accuracy/<fingerprint>-.../`, and
 *    both sides read those same bytes. `--limit N` keeps N training images
 *    (stratified: evenly spaced within each class); validation stays whole.
 * 2. Ours, export: builds `resnet({ filters: [32, 64, 128, 256] })` (seed
 *    `--seed`) and writes its initial weights and its softmax outputs on the
 *    first 16 validation images.
 * 3. Keras, check: builds the same network layer by layer (same names), prints
 *    both parameter counts, loads our weights into it and compares the
 *    outputs; a different parameter count, a weight that does not map, or
 *    outputs more than 1e-4 apart stop the benchmark before any training.
 * 4. The two trainings, one after the other (`--order`): Adam, learning rate
 *    1e-3 with cosine decay per epoch over `--epochs` to 1e-5 (lib/train/train.ts'
 *    `cosineLearningRate`), batch 32, sparse categorical cross-entropy,
 *    augmentation, reshuffled every epoch, seeded; validation after every
 *    epoch (batches of 64). Ours is `trainModel` itself (no early stopping,
 *    `maxSeconds` = the budget; no run folder unless `--save RUN_DIR`, which
 *    keeps the run as `deno task train` would: a checkpoint after every epoch,
 *    included in the timings, and the best validation epoch's model with its
 *    metadata at the end, so the run can be evaluated and shipped like any
 *    other); the Keras side starts from
 *    our initial weights (`--init shared`, the default) or from Keras' own
 *    seeded Glorot initialisation (`--init keras`). Each side stops after the
 *    epoch past which one more epoch would exceed `--minutes` (lib/train/train.ts'
 *    rule), or when `--epochs` are done (or, with `--stop-when-reached`, once
 *    every target is reached). After each epoch both record the epoch, the
 *    wall seconds since training began (process start, imports, data loading
 *    and model building excluded; validation included), validation accuracy
 *    and loss.
 *
 * Augmentation. lib/data/augment.ts' defaults are a left–right flip (p 0.5),
 * rotation ±10°, zoom ±10%, shift ±8% of width/height, contrast ±10% about the
 * image mean and brightness ±10% (multiplicative), per image. The Keras side
 * uses `RandomFlip("horizontal")`, `RandomRotation(10/360)`, `RandomZoom(0.1)`,
 * `RandomTranslation(0.08, 0.08)` (all bilinear, constant 0 fill, as ours) and
 * `RandomContrast((0.1, 0.1), value_range=(0, 1))` (a tuple: Keras 3.15's
 * `RandomContrast(0.1)` draws its factor from [1.0, 1.1], never lowering the
 * contrast). Differences:
 *
 * - ours composes flip, rotation, zoom and shift into one affine matrix and
 *   resamples once; Keras resamples three times (rotation, zoom,
 *   translation), which blurs a little more and can cut corners a rotation
 *   alone would keep;
 * - zoom: ours draws the scale factor s from U(0.9, 1.1) (content × s), Keras
 *   draws the sampling factor z from U(0.9, 1.1) (content × 1/z): the same
 *   range, a slightly different distribution;
 * - brightness: Keras' `RandomBrightness` ADDS a delta (it would turn the
 *   black background grey); no Keras layer scales, so by default the Keras
 *   side multiplies by U(0.9, 1.1) per image with a 4-line `tf.random`
 *   function (`--keras-brightness additive` uses `RandomBrightness(0.1)`);
 * - clipping: Keras' `RandomContrast` clips to [0, 1] before brightness, ours
 *   clips once at the end;
 * - random streams: ours draws every image's parameters from `(seed, epoch,
 *   batch, index)`; Keras from its seeded layer generators, in a sequential
 *   `tf.data` map that is prefetched, so Keras augments the next batch while
 *   it trains on this one (ours augments in the training loop).
 *
 * The recipe flags (both sides): `--cosine-over time` runs the cosine over
 * the time budget instead of `--epochs` (each epoch's rate from the seconds
 * of training before it); `--weight-decay WD` decays the kernels (rank ≥ 2)
 * by `1 − lr·WD` every step (ours after the Adam step, Keras' `AdamW` before
 * it); `--ema DECAY` validates a moving average of the weights (ours of every
 * weight, batch-norm statistics included, with a warm-up `min(DECAY, (1 +
 * n)/(10 + n))`; Keras' optimizer EMA of the trainable weights, swapped in
 * for validation by `SwapEMAWeights`). Together with `--epochs 200 --minutes
 * 60` they are the recipe of the shipped model (`resnet-128-e9`/`-e11`).
 *
 * Other differences: tfjs' Adam puts ε inside the bias correction (Keras
 * outside; negligible); dropout masks and shuffling come from each side's own
 * seeded generators, so the two runs do not see the same batches.
 *
 * Output: per side, the time (and epoch) at which validation accuracy first
 * reached each target (or "not reached in M min, best X% at epoch E"), the
 * training ms per image per epoch (median of the epochs after the first,
 * validation excluded), seconds per epoch (validation included), the best
 * validation accuracy, and the ratio ours/Keras for each target both reached.
 * `--json FILE` writes everything, per-epoch curves included.
 *
 * Usage (every flag in {@linkcode TIME_TO_ACCURACY_CLI}; `--help` prints
 * them):
 *
 * ```sh
 * deno run -A bench/time_to_accuracy.ts [--data DIR] [--epochs 48] \
 *   [--minutes 30] [--targets 0.94,0.97] [--limit N] [--json FILE]
 * ```
 *
 * `--data` defaults to the `Training/` folder of the project's dataset root
 * (`BRAIN_MRI_DATA`, else `data/`). `--json` records paths without this
 * machine's absolute ones: the cache folder relative to the project, the
 * dataset by name (see `recordedPath` in `bench_util.ts`) beside its
 * fingerprint.
 *
 * The first run installs `tensorflow-cpu==2.21.0` into `.cache/bench-venv`
 * from the project's pip index (bench/peer_env.ts; idempotent).
 *
 * @module
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic, writeTextAtomic } from "../lib/core/atomic.ts";
import {
  type FlagValues,
  type ParsedCli,
  runCli,
  UsageError,
} from "../lib/core/cli.ts";
import { DEFAULTS } from "../lib/core/defaults.ts";
import { prepareData } from "../lib/data/prepare.ts";
import { projectPaths } from "../lib/core/paths.ts";
import { run } from "../lib/tools/proc.ts";
import type { ResnetOptions } from "../lib/model/models.ts";
import type { TrainCallbacks, TrainOptions } from "../lib/train/train.ts";
import type { DatasetRecord } from "../lib/train/run_files.ts";
import { ensurePeerEnv } from "./peer_env.ts";
import {
  benchDataset,
  loadAverage,
  median,
  positiveInt,
  recordedPath,
} from "./bench_util.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const SELF = join(HERE, "time_to_accuracy.ts");
const PEER = join(HERE, "time_to_accuracy_keras.py");
const TF_WHEEL = "tensorflow-cpu==2.21.0";

/**
 * The split of the project's model experiments: the project's image size,
 * seed and validation fraction, and a test fraction of 0.2.
 */
const SPLIT = {
  size: DEFAULTS.imageSize,
  seed: DEFAULTS.seed,
  validation: DEFAULTS.validationFraction,
  test: 0.2,
} as const;
/** The network: the project's resnet factory with these options. */
const FILTERS = [32, 64, 128, 256];
const BATCH = DEFAULTS.batchSize;
const EVAL_BATCH = DEFAULTS.evalBatchSize;
const LEARNING_RATE = DEFAULTS.learningRate;
const MIN_LR = DEFAULTS.minLearningRate;
/** Validation images whose softmax outputs both sides must agree on. */
const REFERENCE_IMAGES = 16;
const DATA_FORMAT = "brain-mri-cnn/time-to-accuracy-data";

/** The benchmark's command line: every flag with its type, default and help. */
export const TIME_TO_ACCURACY_CLI = {
  command: "deno run -A bench/time_to_accuracy.ts",
  summary:
    "Wall time for the project and for Keras to reach given validation\n" +
    "accuracies with the same network, input size, data and machine.",
  flags: {
    data: {
      type: "string",
      value: "DIR",
      defaultText: "Training/ of BRAIN_MRI_DATA, else\nof data/",
      help: "dataset",
    },
    epochs: {
      type: "integer",
      default: 48,
      help: "epochs, the length of the cosine decay",
    },
    minutes: {
      type: "number",
      value: "M",
      default: 30,
      help: "time budget per side",
    },
    targets: {
      type: "string",
      value: "LIST",
      default: "0.94,0.97",
      help: "validation accuracies to reach,\ncomma-separated",
    },
    limit: {
      type: "integer",
      help: "train on N training images (stratified), for\nquick checks",
    },
    seed: {
      type: "integer",
      default: DEFAULTS.seed,
      help: "seed of initialisation, shuffling, augmentation\n" +
        `and dropout (the split always uses ${SPLIT.seed})`,
    },
    order: {
      type: "string",
      value: "LIST",
      default: "ours,keras",
      help: "which sides, in which order",
    },
    init: {
      type: "string",
      choices: ["shared", "keras"],
      default: "shared",
      help: "Keras starts from our initial weights (shared)\n" +
        "or from its own seeded Glorot\ninitialisation",
    },
    "keras-brightness": {
      type: "string",
      choices: ["multiplicative", "additive"],
      value: "MODE",
      default: "multiplicative",
      help:
        "Keras brightness: multiplicative as ours, or\nadditive (RandomBrightness)",
    },
    "stop-when-reached": {
      type: "boolean",
      help: "stop a side once it has reached every target",
    },
    "cosine-over": {
      type: "string",
      choices: ["epochs", "time"],
      default: "epochs",
      help: "the cosine decay runs over --epochs or over the\n" +
        "--minutes budget, from each epoch's start\ntime",
    },
    "weight-decay": {
      type: "number",
      value: "WD",
      default: 0,
      help: "decoupled weight decay of the kernels\n(AdamW)",
    },
    ema: {
      type: "number",
      value: "DECAY",
      default: 0,
      help: "validate a moving average of the weights\n(0: off)",
    },
    save: {
      type: "string",
      value: "RUN_DIR",
      help: "keep our side's run as a project run folder\n" +
        "(model with metadata, history, manifest; best\n" +
        "validation epoch restored), like `deno task train`",
    },
    json: {
      type: "string",
      value: "FILE",
      help: "write everything (per-epoch curves too) to FILE",
    },
    worker: {
      type: "string",
      choices: ["export", "ours"],
      help: "internal: run one of our side's steps in this\n" +
        "process (with --data-dir and --out)",
    },
    "data-dir": {
      type: "string",
      value: "DIR",
      help: "internal: the data folder a worker reads",
    },
    out: {
      type: "string",
      value: "FILE",
      help: "internal: the report a worker writes",
    },
  },
  footer:
    "The shipped recipe (resnet-128-e9/e11): --epochs 200 --minutes 60\n" +
    "--cosine-over time --weight-decay 1 --ema 0.998",
} as const;

type BenchFlags = FlagValues<typeof TIME_TO_ACCURACY_CLI>;

// ---------------------------------------------------------------------------
// Shared types and helpers
// ---------------------------------------------------------------------------

/** One epoch as both sides record it. */
interface EpochPoint {
  epoch: number;
  /** Wall seconds since training began, at the end of this epoch. */
  elapsed: number;
  /** Wall seconds of this epoch (training + validation). */
  seconds: number;
  /** Wall seconds of this epoch's training batches. */
  trainSeconds: number;
  loss: number | null;
  acc: number | null;
  val_loss: number | null;
  val_acc: number | null;
  lr: number;
}

/** What a training child reports. */
interface SideReport {
  impl: "ours" | "keras";
  params: number;
  versions: Record<string, string>;
  trainImages: number;
  validationImages: number;
  epochs: EpochPoint[];
  stopReason: string;
  seconds: number;
  /** One-minute load average when the side started. */
  load?: number;
  [key: string]: unknown;
}

/** The data files' header. */
interface DataHeader {
  format: string;
  version: 1;
  /** "uint8 N×size×size" */
  pixelsType: string;
  /** "int32le N" */
  labelsType: string;
  source: string;
  size: number;
  splitSeed: number;
  validationFraction: number;
  testFraction: number;
  fingerprint: string;
  classes: string[];
  limit: number | null;
  train: DataPart;
  validation: DataPart;
}

interface DataPart {
  count: number;
  /** File of `count·size·size` uint8 pixels (row-major, one channel). */
  pixels: string;
  /** File of `count` little-endian int32 labels (indices into `classes`). */
  labels: string;
  counts: Record<string, number>;
}

interface Split {
  pixels: Uint8Array;
  labels: Int32Array;
}

interface BenchOptions {
  epochs: number;
  minutes: number;
  targets: number[];
  seed: number;
  stopWhenReached: boolean;
  /** Our side's run folder (`--save`), or none. */
  save?: string;
  /** What the cosine decay runs over: `--epochs`, or the `--minutes` budget. */
  cosineOver: "epochs" | "time";
  /** Decoupled weight decay of the kernels; 0: off. */
  weightDecay: number;
  /** Decay of the validated moving average of the weights; 0: off. */
  ema: number;
}

/** The recipe flags, as both sides take them. */
function recipeArgs(bench: BenchOptions): string[] {
  return [
    "--cosine-over",
    bench.cosineOver,
    "--weight-decay",
    String(bench.weightDecay),
    "--ema",
    String(bench.ema),
  ];
}

function parseTargets(value: string): number[] {
  const targets = value.split(",").map((s) => s.trim()).filter(Boolean).map(
    Number,
  );
  if (!targets.length || targets.some((t) => !(t > 0 && t <= 1))) {
    throw new UsageError(
      `--targets must be accuracies in (0, 1], comma-separated (got "${value}")`,
    );
  }
  return [...new Set(targets)].sort((a, b) => a - b);
}

/** Whether `acc` (possibly a float32 from Keras) is at least `target`, by image count. */
function reached(acc: number | null, n: number, target: number): boolean {
  return acc !== null && Math.round(acc * n) >= Math.ceil(target * n - 1e-6);
}

function bytesOf(labels: Int32Array): Uint8Array {
  // Little-endian on every machine this runs on (x86-64, arm64).
  return new Uint8Array(labels.buffer, labels.byteOffset, labels.byteLength);
}

// ---------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------

/**
 * `n` of the split's images, stratified: per class its share (largest
 * remainder), evenly spaced within the class, in the split's order.
 */
function stratified(split: Split, n: number, classes: number): number[] {
  const total = split.labels.length;
  if (n >= total) return Array.from({ length: total }, (_, i) => i);
  const byClass: number[][] = Array.from({ length: classes }, () => []);
  split.labels.forEach((l, i) => byClass[l].push(i));
  const exact = byClass.map((ix) => (ix.length * n) / total);
  const quota = exact.map(Math.floor);
  let rest = n - quota.reduce((s, q) => s + q, 0);
  const byRemainder = exact.map((e, c) => [e - Math.floor(e), c])
    .sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, c] of byRemainder) {
    if (rest-- <= 0) break;
    quota[c]++;
  }
  const out: number[] = [];
  byClass.forEach((ix, c) => {
    for (let k = 0; k < quota[c]; k++) {
      out.push(ix[Math.floor(((k + 0.5) * ix.length) / quota[c])]);
    }
  });
  return out.sort((a, b) => a - b);
}

function subset(split: Split, indices: number[], area: number): Split {
  const pixels = new Uint8Array(indices.length * area);
  const labels = new Int32Array(indices.length);
  indices.forEach((i, k) => {
    pixels.set(split.pixels.subarray(i * area, (i + 1) * area), k * area);
    labels[k] = split.labels[i];
  });
  return { pixels, labels };
}

function countsOf(labels: Int32Array, classes: string[]) {
  const counts: Record<string, number> = Object.fromEntries(
    classes.map((c) => [c, 0]),
  );
  for (const l of labels) counts[classes[l]]++;
  return counts;
}

/**
 * Runs prepareData and writes train and validation (limited to `limit`
 * training images) once; returns the folder and its header.
 */
async function writeData(
  source: string,
  limit: number | undefined,
): Promise<{ dir: string; header: DataHeader }> {
  const log = (m: string) => console.error(`data: ${m}`);
  const data = await prepareData({ source, ...SPLIT, log });
  for (const e of data.errors) console.error(`skipped ${e.path}: ${e.reason}`);
  if (data.source.synthetic) log(`${data.source.reason}`);
  const area = SPLIT.size * SPLIT.size;
  const train = limit === undefined ? data.train : subset(
    data.train,
    stratified(data.train, limit, data.classes.length),
    area,
  );
  const validation = data.validation;
  const key =
    `${data.fingerprint.slice(0, 12)}-${SPLIT.size}px-split${SPLIT.seed}` +
    `-v${SPLIT.validation}-t${SPLIT.test}-${
      limit === undefined ? "all" : `n${limit}`
    }`;
  const dir = join(projectPaths().cache, "bench", "time_to_accuracy", key);
  const part = (name: string, split: Split): DataPart => ({
    count: split.labels.length,
    pixels: `${name}_pixels.bin`,
    labels: `${name}_labels.bin`,
    counts: countsOf(split.labels, data.classes),
  });
  const header: DataHeader = {
    format: DATA_FORMAT,
    version: 1,
    pixelsType: "uint8 N×size×size",
    labelsType: "int32le N",
    // By name, not by this machine's absolute path (see recordedPath).
    source: recordedPath(data.source.root),
    size: SPLIT.size,
    splitSeed: SPLIT.seed,
    validationFraction: SPLIT.validation,
    testFraction: SPLIT.test,
    fingerprint: data.fingerprint,
    classes: data.classes,
    limit: limit ?? null,
    train: part("train", train),
    validation: part("validation", validation),
  };
  const headerPath = join(dir, "header.json");
  const sizeOk = (p: DataPart) =>
    existsSync(join(dir, p.pixels)) &&
    Deno.statSync(join(dir, p.pixels)).size === p.count * area &&
    existsSync(join(dir, p.labels)) &&
    Deno.statSync(join(dir, p.labels)).size === p.count * 4;
  let fresh = true;
  if (existsSync(headerPath)) {
    const old = JSON.parse(await Deno.readTextFile(headerPath));
    fresh = JSON.stringify({ ...old, source: "" }) !==
        JSON.stringify({ ...header, source: "" }) ||
      !sizeOk(header.train) || !sizeOk(header.validation);
  }
  if (fresh) {
    for (
      const [p, split] of [[header.train, train], [
        header.validation,
        validation,
      ]] as const
    ) {
      await writeFileAtomic(join(dir, p.pixels), split.pixels);
      await writeFileAtomic(join(dir, p.labels), bytesOf(split.labels));
    }
    // Last: a header means the files before it are complete.
    await writeTextAtomic(headerPath, JSON.stringify(header, null, 2) + "\n");
    log(`wrote ${dir}`);
  } else {
    log(`reusing ${dir}`);
  }
  return { dir, header };
}

async function readData(
  dir: string,
): Promise<{ header: DataHeader; train: Split; validation: Split }> {
  const header = JSON.parse(
    await Deno.readTextFile(join(dir, "header.json")),
  ) as DataHeader;
  if (header.format !== DATA_FORMAT) {
    throw new Error(`${dir}/header.json: not a ${DATA_FORMAT} header`);
  }
  const area = header.size * header.size;
  const load = async (p: DataPart): Promise<Split> => {
    const pixels = await Deno.readFile(join(dir, p.pixels));
    const raw = await Deno.readFile(join(dir, p.labels));
    if (pixels.length !== p.count * area || raw.length !== p.count * 4) {
      throw new Error(
        `${dir}: ${p.pixels} or ${p.labels} is not ${p.count} images long`,
      );
    }
    const labels = new Int32Array(raw.buffer, raw.byteOffset, p.count);
    return { pixels, labels };
  };
  return {
    header,
    train: await load(header.train),
    validation: await load(header.validation),
  };
}

// ---------------------------------------------------------------------------
// Workers: our side, in child processes
// ---------------------------------------------------------------------------

/** Our initial weights and reference outputs, for the Keras side. */
async function exportWorker(
  dir: string,
  out: string,
  seed: number,
): Promise<void> {
  const { tf } = await import("../lib/core/tf.ts");
  const { resnet } = await import("../lib/model/models.ts");
  const { batchTensor } = await import("../lib/train/train.ts");
  const { header, validation } = await readData(dir);
  const options: ResnetOptions = {
    inputSize: header.size,
    channels: 1,
    numClasses: header.classes.length,
    seed,
    filters: FILTERS,
  };
  const model = resnet(options);
  // What the factory chose for the options we leave at their defaults.
  const config = (name: string) =>
    model.getLayer(name).getConfig() as Record<string, unknown>;
  const arch = {
    filters: FILTERS,
    stemFilters: config("stem_conv").filters as number,
    blocksPerStage:
      model.layers.filter((l) => /^stage1_block\d+_add$/.test(l.name)).length,
    dropout: config("dropout").rate as number,
  };
  const layers: {
    name: string;
    weights: {
      name: string;
      shape: number[];
      offset: number;
      length: number;
    }[];
  }[] = [];
  const chunks: Float32Array[] = [];
  let offset = 0;
  for (const layer of model.layers) {
    if (!layer.weights.length) continue;
    const entry = {
      name: layer.name,
      weights: [] as typeof layers[0]["weights"],
    };
    for (const w of layer.weights) {
      const values = w.read().dataSync() as Float32Array;
      entry.weights.push({
        name: w.originalName.split("/").pop()!,
        shape: w.shape as number[],
        offset,
        length: values.length,
      });
      chunks.push(values);
      offset += values.byteLength;
    }
    layers.push(entry);
  }
  const blob = new Uint8Array(offset);
  let at = 0;
  for (const c of chunks) {
    blob.set(new Uint8Array(c.buffer, c.byteOffset, c.byteLength), at);
    at += c.byteLength;
  }
  const count = Math.min(REFERENCE_IMAGES, validation.labels.length);
  const x = batchTensor(
    validation.pixels,
    Array.from({ length: count }, (_, i) => i),
    header.size,
  );
  const probs = model.predict(x) as import("../lib/core/tf.ts").Tensor;
  const reference = { count, probs: Array.from(await probs.data()) };
  tf.dispose([x, probs]);
  const params = model.countParams();
  model.dispose();
  await writeFileAtomic(out.replace(/\.json$/, ".bin"), blob);
  await writeTextAtomic(
    out,
    JSON.stringify({ arch, params, seed, layers, reference }),
  );
}

/** The data a training worker read. */
type WorkerData = Awaited<ReturnType<typeof readData>>;

/**
 * `trainModel`'s options for our side, without callbacks: the shipped
 * network and recipe; with `--save`, a run folder kept as `deno task train`
 * keeps one.
 */
function oursTrainOptions(data: WorkerData, bench: BenchOptions) {
  const { header, train, validation } = data;
  const split = {
    validation: header.validationFraction,
    test: header.testFraction,
  };
  const dataset: DatasetRecord = {
    name: header.source,
    fingerprint: header.fingerprint,
    synthetic: false,
  };
  return {
    train,
    validation,
    classes: header.classes,
    size: header.size,
    arch: "resnet",
    modelOptions: { filters: FILTERS },
    epochs: bench.epochs,
    batchSize: BATCH,
    learningRate: LEARNING_RATE,
    seed: bench.seed,
    augment: true,
    earlyStopping: false,
    cosineDecay: { minLr: MIN_LR, over: bench.cosineOver },
    maxSeconds: bench.minutes * 60,
    ...(bench.weightDecay > 0 ? { weightDecay: bench.weightDecay } : {}),
    ...(bench.ema > 0 ? { ema: { decay: bench.ema } } : {}),
    // Saved runs keep their best validation epoch, as `deno task train` does.
    restoreBestWeights: bench.save !== undefined,
    evalBatchSize: EVAL_BATCH,
    ...(bench.save === undefined ? {} : {
      runDir: bench.save,
      datasetFingerprint: header.fingerprint,
      split,
      manifestExtra: {
        dataset,
        split: { seed: header.splitSeed, ...split },
        trainedBy: "bench/time_to_accuracy.ts",
      },
    }),
  } satisfies Omit<TrainOptions, "callbacks" | "signal">;
}

/**
 * Records every epoch (wall time since training began, validation accuracy
 * and loss), logs it, and with `--stop-when-reached` stops once every target
 * is reached.
 */
function epochRecorder(bench: BenchOptions, validationImages: number) {
  const epochs: EpochPoint[] = [];
  const controller = new AbortController();
  const state = { targetsReached: false };
  let t0 = 0;
  const callbacks: TrainCallbacks = {
    onTrainBegin() {
      t0 = performance.now();
    },
    onEpochEnd({ record }) {
      const point: EpochPoint = {
        epoch: record.epoch,
        elapsed: (performance.now() - t0) / 1000,
        seconds: record.seconds,
        trainSeconds: record.trainSeconds,
        loss: record.loss,
        acc: record.acc,
        val_loss: record.val_loss,
        val_acc: record.val_acc,
        lr: record.lr,
      };
      epochs.push(point);
      console.error(
        `ours  epoch ${String(point.epoch).padStart(3)}/${bench.epochs}  ` +
          `t ${point.elapsed.toFixed(1).padStart(8)} s  val_acc ${
            point.val_acc?.toFixed(4)
          }  val_loss ${point.val_loss?.toFixed(4)}  loss ${
            point.loss?.toFixed(4)
          }  lr ${point.lr.toExponential(2)}`,
      );
      const all = bench.targets.every((t) =>
        epochs.some((e) => reached(e.val_acc, validationImages, t))
      );
      if (bench.stopWhenReached && all) {
        state.targetsReached = true;
        controller.abort();
      }
    },
  };
  return { epochs, callbacks, signal: controller.signal, state };
}

/** Our training: lib/train/train.ts' trainModel, timed per epoch. */
async function oursWorker(
  dir: string,
  out: string,
  bench: BenchOptions,
): Promise<void> {
  const { trainModel } = await import("../lib/train/train.ts");
  const { versions } = await import("../lib/core/versions.ts");
  const data = await readData(dir);
  const nVal = data.validation.labels.length;
  const recorder = epochRecorder(bench, nVal);
  const result = await trainModel({
    ...oursTrainOptions(data, bench),
    signal: recorder.signal,
    callbacks: recorder.callbacks,
  });
  const params = result.model.countParams();
  result.model.dispose();
  const epochs = recorder.epochs;
  const report: SideReport = {
    impl: "ours",
    params,
    versions: versions(),
    trainImages: data.train.labels.length,
    validationImages: nVal,
    epochs,
    stopReason: recorder.state.targetsReached && result.stopReason === "aborted"
      ? "targets-reached"
      : result.stopReason,
    seconds: epochs.at(-1)?.elapsed ?? 0,
  };
  await writeTextAtomic(out, JSON.stringify(report));
}

// ---------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------

async function readReport<T>(path: string, what: string): Promise<T> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch (error) {
    throw new Error(
      `${what} left no readable report at ${path}: ${(error as Error).message}`,
    );
  }
}

function childTimeout(bench: BenchOptions): number {
  // The budget, one overlong last epoch, and start-up.
  return (bench.minutes * 60 * 2 + 20 * 60) * 1000;
}

async function runOurs(
  mode: "export" | "ours",
  dir: string,
  out: string,
  bench: BenchOptions,
): Promise<void> {
  const result = await run(Deno.execPath(), {
    args: [
      "run",
      "-A",
      SELF,
      "--worker",
      mode,
      "--data-dir",
      dir,
      "--out",
      out,
      "--epochs",
      String(bench.epochs),
      "--minutes",
      String(bench.minutes),
      "--targets",
      bench.targets.join(","),
      "--seed",
      String(bench.seed),
      ...(bench.stopWhenReached ? ["--stop-when-reached"] : []),
      ...(bench.save === undefined ? [] : ["--save", bench.save]),
      ...recipeArgs(bench),
    ],
    cwd: projectPaths().root,
    inherit: true,
    timeoutMs: mode === "export" ? 10 * 60_000 : childTimeout(bench),
  });
  if (result.code !== 0) {
    throw new Error(`ours (${mode}) failed (exit ${result.code})`);
  }
}

async function runKeras(
  python: string,
  dir: string,
  weights: string,
  out: string,
  bench: BenchOptions,
  extra: { checkOnly: boolean; init: string; brightness: string },
): Promise<void> {
  const result = await run(python, {
    args: [
      PEER,
      "--data",
      dir,
      "--weights",
      weights,
      "--out",
      out,
      "--epochs",
      String(bench.epochs),
      "--minutes",
      String(bench.minutes),
      "--targets",
      bench.targets.join(","),
      "--seed",
      String(bench.seed),
      "--batch",
      String(BATCH),
      "--eval-batch",
      String(EVAL_BATCH),
      "--lr",
      String(LEARNING_RATE),
      "--min-lr",
      String(MIN_LR),
      "--init",
      extra.init,
      "--brightness",
      extra.brightness,
      ...(extra.checkOnly ? ["--check-only"] : []),
      ...(bench.stopWhenReached ? ["--stop-when-reached"] : []),
      ...recipeArgs(bench),
    ],
    env: { TF_CPP_MIN_LOG_LEVEL: "2", PYTHONUNBUFFERED: "1" },
    inherit: true,
    timeoutMs: extra.checkOnly ? 10 * 60_000 : childTimeout(bench),
  });
  if (result.code !== 0) {
    let reason = "";
    try {
      const report = JSON.parse(await Deno.readTextFile(out));
      if (report.error) reason = `: ${report.error}`;
    } catch {
      // no report: the child's stderr (shown above) says why
    }
    throw new Error(
      `keras (${
        extra.checkOnly ? "network check" : "training"
      }) failed (exit ${result.code})${reason}`,
    );
  }
}

// ---------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------

interface TargetResult {
  target: number;
  epoch: number | null;
  seconds: number | null;
}

interface SideSummary {
  targets: TargetResult[];
  best: { val_acc: number; epoch: number } | null;
  epochs: number;
  stopReason: string;
  seconds: number;
  msPerImagePerEpoch: number;
  secondsPerEpoch: number;
}

function summarise(report: SideReport, targets: number[]): SideSummary {
  const n = report.validationImages;
  const e = report.epochs;
  let best: SideSummary["best"] = null;
  for (const p of e) {
    if (p.val_acc !== null && (best === null || p.val_acc > best.val_acc)) {
      best = { val_acc: p.val_acc, epoch: p.epoch };
    }
  }
  const timed = e.length > 1 ? e.slice(1) : e;
  return {
    targets: targets.map((target) => {
      const first = e.find((p) => reached(p.val_acc, n, target));
      return {
        target,
        epoch: first?.epoch ?? null,
        seconds: first?.elapsed ?? null,
      };
    }),
    best,
    epochs: e.length,
    stopReason: report.stopReason,
    seconds: report.seconds,
    msPerImagePerEpoch: timed.length
      ? median(timed.map((p) => (1000 * p.trainSeconds) / report.trainImages))
      : NaN,
    secondsPerEpoch: timed.length ? median(timed.map((p) => p.seconds)) : NaN,
  };
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "–";
}

type Side = { name: string; summary: SideSummary };

/** ours/keras of two values, when both are there. */
function ratio(a: number | null, b: number | null): string {
  return a !== null && b !== null && b > 0 ? (a / b).toFixed(2) : "–";
}

/** One row per target: when each side reached it, or its best. */
function targetRows(sides: Side[], bench: BenchOptions): string[][] {
  const both = sides.length === 2 ? sides : undefined;
  return bench.targets.map((target, i) => [
    `val acc ≥ ${pct(target)}`,
    ...sides.map(({ summary: s }) => {
      const t = s.targets[i];
      if (t.seconds !== null) {
        return `${fmt(t.seconds)} s (epoch ${t.epoch})`;
      }
      const where = s.stopReason === "time-budget"
        ? `${bench.minutes} min`
        : `${s.epochs} epochs (${fmt(s.seconds / 60)} min)`;
      return `not reached in ${where}, best ${
        s.best ? `${pct(s.best.val_acc)} at epoch ${s.best.epoch}` : "–"
      }`;
    }),
    ...(both
      ? [
        ratio(
          both[0].summary.targets[i].seconds,
          both[1].summary.targets[i].seconds,
        ),
      ]
      : []),
  ]);
}

/** The best accuracy, the epochs run and the speeds, side by side. */
function speedRows(sides: Side[]): string[][] {
  const both = sides.length === 2 ? sides : undefined;
  const compared = (key: "msPerImagePerEpoch" | "secondsPerEpoch") =>
    both ? [ratio(both[0].summary[key], both[1].summary[key])] : [];
  return [
    [
      "best val acc",
      ...sides.map(({ summary: s }) =>
        s.best ? `${pct(s.best.val_acc)} (epoch ${s.best.epoch})` : "–"
      ),
      ...(both ? [""] : []),
    ],
    [
      "epochs run",
      ...sides.map(({ summary: s }) =>
        `${s.epochs} in ${fmt(s.seconds)} s (${s.stopReason})`
      ),
      ...(both ? [""] : []),
    ],
    [
      "train ms/img/epoch",
      ...sides.map(({ summary: s }) => fmt(s.msPerImagePerEpoch, 2)),
      ...compared("msPerImagePerEpoch"),
    ],
    [
      "s/epoch incl. validation",
      ...sides.map(({ summary: s }) => fmt(s.secondsPerEpoch, 1)),
      ...compared("secondsPerEpoch"),
    ],
  ];
}

function printTable(sides: Side[], bench: BenchOptions): void {
  const rows = [...targetRows(sides, bench), ...speedRows(sides)];
  const header = [
    "",
    ...sides.map((s) => s.name),
    ...(sides.length === 2 ? ["ours/keras"] : []),
  ];
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => r[i].length))
  );
  const line = (cells: string[]) =>
    cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) console.log(line(r));
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

/** The settings both sides share, checked. */
function benchOptions(values: BenchFlags): BenchOptions {
  const { minutes, seed, ema } = values;
  if (!(minutes > 0)) {
    throw new UsageError(
      `--minutes must be a positive number (got "${minutes}")`,
    );
  }
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new UsageError(
      `--seed must be a non-negative integer (got "${seed}")`,
    );
  }
  const weightDecay = values["weight-decay"];
  if (!(weightDecay >= 0)) {
    throw new UsageError(
      `--weight-decay must be a number >= 0 (got "${weightDecay}")`,
    );
  }
  if (!(ema === 0 || (ema > 0 && ema < 1))) {
    throw new UsageError(
      `--ema must be 0 (off) or a decay in (0, 1) (got "${ema}")`,
    );
  }
  const bench: BenchOptions = {
    cosineOver: values["cosine-over"],
    weightDecay,
    ema,
    epochs: positiveInt(values.epochs, "epochs"),
    minutes,
    targets: parseTargets(values.targets),
    seed,
    stopWhenReached: values["stop-when-reached"],
    ...(values.save === undefined ? {} : { save: resolve(values.save) }),
  };
  if (bench.save !== undefined && bench.seed !== SPLIT.seed) {
    // A saved model records one seed, which `evaluate --split test` also
    // uses to re-derive the split: it must be the split's.
    throw new UsageError(
      `--save needs --seed ${SPLIT.seed} (the split's seed; got ${bench.seed})`,
    );
  }
  return bench;
}

/** Which sides run, in which order, and how the Keras side is set up. */
function sideOptions(values: BenchFlags) {
  const order = values.order.split(",").map((s) => s.trim()).filter(Boolean);
  if (
    !order.length || order.some((s) => s !== "ours" && s !== "keras") ||
    new Set(order).size !== order.length
  ) {
    throw new UsageError(
      `--order must list ours and/or keras once each (got "${values.order}")`,
    );
  }
  return {
    order,
    init: values.init,
    brightness: values["keras-brightness"],
    limit: values.limit === undefined
      ? undefined
      : positiveInt(values.limit, "limit"),
  };
}

type Sides = ReturnType<typeof sideOptions>;

/** A child process's step: export our network, or train our side. */
async function runWorker(values: BenchFlags, bench: BenchOptions) {
  if (!values["data-dir"] || !values.out) {
    throw new UsageError("--worker needs --data-dir and --out");
  }
  if (values.worker === "export") {
    await exportWorker(values["data-dir"], values.out, bench.seed);
  } else {
    await oursWorker(values["data-dir"], values.out, bench);
  }
}

/** What is about to run, on one line. */
function describeSetup(header: DataHeader, bench: BenchOptions, sides: Sides) {
  const { limit } = sides;
  console.error(
    `resnet [${FILTERS}] at ${header.size}×${header.size}×1, ${header.classes.length} ` +
      `classes; train ${header.train.count}${
        limit === undefined ? "" : ` (--limit ${limit})`
      }, validation ${header.validation.count} (split seed ${header.splitSeed}, ` +
      `val ${header.validationFraction}, test ${header.testFraction}, test unused); ` +
      `batch ${BATCH}, Adam ${LEARNING_RATE} → ${MIN_LR} cosine over ${
        bench.cosineOver === "time"
          ? `the ${bench.minutes}-min budget`
          : `${bench.epochs} epochs`
      }, weight decay ${bench.weightDecay}, EMA ${
        bench.ema || "off"
      }, budget ${bench.minutes} min per side, seed ${bench.seed}; ` +
      `${navigator.hardwareConcurrency} CPUs, load ${fmt(loadAverage(), 2)}`,
  );
}

/** Where a run works: the data, the peer's Python, a scratch folder. */
interface Workspace {
  dir: string;
  python: string;
  work: string;
  /** Our exported initial weights (the Keras side may start from them). */
  weights: string;
}

/**
 * Exports our network and has Keras build the same one: the parameter
 * counts must match and, on the same weights, the outputs agree.
 */
async function checkNetworks(ws: Workspace, bench: BenchOptions, sides: Sides) {
  await runOurs("export", ws.dir, ws.weights, bench);
  const check = join(ws.work, "keras-check.json");
  await runKeras(ws.python, ws.dir, ws.weights, check, bench, {
    checkOnly: true,
    init: sides.init,
    brightness: sides.brightness,
  });
  const exported = await readReport<{ params: number }>(
    ws.weights,
    "ours (export)",
  );
  const checked = await readReport<
    { params: number; referenceMaxAbsDiff: number }
  >(check, "keras (check)");
  console.log(
    `parameters: ours ${exported.params.toLocaleString("en")}, keras ${
      checked.params.toLocaleString("en")
    }; same weights → softmax max |diff| ${
      checked.referenceMaxAbsDiff.toExponential(1)
    } on ${REFERENCE_IMAGES} validation images`,
  );
  if (exported.params !== checked.params) {
    throw new Error(
      `the parameter counts differ (ours ${exported.params}, keras ${checked.params})`,
    );
  }
  return { exported, checked };
}

/** Trains each side in `--order`, one after the other. */
async function trainSides(
  ws: Workspace,
  bench: BenchOptions,
  sides: Sides,
  params: number,
): Promise<Record<string, SideReport>> {
  const reports: Record<string, SideReport> = {};
  for (const side of sides.order) {
    const out = join(ws.work, `${side}.json`);
    const load = loadAverage();
    console.error(`\n== ${side}: training (load ${fmt(load, 2)}) ==`);
    if (side === "ours") await runOurs("ours", ws.dir, out, bench);
    else {
      await runKeras(ws.python, ws.dir, ws.weights, out, bench, {
        checkOnly: false,
        init: sides.init,
        brightness: sides.brightness,
      });
    }
    reports[side] = { ...await readReport<SideReport>(out, side), load };
  }
  for (const r of Object.values(reports)) {
    if (r.params !== params) {
      throw new Error(
        `${r.impl} trained ${r.params} parameters, the exported model has ${params}`,
      );
    }
  }
  return reports;
}

/** Each side's summary, named by its library versions. */
function summaries(reports: Record<string, SideReport>, bench: BenchOptions) {
  return ["ours", "keras"].filter((s) => reports[s]).map((s) => ({
    name: s === "ours"
      ? `ours (tfjs-node ${reports[s].versions["tfjs-node"]}, libtensorflow ${
        reports[s].versions.libtensorflow
      })`
      : `keras (TF ${reports[s].versions.tensorflow}, Keras ${
        reports[s].versions.keras
      })`,
    side: s,
    summary: summarise(reports[s], bench.targets),
  }));
}

/** Everything, per-epoch curves too, with no absolute path of this machine. */
function resultsJson(run: {
  bench: BenchOptions;
  sides: Sides;
  source: string;
  ws: Workspace;
  header: DataHeader;
  checked: unknown;
  params: number;
  summaries: ReturnType<typeof summaries>;
  reports: Record<string, SideReport>;
}): string {
  const { bench, sides, header } = run;
  const results = {
    benchmark: "time_to_accuracy",
    at: new Date().toISOString(),
    options: {
      ...bench,
      ...(bench.save === undefined ? {} : { save: recordedPath(bench.save) }),
      limit: sides.limit ?? null,
      order: sides.order,
      init: sides.init,
      kerasBrightness: sides.brightness,
      data: recordedPath(run.source),
    },
    model: { arch: "resnet", filters: FILTERS, params: run.params },
    training: {
      batch: BATCH,
      evalBatch: EVAL_BATCH,
      learningRate: LEARNING_RATE,
      minLr: MIN_LR,
    },
    data: { dir: recordedPath(run.ws.dir), ...header },
    check: run.checked,
    summary: Object.fromEntries(run.summaries.map((s) => [s.side, s.summary])),
    reports: run.reports,
  };
  return JSON.stringify(results, null, 2) + "\n";
}

/** The benchmark: data, network check, both trainings, summary, JSON. */
async function compare(values: BenchFlags, bench: BenchOptions) {
  const sides = sideOptions(values);
  const source = benchDataset({ given: values.data });
  const { dir, header } = await writeData(source, sides.limit);
  const python = await ensurePeerEnv({ packages: [TF_WHEEL] });
  const work = await Deno.makeTempDir({ dir, prefix: "run-" });
  const ws: Workspace = { dir, python, work, weights: join(work, "init.json") };
  try {
    describeSetup(header, bench, sides);
    const { exported, checked } = await checkNetworks(ws, bench, sides);
    const reports = await trainSides(ws, bench, sides, exported.params);
    const summarised = summaries(reports, bench);
    console.log(
      `\ntime to validation accuracy (${header.validation.count} validation images; ` +
        `wall time from the start of training, validation included)\n`,
    );
    printTable(summarised, bench);
    console.log(
      `\nload at start: ${
        summarised.map((s) =>
          `${s.side} ${fmt(reports[s.side].load ?? NaN, 2)}`
        )
          .join(", ")
      } (${navigator.hardwareConcurrency} CPUs)`,
    );
    if (values.json) {
      const params = exported.params;
      await writeTextAtomic(
        values.json,
        resultsJson({
          bench,
          sides,
          source,
          ws,
          header,
          checked,
          params,
          summaries: summarised,
          reports,
        }),
      );
      console.log(`wrote ${values.json}`);
    }
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

async function main(
  { values }: ParsedCli<typeof TIME_TO_ACCURACY_CLI>,
): Promise<number> {
  const bench = benchOptions(values);
  try {
    if (values.worker !== undefined) await runWorker(values, bench);
    else await compare(values, bench);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    console.error(`bench/time_to_accuracy.ts: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await runCli(TIME_TO_ACCURACY_CLI, main));
