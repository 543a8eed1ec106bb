/**
 * Model cards: a `README.md` next to a shipped model saying what it was
 * trained on, what it is for and not for, how well it does (with 95%
 * intervals, on the full and the de-duplicated test split) and where it goes
 * wrong — written from the model's metadata and a fresh evaluation, never by
 * hand, so the numbers are the ones `deno task evaluate` reproduces.
 *
 * ```sh
 * deno task model-card -- [--model DIR] [--data DIR] [--split test] [--out FILE]
 * ```
 *
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import { writeTextAtomic } from "../core/atomic.ts";
import { parseCli, taskArgs } from "../core/cli.ts";
import { describeDecision } from "../model/decision.ts";
import {
  evaluateModel,
  type EvaluateModelOptions,
} from "../evaluate/evaluate.ts";
import { type EvaluationReport, wilsonInterval } from "../evaluate/metrics.ts";
import { projectPaths } from "../core/paths.ts";
import { type ModelMetadata, resolveModelDir } from "../model/saved_model.ts";

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
}

const pct = (x: number | null | undefined, digits = 1) =>
  x === null || x === undefined || !Number.isFinite(x)
    ? "n/a"
    : `${(100 * x).toFixed(digits)}%`;

const ci = (i: { lower: number; upper: number } | null | undefined) =>
  i ? `${pct(i.lower)}–${pct(i.upper)}` : "n/a";

const num = (x: number | null | undefined, digits = 3) =>
  x === null || x === undefined || !Number.isFinite(x)
    ? "n/a"
    : x.toFixed(digits);

function recallCi(r: EvaluationReport, k: number) {
  const c = r.perClass[k];
  return c.support > 0
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
  const es = c.earlyStopping as { patience: number } | false | undefined;
  parts.push(es ? `early stopping after ${es.patience}` : "no early stopping");
  if (typeof c.maxSeconds === "number") {
    parts.push(`training time budget ${(c.maxSeconds / 60).toFixed(0)} min`);
  }
  return `- Schedule: ${parts.join("; ")}.`;
}

/**
 * The model card's Markdown.
 *
 * @example
 * ```ts ignore
 * import { evaluateModel } from "../evaluate/evaluate.ts";
 * import { modelCard } from "./model_card.ts";
 * const e = await evaluateModel({ modelDir: "models/resnet-128-e1", data: "data/Training", split: "test" });
 * console.log(modelCard({ name: "resnet-128-e1", ...e, command: "deno task evaluate ..." }));
 * ```
 */
export function modelCard(options: ModelCardOptions): string {
  const { name, metadata: m, full, deduplicated: d } = options;
  const t = m.training;
  const errors = full.n - Math.round(full.accuracy * full.n);
  const confusions = topConfusions(full);
  const b = full.binary;
  const bd = d.binary;
  const aug = t.augmentation
    ? Object.entries(t.augmentation).map(([k, v]) => `${k} ${v}`).join(", ")
    : "none";
  const perClassRows = full.perClass.map((c, k) => {
    const dc = d.perClass[k];
    return `| ${c.class} | ${c.support} | ${pct(c.precision)} | ${
      pct(c.recall)
    } (${ci(recallCi(full, k))}) | ${num(c.f1)} | ${num(c.auc, 4)} | ${
      pct(dc.recall)
    } (${ci(recallCi(d, k))}) |`;
  });
  const lines = [
    `# ${name}: brain MRI tumour classifier (${m.arch}, ${m.inputSize}×${m.inputSize} grayscale)`,
    "",
    "_Written by `deno task model-card` from the model's metadata and a fresh",
    "evaluation; do not edit by hand._",
    "",
    "## What it is",
    "",
    `A convolutional network (\`${m.arch}\`, trained from scratch with the`,
    "brain-mri-cnn project) that sorts one axial brain MRI slice into one of",
    `${m.classes.length} classes: ${m.classes.join(", ")}. Input: the image`,
    `converted to grey, resized to ${m.inputSize}×${m.inputSize} (stretched,`,
    "aspect ratio not kept), scaled to [0, 1]. Output: one probability per",
    "class, summing to 1" +
    (m.inference?.tta === "hflip"
      ? ", averaged over the image and its left-right mirror (test-time " +
        "augmentation, chosen on the validation split)."
      : "."),
    "",
    m.inference?.tumourThreshold === undefined
      ? "Decision: the most probable class (argmax)."
      : `Decision: an operating point chosen on the validation split ` +
        `(\`select-threshold\`, the operating-point rule): ${
          describeDecision({ tumourThreshold: m.inference.tumourThreshold })
        }. It only turns "notumor" calls into tumour calls; every metric ` +
        "below that counts right and wrong answers uses it (the loss and " +
        "the calibration error measure the probabilities).",
    "",
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
    "  and its tumour sensitivity below is not 100%: it misses tumours.",
    "- Images unlike its training data: other modalities (CT, X-ray), other",
    "  MRI sequences or planes than the dataset's, whole volumes, children's",
    '  scans, post-operative scans, other tumour types. It has no "unknown"',
    "  answer: any image, even a photo of a cat, gets one of its classes.",
    "- Grading, sizing or locating tumours: Grad-CAM overlays show what",
    "  drove a prediction, not where a tumour is.",
    "",
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
    "## Training",
    "",
    `- ${m.arch}, Adam (learning rate ${t.learningRate}), batch ${t.batchSize}, ` +
    `${t.epochs} epochs (weights of epoch ${t.bestEpoch}, ${
      t.split?.validationTrained
        ? "the lowest training loss: a refit has no validation"
        : "the best on validation loss"
    }; ` +
    `stopped: ${t.stopReason ?? "n/a"})` +
    (t.seconds ? `, ${(t.seconds / 60).toFixed(1)} min on 2 CPU cores.` : "."),
    ...(options.runConfig ? [runConfigLine(options.runConfig)] : []),
    `- Augmentation: ${aug}. Class weights: ${
      t.classWeights ? JSON.stringify(t.classWeights) : "none"
    }.`,
    `- Versions: ${
      Object.entries(m.versions ?? {}).map(([k, v]) => `${k} ${v}`).join(", ")
    }.`,
    "",
    "## Metrics",
    "",
    `On the ${options.dataset}: ${full.n} images, ${d.n} after removing exact`,
    "and near duplicates within it. 95% intervals: Wilson for proportions,",
    "bootstrap for macro-F1.",
    "",
    "| metric | test split | de-duplicated |",
    "| --- | --- | --- |",
    `| accuracy | ${pct(full.accuracy, 2)} (${ci(full.accuracyCi)}) | ${
      pct(d.accuracy, 2)
    } (${ci(d.accuracyCi)}) |`,
    `| macro F1 | ${num(full.macro.f1)} (${
      full.macroF1Ci
        ? `${num(full.macroF1Ci.lower)}–${num(full.macroF1Ci.upper)}`
        : "n/a"
    }) | ${num(d.macro.f1)} (${
      d.macroF1Ci
        ? `${num(d.macroF1Ci.lower)}–${num(d.macroF1Ci.upper)}`
        : "n/a"
    }) |`,
    `| Cohen's kappa | ${num(full.cohenKappa)} | ${num(d.cohenKappa)} |`,
    `| macro AUC (one vs rest) | ${num(full.macro.auc, 4)} | ${
      num(d.macro.auc, 4)
    } |`,
    ...(b && bd
      ? [
        `| tumour sensitivity (${
          b.positiveClasses.join("/")
        } vs ${b.negativeClass}) | ${pct(b.sensitivity, 2)} (${
          ci(b.sensitivityCi)
        }) | ${pct(bd.sensitivity, 2)} (${ci(bd.sensitivityCi)}) |`,
        `| tumour specificity | ${pct(b.specificity, 2)} (${
          ci(b.specificityCi)
        }) | ${pct(bd.specificity, 2)} (${ci(bd.specificityCi)}) |`,
      ]
      : []),
    `| expected calibration error (${full.calibration.bins} bins) | ${
      num(full.calibration.ece)
    } | ${num(d.calibration.ece)} |`,
    `| cross-entropy loss | ${num(full.loss)} | ${num(d.loss)} |`,
    "",
    "Per class (test split; recall with its 95% interval):",
    "",
    "| class | images | precision | recall | F1 | AUC | recall, de-duplicated |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...perClassRows,
    "",
    "## Known failure modes",
    "",
    `- ${errors} of ${full.n} test scans are misclassified. The most frequent confusions:`,
    ...confusions.map((c) =>
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
    options.command,
    "```",
    "",
  ];
  return lines.join("\n");
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
}

/**
 * Evaluates a model and writes its card atomically. Returns the card's path.
 *
 * @example
 * ```ts ignore
 * import { writeModelCard } from "./model_card.ts";
 * console.log(await writeModelCard({ model: "models/resnet-128-e1", data: "/data/brain/Training" }));
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
  const e = await evaluateModel({ modelDir, data, split });
  const name = basename(runDir);
  let runConfig: Record<string, unknown> | undefined;
  try {
    runConfig = JSON.parse(
      await Deno.readTextFile(join(runDir, "manifest.json")),
    ).config;
  } catch {
    runConfig = undefined;
  }
  const out = options.out ?? join(runDir, "README.md");
  await writeTextAtomic(
    out,
    modelCard({
      name,
      metadata: e.metadata,
      dataset: e.dataset.replace(data, "<data>"),
      full: e.full,
      deduplicated: e.deduplicated,
      ...(runConfig ? { runConfig } : {}),
      command: `deno task evaluate -- --model models/${name} --data <data>` +
        (split === "auto" ? "" : ` --split ${split}`),
    }),
  );
  return out;
}

const USAGE =
  `usage: deno task model-card -- [--model DIR] [--data DIR] [--split test|validation|auto] [--out FILE]

  Evaluates the model (default: the shipped one) on its own test split of DIR
  (default: BRAIN_MRI_DATA, else data/) and writes its model card (README.md
  in its run folder, or --out FILE).`;

async function main(args: string[]): Promise<number> {
  const parsed = parseCli(USAGE, {
    args,
    options: {
      model: { type: "string" },
      data: { type: "string" },
      split: { type: "string", default: "test" },
      out: { type: "string" },
    },
    strict: true,
  });
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  try {
    const out = await writeModelCard({
      ...(values.model ? { model: values.model } : {}),
      ...(values.data ? { data: values.data } : {}),
      split: values.split as EvaluateModelOptions["split"],
      ...(values.out ? { out: values.out } : {}),
    });
    console.log(`model card: ${out}`);
    return 0;
  } catch (error) {
    console.error(`model-card: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(taskArgs()));
}
