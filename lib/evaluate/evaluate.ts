/**
 * Evaluating a saved model on a dataset: every metric of
 * {@linkcode evaluationReport} on the full and on the de-duplicated set, with
 * the images preprocessed exactly as the model's metadata says (never from
 * flags).
 *
 * `deno task evaluate -- --model DIR --data DIR [--json]` (flags in
 * {@linkcode EVALUATE_CLI}; `--help` prints them):
 * - a Kaggle root (with `Testing/`): evaluates `Testing/`;
 * - a bare class-folder root: evaluates all of it;
 * - `--split test|validation` with a root that the model was trained on:
 *   re-derives that split exactly as training did (same seed and fractions)
 *   and evaluates it.
 *
 * `--engine tfjs|onnx` (default `BRAIN_MRI_ENGINE`, else tfjs) chooses what
 * runs the network (lib/model/engine.ts); the report and `--json` name it.
 *
 * @module
 */
import {
  auditDuplicates,
  type AuditFile,
  dedupeKeep,
  DEFAULT_NEAR_THRESHOLD,
} from "../data/audit.ts";
import {
  type FlagValues,
  MODEL_FLAG,
  type ParsedCli,
  runCli,
  UsageError,
} from "../core/cli.ts";
import { prepareData } from "../data/prepare.ts";
import { discoverDataset, type ImageFile } from "../data/dataset.ts";
import { loadImages } from "../data/image_cache.ts";
import { describeDecision, tumourThresholdProblem } from "../model/decision.ts";
import { type EvaluationReport, evaluationReport } from "./metrics.ts";
import { degenerateReasons, degenerateWarning } from "./degenerate.ts";
import { projectPaths } from "../core/paths.ts";
import { DEFAULTS } from "../core/defaults.ts";
import {
  type LoadedModel,
  loadSavedModel,
  type ModelMetadata,
  splitSeed,
  type Tta,
} from "../model/saved_model.ts";
import {
  ENGINE_FLAG,
  type EngineKind,
  openEngine,
  resolveEngineKind,
} from "../model/engine.ts";

export type { Tta };

/** Options for {@linkcode reportFromProbabilities}. */
export interface ReportFromProbabilitiesOptions {
  /** `labels.length * classes.length` probabilities, row-major. */
  probabilities: Float32Array;
  /** True class index per image. */
  labels: ArrayLike<number>;
  /** Class names in index order. */
  classes: string[];
  /** Only these images (indices); default all. */
  indices?: readonly number[];
  /** The operating point (lib/model/decision.ts); default argmax. */
  tumourThreshold?: number;
}

/**
 * {@linkcode evaluationReport} from packed probabilities, optionally on a
 * subset of the images (e.g. the de-duplicated ones).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reportFromProbabilities } from "./evaluate.ts";
 * const probabilities = new Float32Array([0.9, 0.1, 0.2, 0.8, 0.3, 0.7]);
 * const labels = [0, 1, 0];
 * const classes = ["glioma", "notumor"];
 * const all = reportFromProbabilities({ probabilities, labels, classes });
 * assert.equal(all.n, 3);
 * assert.equal(all.accuracy, 2 / 3);
 * const firstTwo = reportFromProbabilities({
 *   probabilities,
 *   labels,
 *   classes,
 *   indices: [0, 1],
 * });
 * assert.equal(firstTwo.accuracy, 1);
 * ```
 */
export function reportFromProbabilities(
  options: ReportFromProbabilitiesOptions,
): EvaluationReport {
  const k = options.classes.length;
  const indices = options.indices ??
    Array.from({ length: options.labels.length }, (_, i) => i);
  return evaluationReport({
    yTrue: indices.map((i) => options.labels[i]),
    probs: indices.map((i) =>
      Array.from(options.probabilities.subarray(i * k, (i + 1) * k))
    ),
    classes: options.classes,
    ...(options.tumourThreshold === undefined
      ? {}
      : { tumourThreshold: options.tumourThreshold }),
  });
}

/** The result of {@linkcode evaluateModel}. */
export interface ModelEvaluation {
  /** The model's metadata. */
  metadata: ModelMetadata;
  /** What was evaluated, in words. */
  dataset: string;
  /** Metrics on every evaluated image. */
  full: EvaluationReport;
  /** Metrics after removing exact and near duplicates within the set. */
  deduplicated: EvaluationReport;
  /** The evaluated files, in the order of `probabilities`. */
  files: ImageFile[];
  /** Class probabilities, `files.length * classes.length`, row-major. */
  probabilities: Float32Array;
  /** True class index per file. */
  labels: Int32Array;
  /** Files that could not be read (skipped). */
  errors: { path: string; reason: string }[];
  /** The test-time augmentation used. */
  tta: Tta;
  /** The operating point used (lib/model/decision.ts); `null`: argmax. */
  tumourThreshold: number | null;
  /** The inference engine that ran the network (lib/model/engine.ts). */
  engine?: EngineKind;
}

/** Options for {@linkcode evaluateModel}. */
export interface EvaluateModelOptions {
  /** The saved model's folder. */
  modelDir: string;
  /** Dataset root. */
  data: string;
  /**
   * `auto` (default): `Testing/` of a Kaggle root, else everything.
   * `test`/`validation`: that split of the root, re-derived as in training.
   */
  split?: "auto" | "test" | "validation";
  /**
   * For `split: test|validation`: the fractions used in training (default:
   * the model's `training.split`, else 0.15 each).
   */
  validation?: number;
  /** See `validation`. */
  test?: number;
  /** Cache folder for decoded images. */
  cacheDir?: string;
  /** Test-time augmentation (default: the model's `inference.tta`, else none). */
  tta?: Tta;
  /**
   * The inference engine (default `BRAIN_MRI_ENGINE`, else
   * `DEFAULT_ENGINE`; lib/model/engine.ts).
   */
  engine?: EngineKind;
  /**
   * The operating point (lib/model/decision.ts): a number in (0, 0.5], or `null`
   * for argmax. Default: the model's `inference.tumourThreshold`, else argmax.
   */
  tumourThreshold?: number | null;
}

async function selectFiles(
  options: EvaluateModelOptions,
  metadata: ModelMetadata,
): Promise<{
  files: ImageFile[];
  pixels: Uint8Array;
  label: string;
  loadErrors: { path: string; reason: string }[];
}> {
  const size = metadata.preprocessing.size;
  const clahe = metadata.preprocessing.clahe ?? null;
  if (options.split === "test" || options.split === "validation") {
    if (
      options.split === "validation" &&
      metadata.training.split?.validationTrained
    ) {
      throw new Error(
        `the model was refit on its validation split (train --refit): that ` +
          "split is training data, not held out; select and evaluate on the " +
          "run of the same settings without --refit, or use --split test",
      );
    }
    const radius = metadata.training.split?.groupRadius;
    const data = await prepareData({
      source: options.data,
      size,
      seed: splitSeed(metadata.training),
      validation: options.validation ?? metadata.training.split?.validation,
      test: options.test ?? metadata.training.split?.test,
      nearThreshold: radius,
      clahe,
      cacheDir: options.cacheDir,
    });
    checkClasses(data.classes, metadata, options.data);
    const part = data[options.split];
    return {
      files: part.files,
      pixels: part.pixels,
      label:
        `${options.split} split of ${options.data} (seed ${
          splitSeed(metadata.training)
        }` +
        (radius === undefined
          ? ")"
          : `, scans within ${radius} pHash bits kept in one split)`),
      loadErrors: data.errors,
    };
  }
  const dataset = await discoverDataset(options.data);
  checkClasses(dataset.classes, metadata, options.data);
  const kaggle = dataset.layout === "kaggle" &&
    dataset.files.some((f) => f.origin === "Testing");
  const files = kaggle
    ? dataset.files.filter((f) => f.origin === "Testing")
    : dataset.files;
  const loaded = await loadImages(files, {
    size,
    fit: metadata.preprocessing.fit,
    clahe,
    ...(options.cacheDir ? { cacheDir: `${options.cacheDir}/images` } : {}),
  });
  return {
    files: loaded.ok.map((i) => files[i]),
    pixels: loaded.pixels,
    label: kaggle ? `${options.data} Testing/` : options.data,
    loadErrors: loaded.errors,
  };
}

function checkClasses(
  classes: string[],
  metadata: ModelMetadata,
  root: string,
): void {
  const unknown = classes.filter((c) => !metadata.classes.includes(c));
  if (unknown.length) {
    throw new Error(
      `${root}: classes ${unknown.join(", ")} are not known to the model ` +
        `(it knows ${metadata.classes.join(", ")})`,
    );
  }
}

/**
 * Loads a saved model and evaluates it on a dataset (see the module
 * documentation for which images), on the full set and the de-duplicated one.
 *
 * Needs a dataset on disk, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { evaluateModel } from "./evaluate.ts";
 * const e = await evaluateModel({ modelDir: "models/resnet-128-e11", data: "data" });
 * console.log(e.full.accuracy, e.deduplicated.accuracy);
 * ```
 */
export async function evaluateModel(
  options: EvaluateModelOptions,
): Promise<ModelEvaluation> {
  const engine = options.engine ?? resolveEngineKind();
  const loaded = await loadSavedModel(options.modelDir);
  const { model, metadata } = loaded;
  try {
    const chosen = await selectFiles(options, metadata);
    if (chosen.files.length === 0) {
      throw new Error(`${options.data}: no readable images to evaluate`);
    }
    const classIndex = new Map(metadata.classes.map((c, i) => [c, i]));
    const labels = Int32Array.from(
      chosen.files,
      (f) => classIndex.get(f.label)!,
    );
    const tta = options.tta ?? metadata.inference?.tta ?? "none";
    const threshold = options.tumourThreshold === undefined
      ? metadata.inference?.tumourThreshold
      : options.tumourThreshold ?? undefined;
    const probabilities = await engineProbabilities(
      loaded,
      engine,
      { pixels: chosen.pixels, tta },
    );
    const classes = metadata.classes;
    const decision = threshold === undefined
      ? {}
      : { tumourThreshold: threshold };
    const full = reportFromProbabilities({
      probabilities,
      labels,
      classes,
      ...decision,
    });
    const audit = await auditDuplicates({
      files: chosen.files as AuditFile[],
      nearThreshold: DEFAULT_NEAR_THRESHOLD,
    });
    const kept = new Set(
      dedupeKeep(chosen.files, audit, { near: true }).map((f) => f.path),
    );
    const deduplicated = reportFromProbabilities({
      probabilities,
      labels,
      classes,
      indices: chosen.files.flatMap((f, i) => kept.has(f.path) ? [i] : []),
      ...decision,
    });
    return {
      metadata,
      dataset: chosen.label,
      full,
      deduplicated,
      files: chosen.files,
      probabilities,
      labels,
      errors: chosen.loadErrors,
      tta,
      tumourThreshold: threshold ?? null,
      engine,
    };
  } finally {
    model.dispose();
  }
}

/** The class probabilities of packed images through the chosen engine. */
async function engineProbabilities(
  loaded: LoadedModel,
  kind: EngineKind,
  input: { pixels: Uint8Array; tta: Tta },
): Promise<Float32Array> {
  const engine = await openEngine({ model: loaded, kind });
  try {
    return await engine.probabilities({
      pixels: input.pixels,
      size: loaded.metadata.preprocessing.size,
      scale: loaded.metadata.preprocessing.scale,
      tta: input.tta,
    });
  } finally {
    await engine.dispose();
  }
}

/** What the text output shows for a value that is not defined (`null`, `NaN`). */
const UNDEFINED = "—";

const pct = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x)
    ? UNDEFINED
    : `${(100 * x).toFixed(2)}%`;

const fixed = (x: number | null | undefined, digits: number) =>
  x === null || x === undefined || !Number.isFinite(x)
    ? UNDEFINED
    : x.toFixed(digits);

/** What was evaluated, how it was decided, and the overall metrics. */
function overallLines(e: ModelEvaluation): string[] {
  const r = e.full;
  const d = e.deduplicated;
  const decision = describeDecision(
    e.tumourThreshold === null ? {} : { tumourThreshold: e.tumourThreshold },
  );
  const lines = [
    `model: ${e.metadata.arch} (${e.metadata.classes.join(", ")})`,
    `data:  ${e.dataset}: ${r.n} images (${d.n} after de-duplication)`,
    `decision: ${decision}; test-time augmentation: ${e.tta}` +
    (e.engine ? `; engine: ${e.engine}` : ""),
    "",
    `accuracy        ${pct(r.accuracy)}  95% CI ${pct(r.accuracyCi.lower)}–${
      pct(r.accuracyCi.upper)
    }   de-duplicated ${pct(d.accuracy)}  (${pct(d.accuracyCi.lower)}–${
      pct(d.accuracyCi.upper)
    })`,
    `loss            ${fixed(r.loss, 4)}`,
    `macro F1        ${fixed(r.macro.f1, 4)}   de-duplicated ${
      fixed(d.macro.f1, 4)
    }`,
    `Cohen's kappa   ${fixed(r.cohenKappa, 4)}`,
    `macro AUC       ${fixed(r.macro.auc, 4)}`,
  ];
  if (r.calibration) {
    lines.push(
      `ECE (${r.calibration.bins} bins)   ${fixed(r.calibration.ece, 4)}`,
    );
  }
  return lines;
}

/** Tumour against no tumour, when the classes have a negative class. */
function binaryLines(r: EvaluationReport): string[] {
  if (!r.binary) return [];
  const b = r.binary;
  return [
    "",
    `tumour vs no tumour (negative class: ${b.negativeClass})`,
    `  sensitivity ${pct(b.sensitivity)} (${pct(b.sensitivityCi.lower)}–${
      pct(b.sensitivityCi.upper)
    })   specificity ${pct(b.specificity)} (${pct(b.specificityCi.lower)}–${
      pct(b.specificityCi.upper)
    })   AUC ${fixed(b.auc, 4)}`,
    `  PPV ${pct(b.ppv)}   NPV ${
      pct(b.npv)
    }   (tp ${b.tp}, fp ${b.fp}, tn ${b.tn}, fn ${b.fn})`,
  ];
}

/** The per-class table and the confusion matrix. */
function classLines(r: EvaluationReport): string[] {
  const lines = [
    "",
    "class        precision  recall    F1      support  AUC",
    ...r.perClass.map((c) =>
      `${c.class.padEnd(12)} ${pct(c.precision).padEnd(10)} ${
        pct(c.recall).padEnd(9)
      } ${fixed(c.f1, 3).padEnd(7)} ${String(c.support).padEnd(8)} ${
        fixed(c.auc, 3)
      }`
    ),
    "",
    "confusion matrix (rows: true, columns: predicted)",
    `${"".padEnd(12)} ${
      r.classes.map((c) => c.slice(0, 10).padEnd(10)).join(" ")
    }`,
  ];
  r.confusionMatrix.forEach((row, i) =>
    lines.push(
      `${r.classes[i].padEnd(12)} ${
        row.map((v) => String(v).padEnd(10)).join(" ")
      }`,
    )
  );
  return lines;
}

/**
 * A readable plain-text report of an evaluation: what was evaluated, the
 * overall metrics (full and de-duplicated), tumour against no tumour, the
 * per-class table, the confusion matrix and the skipped files. A value that
 * is not defined (a ratio with a zero denominator) reads "—". When the model
 * is degenerate (see `./degenerate.ts`) the report opens with the warning
 * that says why.
 *
 * @example A report of two scans, both right
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatEvaluation, reportFromProbabilities } from "./evaluate.ts";
 * import type { ModelMetadata } from "../model/saved_model.ts";
 * const classes = ["glioma", "notumor"];
 * const probabilities = new Float32Array([0.9, 0.1, 0.2, 0.8]);
 * const labels = Int32Array.from([0, 1]);
 * const report = reportFromProbabilities({ probabilities, labels, classes });
 * const text = formatEvaluation({
 *   metadata: { arch: "seedCnn", classes } as ModelMetadata,
 *   dataset: "two scans",
 *   full: report,
 *   deduplicated: report,
 *   files: [],
 *   probabilities,
 *   labels,
 *   errors: [],
 *   tta: "none",
 *   tumourThreshold: null,
 * });
 * assert.match(text, /^model: seedCnn \(glioma, notumor\)$/m);
 * assert.match(text, /^data: {2}two scans: 2 images \(2 after de-duplication\)$/m);
 * assert.match(text, /^accuracy +100\.00%/m);
 * ```
 *
 * @example A model that never says "no tumour" is flagged at the top
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatEvaluation, reportFromProbabilities } from "./evaluate.ts";
 * import type { ModelMetadata } from "../model/saved_model.ts";
 * const classes = ["glioma", "notumor"];
 * const probabilities = new Float32Array([0.9, 0.1, 0.6, 0.4, 0.7, 0.3]);
 * const labels = Int32Array.from([0, 1, 1]);
 * const report = reportFromProbabilities({ probabilities, labels, classes });
 * const text = formatEvaluation({
 *   metadata: { arch: "seedCnn", classes } as ModelMetadata,
 *   dataset: "three scans",
 *   full: report,
 *   deduplicated: report,
 *   files: [],
 *   probabilities,
 *   labels,
 *   errors: [],
 *   tta: "none",
 *   tumourThreshold: null,
 * });
 * assert.match(text, /^Warning: this model is degenerate\./);
 * assert.match(text, /^- never predicts notumor, though 2 of the 3 scans are notumor$/m);
 * // Nothing is called "no tumour": the NPV is 0/0, not defined.
 * assert.match(text, /NPV —/);
 * assert.match(text, /^notumor +— +0\.00%/m);
 * ```
 */
export function formatEvaluation(e: ModelEvaluation): string {
  const warning = degenerateWarning(e.full);
  return [
    ...(warning ? [warning, ""] : []),
    ...overallLines(e),
    ...binaryLines(e.full),
    ...classLines(e.full),
    ...(e.errors.length ? [""] : []),
    ...e.errors.map((err) => `skipped ${err.path}: ${err.reason}`),
  ].join("\n");
}

// ---------------------------------------------------------------- CLI

/** The evaluation's command line: every flag with its type, default and help. */
export const EVALUATE_CLI = {
  command: "deno task evaluate",
  summary: "Evaluates a saved model on a dataset, on the full and on the\n" +
    "de-duplicated set, with the images preprocessed as its metadata says.",
  flags: {
    model: MODEL_FLAG,
    data: {
      type: "string",
      value: "DIR",
      help: "required: a Kaggle root (evaluates Testing/) or a\n" +
        "bare class-folder root (evaluates all of it)",
    },
    split: {
      type: "string",
      choices: ["auto", "test", "validation"],
      value: "SPLIT",
      default: "auto",
      help: "auto, or test|validation: re-derive that split\n" +
        "of DIR exactly as training did",
    },
    val: {
      type: "number",
      defaultText: `the model's, else ${DEFAULTS.validationFraction}`,
      help: "the validation fraction training\nused",
    },
    test: {
      type: "number",
      defaultText: `the model's, else ${DEFAULTS.testFraction}`,
      help: "the test fraction training\nused",
    },
    tta: {
      type: "string",
      choices: ["none", "hflip"],
      defaultText: "the model's own",
      help: "test-time augmentation",
    },
    engine: ENGINE_FLAG,
    "tumour-threshold": {
      type: "string",
      value: "T",
      defaultText: "the model's\noperating point, else argmax",
      help: "argmax, or a number in (0, 0.5]: call a tumour\n" +
        "when P(tumour) = 1 - P(notumor) >= T",
    },
    json: {
      type: "boolean",
      help: "one JSON object: { model, dataset, degenerate,\n" +
        "full, deduplicated, skipped } (keys: see\ndocs/evaluation.md)",
    },
  },
} as const;

type EvaluateFlags = FlagValues<typeof EVALUATE_CLI>;

function fraction(value: number | undefined, flag: string) {
  if (value !== undefined && !(value >= 0 && value < 1)) {
    throw new UsageError(
      `--${flag} must be a number in [0, 1) (got "${value}")`,
    );
  }
  return value;
}

/** `--tumour-threshold`: `undefined` (the model's), `null` (argmax) or τ. */
function thresholdArg(text: string | undefined): number | null | undefined {
  if (text === undefined) return undefined;
  if (text === "argmax") return null;
  const threshold = Number(text);
  if (tumourThresholdProblem(threshold)) {
    throw new UsageError(
      `--tumour-threshold must be argmax or a number in (0, 0.5] (got ${text})`,
    );
  }
  return threshold;
}

/** The command line as {@linkcode evaluateModel}'s options. */
function evaluateOptions(values: EvaluateFlags): EvaluateModelOptions {
  if (!values.data) throw new UsageError("--data is required");
  const tumourThreshold = thresholdArg(values["tumour-threshold"]);
  return {
    modelDir: values.model ?? projectPaths().defaultModel,
    data: values.data,
    split: values.split,
    validation: fraction(values.val, "val"),
    test: fraction(values.test, "test"),
    ...(values.tta ? { tta: values.tta } : {}),
    engine: resolveEngineKind(values.engine),
    ...(tumourThreshold === undefined ? {} : { tumourThreshold }),
  };
}

/**
 * The `--json` output: the model, the dataset, why the model is degenerate
 * (`degenerate`: the reasons on the full set, empty when it is not), both
 * reports (undefined values `null`), the skipped files.
 */
function evaluationJson(e: ModelEvaluation, modelDir: string) {
  return {
    model: {
      dir: modelDir,
      arch: e.metadata.arch,
      classes: e.metadata.classes,
      inputSize: e.metadata.inputSize,
      datasetFingerprint: e.metadata.datasetFingerprint,
      tta: e.tta,
      tumourThreshold: e.tumourThreshold,
      engine: e.engine,
    },
    dataset: e.dataset,
    degenerate: degenerateReasons(e.full),
    full: e.full,
    deduplicated: e.deduplicated,
    skipped: e.errors,
  };
}

async function main({ values }: ParsedCli<typeof EVALUATE_CLI>) {
  const options = evaluateOptions(values);
  try {
    const e = await evaluateModel(options);
    console.log(
      values.json
        ? JSON.stringify(evaluationJson(e, options.modelDir))
        : formatEvaluation(e),
    );
    return 0;
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await runCli(EVALUATE_CLI, main));
