import assert from "node:assert/strict";
import { join } from "node:path";
import { projectPaths } from "../core/paths.ts";
import { UsageError } from "../core/cli.ts";
import { DEFAULTS } from "../core/defaults.ts";
import { run } from "../tools/proc.ts";
import { loadSavedModel, readModelMetadata } from "../model/saved_model.ts";
import { generateSyntheticDataset } from "../data/synthetic.ts";
import { readRunManifest } from "./train.ts";
import { parseTrainArgs } from "./train_cli.ts";

const CLI = join(projectPaths().root, "lib", "train", "train_cli.ts");

Deno.test("parseTrainArgs: defaults from DEFAULTS, a leading --, and clear errors", () => {
  const o = parseTrainArgs([
    "--",
    "--out",
    "/tmp/x",
    "--class-weights",
    "balanced",
  ]);
  assert.equal(o.arch, "seedCnn");
  assert.equal(o.size, 128);
  assert.equal(o.epochs, DEFAULTS.epochs);
  assert.equal(o.batchSize, 32);
  assert.equal(o.lr, 1e-3);
  assert.equal(o.seed, 42);
  assert.equal(o.val, 0.15);
  assert.equal(o.test, 0.15);
  assert.equal(o.augment, true);
  assert.equal(o.classWeights, "balanced");
  assert.equal(o.out, "/tmp/x");
  assert.equal(o.resume, false);
  assert.equal(o.patience, DEFAULTS.earlyStoppingPatience);
  assert.equal(o.lrPatience, DEFAULTS.plateauPatience);
  const p = parseTrainArgs([
    "--arch",
    "resnet",
    "--no-augment",
    "--class-weights",
    "glioma=2,notumor=0.5",
    "--patience",
    "0",
    "--resume",
  ]);
  assert.equal(p.arch, "resnet");
  assert.equal(p.augment, false);
  assert.deepEqual(p.classWeights, { glioma: 2, notumor: 0.5 });
  assert.equal(p.patience, 0);
  assert.equal(p.resume, true);
  assert.match(p.out, /models\/resnet-128$/);
  assert.throws(() => parseTrainArgs(["--arch", "lenet"]), UsageError);
  assert.throws(
    () => parseTrainArgs(["--epochs", "0"]),
    /--epochs must be an integer >= 1/,
  );
  assert.throws(
    () => parseTrainArgs(["--val", "0.6", "--test", "0.5"]),
    /below 1/,
  );
  assert.throws(
    () => parseTrainArgs(["--class-weights", "x"]),
    /--class-weights must be/,
  );
  assert.throws(
    () => parseTrainArgs(["--lr=-1"]),
    /--lr must be a positive number/,
  );
  assert.throws(
    () => parseTrainArgs(["--lr", "0"]),
    /--lr must be a positive number/,
  );
  assert.throws(() => parseTrainArgs(["--bogus"]), /Unknown option '--bogus'/);
});

Deno.test("parseTrainArgs: --group-radius, the split's grouping radius in pHash bits", () => {
  assert.equal(parseTrainArgs([]).groupRadius, 4);
  assert.equal(parseTrainArgs(["--group-radius", "8"]).groupRadius, 8);
  assert.throws(
    () => parseTrainArgs(["--group-radius", "65"]),
    /--group-radius must be a whole number of bits in 0\.\.64/,
  );
  assert.throws(() => parseTrainArgs(["--group-radius", "2.5"]), UsageError);
});

Deno.test("parseTrainArgs: schedules, budgets and model options", () => {
  const o = parseTrainArgs([]);
  assert.equal(o.cosine, false);
  assert.equal(o.maxMinutes, undefined);
  assert.deepEqual(o.modelOptions, {});
  assert.equal(o.evalTest, true);
  const q = parseTrainArgs([
    "--cosine",
    "--max-minutes",
    "55",
    "--model-options",
    '{"filters":[32,64,128,256]}',
    "--no-test",
  ]);
  assert.equal(q.cosine, true);
  assert.equal(q.lrPatience, 0);
  assert.equal(q.maxMinutes, 55);
  assert.deepEqual(q.modelOptions, { filters: [32, 64, 128, 256] });
  assert.equal(q.evalTest, false);
  assert.throws(
    () => parseTrainArgs(["--model-options", "[1]"]),
    /--model-options must be a JSON object/,
  );
  assert.throws(
    () => parseTrainArgs(["--model-options", "{oops"]),
    /--model-options must be a JSON object/,
  );
  assert.throws(
    () => parseTrainArgs(["--max-minutes", "0"]),
    /--max-minutes must be a positive number/,
  );
  assert.throws(
    () => parseTrainArgs(["--cosine", "--lr-patience", "3"]),
    /cannot be combined/,
  );
  assert.equal(q.cosineOver, "epochs");
  const t = parseTrainArgs(["--cosine-over", "time", "--max-minutes", "60"]);
  assert.equal(t.cosine, true);
  assert.equal(t.cosineOver, "time");
  assert.equal(t.lrPatience, 0);
  assert.equal(t.ema, undefined);
  assert.equal(t.augment, true);
  assert.equal(t.weightDecay, 0);
  assert.equal(parseTrainArgs(["--weight-decay", "0.05"]).weightDecay, 0.05);
  assert.throws(
    () => parseTrainArgs(["--weight-decay=-1"]),
    /--weight-decay must be a number >= 0 \(got "-1"\)/,
  );
  assert.throws(
    () => parseTrainArgs(["--cosine-over", "time"]),
    /--cosine-over time needs --max-minutes/,
  );
  assert.throws(
    () => parseTrainArgs(["--cosine-over", "steps", "--max-minutes", "1"]),
    /--cosine-over must be one of epochs, time \(got "steps"\)/,
  );
});

Deno.test("parseTrainArgs: --clahe and --clahe-tiles", () => {
  assert.equal(parseTrainArgs([]).clahe, undefined);
  assert.deepEqual(parseTrainArgs(["--clahe", "2"]).clahe, {
    clipLimit: 2,
    tiles: 8,
  });
  assert.deepEqual(
    parseTrainArgs(["--clahe", "3", "--clahe-tiles", "4"]).clahe,
    { clipLimit: 3, tiles: 4 },
  );
  assert.throws(
    () => parseTrainArgs(["--clahe=-1"]),
    /--clahe must be a number above 0 and at most 256 \(got -1\)/,
  );
  assert.throws(
    () =>
      parseTrainArgs(["--clahe", "2", "--size", "16", "--clahe-tiles", "20"]),
    /--clahe-tiles must be an integer from 1 to 16 for 16-pixel images \(got 20\)/,
  );
});

Deno.test("parseTrainArgs: label smoothing, EMA, refits and augmentation", () => {
  assert.equal(parseTrainArgs([]).labelSmoothing, 0);
  assert.equal(
    parseTrainArgs(["--label-smoothing", "0.1"]).labelSmoothing,
    0.1,
  );
  for (const bad of ["1", "-0.1"]) {
    assert.throws(
      () => parseTrainArgs([`--label-smoothing=${bad}`]),
      new RegExp(`--label-smoothing must be in \\[0, 1\\) \\(got "${bad}"\\)`),
    );
  }
  assert.throws(
    () => parseTrainArgs(["--label-smoothing=x"]),
    /--label-smoothing must be a number \(got "x"\)/,
  );
  assert.equal(parseTrainArgs([]).trainSeed, undefined);
  assert.equal(parseTrainArgs(["--train-seed", "42"]).trainSeed, undefined);
  assert.equal(parseTrainArgs(["--train-seed", "7"]).trainSeed, 7);
  assert.throws(
    () => parseTrainArgs(["--train-seed", "1.5"]),
    /--train-seed must be a whole number \(got "1.5"\)/,
  );
  assert.equal(parseTrainArgs([]).mixup, 0);
  assert.equal(parseTrainArgs(["--mixup", "0.2"]).mixup, 0.2);
  assert.throws(
    () => parseTrainArgs(["--mixup=-0.2"]),
    /--mixup must be a number >= 0 \(got "-0.2"\)/,
  );
  assert.throws(
    () => parseTrainArgs(["--refit"]),
    /--refit needs --cosine/,
  );
  const r = parseTrainArgs(["--refit", "--cosine"]);
  assert.equal(r.refit, true);
  assert.equal(r.patience, 0);
  assert.equal(parseTrainArgs([]).refit, false);
  assert.throws(
    () => parseTrainArgs(["--refit", "--cosine", "--patience", "3"]),
    /--refit trains without validation: early stopping is off/,
  );
  assert.throws(
    () => parseTrainArgs(["--refit", "--cosine", "--val", "0"]),
    /--refit needs a validation split to merge/,
  );
  assert.equal(parseTrainArgs(["--no-augment"]).augment, false);
  assert.deepEqual(
    parseTrainArgs(["--augment", '{"rotation":15,"zoom":0.15}']).augment,
    { rotation: 15, zoom: 0.15 },
  );
  assert.throws(
    () => parseTrainArgs(["--augment", '{"rotate":15}']),
    /--augment: unknown key "rotate" \(known: flip, rotation/,
  );
  assert.throws(
    () => parseTrainArgs(["--augment", '{"zoom":1.5}']),
    /--augment: .*zoom/,
  );
  assert.throws(
    () => parseTrainArgs(["--augment", "15"]),
    /--augment must be a JSON object/,
  );
  assert.throws(
    () => parseTrainArgs(["--augment", "{}", "--no-augment"]),
    /cannot be combined/,
  );
  assert.equal(parseTrainArgs(["--ema", "0.998"]).ema, 0.998);
  assert.throws(
    () => parseTrainArgs(["--ema", "1"]),
    /--ema must be a decay in \(0, 1\) \(got "1"\)/,
  );
});

type Cli = (...args: string[]) => ReturnType<typeof run>;

/** Two epochs into `out`: progress, summary, saved model and manifest. */
async function firstRun(cli: Cli, out: string, common: string[]) {
  const first = await cli(...common, "--epochs", "2");
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^epoch 1\/2 {2}loss /m);
  assert.match(
    first.stdout,
    /^best epoch: +\d \(val_loss \d\.\d{4}, val acc [\d.]+ %\)$/m,
  );
  assert.match(
    first.stdout,
    /^test accuracy: +[\d.]+ % on 8 images; [\d.]+ % on \d+ de-duplicated$/m,
  );
  assert.match(first.stdout, /^wall time: /m);
  assert.match(first.stdout, /^speed: +\d+\.\d\d ms\/image\/epoch$/m);
  const loaded = await loadSavedModel(join(out, "model"));
  assert.equal(loaded.metadata.inputSize, 32);
  assert.deepEqual(loaded.metadata.classes, [
    "glioma",
    "meningioma",
    "notumor",
    "pituitary",
  ]);
  assert.equal(typeof loaded.metadata.metrics.test_acc, "number");
  assert.equal(loaded.metadata.metrics.test_images, 8);
  assert.deepEqual(loaded.metadata.training.split, {
    validation: 0.15,
    test: 0.15,
  });
  loaded.model.dispose();
  const manifest = await readRunManifest(out);
  assert.equal(manifest.status, "completed");
  assert.equal(
    (manifest.extra.test as { test_images: number }).test_images,
    8,
  );
  assert.equal(manifest.config.batchSize, 8);
}

/** The same `out` again: refused without --resume, resumed with it. */
async function refuseThenResume(cli: Cli, common: string[]) {
  const again = await cli(...common, "--epochs", "2");
  assert.equal(again.code, 1);
  assert.match(
    again.stderr,
    /already holds a training run \(seedCnn 32px, checkpoint after epoch 2 of 2\)\. Pass --resume to continue it, or choose another --out\./,
  );
  assert.equal(again.stderr.includes("    at "), false, "no stack trace");

  const resumed = await cli(...common, "--epochs", "3", "--resume");
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /resuming .* after epoch 2/);
  assert.match(
    resumed.stdout,
    /\(completed, 3 epochs, resumed after epoch 2\)/,
  );

  const changed = await cli(
    ...common,
    "--epochs",
    "4",
    "--resume",
    "--lr",
    "0.01",
  );
  assert.equal(changed.code, 1);
  assert.match(
    changed.stderr,
    /the settings differ \(learningRate: 0.001 in the run, 0.01 now\)/,
  );
}

/** A fresh cosine run without the test split, then a refit. */
async function experimentAndRefit(cli: Cli, runs: string) {
  const fresh = (name: string, ...extra: string[]) =>
    cli(
      ...["--size", "32", "--batch-size", "8", "--epochs", "2", "--cosine"],
      ...["--out", join(runs, name), ...extra],
    );
  const experiment = await fresh("experiment", "--test", "0.2", "--no-test");
  assert.equal(experiment.code, 0, experiment.stderr);
  assert.match(
    experiment.stdout,
    /^test accuracy: +not evaluated \(--no-test\)$/m,
  );
  const untested = await readModelMetadata(join(runs, "experiment", "model"));
  assert.equal(untested.metrics.test_acc, undefined);
  assert.deepEqual(untested.training.split, { validation: 0.15, test: 0.2 });

  const refit = await fresh("refit", "--refit");
  assert.equal(refit.code, 0, refit.stderr);
  // All 24 Training images (6 per class): training plus validation.
  assert.match(
    refit.stdout,
    /^refit: training on train \+ validation \(24 images\), no validation; the test split is unchanged$/m,
  );
  assert.match(
    refit.stdout,
    /^kept epoch: +\d \(lowest training loss \d\.\d{4}; refit, no validation\)$/m,
  );
  assert.match(refit.stdout, /^test accuracy: +[\d.]+ % on 8 images;/m);
  const refitted = await readModelMetadata(join(runs, "refit", "model"));
  assert.equal(refitted.training.trainImages, 24);
  assert.equal(refitted.training.validationImages, 0);
  assert.deepEqual(refitted.training.split, {
    validation: 0.15,
    test: 0.15,
    validationTrained: true,
  });
}

Deno.test("deno task train: end to end on a tiny synthetic dataset, refuses to overwrite, resumes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "train_cli_test_" });
  try {
    await generateSyntheticDataset({
      outDir: join(dir, "data"),
      seed: 3,
      trainPerClass: 6,
      testPerClass: 2,
    });
    const out = join(dir, "runs", "tiny");
    const cli: Cli = (...args) =>
      run(Deno.execPath(), {
        args: ["run", "-A", CLI, "--", "--data", join(dir, "data"), ...args],
        cwd: projectPaths().root,
        env: { BRAIN_MRI_CACHE: join(dir, "cache"), NO_COLOR: "1" },
        timeoutMs: 5 * 60_000,
      });
    const common = ["--size", "32", "--out", out, "--batch-size", "8"];
    await firstRun(cli, out, common);
    await refuseThenResume(cli, common);
    await experimentAndRefit(cli, join(dir, "runs"));

    const bad = await cli("--size", "many");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--size must be a number \(got "many"\)/);
    assert.match(bad.stderr, /usage: deno task train/);
    const small = await cli("--size", "0");
    assert.equal(small.code, 2);
    assert.match(small.stderr, /--size must be an integer >= 1 \(got "0"\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
