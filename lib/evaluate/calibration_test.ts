import assert from "node:assert/strict";
import {
  binOf,
  calibration,
  DEFAULT_CALIBRATION_BINS,
  expectedCalibrationError,
  maximumCalibrationError,
} from "./calibration.ts";
import { TEN_PREDICTIONS } from "../../tests/fixtures.ts";

function close(actual: number, expected: number, tol = 1e-12) {
  assert.ok(
    Math.abs(actual - expected) <= tol,
    `expected ${expected}, got ${actual}`,
  );
}

// Ten predictions (the same fixture as metrics_test.ts). Top-label
// confidence and correctness:
//   .7 ✓  .5 ✓  .6 ✗  .6 ✗  .4 ✗  .8 ✓  .9 ✓  .4 ✓  .7 ✓  .4 ✓
const { probs: P, yTrue: Y } = TEN_PREDICTIONS;

Deno.test("calibration: hand-computed ECE and MCE with 10 bins", () => {
  // Bins with data (upper edges inclusive):
  //   (0.3, 0.4]: .4✗ .4✓ .4✓  acc 2/3, conf .4, |gap| 4/15, weight .3
  //   (0.4, 0.5]: .5✓          acc 1,   conf .5, |gap| .5,   weight .1
  //   (0.5, 0.6]: .6✗ .6✗      acc 0,   conf .6, |gap| .6,   weight .2
  //   (0.6, 0.7]: .7✓ .7✓      acc 1,   conf .7, |gap| .3,   weight .2
  //   (0.7, 0.8]: .8✓          acc 1,   conf .8, |gap| .2,   weight .1
  //   (0.8, 0.9]: .9✓          acc 1,   conf .9, |gap| .1,   weight .1
  // ECE = .08 + .05 + .12 + .06 + .02 + .01 = .34; MCE = .6
  const cal = calibration({ yTrue: Y, probs: P, bins: 10 });
  close(cal.ece, 0.34);
  close(cal.mce, 0.6);
  assert.equal(cal.n, 10);
  assert.equal(cal.bins, 10);
  close(cal.accuracy, 0.7);
  close(cal.meanConfidence, 0.6);
  assert.deepEqual(
    cal.reliability.map((b) => b.count),
    [0, 0, 0, 3, 1, 2, 2, 1, 1, 0],
  );
  const b3 = cal.reliability[3];
  close(b3.lower, 0.3);
  close(b3.upper, 0.4);
  close(b3.accuracy, 2 / 3);
  close(b3.meanConfidence, 0.4);
  close(b3.gap, 2 / 3 - 0.4);
  const b5 = cal.reliability[5];
  assert.equal(b5.accuracy, 0);
  close(b5.gap, -0.6); // over-confident
  assert.ok(Number.isNaN(cal.reliability[0].accuracy));
  assert.ok(Number.isNaN(cal.reliability[0].meanConfidence));
  close(expectedCalibrationError({ yTrue: Y, probs: P, bins: 10 }), 0.34);
  close(maximumCalibrationError({ yTrue: Y, probs: P, bins: 10 }), 0.6);
});

Deno.test("calibration: 15 bins by default, flat input", () => {
  const cal = calibration({
    yTrue: Y,
    probs: Float32Array.from(P.flat()),
    numClasses: 4,
  });
  assert.equal(DEFAULT_CALIBRATION_BINS, 15);
  assert.equal(cal.reliability.length, 15);
  assert.equal(cal.reliability.reduce((s, b) => s + b.count, 0), 10);
  // With 15 bins each distinct confidence still has a bin of its own (.4, .6
  // and .8 are edges, and float32 rounding moves them up one bin, but as
  // whole groups), so the ECE is the same .34 (within float32 rounding).
  close(cal.ece, 0.34, 1e-6);
});

Deno.test("calibration: perfect, all-wrong and single-class cases", () => {
  // Confidence 1 and always right: ECE 0.
  const perfect = calibration({ yTrue: [0, 1], probs: [[1, 0], [0, 1]] });
  assert.equal(perfect.ece, 0);
  assert.equal(perfect.mce, 0);
  assert.equal(perfect.reliability[14].count, 2);
  // Confidence .8 and always wrong: ECE .8.
  const wrong = calibration({
    yTrue: [1, 0],
    probs: [[0.8, 0.2], [0.2, 0.8]],
  });
  close(wrong.ece, 0.8);
  close(wrong.mce, 0.8);
  assert.equal(wrong.accuracy, 0);
  // One class only, confidence .75, right 3 times of 4 → calibrated.
  const single = calibration({
    yTrue: [0, 0, 0, 1],
    probs: [[0.75, 0.25], [0.75, 0.25], [0.75, 0.25], [0.75, 0.25]],
  });
  close(single.ece, 0);
  // Nothing: undefined, not zero.
  const empty = calibration({ yTrue: [], probs: [], numClasses: 2 });
  assert.ok(Number.isNaN(empty.ece));
  assert.ok(Number.isNaN(empty.mce));
  assert.equal(empty.reliability.length, 15);
});

Deno.test("calibration: bin edges are exact, upper edges inclusive", () => {
  assert.equal(binOf(0, 10), 0);
  assert.equal(binOf(0.1, 10), 0);
  assert.equal(binOf(0.1000001, 10), 1);
  assert.equal(binOf(0.4, 10), 3);
  assert.equal(binOf(1, 10), 9);
  assert.equal(binOf(1, 15), 14);
  // 11/15 as a double is 0.7333333333333333; the next double up times 15
  // rounds to exactly 11, which a plain ceil() would put in bin 10.
  assert.equal(binOf(11 / 15, 15), 10);
  assert.equal(binOf(0.7333333333333334, 15), 11);
  // Every edge b/B lands in bin b-1 and the double above it in bin b.
  const up = (x: number) => {
    const f = new Float64Array([x]);
    new BigInt64Array(f.buffer)[0]++;
    return f[0];
  };
  for (const bins of [5, 10, 15, 20]) {
    for (let b = 1; b < bins; b++) {
      assert.equal(binOf(b / bins, bins), b - 1, `${b}/${bins}`);
      assert.equal(binOf(up(b / bins), bins), b, `above ${b}/${bins}`);
    }
  }
});

Deno.test("calibration: bad input is reported", () => {
  assert.throws(
    () => calibration({ yTrue: Y, probs: P, bins: 0 }),
    /bins must be a positive integer/,
  );
  assert.throws(
    () => calibration({ yTrue: [0, 5], probs: [[0.5, 0.5], [0.5, 0.5]] }),
    /label 1 is 5/,
  );
});
