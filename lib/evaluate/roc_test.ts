import assert from "node:assert/strict";
import { rng } from "../core/random.ts";
import {
  binaryTumourRoc,
  oneVsRestRoc,
  predictedClasses,
  probabilityRows,
  rocAuc,
  rocCurve,
  trapezoid,
} from "./roc.ts";
import { TEN_PREDICTIONS } from "../../tests/fixtures.ts";

function close(actual: number, expected: number, tol = 1e-12) {
  assert.ok(
    Math.abs(actual - expected) <= tol,
    `expected ${expected}, got ${actual}`,
  );
}

Deno.test("roc: scikit-learn's documented example (AUC 0.75)", () => {
  // sklearn.metrics.roc_curve([0,0,1,1], [0.1,0.4,0.35,0.8], drop_intermediate=False)
  const roc = rocCurve({ yTrue: [0, 0, 1, 1], scores: [0.1, 0.4, 0.35, 0.8] });
  assert.deepEqual(roc.fpr, [0, 0, 0.5, 0.5, 1]);
  assert.deepEqual(roc.tpr, [0, 0.5, 0.5, 1, 1]);
  assert.deepEqual(roc.thresholds, [Infinity, 0.8, 0.4, 0.35, 0.1]);
  assert.equal(roc.auc, 0.75);
  assert.equal(roc.positives, 2);
  assert.equal(roc.negatives, 2);
  assert.equal(
    rocAuc({
      yTrue: [false, false, true, true],
      scores: [0.1, 0.4, 0.35, 0.8],
    }),
    0.75,
  );
});

Deno.test("roc: tied scores make one diagonal step worth one half", () => {
  // A positive and a negative share 0.5: scikit-learn gives
  // fpr [0, 0, 0.5, 1], tpr [0, 0.5, 1, 1], AUC 0.875 (= 3.5 / 4 pairs).
  const roc = rocCurve({ yTrue: [0, 1, 0, 1], scores: [0.5, 0.5, 0.2, 0.8] });
  assert.deepEqual(roc.fpr, [0, 0, 0.5, 1]);
  assert.deepEqual(roc.tpr, [0, 0.5, 1, 1]);
  assert.deepEqual(roc.thresholds, [Infinity, 0.8, 0.5, 0.2]);
  assert.equal(roc.auc, 0.875);
  // All scores equal: a single diagonal, chance.
  assert.equal(rocAuc({ yTrue: [0, 1, 1, 0], scores: [3, 3, 3, 3] }), 0.5);
  // The order of tied examples does not matter.
  assert.equal(
    rocAuc({ yTrue: [1, 0, 0, 1], scores: [0.5, 0.5, 0.2, 0.8] }),
    0.875,
  );
});

Deno.test("roc: perfect, inverted and one-sided inputs", () => {
  assert.equal(rocAuc({ yTrue: [0, 0, 1], scores: [0.1, 0.2, 0.9] }), 1);
  assert.equal(rocAuc({ yTrue: [0, 0, 1], scores: [0.9, 0.8, 0.1] }), 0);
  const onlyPositives = rocCurve({ yTrue: [1, 1], scores: [0.3, 0.6] });
  assert.ok(Number.isNaN(onlyPositives.auc));
  assert.equal(onlyPositives.negatives, 0);
  assert.ok(onlyPositives.fpr.every(Number.isNaN));
  assert.deepEqual(onlyPositives.tpr, [0, 0.5, 1]);
  assert.ok(Number.isNaN(rocAuc({ yTrue: [0, 0], scores: [0.3, 0.6] })));
  assert.ok(Number.isNaN(rocAuc({ yTrue: [], scores: [] })));
  assert.throws(() => rocCurve({ yTrue: [0], scores: [0.1, 0.2] }), /1 labels/);
  assert.throws(() => rocCurve({ yTrue: [0, 1], scores: [0.1, NaN] }), /NaN/);
});

Deno.test("roc: AUC equals the Mann–Whitney probability on random tied data", () => {
  const r = rng(11);
  for (let trial = 0; trial < 20; trial++) {
    const n = r.int(2, 60);
    const y = Array.from({ length: n }, () => r.int(0, 1));
    y[0] = 0;
    y[1] = 1;
    // Scores on a coarse grid, so ties are common.
    const s = Array.from({ length: n }, () => r.int(0, 5) / 5);
    let wins = 0;
    let pairs = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        if (y[i] === 1 && y[j] === 0) {
          pairs++;
          wins += s[i] > s[j] ? 1 : s[i] === s[j] ? 0.5 : 0;
        }
      }
    }
    close(rocAuc({ yTrue: y, scores: s }), wins / pairs);
  }
});

Deno.test("roc: trapezoid", () => {
  assert.equal(trapezoid([0, 0.5, 1], [0, 1, 1]), 0.75);
  assert.equal(trapezoid([], []), 0);
  assert.throws(() => trapezoid([0], [0, 1]), /1 x values/);
});

// Ten predictions over four classes; meningioma is never predicted.
const { classes: CLASSES, probs: P, yTrue: Y } = TEN_PREDICTIONS;

Deno.test("roc: one-vs-rest AUCs and their macro mean (values from scikit-learn)", () => {
  const roc = oneVsRestRoc({ yTrue: Y, probs: P, classes: CLASSES });
  assert.deepEqual(roc.classes, CLASSES);
  // glioma: positives {.7,.5,.2}, negatives {.6,.1,.1,.05,.3,.1,.2}: 17.5/21
  close(roc.curves[0].auc, 0.8333333333333334);
  close(roc.curves[1].auc, 1);
  close(roc.curves[2].auc, 20 / 21);
  close(roc.curves[3].auc, 0.96875);
  close(roc.macroAuc, 0.9386160714285715);
  // Flat Float64Array input gives the same.
  const flat = oneVsRestRoc({
    yTrue: Y,
    probs: Float64Array.from(P.flat()),
    numClasses: 4,
  });
  assert.deepEqual(flat.curves.map((c) => c.auc), roc.curves.map((c) => c.auc));
  assert.deepEqual(flat.classes, ["class 0", "class 1", "class 2", "class 3"]);
});

Deno.test("roc: a class absent from the labels is left out of the macro AUC", () => {
  const roc = oneVsRestRoc({
    yTrue: [0, 0, 1],
    probs: [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1]],
  });
  assert.ok(Number.isNaN(roc.curves[2].auc));
  assert.equal(roc.curves[0].auc, 1);
  assert.equal(roc.curves[1].auc, 1);
  assert.equal(roc.macroAuc, 1);
  const single = oneVsRestRoc({
    yTrue: [1, 1],
    probs: [[0.2, 0.8], [0.4, 0.6]],
  });
  assert.ok(Number.isNaN(single.macroAuc));
});

Deno.test("roc: binary tumour curve uses 1 - P(notumor)", () => {
  const roc = binaryTumourRoc({ yTrue: Y, probs: P, classes: CLASSES });
  assert.equal(roc.negativeClass, "notumor");
  assert.deepEqual(roc.positiveClasses, ["glioma", "meningioma", "pituitary"]);
  assert.equal(roc.positives, 7);
  assert.equal(roc.negatives, 3);
  close(roc.auc, 20 / 21); // one of 21 pairs (0.4 vs 0.6) is ranked wrongly
  // Another negative class.
  const other = binaryTumourRoc({
    yTrue: Y,
    probs: P,
    classes: CLASSES,
    negativeClass: "glioma",
  });
  // Flipping both the labels and the scores (1 - p) keeps the AUC: the same as
  // glioma's one-vs-rest AUC.
  close(other.auc, 0.8333333333333334);
  assert.deepEqual(other.positiveClasses, [
    "meningioma",
    "notumor",
    "pituitary",
  ]);
  assert.throws(
    () =>
      binaryTumourRoc({
        yTrue: Y,
        probs: P,
        classes: CLASSES,
        negativeClass: "healthy",
      }),
    /negative class "healthy" is not one of the classes/,
  );
  assert.throws(
    () => binaryTumourRoc({ yTrue: Y, probs: P, classes: CLASSES.slice(0, 3) }),
    /3 class names for 4 probability columns/,
  );
});

Deno.test("roc: probability helpers validate their input", () => {
  assert.deepEqual(
    probabilityRows(new Float32Array([0.25, 0.75, 1, 0]), 2),
    [[0.25, 0.75], [1, 0]],
  );
  assert.throws(() => probabilityRows(new Float32Array(4)), /needs numClasses/);
  assert.throws(
    () => probabilityRows(new Float32Array(5), 2),
    /5 values are not a whole number of rows of 2/,
  );
  assert.throws(() => probabilityRows([[0.5, 0.5], [1]]), /row 1 has 1 values/);
  assert.throws(() => probabilityRows([[0.5, NaN]]), /non-finite/);
  assert.throws(() => probabilityRows([[1]]), /at least 2 classes/);
  assert.deepEqual(
    Array.from(predictedClasses([[0.1, 0.9], [0.5, 0.5], [0.2, 0.2]])),
    [1, 0, 0],
  );
  assert.throws(
    () => oneVsRestRoc({ yTrue: [0, 3], probs: [[0.5, 0.5], [0.5, 0.5]] }),
    /label 1 is 3, not a class index in \[0, 2\)/,
  );
  assert.throws(
    () => oneVsRestRoc({ yTrue: [0], probs: [[0.5, 0.5], [0.5, 0.5]] }),
    /1 labels for 2 predictions/,
  );
});
