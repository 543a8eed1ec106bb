import assert from "node:assert/strict";
import { TEN_PREDICTIONS } from "../../tests/fixtures.ts";
import { JUPYTER_DISPLAY } from "../core/display.ts";
import { type EvaluationReport, evaluationReport } from "./metrics.ts";
import {
  CLINICAL_TARGETS,
  formatRanking,
  rankRuns,
  scoreTargets,
  targetsTable,
} from "./targets.ts";

const CLASSES = ["glioma", "meningioma", "notumor", "pituitary"];

/**
 * A report of `n` scans per class where `wrong[c]` scans of class `c` are
 * called class `wrongTo[c]` (default glioma → meningioma, meningioma →
 * pituitary, notumor → pituitary, pituitary → glioma: no tumour is called
 * notumor) and every call has probability `p`.
 */
function report(
  options: { n: number; wrong: number[]; wrongTo?: number[]; p?: number },
): EvaluationReport {
  const p = options.p ?? 0.99;
  const wrongTo = options.wrongTo ?? [1, 3, 3, 0];
  const yTrue: number[] = [];
  const probs: number[][] = [];
  for (let c = 0; c < 4; c++) {
    for (let i = 0; i < options.n; i++) {
      yTrue.push(c);
      const called = i < options.wrong[c] ? wrongTo[c] : c;
      probs.push([0, 1, 2, 3].map((k) => k === called ? p : (1 - p) / 3));
    }
  }
  return evaluationReport({ yTrue, probs, classes: CLASSES });
}

Deno.test("scoreTargets: checks the six clinical targets against a report", () => {
  // 100 per class; 3 gliomas called meningioma, 7 meningiomas called notumor.
  const r = report({ n: 100, wrong: [3, 7, 0, 0], wrongTo: [1, 2, 3, 0] });
  const s = scoreTargets({ report: r });
  assert.deepEqual(s.results.map((t) => t.name), [
    "accuracy ≥ 97%",
    "macro-F1 ≥ 0.96",
    "glioma recall ≥ 94%",
    "meningioma recall ≥ 94%",
    "tumour sensitivity ≥ 99%",
    "ECE ≤ 0.03",
  ]);
  const byName = Object.fromEntries(s.results.map((t) => [t.name, t]));
  assert.equal(byName["accuracy ≥ 97%"].value, 0.975);
  assert.equal(byName["accuracy ≥ 97%"].met, true);
  assert.equal(byName["glioma recall ≥ 94%"].value, 0.97);
  assert.equal(byName["meningioma recall ≥ 94%"].value, 0.93);
  assert.equal(byName["meningioma recall ≥ 94%"].met, false);
  // 7 of 300 tumours called notumor: sensitivity 293/300 = 97.7%
  assert.ok(
    Math.abs(byName["tumour sensitivity ≥ 99%"].value! - 293 / 300) < 1e-12,
  );
  assert.equal(byName["tumour sensitivity ≥ 99%"].met, false);
  // confidence 0.99 everywhere, accuracy 0.975: ECE 0.015
  assert.ok(Math.abs(byName["ECE ≤ 0.03"].value! - 0.015) < 1e-6);
  assert.equal(byName["ECE ≤ 0.03"].met, true);
  assert.equal(s.met, 4);
  assert.equal(s.weakestRecall, 0.93);
  assert.equal(s.loss, r.loss);
  // a bound is inclusive: exactly 94% meets "≥ 94%"
  const edge = scoreTargets({ report: report({ n: 50, wrong: [0, 3, 0, 0] }) });
  assert.equal(edge.results[3].value, 0.94);
  assert.equal(edge.results[3].met, true);
});

Deno.test("scoreTargets: an undefined metric is not met; custom targets and focus classes", () => {
  // no notumor class: no binary view; no meningioma: no recall
  const r = evaluationReport({
    yTrue: [0, 1],
    probs: [[0.9, 0.1], [0.2, 0.8]],
    classes: ["glioma", "pituitary"],
  });
  const s = scoreTargets({ report: r });
  assert.equal(s.results[3].value, null);
  assert.equal(s.results[3].met, false);
  assert.equal(s.results[4].value, null);
  assert.equal(s.results[4].met, false);
  assert.equal(s.weakestRecall, 1); // glioma only
  const custom = scoreTargets({
    report: r,
    targets: [{ name: "loss ≤ 0.1", value: (x) => x.loss, max: 0.1 }],
    focusClasses: ["pituitary", "nothing"],
  });
  assert.equal(custom.results.length, 1);
  assert.equal(custom.met, 0); // loss is (−ln 0.9 − ln 0.8) / 2 ≈ 0.164
  assert.equal(custom.results[0].percent, false);
  const text = formatRanking(rankRuns({
    candidates: [{ name: "r", report: r }],
    targets: [{ name: "loss ≤ 0.1", value: (x) => x.loss, max: 0.1 }],
  }));
  assert.match(text, / {2}loss 0\.164$/); // three decimals, not a percentage
  assert.match(
    formatRanking(rankRuns({ candidates: [{ name: "r", report: r }] })),
    /meningioma —,/,
  );
  assert.equal(custom.weakestRecall, 1);
  assert.equal(
    scoreTargets({ report: r, focusClasses: ["absent"] }).weakestRecall,
    null,
  );
});

Deno.test("rankRuns: targets met first, then the weakest focus recall, then the loss", () => {
  const fewer = report({ n: 100, wrong: [0, 8, 0, 0] }); // meningioma 92%
  const weakGlioma = report({ n: 100, wrong: [5, 0, 0, 0] }); // glioma 95%
  const weakMen = report({ n: 100, wrong: [0, 4, 0, 0], p: 0.99 }); // 96%
  const weakMenLoose = report({ n: 100, wrong: [0, 4, 0, 0], p: 0.985 });
  assert.ok(weakMenLoose.loss > weakMen.loss);
  const ranked = rankRuns({
    candidates: [
      { name: "fewer", report: fewer },
      { name: "weakGlioma", report: weakGlioma },
      { name: "weakMenLoose", report: weakMenLoose },
      { name: "weakMen", report: weakMen },
    ],
  });
  assert.deepEqual(ranked.map((r) => r.name), [
    "weakMen",
    "weakMenLoose",
    "weakGlioma",
    "fewer",
  ]);
  assert.deepEqual(ranked.map((r) => r.rank), [1, 2, 3, 4]);
  assert.ok(ranked[0].met > ranked[3].met);
  // equal on all three keys: the given order stands
  const tie = rankRuns({
    candidates: [{ name: "x", report: weakMen }, {
      name: "y",
      report: weakMen,
    }],
  });
  assert.deepEqual(tie.map((r) => r.name), ["x", "y"]);
  const text = formatRanking(ranked);
  assert.match(
    text.split("\n")[1],
    /^1 +weakMen +6\/6 +96\.00 +0\.\d{4} +accuracy 99\.00\*/,
  );
  assert.match(text, /meningioma 92\.00,/);
  assert.equal(text.split("\n").length, 5);
});

Deno.test("rankRuns: the ten-prediction fixture scores like its metrics say", () => {
  const r = evaluationReport(TEN_PREDICTIONS);
  const [only] = rankRuns({ candidates: [{ name: "ten", report: r }] });
  assert.equal(only.results[0].value, 0.7);
  assert.equal(only.results[3].value, 0); // meningioma is never predicted
  assert.equal(only.weakestRecall, 0);
  assert.equal(only.results.length, CLINICAL_TARGETS.length);
});

Deno.test("targetsTable: one row per target, its value and whether it is met", () => {
  const score = scoreTargets({
    report: report({ n: 100, wrong: [3, 7, 0, 0], wrongTo: [1, 2, 3, 0] }),
  });
  const t = targetsTable({ score });
  const bundle = t[JUPYTER_DISPLAY]() as Record<string, string>;
  const html = bundle["text/html"];
  assert.match(html, /4 of 6 targets met/);
  assert.match(html, /meningioma recall ≥ 94%<\/td><td>93\.00%<\/td><td>no</);
  assert.match(html, /macro-F1 ≥ 0\.96<\/td><td>0\.975<\/td><td>yes</);
  assert.match(html, /ECE ≤ 0\.03<\/td><td>0\.015<\/td><td>yes</);
  assert.match(bundle["text/plain"], /tumour sensitivity ≥ 99% +97\.67% +no/);
  const captioned = targetsTable({ score, caption: "validation" });
  assert.match(
    (captioned[JUPYTER_DISPLAY]() as Record<string, string>)["text/html"],
    /validation/,
  );
});

Deno.test("scoreTargets: a model that never calls notumor meets no target, it is not assessable", () => {
  // 100 per class; every notumor scan is called pituitary.
  const r = report({ n: 100, wrong: [0, 0, 100, 0] });
  assert.equal(r.binary?.sensitivity, 1); // every tumour "found" ...
  assert.equal(r.binary?.npv, null); // ... and no "no tumour" call at all
  const s = scoreTargets({ report: r });
  assert.equal(s.assessable, false);
  assert.deepEqual(s.degenerate, [
    "never predicts notumor, though 100 of the 400 scans are notumor",
  ]);
  assert.equal(s.met, 0);
  assert.ok(s.results.every((t) => t.status === "not assessable" && !t.met));
  const sensitivity = s.results.find((t) =>
    t.name === "tumour sensitivity ≥ 99%"
  )!;
  assert.equal(sensitivity.value, 1); // measured, shown, not counted
  // A model near chance is not assessable either, every class predicted.
  const near = report({
    n: 100,
    wrong: [72, 72, 72, 72],
    wrongTo: [1, 2, 3, 0],
  });
  assert.equal(near.accuracy, 0.28);
  const nearScore = scoreTargets({ report: near });
  assert.deepEqual(nearScore.degenerate, [
    "accuracy 28.0% is within 5 points of chance (25.0% with 4 classes)",
  ]);
  // The margin is an option: with 2 points 28% is assessable.
  assert.equal(
    scoreTargets({ report: near, chanceMargin: 0.02 }).assessable,
    true,
  );
});

Deno.test("rankRuns: a degenerate run ranks after every assessable one", () => {
  // Never calls notumor, yet its sensitivity and its glioma and meningioma
  // recalls are perfect: it would win on the weakest focus recall.
  const degenerate = report({ n: 100, wrong: [0, 0, 100, 0] });
  const honest = report({ n: 100, wrong: [0, 30, 0, 0], p: 0.6 });
  assert.equal(degenerate.binary?.sensitivity, 1);
  assert.equal(degenerate.perClass[1].recall, 1);
  assert.equal(honest.perClass[1].recall, 0.7);
  const ranked = rankRuns({
    candidates: [
      { name: "degenerate", report: degenerate },
      { name: "honest", report: honest },
    ],
  });
  assert.deepEqual(ranked.map((r) => [r.name, r.assessable]), [
    ["honest", true],
    ["degenerate", false],
  ]);
  const lines = formatRanking(ranked).split("\n");
  assert.match(lines[2], /^2 +degenerate +n\/a +100\.00 /);
  assert.match(
    lines[2],
    /\(not assessable: never predicts notumor, though 100 of the 400 scans are notumor\)$/,
  );
  assert.doesNotMatch(lines[2], /\*/); // nothing marked met
});

Deno.test("targetsTable: a degenerate model's targets read not assessable, the caption says why", () => {
  const score = scoreTargets({
    report: report({ n: 100, wrong: [0, 0, 100, 0] }),
  });
  const bundle = targetsTable({ score })[JUPYTER_DISPLAY]() as Record<
    string,
    string
  >;
  assert.match(
    bundle["text/html"],
    /<caption>targets not assessable, the model is degenerate: never predicts notumor, though 100 of the 400 scans are notumor<\/caption>/,
  );
  assert.match(
    bundle["text/html"],
    /tumour sensitivity ≥ 99%<\/td><td>100\.00%<\/td><td>not assessable</,
  );
  assert.doesNotMatch(bundle["text/plain"], / yes$/m);
});
