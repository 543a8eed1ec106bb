import assert from "node:assert/strict";
import { join } from "node:path";
import { saveTinyModel, TEN_PREDICTIONS } from "../tests/fixtures.ts";
import { evaluateModel, reportFromProbabilities } from "./evaluate.ts";
import type { EvaluationReport } from "./metrics.ts";
import { readModelMetadata, updateModelMetadata } from "./saved_model.ts";
import {
  formatRanking,
  ISSUE_7_TARGETS,
  rankRuns,
  scoreTargets,
  selectRun,
} from "./select_run.ts";
import { generateSyntheticDataset } from "./synthetic.ts";
import { tf } from "./tf.ts";

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
  const labels: number[] = [];
  const probs: number[] = [];
  for (let c = 0; c < 4; c++) {
    for (let i = 0; i < options.n; i++) {
      labels.push(c);
      const called = i < options.wrong[c] ? wrongTo[c] : c;
      for (let k = 0; k < 4; k++) probs.push(k === called ? p : (1 - p) / 3);
    }
  }
  return reportFromProbabilities({
    probabilities: new Float32Array(probs),
    labels,
    classes: CLASSES,
  });
}

Deno.test("scoreTargets: checks issue 7's six targets against a report", () => {
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
  const r = reportFromProbabilities({
    probabilities: new Float32Array([0.9, 0.1, 0.2, 0.8]),
    labels: [0, 1],
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
  assert.match(text, /  loss 0\.164$/); // three decimals, not a percentage
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
  const r = reportFromProbabilities({
    probabilities: new Float32Array(TEN_PREDICTIONS.probs.flat()),
    labels: TEN_PREDICTIONS.yTrue,
    classes: TEN_PREDICTIONS.classes,
  });
  const [only] = rankRuns({ candidates: [{ name: "ten", report: r }] });
  assert.equal(only.results[0].value, 0.7);
  assert.equal(only.results[3].value, 0); // meningioma is never predicted
  assert.equal(only.weakestRecall, 0);
  assert.equal(only.results.length, ISSUE_7_TARGETS.length);
});

/** Two tiny saved models and a synthetic dataset in a temp folder. */
async function withRuns(
  body: (
    p: { dir: string; data: string; cacheDir: string; a: string; b: string },
  ) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "select_run_test_" });
  try {
    const data = join(dir, "ds");
    await generateSyntheticDataset({
      outDir: data,
      seed: 5,
      trainPerClass: 10,
      testPerClass: 1,
    });
    const a = join(dir, "a");
    const b = join(dir, "b");
    await saveTinyModel(a, { seed: 3 });
    await saveTinyModel(b, { seed: 4 });
    await body({ dir, data, cacheDir: join(dir, "cache"), a, b });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("selectRun: ranks real models on their validation splits, per test-time mode", async () => {
  await withRuns(async ({ data, cacheDir, a, b }) => {
    const start = tf.memory().numTensors;
    const s = await selectRun({ runs: [a, b], data, cacheDir });
    assert.equal(tf.memory().numTensors, start);
    assert.deepEqual(Object.keys(s.candidates).sort(), [a, b].sort());
    const expected = rankRuns({
      candidates: await Promise.all([a, b].map(async (run) => ({
        name: run,
        report: (await evaluateModel({
          modelDir: run,
          data,
          split: "validation",
          cacheDir,
        })).full,
      }))),
    });
    assert.deepEqual(s.ranking, expected);
    const both = await selectRun({
      runs: [a],
      data,
      cacheDir,
      tta: ["none", "hflip"],
    });
    assert.deepEqual(
      Object.keys(both.candidates).sort(),
      [`${a} (hflip)`, `${a} (none)`],
    );
    assert.equal(both.candidates[`${a} (hflip)`].tta, "hflip");
    const losses = both.ranking.map((r) => r.loss);
    assert.notEqual(losses[0], losses[1]);
    assert.equal(both.recorded, null);
    assert.equal((await readModelMetadata(a)).inference, undefined);
    // --record writes the winning mode, which evaluate then uses by default
    const recorded = await selectRun({
      runs: [a],
      data,
      cacheDir,
      tta: ["none", "hflip"],
      record: true,
    });
    const mode = recorded.candidates[recorded.ranking[0].name].tta;
    assert.equal(recorded.recorded, mode);
    assert.deepEqual((await readModelMetadata(a)).inference, { tta: mode });
    const own = await evaluateModel({
      modelDir: a,
      data,
      split: "validation",
      cacheDir,
    });
    assert.equal(own.full.loss, recorded.ranking[0].loss);
    assert.equal(tf.memory().numTensors, start);
  });
});

Deno.test("selectRun: refuses a refit and an empty list", async () => {
  await withRuns(async ({ data, cacheDir, a, b }) => {
    await updateModelMetadata(b, {
      training: {
        ...(await readModelMetadata(b)).training,
        split: { validation: 0.15, test: 0.15, validationTrained: true },
      },
    });
    await assert.rejects(
      selectRun({ runs: [a, b], data, cacheDir }),
      new RegExp(`${b} was refit on its validation split`),
    );
    await assert.rejects(selectRun({ runs: [], data }), /no runs given/);
  });
});

Deno.test("select-run CLI: prints the ranking as JSON; bad arguments exit 2", async () => {
  await withRuns(async ({ data, a, b }) => {
    const run = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          join(import.meta.dirname!, "select_run.ts"),
          ...args,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const ok = await run(["--data", data, "--json", a, b]);
    assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
    const out = JSON.parse(new TextDecoder().decode(ok.stdout));
    assert.equal(out.ranking.length, 2);
    assert.deepEqual(out.ranking.map((r: { rank: number }) => r.rank), [1, 2]);
    const noRuns = await run(["--data", data]);
    assert.equal(noRuns.code, 2);
    assert.match(
      new TextDecoder().decode(noRuns.stderr),
      /--data and at least one run are required/,
    );
    const badTta = await run(["--data", data, "--tta", "none,vflip", a]);
    assert.equal(badTta.code, 2);
    assert.match(
      new TextDecoder().decode(badTta.stderr),
      /"vflip" is not none or hflip/,
    );
    const missing = await run(["--data", data, join(data, "no-such-run")]);
    assert.equal(missing.code, 1);
    assert.match(
      new TextDecoder().decode(missing.stderr),
      /^select-run: saved model .*no-such-run: no such folder$/m,
    );
  });
});
