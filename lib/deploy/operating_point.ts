/**
 * Choosing an operating point on a validation split: the operating-point
 * rule. Each candidate — argmax, then tumour thresholds τ
 * (lib/model/decision.ts) from 0.5 down — is scored on the same probabilities
 * against the clinical targets, and the rule picks:
 *
 * 1. only candidates that meet every target argmax meets (no target is
 *    given up for sensitivity);
 * 2. of those, the first whose tumour sensitivity has a 95% Wilson lower
 *    bound ≥ `minLowerBound` (0.99: the target shown with confidence);
 * 3. if none, the highest lower bound, the earlier candidate on a tie.
 *
 * Pure functions over probabilities (no TensorFlow): `select_threshold.ts`
 * runs them on a model's validation split, and notebook 04 shows the
 * trade-off with {@linkcode operatingPointTable}.
 *
 * @module
 */
import { describeDecision } from "../model/decision.ts";
import { type Displayable, htmlTable } from "../core/display.ts";
import {
  type EvaluationReport,
  evaluationReport,
} from "../evaluate/metrics.ts";
import type { Probabilities } from "../evaluate/roc.ts";
import {
  scoreTargets,
  type Target,
  type TargetScore,
} from "../evaluate/targets.ts";

/** The rule's candidates in order: argmax (`null`), then τ from 0.5 down. */
export const OPERATING_POINT_CANDIDATES: readonly (number | null)[] = [
  null,
  0.5,
  0.4,
  0.3,
  0.2,
  0.1,
  0.05,
];

/** The rule's bar for the sensitivity's 95% Wilson lower bound. */
export const MIN_SENSITIVITY_LOWER_BOUND = 0.99;

/** One candidate scored by {@linkcode operatingPoints}. */
export interface OperatingPoint {
  /** The tumour threshold; `null` for argmax. */
  tumourThreshold: number | null;
  /** The report at this operating point. */
  report: EvaluationReport;
  /** The report against the targets. */
  score: TargetScore;
  /** Tumour sensitivity; `null` (not defined) with no tumours. */
  sensitivity: number | null;
  /** Its 95% Wilson lower bound. */
  sensitivityLower: number;
  /** Tumours called notumor. */
  missed: number;
  /** Healthy scans called a tumour. */
  falseAlarms: number;
}

/** Options for {@linkcode operatingPoints}. */
export interface OperatingPointsOptions {
  /** True class index per scan. */
  yTrue: ArrayLike<number>;
  /** Class probabilities (rows, or flat in class order). */
  probs: Probabilities;
  /** Class names in index order; must include `notumor`. */
  classes: readonly string[];
  /** Candidates (default {@linkcode OPERATING_POINT_CANDIDATES}); the first must be argmax. */
  candidates?: readonly (number | null)[];
  /** Targets (default {@linkcode CLINICAL_TARGETS}). */
  targets?: readonly Target[];
}

/**
 * Scores every candidate operating point on one set of probabilities.
 *
 * @example Two gliomas and two healthy scans
 * ```ts
 * import assert from "node:assert/strict";
 * import { operatingPoints } from "./operating_point.ts";
 * const points = operatingPoints({
 *   yTrue: [0, 0, 1, 1],
 *   // the second glioma looks healthy to argmax: P(tumour) = 0.3
 *   probs: [[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.05, 0.95]],
 *   classes: ["glioma", "notumor"],
 *   candidates: [null, 0.25, 0.1],
 * });
 * assert.deepEqual(points.map((p) => p.missed), [1, 0, 0]);
 * assert.deepEqual(points.map((p) => p.falseAlarms), [0, 0, 1]);
 * assert.deepEqual(points.map((p) => p.sensitivity), [0.5, 1, 1]);
 * ```
 */
export function operatingPoints(
  options: OperatingPointsOptions,
): OperatingPoint[] {
  const candidates = options.candidates ?? OPERATING_POINT_CANDIDATES;
  if (candidates[0] !== null) {
    throw new Error(
      "operatingPoints: the first candidate must be argmax (null), the reference",
    );
  }
  return candidates.map((tau) => {
    const report = evaluationReport({
      yTrue: options.yTrue,
      probs: options.probs,
      classes: options.classes,
      bootstrap: false,
      ...(tau === null ? {} : { tumourThreshold: tau }),
    });
    const b = report.binary;
    if (!b) {
      throw new Error(
        `operatingPoints: no "notumor" class among ${
          options.classes.join(", ")
        }`,
      );
    }
    return {
      tumourThreshold: tau,
      report,
      score: scoreTargets({
        report,
        ...(options.targets ? { targets: options.targets } : {}),
      }),
      sensitivity: b.sensitivity,
      sensitivityLower: b.sensitivityCi.lower,
      missed: b.fn,
      falseAlarms: b.fp,
    };
  });
}

/** What {@linkcode chooseOperatingPoint} decided, and why. */
export interface OperatingPointChoice {
  /** The chosen candidate. */
  chosen: OperatingPoint;
  /** Candidates that keep every target argmax meets (step 1). */
  eligible: OperatingPoint[];
  /** Whether the chosen one reaches the lower-bound bar (step 2) or not (step 3). */
  reachedBar: boolean;
}

/**
 * The operating-point rule over scored candidates (see the module
 * documentation).
 *
 * @example Two gliomas and two healthy scans, one target: no false alarm
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Target } from "../evaluate/targets.ts";
 * import { chooseOperatingPoint, operatingPoints } from "./operating_point.ts";
 * const noFalseAlarm: Target = {
 *   name: "specificity = 100%",
 *   value: (report) => report.binary?.specificity ?? null,
 *   min: 1,
 * };
 * const points = operatingPoints({
 *   yTrue: [0, 0, 1, 1],
 *   probs: [[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.05, 0.95]],
 *   classes: ["glioma", "notumor"],
 *   candidates: [null, 0.25, 0.1],
 *   targets: [noFalseAlarm],
 * });
 * const choice = chooseOperatingPoint(points);
 * // τ = 0.1 finds every glioma but calls a healthy scan a tumour: argmax
 * // meets the target, so τ = 0.1 is never eligible (step 1)
 * assert.deepEqual(choice.eligible.map((p) => p.tumourThreshold), [null, 0.25]);
 * // two tumours cannot show 99% sensitivity at 95% confidence: the highest
 * // lower bound wins (step 3), τ = 0.25 with 2 of 2 found
 * assert.equal(choice.chosen.tumourThreshold, 0.25);
 * assert.equal(choice.reachedBar, false);
 * // with a bar 2 of 2 can reach (its lower bound is 0.34), the first
 * // eligible candidate that reaches it (step 2)
 * const lenient = chooseOperatingPoint(points, { minLowerBound: 0.3 });
 * assert.equal(lenient.chosen.tumourThreshold, 0.25);
 * assert.equal(lenient.reachedBar, true);
 * ```
 */
export function chooseOperatingPoint(
  points: readonly OperatingPoint[],
  options: { minLowerBound?: number } = {},
): OperatingPointChoice {
  const reference = points[0];
  if (!reference || reference.tumourThreshold !== null) {
    throw new Error(
      "chooseOperatingPoint: the first point must be argmax, the reference",
    );
  }
  const bar = options.minLowerBound ?? MIN_SENSITIVITY_LOWER_BOUND;
  const eligible = points.filter((p) =>
    reference.score.results.every((t, i) => !t.met || p.score.results[i].met)
  );
  const first = eligible.find((p) => p.sensitivityLower >= bar);
  if (first) return { chosen: first, eligible, reachedBar: true };
  let best = eligible[0];
  for (const p of eligible) {
    if (p.sensitivityLower > best.sensitivityLower) best = p;
  }
  return { chosen: best, eligible, reachedBar: false };
}

const pct = (v: number | null) => v === null ? "—" : `${(100 * v).toFixed(2)}%`;
const label = (tau: number | null) => tau === null ? "argmax" : `τ = ${tau}`;

/** The rows shared by the text and the notebook table. */
function rows(
  points: readonly OperatingPoint[],
  chosen?: OperatingPoint,
): Record<string, string>[] {
  return points.map((p) => ({
    "operating point": label(p.tumourThreshold) +
      (p === chosen ? " (chosen)" : ""),
    "targets met": `${p.score.met}/${p.score.results.length}`,
    accuracy: pct(p.report.accuracy),
    sensitivity: `${pct(p.sensitivity)} (≥ ${pct(p.sensitivityLower)})`,
    "missed tumours": String(p.missed),
    "false alarms": String(p.falseAlarms),
    specificity: pct(p.report.binary!.specificity),
  }));
}

/**
 * The candidates as plain text, one line each (the `select-threshold`
 * output); the sensitivity is followed by its 95% Wilson lower bound.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatOperatingPoints, operatingPoints } from "./operating_point.ts";
 * const points = operatingPoints({
 *   yTrue: [0, 0, 1, 1],
 *   probs: [[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.05, 0.95]],
 *   classes: ["glioma", "notumor"],
 *   candidates: [null, 0.25],
 * });
 * const lines = formatOperatingPoints(points, points[1]).split("\n");
 * assert.equal(lines.length, 3);
 * assert.match(lines[0], /^operating point +targets met +accuracy +sensitivity/);
 * assert.match(lines[1], /^argmax +\d\/6 +75\.00% +50\.00% \(≥ \d+\.\d\d%\) +1 +0 /);
 * assert.match(lines[2], /^τ = 0\.25 \(chosen\) +\d\/6 +100\.00% +100\.00% \(≥ 34\.24%\) +0 +0 /);
 * ```
 */
export function formatOperatingPoints(
  points: readonly OperatingPoint[],
  chosen?: OperatingPoint,
): string {
  const table = rows(points, chosen);
  const keys = Object.keys(table[0] ?? {});
  const widths = keys.map((k) =>
    Math.max(k.length, ...table.map((r) => r[k].length))
  );
  const line = (cells: string[]) =>
    cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(keys), ...table.map((r) => line(keys.map((k) => r[k])))]
    .join("\n");
}

/** Options for {@linkcode operatingPointTable}. */
export interface OperatingPointTableOptions {
  /** The scored candidates. */
  points: readonly OperatingPoint[];
  /** The one to mark as chosen. */
  chosen?: OperatingPoint;
  /** A caption (default: what the columns mean). */
  caption?: string;
}

/**
 * A notebook table of the trade-off: per operating point, the targets met,
 * accuracy, sensitivity (with its 95% lower bound), missed tumours, false
 * alarms and specificity.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { operatingPoints, operatingPointTable } from "./operating_point.ts";
 * const points = operatingPoints({
 *   yTrue: [0, 0, 1, 1],
 *   probs: [[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.05, 0.95]],
 *   classes: ["glioma", "notumor"],
 *   candidates: [null, 0.25],
 * });
 * const table = operatingPointTable({ points, chosen: points[1] });
 * const html = String(table[JUPYTER_DISPLAY]()["text/html"]);
 * assert.match(html, /τ = 0\.25 \(chosen\)/);
 * assert.match(html, /Sensitivity with its 95% Wilson lower bound/);
 * ```
 */
export function operatingPointTable(
  options: OperatingPointTableOptions,
): Displayable {
  return htmlTable({
    rows: rows(options.points, options.chosen),
    caption: options.caption ??
      "Operating points: argmax, or " +
        describeDecision({ tumourThreshold: 0.5 }).replace("0.5", "τ") +
        ". Sensitivity with its 95% Wilson lower bound.",
  });
}
