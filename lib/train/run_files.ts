/**
 * The files of a run folder, besides the checkpoint: where they are
 * ({@linkcode runPaths}), what the manifest and the saved model's metadata
 * say about the run ({@linkcode runManifest}, {@linkcode modelMetadata}),
 * writing them ({@linkcode writeRunFiles}) and reading a manifest back
 * ({@linkcode readRunManifest}, {@linkcode manifestDataset}).
 *
 * ```text
 * models/<run>/
 *   model/          the best-on-validation model (tfjs Layers + metadata.json)
 *   history.json    per-epoch loss, acc, val_loss, val_acc, lr, seconds, images/s
 *   manifest.json   config, dataset fingerprint, classes, versions, timings, metrics
 *   checkpoint/     the last completed epoch: weights, optimizer state, loop state
 * ```
 *
 * A manifest names the dataset without a path of the machine it ran on:
 * {@linkcode datasetRecord} keeps its fingerprint and a short name
 * ({@linkcode datasetName}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RUN_FILES, runPaths } from "./run_files.ts";
 * const paths = runPaths("models/demo");
 * assert.ok(paths.manifest.endsWith(RUN_FILES.manifest));
 * ```
 *
 * @module
 */
import { existsSync } from "node:fs";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { writeTextAtomic } from "../core/atomic.ts";
import { PROJECT_ROOT } from "../core/paths.ts";
import {
  defaultPreprocessing,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  type ModelMetadata,
  type TrainingSplit,
  type TrainingSummary,
} from "../model/saved_model.ts";
import { classCounts, type RunConfig, type TrainSplit } from "./config.ts";
import {
  bestRecord,
  type EpochRecord,
  type StopReason,
  type TrainState,
} from "./state.ts";

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

/** Extra files of a run's checkpoint (besides the weights and the state). */
export const RUN_CHECKPOINT_FILES = {
  /** The best epoch's weights, a `tensorsSnapshot`. */
  best: "best.bin",
  /** The weights' moving average, a `tensorsSnapshot` (with `ema`). */
  ema: "ema.bin",
} as const;

/** The paths inside a run folder (see {@linkcode runPaths}). */
export interface RunPaths {
  /** The run folder, absolute. */
  root: string;
  /** The best model. */
  model: string;
  /** `history.json`. */
  history: string;
  /** `manifest.json`. */
  manifest: string;
  /** The checkpoint folder. */
  checkpoint: string;
}

/**
 * The paths inside a run folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join, resolve } from "node:path";
 * import { runPaths } from "./run_files.ts";
 * assert.equal(runPaths("models/demo").checkpoint, join(resolve("models/demo"), "checkpoint"));
 * ```
 */
export function runPaths(runDir: string): RunPaths {
  const root = resolve(runDir);
  return {
    root,
    model: join(root, RUN_FILES.model),
    history: join(root, RUN_FILES.history),
    manifest: join(root, RUN_FILES.manifest),
    checkpoint: join(root, RUN_FILES.checkpoint),
  };
}

/** How a run's manifest names the dataset it trained on. */
export interface DatasetRecord {
  /** A short name: see {@linkcode datasetName}. */
  name: string;
  /** The dataset's fingerprint (see `prepareData`). */
  fingerprint: string;
  /** True for the generated synthetic dataset. */
  synthetic: boolean;
}

/**
 * A dataset's name for a manifest, without the machine's absolute paths:
 * the path relative to the project root when the dataset lies inside it
 * (`"data/Training"`), else its last two path parts
 * (`"brain-tumor-mri/Training"`). A relative `root` is taken from the
 * current folder, as a command line gives it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { datasetName } from "./run_files.ts";
 * const projectRoot = "/home/ana/brain-mri-cnn";
 * assert.equal(datasetName("/home/ana/brain-mri-cnn/data/Training", { projectRoot }), "data/Training");
 * assert.equal(datasetName("/mnt/scans/brain-tumor-mri/Training", { projectRoot }), "brain-tumor-mri/Training");
 * assert.equal(datasetName("/home/ana/brain-mri-cnn", { projectRoot }), ".");
 * ```
 */
export function datasetName(
  root: string,
  options: { projectRoot?: string } = {},
): string {
  const projectRoot = resolve(options.projectRoot ?? PROJECT_ROOT);
  const path = resolve(root);
  const inside = relative(projectRoot, path);
  const outside = inside === ".." || inside.startsWith(`..${sep}`) ||
    isAbsolute(inside);
  if (!outside) {
    return inside === "" ? "." : inside.split(sep).join("/");
  }
  const parts = path.split(sep).filter((p) => p !== "");
  return parts.slice(-2).join("/") || ".";
}

/**
 * The dataset as a manifest records it: name, fingerprint, synthetic or not.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { datasetRecord } from "./run_files.ts";
 * assert.deepEqual(
 *   datasetRecord({ root: "/srv/mri/brain-tumor-mri/Training", fingerprint: "ab12", synthetic: false }, { projectRoot: "/home/ana/brain-mri-cnn" }),
 *   { name: "brain-tumor-mri/Training", fingerprint: "ab12", synthetic: false },
 * );
 * ```
 */
export function datasetRecord(
  source: { root: string; fingerprint: string; synthetic: boolean },
  options: { projectRoot?: string } = {},
): DatasetRecord {
  return {
    name: datasetName(source.root, options),
    fingerprint: source.fingerprint,
    synthetic: source.synthetic,
  };
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
  /**
   * Anything the caller added (`manifestExtra`, test metrics...). `deno task
   * train` records `dataset` (a {@linkcode DatasetRecord}); manifests
   * written before it recorded `source` (see {@linkcode manifestDataset}).
   */
  extra: Record<string, unknown>;
}

/**
 * The dataset a manifest records, whatever its age: `extra.dataset` (a
 * {@linkcode DatasetRecord}), or, in older manifests, `extra.source` as
 * `{ root, synthetic }` (`deno task train`) or as a path beside
 * `extra.synthetic` (the notebooks), named with {@linkcode datasetName}
 * and the manifest's fingerprint. Undefined when it records none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { manifestDataset } from "./run_files.ts";
 * const old = {
 *   data: { fingerprint: "ab12" },
 *   extra: { source: { root: "/srv/mri/brain-tumor-mri/Training", synthetic: false } },
 * };
 * assert.deepEqual(manifestDataset(old), {
 *   name: "brain-tumor-mri/Training",
 *   fingerprint: "ab12",
 *   synthetic: false,
 * });
 * assert.equal(manifestDataset({ data: { fingerprint: "" }, extra: {} }), undefined);
 * ```
 */
export function manifestDataset(
  manifest: { data: { fingerprint: string }; extra?: Record<string, unknown> },
): DatasetRecord | undefined {
  const extra = manifest.extra ?? {};
  const dataset = extra.dataset as Partial<DatasetRecord> | undefined;
  if (dataset && typeof dataset.name === "string") {
    return {
      name: dataset.name,
      fingerprint: dataset.fingerprint ?? manifest.data.fingerprint,
      synthetic: dataset.synthetic === true,
    };
  }
  const source = extra.source as
    | string
    | { root?: unknown; synthetic?: unknown }
    | undefined;
  const root = typeof source === "string" ? source : source?.root;
  if (typeof root !== "string") return undefined;
  const synthetic = typeof source === "string"
    ? extra.synthetic
    : source?.synthetic;
  return datasetRecord({
    root,
    fingerprint: manifest.data.fingerprint,
    synthetic: synthetic === true,
  });
}

/**
 * Training timings over a history: epochs, mean seconds per epoch, training
 * milliseconds per image per epoch and mean images per second.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { timingSummary } from "./run_files.ts";
 * const epoch = { epoch: 1, loss: 1, acc: 0.5, val_loss: null, val_acc: null, lr: 1e-3, seconds: 12, trainSeconds: 10, imagesPerSecond: 100 };
 * assert.deepEqual(timingSummary([epoch, { ...epoch, epoch: 2 }]), {
 *   epochs: 2,
 *   meanEpochSeconds: 12,
 *   msPerImagePerEpoch: 10,
 *   meanImagesPerSecond: 100,
 * });
 * ```
 */
export function timingSummary(history: readonly EpochRecord[]): {
  epochs: number;
  meanEpochSeconds: number;
  msPerImagePerEpoch: number;
  meanImagesPerSecond: number;
} {
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

/** What a run's files describe (see {@linkcode runManifest}). */
export interface RunInfo {
  /** The loop's state. */
  state: TrainState;
  /** The settings of this session. */
  config: RunConfig;
  /** The run folder's name, when there is one. */
  run?: string;
  /** Fingerprint of the dataset ("" when unknown). */
  fingerprint: string;
  /** Training images. */
  train: TrainSplit;
  /** Validation images. */
  validation: TrainSplit;
  /** Parameters of the model. */
  params: number;
  /** Library versions. */
  versions: Record<string, string>;
  /** The caller's additions to the manifest (`manifestExtra`). */
  extra?: Record<string, unknown>;
  /** How the data was split, for the saved model's metadata. */
  split?: TrainingSplit;
}

/**
 * A run's manifest as of now (`at`, an ISO time), with status `status`.
 *
 * @example Needs a run's state (see `trainModel`), so it is not run by `deno test --doc`.
 * ```ts ignore
 * import { runManifest } from "./run_files.ts";
 * const manifest = runManifest(info, "running", new Date().toISOString());
 * ```
 */
export function runManifest(
  info: RunInfo,
  status: RunManifest["status"],
  at: string,
): RunManifest {
  const { state, config } = info;
  return {
    format: "brain-mri-cnn/run",
    version: 1,
    run: info.run ?? "",
    status,
    startedAt: state.startedAt,
    updatedAt: at,
    config: state.config,
    data: {
      fingerprint: info.fingerprint,
      classes: config.classes,
      trainImages: info.train.labels.length,
      validationImages: info.validation.labels.length,
      trainCounts: classCounts(info.train.labels, config.classes),
      validationCounts: classCounts(info.validation.labels, config.classes),
    },
    model: { arch: config.arch, params: info.params },
    versions: info.versions,
    timings: {
      trainingSeconds: state.seconds,
      ...timingSummary(state.history),
    },
    resumes: state.resumes,
    metrics: {
      final: state.history.at(-1),
      best: bestRecord(state),
      bestEpoch: state.best.epoch,
    },
    extra: { ...(info.extra ?? {}) },
  };
}

/** The finite numbers of the best epoch's loss and accuracy. */
function bestMetrics(state: TrainState): Record<string, number> {
  const best = bestRecord(state);
  const metrics: Record<string, number> = {};
  if (best) {
    for (const key of ["loss", "acc", "val_loss", "val_acc"] as const) {
      const v = best[key];
      if (typeof v === "number" && Number.isFinite(v)) metrics[key] = v;
    }
  }
  return metrics;
}

/**
 * The metadata of the model a run saves: classes, input, preprocessing,
 * how it was trained (`training`), the dataset's fingerprint and the best
 * epoch's metrics, as of `at` (an ISO time).
 *
 * @example Needs a run's state (see `trainModel`), so it is not run by `deno test --doc`.
 * ```ts ignore
 * import { modelMetadata } from "./run_files.ts";
 * const metadata = modelMetadata(info, new Date().toISOString());
 * ```
 */
export function modelMetadata(info: RunInfo, at: string): ModelMetadata {
  const { state, config } = info;
  const training: TrainingSummary = {
    ...(info.run ? { run: info.run } : {}),
    epochs: state.epochsCompleted,
    bestEpoch: state.best.epoch,
    batchSize: config.batchSize,
    learningRate: config.learningRate,
    seed: config.seed,
    augmentation: config.augmentation ? { ...config.augmentation } : false,
    classWeights: config.classWeights,
    ...(state.stopReason ? { stopReason: state.stopReason } : {}),
    trainImages: info.train.labels.length,
    validationImages: info.validation.labels.length,
    seconds: state.seconds,
    ...(info.split ? { split: { ...info.split } } : {}),
  };
  return {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    classes: config.classes,
    inputSize: config.inputSize,
    channels: config.channels,
    preprocessing: defaultPreprocessing(config.inputSize, config.clahe),
    arch: config.arch,
    training,
    datasetFingerprint: info.fingerprint,
    metrics: bestMetrics(state),
    createdAt: at,
    versions: info.versions,
  };
}

/**
 * Writes a run's `history.json` and `manifest.json` (status `status`),
 * each atomically.
 *
 * @example Needs a run's state (see `trainModel`), so it is not run by `deno test --doc`.
 * ```ts ignore
 * import { runPaths, writeRunFiles } from "./run_files.ts";
 * await writeRunFiles(runPaths("models/demo"), info, "running");
 * ```
 */
export async function writeRunFiles(
  paths: RunPaths,
  info: RunInfo,
  status: RunManifest["status"],
): Promise<void> {
  await writeTextAtomic(
    paths.history,
    JSON.stringify(info.state.history, null, 2) + "\n",
  );
  const manifest = runManifest(info, status, new Date().toISOString());
  await writeTextAtomic(
    paths.manifest,
    JSON.stringify(manifest, null, 2) + "\n",
  );
}

/**
 * Reads a run folder's `manifest.json` (of any age: see
 * {@linkcode manifestDataset} for the dataset it names).
 *
 * @example Needs a trained run folder, so it is not run by `deno test --doc`.
 * ```ts ignore
 * import { readRunManifest } from "./run_files.ts";
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
 * @example Needs a trained run folder, so it is not run by `deno test --doc`.
 * ```ts ignore
 * import { updateRunManifest } from "./run_files.ts";
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
