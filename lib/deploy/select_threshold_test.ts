import assert from "node:assert/strict";
import { join } from "node:path";
import { saveTinyModel, withSyntheticDataset } from "../../tests/fixtures.ts";
import { evaluateModel } from "../evaluate/evaluate.ts";
import { chooseOperatingPoint, operatingPoints } from "./operating_point.ts";
import { PROJECT_ROOT } from "../core/paths.ts";
import { run } from "../tools/proc.ts";
import {
  readModelMetadata,
  updateModelMetadata,
} from "../model/saved_model.ts";
import { copyThreshold, selectThreshold } from "./select_threshold.ts";

/** Runs `body` with a small synthetic dataset and a cache in a temp folder. */
function withDataset(
  body: (p: { dir: string; data: string; cacheDir: string }) => Promise<void>,
): Promise<void> {
  return withSyntheticDataset(
    { seed: 5, prefix: "select_threshold_test_" },
    body,
  );
}

Deno.test("selectThreshold: the operating-point rule on the validation split, recorded; evaluate then decides by it", async () => {
  await withDataset(async ({ dir, data, cacheDir }) => {
    const model = join(dir, "m");
    await saveTinyModel(model, { seed: 3 });
    await updateModelMetadata(model, { inference: { tta: "hflip" } });
    const dry = await selectThreshold({ model, data, cacheDir, write: false });
    assert.equal(dry.written, false);
    assert.equal(
      (await readModelMetadata(model)).inference?.tumourThreshold,
      undefined,
    );
    // the candidates are scored on the argmax validation probabilities,
    // under the model's own test-time augmentation
    const plain = await evaluateModel({
      modelDir: model,
      data,
      split: "validation",
      cacheDir,
    });
    assert.equal(plain.tta, "hflip");
    assert.equal(plain.tumourThreshold, null);
    assert.equal(dry.images, plain.full.n);
    const expected = chooseOperatingPoint(operatingPoints({
      yTrue: plain.labels,
      probs: plain.probabilities,
      classes: plain.metadata.classes,
    }));
    assert.equal(dry.tumourThreshold, expected.chosen.tumourThreshold);
    assert.deepEqual(
      dry.points.map((p) => [p.tumourThreshold, p.missed, p.falseAlarms]),
      operatingPoints({
        yTrue: plain.labels,
        probs: plain.probabilities,
        classes: plain.metadata.classes,
      }).map((p) => [p.tumourThreshold, p.missed, p.falseAlarms]),
    );
    assert.equal(dry.points.length, 7);
    assert.equal(dry.points[0].report.accuracy, plain.full.accuracy);

    const chosen = await selectThreshold({ model, data, cacheDir });
    assert.equal(chosen.tumourThreshold, dry.tumourThreshold);
    assert.deepEqual((await readModelMetadata(model)).inference, {
      tta: "hflip",
      ...(chosen.tumourThreshold === null
        ? {}
        : { tumourThreshold: chosen.tumourThreshold }),
    });

    // evaluate follows a recorded operating point unless told otherwise
    await updateModelMetadata(model, { inference: { tumourThreshold: 0.05 } });
    const screened = await evaluateModel({
      modelDir: model,
      data,
      split: "validation",
      cacheDir,
    });
    assert.equal(screened.tumourThreshold, 0.05);
    assert.deepEqual(screened.full.binary!.decision, { threshold: 0.05 });
    assert.deepEqual(screened.deduplicated.binary!.decision, {
      threshold: 0.05,
    });
    assert.equal(screened.full.loss, plain.full.loss);
    assert.equal(
      screened.full.accuracy,
      dry.points.find((p) => p.tumourThreshold === 0.05)!.report.accuracy,
    );
    assert.ok(screened.full.binary!.fn <= plain.full.binary!.fn);
    const forced = await evaluateModel({
      modelDir: model,
      data,
      split: "validation",
      cacheDir,
      tumourThreshold: null,
    });
    assert.deepEqual(forced.full, plain.full);
  });
});

Deno.test("copyThreshold: a refit takes its validated run's operating point; evaluate's flag overrides", async () => {
  await withDataset(async ({ dir, data, cacheDir }) => {
    const validated = join(dir, "validated");
    const refit = join(dir, "refit");
    for (const path of [validated, refit]) {
      await saveTinyModel(path, {
        seed: 9,
        split: {
          validation: 0.15,
          test: 0.15,
          ...(path === refit ? { validationTrained: true } : {}),
        },
      });
      await updateModelMetadata(path, { inference: { tta: "none" } });
    }
    await assert.rejects(
      selectThreshold({ model: refit, data, cacheDir }),
      /refit on its validation split/,
    );
    await assert.rejects(
      copyThreshold({ model: validated, from: refit }),
      /is not a refit/,
    );
    await updateModelMetadata(validated, {
      inference: { tumourThreshold: 0.3 },
    });
    assert.equal(await copyThreshold({ model: refit, from: validated }), 0.3);
    assert.deepEqual((await readModelMetadata(refit)).inference, {
      tta: "none",
      tumourThreshold: 0.3,
    });
    const cli = (args: string[]) =>
      run(Deno.execPath(), {
        args: [
          "run",
          "-A",
          join(PROJECT_ROOT, "lib", "evaluate", "evaluate.ts"),
          ...args,
        ],
      });
    const base = ["--model", refit, "--data", data, "--split", "test"];
    const json = await cli([...base, "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const out = JSON.parse(json.stdout);
    assert.equal(out.model.tumourThreshold, 0.3);
    assert.deepEqual(out.full.binary.decision, { threshold: 0.3 });
    const text = await cli([...base, "--tumour-threshold", "argmax"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /decision: argmax \(the most probable class\)/);
    const bad = await cli([...base, "--tumour-threshold", "0.7"]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /--tumour-threshold must be argmax or a number in \(0, 0\.5\] \(got 0\.7\)/,
    );
    // the refit's copy follows a new choice on the validated run, or argmax
    await updateModelMetadata(validated, {
      inference: { tumourThreshold: undefined },
    });
    assert.equal(await copyThreshold({ model: refit, from: validated }), null);
    assert.deepEqual((await readModelMetadata(refit)).inference, {
      tta: "none",
    });
  });
});

Deno.test("select-threshold CLI: usage errors exit 2, a run prints every candidate and the choice", async () => {
  await withDataset(async ({ dir, data }) => {
    const model = join(dir, "m");
    await saveTinyModel(model, { seed: 2 });
    const cli = (args: string[]) =>
      run(Deno.execPath(), {
        args: [
          "run",
          "-A",
          join(PROJECT_ROOT, "lib", "deploy", "select_threshold.ts"),
          ...args,
        ],
      });
    const none = await cli(["--model", model]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /give exactly one of --data and --from/);
    const both = await cli(["--data", data, "--from", model]);
    assert.equal(both.code, 2);
    const dry = await cli(["--model", model, "--data", data, "--dry-run"]);
    assert.equal(dry.code, 0, dry.stderr);
    const lines = dry.stdout.trim().split("\n");
    assert.match(lines[0], /^validation split: \d+ scans$/);
    assert.match(lines[1], /^operating point\s+targets met/);
    assert.equal(lines.filter((l) => /^(argmax|τ = )/.test(l)).length, 7);
    assert.equal(lines.filter((l) => l.includes("(chosen)")).length, 1);
    assert.match(lines.at(-1)!, /^chosen: .*\(dry run\)$/);
    assert.equal((await readModelMetadata(model)).inference, undefined);
  });
});
