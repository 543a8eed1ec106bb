import assert from "node:assert/strict";
import {
  accuracy,
  binaryMetrics,
  bootstrapInterval,
  cohenKappa,
  confusionMatrix,
  crossEntropy,
  evaluationReport,
  macroF1,
  normalizeRows,
  normalQuantile,
  perClassMetrics,
  wilsonInterval,
} from "./metrics.ts";
import { TEN_PREDICTIONS } from "../../tests/fixtures.ts";

function close(
  actual: number | null | undefined,
  expected: number,
  tol = 1e-12,
) {
  assert.ok(
    typeof actual === "number" && Math.abs(actual - expected) <= tol,
    `expected ${expected}, got ${actual}`,
  );
}

// Ten predictions over four classes. Predicted classes (argmax):
//   [0, 0, 2, 0, 3, 2, 2, 2, 3, 3]; 7 of 10 right.
// Meningioma (1) is never predicted: its precision is 0 by convention.
// Reference values from scikit-learn 1.9.1 / statsmodels 0.15.0 (see each test).
const { classes: CLASSES, probs: P, yTrue: Y } = TEN_PREDICTIONS;
const CM = [[2, 0, 1, 0], [1, 0, 0, 1], [0, 0, 3, 0], [0, 0, 0, 2]];

Deno.test("metrics: accuracy and confusion matrix from rows, flat arrays and labels", () => {
  assert.equal(accuracy({ yTrue: Y, probs: P }), 0.7);
  assert.equal(
    accuracy({
      yTrue: Int32Array.from(Y),
      probs: Float32Array.from(P.flat()),
      numClasses: 4,
    }),
    0.7,
  );
  assert.equal(accuracy({ yTrue: [0, 1, 1], yPred: [0, 1, 0] }), 2 / 3);
  assert.deepEqual(confusionMatrix({ yTrue: Y, probs: P }), CM);
  assert.deepEqual(
    confusionMatrix({
      yTrue: [0, 0, 1, 2],
      yPred: [0, 1, 1, 1],
      numClasses: 3,
    }),
    [[1, 1, 0], [0, 1, 0], [0, 1, 0]],
  );
  // numClasses from the labels when not given; a class may be absent.
  assert.deepEqual(confusionMatrix({ yTrue: [0, 2], yPred: [2, 2] }), [
    [0, 0, 1],
    [0, 0, 0],
    [0, 0, 1],
  ]);
  assert.ok(Number.isNaN(accuracy({ yTrue: [], yPred: [] })));
});

Deno.test("metrics: row-normalised confusion matrix, empty rows are zeros", () => {
  assert.deepEqual(normalizeRows([[3, 1], [0, 0]]), [[0.75, 0.25], [0, 0]]);
  const n = normalizeRows(CM);
  assert.deepEqual(n[2], [0, 0, 1, 0]);
  assert.deepEqual(n[0], [2 / 3, 0, 1 / 3, 0]);
  assert.ok(n.flat().every(Number.isFinite));
});

Deno.test("metrics: cross-entropy, clipped at 1e-7", () => {
  // -mean(log([.7,.5,.2,.3,.3,.8,.9,.4,.7,.4])) = 0.7584966120243729
  close(crossEntropy({ yTrue: Y, probs: P }), 0.7584966120243729);
  close(
    crossEntropy({ yTrue: [0, 1], probs: [[0.5, 0.5], [0.5, 0.5]] }),
    Math.LN2,
  );
  // A confident mistake (p = 0) costs -log(1e-7), not infinity.
  close(crossEntropy({ yTrue: [1], probs: [[1, 0]] }), -Math.log(1e-7), 1e-9);
  // A perfect prediction costs -log(1 - 1e-7), not exactly 0.
  close(crossEntropy({ yTrue: [0], probs: [[1, 0]] }), -Math.log(1 - 1e-7));
});

Deno.test("metrics: per-class precision, recall, F1 with a never-predicted class", () => {
  // sklearn precision_recall_fscore_support(y, p, labels=range(4),
  // zero_division=np.nan): meningioma is never predicted, so its precision is
  // not defined (NaN) and it drops out of the precision averages.
  const r = perClassMetrics({ confusion: CM, classes: CLASSES });
  const expected = [
    { class: "glioma", precision: 2 / 3, recall: 2 / 3, f1: 2 / 3, support: 3 },
    { class: "meningioma", precision: NaN, recall: 0, f1: 0, support: 2 },
    { class: "notumor", precision: 0.75, recall: 1, f1: 6 / 7, support: 3 },
    { class: "pituitary", precision: 2 / 3, recall: 1, f1: 0.8, support: 2 },
  ];
  r.perClass.forEach((c, i) => {
    assert.equal(c.class, expected[i].class);
    assert.equal(c.support, expected[i].support);
    if (Number.isNaN(expected[i].precision)) {
      assert.ok(Number.isNaN(c.precision));
    } else close(c.precision, expected[i].precision);
    close(c.recall, expected[i].recall);
    close(c.f1, expected[i].f1);
  });
  close(r.macro.precision, 0.6944444444444443);
  close(r.macro.recall, 0.6666666666666666);
  close(r.macro.f1, 0.5809523809523809);
  close(r.weighted.precision, 0.6979166666666666);
  close(r.weighted.recall, 0.7);
  close(r.weighted.f1, 0.6171428571428571);
  close(macroF1(CM), 0.5809523809523809);
  // A class absent everywhere has no defined precision, recall or F1, and
  // drops out of the averages (sklearn's zero_division=np.nan).
  const absent = perClassMetrics({
    confusion: [[1, 0, 0], [0, 1, 0], [0, 0, 0]],
  });
  assert.deepEqual(absent.perClass[2], {
    class: "class 2",
    precision: NaN,
    recall: NaN,
    f1: NaN,
    support: 0,
  });
  close(absent.macro.f1, 1);
  close(absent.weighted.f1, 1);
  // An average over no defined value is not defined.
  const empty = perClassMetrics({ confusion: [[0, 0], [0, 0]] });
  assert.ok(Number.isNaN(empty.macro.f1));
  assert.ok(Number.isNaN(empty.weighted.recall));
  assert.throws(
    () => perClassMetrics({ confusion: CM, classes: ["a"] }),
    /1 class names for a 4×4/,
  );
  assert.throws(() => perClassMetrics({ confusion: [[1, 2]] }), /not square/);
});

Deno.test("metrics: Cohen's kappa", () => {
  close(cohenKappa(CM), 0.5890410958904109); // sklearn cohen_kappa_score
  close(cohenKappa([[2, 0], [1, 1]]), 0.5);
  assert.equal(cohenKappa([[3, 0], [0, 5]]), 1);
  assert.ok(Number.isNaN(cohenKappa([[0, 0], [0, 0]])));
});

Deno.test("metrics: the perfect case", () => {
  const yTrue = [0, 1, 2, 3];
  const probs = [
    [0.97, 0.01, 0.01, 0.01],
    [0.01, 0.97, 0.01, 0.01],
    [0.01, 0.01, 0.97, 0.01],
    [0.01, 0.01, 0.01, 0.97],
  ];
  const r = evaluationReport({
    yTrue,
    probs,
    classes: CLASSES,
    bootstrap: false,
  });
  assert.equal(r.accuracy, 1);
  assert.equal(r.cohenKappa, 1);
  assert.deepEqual(r.confusionMatrix, [
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 1, 0],
    [0, 0, 0, 1],
  ]);
  for (const c of r.perClass) {
    assert.deepEqual([c.precision, c.recall, c.f1, c.support, c.auc], [
      1,
      1,
      1,
      1,
      1,
    ]);
  }
  assert.deepEqual(r.macro, { precision: 1, recall: 1, f1: 1, auc: 1 });
  assert.equal(r.binary?.sensitivity, 1);
  assert.equal(r.binary?.specificity, 1);
  assert.equal(r.binary?.auc, 1);
  close(r.loss, -Math.log(0.97));
  close(r.calibration.ece, 0.03);
  assert.equal(r.macroF1Ci, null);
});

Deno.test("metrics: the all-wrong case", () => {
  const yTrue = [0, 1, 2];
  const yPred = [1, 2, 0];
  assert.equal(accuracy({ yTrue, yPred }), 0);
  const cm = confusionMatrix({ yTrue, yPred });
  const r = perClassMetrics({ confusion: cm });
  assert.ok(
    r.perClass.every((c) => c.precision === 0 && c.recall === 0 && c.f1 === 0),
  );
  assert.deepEqual(r.macro, { precision: 0, recall: 0, f1: 0 });
  close(cohenKappa(cm), -0.5); // sklearn: -0.5
  const report = evaluationReport({
    yTrue,
    probs: [[0.1, 0.9, 0], [0, 0.1, 0.9], [0.9, 0, 0.1]],
    classes: ["glioma", "notumor", "pituitary"],
    bootstrap: { samples: 200, seed: 1 },
  });
  assert.equal(report.accuracy, 0);
  // Every resample is all wrong too.
  assert.deepEqual(report.macroF1Ci, {
    lower: 0,
    upper: 0,
    samples: 200,
    seed: 1,
  });
  // Tumours: glioma (→ notumor, missed) and pituitary (→ glioma, found).
  assert.equal(report.binary?.tp, 1);
  assert.equal(report.binary?.fn, 1);
  assert.equal(report.binary?.fp, 1); // the notumor scan called pituitary
  assert.equal(report.binary?.tn, 0);
  assert.equal(report.binary?.specificity, 0);
  assert.equal(report.binary?.npv, 0); // the one "no tumour" call was wrong
});

Deno.test("metrics: a single-class input", () => {
  // Every scan is notumor and is called notumor.
  const yTrue = [2, 2, 2];
  const probs = [[0.1, 0.1, 0.7, 0.1], [0, 0, 1, 0], [0.2, 0.1, 0.6, 0.1]];
  const r = evaluationReport({ yTrue, probs, classes: CLASSES });
  assert.equal(r.accuracy, 1);
  assert.equal(r.cohenKappa, null); // chance agreement is total: undefined
  assert.ok(r.perClass.every((c) => c.auc === null)); // no class has both sides
  assert.equal(r.macro.auc, null);
  assert.equal(r.perClass[2].precision, 1);
  // Never predicted and no support: nothing is defined, not 0.
  assert.deepEqual(
    [r.perClass[0].precision, r.perClass[0].recall, r.perClass[0].f1],
    [null, null, null],
  );
  close(r.macro.f1!, 1); // over the one class that is there
  close(r.weighted.f1!, 1);
  const b = r.binary!;
  assert.equal(b.positives, 0);
  assert.equal(b.negatives, 3);
  assert.equal(b.sensitivity, null); // no tumours: not defined ...
  assert.deepEqual(b.sensitivityCi, { lower: 0, upper: 1 }); // ... with no information
  assert.equal(b.specificity, 1);
  assert.equal(b.auc, null);
  // Wilson for 3 of 3 (statsmodels): (0.43850296824495444, 1.0)
  close(b.specificityCi.lower, 0.43850296824495444, 1e-8);
  assert.equal(b.specificityCi.upper, 1);
  // JSON keeps the nulls.
  const json = JSON.parse(JSON.stringify(r));
  assert.equal(json.cohenKappa, null);
  assert.equal(json.macro.auc, null);
  assert.equal(json.binary.sensitivity, null);
  assert.equal(json.perClass[0].precision, null);
});

Deno.test("metrics: Wilson interval (values from statsmodels)", () => {
  const cases: [number, number, number, number][] = [
    [7, 10, 0.39677814746114537, 0.8922087325936989],
    [6, 7, 0.4868721707256809, 0.9743203756552563],
    [8, 10, 0.49016247153664183, 0.9433178485456247],
    [0, 5, 0, 0.43448246478317487],
  ];
  for (const [s, n, lo, hi] of cases) {
    const ci = wilsonInterval({ successes: s, total: n });
    close(ci.lower, lo, 1e-8);
    close(ci.upper, hi, 1e-8);
  }
  assert.deepEqual(wilsonInterval({ successes: 0, total: 0 }), {
    lower: 0,
    upper: 1,
  });
  const wide = wilsonInterval({ successes: 8, total: 10, confidence: 0.99 });
  assert.ok(wide.lower < 0.49 && wide.upper > 0.944);
  assert.throws(
    () => wilsonInterval({ successes: 3, total: 2 }),
    /0 <= successes <= total/,
  );
  assert.throws(
    () => wilsonInterval({ successes: 1, total: 2, confidence: 95 }),
    /confidence/,
  );
});

Deno.test("metrics: normal quantile (values from scipy)", () => {
  close(normalQuantile(0.975), 1.959963984540054, 1e-8);
  close(normalQuantile(0.995), 2.5758293035489004, 1e-8);
  close(normalQuantile(0.01), -2.3263478740408408, 1e-8);
  close(normalQuantile(0.9), 1.2815515655446004, 1e-8);
  assert.equal(normalQuantile(0.5), 0);
  assert.throws(() => normalQuantile(2), /p must be in/);
});

Deno.test("metrics: binary tumour view, argmax and threshold decisions", () => {
  // Tumours: scans 0,1,2,3,4,8,9; scan 2 (glioma) is called notumor: one miss.
  const b = binaryMetrics({ yTrue: Y, probs: P, classes: CLASSES });
  assert.equal(b.negativeClass, "notumor");
  assert.deepEqual(b.positiveClasses, ["glioma", "meningioma", "pituitary"]);
  assert.deepEqual(
    [b.positives, b.negatives, b.tp, b.fn, b.tn, b.fp],
    [7, 3, 6, 1, 3, 0],
  );
  close(b.sensitivity, 6 / 7);
  assert.equal(b.specificity, 1);
  assert.equal(b.ppv, 1);
  close(b.npv, 0.75);
  close(b.auc, 20 / 21); // sklearn roc_auc_score(y != 2, 1 - P[:, 2])
  close(b.sensitivityCi.lower, 0.4868721707256809, 1e-8);
  close(b.sensitivityCi.upper, 0.9743203756552563, 1e-8);
  close(b.specificityCi.lower, 0.43850296824495444, 1e-8);
  assert.equal(b.decision, "argmax");
  // Threshold on P(tumour) = 1 - P(notumor) >= 0.5: scan 7 (P(tumour) 0.6)
  // becomes a false positive, scan 2 (0.4) stays a miss.
  const t = binaryMetrics({
    yTrue: Y,
    probs: P,
    classes: CLASSES,
    threshold: 0.5,
  });
  assert.deepEqual([t.tp, t.fn, t.tn, t.fp], [6, 1, 2, 1]);
  assert.deepEqual(t.decision, { threshold: 0.5 });
  close(t.specificity, 2 / 3);
  // Another negative class.
  const g = binaryMetrics({
    yTrue: Y,
    probs: P,
    classes: CLASSES,
    negativeClass: "glioma",
  });
  assert.equal(g.positives, 7);
  assert.throws(
    () =>
      binaryMetrics({
        yTrue: Y,
        probs: P,
        classes: CLASSES,
        negativeClass: "none",
      }),
    /negative class "none" is not one of the classes/,
  );
});

Deno.test("metrics: the seeded bootstrap interval of macro-F1", () => {
  const n = 200;
  const yTrue = Array.from({ length: n }, (_, i) => i % 4);
  // Every fifth prediction is shifted to the next class: 80% accuracy.
  const yPred = yTrue.map((y, i) => (i % 5 === 0 ? (y + 1) % 4 : y));
  const a = bootstrapInterval({ yTrue, yPred, samples: 300, seed: 3 });
  const b = bootstrapInterval({ yTrue, yPred, samples: 300, seed: 3 });
  const c = bootstrapInterval({ yTrue, yPred, samples: 300, seed: 4 });
  assert.deepEqual(a, b);
  assert.notDeepEqual([a.lower, a.upper], [c.lower, c.upper]);
  close(a.estimate, macroF1(confusionMatrix({ yTrue, yPred })));
  assert.ok(a.lower < a.estimate && a.estimate < a.upper, JSON.stringify(a));
  assert.ok(a.upper - a.lower > 0.03 && a.upper - a.lower < 0.3);
  // Ten times the data, a narrower interval (about 1/sqrt(10) as wide).
  const big = bootstrapInterval({
    yTrue: Array.from({ length: 10 }, () => yTrue).flat(),
    yPred: Array.from({ length: 10 }, () => yPred).flat(),
    samples: 300,
    seed: 3,
  });
  assert.ok(big.upper - big.lower < (a.upper - a.lower) / 2);
  // A perfect classifier: every resample is perfect.
  const perfect = bootstrapInterval({ yTrue, yPred: yTrue, samples: 100 });
  assert.deepEqual([perfect.lower, perfect.upper, perfect.estimate], [1, 1, 1]);
  assert.equal(perfect.seed, 42);
  // Any statistic of the confusion matrix.
  const acc = bootstrapInterval({
    yTrue,
    yPred,
    samples: 200,
    statistic: (m) => m.reduce((s, r, i) => s + r[i], 0) / n,
  });
  close(acc.estimate, 0.8);
  assert.throws(
    () => bootstrapInterval({ yTrue, yPred, samples: 0 }),
    /samples/,
  );
});

Deno.test("metrics: evaluationReport gathers everything under documented keys", () => {
  const r = evaluationReport({
    yTrue: Y,
    probs: Float32Array.from(P.flat()),
    classes: CLASSES,
  });
  assert.deepEqual(Object.keys(r), [
    "n",
    "classes",
    "confidence",
    "accuracy",
    "accuracyCi",
    "loss",
    "cohenKappa",
    "confusionMatrix",
    "confusionMatrixNormalized",
    "perClass",
    "macro",
    "weighted",
    "macroF1Ci",
    "binary",
    "calibration",
  ]);
  assert.equal(r.n, 10);
  assert.equal(r.accuracy, 0.7);
  close(r.accuracyCi.lower, 0.39677814746114537, 1e-8);
  close(r.accuracyCi.upper, 0.8922087325936989, 1e-8);
  close(r.loss, 0.7584966120243729, 1e-6); // float32 input
  close(r.cohenKappa, 0.5890410958904109);
  assert.deepEqual(r.confusionMatrix, CM);
  assert.deepEqual(r.confusionMatrixNormalized[1], [0.5, 0, 0, 0.5]);
  assert.deepEqual(Object.keys(r.perClass[0]), [
    "class",
    "precision",
    "recall",
    "f1",
    "support",
    "auc",
  ]);
  close(r.perClass[3].auc, 0.96875);
  close(r.macro.auc, 0.9386160714285715, 1e-9);
  close(r.macro.f1, 0.5809523809523809);
  close(r.weighted.f1, 0.6171428571428571);
  assert.equal(r.macroF1Ci?.samples, 1000);
  assert.equal(r.macroF1Ci?.seed, 42);
  assert.ok(
    r.macroF1Ci!.lower <= r.macro.f1! && r.macro.f1! <= r.macroF1Ci!.upper,
  );
  close(r.binary?.sensitivity, 6 / 7);
  close(r.calibration.ece, 0.34, 1e-6);
  assert.equal(r.calibration.bins, 15);
  assert.equal(r.calibration.reliability[0].accuracy, null);
  // The round trip through JSON loses nothing.
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
  // Same input, same report (the bootstrap is seeded).
  assert.deepEqual(
    evaluationReport({ yTrue: Y, probs: P, classes: CLASSES }).macroF1Ci,
    evaluationReport({ yTrue: Y, probs: P, classes: CLASSES }).macroF1Ci,
  );
});

Deno.test("metrics: evaluationReport's negative class and bad input", () => {
  const names = ["cat", "dog"];
  const r = evaluationReport({
    yTrue: [0, 1],
    probs: [[0.9, 0.1], [0.2, 0.8]],
    classes: names,
  });
  assert.equal(r.binary, null); // no "notumor": no binary view
  const withNeg = evaluationReport({
    yTrue: [0, 1],
    probs: [[0.9, 0.1], [0.2, 0.8]],
    classes: names,
    negativeClass: "cat",
  });
  assert.equal(withNeg.binary?.sensitivity, 1);
  assert.throws(
    () =>
      evaluationReport({
        yTrue: [0],
        probs: [[0.9, 0.1]],
        classes: names,
        negativeClass: "cow",
      }),
    /negative class "cow"/,
  );
  assert.throws(
    () => evaluationReport({ yTrue: [], probs: [], classes: names }),
    /no predictions/,
  );
  assert.throws(
    () =>
      evaluationReport({ yTrue: [0, 1], probs: [[0.9, 0.1]], classes: names }),
    /2 labels for 1 predictions/,
  );
  assert.throws(
    () =>
      evaluationReport({
        yTrue: [0],
        probs: [[0.5, 0.3, 0.2]],
        classes: names,
      }),
    /row 0 has 3 values, expected 2/,
  );
  assert.throws(
    () => accuracy({ yTrue: [0], probs: [[1, 0]], yPred: [0] }),
    /exactly one of probs and yPred/,
  );
  assert.throws(
    () => accuracy({ yTrue: [0], yPred: [2], numClasses: 2 }),
    /prediction 0 is 2/,
  );
});
