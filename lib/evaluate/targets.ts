/**
 * The clinical targets as data, and the run-ranking rule built on them:
 * candidates are compared on their validation reports by
 *
 * 1. whether the targets are assessable at all: a degenerate model (one that
 *    never predicts a class, or is within a few points of chance: see
 *    `./degenerate.ts`) ranks after every model that is not;
 * 2. then the most targets met;
 * 3. then the higher of the weakest recalls among `focusClasses` (by default
 *    glioma and meningioma, the two classes with a recall target);
 * 4. then the lower loss.
 *
 * On a degenerate model every target reads "not assessable" rather than met
 * or not met: a model that never calls "notumor" finds every tumour, but its
 * 100% sensitivity says nothing about it.
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
import { type DegenerateOptions, degenerateReasons } from "./degenerate.ts";

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

/**
 * A target's state: its bound holds, or does not, or the model is degenerate
 * and the target cannot be assessed.
 */
export type TargetStatus = "met" | "not met" | "not assessable";

/** One target's outcome in {@linkcode TargetScore}. */
export interface TargetResult {
  /** The target's name. */
  name: string;
  /** The measured value (`null`: undefined, which counts as not met). */
  value: number | null;
  /** Whether the bound holds on an assessable model (`status === "met"`). */
  met: boolean;
  /** Met, not met, or not assessable (the model is degenerate). */
  status: TargetStatus;
  /** Whether the value reads as a percentage (the target's `percent`). */
  percent: boolean;
}

/** What {@linkcode scoreTargets} returns. */
export interface TargetScore {
  /** One result per target, in the targets' order. */
  results: TargetResult[];
  /** How many targets are met (0 when they are not assessable). */
  met: number;
  /** Whether the targets can be assessed: the model is not degenerate. */
  assessable: boolean;
  /** Why the model is degenerate (empty when it is not). */
  degenerate: string[];
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
export interface ScoreTargetsOptions extends DegenerateOptions {
  /** A validation report (`evaluateModel(...).full`). */
  report: EvaluationReport;
  /** The targets (default {@linkcode CLINICAL_TARGETS}). */
  targets?: readonly Target[];
  /** Classes whose weakest recall breaks ties (default glioma, meningioma). */
  focusClasses?: readonly string[];
}

/**
 * Checks each target against a report. On a degenerate model (see
 * `./degenerate.ts`) the values are still measured but every target is "not
 * assessable", none is met, and `degenerate` says why.
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
 *   status: "met",
 *   percent: true,
 * });
 * // No meningioma class: its recall is undefined, which is not met.
 * assert.deepEqual(s.results[3].value, null);
 * assert.equal(s.results[3].status, "not met");
 * assert.equal(s.weakestRecall, 1);
 * assert.equal(s.met, 4); // all but meningioma and the ECE (0.15)
 * assert.equal(s.assessable, true);
 * ```
 *
 * @example A model that calls every scan a glioma
 * ```ts
 * import assert from "node:assert/strict";
 * import { evaluationReport } from "./metrics.ts";
 * import { scoreTargets } from "./targets.ts";
 * const report = evaluationReport({
 *   yTrue: [0, 1],
 *   probs: [[0.9, 0.1], [0.8, 0.2]],
 *   classes: ["glioma", "notumor"],
 * });
 * const s = scoreTargets({ report });
 * // Its tumour sensitivity is 100%, but that is not a target met.
 * assert.equal(s.results[4].value, 1);
 * assert.equal(s.results[4].status, "not assessable");
 * assert.equal(s.met, 0);
 * assert.equal(s.assessable, false);
 * assert.deepEqual(s.degenerate, [
 *   "never predicts notumor, though 1 of the 2 scans are notumor",
 *   "accuracy 50.0% is within 5 points of chance (50.0% with 2 classes)",
 * ]);
 * ```
 */
export function scoreTargets(options: ScoreTargetsOptions): TargetScore {
  const targets = options.targets ?? CLINICAL_TARGETS;
  const degenerate = degenerateReasons(
    options.report,
    options.chanceMargin === undefined
      ? {}
      : { chanceMargin: options.chanceMargin },
  );
  const assessable = degenerate.length === 0;
  const results = targets.map((t): TargetResult => {
    const v = t.value(options.report);
    const value = v === null || Number.isNaN(v) ? null : v;
    const holds = value !== null &&
      (t.min === undefined || value >= t.min) &&
      (t.max === undefined || value <= t.max);
    const status = !assessable ? "not assessable" : holds ? "met" : "not met";
    return {
      name: t.name,
      value,
      met: status === "met",
      status,
      percent: t.percent ?? false,
    };
  });
  const recalls = (options.focusClasses ?? ["glioma", "meningioma"])
    .map((c) => recallOf(options.report, c))
    .filter((r): r is number => r !== null);
  return {
    results,
    met: results.filter((r) => r.met).length,
    assessable,
    degenerate,
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
  /** Points above chance a model must reach not to be degenerate (default 5). */
  chanceMargin?: number;
}

/**
 * Ranks candidates: assessable (not degenerate) models first, then most
 * targets met, then the highest weakest focus-class recall, then the lowest
 * loss; equal on all four keeps the given order.
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
      ...(options.chanceMargin === undefined
        ? {}
        : { chanceMargin: options.chanceMargin }),
    }),
  }));
  scored.sort((a, b) =>
    Number(b.score.assessable) - Number(a.score.assessable) ||
    b.score.met - a.score.met ||
    (b.score.weakestRecall ?? -1) - (a.score.weakestRecall ?? -1) ||
    a.score.loss - b.score.loss ||
    a.i - b.i
  );
  return scored.map((s, k) => ({ rank: k + 1, name: s.name, ...s.score }));
}

/**
 * A plain-text table of a ranking: one line per run, the targets met, the
 * weakest focus recall, the loss and each target's value (`*` when met). A
 * degenerate run shows `n/a` targets met and why its targets are not
 * assessable.
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
 * const always = evaluationReport({
 *   yTrue: [0, 1],
 *   probs: [[0.9, 0.1], [0.8, 0.2]],
 *   classes: ["glioma", "notumor"],
 * });
 * const ranked = rankRuns({
 *   candidates: [{ name: "b", report: always }, { name: "a", report }],
 * });
 * const last = formatRanking(ranked).split("\n")[2];
 * assert.match(last, /^2 +b +n\/a /);
 * assert.match(last, /not assessable: never predicts notumor/);
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
    const met = r.assessable ? `${r.met}/${r.results.length}` : "n/a";
    const why = r.assessable
      ? ""
      : `  (not assessable: ${r.degenerate.join("; ")})`;
    lines.push(
      `${String(r.rank).padEnd(4)}  ${r.name.padEnd(width)}  ${
        met.padEnd(3)
      }  ${pct(r.weakestRecall).padStart(7)}  ${
        r.loss.toFixed(4)
      }  ${targets}${why}`,
    );
  }
  return lines.join("\n");
}

/** The "met" column of {@linkcode targetsTable}. */
const MET_TEXT: Record<TargetStatus, string> = {
  met: "yes",
  "not met": "no",
  "not assessable": "not assessable",
};

/** Options for {@linkcode targetsTable}. */
export interface TargetsTableOptions {
  /** The scored report (from {@linkcode scoreTargets}). */
  score: TargetScore;
  /** A caption above the table (default: how many targets are met). */
  caption?: string;
}

/**
 * A notebook table of a report against its targets: one row per target with
 * the measured value and whether it is met ("yes", "no", or "not assessable"
 * on a degenerate model, whose caption then says why).
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
 * // A model that calls every scan a glioma: nothing can be assessed.
 * const always = evaluationReport({
 *   yTrue: [0, 1],
 *   probs: [[0.9, 0.1], [0.8, 0.2]],
 *   classes: ["glioma", "notumor"],
 * });
 * const none = targetsTable({ score: scoreTargets({ report: always }) });
 * const noneText = none[JUPYTER_DISPLAY]()["text/plain"] as string;
 * assert.match(noneText, /^targets not assessable, the model is degenerate: never predicts notumor/);
 * assert.match(noneText, /tumour sensitivity ≥ 99% +100\.00% +not assessable/);
 * ```
 */
export function targetsTable(options: TargetsTableOptions): Displayable {
  const { score } = options;
  return htmlTable({
    rows: score.results.map((t) => ({
      target: t.name,
      value: valueText(t, true),
      met: MET_TEXT[t.status],
    })),
    caption: options.caption ??
      (score.assessable
        ? `${score.met} of ${score.results.length} targets met`
        : `targets not assessable, the model is degenerate: ${
          score.degenerate.join("; ")
        }`),
  });
}
