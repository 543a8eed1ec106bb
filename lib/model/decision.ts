/**
 * How a row of class probabilities becomes one predicted class: the most
 * probable class (argmax, the default), or an **operating point** on
 * P(tumour) = 1 − P(no tumour): with a `tumourThreshold` τ, a scan is called
 * its most probable tumour class when P(tumour) ≥ τ, and the no-tumour class
 * otherwise. τ is at most 0.5, so an operating point only ever turns
 * no-tumour calls into tumour calls: it trades false alarms for missed
 * tumours and leaves every argmax tumour call as it was.
 *
 * `evaluate`, `predict`, `serve` and the metrics all decide through this
 * module, so a model's recorded operating point (`inference.tumourThreshold`
 * in its metadata) means the same everywhere. It imports nothing.
 *
 * @module
 */

/** The class that means "no tumour" unless told otherwise. */
export const DEFAULT_NEGATIVE_CLASS = "notumor";

/**
 * The index of the largest of the first `length` values of `row` (default
 * all), the first one on a tie, like NumPy's `argmax`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { argmax } from "./decision.ts";
 * assert.equal(argmax([0.1, 0.7, 0.2]), 1);
 * assert.equal(argmax([0.5, 0.5]), 0); // the first on a tie
 * assert.equal(argmax([0.1, 0.2, 0.7], 2), 1); // only the first two
 * ```
 */
export function argmax(
  row: ArrayLike<number>,
  length: number = row.length,
): number {
  let best = 0;
  for (let c = 1; c < length; c++) if (row[c] > row[best]) best = c;
  return best;
}

/** How predictions are decided (see the module documentation). */
export interface DecisionRule {
  /**
   * Call a tumour when P(tumour) ≥ this, in (0, 0.5]; absent: argmax.
   */
  tumourThreshold?: number;
  /** The "no tumour" class (default {@linkcode DEFAULT_NEGATIVE_CLASS}). */
  negativeClass?: string;
}

/**
 * What is wrong with a tumour threshold, or `null` if it is usable: a number
 * in (0, 0.5].
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tumourThresholdProblem } from "./decision.ts";
 * assert.equal(tumourThresholdProblem(0.3), null);
 * assert.equal(
 *   tumourThresholdProblem(0.7),
 *   "tumourThreshold must be a number in (0, 0.5] (got 0.7)",
 * );
 * ```
 */
export function tumourThresholdProblem(value: unknown): string | null {
  return typeof value === "number" && value > 0 && value <= 0.5
    ? null
    : `tumourThreshold must be a number in (0, 0.5] (got ${
      JSON.stringify(value)
    })`;
}

/**
 * A function that decides one row of probabilities, for `classes`. Throws if
 * the rule's threshold is out of range or (with a threshold) the negative
 * class is not among `classes`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decider } from "./decision.ts";
 * const classes = ["glioma", "meningioma", "notumor"];
 * const argmax = decider(classes);
 * const screen = decider(classes, { tumourThreshold: 0.3 });
 * // P(tumour) = 0.35 ≥ 0.3: the most probable tumour class, glioma
 * assert.equal(argmax([0.2, 0.15, 0.65]), 2);
 * assert.equal(screen([0.2, 0.15, 0.65]), 0);
 * assert.throws(() => decider(["a", "b"], { tumourThreshold: 0.3 }), /needs a "notumor" class/);
 * ```
 */
export function decider(
  classes: readonly string[],
  rule: DecisionRule = {},
): (row: ArrayLike<number>) => number {
  const k = classes.length;
  const tau = rule.tumourThreshold;
  if (tau === undefined) return (row) => argmax(row, k);
  const problem = tumourThresholdProblem(tau);
  if (problem) throw new Error(problem);
  const negativeClass = rule.negativeClass ?? DEFAULT_NEGATIVE_CLASS;
  const neg = classes.indexOf(negativeClass);
  if (neg < 0) {
    throw new Error(
      `a tumour threshold needs a "${negativeClass}" class (classes: ${
        classes.join(", ")
      })`,
    );
  }
  return (row) => {
    if (1 - row[neg] < tau) return neg;
    let best = -1;
    for (let c = 0; c < k; c++) {
      if (c !== neg && (best < 0 || row[c] > row[best])) best = c;
    }
    return best;
  };
}

/**
 * The decision rule in words, for reports and model cards.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeDecision } from "./decision.ts";
 * assert.equal(describeDecision({}), "argmax (the most probable class)");
 * assert.equal(
 *   describeDecision({ tumourThreshold: 0.2 }),
 *   "tumour when P(tumour) = 1 − P(notumor) ≥ 0.2 (its most probable tumour class), else notumor",
 * );
 * ```
 */
export function describeDecision(rule: DecisionRule = {}): string {
  if (rule.tumourThreshold === undefined) {
    return "argmax (the most probable class)";
  }
  const neg = rule.negativeClass ?? DEFAULT_NEGATIVE_CLASS;
  return `tumour when P(tumour) = 1 − P(${neg}) ≥ ${rule.tumourThreshold} ` +
    `(its most probable tumour class), else ${neg}`;
}
