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
 * - **`--batch-size N`** (default 1): images per forward pass. With the
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
import { parseCli, taskArgs } from "../core/cli.ts";
import { byCodeUnit, imageFormatProblem, readHead } from "../data/dataset.ts";
import { argmax, decider, type DecisionRule } from "../model/decision.ts";
import { predictProbabilities } from "../model/inference.ts";
import { gradCam, overlayHeatmap } from "../evaluate/gradcam.ts";
import { encodePng } from "../core/image_grid.ts";
import { projectPaths } from "../core/paths.ts";
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
  /** Images per forward pass (default 1; see the module documentation). */
  batchSize?: number;
  /** Write a Grad-CAM overlay PNG per scan into this folder. */
  gradcamDir?: string;
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
 * import { defaultPreprocessing, type ModelMetadata } from "../model/saved_model.ts";
 * import { modelSettings } from "./predict.ts";
 * const metadata = { preprocessing: defaultPreprocessing(128) } as ModelMetadata;
 * console.log(modelSettings(metadata)); // { size: 128, fit: "fill" }
 * ```
 */
export function modelSettings(metadata: ModelMetadata): SettingsOptions {
  return {
    size: metadata.preprocessing.size,
    fit: metadata.preprocessing.fit,
  };
}

/**
 * A model's short name: its training run's name, else the name of its
 * folder (the parent's when the folder is a run's `model/`).
 *
 * @example
 * ```ts
 * import { modelName } from "./predict.ts";
 * import type { ModelMetadata } from "../model/saved_model.ts";
 * const metadata = { arch: "seedCnn", training: {} } as ModelMetadata;
 * console.log(modelName("/m/seedcnn-128/model", metadata)); // "seedcnn-128"
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
 * @example
 * ```ts ignore
 * import { modelInfo } from "./predict.ts";
 * import { loadSavedModel } from "../model/saved_model.ts";
 * const { metadata } = await loadSavedModel("models/resnet-128-e1");
 * console.log(modelInfo("models/resnet-128-e1", metadata).classes);
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
 * import { toPrediction } from "./predict.ts";
 * const p = toPrediction([0.1, 0.7, 0.2], ["a", "b", "c"]);
 * console.log(p.class, p.confidence); // "b" 0.7
 * const q = toPrediction([0.2, 0.7, 0.1], ["glioma", "notumor", "pituitary"], { tumourThreshold: 0.3 });
 * console.log(q.class); // "glioma"
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
 * @example
 * ```ts ignore
 * import { collectInputs } from "./predict.ts";
 * const { files, errors } = await collectInputs(["scans/", "extra.png"]);
 * ```
 */
export async function collectInputs(
  inputs: readonly string[],
): Promise<CollectedInputs> {
  const files: string[] = [];
  const errors: PredictError[] = [];
  const order: { file: string; error?: string }[] = [];
  const seen = new Set<string>();
  const visitedDirs = new Set<string>();
  const fail = (file: string, error: string) => {
    errors.push({ file, error });
    order.push({ file, error });
  };
  const addFile = (path: string) => {
    const abs = resolve(path);
    if (seen.has(abs)) return;
    seen.add(abs);
    let head: Uint8Array;
    try {
      head = readHead(path);
    } catch (error) {
      return fail(path, `cannot be read: ${errorText(error)}`);
    }
    const problem = imageFormatProblem(head);
    if (problem) return fail(path, problem);
    files.push(path);
    order.push({ file: path });
  };
  const walk = async (dir: string): Promise<number> => {
    let real: string;
    try {
      real = await Deno.realPath(dir);
    } catch (error) {
      fail(dir, `cannot be read: ${errorText(error)}`);
      return 1;
    }
    if (visitedDirs.has(real)) return 0;
    visitedDirs.add(real);
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => !n.startsWith("."));
    } catch (error) {
      fail(dir, `cannot be read: ${errorText(error)}`);
      return 1;
    }
    let found = 0;
    for (const name of names.sort(byCodeUnit)) {
      const path = join(dir, name);
      let info;
      try {
        info = await stat(path);
      } catch (error) {
        fail(path, `cannot be read: ${errorText(error)}`);
        found++;
        continue;
      }
      if (info.isDirectory()) {
        found += await walk(path);
      } else if (info.isFile()) {
        addFile(path);
        found++;
      } else {
        fail(path, "not a regular file");
        found++;
      }
    }
    return found;
  };
  for (const input of inputs) {
    let info;
    try {
      info = await stat(input);
    } catch (error) {
      fail(input, errorText(error));
      continue;
    }
    if (info.isDirectory()) {
      if (await walk(input) === 0) fail(input, "no files in this folder");
    } else if (info.isFile()) {
      addFile(input);
    } else {
      fail(input, "not a regular file or folder");
    }
  }
  return { files, errors, order };
}

/**
 * The Grad-CAM file name for a scan: its file name plus 10 hex digits of the
 * SHA-256 of its absolute path, so same-named files in different folders get
 * different names.
 *
 * @example
 * ```ts
 * import { gradcamFileName } from "./predict.ts";
 * console.log(gradcamFileName("/a/scan.jpg") !== gradcamFileName("/b/scan.jpg")); // true
 * ```
 */
export function gradcamFileName(file: string): string {
  const hash = createHash("sha256").update(resolve(file)).digest("hex");
  return `${basename(file)}.${hash.slice(0, 10)}.png`;
}

function positiveInteger(value: number | undefined, what: string): number {
  const n = value ?? 1;
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
  const loaded = typeof given === "string"
    ? await loadSavedModel(given)
    : given;
  try {
    const { model, metadata } = loaded;
    const dir = typeof given === "string" ? given : options.modelDir;
    const info = dir !== undefined ? modelInfo(dir, metadata) : describeModel(
      "(in memory)",
      metadata.training?.run ?? metadata.arch,
      metadata,
    );
    const collected = await collectInputs(options.inputs);
    options.onCollected?.(collected);
    const predictions: FilePrediction[] = [];
    const errors: PredictError[] = [];
    const report = (e: PredictError) => {
      errors.push(e);
      options.onError?.(e);
    };
    // The errors found while collecting, reported just before the next
    // image in input order (or at the end), so callbacks keep input order.
    const errorsBefore = new Map<string, PredictError[]>();
    let lead: PredictError[] = [];
    for (const item of collected.order) {
      if (item.error === undefined) {
        errorsBefore.set(item.file, lead);
        lead = [];
      } else {
        lead.push({ file: item.file, error: item.error });
      }
    }
    const settings = modelSettings(metadata);
    const size = metadata.preprocessing.size;
    const area = size * size;
    const k = metadata.classes.length;
    for (let start = 0; start < collected.files.length; start += CHUNK) {
      const chunk = collected.files.slice(start, start + CHUNK);
      const outcomes = await preprocessJobs(
        chunk.map((path) => ({ path })),
        settings,
      );
      const packed = packOutcomes(chunk, outcomes, size);
      const probs = await predictProbabilities(model, {
        pixels: packed.pixels,
        size,
        scale: metadata.preprocessing.scale,
        batchSize,
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
        const cam = gradCam({
          model,
          images: { pixels: packed.pixels, size },
          classIndex: made.map((p) => metadata.classes.indexOf(p.class)),
          batchSize: Math.min(batchSize, 16),
        });
        for (let j = 0; j < made.length; j++) {
          const rgb = overlayHeatmap({
            pixels: packed.pixels.subarray(j * area, (j + 1) * area),
            size,
            heatmap: cam.heatmaps[j],
          });
          const png = await encodePng({
            pixels: rgb,
            width: size,
            height: size,
            channels: 3,
          });
          const out = join(options.gradcamDir, gradcamFileName(made[j].file));
          await writeFileAtomic(out, png);
          made[j].gradcam = out;
        }
      }
      const byFile = new Map(made.map((p) => [p.file, p]));
      const failed = new Map(
        packed.errors.map((e) => [e.path, e.reason] as const),
      );
      for (const file of chunk) {
        for (const e of errorsBefore.get(file) ?? []) report(e);
        const p = byFile.get(file);
        if (p) {
          predictions.push(p);
          options.onPrediction?.(p);
        } else {
          report({ file, error: failed.get(file) ?? "unknown error" });
        }
      }
    }
    for (const e of lead) report(e);
    return { model: info, predictions, errors };
  } finally {
    if (typeof given === "string") loaded.model.dispose();
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
 * import { formatPrediction } from "./predict.ts";
 * console.log(formatPrediction(
 *   { file: "a.jpg", class: "glioma", confidence: 0.9, probabilities: { glioma: 0.9, notumor: 0.1 } },
 *   { classes: ["glioma", "notumor"] },
 * )); // "a.jpg  glioma   90.0%  glioma 0.9000  notumor 0.1000"
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
  return `${p.file.padEnd(options.pathWidth ?? 0)}  ${
    p.class.padEnd(classWidth)
  }  ${confidence}  ${probs}${p.byOperatingPoint ? "  (operating point)" : ""}`;
}

/**
 * A skipped file as one line: `skipped FILE: REASON`.
 *
 * @example
 * ```ts
 * import { formatPredictError } from "./predict.ts";
 * console.log(formatPredictError({ file: "x.txt", error: "not a JPEG or PNG (text)" }));
 * ```
 */
export function formatPredictError(e: PredictError): string {
  return `skipped ${e.file}: ${e.error}`;
}

/**
 * Every prediction as an aligned line, then the skipped files (one line
 * each), as the CLI prints them.
 *
 * @example
 * ```ts ignore
 * import { formatPredictions, predictFiles } from "./predict.ts";
 * console.log(formatPredictions(await predictFiles({ inputs: ["scans/"] })));
 * ```
 */
export function formatPredictions(result: PredictFilesResult): string {
  const pathWidth = Math.max(
    0,
    ...result.predictions.map((p) => p.file.length),
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
 * ```ts ignore
 * import { predictFiles, predictionsJson } from "./predict.ts";
 * console.log(JSON.stringify(predictionsJson(await predictFiles({ inputs: ["a.jpg"] }))));
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

const USAGE =
  `usage: deno task predict -- [--model DIR] [--json] [--gradcam OUT_DIR] [--batch-size N] FILE_OR_DIR...

  --model DIR       saved model (or run folder holding model/); default ${projectPaths().defaultModel}
  --json            print one JSON object { model, predictions, errors }
  --gradcam OUT_DIR write a Grad-CAM overlay PNG per scan (model input size)
  --batch-size N    images per forward pass (default 1: results independent of
                    the other files and identical to deno task serve's)

Folders are searched recursively; files are recognised by content (JPEG, PNG).
Unusable files are reported on stderr and skipped; the exit code is then 1.`;

async function main(args: string[]): Promise<number> {
  const parsed = parseCli(USAGE, {
    args,
    options: {
      model: { type: "string" },
      json: { type: "boolean", default: false },
      gradcam: { type: "string" },
      "batch-size": { type: "string" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (positionals.length === 0) {
    console.error(`error: give at least one FILE_OR_DIR\n${USAGE}`);
    return 2;
  }
  const batchSize = values["batch-size"] === undefined
    ? 1
    : Number(values["batch-size"]);
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    console.error(
      `error: --batch-size must be a positive integer (got "${
        values["batch-size"]
      }")\n${USAGE}`,
    );
    return 2;
  }
  if (values.gradcam !== undefined && values.gradcam.trim() === "") {
    console.error(`error: --gradcam needs a folder\n${USAGE}`);
    return 2;
  }
  const json = values.json;
  let pathWidth = 0;
  try {
    const result = await predictFiles({
      inputs: positionals,
      model: values.model ?? projectPaths().defaultModel,
      batchSize,
      gradcamDir: values.gradcam,
      onCollected: (collected) => {
        pathWidth = Math.max(0, ...collected.files.map((f) => f.length));
      },
      onPrediction: json
        ? undefined
        : (p) => console.log(formatPrediction(p, { pathWidth })),
      onError: (e) => console.error(formatPredictError(e)),
    });
    if (json) console.log(JSON.stringify(predictionsJson(result)));
    if (result.errors.length) {
      console.error(
        `${result.errors.length} file${
          result.errors.length === 1 ? "" : "s"
        } skipped, ${result.predictions.length} predicted`,
      );
      return 1;
    }
    return 0;
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(taskArgs()));
}
