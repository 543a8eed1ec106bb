/**
 * Calibration: does a predicted confidence of 90% mean right 90% of the time?
 *
 * Top-label calibration (Guo et al., 2017, "On Calibration of Modern Neural
 * Networks"): each prediction's confidence is its largest class probability
 * and it is correct when that class is the true one. Predictions are put in
 * `bins` equal-width confidence bins — bin `b` holds confidences in
 * `(b/bins, (b+1)/bins]`, and the first bin also holds 0 — and
 *
 * - the expected calibration error is `ECE = Σ_b (n_b / N) · |acc_b − conf_b|`,
 *   the gap between accuracy and mean confidence, weighted by bin size;
 * - the maximum calibration error is `MCE = max_b |acc_b − conf_b|` over the
 *   non-empty bins;
 * - the reliability diagram plots `acc_b` against the bin (perfect
 *   calibration lies on the diagonal).
 *
 * @module
 */
import { checkLabels, type Probabilities, probabilityRows } from "./roc.ts";

/** The number of bins used when none is given. */
export const DEFAULT_CALIBRATION_BINS = 15;

/** One bin of the reliability diagram. */
export interface CalibrationBin {
  /** Lower edge (exclusive, except 0 for the first bin). */
  lower: number;
  /** Upper edge (inclusive). */
  upper: number;
  /** Predictions whose confidence falls in the bin. */
  count: number;
  /** Mean confidence of those predictions; `NaN` for an empty bin. */
  meanConfidence: number;
  /** Fraction of those predictions that are correct; `NaN` for an empty bin. */
  accuracy: number;
  /** `accuracy − meanConfidence` (negative: over-confident); `NaN` if empty. */
  gap: number;
}

/** Calibration summary of a set of predictions. */
export interface Calibration {
  /** Number of bins. */
  bins: number;
  /** Number of predictions. */
  n: number;
  /** Expected calibration error, in [0, 1]; `NaN` with no predictions. */
  ece: number;
  /** Maximum calibration error, in [0, 1]; `NaN` with no predictions. */
  mce: number;
  /** Mean top-label confidence. */
  meanConfidence: number;
  /** Top-label accuracy. */
  accuracy: number;
  /** The reliability diagram, one entry per bin (empty bins included). */
  reliability: CalibrationBin[];
}

/**
 * The bin of a confidence: `b` such that `b/bins < conf <= (b+1)/bins` with
 * the edges computed as `b / bins`, even where `conf * bins` rounds across an
 * edge (the double just above 11/15 times 15 rounds to exactly 11); 0 (and
 * anything below) goes to the first bin, anything above 1 to the last.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { binOf } from "./calibration.ts";
 * assert.equal(binOf(0.7, 10), 6); // (0.6, 0.7]
 * assert.equal(binOf(0.70001, 10), 7);
 * assert.equal(binOf(0, 10), 0);
 * assert.equal(binOf(0.7333333333333334, 15), 11); // just above 11/15
 * ```
 */
export function binOf(conf: number, bins: number): number {
  let b = Math.ceil(conf * bins) - 1;
  if (b >= 0 && b < bins && conf <= b / bins) b--;
  else if (b >= -1 && b < bins - 1 && conf > (b + 1) / bins) b++;
  return Math.min(bins - 1, Math.max(0, b));
}

/** Input of {@linkcode calibration}. */
export interface CalibrationInput {
  /** True class index of each sample. */
  yTrue: ArrayLike<number>;
  /** Class probabilities (rows, or flat with `numClasses`). */
  probs: Probabilities;
  /** Number of classes; required for a flat `probs`. */
  numClasses?: number;
  /** Number of equal-width bins; default {@linkcode DEFAULT_CALIBRATION_BINS} (15). */
  bins?: number;
}

/**
 * Expected and maximum calibration error and the reliability-diagram data of
 * top-label confidences (see the module documentation). A tie for the top
 * probability predicts the first tied class.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { calibration } from "./calibration.ts";
 * const cal = calibration({
 *   yTrue: [0, 1, 1, 0],
 *   probs: [[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.1, 0.9]],
 *   bins: 10,
 * });
 * assert.equal(cal.ece.toFixed(3), "0.325");
 * assert.equal(cal.mce.toFixed(3), "0.400");
 * const bin = cal.reliability[8]; // (0.8, 0.9]: two predictions at 0.9
 * assert.equal(bin.count, 2);
 * assert.equal(bin.accuracy, 0.5);
 * assert.equal(bin.meanConfidence.toFixed(2), "0.90");
 * ```
 */
export function calibration(input: CalibrationInput): Calibration {
  const bins = input.bins ?? DEFAULT_CALIBRATION_BINS;
  if (!Number.isInteger(bins) || bins < 1) {
    throw new Error(
      `calibration: bins must be a positive integer (got ${bins})`,
    );
  }
  const rows = probabilityRows(input.probs, input.numClasses);
  const k = input.numClasses ?? rows[0]?.length ?? 2;
  checkLabels(input.yTrue, rows.length, k);
  const count = new Array<number>(bins).fill(0);
  const confSum = new Array<number>(bins).fill(0);
  const correctSum = new Array<number>(bins).fill(0);
  let totalConf = 0;
  let totalCorrect = 0;
  rows.forEach((row, i) => {
    let best = 0;
    for (let c = 1; c < row.length; c++) if (row[c] > row[best]) best = c;
    const conf = row[best];
    const correct = best === input.yTrue[i] ? 1 : 0;
    const b = binOf(conf, bins);
    count[b]++;
    confSum[b] += conf;
    correctSum[b] += correct;
    totalConf += conf;
    totalCorrect += correct;
  });
  const n = rows.length;
  let ece = 0;
  let mce = 0;
  const reliability = count.map((m, b): CalibrationBin => {
    const meanConfidence = m ? confSum[b] / m : NaN;
    const accuracy = m ? correctSum[b] / m : NaN;
    const gap = accuracy - meanConfidence;
    if (m) {
      ece += (m / n) * Math.abs(gap);
      mce = Math.max(mce, Math.abs(gap));
    }
    return {
      lower: b / bins,
      upper: (b + 1) / bins,
      count: m,
      meanConfidence,
      accuracy,
      gap,
    };
  });
  return {
    bins,
    n,
    ece: n ? ece : NaN,
    mce: n ? mce : NaN,
    meanConfidence: n ? totalConf / n : NaN,
    accuracy: n ? totalCorrect / n : NaN,
    reliability,
  };
}

/**
 * The expected calibration error alone (see {@linkcode calibration}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { expectedCalibrationError } from "./calibration.ts";
 * assert.equal(expectedCalibrationError({ yTrue: [0], probs: [[0.75, 0.25]] }), 0.25);
 * ```
 */
export function expectedCalibrationError(input: CalibrationInput): number {
  return calibration(input).ece;
}

/**
 * The maximum calibration error alone (see {@linkcode calibration}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maximumCalibrationError } from "./calibration.ts";
 * assert.equal(maximumCalibrationError({ yTrue: [1], probs: [[0.75, 0.25]] }), 0.75);
 * ```
 */
export function maximumCalibrationError(input: CalibrationInput): number {
  return calibration(input).mce;
}
