/**
 * Model cards: a `README.md` next to a shipped model saying what it was
 * trained on, what it is for and not for, how well it does (with 95%
 * intervals, on the full and the de-duplicated test split) and where it goes
 * wrong — written from the model's metadata and a fresh evaluation, never by
 * hand, so the numbers are the ones `deno task evaluate` reproduces.
 *
 * ```sh
 * deno task model-card -- [--model DIR] [--data DIR] [--split test|validation|auto] [--out FILE] [--engine tfjs|onnx]
 * ```
 *
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import { writeTextAtomic } from "../core/atomic.ts";
import { MODEL_FLAG, runCli } from "../core/cli.ts";
import { describeDecision } from "../model/decision.ts";
import {
  evaluateModel,
  type EvaluateModelOptions,
} from "../evaluate/evaluate.ts";
import { type EvaluationReport, wilsonInterval } from "../evaluate/metrics.ts";
import { degenerateWarning } from "../evaluate/degenerate.ts";
import { projectPaths } from "../core/paths.ts";
import type { Clahe } from "../core/clahe.ts";
import { type ModelMetadata, resolveModelDir } from "../model/saved_model.ts";
import { datasetName } from "../train/run_files.ts";
import {
  DEFAULT_ENGINE,
  ENGINE_FLAG,
  type EngineKind,
  resolveEngineKind,
} from "../model/engine.ts";

/** Options for {@linkcode modelCard}. */
export interface ModelCardOptions {
  /** The model's name (its run folder's name). */
  name: string;
  /** Its metadata. */
  metadata: ModelMetadata;
  /** What was evaluated, in words (e.g. "test split of …"). */
  dataset: string;
  /** Metrics on every evaluated image. */
  full: EvaluationReport;
  /** Metrics on the de-duplicated set. */
  deduplicated: EvaluationReport;
  /** The command that reproduces the numbers. */
  command: string;
  /** The training run's `config` from its `manifest.json`, when known. */
  runConfig?: Record<string, unknown>;
  /** The inference engine that computed the probabilities, when known. */
  engine?: EngineKind;
}

/** What the card shows for a value that is not defined (`null`, `NaN`) or not computed. */
const UNDEFINED = "—";

const pct = (x: number | null | undefined, digits = 1) =>
  x === null || x === undefined || !Number.isFinite(x)
    ? UNDEFINED
    : `${(100 * x).toFixed(digits)}%`;

const ci = (i: { lower: number; upper: number } | null | undefined) =>
  i ? `${pct(i.lower)}–${pct(i.upper)}` : UNDEFINED;

const num = (x: number | null | undefined, digits = 3) =>
  x === null || x === undefined || !Number.isFinite(x)
    ? UNDEFINED
    : x.toFixed(digits);

function recallCi(r: EvaluationReport, k: number) {
  const c = r.perClass[k];
  return c.support > 0 && c.recall !== null
    ? wilsonInterval({
      successes: Math.round(c.recall * c.support),
      total: c.support,
    })
    : null;
}

/** The largest off-diagonal cells of a confusion matrix, most frequent first. */
function topConfusions(r: EvaluationReport, limit = 4) {
  const out: { from: string; to: string; count: number; share: number }[] = [];
  r.confusionMatrix.forEach((row, i) =>
    row.forEach((count, j) => {
      if (i !== j && count > 0) {
        out.push({
          from: r.classes[i],
          to: r.classes[j],
          count,
          share: count / row.reduce((a, b) => a + b, 0),
        });
      }
    })
  );
  return out.sort((a, b) => b.count - a.count).slice(0, limit);
}

function runConfigLine(c: Record<string, unknown>): string {
  const parts: string[] = [];
  const opts = c.modelOptions as Record<string, unknown> | undefined;
  if (opts && Object.keys(opts).length) {
    parts.push(`architecture options ${JSON.stringify(opts)}`);
  }
  const cosine = c.cosineDecay as
    | { minLr: number; over?: "epochs" | "time" }
    | false
    | undefined;
  const plateau = c.reduceLrOnPlateau as
    | { patience: number; factor: number }
    | false
    | undefined;
  if (cosine) {
    parts.push(
      cosine.over === "time" && typeof c.maxSeconds === "number"
        ? `cosine learning-rate decay to ${cosine.minLr} over the ${
          (c.maxSeconds / 60).toFixed(0)
        }-min time budget (at most ${c.epochs} epochs)`
        : `cosine learning-rate decay to ${cosine.minLr} over ${c.epochs} epochs`,
    );
  } else if (plateau) {
    parts.push(
      `learning rate ×${plateau.factor} after ${plateau.patience} epochs without improvement`,
    );
  }
  const ema = c.ema as { decay: number } | false | undefined;
  if (ema) {
    parts.push(
      `moving average of the weights (decay ${ema.decay}) validated and saved`,
    );
  }
  if (typeof c.weightDecay === "number" && c.weightDecay > 0) {
    parts.push(`decoupled weight decay ${c.weightDecay}`);
  }
  if (typeof c.labelSmoothing === "number" && c.labelSmoothing > 0) {
    parts.push(`label smoothing ${c.labelSmoothing}`);
  }
  if (typeof c.mixup === "number" && c.mixup > 0) {
    parts.push(`mixup α ${c.mixup}`);
  }
  const es = c.earlyStopping as { patience: number } | false | undefined;
  parts.push(es ? `early stopping after ${es.patience}` : "no early stopping");
  if (typeof c.maxSeconds === "number") {
    parts.push(`training time budget ${(c.maxSeconds / 60).toFixed(0)} min`);
  }
  return `- Schedule: ${parts.join("; ")}.`;
}

/**
 * The degenerate-model warning of the evaluation (`../evaluate/degenerate.ts`)
 * as a Markdown quote with its blank line after, or nothing when the model is
 * not degenerate.
 */
function warning(full: EvaluationReport): string[] {
  const text = degenerateWarning(full);
  if (!text) return [];
  const [headline, ...reasons] = text.split("\n");
  return [`> **${headline}**`, ">", ...reasons.map((r) => `> ${r}`), ""];
}

/** The CLAHE step of the input, in words (empty without one). */
function claheWords(clahe: Clahe | undefined): string {
  return clahe
    ? ` equalised by CLAHE (clip limit ${clahe.clipLimit}, ` +
      `${clahe.tiles}×${clahe.tiles} tiles, as OpenCV's createCLAHE),`
    : "";
}

/** The title, the degenerate-model warning if any, and the "What it is" section. */
function whatItIs(
  name: string,
  m: ModelMetadata,
  full: EvaluationReport,
): string[] {
  return [
    `# ${name}: brain MRI tumour classifier (${m.arch}, ${m.inputSize}×${m.inputSize} grayscale)`,
    "",
    ...warning(full),
    "_Written by `deno task model-card` from the model's metadata and a fresh",
    "evaluation; do not edit by hand._",
    "",
    "## What it is",
    "",
    m.ensemble
      ? `An ensemble of ${m.ensemble.members.length} convolutional networks ` +
        "(their probabilities averaged), trained from scratch with the"
      : `A convolutional network (\`${m.arch}\`, trained from scratch with the`,
    "brain-mri-cnn project) that sorts one axial brain MRI slice into one of",
    `${m.classes.length} classes: ${m.classes.join(", ")}. Input: the image`,
    `converted to grey, resized to ${m.inputSize}×${m.inputSize} (stretched,`,
    "aspect ratio not kept)," + claheWords(m.preprocessing.clahe) +
    " scaled to [0, 1]. Output: one probability per",
    "class, summing to 1" +
    (m.inference?.tta === "hflip"
      ? ", averaged over the image and its left-right mirror (test-time " +
        "augmentation, chosen on the validation split)."
      : "."),
    "",
    decisionLine(m),
    "",
  ];
}

/** How the model turns probabilities into a class: argmax or its operating point. */
function decisionLine(m: ModelMetadata): string {
  return m.inference?.tumourThreshold === undefined
    ? "Decision: the most probable class (argmax)."
    : `Decision: an operating point chosen on the validation split ` +
      `(\`select-threshold\`, the operating-point rule): ${
        describeDecision({ tumourThreshold: m.inference.tumourThreshold })
      }. It only turns "notumor" calls into tumour calls; every metric ` +
      "below that counts right and wrong answers uses it (the loss and " +
      "the calibration error measure the probabilities).";
}

/**
 * What the model is for and what it must not be used for: the same for every
 * model but for how it misses tumours, which says "not 100%" only when the
 * measured tumour sensitivity shows it.
 */
function uses(full: EvaluationReport): string[] {
  const sensitivity = full.binary?.sensitivity ?? null;
  const misses = sensitivity !== null && sensitivity < 1
    ? ["  and its tumour sensitivity below is not 100%: it misses tumours."]
    : [
      "  and it can miss tumours: a sensitivity measured on one public",
      "  collection, even 100%, promises nothing elsewhere.",
    ];
  return [...USES_BEFORE, ...misses, ...USES_AFTER];
}

/** {@linkcode uses} up to the sentence on missed tumours. */
const USES_BEFORE: readonly string[] = [
  "## Intended use",
  "",
  "- Teaching and research: a worked, reproducible example of the CNN",
  "  pipeline (data audit, training, evaluation, deployment) on the public",
  '  Kaggle "Brain Tumor MRI Dataset".',
  "- Benchmarking preprocessing, training and serving code against it.",
  "",
  "## Must not be used for",
  "",
  "- **Diagnosis, triage or any clinical decision.** It is not a medical",
  "  device, has not been validated prospectively or on any hospital's data,",
];

/** {@linkcode uses} after the sentence on missed tumours. */
const USES_AFTER: readonly string[] = [
  "- Images unlike its training data: other modalities (CT, X-ray), other",
  "  MRI sequences or planes than the dataset's, whole volumes, children's",
  '  scans, post-operative scans, other tumour types. It has no "unknown"',
  "  answer: any image, even a photo of a cat, gets one of its classes.",
  "- Grading, sizing or locating tumours: Grad-CAM overlays show what",
  "  drove a prediction, not where a tumour is.",
  "",
];

/** The "Training data" section: source, splits, what chose what. */
function trainingData(m: ModelMetadata): string[] {
  const t = m.training;
  return [
    "## Training data",
    "",
    `- Source: the dataset's \`Training/\` folder only (fingerprint`,
    `  \`${m.datasetFingerprint.slice(0, 16)}…\`); the official \`Testing/\``,
    "  folder was never used.",
    `- Splits: stratified and duplicate-aware (exact and near-duplicate copies`,
    "  of one scan never straddle two splits), seed " +
    `${t.seed}: validation ${
      t.split ? pct(t.split.validation, 0) : "15%"
    }, test ${t.split ? pct(t.split.test, 0) : "15%"}, the rest for training` +
    (t.trainImages
      ? ` (${t.trainImages} training, ${t.validationImages} validation images).`
      : "."),
    `- Everything (architecture, epochs, learning rate, augmentation) was`,
    "  chosen on the validation split; the test split below was used only to",
    "  report the final numbers." +
    (t.split?.validationTrained
      ? " This model is the final refit of those settings: it was trained on" +
        " the training and validation splits together (the training images" +
        " above include the validation ones), so no validation metric of its" +
        " own exists."
      : ""),
    "",
  ];
}

/** The "Training" section: optimiser, epochs, schedule, augmentation, versions. */
function training(
  m: ModelMetadata,
  runConfig: Record<string, unknown> | undefined,
): string[] {
  const t = m.training;
  const aug = t.augmentation
    ? Object.entries(t.augmentation).map(([k, v]) => `${k} ${v}`).join(", ")
    : "none";
  const members = m.ensemble?.members;
  return [
    "## Training",
    "",
    ...(members
      ? [
        `- An ensemble: the class probabilities of ${members.length} ` +
        "networks, trained on the same split, averaged: " +
        members.map((e) =>
          `\`${e.name}\` (${e.arch}, weights of epoch ${e.bestEpoch} of ${e.epochs})`
        ).join(", ") + ". The first one's training:",
      ]
      : []),
    `- ${
      members ? members[0].arch : m.arch
    }, Adam (learning rate ${t.learningRate}), batch ${t.batchSize}, ` +
    `${t.epochs} epochs (weights of epoch ${t.bestEpoch}, ${
      t.split?.validationTrained
        ? "the lowest training loss: a refit has no validation"
        : "the best on validation loss"
    }; ` +
    `stopped: ${t.stopReason ?? "n/a"})` +
    (t.seconds ? `, ${(t.seconds / 60).toFixed(1)} min on 2 CPU cores.` : "."),
    ...(runConfig ? [runConfigLine(runConfig)] : []),
    `- Augmentation: ${aug}. Class weights: ${
      t.classWeights ? JSON.stringify(t.classWeights) : "none"
    }.`,
    `- Versions: ${
      Object.entries(m.versions ?? {}).map(([k, v]) => `${k} ${v}`).join(", ")
    }.`,
    "",
  ];
}

/** A macro-F1 with its bootstrap interval. */
function f1WithCi(r: EvaluationReport): string {
  return `${num(r.macro.f1)} (${
    r.macroF1Ci
      ? `${num(r.macroF1Ci.lower)}–${num(r.macroF1Ci.upper)}`
      : UNDEFINED
  })`;
}

/** The tumour sensitivity and specificity rows, when both reports have them. */
function binaryRows(full: EvaluationReport, d: EvaluationReport): string[] {
  const b = full.binary;
  const bd = d.binary;
  if (!b || !bd) return [];
  return [
    `| tumour sensitivity (${
      b.positiveClasses.join("/")
    } vs ${b.negativeClass}) | ${pct(b.sensitivity, 2)} (${
      ci(b.sensitivityCi)
    }) | ${pct(bd.sensitivity, 2)} (${ci(bd.sensitivityCi)}) |`,
    `| tumour specificity | ${pct(b.specificity, 2)} (${
      ci(b.specificityCi)
    }) | ${pct(bd.specificity, 2)} (${ci(bd.specificityCi)}) |`,
  ];
}

/** The "Metrics" section's summary table: the full test split beside the de-duplicated one. */
function summaryTable(full: EvaluationReport, d: EvaluationReport): string[] {
  return [
    "| metric | test split | de-duplicated |",
    "| --- | --- | --- |",
    `| accuracy | ${pct(full.accuracy, 2)} (${ci(full.accuracyCi)}) | ${
      pct(d.accuracy, 2)
    } (${ci(d.accuracyCi)}) |`,
    `| macro F1 | ${f1WithCi(full)} | ${f1WithCi(d)} |`,
    `| Cohen's kappa | ${num(full.cohenKappa)} | ${num(d.cohenKappa)} |`,
    `| macro AUC (one vs rest) | ${num(full.macro.auc, 4)} | ${
      num(d.macro.auc, 4)
    } |`,
    ...binaryRows(full, d),
    `| expected calibration error (${full.calibration.bins} bins) | ${
      num(full.calibration.ece)
    } | ${num(d.calibration.ece)} |`,
    `| cross-entropy loss | ${num(full.loss)} | ${num(d.loss)} |`,
    "",
  ];
}

/** The per-class table: precision, recall with its interval, F1, AUC. */
function perClassTable(full: EvaluationReport, d: EvaluationReport): string[] {
  const rows = full.perClass.map((c, k) => {
    const dc = d.perClass[k];
    return `| ${c.class} | ${c.support} | ${pct(c.precision)} | ${
      pct(c.recall)
    } (${ci(recallCi(full, k))}) | ${num(c.f1)} | ${num(c.auc, 4)} | ${
      pct(dc.recall)
    } (${ci(recallCi(d, k))}) |`;
  });
  return [
    "Per class (test split; recall with its 95% interval):",
    "",
    "| class | images | precision | recall | F1 | AUC | recall, de-duplicated |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
    "",
  ];
}

/** The "Metrics" section. */
function metrics(options: ModelCardOptions): string[] {
  const { full, deduplicated: d } = options;
  return [
    "## Metrics",
    "",
    `On the ${options.dataset}: ${full.n} images, ${d.n} after removing exact`,
    "and near duplicates within it. 95% intervals: Wilson for proportions,",
    "bootstrap for macro-F1." +
    (options.engine
      ? ` Probabilities computed by the ${options.engine} inference engine.`
      : ""),
    "",
    ...summaryTable(full, d),
    ...perClassTable(full, d),
  ];
}

/** The "Known failure modes" section: the confusions, calibration, shift. */
function failureModes(full: EvaluationReport): string[] {
  const errors = full.n - Math.round(full.accuracy * full.n);
  return [
    "## Known failure modes",
    "",
    `- ${errors} of ${full.n} test scans are misclassified. The most frequent confusions:`,
    ...topConfusions(full).map((c) =>
      `  - ${c.from} taken for ${c.to}: ${c.count} (${
        pct(c.share)
      } of ${c.from})`
    ),
    `- Calibration: mean confidence ${
      pct(full.calibration.meanConfidence)
    } against accuracy ${pct(full.accuracy)}${
      (full.calibration.meanConfidence ?? 0) > full.accuracy
        ? " (over-confident)"
        : " (under-confident)"
    }; treat a probability as a ranking, not a risk.`,
    "- Distribution shift: all images come from one public collection;",
    "  accuracy on other scanners, sites or protocols is unknown and likely",
    "  lower. The official `Testing/` split was held out from all of this work.",
    "- Notebook 04 shows the most confident mistakes with Grad-CAM",
    "  overlays; look there before trusting a single prediction.",
    "",
  ];
}

/** The "Use" and "Reproduce these numbers" sections. */
function useAndReproduce(name: string, command: string): string[] {
  return [
    "## Use",
    "",
    "```sh",
    `deno task predict -- --model models/${name} scan.jpg   # one line per scan`,
    `deno task serve -- --model models/${name}              # POST /predict`,
    "```",
    "",
    "## Reproduce these numbers",
    "",
    "```sh",
    command,
    "```",
    "",
  ];
}

/**
 * The model card's Markdown: what the model is, its intended uses and
 * misuses, its training data and training, its metrics with 95% intervals
 * (full and de-duplicated test split), its known failure modes, and the
 * commands that use it and reproduce the numbers. A value that is not
 * defined (a ratio with a zero denominator) reads "—"; a degenerate model
 * (see `../evaluate/degenerate.ts`) gets the evaluation's warning, quoted,
 * under the title.
 *
 * @example A card for the shipped model from a small made-up report
 * ```ts
 * import assert from "node:assert/strict";
 * import { evaluationReport } from "../evaluate/metrics.ts";
 * import { readModelMetadata } from "../model/saved_model.ts";
 * import { modelCard } from "./model_card.ts";
 * const metadata = await readModelMetadata("models/resnet-128-e11");
 * const report = evaluationReport({
 *   yTrue: [0, 1, 2, 3],
 *   probs: [[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.1, 0.7]],
 *   classes: metadata.classes,
 * });
 * const card = modelCard({
 *   name: "resnet-128-e11",
 *   metadata,
 *   dataset: "test split of <data>",
 *   full: report,
 *   deduplicated: report,
 *   command: "deno task evaluate -- --model models/resnet-128-e11 --data <data>",
 * });
 * assert.match(card, /^# resnet-128-e11: brain MRI tumour classifier \(resnet, 128×128 grayscale\)/);
 * assert.match(card, /- 0 of 4 test scans are misclassified/);
 * assert.equal(card.includes("degenerate"), false);
 * ```
 */
export function modelCard(options: ModelCardOptions): string {
  const { name, metadata } = options;
  return [
    ...whatItIs(name, metadata, options.full),
    ...uses(options.full),
    ...trainingData(metadata),
    ...training(metadata, options.runConfig),
    ...metrics(options),
    ...failureModes(options.full),
    ...useAndReproduce(name, options.command),
  ].join("\n");
}

/** Options for {@linkcode writeModelCard}. */
export interface WriteModelCardOptions {
  /** Saved model or run folder (default: the shipped model). */
  model?: string;
  /** Dataset root (default: `projectPaths().data`). */
  data?: string;
  /** Which images to evaluate (default `test`: the model's own test split). */
  split?: EvaluateModelOptions["split"];
  /** Where to write (default: `README.md` in the run folder). */
  out?: string;
  /** The inference engine (default `BRAIN_MRI_ENGINE`, else tfjs). */
  engine?: EngineKind;
}

/**
 * Evaluates a model and writes its card atomically. Returns the card's path.
 *
 * Needs the dataset the model was trained on, so it is not run by
 * `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { writeModelCard } from "./model_card.ts";
 * console.log(await writeModelCard({ model: "models/resnet-128-e11", data: "data/Training" }));
 * ```
 */
export async function writeModelCard(
  options: WriteModelCardOptions = {},
): Promise<string> {
  const modelDir = resolveModelDir(
    options.model ?? projectPaths().defaultModel,
  );
  const runDir = basename(modelDir) === "model" ? dirname(modelDir) : modelDir;
  const data = resolve(options.data ?? projectPaths().data);
  const split = options.split ?? "test";
  const engine = options.engine ?? resolveEngineKind();
  const e = await evaluateModel({ modelDir, data, split, engine });
  const name = basename(runDir);
  // The card names the dataset as run manifests do, never by this machine's
  // absolute path: project-relative, else its last two folders.
  const dataName = datasetName(data);
  const runConfig = await readRunConfig(runDir);
  const out = options.out ?? join(runDir, "README.md");
  await writeTextAtomic(
    out,
    modelCard({
      name,
      metadata: e.metadata,
      dataset: e.dataset.replace(data, `\`${dataName}\``),
      full: e.full,
      deduplicated: e.deduplicated,
      ...(runConfig ? { runConfig } : {}),
      engine,
      command:
        `deno task evaluate -- --model models/${name} --data <path to ${dataName}>` +
        (split === "auto" ? "" : ` --split ${split}`) +
        (engine === DEFAULT_ENGINE ? "" : ` --engine ${engine}`),
    }),
  );
  return out;
}

/** The training run's `config` from its `manifest.json`; none if unreadable. */
async function readRunConfig(
  runDir: string,
): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(
      await Deno.readTextFile(join(runDir, "manifest.json")),
    ).config;
  } catch {
    return undefined;
  }
}

const MODEL_CARD_CLI = {
  command: "deno task model-card",
  summary:
    "Evaluates the model (default: the shipped one) on its own test split of\n" +
    "the dataset and writes its model card (README.md in its run folder, or\n" +
    "--out FILE).",
  flags: {
    model: MODEL_FLAG,
    data: {
      type: "string",
      value: "DIR",
      defaultText: "BRAIN_MRI_DATA, else data/",
      help: "dataset root the model was trained on",
    },
    split: {
      type: "string",
      choices: ["test", "validation", "auto"],
      default: "test",
      help: "which images to evaluate",
    },
    out: {
      type: "string",
      value: "FILE",
      defaultText: "README.md in the run folder",
      help: "where to write the card",
    },
    engine: ENGINE_FLAG,
  },
} as const;

if (import.meta.main) {
  Deno.exit(
    await runCli(MODEL_CARD_CLI, async ({ values }) => {
      try {
        const out = await writeModelCard({
          ...(values.model ? { model: values.model } : {}),
          ...(values.data ? { data: values.data } : {}),
          split: values.split,
          ...(values.out ? { out: values.out } : {}),
          engine: resolveEngineKind(values.engine),
        });
        console.log(`model card: ${out}`);
        return 0;
      } catch (error) {
        console.error(`model-card: ${(error as Error).message}`);
        return 1;
      }
    }),
  );
}
