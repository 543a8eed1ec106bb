import assert from "node:assert/strict";
import { join } from "node:path";
import { saveTinyModel, withSyntheticDataset } from "../tests/fixtures.ts";
import { evaluateModel } from "../lib/evaluate/evaluate.ts";
import { PROJECT_ROOT } from "../lib/core/paths.ts";
import { run } from "../lib/tools/proc.ts";
import {
  readModelMetadata,
  updateModelMetadata,
} from "../lib/model/saved_model.ts";
import { selectRun } from "./select_run.ts";
import { rankRuns } from "../lib/evaluate/targets.ts";
import { tf } from "../lib/core/tf.ts";

/** Two tiny saved models (same split, different weights) and a synthetic dataset. */
function withRuns(
  body: (
    p: { dir: string; data: string; cacheDir: string; a: string; b: string },
  ) => Promise<void>,
): Promise<void> {
  return withSyntheticDataset(
    { seed: 5, prefix: "select_run_test_" },
    async (fixture) => {
      const a = join(fixture.dir, "a");
      const b = join(fixture.dir, "b");
      await saveTinyModel(a, { seed: 3 });
      // different weights, the same split (the split follows training.seed)
      const m = await saveTinyModel(b, { seed: 4 });
      await updateModelMetadata(b, { training: { ...m.training, seed: 3 } });
      await body({ ...fixture, a, b });
    },
  );
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
    // Runs are compared at argmax even when one has an operating point
    // (chosen on this same validation split, it would favour that run).
    await updateModelMetadata(a, { inference: { tumourThreshold: 0.05 } });
    const screened = await evaluateModel({
      modelDir: a,
      data,
      split: "validation",
      cacheDir,
    });
    const atArgmax = await evaluateModel({
      modelDir: a,
      data,
      split: "validation",
      cacheDir,
      tumourThreshold: null,
    });
    assert.notDeepEqual(
      screened.full.confusionMatrix,
      atArgmax.full.confusionMatrix,
    );
    assert.deepEqual(
      (await selectRun({ runs: [a, b], data, cacheDir })).ranking,
      expected,
    );
    await updateModelMetadata(a, { inference: { tumourThreshold: undefined } });
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
    await assert.rejects(
      selectRun({ runs: [a, a], data }),
      /a run is listed twice/,
    );
  });
});

Deno.test("selectRun: refuses runs split differently (seed, fractions or dataset)", async () => {
  await withRuns(async ({ data, cacheDir, a, b }) => {
    const base = (await readModelMetadata(b)).training;
    const cases: [string, Parameters<typeof updateModelMetadata>[1]][] = [
      ["seed 5", { training: { ...base, seed: 5 } }],
      [
        "validation 0.2",
        { training: { ...base, split: { validation: 0.2, test: 0.15 } } },
      ],
      ["dataset other", { datasetFingerprint: "other" }],
    ];
    for (const [what, change] of cases) {
      const original = await readModelMetadata(b);
      await updateModelMetadata(b, change);
      await assert.rejects(
        selectRun({ runs: [a, b], data, cacheDir }),
        (e: Error) => {
          assert.match(e.message, new RegExp(`${b} was split differently`));
          assert.ok(e.message.includes(what), e.message);
          assert.match(e.message, /not the same scans/);
          return true;
        },
      );
      await updateModelMetadata(b, {
        training: original.training,
        datasetFingerprint: original.datasetFingerprint,
      });
    }
    // restored: comparable again
    const s = await selectRun({ runs: [a, b], data, cacheDir });
    assert.equal(s.ranking.length, 2);
  });
});

Deno.test("select-run CLI: prints the ranking as JSON; bad arguments exit 2", async () => {
  await withRuns(async ({ data, a, b }) => {
    const cli = (args: string[]) =>
      run(Deno.execPath(), {
        args: [
          "run",
          "-A",
          join(PROJECT_ROOT, "scripts", "select_run.ts"),
          ...args,
        ],
      });
    const ok = await cli(["--data", data, "--json", a, b]);
    assert.equal(ok.code, 0, ok.stderr);
    const out = JSON.parse(ok.stdout);
    assert.equal(out.ranking.length, 2);
    assert.deepEqual(out.ranking.map((r: { rank: number }) => r.rank), [1, 2]);
    const noRuns = await cli(["--data", data]);
    assert.equal(noRuns.code, 2);
    assert.match(
      noRuns.stderr,
      /--data and at least one run are required/,
    );
    const badTta = await cli(["--data", data, "--tta", "none,vflip", a]);
    assert.equal(badTta.code, 2);
    assert.match(
      badTta.stderr,
      /"vflip" is not none or hflip/,
    );
    const recordAlone = await cli(["--data", data, "--record", a]);
    assert.equal(recordAlone.code, 2);
    assert.match(
      recordAlone.stderr,
      /--record needs --tta/,
    );
    const missing = await cli(["--data", data, join(data, "no-such-run")]);
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /^select-run: saved model .*no-such-run: no such folder$/m,
    );
  });
});
