/**
 * The clinical targets as data, and the run-ranking rule built on them:
 * candidates are compared on their validation reports by
 *
 * 1. the most targets met;
 * 2. then the higher of the weakest recalls among `focusClasses` (by default
 *    glioma and meningioma, the two classes with a recall target);
 * 3. then the lower loss.
 *
 * Pure functions over {@linkcode EvaluationReport}s (no TensorFlow):
 * `select_run.ts` evaluates runs and ranks them with these, and notebook 04
 * shows the shipped model against the same targets with
 * {@linkcode targetsTable}.
 *
 * @module
 */
import { type Displayable, htmlTable } from "../core/display.ts";
import type { EvaluationReport } from "./metrics.ts";

/** One target: a metric of an {@linkcode EvaluationReport} and its bound. */
export interface Target {
  /** Short name, e.g. `"accuracy ≥ 97%"`. */
  name: string;
  /** The metric's value in a report; `null` when it is undefined there. */
  value: (report: EvaluationReport) => number | null;
  /** The value must be at least this (inclusive). */
  min?: number;
  /** The value must be at most this (inclusive). */
  max?: number;
  /** Show the value as a percentage (default: three decimals). */
  percent?: boolean;
}

/** A class's recall in `report`, or `null` if the class is not there. */
function recallOf(report: EvaluationReport, name: string): number | null {
  return report.perClass.find((c) => c.class === name)?.recall ?? null;
}

/**
 * The clinical targets: accuracy ≥ 97%, macro-F1 ≥ 0.96, glioma and meningioma
 * recall ≥ 94% each, tumour sensitivity ≥ 99%, expected calibration error
 * ≤ 0.03.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CLINICAL_TARGETS } from "./targets.ts";
 * assert.deepEqual(CLINICAL_TARGETS.map((t) => t.name), [
 *   "accuracy ≥ 97%",
 *   "macro-F1 ≥ 0.96",
 *   "glioma recall ≥ 94%",
 *   "meningioma recall ≥ 94%",
 *   "tumour sensitivity ≥ 99%",
 *   "ECE ≤ 0.03",
 * ]);
 * ```
 */
export const CLINICAL_TARGETS: readonly Target[] = [
  {
    name: "accuracy ≥ 97%",
    value: (r) => r.accuracy,
    min: 0.97,
    percent: true,
  },
  { name: "macro-F1 ≥ 0.96", value: (r) => r.macro.f1, min: 0.96 },
  {
    name: "glioma recall ≥ 94%",
    value: (r) => recallOf(r, "glioma"),
    min: 0.94,
    percent: true,
  },
  {
    name: "meningioma recall ≥ 94%",
    value: (r) => recallOf(r, "meningioma"),
    min: 0.94,
    percent: true,
  },
  {
    name: "tumour sensitivity ≥ 99%",
    value: (r) => r.binary?.sensitivity ?? null,
    min: 0.99,
    percent: true,
  },
  { name: "ECE ≤ 0.03", value: (r) => r.calibration.ece, max: 0.03 },
];

/** One target's outcome in {@linkcode TargetScore}. */
export interface TargetResult {
  /** The target's name. */
  name: string;
  /** The measured value (`null`: undefined, which counts as not met). */
  value: number | null;
  /** Whether the bound holds. */
  met: boolean;
  /** Whether the value reads as a percentage (the target's `percent`). */
  percent: boolean;
}

/** What {@linkcode scoreTargets} returns. */
export interface TargetScore {
  /** One result per target, in the targets' order. */
  results: TargetResult[];
  /** How many targets are met. */
  met: number;
  /** The lowest recall among the focus classes (`null` if none is there). */
  weakestRecall: number | null;
  /** The report's mean cross-entropy. */
  loss: number;
}

/** A result's value as text: a percentage (with `%` if asked), else three decimals; `—` if undefined. */
function valueText(t: TargetResult, percentSign: boolean): string {
  if (t.value === null) return "—";
  return t.percent
    ? `${(100 * t.value).toFixed(2)}${percentSign ? "%" : ""}`
    : t.value.toFixed(3);
}

/** Options for {@linkcode scoreTargets}. */
export interface ScoreTargetsOptions {
  /** A validation report (`evaluateModel(...).full`). */
  report: EvaluationReport;
  /** The targets (default {@linkcode CLINICAL_TARGETS}). */
  targets?: readonly Target[];
  /** Classes whose weakest recall breaks ties (default glioma, meningioma). */
  focusClasses?: readonly string[];
}

/**
 * Checks each target against a report.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { evaluationReport } from "./metrics.ts";
 * import { scoreTargets } from "./targets.ts";
 * const report = evaluationReport({
 *   yTrue: [0, 1],
 *   probs: [[0.9, 0.1], [0.2, 0.8]],
 *   classes: ["glioma", "notumor"],
 * });
 * const s = scoreTargets({ report, focusClasses: ["glioma"] });
 * assert.deepEqual(s.results[0], {
 *   name: "accuracy ≥ 97%",
 *   value: 1,
 *   met: true,
 *   percent: true,
 * });
 * // No meningioma class: its recall is undefined, which is not met.
 * assert.deepEqual(s.results[3].value, null);
 * assert.equal(s.results[3].met, false);
 * assert.equal(s.weakestRecall, 1);
 * assert.equal(s.met, 4); // all but meningioma and the ECE (0.15)
 * ```
 */
export function scoreTargets(options: ScoreTargetsOptions): TargetScore {
  const targets = options.targets ?? CLINICAL_TARGETS;
  const results = targets.map((t): TargetResult => {
    const v = t.value(options.report);
    const value = v === null || Number.isNaN(v) ? null : v;
    const met = value !== null &&
      (t.min === undefined || value >= t.min) &&
      (t.max === undefined || value <= t.max);
    return { name: t.name, value, met, percent: t.percent ?? false };
  });
  const recalls = (options.focusClasses ?? ["glioma", "meningioma"])
    .map((c) => recallOf(options.report, c))
    .filter((r): r is number => r !== null);
  return {
    results,
    met: results.filter((r) => r.met).length,
    weakestRecall: recalls.length ? Math.min(...recalls) : null,
    loss: options.report.loss,
  };
}

/** A candidate for {@linkcode rankRuns}. */
export interface RunCandidate {
  /** What to call it, e.g. `"resnet-128-e9 (hflip)"`. */
  name: string;
  /** Its validation report. */
  report: EvaluationReport;
}

/** One row of {@linkcode rankRuns}' answer. */
export interface RankedRun extends TargetScore {
  /** 1 for the chosen run. */
  rank: number;
  /** The candidate's name. */
  name: string;
}

/** Options for {@linkcode rankRuns}. */
export interface RankRunsOptions {
  /** The candidates, each with its validation report. */
  candidates: readonly RunCandidate[];
  /** The targets (default {@linkcode CLINICAL_TARGETS}). */
  targets?: readonly Target[];
  /** Classes whose weakest recall breaks ties (default glioma, meningioma). */
  focusClasses?: readonly string[];
}

/**
 * Ranks candidates: most targets met, then the highest weakest focus-class
 * recall, then the lowest loss; equal on all three keeps the given order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { evaluationReport } from "./metrics.ts";
 * import { rankRuns } from "./targets.ts";
 * const classes = ["glioma", "notumor"];
 * const yTrue = [0, 1];
 * const sure = evaluationReport({ yTrue, probs: [[0.9, 0.1], [0.1, 0.9]], classes });
 * const wrong = evaluationReport({ yTrue, probs: [[0.4, 0.6], [0.1, 0.9]], classes });
 * const ranked = rankRuns({ candidates: [
 *   { name: "a", report: wrong }, { name: "b", report: sure },
 * ] });
 * assert.deepEqual(ranked.map((r) => [r.rank, r.name]), [[1, "b"], [2, "a"]]);
 * ```
 */
export function rankRuns(options: RankRunsOptions): RankedRun[] {
  const scored = options.candidates.map((c, i) => ({
    i,
    name: c.name,
    score: scoreTargets({
      report: c.report,
      ...(options.targets ? { targets: options.targets } : {}),
      ...(options.focusClasses ? { focusClasses: options.focusClasses } : {}),
    }),
  }));
  scored.sort((a, b) =>
    b.score.met - a.score.met ||
    (b.score.weakestRecall ?? -1) - (a.score.weakestRecall ?? -1) ||
    a.score.loss - b.score.loss ||
    a.i - b.i
  );
  return scored.map((s, k) => ({ rank: k + 1, name: s.name, ...s.score }));
}

/**
 * A plain-text table of a ranking: one line per run, the targets met, the
 * weakest focus recall, the loss and each target's value (`*` when met).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { evaluationReport } from "./metrics.ts";
 * import { formatRanking, rankRuns } from "./targets.ts";
 * const report = evaluationReport({
 *   yTrue: [0, 1],
 *   probs: [[0.9, 0.1], [0.2, 0.8]],
 *   classes: ["glioma", "notumor"],
 * });
 * const text = formatRanking(rankRuns({ candidates: [{ name: "a", report }] }));
 * assert.equal(
 *   text,
 *   "rank  run   met  weakest  loss\n" +
 *     "1     a     4/6   100.00  0.1643  accuracy 100.00*, macro-F1 1.000*, " +
 *     "glioma 100.00*, meningioma —, tumour 100.00*, ECE 0.150",
 * );
 * ```
 */
export function formatRanking(ranked: readonly RankedRun[]): string {
  const pct = (v: number | null) => v === null ? "—" : (100 * v).toFixed(2);
  const width = Math.max(4, ...ranked.map((r) => r.name.length));
  const lines = [
    `${"rank".padEnd(4)}  ${"run".padEnd(width)}  met  weakest  loss`,
  ];
  for (const r of ranked) {
    const targets = r.results.map((t) =>
      `${t.name.split(" ")[0]} ${valueText(t, false)}${t.met ? "*" : ""}`
    ).join(", ");
    lines.push(
      `${String(r.rank).padEnd(4)}  ${
        r.name.padEnd(width)
      }  ${r.met}/${r.results.length}  ${pct(r.weakestRecall).padStart(7)}  ${
        r.loss.toFixed(4)
      }  ${targets}`,
    );
  }
  return lines.join("\n");
}

/** Options for {@linkcode targetsTable}. */
export interface TargetsTableOptions {
  /** The scored report (from {@linkcode scoreTargets}). */
  score: TargetScore;
  /** A caption above the table (default: how many targets are met). */
  caption?: string;
}

/**
 * A notebook table of a report against its targets: one row per target with
 * the measured value and whether it is met.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { evaluationReport } from "./metrics.ts";
 * import { scoreTargets, targetsTable } from "./targets.ts";
 * const report = evaluationReport({
 *   yTrue: [0, 1],
 *   probs: [[0.9, 0.1], [0.2, 0.8]],
 *   classes: ["glioma", "notumor"],
 * });
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * const table = targetsTable({ score: scoreTargets({ report }) });
 * const text = table[JUPYTER_DISPLAY]()["text/plain"] as string;
 * assert.match(text, /^4 of 6 targets met\n/);
 * assert.match(text, /accuracy ≥ 97% +100\.00% +yes/);
 * ```
 */
export function targetsTable(options: TargetsTableOptions): Displayable {
  const { score } = options;
  return htmlTable({
    rows: score.results.map((t) => ({
      target: t.name,
      value: valueText(t, true),
      met: t.met ? "yes" : "no",
    })),
    caption: options.caption ??
      `${score.met} of ${score.results.length} targets met`,
  });
}
