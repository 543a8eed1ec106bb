/**
 * Evaluating a saved model on a dataset: every metric of
 * {@linkcode evaluationReport} on the full and on the de-duplicated set, with
 * the images preprocessed exactly as the model's metadata says (never from
 * flags).
 *
 * `deno task evaluate -- --model DIR --data DIR [--json]`:
 * - a Kaggle root (with `Testing/`): evaluates `Testing/`;
 * - a bare class-folder root: evaluates all of it;
 * - `--split test|validation` with a root that the model was trained on:
 *   re-derives that split exactly as training did (same seed and fractions)
 *   and evaluates it.
 *
 * @module
 */
import {
  auditDuplicates,
  type AuditFile,
  dedupeKeep,
  DEFAULT_NEAR_THRESHOLD,
} from "../data/audit.ts";
import { parseCli, taskArgs } from "../core/cli.ts";
import { prepareData } from "../data/prepare.ts";
import { discoverDataset, type ImageFile } from "../data/dataset.ts";
import { loadImages } from "../data/image_cache.ts";
import { describeDecision, tumourThresholdProblem } from "../model/decision.ts";
import { type EvaluationReport, evaluationReport } from "./metrics.ts";
import { projectPaths, SHIPPED_MODEL } from "../core/paths.ts";
import { DEFAULTS } from "../core/defaults.ts";
import {
  isTta,
  loadSavedModel,
  type ModelMetadata,
  type Tta,
} from "../model/saved_model.ts";

export type { Tta };
import { predictProbabilities } from "../model/inference.ts";

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
 * import { reportFromProbabilities } from "./evaluate.ts";
 * const r = reportFromProbabilities({
 *   probabilities: new Float32Array([0.9, 0.1, 0.2, 0.8]),
 *   labels: [0, 1],
 *   classes: ["glioma", "notumor"],
 * });
 * console.log(r.accuracy); // 1
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
    const data = await prepareData({
      source: options.data,
      size,
      seed: metadata.training.seed,
      validation: options.validation ?? metadata.training.split?.validation,
      test: options.test ?? metadata.training.split?.test,
      cacheDir: options.cacheDir,
    });
    checkClasses(data.classes, metadata, options.data);
    const part = data[options.split];
    return {
      files: part.files,
      pixels: part.pixels,
      label:
        `${options.split} split of ${options.data} (seed ${metadata.training.seed})`,
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
 * @example
 * ```ts
 * import { evaluateModel } from "./evaluate.ts";
 * const e = await evaluateModel({ modelDir: "models/resnet-128-e1/model", data: "data" });
 * console.log(e.full.accuracy, e.deduplicated.accuracy);
 * ```
 */
export async function evaluateModel(
  options: EvaluateModelOptions,
): Promise<ModelEvaluation> {
  const { model, metadata } = await loadSavedModel(options.modelDir);
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
    const probabilities = await predictProbabilities(model, {
      pixels: chosen.pixels,
      size: metadata.preprocessing.size,
      scale: metadata.preprocessing.scale,
      tta,
    });
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
    };
  } finally {
    model.dispose();
  }
}

const pct = (x: number | null | undefined) =>
  x === null || x === undefined || Number.isNaN(x)
    ? "n/a"
    : `${(100 * x).toFixed(2)}%`;

/**
 * A readable plain-text report of an evaluation.
 *
 * @example
 * ```ts
 * import { evaluateModel, formatEvaluation } from "./evaluate.ts";
 * console.log(formatEvaluation(await evaluateModel({ modelDir: "m", data: "d" })));
 * ```
 */
export function formatEvaluation(e: ModelEvaluation): string {
  const lines: string[] = [];
  const r = e.full;
  const d = e.deduplicated;
  lines.push(`model: ${e.metadata.arch} (${e.metadata.classes.join(", ")})`);
  lines.push(
    `data:  ${e.dataset}: ${r.n} images (${d.n} after de-duplication)`,
  );
  lines.push(
    `decision: ${
      describeDecision(
        e.tumourThreshold === null
          ? {}
          : { tumourThreshold: e.tumourThreshold },
      )
    }; test-time augmentation: ${e.tta}`,
  );
  lines.push("");
  lines.push(
    `accuracy        ${pct(r.accuracy)}  95% CI ${pct(r.accuracyCi.lower)}–${
      pct(r.accuracyCi.upper)
    }   de-duplicated ${pct(d.accuracy)}  (${pct(d.accuracyCi.lower)}–${
      pct(d.accuracyCi.upper)
    })`,
  );
  lines.push(`loss            ${r.loss.toFixed(4)}`);
  lines.push(
    `macro F1        ${r.macro.f1.toFixed(4)}   de-duplicated ${
      d.macro.f1.toFixed(4)
    }`,
  );
  lines.push(`Cohen's kappa   ${(r.cohenKappa ?? NaN).toFixed(4)}`);
  lines.push(`macro AUC       ${(r.macro.auc ?? NaN).toFixed(4)}`);
  if (r.calibration) {
    lines.push(`ECE (15 bins)   ${(r.calibration.ece ?? NaN).toFixed(4)}`);
  }
  if (r.binary) {
    const b = r.binary;
    lines.push("");
    lines.push(`tumour vs no tumour (negative class: ${b.negativeClass})`);
    lines.push(
      `  sensitivity ${pct(b.sensitivity)} (${pct(b.sensitivityCi.lower)}–${
        pct(b.sensitivityCi.upper)
      })   specificity ${pct(b.specificity)} (${pct(b.specificityCi.lower)}–${
        pct(b.specificityCi.upper)
      })   AUC ${(b.auc ?? NaN).toFixed(4)}`,
    );
  }
  lines.push("");
  lines.push("class        precision  recall    F1      support  AUC");
  for (const c of r.perClass) {
    lines.push(
      `${c.class.padEnd(12)} ${pct(c.precision).padEnd(10)} ${
        pct(c.recall).padEnd(9)
      } ${c.f1.toFixed(3).padEnd(7)} ${String(c.support).padEnd(8)} ${
        (c.auc ?? NaN).toFixed(3)
      }`,
    );
  }
  lines.push("");
  lines.push("confusion matrix (rows: true, columns: predicted)");
  lines.push(
    `${"".padEnd(12)} ${
      r.classes.map((c) => c.slice(0, 10).padEnd(10)).join(" ")
    }`,
  );
  r.confusionMatrix.forEach((row, i) =>
    lines.push(
      `${r.classes[i].padEnd(12)} ${
        row.map((v) => String(v).padEnd(10)).join(" ")
      }`,
    )
  );
  if (e.errors.length) {
    lines.push("");
    for (const err of e.errors) {
      lines.push(`skipped ${err.path}: ${err.reason}`);
    }
  }
  return lines.join("\n");
}

const USAGE =
  `usage: deno task evaluate [--model DIR] --data DIR [--json] [--split auto|test|validation] [--val F] [--test F] [--tta T] [--tumour-threshold T]

  --model DIR   a saved model folder (model.json, weights.bin, metadata.json)
                or a run folder holding one in model/; default: BRAIN_MRI_MODEL,
                else the shipped model (models/${SHIPPED_MODEL})
  --data DIR    a Kaggle root (evaluates Testing/) or a bare class-folder root (evaluates all)
  --split S     test|validation: re-derive that split of DIR exactly as training did
  --val F, --test F   the fractions training used (default: the model's
                      metadata, else ${DEFAULTS.validationFraction} and ${DEFAULTS.testFraction})
  --tta T       none|hflip: test-time augmentation (default: the model's own)
  --tumour-threshold T
                argmax, or a number in (0, 0.5]: call a tumour when
                P(tumour) = 1 - P(notumor) >= T (default: the model's own
                operating point, else argmax)
  --json        one JSON object: { model, dataset, full, deduplicated } (keys: see README)`;

async function main(args: string[]): Promise<number> {
  const parsed = parseCli(USAGE, {
    args,
    options: {
      model: { type: "string" },
      data: { type: "string" },
      json: { type: "boolean", default: false },
      split: { type: "string", default: "auto" },
      val: { type: "string" },
      test: { type: "string" },
      tta: { type: "string" },
      "tumour-threshold": { type: "string" },
    },
    strict: true,
  });
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  if (!values.data) {
    console.error(`error: --data is required\n${USAGE}`);
    return 2;
  }
  if (values.tta !== undefined && !isTta(values.tta)) {
    console.error(`error: --tta must be none or hflip\n${USAGE}`);
    return 2;
  }
  const thresholdFlag = values["tumour-threshold"];
  const tumourThreshold = thresholdFlag === undefined
    ? undefined
    : thresholdFlag === "argmax"
    ? null
    : Number(thresholdFlag);
  if (
    typeof tumourThreshold === "number" &&
    tumourThresholdProblem(tumourThreshold)
  ) {
    console.error(
      `error: --tumour-threshold must be argmax or a number in (0, 0.5] (got ${thresholdFlag})\n${USAGE}`,
    );
    return 2;
  }
  if (!["auto", "test", "validation"].includes(values.split)) {
    console.error(`error: --split must be auto, test or validation\n${USAGE}`);
    return 2;
  }
  try {
    const e = await evaluateModel({
      modelDir: values.model ?? projectPaths().defaultModel,
      data: values.data,
      split: values.split as EvaluateModelOptions["split"],
      validation: values.val === undefined ? undefined : Number(values.val),
      test: values.test === undefined ? undefined : Number(values.test),
      ...(values.tta ? { tta: values.tta } : {}),
      ...(tumourThreshold === undefined ? {} : { tumourThreshold }),
    });
    if (values.json) {
      console.log(JSON.stringify({
        model: {
          dir: values.model ?? projectPaths().defaultModel,
          arch: e.metadata.arch,
          classes: e.metadata.classes,
          inputSize: e.metadata.inputSize,
          datasetFingerprint: e.metadata.datasetFingerprint,
          tta: e.tta,
          tumourThreshold: e.tumourThreshold,
        },
        dataset: e.dataset,
        full: e.full,
        deduplicated: e.deduplicated,
        skipped: e.errors,
      }));
    } else {
      console.log(formatEvaluation(e));
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
