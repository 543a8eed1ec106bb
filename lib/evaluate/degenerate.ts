/**
 * Is the model degenerate? A model that never predicts one of the classes,
 * or does hardly better than guessing, produces metrics that look like
 * numbers but say little: a model that never calls "notumor" has a tumour
 * sensitivity of 100% and meets that target without having learned
 * anything. {@linkcode degenerateReasons} says whether an evaluation is of
 * such a model, and why, in words a reader can check against the confusion
 * matrix; the targets are then not assessable, and the evaluation's text,
 * the model card and the notebooks put the reasons at the top.
 *
 * A model is degenerate when
 *
 * - a class that is in the truth is never predicted (a class absent from
 *   the truth cannot be judged either way, so it does not count), or
 * - its accuracy is below chance plus {@linkcode CHANCE_MARGIN}: with `k`
 *   classes, guessing gets `1/k` right on balanced data, so with 4 classes
 *   an accuracy under 30% is within 5 points of a four-sided coin. The
 *   margin of 5 points catches a model that has barely moved from guessing
 *   while leaving far below it every model worth reading metrics of (the
 *   clinical targets ask for 97%). Chance here is `1/k`, not the share of
 *   the largest class: a model that always answers the largest class is
 *   caught by the first rule.
 *
 * Pure functions over the confusion matrix (no TensorFlow).
 *
 * @module
 */
import type { EvaluationReport } from "./metrics.ts";

/**
 * How far above chance (`1/k`) the accuracy must be for the model not to be
 * degenerate: 5 percentage points.
 */
export const CHANCE_MARGIN = 0.05;

/** What {@linkcode degenerateReasons} looks at: a report, or just its matrix and class names. */
export type DegenerateInput = Pick<
  EvaluationReport,
  "confusionMatrix" | "classes"
>;

/** Options for {@linkcode degenerateReasons}. */
export interface DegenerateOptions {
  /** Points above chance the accuracy must reach; default {@linkcode CHANCE_MARGIN}. */
  chanceMargin?: number;
}

/** A fraction as a percentage with one decimal. */
function percent(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

/** The classes that are in the truth but never predicted, each as a reason. */
function neverPredicted(input: DegenerateInput, n: number): string[] {
  const m = input.confusionMatrix;
  return m.flatMap((row, c) => {
    const support = row.reduce((s, v) => s + v, 0);
    const predicted = m.reduce((s, r) => s + r[c], 0);
    if (support === 0 || predicted > 0) return [];
    return [
      `never predicts ${input.classes[c]}, though ${support} of the ${n} ` +
      `scans are ${input.classes[c]}`,
    ];
  });
}

/** The accuracy as a reason when it is within the margin of chance. */
function nearChance(input: DegenerateInput, n: number, margin: number) {
  const k = input.classes.length;
  if (k < 2) return [];
  const correct = input.confusionMatrix.reduce((s, row, c) => s + row[c], 0);
  const accuracy = correct / n;
  const chance = 1 / k;
  // The bar itself is not degenerate (allowing for rounding in the sum).
  if (accuracy >= chance + margin - 1e-12) return [];
  return [
    `accuracy ${percent(accuracy)} is within ${
      Math.round(100 * margin)
    } points of chance (${percent(chance)} with ${k} classes)`,
  ];
}

/**
 * Why the evaluated model is degenerate: one human-readable reason per
 * class that is in the truth but never predicted, and one if the accuracy is
 * below chance (`1/k`) plus the margin. An empty list means the model is not
 * degenerate. An evaluation of no scans is degenerate: nothing was shown.
 *
 * @example A model that never calls "notumor"
 * ```ts
 * import assert from "node:assert/strict";
 * import { degenerateReasons } from "./degenerate.ts";
 * const classes = ["glioma", "meningioma", "notumor", "pituitary"];
 * assert.deepEqual(
 *   degenerateReasons({
 *     classes,
 *     confusionMatrix: [[9, 1, 0, 0], [1, 9, 0, 0], [2, 3, 0, 5], [0, 1, 0, 9]],
 *   }),
 *   ["never predicts notumor, though 10 of the 40 scans are notumor"],
 * );
 * // A good model: no reasons.
 * assert.deepEqual(
 *   degenerateReasons({
 *     classes,
 *     confusionMatrix: [[9, 1, 0, 0], [1, 9, 0, 0], [0, 0, 10, 0], [0, 1, 0, 9]],
 *   }),
 *   [],
 * );
 * ```
 *
 * @example Every class predicted, but no better than guessing
 * ```ts
 * import assert from "node:assert/strict";
 * import { degenerateReasons } from "./degenerate.ts";
 * assert.deepEqual(
 *   degenerateReasons({
 *     classes: ["glioma", "notumor"],
 *     confusionMatrix: [[5, 5], [5, 6]],
 *   }),
 *   ["accuracy 52.4% is within 5 points of chance (50.0% with 2 classes)"],
 * );
 * ```
 */
export function degenerateReasons(
  input: DegenerateInput,
  options: DegenerateOptions = {},
): string[] {
  const margin = options.chanceMargin ?? CHANCE_MARGIN;
  if (!(margin >= 0 && margin < 1)) {
    throw new Error(
      `degenerateReasons: chanceMargin must be in [0, 1) (got ${margin})`,
    );
  }
  const n = input.confusionMatrix.reduce(
    (s, row) => s + row.reduce((a, v) => a + v, 0),
    0,
  );
  if (n === 0) return ["no scans were evaluated"];
  return [...neverPredicted(input, n), ...nearChance(input, n, margin)];
}

/**
 * Whether the evaluated model is degenerate (see
 * {@linkcode degenerateReasons} for why).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isDegenerate } from "./degenerate.ts";
 * const classes = ["glioma", "notumor"];
 * assert.equal(isDegenerate({ classes, confusionMatrix: [[5, 0], [5, 0]] }), true);
 * assert.equal(isDegenerate({ classes, confusionMatrix: [[5, 0], [1, 4]] }), false);
 * ```
 */
export function isDegenerate(
  input: DegenerateInput,
  options: DegenerateOptions = {},
): boolean {
  return degenerateReasons(input, options).length > 0;
}

/** The first line of {@linkcode degenerateWarning}. */
export const DEGENERATE_HEADLINE: string =
  "Warning: this model is degenerate. Its metrics do not mean what they " +
  "seem, and the clinical targets are not assessable:";

/**
 * The warning that the evaluation's text output, the model card and the
 * notebooks put at the top when the model is degenerate: the headline, then
 * one `- ` line per reason. Empty when the model is not degenerate.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { degenerateWarning } from "./degenerate.ts";
 * const classes = ["glioma", "notumor"];
 * assert.equal(
 *   degenerateWarning({ classes, confusionMatrix: [[5, 0], [5, 0]] }),
 *   "Warning: this model is degenerate. Its metrics do not mean what they " +
 *     "seem, and the clinical targets are not assessable:\n" +
 *     "- never predicts notumor, though 5 of the 10 scans are notumor\n" +
 *     "- accuracy 50.0% is within 5 points of chance (50.0% with 2 classes)",
 * );
 * assert.equal(degenerateWarning({ classes, confusionMatrix: [[5, 0], [0, 5]] }), "");
 * ```
 */
export function degenerateWarning(
  input: DegenerateInput,
  options: DegenerateOptions = {},
): string {
  const reasons = degenerateReasons(input, options);
  if (!reasons.length) return "";
  return [DEGENERATE_HEADLINE, ...reasons.map((r) => `- ${r}`)].join("\n");
}
