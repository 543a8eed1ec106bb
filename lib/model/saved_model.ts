/**
 * The project's saved-model format: a folder holding a tfjs Layers model
 * (`model.json` + `weights.bin`) and `metadata.json`, which says what the
 * model expects and what it was trained on.
 *
 * ```text
 * models/<run>/model/
 *   model.json      tfjs Layers format (topology + weights manifest)
 *   weights.bin     all weights, one shard
 *   metadata.json   ModelMetadata: classes in order, input size and channels,
 *                   preprocessing, architecture, training summary, dataset
 *                   fingerprint, metrics
 * ```
 *
 * Saving is atomic: the three files are written into a temporary folder
 * beside the target, which is then renamed into place
 * ({@linkcode writeDirAtomic}); a crash during a save leaves the previous
 * model (or none), never a half-written one.
 *
 * Loading ({@linkcode loadSavedModel}) refuses a model it cannot honour:
 * missing or invalid metadata, an unknown format version, preprocessing this
 * code does not implement, class names that are empty, repeated or hold
 * control characters, or a network whose input or output shape differs from
 * what the metadata promises. It reads only regular files inside the model
 * folder (a symbolic link, to a file or a folder, is refused, and so is a
 * model folder that is one), and checks each weights file's size against
 * what `model.json`'s weights manifest implies before reading it. Every
 * error names the folder and the file.
 *
 * @module
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { writeTextAtomic } from "../core/atomic.ts";
import { DEFAULTS } from "../core/defaults.ts";
import { type Clahe, claheProblems } from "../core/clahe.ts";
import { DEFAULT_NEGATIVE_CLASS, tumourThresholdProblem } from "./decision.ts";
import { isRecord, shownValue } from "../core/text.ts";
import { type LayersModel, tf } from "../core/tf.ts";

type ModelArtifacts = Parameters<
  Parameters<typeof tf.io.withSaveHandler>[0]
>[0];
type WeightsManifestEntry = Parameters<typeof tf.io.decodeWeights>[1][number];

/** The `format` field of every `metadata.json` this module writes. */
export const MODEL_FORMAT = "brain-mri-cnn/saved-model";

/** The current metadata format version. */
export const MODEL_FORMAT_VERSION = 1;

/** Metadata format versions {@linkcode loadSavedModel} can read. */
export const SUPPORTED_MODEL_FORMAT_VERSIONS: readonly number[] = [1];

/** File names inside a saved-model folder. */
export const MODEL_FILES = {
  /** tfjs Layers topology and weights manifest. */
  modelJson: "model.json",
  /** The weights, one shard. */
  weights: "weights.bin",
  /** {@linkcode ModelMetadata}. */
  metadata: "metadata.json",
} as const;

/** How an image becomes the model's input. */
export interface Preprocessing {
  /** Side of the square input, in pixels (equals `inputSize`). */
  size: number;
  /** `"fill"`: the whole image is resized to `size`×`size`, aspect ratio not kept. */
  fit: "fill";
  /** Converted to one grey channel before resizing. */
  grayscale: true;
  /** Pixel values (0–255) are multiplied by this: 1/255, giving [0, 1]. */
  scale: number;
  /**
   * Contrast-limited adaptive histogram equalisation after resizing, before
   * scaling, as OpenCV's `cv2.createCLAHE(clipLimit, (tiles, tiles))`
   * computes it (absent: none).
   */
  clahe?: Clahe;
}

/** What the training run that made a model looked like (a manifest summary). */
export interface TrainingSummary {
  /** Run name (the run folder's name), when trained into one. */
  run?: string;
  /** Epochs trained. */
  epochs: number;
  /** The epoch (1-based) whose weights these are. */
  bestEpoch: number;
  /** Batch size. */
  batchSize: number;
  /** Initial learning rate. */
  learningRate: number;
  /** The run's seed. */
  seed: number;
  /** Augmentation settings, or false when off. */
  augmentation: Record<string, unknown> | false;
  /** Class weights used in the loss, by class name, or null when none. */
  classWeights: Record<string, number> | null;
  /** Why training stopped. */
  stopReason?: string;
  /** Training images. */
  trainImages?: number;
  /** Validation images. */
  validationImages?: number;
  /** Wall-clock seconds of training. */
  seconds?: number;
  /**
   * Fractions of the dataset's Training images carved out as validation and
   * test (with `seed`), so evaluation can re-derive the same splits.
   */
  split?: TrainingSplit;
}

/** How a model's data was split (`training.split` of its metadata). */
export interface TrainingSplit {
  /**
   * The split's seed, when training used another one (`train
   * --train-seed`); absent: the split used `training.seed`. See
   * {@linkcode splitSeed}.
   */
  seed?: number;
  /** Validation fraction of the Training images. */
  validation: number;
  /** Test fraction of the Training images. */
  test: number;
  /**
   * True for a refit (`deno task train --refit`): the validation split was
   * trained on, so it is not held out and cannot select or evaluate anything.
   */
  validationTrained?: boolean;
  /**
   * The grouping radius of the split, in bits of the 64-bit perceptual hash:
   * scans this close (chained) stay in one split. Absent: the near-duplicate
   * radius of the audit (4 bits).
   */
  groupRadius?: number;
}

/**
 * The seed a model's data was split with: `training.split.seed` when the
 * run trained with a seed of its own (`train --train-seed`), else
 * `training.seed`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitSeed } from "./saved_model.ts";
 * assert.equal(splitSeed({ seed: 7 }), 7);
 * assert.equal(splitSeed({ seed: 7, split: { seed: 42, validation: 0.15, test: 0.2 } }), 42);
 * ```
 */
export function splitSeed(
  training: Pick<TrainingSummary, "seed" | "split">,
): number {
  return training.split?.seed ?? training.seed;
}

/**
 * The settings that fix which scans a model's training, validation and test
 * splits hold, in words: the dataset, the split seed, the fractions and the
 * grouping radius (absent: the audit's near-duplicate radius, 4 bits). Two
 * models with the same description were split the same way.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitDescription } from "./saved_model.ts";
 * assert.equal(
 *   splitDescription({
 *     datasetFingerprint: "f",
 *     training: { seed: 7, split: { seed: 42, validation: 0.15, test: 0.2 } },
 *   }),
 *   "seed 42, validation 0.15, test 0.2, grouping radius 4 bits, dataset f",
 * );
 * ```
 */
export function splitDescription(
  metadata: {
    datasetFingerprint: string;
    training: Pick<TrainingSummary, "seed" | "split">;
  },
): string {
  const s = metadata.training.split;
  return `seed ${splitSeed(metadata.training)}, validation ${
    s?.validation ?? DEFAULTS.validationFraction
  }, test ${s?.test ?? DEFAULTS.testFraction}, grouping radius ${
    s?.groupRadius ?? 4
  } bits, dataset ${metadata.datasetFingerprint}`;
}

/**
 * Test-time augmentation: `"hflip"` averages the probabilities of an image
 * and its left-right mirror; `"none"` predicts the image alone.
 */
export type Tta = "none" | "hflip";

/**
 * Whether a value is a {@linkcode Tta} mode.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isTta } from "./saved_model.ts";
 * assert.equal(isTta("hflip"), true);
 * assert.equal(isTta("vflip"), false);
 * ```
 */
export function isTta(value: unknown): value is Tta {
  return value === "none" || value === "hflip";
}

/** Everything a consumer (evaluate, predict, serve) needs to use a model. */
export interface ModelMetadata {
  /** Always {@linkcode MODEL_FORMAT}. */
  format: typeof MODEL_FORMAT;
  /** Metadata version, {@linkcode MODEL_FORMAT_VERSION} when written. */
  formatVersion: number;
  /** Class names, in the order of the model's outputs. */
  classes: string[];
  /** Input height and width in pixels. */
  inputSize: number;
  /** Input channels (1: grayscale). */
  channels: number;
  /** How to turn an image into input. */
  preprocessing: Preprocessing;
  /** Architecture name (`seedCnn`, `vgg`, `resnet`, or a custom name). */
  arch: string;
  /** How it was trained. */
  training: TrainingSummary;
  /** Fingerprint of the dataset it was trained on (see `prepareData`). */
  datasetFingerprint: string;
  /** Metrics by name (`val_acc`, `val_loss`, `test_acc`, ...). */
  metrics: Record<string, number>;
  /** When the model was saved (ISO 8601). */
  createdAt: string;
  /** Library versions at training time. */
  versions?: Record<string, string>;
  /**
   * How predictions are made (absent: no test-time augmentation, argmax),
   * chosen on the validation split after training (`deno task select-tta`,
   * `deno task select-threshold`).
   */
  inference?: Inference;
  /** For an ensemble (`deno task ensemble`): the models it averages. */
  ensemble?: EnsembleRecord;
}

/** The members of an ensemble, as its metadata records them. */
export interface EnsembleRecord {
  /** Each member: its run (or folder) name, architecture and epochs. */
  members: {
    name: string;
    arch: string;
    epochs: number;
    bestEpoch: number;
  }[];
}

/** How a saved model predicts (see {@linkcode ModelMetadata.inference}). */
export interface Inference {
  /** Test-time augmentation (absent: `"none"`). */
  tta?: Tta;
  /**
   * The operating point (lib/model/decision.ts): a tumour is called when
   * P(tumour) = 1 − P(notumor) ≥ this, in (0, 0.5]; absent: argmax.
   */
  tumourThreshold?: number;
}

/**
 * The standard preprocessing for a model of input side `size`, with CLAHE
 * when it is given.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultPreprocessing } from "./saved_model.ts";
 * assert.deepEqual(defaultPreprocessing(128), {
 *   size: 128,
 *   fit: "fill",
 *   grayscale: true,
 *   scale: 1 / 255,
 * });
 * assert.deepEqual(defaultPreprocessing(128, { clipLimit: 2, tiles: 8 }).clahe, {
 *   clipLimit: 2,
 *   tiles: 8,
 * });
 * ```
 */
export function defaultPreprocessing(
  size: number,
  clahe?: Clahe | null,
): Preprocessing {
  return {
    size,
    fit: "fill",
    grayscale: true,
    scale: 1 / 255,
    ...(clahe
      ? { clahe: { clipLimit: clahe.clipLimit, tiles: clahe.tiles } }
      : {}),
  };
}

/**
 * Whether two models turn an image into input the same way (size, fit,
 * scale, CLAHE), whatever order their metadata lists the settings in.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultPreprocessing, samePreprocessing } from "./saved_model.ts";
 * const plain = defaultPreprocessing(128);
 * assert.equal(samePreprocessing(plain, { ...plain }), true);
 * assert.equal(samePreprocessing(plain, defaultPreprocessing(64)), false);
 * assert.equal(
 *   samePreprocessing(plain, defaultPreprocessing(128, { clipLimit: 2, tiles: 8 })),
 *   false,
 * );
 * ```
 */
export function samePreprocessing(a: Preprocessing, b: Preprocessing): boolean {
  const canonical = (p: Preprocessing) =>
    JSON.stringify(p, Object.keys({ ...p, ...p.clahe }).sort());
  return canonical(a) === canonical(b);
}

/** A saved model could not be used; the message names the folder. */
export class SavedModelError extends Error {
  /** The folder. */
  readonly dir: string;
  /**
   * Makes the error.
   *
   * @param dir the model folder
   * @param problem what is wrong
   * @param options the cause, if any
   */
  constructor(dir: string, problem: string, options?: ErrorOptions) {
    super(`saved model ${dir}: ${problem}`, options);
    this.name = "SavedModelError";
    this.dir = dir;
  }
}

function positiveInt(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value > 0;
}

/**
 * Throws unless `value` is a metadata object of this format in a version this
 * code reads: the checks that make every other check meaningless.
 */
function checkFormat(
  value: unknown,
  dir: string,
): asserts value is Record<string, unknown> {
  if (!isRecord(value)) {
    throw new SavedModelError(dir, "metadata.json is not a JSON object");
  }
  if (value.format !== MODEL_FORMAT) {
    throw new SavedModelError(
      dir,
      `metadata.json has format ${
        shownValue(value.format)
      }, expected "${MODEL_FORMAT}"`,
    );
  }
  if (
    !SUPPORTED_MODEL_FORMAT_VERSIONS.includes(value.formatVersion as number)
  ) {
    throw new SavedModelError(
      dir,
      `unknown metadata format version ${
        shownValue(value.formatVersion)
      } (this code reads version${
        SUPPORTED_MODEL_FORMAT_VERSIONS.length > 1 ? "s" : ""
      } ${SUPPORTED_MODEL_FORMAT_VERSIONS.join(", ")}); update the code or ` +
        "re-train the model",
    );
  }
}

/** C0 and C1 control characters, DEL included (e.g. terminal escapes). */
// deno-lint-ignore no-control-regex
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * What is wrong with the class names: fewer than two, not strings, empty,
 * repeated, or holding control characters (which would reach terminals).
 */
function classProblems(classes: unknown): string[] {
  const need = "classes must be at least two distinct non-empty names";
  if (!Array.isArray(classes) || classes.length < 2) return [need];
  const problems: string[] = [];
  const seen = new Set<unknown>();
  for (const [i, name] of classes.entries()) {
    const quoted = shownValue(name);
    if (typeof name !== "string") {
      problems.push(`class ${i} ${quoted} is not a string`);
    } else if (!name) problems.push(`class ${i} is empty`);
    else if (CONTROL_CHARACTER.test(name)) {
      problems.push(`class ${i} ${quoted} has a control character`);
    }
    if (seen.has(name)) problems.push(`class ${i} ${quoted} is repeated`);
    seen.add(name);
  }
  return problems.length ? [`${need}: ${problems.join(", ")}`] : [];
}

/** What is wrong with the class names and the input's size and channels. */
function inputProblems(value: Record<string, unknown>): string[] {
  const problems = classProblems(value.classes);
  for (const field of ["inputSize", "channels"]) {
    if (!positiveInt(value[field])) {
      problems.push(
        `${field} must be a positive integer (got ${shownValue(value[field])})`,
      );
    }
  }
  return problems;
}

/** What is wrong with the preprocessing (only what this code implements). */
function preprocessingProblems(value: Record<string, unknown>): string[] {
  const pre = value.preprocessing;
  if (!isRecord(pre)) return ["preprocessing is missing"];
  const problems: string[] = [];
  if (pre.size !== value.inputSize) {
    problems.push(
      `preprocessing.size ${pre.size} differs from inputSize ${value.inputSize}`,
    );
  }
  if (pre.fit !== "fill") {
    problems.push(
      `preprocessing.fit ${shownValue(pre.fit)} is not supported (only "fill")`,
    );
  }
  if (pre.grayscale !== true) {
    problems.push("preprocessing.grayscale must be true");
  }
  if (typeof pre.scale !== "number" || Math.abs(pre.scale * 255 - 1) > 1e-9) {
    problems.push(
      `preprocessing.scale ${
        shownValue(pre.scale)
      } is not supported (only 1/255)`,
    );
  }
  if (pre.clahe !== undefined) {
    const size = typeof pre.size === "number" ? pre.size : undefined;
    problems.push(
      ...claheProblems(pre.clahe, size).map((p) => `preprocessing.${p}`),
    );
  }
  if (pre.grayscale === true && value.channels !== 1) {
    problems.push(
      `channels is ${value.channels} but preprocessing is grayscale (1 channel)`,
    );
  }
  return problems;
}

/** What is wrong with the recorded way of predicting, if there is one. */
function inferenceProblems(value: Record<string, unknown>): string[] {
  const inf = value.inference;
  if (inf === undefined) return [];
  if (!isRecord(inf)) return ["inference must be an object"];
  const problems: string[] = [];
  if (inf.tta !== undefined && !isTta(inf.tta)) {
    problems.push('inference.tta must be "none" or "hflip"');
  }
  if (inf.tumourThreshold !== undefined) {
    const problem = tumourThresholdProblem(inf.tumourThreshold);
    if (problem) problems.push(`inference.${problem}`);
    else if (
      Array.isArray(value.classes) &&
      !value.classes.includes(DEFAULT_NEGATIVE_CLASS)
    ) {
      problems.push(
        `inference.tumourThreshold needs a "${DEFAULT_NEGATIVE_CLASS}" class`,
      );
    }
  }
  return problems;
}

/**
 * Checks parsed `metadata.json` content and returns it typed; throws a
 * {@linkcode SavedModelError} naming `dir` and every problem found.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultPreprocessing, validateMetadata } from "./saved_model.ts";
 * assert.throws(
 *   () => validateMetadata({ format: "something else" }, "models/x/model"),
 *   /^SavedModelError: saved model models\/x\/model: metadata.json has format "something else"/,
 * );
 * assert.throws(
 *   () =>
 *     validateMetadata({
 *       format: "brain-mri-cnn/saved-model", formatVersion: 1,
 *       classes: ["a", "a"], inputSize: 64, channels: 1,
 *       preprocessing: defaultPreprocessing(32), arch: "resnet", training: {},
 *       datasetFingerprint: "", metrics: {},
 *     }, "models/x/model"),
 *   /invalid metadata.json: classes must be at least two distinct non-empty names: class 1 "a" is repeated; preprocessing.size 32 differs from inputSize 64$/,
 * );
 * ```
 */
export function validateMetadata(value: unknown, dir: string): ModelMetadata {
  checkFormat(value, dir);
  const problems = [
    ...inputProblems(value),
    ...preprocessingProblems(value),
  ];
  if (typeof value.arch !== "string" || !value.arch) {
    problems.push("arch must be a non-empty string");
  }
  if (!isRecord(value.training)) {
    problems.push("training (the run summary) is missing");
  }
  problems.push(...inferenceProblems(value));
  if (typeof value.datasetFingerprint !== "string") {
    problems.push("datasetFingerprint must be a string");
  }
  if (
    !isRecord(value.metrics) ||
    !Object.values(value.metrics).every((v) => typeof v === "number")
  ) {
    problems.push("metrics must map names to numbers");
  }
  if (problems.length) {
    throw new SavedModelError(
      dir,
      `invalid metadata.json: ${problems.join("; ")}`,
    );
  }
  return value as unknown as ModelMetadata;
}

// ---------------------------------------------------------------------------
// Atomic folders
// ---------------------------------------------------------------------------

function siblings(target: string, kind: "tmp" | "old"): string[] {
  const parent = dirname(target);
  const prefix = `.${basename(target)}.${kind}-`;
  try {
    return readdirSync(parent)
      .filter((name) => name.startsWith(prefix))
      .map((name) => join(parent, name));
  } catch {
    return [];
  }
}

/**
 * Repairs the one state an interrupted {@linkcode writeDirAtomic} can leave:
 * the target moved aside but the new folder not yet renamed in. The previous
 * folder is moved back. Returns true when it repaired something.
 *
 * @example A folder moved aside by a swap that never finished
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { recoverDirAtomic } from "./saved_model.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(join(dir, ".model.old-1234"));
 * assert.equal(await recoverDirAtomic(join(dir, "model")), true);
 * assert.ok((await Deno.stat(join(dir, "model"))).isDirectory);
 * assert.equal(await recoverDirAtomic(join(dir, "model")), false); // nothing to repair
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function recoverDirAtomic(target: string): Promise<boolean> {
  const dir = resolve(target);
  if (existsSync(dir)) return false;
  const old = siblings(dir, "old")
    .filter((p) => statSync(p).isDirectory())
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (!old.length) return false;
  await Deno.rename(old[0], dir);
  return true;
}

async function writeSynced(path: string, data: Uint8Array): Promise<void> {
  const file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  try {
    let offset = 0;
    while (offset < data.length) {
      offset += await file.write(data.subarray(offset));
    }
    await file.syncData();
  } finally {
    file.close();
  }
}

/** Writes files into the temporary folder of a {@linkcode writeDirAtomic}. */
export interface DirWriter {
  /** The temporary folder being filled. */
  readonly path: string;
  /** Writes (and syncs) one file, given as bytes or text, relative to the folder. */
  write(name: string, data: Uint8Array | string): Promise<void>;
}

/**
 * Replaces the folder `target` atomically: `fill` writes the new content
 * into a temporary folder beside it (`.<name>.tmp-*`), which is then renamed
 * into place; an existing target is moved aside first and deleted after.
 * If `fill` throws (or the process dies), the previous folder stays as it
 * was. Stale temporary folders of earlier crashed writes are removed after a
 * successful one. Not for concurrent writers of the same target.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeDirAtomic } from "./saved_model.ts";
 * const dir = await Deno.makeTempDir();
 * await writeDirAtomic(`${dir}/run`, async (out) => {
 *   await out.write("a.txt", "hello");
 * });
 * assert.equal(await Deno.readTextFile(`${dir}/run/a.txt`), "hello");
 * // A fill that fails leaves the previous folder as it was.
 * await assert.rejects(writeDirAtomic(`${dir}/run`, async (out) => {
 *   await out.write("a.txt", "half");
 *   throw new Error("disk full");
 * }), /disk full/);
 * assert.equal(await Deno.readTextFile(`${dir}/run/a.txt`), "hello");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeDirAtomic(
  target: string,
  fill: (out: DirWriter) => Promise<void>,
): Promise<void> {
  const dir = resolve(target);
  const parent = dirname(dir);
  await Deno.mkdir(parent, { recursive: true });
  await recoverDirAtomic(dir);
  const tag = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const tmp = join(parent, `.${basename(dir)}.tmp-${tag}`);
  await Deno.mkdir(tmp);
  try {
    await fill({
      path: tmp,
      write: (name, data) =>
        writeSynced(
          join(tmp, name),
          typeof data === "string" ? new TextEncoder().encode(data) : data,
        ),
    });
  } catch (error) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw error;
  }
  if (existsSync(dir)) {
    const old = join(parent, `.${basename(dir)}.old-${tag}`);
    await Deno.rename(dir, old);
    await Deno.rename(tmp, dir);
    await Deno.remove(old, { recursive: true }).catch(() => {});
  } else {
    await Deno.rename(tmp, dir);
  }
  for (const stale of [...siblings(dir, "tmp"), ...siblings(dir, "old")]) {
    await Deno.remove(stale, { recursive: true }).catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// Saving and loading
// ---------------------------------------------------------------------------

/** A model serialised in the tfjs Layers format, in memory. */
export interface LayersArtifacts {
  /** The content of `model.json`. */
  modelJson: Record<string, unknown>;
  /** The content of `weights.bin`. */
  weights: Uint8Array;
}

/**
 * Serialises a model to the tfjs Layers format in memory (through
 * `tf.io.withSaveHandler`), with one weights file called `weightsFile`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layersArtifacts } from "./saved_model.ts";
 * import { tf } from "../core/tf.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
 * const { modelJson, weights } = await layersArtifacts(model);
 * assert.equal(modelJson.format, "layers-model");
 * assert.equal(weights.byteLength, (3 * 2 + 2) * 4); // kernel and bias, float32
 * model.dispose();
 * ```
 */
export async function layersArtifacts(
  model: LayersModel,
  weightsFile: string = MODEL_FILES.weights,
): Promise<LayersArtifacts> {
  let captured: ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler((artifacts) => {
    captured = artifacts;
    return Promise.resolve({
      modelArtifactsInfo: {
        dateSaved: new Date(),
        modelTopologyType: "JSON",
      },
    });
  }));
  if (!captured) throw new Error("model.save produced no artifacts");
  const data = captured.weightData === undefined
    ? new ArrayBuffer(0)
    : tf.io.CompositeArrayBuffer.join(captured.weightData);
  const modelJson: Record<string, unknown> = {
    format: captured.format ?? "layers-model",
    generatedBy: captured.generatedBy,
    convertedBy: captured.convertedBy ?? null,
    modelTopology: captured.modelTopology,
    weightsManifest: [{
      paths: [weightsFile],
      weights: captured.weightSpecs ?? [],
    }],
  };
  return { modelJson, weights: new Uint8Array(data) };
}

/** Options for {@linkcode saveModel}. */
export interface SaveModelOptions {
  /** The model to save. */
  model: LayersModel;
  /** Target folder (replaced atomically). */
  dir: string;
  /** Its metadata (checked before anything is written). */
  metadata: ModelMetadata;
}

/** What {@linkcode saveModel} wrote. */
export interface SavedModelInfo {
  /** The folder, absolute. */
  dir: string;
  /** Total bytes of the three files. */
  bytes: number;
}

/**
 * Saves a model with its metadata, atomically. The metadata is checked first
 * ({@linkcode validateMetadata}) and against the model's input and output
 * shapes, so a model that could not be loaded again is never written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readdirSync } from "node:fs";
 * import {
 *   defaultPreprocessing,
 *   MODEL_FORMAT,
 *   MODEL_FORMAT_VERSION,
 *   readModelMetadata,
 *   saveModel,
 * } from "./saved_model.ts";
 * import { buildModel } from "./models.ts";
 * const model = buildModel("seedCnn", { inputSize: 32, channels: 1, numClasses: 2, seed: 1 });
 * const dir = await Deno.makeTempDir();
 * const saved = await saveModel({
 *   model,
 *   dir: `${dir}/model`,
 *   metadata: {
 *     format: MODEL_FORMAT, formatVersion: MODEL_FORMAT_VERSION,
 *     classes: ["a", "b"], inputSize: 32, channels: 1,
 *     preprocessing: defaultPreprocessing(32), arch: "seedCnn",
 *     training: { epochs: 0, bestEpoch: 0, batchSize: 32, learningRate: 1e-3, seed: 1, augmentation: false, classWeights: null },
 *     datasetFingerprint: "", metrics: {}, createdAt: new Date().toISOString(),
 *   },
 * });
 * assert.deepEqual(readdirSync(saved.dir).sort(), ["metadata.json", "model.json", "weights.bin"]);
 * assert.deepEqual((await readModelMetadata(saved.dir)).classes, ["a", "b"]);
 * model.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveModel(
  options: SaveModelOptions,
): Promise<SavedModelInfo> {
  const dir = resolve(options.dir);
  const metadata = validateMetadata(
    JSON.parse(JSON.stringify(options.metadata)),
    dir,
  );
  checkShapes(options.model, metadata, dir);
  const { modelJson, weights } = await layersArtifacts(options.model);
  const modelText = JSON.stringify(modelJson);
  const metadataText = JSON.stringify(metadata, null, 2) + "\n";
  await writeDirAtomic(dir, async (out) => {
    await out.write(MODEL_FILES.weights, weights);
    await out.write(MODEL_FILES.modelJson, modelText);
    await out.write(MODEL_FILES.metadata, metadataText);
  });
  const encoder = new TextEncoder();
  return {
    dir,
    bytes: weights.byteLength + encoder.encode(modelText).byteLength +
      encoder.encode(metadataText).byteLength,
  };
}

function checkShapes(
  model: LayersModel,
  metadata: ModelMetadata,
  dir: string,
): void {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new SavedModelError(
      dir,
      `the network has ${model.inputs.length} inputs and ` +
        `${model.outputs.length} outputs; expected one of each`,
    );
  }
  const input = model.inputs[0].shape;
  const want = [
    null,
    metadata.inputSize,
    metadata.inputSize,
    metadata.channels,
  ];
  if (input.length !== 4 || input.some((d, i) => i > 0 && d !== want[i])) {
    throw new SavedModelError(
      dir,
      `the network's input shape [${
        input.map((d) => d ?? "batch")
      }] does not match the metadata ` +
        `(inputSize ${metadata.inputSize}, channels ${metadata.channels}: ` +
        `[batch,${want.slice(1)}])`,
    );
  }
  const output = model.outputs[0].shape;
  if (output.length !== 2 || output[1] !== metadata.classes.length) {
    throw new SavedModelError(
      dir,
      `the network's output shape [${
        output.map((d) => d ?? "batch")
      }] does not match the ${metadata.classes.length} classes of the metadata`,
    );
  }
}

/** Largest `model.json` or `metadata.json` read, in bytes. */
export const MAX_JSON_BYTES = 16 * 1024 * 1024;

/** Largest total of weights read, in bytes (what the manifest may describe). */
export const MAX_WEIGHTS_BYTES = 2 * 1024 * 1024 * 1024;

/**
 * How {@linkcode lstatInside} and {@linkcode readFileInside} report a
 * problem with a folder's file: what the folder is, and the error to throw.
 */
export interface FolderErrors {
  /** What the folder holds, in messages ("model", "checkpoint"). */
  kind: string;
  /** What names the files read, in messages ("model.json"). */
  namedBy: string;
  /** The error to throw for a problem (the message names the file). */
  error(problem: string, options?: ErrorOptions): Error;
}

/** The errors of a saved-model folder: {@linkcode SavedModelError}. */
function modelErrors(dir: string): FolderErrors {
  return {
    kind: "model",
    namedBy: "model.json",
    error: (problem, options) => new SavedModelError(dir, problem, options),
  };
}

/** How a file of the model folder is called in messages. */
function fileLabel(name: string): string {
  const safe = /^[\w./-]+$/.test(name) ? name : shownValue(name);
  return name.endsWith(".json") ? safe : `weights file ${safe}`;
}

/**
 * Throws unless `name` (relative to the folder `dir`) is a regular file
 * inside it reached through real folders: no step is a symbolic link, none
 * leaves the folder. Returns the file's status (from `Deno.lstat`); reads
 * nothing. Problems are reported through `errors` (default: the model
 * folder's {@linkcode SavedModelError}).
 */
export async function lstatInside(
  dir: string,
  name: string,
  errors: FolderErrors = modelErrors(dir),
): Promise<Deno.FileInfo> {
  const parts = name.split(/[\\/]/);
  if (
    !name || isAbsolute(name) ||
    parts.some((p) => p === "" || p === "." || p === "..")
  ) {
    throw errors.error(
      `${errors.namedBy} names an invalid weights file ${shownValue(name)}`,
    );
  }
  let path = dir;
  for (const [i, part] of parts.entries()) {
    path = join(path, part);
    const last = i === parts.length - 1;
    const step = last
      ? fileLabel(name)
      : shownValue(parts.slice(0, i + 1).join("/"));
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw errors.error(`${step} is missing`, { cause: error });
      }
      throw errors.error(`cannot read ${step}: ${error}`, { cause: error });
    }
    if (info.isSymlink) {
      throw errors.error(
        `${step} is a symbolic link; a ${errors.kind} folder holds only regular files`,
      );
    }
    if (last ? !info.isFile : !info.isDirectory) {
      throw errors.error(
        `${step} is not a ${last ? "regular file" : "folder"}`,
      );
    }
    if (last) return info;
  }
  throw errors.error(`${shownValue(name)} names no file`);
}

/**
 * What {@linkcode readFileInside} may accept as the file's size: exactly what
 * a manifest describes (`describedBy`, default "model.json"), or a bound.
 */
export type SizeRule =
  | { exactly: number; describedBy?: string }
  | { atMost: number };

function sizeProblem(size: number, rule: SizeRule): string | undefined {
  if ("exactly" in rule) {
    return size === rule.exactly ? undefined : `: weights are ${size} bytes, ` +
      `${rule.describedBy ?? "model.json"} describes ${rule.exactly} ` +
      "(truncated or mismatched files)";
  }
  return size <= rule.atMost
    ? undefined
    : ` is ${size} bytes, more than the ${rule.atMost} allowed`;
}

/**
 * The bytes of the regular file `name` inside the folder `dir` (see
 * {@linkcode lstatInside}), read only after its size passes `rule`, and only
 * as many bytes as it had then. Problems are reported through `errors`
 * (default: the model folder's {@linkcode SavedModelError}).
 *
 * @example A file bigger than allowed is refused before it is read
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { readFileInside } from "./saved_model.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(join(dir, "a.json"), "[1,2,3]");
 * assert.equal((await readFileInside(dir, "a.json", { atMost: 100 })).length, 7);
 * await assert.rejects(
 *   readFileInside(dir, "a.json", { atMost: 4 }),
 *   /a\.json is 7 bytes, more than the 4 allowed/,
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readFileInside(
  dir: string,
  name: string,
  rule: SizeRule,
  errors: FolderErrors = modelErrors(dir),
): Promise<Uint8Array> {
  const before = await lstatInside(dir, name, errors);
  const problem = sizeProblem(before.size, rule);
  if (problem) throw errors.error(`${fileLabel(name)}${problem}`);
  using file = await Deno.open(join(dir, name), { read: true });
  const info = await file.stat();
  if (
    !info.isFile || info.ino !== before.ino || info.dev !== before.dev ||
    info.size !== before.size
  ) {
    throw errors.error(`${fileLabel(name)} changed while it was being read`);
  }
  const bytes = new Uint8Array(before.size);
  let offset = 0;
  while (offset < bytes.length) {
    const n = await file.read(bytes.subarray(offset));
    if (n === null) break;
    offset += n;
  }
  if (offset !== bytes.length) {
    throw errors.error(`${fileLabel(name)} changed while it was being read`);
  }
  return bytes;
}

async function readJson(dir: string, name: string): Promise<unknown> {
  const bytes = await readFileInside(dir, name, { atMost: MAX_JSON_BYTES });
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
  } catch (error) {
    throw new SavedModelError(dir, `${name} is not valid JSON: ${error}`, {
      cause: error,
    });
  }
}

/**
 * Throws unless `abs` is a real folder (not a symbolic link to one, which
 * would let a model read files from elsewhere).
 */
async function checkModelFolder(abs: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(abs);
  } catch {
    throw new SavedModelError(abs, "no such folder");
  }
  if (info.isSymlink) {
    throw new SavedModelError(
      abs,
      "the model folder is a symbolic link; load the folder it points to",
    );
  }
  if (!info.isDirectory) throw new SavedModelError(abs, "no such folder");
}

/**
 * Reads and checks a saved model's `metadata.json` without loading the
 * network.
 *
 * @example The shipped model's metadata
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { PROJECT_ROOT, SHIPPED_MODEL } from "../core/paths.ts";
 * import { readModelMetadata } from "./saved_model.ts";
 * const metadata = await readModelMetadata(join(PROJECT_ROOT, "models", SHIPPED_MODEL));
 * assert.deepEqual(metadata.classes, ["glioma", "meningioma", "notumor", "pituitary"]);
 * assert.equal(metadata.inputSize, 128);
 * ```
 */
export async function readModelMetadata(dir: string): Promise<ModelMetadata> {
  const abs = resolveModelDir(dir);
  await recoverDirAtomic(abs);
  await checkModelFolder(abs);
  return validateMetadata(await readJson(abs, MODEL_FILES.metadata), abs);
}

/**
 * The saved-model folder a path names: the folder itself when it holds
 * `metadata.json`, else its `model/` subfolder when that does (so a training
 * run folder such as `models/resnet-128-e11` works where
 * `models/resnet-128-e11/model` is meant). Returns an absolute path; does not
 * check that anything exists.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { PROJECT_ROOT, SHIPPED_MODEL } from "../core/paths.ts";
 * import { resolveModelDir } from "./saved_model.ts";
 * const run = join(PROJECT_ROOT, "models", SHIPPED_MODEL);
 * assert.equal(resolveModelDir(run), join(run, "model"));
 * assert.equal(resolveModelDir(join(run, "model")), join(run, "model"));
 * assert.equal(resolveModelDir(join(run, "nowhere")), join(run, "nowhere"));
 * ```
 */
export function resolveModelDir(dir: string): string {
  const abs = resolve(dir);
  if (
    !existsSync(join(abs, MODEL_FILES.metadata)) &&
    existsSync(join(abs, "model", MODEL_FILES.metadata))
  ) return join(abs, "model");
  return abs;
}

/** A loaded model and its metadata. */
export interface LoadedModel {
  /** The network (uncompiled; call `predict`). */
  model: LayersModel;
  /** Its checked metadata. */
  metadata: ModelMetadata;
}

/**
 * Loads a saved model folder and checks it against its metadata. Throws a
 * {@linkcode SavedModelError} naming the folder when the metadata is missing
 * or invalid, its format version unknown, a file missing, a symbolic link or
 * not a regular file, a weights file's size not what the manifest implies
 * (checked before it is read), or the network's input/output shape differs
 * from the metadata.
 *
 * @example The shipped model on a blank scan
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { PROJECT_ROOT, SHIPPED_MODEL } from "../core/paths.ts";
 * import { loadSavedModel } from "./saved_model.ts";
 * import { type Tensor, tf } from "../core/tf.ts";
 * const { model, metadata } = await loadSavedModel(join(PROJECT_ROOT, "models", SHIPPED_MODEL));
 * const x = tf.zeros([1, metadata.inputSize, metadata.inputSize, metadata.channels]);
 * const probs = model.predict(x) as Tensor;
 * assert.deepEqual(probs.shape, [1, metadata.classes.length]);
 * assert.ok(Math.abs(probs.sum().arraySync() as number - 1) < 1e-5);
 * tf.dispose([x, probs]);
 * model.dispose();
 * ```
 */
export async function loadSavedModel(dir: string): Promise<LoadedModel> {
  const abs = resolveModelDir(dir);
  const metadata = await readModelMetadata(abs);
  const json = await readLayersJson(abs);
  const weights = await readWeightFiles(
    abs,
    json.weightsManifest as unknown[],
  );
  const model = await loadNetwork(abs, json, weights);
  try {
    checkShapes(model, metadata, abs);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { model, metadata };
}

/** `model.json`, checked to be a tfjs Layers model with a weights manifest. */
async function readLayersJson(abs: string): Promise<Record<string, unknown>> {
  const json = await readJson(abs, MODEL_FILES.modelJson);
  if (!isRecord(json) || !isRecord(json.modelTopology)) {
    throw new SavedModelError(
      abs,
      "model.json has no modelTopology (not a tfjs Layers model)",
    );
  }
  if (!Array.isArray(json.weightsManifest)) {
    throw new SavedModelError(abs, "model.json has no weightsManifest");
  }
  return json;
}

/** Bytes per element of a weight's stored dtype (quantised: the stored one). */
const DTYPE_BYTES: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

/**
 * Bytes one manifest entry occupies in the weights files, or a problem when
 * the entry is malformed or of a dtype whose size is not fixed.
 */
export function specBytes(spec: unknown): number | string {
  if (!isRecord(spec) || typeof spec.name !== "string") {
    return "a weight has no name";
  }
  const shape = spec.shape;
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => typeof d === "number" && Number.isInteger(d) && d >= 0)
  ) {
    return `weight ${shownValue(spec.name)} has an invalid shape`;
  }
  const q = spec.quantization;
  const dtype = isRecord(q) ? q.dtype : spec.dtype;
  const bytes = typeof dtype === "string" ? DTYPE_BYTES[dtype] : undefined;
  if (bytes === undefined) {
    return `weight ${shownValue(spec.name)} has unsupported dtype ${
      shownValue(dtype)
    }`;
  }
  return (shape as number[]).reduce((a, b) => a * b, 1) * bytes;
}

/** One group of a weights manifest: its files and what they must hold. */
interface WeightGroup {
  paths: string[];
  specs: WeightsManifestEntry[];
  bytes: number;
}

/** The manifest's groups, each with the bytes its specs imply. */
function weightGroups(abs: string, manifest: unknown[]): WeightGroup[] {
  const malformed = (problem: string) =>
    new SavedModelError(
      abs,
      `model.json: malformed weightsManifest: ${problem}`,
    );
  return manifest.map((group) => {
    if (
      !isRecord(group) || !Array.isArray(group.paths) ||
      !Array.isArray(group.weights) ||
      !group.paths.every((p) => typeof p === "string")
    ) {
      throw malformed("a group lacks paths or weights");
    }
    let bytes = 0;
    for (const spec of group.weights) {
      const size = specBytes(spec);
      if (typeof size === "string") throw malformed(size);
      bytes += size;
    }
    return {
      paths: group.paths as string[],
      specs: group.weights as WeightsManifestEntry[],
      bytes,
    };
  });
}

/**
 * The weight specs of a manifest and its files' bytes as one buffer. Each
 * file's size is checked against what the manifest implies before it is
 * read; a file that is not a regular file inside the folder is refused.
 */
async function readWeightFiles(
  abs: string,
  manifest: unknown[],
): Promise<{ specs: WeightsManifestEntry[]; data: Uint8Array }> {
  const groups = weightGroups(abs, manifest);
  const total = groups.reduce((sum, g) => sum + g.bytes, 0);
  if (total > MAX_WEIGHTS_BYTES) {
    throw new SavedModelError(
      abs,
      `model.json describes ${total} bytes of weights, more than the ` +
        `${MAX_WEIGHTS_BYTES} allowed`,
    );
  }
  const sizes = await Promise.all(
    groups.map((g) => weightFileSizes(abs, g)),
  );
  const data = new Uint8Array(total);
  let offset = 0;
  for (const [i, group] of groups.entries()) {
    for (const [j, path] of group.paths.entries()) {
      const bytes = await readFileInside(abs, path, { exactly: sizes[i][j] });
      data.set(bytes, offset);
      offset += bytes.byteLength;
    }
  }
  return { specs: groups.flatMap((g) => g.specs), data };
}

/**
 * The sizes of a group's files, after checking (without reading them) that
 * they are regular files inside the folder adding up to the group's bytes.
 */
async function weightFileSizes(
  abs: string,
  group: WeightGroup,
): Promise<number[]> {
  const sizes: number[] = [];
  for (const path of group.paths) {
    sizes.push((await lstatInside(abs, path)).size);
  }
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== group.bytes) {
    throw new SavedModelError(
      abs,
      `weights file${group.paths.length === 1 ? "" : "s"} ` +
        `${group.paths.join(", ")}: weights are ${total} bytes, model.json ` +
        `describes ${group.bytes} (truncated or mismatched files)`,
    );
  }
  return sizes;
}

/** The network from its topology and weights, in memory. */
async function loadNetwork(
  abs: string,
  json: Record<string, unknown>,
  weights: { specs: WeightsManifestEntry[]; data: Uint8Array },
): Promise<LayersModel> {
  try {
    return await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: json.modelTopology as object,
      weightSpecs: weights.specs,
      weightData: weights.data.buffer as ArrayBuffer,
      format: json.format as string | undefined,
    }));
  } catch (error) {
    throw new SavedModelError(
      abs,
      `the network cannot be loaded: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** `current.inference` with `patch.inference` over it, keys set to `undefined` dropped; `undefined` if nothing is left. */
function mergeInference(
  current: ModelMetadata,
  patch: Partial<ModelMetadata>,
): Inference | undefined {
  const merged = Object.fromEntries(
    Object.entries({ ...current.inference, ...patch.inference }).filter((
      [, v],
    ) => v !== undefined),
  );
  return Object.keys(merged).length ? merged as Inference : undefined;
}

/**
 * Changes fields of a saved model's `metadata.json` (atomically, checked),
 * e.g. to add test metrics after training. `metrics` and `inference` are
 * merged (a key set to `undefined` in `inference` is removed, and an empty
 * `inference` with it); other fields replace.
 *
 * @example On a copy of the shipped model's metadata
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { PROJECT_ROOT, SHIPPED_MODEL } from "../core/paths.ts";
 * import { updateModelMetadata } from "./saved_model.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.copyFile(
 *   join(PROJECT_ROOT, "models", SHIPPED_MODEL, "model", "metadata.json"),
 *   join(dir, "metadata.json"),
 * );
 * const updated = await updateModelMetadata(dir, { metrics: { test_acc: 0.95 } });
 * assert.equal(updated.metrics.test_acc, 0.95);
 * assert.equal(typeof updated.metrics.acc, "number"); // merged, not replaced
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function updateModelMetadata(
  dir: string,
  patch: Partial<ModelMetadata>,
): Promise<ModelMetadata> {
  const abs = resolve(dir);
  const current = await readModelMetadata(abs);
  const next = validateMetadata(
    {
      ...current,
      ...patch,
      metrics: { ...current.metrics, ...(patch.metrics ?? {}) },
      ...(patch.inference ? { inference: mergeInference(current, patch) } : {}),
    },
    abs,
  );
  await writeTextAtomic(
    join(abs, MODEL_FILES.metadata),
    JSON.stringify(next, null, 2) + "\n",
  );
  return next;
}
