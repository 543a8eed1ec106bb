/**
 * Predicting the class of scans with a saved model, from a terminal or a
 * notebook.
 *
 * `deno task predict -- [--model DIR] [--json] [--gradcam OUT_DIR]
 * [--batch-size N] FILE_OR_DIR...`
 *
 * - **Model**: `--model DIR` (a saved-model folder or a run folder holding
 *   `model/`), default `projectPaths().defaultModel` (the shipped
 *   `models/<SHIPPED_MODEL>`, or `BRAIN_MRI_MODEL`).
 * - **Preprocessing** comes from the model's `metadata.json`, never from
 *   flags, through the same functions training and `evaluate` use
 *   (`preprocessJobs` with the metadata's size and fit, then
 *   `predictProbabilities` with its scale): a scan gets exactly the pixels it
 *   would get in training.
 * - **Inputs**: files and folders. Folders are walked recursively, in sorted
 *   order (by code unit), skipping hidden entries. Every file is sniffed by
 *   its first bytes, not trusted by its name: JPEG and PNG are used; anything
 *   else, an empty, unreadable, truncated or corrupt file is reported (file
 *   and reason) and skipped. The same file named twice is predicted once.
 * - **Output**: one line per file: path, predicted class, confidence and
 *   every class probability, in aligned columns; `--json`: one object
 *   `{ model, predictions, errors }` (see {@linkcode predictionsJson}).
 * - **`--gradcam OUT_DIR`**: one PNG per file, the Grad-CAM map of the
 *   predicted class over the scan **at the model's input size** (what the
 *   network saw, e.g. 128×128), written atomically as
 *   `<file name>.<10 hex digits of SHA-256 of the absolute path>.png`, so
 *   same-named files from different folders never collide.
 * - **`--engine tfjs|onnx`** (default `BRAIN_MRI_ENGINE`, else tfjs): what
 *   runs the network (lib/model/engine.ts); both give the same probabilities
 *   within 1e-5. The `--json` model info records it (`model.engine`).
 *   Grad-CAM always runs through tfjs.
 * - **`--batch-size N`** (default 1, `DEFAULTS.predictBatchSize`): images
 *   per forward pass. With the
 *   default each scan's probabilities do not depend on the other files of the
 *   run and equal `deno task serve`'s to the bit. A larger batch is faster on
 *   many files (about 1.6× at 32 on 2 cores) but TensorFlow's kernels round
 *   differently per batch shape, so probabilities can then differ in the
 *   last float32 bits (≈1e-7).
 * - **Exit codes**: 0 when every file was predicted; 1 when any file was
 *   skipped (every good prediction is still printed) or the model cannot be
 *   loaded; 2 for a usage error.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { writeFileAtomic } from "../core/atomic.ts";
import { MODEL_FLAG, type ParsedCli, runCli, UsageError } from "../core/cli.ts";
import { DEFAULTS } from "../core/defaults.ts";
import { byCodeUnit, imageFormatProblem, readHead } from "../data/dataset.ts";
import { argmax, decider, type DecisionRule } from "../model/decision.ts";
import {
  ENGINE_FLAG,
  type EngineKind,
  type InferenceEngine,
  openEngine,
  resolveEngineKind,
} from "../model/engine.ts";
import { gradCam, overlayHeatmap } from "../evaluate/gradcam.ts";
import { encodePng } from "../core/image_grid.ts";
import { projectPaths } from "../core/paths.ts";
import { escapeControl } from "../core/text.ts";
import {
  packOutcomes,
  preprocessJobs,
  type SettingsOptions,
} from "../data/preprocess.ts";
import {
  type LoadedModel,
  loadSavedModel,
  type ModelMetadata,
  type Preprocessing,
  resolveModelDir,
  type Tta,
} from "../model/saved_model.ts";

/** One scan's prediction. */
export interface FilePrediction {
  /** The file, as given (or as found under a given folder). */
  file: string;
  /** The predicted class (the most probable, or the model's operating point). */
  class: string;
  /** Its probability. */
  confidence: number;
  /** Every class's probability, in the model's class order. */
  probabilities: Record<string, number>;
  /**
   * Present (true) when the model's operating point overruled argmax: the
   * class is a tumour although notumor was the most probable single class.
   */
  byOperatingPoint?: true;
  /** The Grad-CAM overlay written for it, when asked for. */
  gradcam?: string;
}

/** A file that could not be used, and why. */
export interface PredictError {
  /** The file (or input path) as given. */
  file: string;
  /** Why, e.g. `not a JPEG or PNG (text)` or the decoder's reason. */
  error: string;
}

/** What the output says about the model. */
export interface PredictModelInfo {
  /** The saved-model folder, absolute. */
  dir: string;
  /** A short name: the training run's, else the folder's. */
  name: string;
  /** Architecture. */
  arch: string;
  /** Class names in output order. */
  classes: string[];
  /** Input side in pixels. */
  inputSize: number;
  /** Input channels. */
  channels: number;
  /** How scans are turned into input. */
  preprocessing: Preprocessing;
  /** Fingerprint of the training data. */
  datasetFingerprint: string;
  /** When the model was saved. */
  createdAt: string;
  /** How predictions are made: test-time augmentation and operating point. */
  inference: { tta: Tta; tumourThreshold: number | null };
  /** The inference engine that ran the network (set by `predictFiles`). */
  engine?: EngineKind;
}

/** Options for {@linkcode predictFiles}. */
export interface PredictFilesOptions {
  /** Files and folders (folders are walked recursively, sorted). */
  inputs: string[];
  /**
   * A saved-model (or run) folder, or a model already loaded (which is left
   * to the caller to dispose). Default `projectPaths().defaultModel`.
   */
  model?: string | LoadedModel;
  /** Folder of the model when `model` is a loaded one (for the output). */
  modelDir?: string;
  /**
   * Images per forward pass (default `DEFAULTS.predictBatchSize`, 1; see the
   * module documentation).
   */
  batchSize?: number;
  /** Write a Grad-CAM overlay PNG per scan into this folder. */
  gradcamDir?: string;
  /**
   * The inference engine (lib/model/engine.ts; default `BRAIN_MRI_ENGINE`,
   * else `DEFAULT_ENGINE`). Grad-CAM runs through tfjs whatever it is.
   */
  engine?: EngineKind;
  /**
   * The largest image accepted, in pixels (default `DEFAULTS.maxPixels`): a
   * bigger one is skipped from its header, before it is decoded.
   */
  maxPixels?: number;
  /** Called once the inputs are expanded and sniffed, before predicting. */
  onCollected?: (collected: CollectedInputs) => void;
  /** Called for each prediction as soon as it is made, in input order. */
  onPrediction?: (prediction: FilePrediction) => void;
  /** Called for each skipped file as soon as it is known. */
  onError?: (error: PredictError) => void;
}

/** What {@linkcode predictFiles} returns. */
export interface PredictFilesResult {
  /** The model used. */
  model: PredictModelInfo;
  /** The predictions, in input order. */
  predictions: FilePrediction[];
  /** The skipped files, in input order. */
  errors: PredictError[];
}

/** Files decoded and predicted per step (bounds memory on big folders). */
const CHUNK = 64;

/**
 * The preprocessing settings a model's metadata prescribes, in the form
 * `./preprocess.ts` takes (what `evaluate` and training pass it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultPreprocessing, type ModelMetadata } from "../model/saved_model.ts";
 * import { modelSettings } from "./predict.ts";
 * const metadata = { preprocessing: defaultPreprocessing(128) } as ModelMetadata;
 * assert.deepEqual(modelSettings(metadata), { size: 128, fit: "fill", clahe: null });
 * ```
 */
export function modelSettings(metadata: ModelMetadata): SettingsOptions {
  return {
    size: metadata.preprocessing.size,
    fit: metadata.preprocessing.fit,
    clahe: metadata.preprocessing.clahe ?? null,
  };
}

/**
 * A model's short name: its training run's name, else the name of its
 * folder (the parent's when the folder is a run's `model/`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { modelName } from "./predict.ts";
 * import type { ModelMetadata } from "../model/saved_model.ts";
 * const metadata = { arch: "seedCnn", training: {} } as ModelMetadata;
 * assert.equal(modelName("models/seedcnn-128-r2/model", metadata), "seedcnn-128-r2");
 * assert.equal(modelName("models/seedcnn-128-r2", metadata), "seedcnn-128-r2");
 * const named = { arch: "resnet", training: { run: "resnet-128-e11" } } as ModelMetadata;
 * assert.equal(modelName("anywhere/model", named), "resnet-128-e11");
 * ```
 */
export function modelName(dir: string, metadata: ModelMetadata): string {
  if (metadata.training?.run) return metadata.training.run;
  const abs = resolve(dir);
  const name = basename(abs);
  return name === "model" ? basename(dirname(abs)) : name || metadata.arch;
}

/**
 * The model part of the output: folder, name, classes, input size,
 * preprocessing.
 *
 * @example The shipped model (its run folder resolves to `model/`)
 * ```ts
 * import assert from "node:assert/strict";
 * import { modelInfo } from "./predict.ts";
 * import { readModelMetadata } from "../model/saved_model.ts";
 * const metadata = await readModelMetadata("models/resnet-128-e11");
 * const info = modelInfo("models/resnet-128-e11", metadata);
 * assert.equal(info.name, "resnet-128-e11");
 * assert.match(info.dir, /resnet-128-e11[\\/]model$/);
 * assert.deepEqual(info.classes, ["glioma", "meningioma", "notumor", "pituitary"]);
 * assert.equal(info.inputSize, 128);
 * ```
 */
export function modelInfo(
  dir: string,
  metadata: ModelMetadata,
): PredictModelInfo {
  const abs = resolveModelDir(dir);
  return describeModel(abs, modelName(abs, metadata), metadata);
}

function describeModel(
  dir: string,
  name: string,
  metadata: ModelMetadata,
): PredictModelInfo {
  return {
    dir,
    name,
    arch: metadata.arch,
    classes: [...metadata.classes],
    inputSize: metadata.inputSize,
    channels: metadata.channels,
    preprocessing: { ...metadata.preprocessing },
    datasetFingerprint: metadata.datasetFingerprint,
    createdAt: metadata.createdAt,
    inference: {
      tta: metadata.inference?.tta ?? "none",
      tumourThreshold: metadata.inference?.tumourThreshold ?? null,
    },
  };
}

// Why bytes are not a usable image (lib/data/dataset.ts, the reasons
// `discoverDataset` gives), re-exported for predict's and serve's callers.
export { imageFormatProblem };

/**
 * Turns one row of class probabilities into a prediction: by default the
 * most probable class (the first wins a tie); with a rule carrying a tumour
 * threshold, that operating point (lib/model/decision.ts), as a model's
 * `inference.tumourThreshold` asks. `confidence` is the chosen class's
 * probability; `byOperatingPoint` is set when that rule overruled argmax.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toPrediction } from "./predict.ts";
 * const p = toPrediction([0.1, 0.7, 0.2], ["a", "b", "c"]);
 * assert.deepEqual(p, { class: "b", confidence: 0.7, probabilities: { a: 0.1, b: 0.7, c: 0.2 } });
 * // P(tumour) = 0.3 reaches τ = 0.3: the most probable tumour class, not notumor
 * const classes = ["glioma", "notumor", "pituitary"];
 * const q = toPrediction([0.2, 0.7, 0.1], classes, { tumourThreshold: 0.3 });
 * assert.equal(q.class, "glioma");
 * assert.equal(q.confidence, 0.2);
 * assert.equal(q.byOperatingPoint, true);
 * ```
 */
export function toPrediction(
  row: ArrayLike<number>,
  classes: readonly string[],
  rule: DecisionRule = {},
): Omit<FilePrediction, "file"> {
  const best = decider(classes, rule)(row);
  const top = argmax(row, classes.length);
  const probabilities: Record<string, number> = {};
  classes.forEach((c, k) => (probabilities[c] = row[k]));
  return {
    class: classes[best],
    confidence: row[best],
    probabilities,
    ...(best === top ? {} : { byOperatingPoint: true as const }),
  };
}

function errorText(error: unknown): string {
  const code = (error as { code?: string } | null)?.code;
  if (code === "ENOENT" || error instanceof Deno.errors.NotFound) {
    return "no such file or directory";
  }
  if (code === "EACCES" || error instanceof Deno.errors.PermissionDenied) {
    return "permission denied";
  }
  return (error instanceof Error ? error.message : String(error)).split("\n")[
    0
  ];
}

/** What {@linkcode collectInputs} found. */
export interface CollectedInputs {
  /** JPEG and PNG files, in input order (folders expanded, sorted). */
  files: string[];
  /** Everything else, with the reason. */
  errors: PredictError[];
  /** Every file and error in input order (`error` set for an error). */
  order: { file: string; error?: string }[];
}

/**
 * Expands inputs into image files: folders are walked recursively in sorted
 * order (hidden entries skipped, symbolic links followed once), every file
 * is sniffed by content; non-images, empty, unreadable and missing paths are
 * errors. A file named twice is kept once.
 *
 * Needs files on disk, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { collectInputs } from "./predict.ts";
 * const { files, errors } = await collectInputs(["scans/", "extra.png"]);
 * ```
 */
export async function collectInputs(
  inputs: readonly string[],
): Promise<CollectedInputs> {
  const collector = new InputCollector();
  for (const input of inputs) await collector.addInput(input);
  const { files, errors, order } = collector;
  return { files, errors, order };
}

/** The state of {@linkcode collectInputs}: what was found, in input order. */
class InputCollector implements CollectedInputs {
  files: string[] = [];
  errors: PredictError[] = [];
  order: { file: string; error?: string }[] = [];
  #seen = new Set<string>();
  #visitedDirs = new Set<string>();

  /** A path given on the command line: a file, a folder or a mistake. */
  async addInput(input: string): Promise<void> {
    let info;
    try {
      info = await stat(input);
    } catch (error) {
      return this.#fail(input, errorText(error));
    }
    if (info.isDirectory()) {
      if (await this.#walk(input) === 0) {
        this.#fail(input, "no files in this folder");
      }
    } else if (info.isFile()) {
      this.#addFile(input);
    } else {
      this.#fail(input, "not a regular file or folder");
    }
  }

  #fail(file: string, error: string): void {
    this.errors.push({ file, error });
    this.order.push({ file, error });
  }

  /** Keeps a file (once) if its first bytes are a JPEG's or a PNG's. */
  #addFile(path: string): void {
    const abs = resolve(path);
    if (this.#seen.has(abs)) return;
    this.#seen.add(abs);
    let head: Uint8Array;
    try {
      head = readHead(path);
    } catch (error) {
      return this.#fail(path, `cannot be read: ${errorText(error)}`);
    }
    const problem = imageFormatProblem(head);
    if (problem) return this.#fail(path, problem);
    this.files.push(path);
    this.order.push({ file: path });
  }

  /** A folder's visible entries, sorted; `undefined` if seen or unreadable. */
  async #entries(dir: string): Promise<string[] | undefined> {
    try {
      const real = await Deno.realPath(dir);
      if (this.#visitedDirs.has(real)) return [];
      this.#visitedDirs.add(real);
    } catch (error) {
      this.#fail(dir, `cannot be read: ${errorText(error)}`);
      return undefined;
    }
    try {
      const names = (await readdir(dir)).filter((n) => !n.startsWith("."));
      return names.sort(byCodeUnit);
    } catch (error) {
      this.#fail(dir, `cannot be read: ${errorText(error)}`);
      return undefined;
    }
  }

  /**
   * Walks a folder recursively (a folder reached twice through links is
   * walked once); returns how many files and errors it held.
   */
  async #walk(dir: string): Promise<number> {
    const names = await this.#entries(dir);
    if (names === undefined) return 1;
    let found = 0;
    for (const name of names) {
      const path = join(dir, name);
      let info;
      try {
        info = await stat(path);
      } catch (error) {
        this.#fail(path, `cannot be read: ${errorText(error)}`);
        found++;
        continue;
      }
      if (info.isDirectory()) {
        found += await this.#walk(path);
      } else {
        if (info.isFile()) this.#addFile(path);
        else this.#fail(path, "not a regular file");
        found++;
      }
    }
    return found;
  }
}

/**
 * The Grad-CAM file name for a scan: its file name plus 10 hex digits of the
 * SHA-256 of its absolute path, so same-named files in different folders get
 * different names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gradcamFileName } from "./predict.ts";
 * assert.match(gradcamFileName("a/scan.jpg"), /^scan\.jpg\.[0-9a-f]{10}\.png$/);
 * assert.notEqual(gradcamFileName("a/scan.jpg"), gradcamFileName("b/scan.jpg"));
 * ```
 */
export function gradcamFileName(file: string): string {
  const hash = createHash("sha256").update(resolve(file)).digest("hex");
  return `${basename(file)}.${hash.slice(0, 10)}.png`;
}

function positiveInteger(value: number | undefined, what: string): number {
  const n = value ?? DEFAULTS.predictBatchSize;
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`${what} must be a positive integer (got ${value})`);
  }
  return n;
}

/**
 * Predicts every image among `inputs` (files and folders) with a saved
 * model, preprocessing each exactly as in training (from the model's
 * metadata), optionally writing Grad-CAM overlays. Bad files are reported
 * in `errors` and skipped; they never stop the run. Leaks no tensor (a
 * model loaded here is disposed before returning).
 *
 * Needs scans on disk, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { formatPredictions, predictFiles } from "./predict.ts";
 * const result = await predictFiles({ inputs: ["scans/"], gradcamDir: "cams" });
 * console.log(formatPredictions(result));
 * ```
 */
export async function predictFiles(
  options: PredictFilesOptions,
): Promise<PredictFilesResult> {
  const batchSize = positiveInteger(options.batchSize, "batchSize");
  const given = options.model ?? projectPaths().defaultModel;
  const kind = options.engine ?? resolveEngineKind();
  const loaded = typeof given === "string"
    ? await loadSavedModel(given)
    : given;
  let engine: InferenceEngine | undefined;
  try {
    engine = await openEngine({ model: loaded, kind });
    const dir = typeof given === "string" ? given : options.modelDir;
    const info = { ...describeLoaded(dir, loaded.metadata), engine: kind };
    const collected = await collectInputs(options.inputs);
    options.onCollected?.(collected);
    const results = new InputOrder(collected.order, options);
    for (let start = 0; start < collected.files.length; start += CHUNK) {
      const chunk = collected.files.slice(start, start + CHUNK);
      const outcomes = await predictChunk(loaded, engine, chunk, {
        batchSize,
        gradcamDir: options.gradcamDir,
        maxPixels: options.maxPixels,
      });
      for (const outcome of outcomes) results.add(outcome);
    }
    results.finish();
    const { predictions, errors } = results;
    return { model: info, predictions, errors };
  } finally {
    await engine?.dispose();
    if (typeof given === "string") loaded.model.dispose();
  }
}

/** The model part of the output, for a folder or a model held in memory. */
function describeLoaded(
  dir: string | undefined,
  metadata: ModelMetadata,
): PredictModelInfo {
  return dir !== undefined ? modelInfo(dir, metadata) : describeModel(
    "(in memory)",
    metadata.training?.run ?? metadata.arch,
    metadata,
  );
}

/**
 * Hands predictions and skipped files to the caller in input order: an
 * error found while collecting is reported just before the next image that
 * followed it in the input (or at the end).
 */
class InputOrder {
  readonly predictions: FilePrediction[] = [];
  readonly errors: PredictError[] = [];
  #before = new Map<string, PredictError[]>();
  #trailing: PredictError[] = [];
  #callbacks: Pick<PredictFilesOptions, "onPrediction" | "onError">;

  constructor(
    order: CollectedInputs["order"],
    callbacks: Pick<PredictFilesOptions, "onPrediction" | "onError">,
  ) {
    this.#callbacks = callbacks;
    for (const item of order) {
      if (item.error === undefined) {
        this.#before.set(item.file, this.#trailing);
        this.#trailing = [];
      } else {
        this.#trailing.push({ file: item.file, error: item.error });
      }
    }
  }

  /** One image's outcome, after the errors that came before it. */
  add(outcome: FilePrediction | PredictError): void {
    for (const e of this.#before.get(outcome.file) ?? []) this.#error(e);
    if ("error" in outcome) return this.#error(outcome);
    this.predictions.push(outcome);
    this.#callbacks.onPrediction?.(outcome);
  }

  /** The errors after the last image. */
  finish(): void {
    for (const e of this.#trailing) this.#error(e);
  }

  #error(e: PredictError): void {
    this.errors.push(e);
    this.#callbacks.onError?.(e);
  }
}

/**
 * Decodes, preprocesses and predicts one chunk of image files (and writes
 * their Grad-CAM overlays when asked); one outcome per file, in order.
 */
async function predictChunk(
  loaded: LoadedModel,
  engine: InferenceEngine,
  chunk: string[],
  options: { batchSize: number; gradcamDir?: string; maxPixels?: number },
): Promise<(FilePrediction | PredictError)[]> {
  const { metadata } = loaded;
  const size = metadata.preprocessing.size;
  const k = metadata.classes.length;
  const outcomes = await preprocessJobs(
    chunk.map((path) => ({ path })),
    { ...modelSettings(metadata), maxPixels: options.maxPixels },
  );
  const packed = packOutcomes(chunk, outcomes, size);
  const probs = await engine.probabilities({
    pixels: packed.pixels,
    size,
    scale: metadata.preprocessing.scale,
    batchSize: options.batchSize,
    tta: metadata.inference?.tta,
  });
  const made: FilePrediction[] = packed.ok.map((i, j) => ({
    file: chunk[i],
    ...toPrediction(
      probs.subarray(j * k, (j + 1) * k),
      metadata.classes,
      metadata.inference ?? {},
    ),
  }));
  if (options.gradcamDir && made.length) {
    await writeGradcams(loaded, made, {
      pixels: packed.pixels,
      dir: options.gradcamDir,
      batchSize: options.batchSize,
    });
  }
  const byFile = new Map(made.map((p) => [p.file, p]));
  const failed = new Map(packed.errors.map((e) => [e.path, e.reason]));
  return chunk.map((file) =>
    byFile.get(file) ?? { file, error: failed.get(file) ?? "unknown error" }
  );
}

/**
 * Writes the Grad-CAM overlay of each prediction's class over its scan at
 * the model's input size, and records the PNG's path in the prediction.
 */
async function writeGradcams(
  loaded: LoadedModel,
  made: FilePrediction[],
  options: { pixels: Uint8Array; dir: string; batchSize: number },
): Promise<void> {
  const { model, metadata } = loaded;
  const size = metadata.preprocessing.size;
  const area = size * size;
  const cam = gradCam({
    model,
    images: { pixels: options.pixels, size },
    classIndex: made.map((p) => metadata.classes.indexOf(p.class)),
    batchSize: Math.min(options.batchSize, 16),
  });
  for (let j = 0; j < made.length; j++) {
    const rgb = overlayHeatmap({
      pixels: options.pixels.subarray(j * area, (j + 1) * area),
      size,
      heatmap: cam.heatmaps[j],
    });
    const png = await encodePng({
      pixels: rgb,
      width: size,
      height: size,
      channels: 3,
    });
    const out = join(options.dir, gradcamFileName(made[j].file));
    await writeFileAtomic(out, png);
    made[j].gradcam = out;
  }
}

/** Options for {@linkcode formatPrediction}. */
export interface FormatOptions {
  /**
   * Class names, in the model's order (sets the columns); default the keys
   * of the prediction's `probabilities` (which are in that order).
   */
  classes?: readonly string[];
  /** Pad paths to this width (default: no padding). */
  pathWidth?: number;
}

/**
 * One readable line: path, predicted class, confidence, then every class
 * with its probability, in aligned columns; `(operating point)` at the end
 * when the model's operating point overruled argmax.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatPrediction } from "./predict.ts";
 * const line = formatPrediction(
 *   { file: "a.jpg", class: "glioma", confidence: 0.9, probabilities: { glioma: 0.9, notumor: 0.1 } },
 *   { classes: ["glioma", "notumor"] },
 * );
 * assert.equal(line, "a.jpg  glioma    90.0%  glioma 0.9000  notumor 0.1000");
 * ```
 */
export function formatPrediction(
  p: FilePrediction,
  options: FormatOptions = {},
): string {
  const classes = options.classes ?? Object.keys(p.probabilities);
  const classWidth = Math.max(...classes.map((c) => c.length));
  const confidence = `${(100 * p.confidence).toFixed(1)}%`.padStart(6);
  const probs = classes
    .map((c) => `${c} ${(p.probabilities[c] ?? NaN).toFixed(4)}`)
    .join("  ");
  return `${escapeControl(p.file).padEnd(options.pathWidth ?? 0)}  ${
    p.class.padEnd(classWidth)
  }  ${confidence}  ${probs}${p.byOperatingPoint ? "  (operating point)" : ""}`;
}

/**
 * A skipped file as one line: `skipped FILE: REASON`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatPredictError } from "./predict.ts";
 * assert.equal(
 *   formatPredictError({ file: "x.txt", error: "not a JPEG or PNG (text)" }),
 *   "skipped x.txt: not a JPEG or PNG (text)",
 * );
 * ```
 */
export function formatPredictError(e: PredictError): string {
  return `skipped ${escapeControl(e.file)}: ${escapeControl(e.error)}`;
}

/**
 * Every prediction as an aligned line, then the skipped files (one line
 * each), as the CLI prints them.
 *
 * @example Two made-up predictions and a skipped file
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatPredictions, type PredictFilesResult, toPrediction } from "./predict.ts";
 * const classes = ["glioma", "notumor"];
 * const result = {
 *   model: { classes } as PredictFilesResult["model"],
 *   predictions: [
 *     { file: "a.jpg", ...toPrediction([0.9, 0.1], classes) },
 *     { file: "scans/b.png", ...toPrediction([0.25, 0.75], classes) },
 *   ],
 *   errors: [{ file: "notes.txt", error: "not a JPEG or PNG (text)" }],
 * };
 * assert.equal(
 *   formatPredictions(result),
 *   [
 *     "a.jpg        glioma    90.0%  glioma 0.9000  notumor 0.1000",
 *     "scans/b.png  notumor   75.0%  glioma 0.2500  notumor 0.7500",
 *     "skipped notes.txt: not a JPEG or PNG (text)",
 *   ].join("\n"),
 * );
 * ```
 */
export function formatPredictions(result: PredictFilesResult): string {
  const pathWidth = Math.max(
    0,
    ...result.predictions.map((p) => escapeControl(p.file).length),
  );
  return [
    ...result.predictions.map((p) =>
      formatPrediction(p, { classes: result.model.classes, pathWidth })
    ),
    ...result.errors.map(formatPredictError),
  ].join("\n");
}

/**
 * The `--json` object: `{ model, predictions, errors }` with
 * `model: { dir, name, arch, classes, inputSize, channels, preprocessing,
 * datasetFingerprint, createdAt }`,
 * `predictions: [{ file, class, confidence, probabilities: { class: p },
 * gradcam? }]` and `errors: [{ file, error }]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type PredictFilesResult, predictionsJson, toPrediction } from "./predict.ts";
 * const result: PredictFilesResult = {
 *   model: { name: "m", classes: ["glioma", "notumor"] } as PredictFilesResult["model"],
 *   predictions: [{ file: "a.jpg", ...toPrediction([0.9, 0.1], ["glioma", "notumor"]) }],
 *   errors: [],
 * };
 * const json = JSON.parse(JSON.stringify(predictionsJson(result)));
 * assert.deepEqual(Object.keys(json), ["model", "predictions", "errors"]);
 * assert.deepEqual(json.predictions[0], {
 *   file: "a.jpg",
 *   class: "glioma",
 *   confidence: 0.9,
 *   probabilities: { glioma: 0.9, notumor: 0.1 },
 * });
 * ```
 */
export function predictionsJson(result: PredictFilesResult): {
  model: PredictModelInfo;
  predictions: FilePrediction[];
  errors: PredictError[];
} {
  return {
    model: result.model,
    predictions: result.predictions,
    errors: result.errors,
  };
}

const PREDICT_CLI = {
  command: "deno task predict",
  summary:
    "Predicts the class of scans with a saved model: one line per file\n" +
    "(path, class, confidence, every class's probability).",
  positionals: "FILE_OR_DIR...",
  minPositionals: 1,
  flags: {
    model: MODEL_FLAG,
    engine: ENGINE_FLAG,
    json: {
      type: "boolean",
      help: "print one JSON object { model, predictions, errors }",
    },
    gradcam: {
      type: "string",
      value: "OUT_DIR",
      help: "write a Grad-CAM overlay PNG per scan (model input size)",
    },
    "max-pixels": {
      type: "integer",
      default: DEFAULTS.maxPixels,
      help: "the largest image accepted (width × height); a bigger one is\n" +
        "skipped from its header, before it is decoded",
    },
    "batch-size": {
      type: "integer",
      default: DEFAULTS.predictBatchSize,
      help:
        "images per forward pass; 1 keeps each scan's result independent\n" +
        "of the other files and identical to deno task serve's",
    },
  },
  footer:
    "Folders are searched recursively; files are recognised by content (JPEG, PNG).\n" +
    "Unusable files are reported on stderr and skipped; the exit code is then 1.",
} as const;

/** `deno task predict`: prints each prediction as soon as it is made. */
async function predictMain(
  { values, positionals }: ParsedCli<typeof PREDICT_CLI>,
): Promise<number> {
  const batchSize = values["batch-size"];
  if (batchSize < 1) {
    throw new UsageError(
      `--batch-size must be a positive integer (got "${batchSize}")`,
    );
  }
  if (values.gradcam !== undefined && values.gradcam.trim() === "") {
    throw new UsageError("--gradcam needs a folder");
  }
  const engine = resolveEngineKind(values.engine);
  const json = values.json;
  let pathWidth = 0;
  try {
    const result = await predictFiles({
      inputs: positionals,
      model: values.model ?? projectPaths().defaultModel,
      batchSize,
      engine,
      gradcamDir: values.gradcam,
      maxPixels: values["max-pixels"],
      onCollected: (collected) => {
        pathWidth = Math.max(
          0,
          ...collected.files.map((f) => escapeControl(f).length),
        );
      },
      onPrediction: json
        ? undefined
        : (p) => console.log(formatPrediction(p, { pathWidth })),
      onError: (e) => console.error(formatPredictError(e)),
    });
    if (json) console.log(JSON.stringify(predictionsJson(result)));
    if (result.errors.length === 0) return 0;
    const skipped = result.errors.length;
    console.error(
      `${skipped} file${skipped === 1 ? "" : "s"} skipped, ` +
        `${result.predictions.length} predicted`,
    );
    return 1;
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await runCli(PREDICT_CLI, predictMain));
