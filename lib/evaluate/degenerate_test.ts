import assert from "node:assert/strict";
import { evaluationReport } from "./metrics.ts";
import {
  CHANCE_MARGIN,
  degenerateReasons,
  isDegenerate,
} from "./degenerate.ts";

const CLASSES = ["glioma", "meningioma", "notumor", "pituitary"];

Deno.test("degenerateReasons: a model that never predicts notumor, from its report", () => {
  // Two scans per class; the notumor scans are called glioma and pituitary.
  const yTrue = [0, 0, 1, 1, 2, 2, 3, 3];
  const probs = [
    [0.7, 0.1, 0.1, 0.1],
    [0.7, 0.1, 0.1, 0.1],
    [0.1, 0.7, 0.1, 0.1],
    [0.1, 0.7, 0.1, 0.1],
    [0.4, 0.1, 0.3, 0.2],
    [0.1, 0.2, 0.3, 0.4],
    [0.1, 0.1, 0.1, 0.7],
    [0.1, 0.1, 0.1, 0.7],
  ];
  const report = evaluationReport({ yTrue, probs, classes: CLASSES });
  assert.equal(report.accuracy, 0.75); // far from chance ...
  assert.deepEqual(degenerateReasons(report), [
    "never predicts notumor, though 2 of the 8 scans are notumor",
  ]); // ... but one class is never predicted
  assert.equal(isDegenerate(report), true);
  // What made the old views read "sensitivity 100%, NPV 0%": now undefined.
  assert.equal(report.binary?.sensitivity, 1);
  assert.equal(report.binary?.specificity, 0);
  assert.equal(report.binary?.npv, null);
  assert.equal(report.perClass[2].precision, null);
});

Deno.test("degenerateReasons: every class it never predicts is named, in class order", () => {
  const reasons = degenerateReasons({
    classes: CLASSES,
    confusionMatrix: [[5, 0, 0, 0], [5, 0, 0, 0], [5, 0, 0, 0], [5, 0, 0, 0]],
  });
  assert.deepEqual(reasons, [
    "never predicts meningioma, though 5 of the 20 scans are meningioma",
    "never predicts notumor, though 5 of the 20 scans are notumor",
    "never predicts pituitary, though 5 of the 20 scans are pituitary",
    "accuracy 25.0% is within 5 points of chance (25.0% with 4 classes)",
  ]);
});

Deno.test("degenerateReasons: a class absent from the truth does not count", () => {
  // No meningioma scan and none predicted: nothing to judge there.
  assert.deepEqual(
    degenerateReasons({
      classes: CLASSES,
      confusionMatrix: [[4, 0, 0, 0], [0, 0, 0, 0], [0, 0, 4, 0], [0, 0, 1, 3]],
    }),
    [],
  );
});

Deno.test("degenerateReasons: the chance margin is strict below, inclusive at the bar", () => {
  assert.equal(CHANCE_MARGIN, 0.05);
  const classes = ["glioma", "notumor"];
  // 11 of 21 right = 52.4%, under 50% + 5 points.
  assert.deepEqual(
    degenerateReasons({ classes, confusionMatrix: [[5, 5], [5, 6]] }),
    ["accuracy 52.4% is within 5 points of chance (50.0% with 2 classes)"],
  );
  // 55 of 100 right = exactly the bar: not degenerate.
  assert.deepEqual(
    degenerateReasons({ classes, confusionMatrix: [[30, 20], [25, 25]] }),
    [],
  );
  // Worse than chance is degenerate too.
  assert.equal(
    isDegenerate({ classes, confusionMatrix: [[2, 8], [8, 2]] }),
    true,
  );
  // A wider margin catches more.
  assert.deepEqual(
    degenerateReasons(
      { classes, confusionMatrix: [[8, 2], [2, 8]] },
      { chanceMargin: 0.35 },
    ),
    ["accuracy 80.0% is within 35 points of chance (50.0% with 2 classes)"],
  );
  assert.throws(
    () =>
      degenerateReasons({ classes, confusionMatrix: [[1, 0], [0, 1]] }, {
        chanceMargin: 1,
      }),
    /chanceMargin must be in \[0, 1\)/,
  );
});

Deno.test("degenerateReasons: nothing evaluated is degenerate", () => {
  assert.deepEqual(
    degenerateReasons({
      classes: ["glioma", "notumor"],
      confusionMatrix: [[0, 0], [0, 0]],
    }),
    ["no scans were evaluated"],
  );
});
