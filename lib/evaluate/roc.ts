/**
 * ROC curves and the area under them, for the classifier's probabilities.
 *
 * - {@linkcode rocCurve}: one binary ROC curve (false- and true-positive rates
 *   at every distinct score, highest first), tied scores handled as one step;
 * - {@linkcode rocAuc}: its area by the trapezoidal rule (ties count one
 *   half, the same as the Mann–Whitney U statistic and scikit-learn's
 *   `roc_auc_score`);
 * - {@linkcode oneVsRestRoc}: one curve per class (that class against the
 *   rest) and the macro average of their AUCs;
 * - {@linkcode binaryTumourRoc}: the clinician's tumour-vs-no-tumour curve,
 *   scored with P(tumour) = 1 − P(negative class).
 *
 * The module also holds the probability-input helpers the other evaluation
 * modules share ({@linkcode probabilityRows}, {@linkcode predictedClasses}).
 *
 * Undefined values are `NaN`: the AUC of a class with no positive (or no
 * negative) examples, and the rate whose denominator is zero. scikit-learn
 * raises an error there instead.
 *
 * @module
 */
import { argmax } from "../model/decision.ts";

/**
 * Class probabilities of `n` samples: one row per sample (`number[][]`, or
 * any array of rows), or a flat row-major array of `n * numClasses` values
 * (such as a `Float32Array` from `tensor.dataSync()`) together with
 * `numClasses`.
 */
export type Probabilities =
  | ReadonlyArray<ArrayLike<number>>
  | Float32Array
  | Float64Array;

function isFlat(probs: Probabilities): probs is Float32Array | Float64Array {
  return probs instanceof Float32Array || probs instanceof Float64Array;
}

/**
 * Normalises {@linkcode Probabilities} to one `number[]` row per sample,
 * checking that every row has the same length (at least 2) and every value is
 * finite. `numClasses` is required for flat arrays and, when given, checked
 * against the rows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { probabilityRows } from "./roc.ts";
 * const rows = probabilityRows(new Float32Array([0.25, 0.75, 1, 0]), 2);
 * assert.deepEqual(rows, [[0.25, 0.75], [1, 0]]);
 * assert.throws(() => probabilityRows([[0.5, 0.5], [1]]), /row 1 has 1 values/);
 * ```
 */
export function probabilityRows(
  probs: Probabilities,
  numClasses?: number,
): number[][] {
  let rows: number[][];
  if (isFlat(probs)) {
    if (numClasses === undefined) {
      throw new Error(
        "probabilities: a flat array needs numClasses to be split into rows",
      );
    }
    if (!Number.isInteger(numClasses) || numClasses < 2) {
      throw new Error(
        `probabilities: numClasses must be an integer >= 2 (got ${numClasses})`,
      );
    }
    if (probs.length % numClasses !== 0) {
      throw new Error(
        `probabilities: ${probs.length} values are not a whole number of ` +
          `rows of ${numClasses}`,
      );
    }
    rows = [];
    for (let i = 0; i < probs.length; i += numClasses) {
      rows.push(Array.from(probs.subarray(i, i + numClasses)));
    }
  } else {
    rows = probs.map((row) => Array.from(row));
  }
  const width = numClasses ?? rows[0]?.length;
  rows.forEach((row, i) => {
    if (row.length !== width) {
      throw new Error(
        `probabilities: row ${i} has ${row.length} values, expected ${width}`,
      );
    }
    if (row.some((p) => !Number.isFinite(p))) {
      throw new Error(`probabilities: row ${i} has a non-finite value`);
    }
  });
  if (width !== undefined && width < 2) {
    throw new Error(
      `probabilities: need at least 2 classes per row (got ${width})`,
    );
  }
  return rows;
}

/**
 * The predicted class of each row: the index of the largest probability (the
 * first one on a tie, like NumPy's `argmax`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { predictedClasses } from "./roc.ts";
 * assert.deepEqual(
 *   predictedClasses([[0.1, 0.9], [0.5, 0.5]]),
 *   Int32Array.from([1, 0]), // a tie goes to the first class
 * );
 * ```
 */
export function predictedClasses(
  probs: Probabilities,
  numClasses?: number,
): Int32Array {
  return Int32Array.from(
    probabilityRows(probs, numClasses),
    (row) => argmax(row),
  );
}

/**
 * Checks that `yTrue` holds `n` class indices in `[0, numClasses)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkLabels } from "./roc.ts";
 * checkLabels([0, 2, 1], 3, 3); // fine
 * assert.throws(() => checkLabels([0, 3], 2, 3), /label 1 is 3/);
 * assert.throws(() => checkLabels([0], 2, 3), /1 labels for 2 predictions/);
 * ```
 */
export function checkLabels(
  yTrue: ArrayLike<number>,
  n: number,
  numClasses: number,
): void {
  if (yTrue.length !== n) {
    throw new Error(
      `labels: ${yTrue.length} labels for ${n} predictions`,
    );
  }
  for (let i = 0; i < yTrue.length; i++) {
    const y = yTrue[i];
    if (!Number.isInteger(y) || y < 0 || y >= numClasses) {
      throw new Error(
        `labels: label ${i} is ${y}, not a class index in [0, ${numClasses})`,
      );
    }
  }
}

/** A binary ROC curve. */
export interface RocCurve {
  /** False-positive rate at each threshold, from 0 up to 1 (all `NaN` with no negatives). */
  fpr: number[];
  /** True-positive rate at each threshold, from 0 up to 1 (all `NaN` with no positives). */
  tpr: number[];
  /**
   * Thresholds, decreasing: point `i` classifies `score >= thresholds[i]` as
   * positive. The first is `Infinity` (nothing positive: the point (0, 0)),
   * the others are the distinct scores.
   */
  thresholds: number[];
  /** Area under the curve (trapezoidal); `NaN` with no positives or no negatives. */
  auc: number;
  /** Number of positive examples. */
  positives: number;
  /** Number of negative examples. */
  negatives: number;
}

/** Input of {@linkcode rocCurve}. */
export interface RocInput {
  /** 1 (or `true`) for a positive example, 0 (or `false`) for a negative one. */
  yTrue: ArrayLike<number | boolean>;
  /** Scores: higher means more likely positive. */
  scores: ArrayLike<number>;
}

/**
 * The ROC curve of binary labels and scores, with one point per distinct
 * score (tied scores move both rates at once, a diagonal step) plus the
 * origin; scikit-learn's `roc_curve(..., drop_intermediate=False)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rocCurve } from "./roc.ts";
 * const roc = rocCurve({ yTrue: [0, 0, 1, 1], scores: [0.1, 0.4, 0.35, 0.8] });
 * assert.deepEqual(roc.fpr, [0, 0, 0.5, 0.5, 1]);
 * assert.deepEqual(roc.tpr, [0, 0.5, 0.5, 1, 1]);
 * assert.deepEqual(roc.thresholds, [Infinity, 0.8, 0.4, 0.35, 0.1]);
 * assert.equal(roc.auc, 0.75);
 * ```
 */
export function rocCurve(input: RocInput): RocCurve {
  const { yTrue, scores } = input;
  if (yTrue.length !== scores.length) {
    throw new Error(
      `rocCurve: ${yTrue.length} labels for ${scores.length} scores`,
    );
  }
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(scores[i])) {
      throw new Error(`rocCurve: score ${i} is NaN`);
    }
  }
  order.sort((a, b) => scores[b] - scores[a]);
  let positives = 0;
  for (let i = 0; i < n; i++) if (Number(yTrue[i])) positives++;
  const negatives = n - positives;
  const fpr = [0];
  const tpr = [0];
  const thresholds = [Infinity];
  let tp = 0;
  let fp = 0;
  for (let k = 0; k < n;) {
    const threshold = scores[order[k]];
    // Every example with this score turns positive at once.
    while (k < n && scores[order[k]] === threshold) {
      if (Number(yTrue[order[k]])) tp++;
      else fp++;
      k++;
    }
    fpr.push(fp / negatives);
    tpr.push(tp / positives);
    thresholds.push(threshold);
  }
  // With no positives (negatives) the rate is undefined everywhere, the
  // origin included, as in scikit-learn.
  if (!positives) tpr.fill(NaN);
  if (!negatives) fpr.fill(NaN);
  const auc = positives && negatives ? trapezoid(fpr, tpr) : NaN;
  return { fpr, tpr, thresholds, auc, positives, negatives };
}

/**
 * The area under a curve through the points `(x[i], y[i])`, by the
 * trapezoidal rule (`x` must be monotonic).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { trapezoid } from "./roc.ts";
 * assert.equal(trapezoid([0, 0.5, 1], [0, 1, 1]), 0.75);
 * ```
 */
export function trapezoid(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) {
    throw new Error(`trapezoid: ${x.length} x values for ${y.length} y values`);
  }
  let area = 0;
  for (let i = 1; i < x.length; i++) {
    area += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2;
  }
  return area;
}

/**
 * The area under the ROC curve of binary labels and scores; `NaN` when one
 * of the two classes is absent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rocAuc } from "./roc.ts";
 * assert.equal(rocAuc({ yTrue: [0, 0, 1, 1], scores: [0.1, 0.4, 0.35, 0.8] }), 0.75);
 * assert.equal(rocAuc({ yTrue: [0, 1], scores: [0.5, 0.5] }), 0.5); // a tie: half
 * assert.ok(Number.isNaN(rocAuc({ yTrue: [1, 1], scores: [0.2, 0.9] })));
 * ```
 */
export function rocAuc(input: RocInput): number {
  return rocCurve(input).auc;
}

/** Input of {@linkcode oneVsRestRoc} and {@linkcode binaryTumourRoc}. */
export interface MulticlassRocInput {
  /** True class index of each sample. */
  yTrue: ArrayLike<number>;
  /** Class probabilities (see {@linkcode Probabilities}). */
  probs: Probabilities;
  /** Number of classes; required for a flat `probs`. */
  numClasses?: number;
  /** Class names (default `class 0`, `class 1`, ...). */
  classes?: readonly string[];
}

/** One-vs-rest ROC curves of a multi-class classifier. */
export interface OneVsRestRoc {
  /** Class names, in index order. */
  classes: string[];
  /** One curve per class: that class (positive) against all others. */
  curves: RocCurve[];
  /**
   * Unweighted mean of the per-class AUCs over the classes whose AUC is
   * defined (present and not the only class); `NaN` if none is.
   */
  macroAuc: number;
}

function classNames(classes: readonly string[] | undefined, k: number) {
  if (classes && classes.length !== k) {
    throw new Error(
      `${classes.length} class names for ${k} probability columns`,
    );
  }
  return classes
    ? [...classes]
    : Array.from({ length: k }, (_, i) => `class ${i}`);
}

/**
 * One ROC curve per class (class `c` against the rest, scored with
 * P(class `c`)) and their macro-average AUC, as scikit-learn's
 * `roc_auc_score(..., multi_class="ovr", average="macro")` (which, unlike
 * this, fails when a class is absent).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { oneVsRestRoc } from "./roc.ts";
 * const roc = oneVsRestRoc({
 *   yTrue: [0, 1, 2],
 *   probs: [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]],
 *   classes: ["a", "b", "c"],
 * });
 * assert.deepEqual(roc.curves.map((c) => c.auc), [1, 1, 1]);
 * assert.equal(roc.macroAuc, 1);
 * ```
 */
export function oneVsRestRoc(input: MulticlassRocInput): OneVsRestRoc {
  const rows = probabilityRows(input.probs, input.numClasses);
  const k = input.numClasses ?? rows[0]?.length ?? input.classes?.length;
  if (k === undefined) {
    throw new Error("oneVsRestRoc: no predictions and no numClasses");
  }
  checkLabels(input.yTrue, rows.length, k);
  const classes = classNames(input.classes, k);
  const yTrue = Array.from(input.yTrue);
  const curves = classes.map((_, c) =>
    rocCurve({
      yTrue: yTrue.map((y) => (y === c ? 1 : 0)),
      scores: rows.map((row) => row[c]),
    })
  );
  const defined = curves.filter((r) => !Number.isNaN(r.auc));
  const macroAuc = defined.length
    ? defined.reduce((s, r) => s + r.auc, 0) / defined.length
    : NaN;
  return { classes, curves, macroAuc };
}

/** The tumour-vs-no-tumour ROC curve. */
export interface BinaryTumourRoc extends RocCurve {
  /** The class treated as negative (no tumour). */
  negativeClass: string;
  /** The classes treated as positive (tumour). */
  positiveClasses: string[];
}

/** Input of {@linkcode binaryTumourRoc}. */
export interface BinaryRocInput extends MulticlassRocInput {
  /** Class names, in index order. */
  classes: readonly string[];
  /** The negative class (no tumour); default `"notumor"`. */
  negativeClass?: string;
}

/**
 * Index of the negative class in `classes`, or a clear error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { negativeIndex } from "./roc.ts";
 * assert.equal(negativeIndex(["glioma", "notumor"], "notumor"), 1);
 * assert.throws(() => negativeIndex(["a", "b"], "notumor"), /not one of the classes/);
 * ```
 */
export function negativeIndex(
  classes: readonly string[],
  negativeClass: string,
): number {
  const index = classes.indexOf(negativeClass);
  if (index < 0) {
    throw new Error(
      `negative class "${negativeClass}" is not one of the classes ` +
        `(${classes.join(", ")}); pass negativeClass`,
    );
  }
  return index;
}

/**
 * The clinician's ROC curve: any tumour class (every class except
 * `negativeClass`) is positive, scored with P(tumour) = 1 − P(negative
 * class).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { binaryTumourRoc } from "./roc.ts";
 * const roc = binaryTumourRoc({
 *   yTrue: [0, 1, 2],
 *   probs: [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.1, 0.6]],
 *   classes: ["glioma", "notumor", "pituitary"],
 * });
 * assert.deepEqual(roc.positiveClasses, ["glioma", "pituitary"]);
 * assert.deepEqual([roc.positives, roc.negatives], [2, 1]);
 * assert.equal(roc.auc, 1);
 * ```
 */
export function binaryTumourRoc(input: BinaryRocInput): BinaryTumourRoc {
  const negativeClass = input.negativeClass ?? "notumor";
  const rows = probabilityRows(input.probs, input.numClasses);
  const k = input.classes.length;
  if (rows.length && rows[0].length !== k) {
    throw new Error(
      `binaryTumourRoc: ${k} class names for ${
        rows[0].length
      } probability columns`,
    );
  }
  const neg = negativeIndex(input.classes, negativeClass);
  checkLabels(input.yTrue, rows.length, k);
  const yTrue = Array.from(input.yTrue, (y) => (y === neg ? 0 : 1));
  const curve = rocCurve({ yTrue, scores: rows.map((row) => 1 - row[neg]) });
  return {
    ...curve,
    negativeClass,
    positiveClasses: input.classes.filter((_, c) => c !== neg),
  };
}
