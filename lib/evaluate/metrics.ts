/**
 * Classification metrics on plain arrays (no TensorFlow): accuracy,
 * cross-entropy, the confusion matrix, per-class precision / recall / F1,
 * Cohen's kappa, the clinician's tumour-vs-no-tumour view, confidence
 * intervals, and {@linkcode evaluationReport}, which gathers them all (with
 * the ROC AUCs of `./roc.ts` and the calibration of `./calibration.ts`) into
 * one JSON-serialisable object — the `--json` output of `deno task evaluate`.
 *
 * Inputs: `yTrue` holds class indices; predictions are either class
 * probabilities (`probs`: one row per sample, or a flat `Float32Array` with
 * `numClasses`, see {@linkcode Probabilities}) or predicted class indices
 * (`yPred`). The predicted class is the most probable one (the first on a
 * tie).
 *
 * Conventions:
 * - **a ratio with a zero denominator is not defined**: it is `NaN` in the
 *   functions here and `null` in {@linkcode evaluationReport}'s JSON, never a
 *   made-up 0 or 100% (as scikit-learn's `zero_division=np.nan`). That is the
 *   precision of a class that is never predicted, the recall of a class with
 *   no examples, and sensitivity, specificity, PPV and NPV with an empty
 *   denominator. F1 is `2·TP / (2·TP + FP + FN)`: 0 for a class that has
 *   examples but is never predicted (it is missed), undefined only for a
 *   class absent from both the truth and the predictions. Whatever shows
 *   these values prints an undefined one as "—".
 * - **macro** averages weigh equally every class of `numClasses` where the
 *   value is defined (a class whose precision is undefined drops out of the
 *   macro precision, as scikit-learn with `zero_division=np.nan`);
 *   **weighted** averages weigh each such class by its support. An average
 *   over no defined value is undefined.
 * - Other genuinely undefined values are `NaN` too (`null` in the JSON):
 *   Cohen's kappa when chance agreement is total (a single class
 *   everywhere), the AUC of a class with no positive or no negative
 *   examples, the ECE of nothing.
 * - Intervals are 95% by default: Wilson score intervals for proportions
 *   (accuracy, sensitivity, specificity) and a seeded percentile bootstrap
 *   for macro-F1.
 *
 * @module
 */
import { rng } from "../core/random.ts";
import {
  binaryTumourRoc,
  checkLabels,
  negativeIndex,
  oneVsRestRoc,
  type Probabilities,
  probabilityRows,
} from "./roc.ts";
import { calibration, DEFAULT_CALIBRATION_BINS } from "./calibration.ts";
import { argmax, decider, DEFAULT_NEGATIVE_CLASS } from "../model/decision.ts";

export type { Probabilities } from "./roc.ts";

// The default negative (no tumour) class of the binary view: the decision
// module's, re-exported for the metrics' callers.
export { DEFAULT_NEGATIVE_CLASS };

/** The default confidence level of intervals. */
export const DEFAULT_CONFIDENCE = 0.95;

/** The default number of bootstrap resamples. */
export const DEFAULT_BOOTSTRAP_SAMPLES = 1000;

/** The default bootstrap seed. */
export const DEFAULT_BOOTSTRAP_SEED = 42;

/** The clip applied to probabilities before taking logarithms. */
export const LOSS_EPSILON = 1e-7;

/**
 * True labels with predictions, given as probabilities (`probs`) or as
 * predicted class indices (`yPred`); exactly one of the two.
 */
export interface ClassificationInput {
  /** True class index of each sample. */
  yTrue: ArrayLike<number>;
  /** Class probabilities; the predicted class is the most probable. */
  probs?: Probabilities;
  /** Predicted class indices. */
  yPred?: ArrayLike<number>;
  /**
   * Number of classes. Required for a flat `probs`; otherwise taken from the
   * probability rows, or (with `yPred`) from the largest label + 1.
   */
  numClasses?: number;
}

interface Resolved {
  yTrue: Int32Array;
  yPred: Int32Array;
  numClasses: number;
  rows?: number[][];
}

function resolve(input: ClassificationInput, what: string): Resolved {
  const hasProbs = input.probs !== undefined;
  const hasPred = input.yPred !== undefined;
  if (hasProbs === hasPred) {
    throw new Error(`${what}: give exactly one of probs and yPred`);
  }
  if (hasProbs) {
    const rows = probabilityRows(input.probs!, input.numClasses);
    const numClasses = input.numClasses ?? rows[0]?.length;
    if (numClasses === undefined) {
      throw new Error(`${what}: no predictions and no numClasses`);
    }
    checkLabels(input.yTrue, rows.length, numClasses);
    return {
      yTrue: Int32Array.from(input.yTrue),
      yPred: Int32Array.from(rows, (row) => argmax(row)),
      numClasses,
      rows,
    };
  }
  const yPred = input.yPred!;
  let numClasses = input.numClasses;
  if (numClasses === undefined) {
    numClasses = 1;
    for (let i = 0; i < yPred.length; i++) {
      numClasses = Math.max(numClasses, yPred[i] + 1);
    }
    for (let i = 0; i < input.yTrue.length; i++) {
      numClasses = Math.max(numClasses, input.yTrue[i] + 1);
    }
  }
  checkLabels(input.yTrue, yPred.length, numClasses);
  for (let i = 0; i < yPred.length; i++) {
    const p = yPred[i];
    if (!Number.isInteger(p) || p < 0 || p >= numClasses) {
      throw new Error(
        `${what}: prediction ${i} is ${p}, not a class index in [0, ${numClasses})`,
      );
    }
  }
  return {
    yTrue: Int32Array.from(input.yTrue),
    yPred: Int32Array.from(yPred),
    numClasses,
  };
}

/**
 * The fraction of samples whose predicted class is the true one; `NaN` with
 * no samples.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { accuracy } from "./metrics.ts";
 * const probs = [[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]];
 * assert.equal(accuracy({ yTrue: [0, 1, 1], probs }), 2 / 3);
 * assert.equal(accuracy({ yTrue: [0, 1], yPred: [0, 1] }), 1);
 * assert.ok(Number.isNaN(accuracy({ yTrue: [], yPred: [] })));
 * ```
 */
export function accuracy(input: ClassificationInput): number {
  const { yTrue, yPred } = resolve(input, "accuracy");
  let correct = 0;
  for (let i = 0; i < yTrue.length; i++) if (yTrue[i] === yPred[i]) correct++;
  return yTrue.length ? correct / yTrue.length : NaN;
}

/** Input of {@linkcode crossEntropy}. */
export interface CrossEntropyInput {
  /** True class index of each sample. */
  yTrue: ArrayLike<number>;
  /** Class probabilities. */
  probs: Probabilities;
  /** Number of classes; required for a flat `probs`. */
  numClasses?: number;
  /** Probabilities are clipped to `[epsilon, 1 − epsilon]`; default 1e-7. */
  epsilon?: number;
}

/**
 * Mean categorical cross-entropy, `−mean(log p[true class])`, with the
 * probabilities clipped to `[1e-7, 1 − 1e-7]` (as Keras does) so that a
 * confident mistake costs about 16.1 rather than infinity. Rows are not
 * renormalised. `NaN` with no samples.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crossEntropy } from "./metrics.ts";
 * const halves = [[0.5, 0.5], [0.5, 0.5]];
 * assert.equal(crossEntropy({ yTrue: [0, 1], probs: halves }), Math.LN2);
 * // A confident mistake costs −ln(1e-7), not infinity.
 * const wrong = crossEntropy({ yTrue: [0], probs: [[0, 1]] });
 * assert.ok(Math.abs(wrong - 16.118) < 1e-3);
 * ```
 */
export function crossEntropy(input: CrossEntropyInput): number {
  const rows = probabilityRows(input.probs, input.numClasses);
  const k = input.numClasses ?? rows[0]?.length ?? 2;
  checkLabels(input.yTrue, rows.length, k);
  const eps = input.epsilon ?? LOSS_EPSILON;
  let sum = 0;
  rows.forEach((row, i) => {
    const p = Math.min(1 - eps, Math.max(eps, row[input.yTrue[i]]));
    sum -= Math.log(p);
  });
  return rows.length ? sum / rows.length : NaN;
}

/**
 * The confusion matrix: `matrix[t][p]` counts the samples of true class `t`
 * predicted as `p` (rows are true classes, columns predictions).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { confusionMatrix } from "./metrics.ts";
 * assert.deepEqual(
 *   confusionMatrix({ yTrue: [0, 0, 1, 2], yPred: [0, 1, 1, 1], numClasses: 3 }),
 *   [[1, 1, 0], [0, 1, 0], [0, 1, 0]],
 * );
 * ```
 */
export function confusionMatrix(input: ClassificationInput): number[][] {
  const { yTrue, yPred, numClasses } = resolve(input, "confusionMatrix");
  return countMatrix(yTrue, yPred, numClasses);
}

function countMatrix(
  yTrue: ArrayLike<number>,
  yPred: ArrayLike<number>,
  k: number,
): number[][] {
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < yTrue.length; i++) m[yTrue[i]][yPred[i]]++;
  return m;
}

function checkSquare(matrix: readonly (readonly number[])[], what: string) {
  matrix.forEach((row, i) => {
    if (row.length !== matrix.length) {
      throw new Error(
        `${what}: the confusion matrix is not square (row ${i} has ` +
          `${row.length} entries, there are ${matrix.length} rows)`,
      );
    }
  });
}

/**
 * Divides each row of a confusion matrix by its sum, giving per true class
 * the fraction predicted as each class (the diagonal is the recall). A row
 * with no samples becomes zeros, not `NaN`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeRows } from "./metrics.ts";
 * assert.deepEqual(normalizeRows([[3, 1], [0, 0]]), [[0.75, 0.25], [0, 0]]);
 * ```
 */
export function normalizeRows(
  matrix: readonly (readonly number[])[],
): number[][] {
  return matrix.map((row) => {
    const total = row.reduce((s, v) => s + v, 0);
    return row.map((v) => (total ? v / total : 0));
  });
}

/** Precision, recall, F1 and support of one class. */
export interface ClassMetrics {
  /** Class name. */
  class: string;
  /** TP / (TP + FP); `NaN` (not defined) when the class is never predicted. */
  precision: number;
  /** TP / (TP + FN); `NaN` (not defined) when the class has no samples. */
  recall: number;
  /**
   * 2·TP / (2·TP + FP + FN), the harmonic mean of precision and recall; 0
   * when the class has samples but is never predicted, `NaN` when it is in
   * neither the truth nor the predictions.
   */
  f1: number;
  /** Number of samples of the class. */
  support: number;
}

/**
 * Averages of precision, recall and F1 over the classes where each is
 * defined; `NaN` when it is defined for none.
 */
export interface AveragedMetrics {
  /** Averaged precision. */
  precision: number;
  /** Averaged recall. */
  recall: number;
  /** Averaged F1 (the average of the per-class F1s, as scikit-learn). */
  f1: number;
}

/** Per-class metrics with their macro and weighted averages. */
export interface PerClassReport {
  /** One entry per class, in index order. */
  perClass: ClassMetrics[];
  /** Unweighted mean over the classes where each value is defined. */
  macro: AveragedMetrics;
  /** Mean weighted by support (`NaN` when there are no samples). */
  weighted: AveragedMetrics;
}

/** Input of {@linkcode perClassMetrics}. */
export interface PerClassInput {
  /** A confusion matrix (rows true, columns predicted). */
  confusion: readonly (readonly number[])[];
  /** Class names (default `class 0`, `class 1`, ...). */
  classes?: readonly string[];
}

/**
 * Per-class precision, recall, F1 and support from a confusion matrix, and
 * their macro and weighted averages (a zero denominator gives `NaN`, not
 * defined: see the module documentation). Matches scikit-learn's
 * `precision_recall_fscore_support` with `zero_division=np.nan` and
 * `labels=range(numClasses)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { perClassMetrics } from "./metrics.ts";
 * const r = perClassMetrics({ confusion: [[2, 0], [1, 1]], classes: ["a", "b"] });
 * assert.deepEqual(r.perClass[0], {
 *   class: "a",
 *   precision: 2 / 3,
 *   recall: 1,
 *   f1: 0.8,
 *   support: 2,
 * });
 * assert.equal(r.perClass[1].precision, 1);
 * assert.equal(r.perClass[1].recall, 0.5);
 * assert.ok(Math.abs(r.macro.f1 - (0.8 + 2 / 3) / 2) < 1e-12);
 * // "b" is never predicted: its precision is not defined, its F1 is 0.
 * const never = perClassMetrics({ confusion: [[2, 0], [2, 0]] });
 * assert.ok(Number.isNaN(never.perClass[1].precision));
 * assert.equal(never.perClass[1].f1, 0);
 * assert.equal(never.macro.precision, 0.5); // over the defined one only
 * ```
 */
export function perClassMetrics(input: PerClassInput): PerClassReport {
  const m = input.confusion;
  checkSquare(m, "perClassMetrics");
  const k = m.length;
  if (input.classes && input.classes.length !== k) {
    throw new Error(
      `perClassMetrics: ${input.classes.length} class names for a ${k}×${k} ` +
        "confusion matrix",
    );
  }
  const perClass = m.map((row, c): ClassMetrics => {
    const tp = row[c];
    const support = row.reduce((s, v) => s + v, 0);
    let predicted = 0;
    for (let t = 0; t < k; t++) predicted += m[t][c];
    return {
      class: input.classes?.[c] ?? `class ${c}`,
      precision: ratio(tp, predicted),
      recall: ratio(tp, support),
      f1: ratio(2 * tp, support + predicted),
      support,
    };
  });
  return {
    perClass,
    macro: averageMetrics(perClass, () => 1),
    weighted: averageMetrics(perClass, (c) => c.support),
  };
}

/** `a / b`, or `NaN` (not defined) when `b` is 0. */
function ratio(a: number, b: number): number {
  return b ? a / b : NaN;
}

/**
 * Weighted means of precision, recall and F1 over the classes where each is
 * defined; `NaN` when no such class has weight.
 */
function averageMetrics(
  perClass: readonly ClassMetrics[],
  weight: (c: ClassMetrics) => number,
): AveragedMetrics {
  const mean = (key: keyof AveragedMetrics) => {
    let sum = 0;
    let norm = 0;
    for (const c of perClass) {
      if (Number.isNaN(c[key])) continue;
      sum += weight(c) * c[key];
      norm += weight(c);
    }
    return norm ? sum / norm : NaN;
  };
  return {
    precision: mean("precision"),
    recall: mean("recall"),
    f1: mean("f1"),
  };
}

/**
 * Cohen's kappa from a confusion matrix: `(p_o − p_e) / (1 − p_e)`, the
 * agreement between truth and prediction beyond what the class frequencies
 * give by chance. 1 is perfect, 0 chance level, negative worse than chance.
 * `NaN` when chance agreement is total (`p_e = 1`: one class everywhere) or
 * there are no samples; scikit-learn's `cohen_kappa_score` gives `nan` too.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cohenKappa } from "./metrics.ts";
 * assert.equal(cohenKappa([[2, 0], [1, 1]]), 0.5);
 * assert.equal(cohenKappa([[3, 0], [0, 3]]), 1);
 * assert.ok(Number.isNaN(cohenKappa([[4, 0], [0, 0]]))); // one class everywhere
 * ```
 */
export function cohenKappa(confusion: readonly (readonly number[])[]): number {
  checkSquare(confusion, "cohenKappa");
  const k = confusion.length;
  let n = 0;
  let agree = 0;
  const rowSum = new Array<number>(k).fill(0);
  const colSum = new Array<number>(k).fill(0);
  for (let t = 0; t < k; t++) {
    for (let p = 0; p < k; p++) {
      const v = confusion[t][p];
      n += v;
      rowSum[t] += v;
      colSum[p] += v;
      if (t === p) agree += v;
    }
  }
  if (!n) return NaN;
  const po = agree / n;
  let pe = 0;
  for (let c = 0; c < k; c++) pe += rowSum[c] * colSum[c];
  pe /= n * n;
  return pe === 1 ? NaN : (po - pe) / (1 - pe);
}

/**
 * The standard normal quantile (inverse CDF), by Acklam's rational
 * approximation (relative error below 1.2e-9).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalQuantile } from "./metrics.ts";
 * assert.ok(Math.abs(normalQuantile(0.975) - 1.959964) < 1e-6);
 * assert.equal(normalQuantile(0.5), 0);
 * assert.equal(normalQuantile(1), Infinity);
 * ```
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) {
    if (p === 0) return -Infinity;
    if (p === 1) return Infinity;
    throw new Error(`normalQuantile: p must be in [0, 1] (got ${p})`);
  }
  const a = [
    -3.969683028665376e1,
    2.209460984245205e2,
    -2.759285104469687e2,
    1.38357751867269e2,
    -3.066479806614716e1,
    2.506628277459239,
  ];
  const b = [
    -5.447609879822406e1,
    1.615858368580409e2,
    -1.556989798598866e2,
    6.680131188771972e1,
    -1.328068155288572e1,
  ];
  const c = [
    -7.784894002430293e-3,
    -3.223964580411365e-1,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
  ];
  const d = [
    7.784695709041462e-3,
    3.224671290700398e-1,
    2.445134137142996,
    3.754408661907416,
  ];
  const low = 0.02425;
  if (p < low || p > 1 - low) {
    const q = Math.sqrt(-2 * Math.log(p < low ? p : 1 - p));
    const x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q +
      c[5]) /
      ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    return p < low ? x : -x;
  }
  const q = p - 0.5;
  const r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) *
    q /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/** A confidence interval. */
export interface Interval {
  /** Lower bound. */
  lower: number;
  /** Upper bound. */
  upper: number;
}

/** Input of {@linkcode wilsonInterval}. */
export interface WilsonInput {
  /** Number of successes. */
  successes: number;
  /** Number of trials. */
  total: number;
  /** Confidence level; default 0.95. */
  confidence?: number;
}

/**
 * The Wilson score interval for a proportion `successes / total`: unlike the
 * normal ("Wald") interval it stays inside [0, 1] and is sensible at 0 or
 * `total` successes and for small samples. With no trials it is [0, 1].
 * Matches statsmodels' `proportion_confint(..., method="wilson")`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wilsonInterval } from "./metrics.ts";
 * const { lower, upper } = wilsonInterval({ successes: 8, total: 10 });
 * assert.equal(lower.toFixed(4), "0.4902");
 * assert.equal(upper.toFixed(4), "0.9433");
 * assert.deepEqual(wilsonInterval({ successes: 0, total: 0 }), {
 *   lower: 0,
 *   upper: 1,
 * });
 * ```
 */
export function wilsonInterval(input: WilsonInput): Interval {
  const { successes: s, total: n } = input;
  const confidence = input.confidence ?? DEFAULT_CONFIDENCE;
  if (!(confidence > 0 && confidence < 1)) {
    throw new Error(
      `wilsonInterval: confidence must be in (0, 1) (got ${confidence})`,
    );
  }
  if (!(Number.isInteger(n) && n >= 0 && s >= 0 && s <= n)) {
    throw new Error(
      `wilsonInterval: need 0 <= successes <= total (got ${s} of ${n})`,
    );
  }
  if (n === 0) return { lower: 0, upper: 1 };
  const z = normalQuantile(1 - (1 - confidence) / 2);
  const p = s / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z / denom) * Math.sqrt(p * (1 - p) / n + z2 / (4 * n * n));
  return {
    lower: Math.max(0, centre - half),
    upper: Math.min(1, centre + half),
  };
}

/** The tumour-vs-no-tumour view of a multi-class prediction. */
export interface BinaryMetrics {
  /** The class that means "no tumour". */
  negativeClass: string;
  /** The classes that mean "tumour". */
  positiveClasses: string[];
  /** How a prediction is called positive (see {@linkcode BinaryInput}). */
  decision: "argmax" | { threshold: number };
  /** Samples with a tumour. */
  positives: number;
  /** Samples without. */
  negatives: number;
  /** Tumours called tumour (of any tumour class, right type or not). */
  tp: number;
  /** No-tumour scans called tumour. */
  fp: number;
  /** No-tumour scans called no tumour. */
  tn: number;
  /** Tumours called no tumour (missed). */
  fn: number;
  /** TP / (TP + FN), the tumours found; `NaN` (not defined) with no tumours. */
  sensitivity: number;
  /** Wilson interval of the sensitivity. */
  sensitivityCi: Interval;
  /** TN / (TN + FP), the healthy scans cleared; `NaN` with no healthy scans. */
  specificity: number;
  /** Wilson interval of the specificity. */
  specificityCi: Interval;
  /** Positive predictive value TP / (TP + FP); `NaN` if nothing is called positive. */
  ppv: number;
  /** Negative predictive value TN / (TN + FN); `NaN` if nothing is called negative. */
  npv: number;
  /** ROC AUC of P(tumour) = 1 − P(negative class); `NaN` if one side is empty. */
  auc: number;
}

/** Input of {@linkcode binaryMetrics}. */
export interface BinaryInput {
  /** True class index of each sample. */
  yTrue: ArrayLike<number>;
  /** Class probabilities. */
  probs: Probabilities;
  /** Class names, in index order. */
  classes: readonly string[];
  /** Number of classes; required for a flat `probs` (default `classes.length`). */
  numClasses?: number;
  /** The "no tumour" class; default `"notumor"`. Every other class is a tumour. */
  negativeClass?: string;
  /**
   * When set, a scan is called tumour when P(tumour) >= `threshold`. By
   * default it is called tumour when its most probable class is a tumour
   * class (the decision the confusion matrix shows).
   */
  threshold?: number;
  /** Confidence level of the intervals; default 0.95. */
  confidence?: number;
}

/**
 * The clinician's binary view: tumour (any class but `negativeClass`) vs no
 * tumour. Sensitivity, specificity, PPV and NPV with the counts behind them,
 * Wilson intervals for sensitivity and specificity, and the AUC of
 * P(tumour) = 1 − P(negative class). A glioma called a meningioma is a true
 * positive here: the tumour was found.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { binaryMetrics } from "./metrics.ts";
 * const input = {
 *   yTrue: [0, 1, 2, 1],
 *   probs: [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1]],
 *   classes: ["glioma", "notumor", "pituitary"],
 * };
 * const b = binaryMetrics(input);
 * // The pituitary scan called glioma still counts as a tumour found.
 * assert.deepEqual([b.tp, b.fn, b.tn, b.fp], [2, 0, 1, 1]);
 * assert.equal(b.sensitivity, 1);
 * assert.equal(b.specificity, 0.5);
 * // A threshold of 0.65 on P(tumour) = 1 − P(notumor) clears the last scan
 * // (its P(tumour) is 0.6) and still finds both tumours.
 * const strict = binaryMetrics({ ...input, threshold: 0.65 });
 * assert.equal(strict.specificity, 1);
 * assert.equal(strict.sensitivity, 1);
 * assert.deepEqual(strict.decision, { threshold: 0.65 });
 * // A model that never says "no tumour": nothing is called negative, so the
 * // NPV is not defined (0/0), and no healthy scan is cleared.
 * const never = binaryMetrics({ ...input, threshold: 0.01 });
 * assert.ok(Number.isNaN(never.npv));
 * assert.equal(never.specificity, 0);
 * ```
 */
export function binaryMetrics(input: BinaryInput): BinaryMetrics {
  const negativeClass = input.negativeClass ?? DEFAULT_NEGATIVE_CLASS;
  const k = input.numClasses ?? input.classes.length;
  const rows = probabilityRows(input.probs, k);
  if (input.classes.length !== k) {
    throw new Error(
      `binaryMetrics: ${input.classes.length} class names for ${k} classes`,
    );
  }
  const neg = negativeIndex(input.classes, negativeClass);
  checkLabels(input.yTrue, rows.length, k);
  const threshold = input.threshold;
  if (threshold !== undefined && !Number.isFinite(threshold)) {
    throw new Error(`binaryMetrics: threshold must be a number`);
  }
  let tp = 0, fp = 0, tn = 0, fn = 0;
  rows.forEach((row, i) => {
    const actual = input.yTrue[i] !== neg;
    const called = threshold === undefined
      ? argmax(row) !== neg
      : 1 - row[neg] >= threshold;
    if (actual && called) tp++;
    else if (actual) fn++;
    else if (called) fp++;
    else tn++;
  });
  const confidence = input.confidence;
  const roc = binaryTumourRoc({
    yTrue: input.yTrue,
    probs: rows,
    classes: input.classes,
    negativeClass,
  });
  return {
    negativeClass,
    positiveClasses: roc.positiveClasses,
    decision: threshold === undefined ? "argmax" : { threshold },
    positives: tp + fn,
    negatives: tn + fp,
    tp,
    fp,
    tn,
    fn,
    sensitivity: ratio(tp, tp + fn),
    sensitivityCi: wilsonInterval({
      successes: tp,
      total: tp + fn,
      confidence,
    }),
    specificity: ratio(tn, tn + fp),
    specificityCi: wilsonInterval({
      successes: tn,
      total: tn + fp,
      confidence,
    }),
    ppv: ratio(tp, tp + fp),
    npv: ratio(tn, tn + fn),
    auc: roc.auc,
  };
}

/**
 * The macro-averaged F1 of a confusion matrix (see
 * {@linkcode perClassMetrics}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { macroF1 } from "./metrics.ts";
 * assert.ok(Math.abs(macroF1([[2, 0], [1, 1]]) - (0.8 + 2 / 3) / 2) < 1e-12);
 * ```
 */
export function macroF1(confusion: readonly (readonly number[])[]): number {
  return perClassMetrics({ confusion }).macro.f1;
}

/** Input of {@linkcode bootstrapInterval}. */
export interface BootstrapInput extends ClassificationInput {
  /** The statistic of a confusion matrix; default {@linkcode macroF1}. */
  statistic?: (confusion: number[][]) => number;
  /** Number of resamples; default 1000. */
  samples?: number;
  /** Seed of the resampling; default 42. */
  seed?: number;
  /** Confidence level; default 0.95. */
  confidence?: number;
}

/** A bootstrap confidence interval. */
export interface BootstrapInterval extends Interval {
  /** The statistic on the original data. */
  estimate: number;
  /** Resamples drawn. */
  samples: number;
  /** Seed used. */
  seed: number;
  /** Confidence level. */
  confidence: number;
}

/**
 * A percentile bootstrap confidence interval of a confusion-matrix statistic
 * (default macro-F1): `samples` resamples of the test set with replacement,
 * drawn from `rng(seed)`, and the `(1 − confidence)/2` and
 * `(1 + confidence)/2` quantiles (linear interpolation, NumPy's default) of
 * the statistic over them. Same seed, same interval. With no samples the
 * interval is `NaN`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bootstrapInterval, macroF1 } from "./metrics.ts";
 * const input = {
 *   yTrue: [0, 0, 1, 1, 2, 2],
 *   yPred: [0, 1, 1, 1, 2, 0],
 *   samples: 500,
 *   seed: 7,
 * };
 * const ci = bootstrapInterval(input);
 * assert.equal(ci.estimate, macroF1([[1, 1, 0], [0, 2, 0], [1, 0, 1]]));
 * assert.ok(ci.lower <= ci.estimate && ci.estimate <= ci.upper);
 * assert.deepEqual(bootstrapInterval(input), ci); // same seed, same interval
 * ```
 */
export function bootstrapInterval(input: BootstrapInput): BootstrapInterval {
  const { yTrue, yPred, numClasses } = resolve(input, "bootstrapInterval");
  const statistic = input.statistic ?? macroF1;
  const samples = input.samples ?? DEFAULT_BOOTSTRAP_SAMPLES;
  const seed = input.seed ?? DEFAULT_BOOTSTRAP_SEED;
  const confidence = input.confidence ?? DEFAULT_CONFIDENCE;
  if (!Number.isInteger(samples) || samples < 1) {
    throw new Error(
      `bootstrapInterval: samples must be a positive integer (got ${samples})`,
    );
  }
  if (!(confidence > 0 && confidence < 1)) {
    throw new Error(
      `bootstrapInterval: confidence must be in (0, 1) (got ${confidence})`,
    );
  }
  const n = yTrue.length;
  const estimate = n ? statistic(countMatrix(yTrue, yPred, numClasses)) : NaN;
  if (!n) {
    return { estimate, lower: NaN, upper: NaN, samples, seed, confidence };
  }
  const r = rng(seed);
  const values = new Float64Array(samples);
  const m = Array.from(
    { length: numClasses },
    () => new Array<number>(numClasses).fill(0),
  );
  for (let s = 0; s < samples; s++) {
    for (const row of m) row.fill(0);
    for (let j = 0; j < n; j++) {
      const i = r.int(0, n - 1);
      m[yTrue[i]][yPred[i]]++;
    }
    values[s] = statistic(m);
  }
  values.sort();
  const quantile = (q: number) => {
    const pos = q * (samples - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(samples - 1, lo + 1);
    return values[lo] + (pos - lo) * (values[hi] - values[lo]);
  };
  return {
    estimate,
    lower: quantile((1 - confidence) / 2),
    upper: quantile((1 + confidence) / 2),
    samples,
    seed,
    confidence,
  };
}

// ---------------------------------------------------------------------------
// The report

/** Input of {@linkcode evaluationReport}. */
export interface EvaluationInput {
  /** True class index of each sample. */
  yTrue: ArrayLike<number>;
  /** Class probabilities (rows, or flat in class order). */
  probs: Probabilities;
  /** Class names, in index order. */
  classes: readonly string[];
  /**
   * The "no tumour" class of the binary view; default `"notumor"`. If the
   * default is not among `classes` the binary view is `null`; an explicit
   * class that is not there is an error.
   */
  negativeClass?: string;
  /** Confidence level of every interval; default 0.95. */
  confidence?: number;
  /** Bins of the calibration; default 15. */
  calibrationBins?: number;
  /**
   * The operating point (see `decision.ts`): call a tumour when
   * P(tumour) = 1 − P(negative class) ≥ this, in (0, 0.5]. Default: argmax.
   * It decides the predicted classes (accuracy, confusion matrix, per-class
   * and binary metrics); the loss and the calibration measure the
   * probabilities and do not depend on it.
   */
  tumourThreshold?: number;
  /**
   * The macro-F1 bootstrap: `false` to skip it, or its resamples and seed
   * (default 1000 and 42).
   */
  bootstrap?: false | { samples?: number; seed?: number };
}

/** A number, or `null` where the value is undefined. */
export type Maybe = number | null;

/** Per-class entry of {@linkcode EvaluationReport}. */
export interface ReportClass {
  /** Class name. */
  class: string;
  /** Precision; `null` (not defined) if the class is never predicted. */
  precision: Maybe;
  /** Recall; `null` (not defined) if the class has no samples. */
  recall: Maybe;
  /** F1; `null` if the class is neither in the truth nor predicted. */
  f1: Maybe;
  /** Samples of the class. */
  support: number;
  /** One-vs-rest ROC AUC; `null` if the class or the rest is absent. */
  auc: Maybe;
}

/**
 * Averages in {@linkcode EvaluationReport}: over the classes where each value
 * is defined; `null` when it is defined for none.
 */
export interface ReportAveraged {
  /** Averaged precision. */
  precision: Maybe;
  /** Averaged recall. */
  recall: Maybe;
  /** Averaged F1. */
  f1: Maybe;
}

/** The values of the binary view that can be undefined (`null` in the report). */
export type BinaryRatio = "sensitivity" | "specificity" | "ppv" | "npv" | "auc";

/**
 * The binary view in {@linkcode EvaluationReport}: sensitivity, specificity,
 * PPV, NPV and AUC are `null` where not defined (e.g. the NPV of a model
 * that never calls "no tumour").
 */
export type ReportBinary =
  & Omit<BinaryMetrics, BinaryRatio>
  & { [K in BinaryRatio]: Maybe };

/** One calibration bin in {@linkcode EvaluationReport}. */
export interface ReportBin {
  /** Lower edge (exclusive; the first bin includes 0). */
  lower: number;
  /** Upper edge (inclusive). */
  upper: number;
  /** Predictions in the bin. */
  count: number;
  /** Mean top-label confidence; `null` if empty. */
  meanConfidence: Maybe;
  /** Accuracy; `null` if empty. */
  accuracy: Maybe;
  /** Accuracy − mean confidence; `null` if empty. */
  gap: Maybe;
}

/**
 * Everything {@linkcode evaluationReport} measures, JSON-serialisable (no
 * `NaN` or `Infinity`: undefined values are `null`). This object is the
 * `--json` output of `deno task evaluate`.
 */
export interface EvaluationReport {
  /** Number of samples. */
  n: number;
  /** Class names, in index order. */
  classes: string[];
  /** Confidence level of every interval (0.95). */
  confidence: number;
  /** Fraction correct. */
  accuracy: number;
  /** Wilson interval of the accuracy. */
  accuracyCi: Interval;
  /** Mean cross-entropy (probabilities clipped at 1e-7). */
  loss: number;
  /** Cohen's kappa; `null` if a single class is everywhere. */
  cohenKappa: Maybe;
  /** Counts, rows = true class, columns = predicted class. */
  confusionMatrix: number[][];
  /** The confusion matrix with each row divided by its sum (empty rows zero). */
  confusionMatrixNormalized: number[][];
  /** Precision, recall, F1, support and one-vs-rest AUC per class. */
  perClass: ReportClass[];
  /** Unweighted means over the classes where each value is defined. */
  macro: ReportAveraged & { auc: Maybe };
  /** Support-weighted means over the classes where each value is defined. */
  weighted: ReportAveraged;
  /** Percentile-bootstrap interval of the macro F1, or `null` if skipped. */
  macroF1Ci: (Interval & { samples: number; seed: number }) | null;
  /** Tumour vs no tumour; `null` when the negative class is not among the classes. */
  binary: ReportBinary | null;
  /** Top-label calibration. */
  calibration: {
    /** Number of equal-width bins. */
    bins: number;
    /** Expected calibration error. */
    ece: Maybe;
    /** Maximum calibration error. */
    mce: Maybe;
    /** Mean top-label confidence. */
    meanConfidence: Maybe;
    /** Reliability-diagram data, one entry per bin. */
    reliability: ReportBin[];
  };
}

/** `NaN` and ±Infinity → `null` (what JSON.stringify would do anyway, but explicit and typed). */
function nullable(value: number): Maybe {
  return Number.isFinite(value) ? value : null;
}

/**
 * Every evaluation metric of a set of predictions in one JSON-serialisable
 * object (see {@linkcode EvaluationReport}; undefined values are `null`):
 *
 * | key | what |
 * | --- | --- |
 * | `n`, `classes`, `confidence` | sample count, class names, interval level (0.95) |
 * | `accuracy`, `accuracyCi` | fraction correct and its Wilson interval `{lower, upper}` |
 * | `loss` | mean cross-entropy, probabilities clipped at 1e-7 |
 * | `cohenKappa` | Cohen's kappa |
 * | `confusionMatrix`, `confusionMatrixNormalized` | counts (rows = true class) and row fractions |
 * | `perClass[]` | `{class, precision, recall, f1, support, auc}` (AUC one-vs-rest; a ratio with a zero denominator is `null`) |
 * | `macro`, `weighted` | `{precision, recall, f1}` averages (`macro.auc` too) |
 * | `macroF1Ci` | `{lower, upper, samples, seed}`: seeded bootstrap interval of the macro F1 |
 * | `binary` | tumour vs `negativeClass`: `negativeClass, positiveClasses, decision, positives, negatives, tp, fp, tn, fn, sensitivity, sensitivityCi, specificity, specificityCi, ppv, npv, auc` |
 * | `calibration` | `{bins, ece, mce, meanConfidence, reliability[]}`, each bin `{lower, upper, count, meanConfidence, accuracy, gap}` |
 *
 * With `tumourThreshold` the predictions follow that operating point
 * (`binary.decision` records it); by default they are the argmax.
 *
 * Throws on an empty set, labels and probabilities that do not match, or a
 * tumour threshold outside (0, 0.5] or without the negative class.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { evaluationReport } from "./metrics.ts";
 * const report = evaluationReport({
 *   yTrue: [0, 1, 2, 3],
 *   probs: [[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.1, 0.7]],
 *   classes: ["glioma", "meningioma", "notumor", "pituitary"],
 * });
 * assert.equal(report.accuracy, 1);
 * assert.equal(report.binary?.sensitivity, 1);
 * assert.equal(report.binary?.positives, 3);
 * assert.equal(report.macro.auc, 1);
 * // Every confidence is 0.7: one bin, 30 points over-confident.
 * assert.ok(Math.abs(report.calibration.ece! - 0.3) < 1e-9);
 * // JSON-ready: what goes out comes back the same.
 * assert.deepEqual(JSON.parse(JSON.stringify(report)), report);
 * ```
 */
export function evaluationReport(input: EvaluationInput): EvaluationReport {
  const classes = [...input.classes];
  const k = classes.length;
  const rows = probabilityRows(input.probs, k);
  if (!rows.length) throw new Error("evaluationReport: no predictions");
  checkLabels(input.yTrue, rows.length, k);
  const confidence = input.confidence ?? DEFAULT_CONFIDENCE;
  const yTrue = Int32Array.from(input.yTrue);
  const decide = decider(classes, {
    tumourThreshold: input.tumourThreshold,
    negativeClass: input.negativeClass ?? DEFAULT_NEGATIVE_CLASS,
  });
  const yPred = Int32Array.from(rows, decide);
  const n = rows.length;
  const confusion = countMatrix(yTrue, yPred, k);
  const correct = confusion.reduce((s, row, c) => s + row[c], 0);
  const prf = perClassMetrics({ confusion, classes });
  const roc = oneVsRestRoc({ yTrue, probs: rows, classes });
  return {
    n,
    classes,
    confidence,
    accuracy: correct / n,
    accuracyCi: wilsonInterval({ successes: correct, total: n, confidence }),
    loss: crossEntropy({ yTrue, probs: rows }),
    cohenKappa: nullable(cohenKappa(confusion)),
    confusionMatrix: confusion,
    confusionMatrixNormalized: normalizeRows(confusion),
    perClass: prf.perClass.map((c, i) => ({
      class: c.class,
      precision: nullable(c.precision),
      recall: nullable(c.recall),
      f1: nullable(c.f1),
      support: c.support,
      auc: nullable(roc.curves[i].auc),
    })),
    macro: { ...reportAveraged(prf.macro), auc: nullable(roc.macroAuc) },
    weighted: reportAveraged(prf.weighted),
    macroF1Ci: reportMacroF1Ci(input, { yTrue, yPred, k, confidence }),
    binary: reportBinary(input, { yTrue, rows, confidence }),
    calibration: reportCalibration(input, { yTrue, rows }),
  };
}

/** The labels, decisions and probabilities the report's sections share. */
interface ReportBasis {
  /** True class indices. */
  yTrue: Int32Array;
  /** Predicted class indices (by the operating point). */
  yPred: Int32Array;
  /** Probability rows. */
  rows: number[][];
  /** Number of classes. */
  k: number;
  /** Confidence level of the intervals. */
  confidence: number;
}

/** The report's seeded bootstrap interval of the macro F1, unless skipped. */
function reportMacroF1Ci(
  input: EvaluationInput,
  basis: Pick<ReportBasis, "yTrue" | "yPred" | "k" | "confidence">,
): EvaluationReport["macroF1Ci"] {
  if (input.bootstrap === false) return null;
  const b = bootstrapInterval({
    yTrue: basis.yTrue,
    yPred: basis.yPred,
    numClasses: basis.k,
    samples: input.bootstrap?.samples,
    seed: input.bootstrap?.seed,
    confidence: basis.confidence,
  });
  return { lower: b.lower, upper: b.upper, samples: b.samples, seed: b.seed };
}

/**
 * The report's tumour-vs-no-tumour view at its operating point; `null` when
 * the default negative class is not among the classes.
 */
function reportBinary(
  input: EvaluationInput,
  basis: Pick<ReportBasis, "yTrue" | "rows" | "confidence">,
): ReportBinary | null {
  const negativeClass = input.negativeClass ?? DEFAULT_NEGATIVE_CLASS;
  if (
    input.negativeClass === undefined &&
    !input.classes.includes(negativeClass)
  ) {
    return null;
  }
  const threshold = input.tumourThreshold;
  const b = binaryMetrics({
    yTrue: basis.yTrue,
    probs: basis.rows,
    classes: input.classes,
    negativeClass,
    confidence: basis.confidence,
    ...(threshold === undefined ? {} : { threshold }),
  });
  return {
    ...b,
    sensitivity: nullable(b.sensitivity),
    specificity: nullable(b.specificity),
    ppv: nullable(b.ppv),
    npv: nullable(b.npv),
    auc: nullable(b.auc),
  };
}

/** Averages with undefined values as `null`. */
function reportAveraged(a: AveragedMetrics): ReportAveraged {
  return {
    precision: nullable(a.precision),
    recall: nullable(a.recall),
    f1: nullable(a.f1),
  };
}

/** The report's calibration section: undefined values as `null`. */
function reportCalibration(
  input: EvaluationInput,
  basis: Pick<ReportBasis, "yTrue" | "rows">,
): EvaluationReport["calibration"] {
  const cal = calibration({
    yTrue: basis.yTrue,
    probs: basis.rows,
    bins: input.calibrationBins ?? DEFAULT_CALIBRATION_BINS,
  });
  return {
    bins: cal.bins,
    ece: nullable(cal.ece),
    mce: nullable(cal.mce),
    meanConfidence: nullable(cal.meanConfidence),
    reliability: cal.reliability.map((b) => ({
      lower: b.lower,
      upper: b.upper,
      count: b.count,
      meanConfidence: nullable(b.meanConfidence),
      accuracy: nullable(b.accuracy),
      gap: nullable(b.gap),
    })),
  };
}
