import assert from "node:assert/strict";
import {
  notebookRun,
  recordNotebookRun,
  runName,
  runParams,
  trainParams,
  withEnvOverrides,
} from "./params.ts";

Deno.test("params: defaults", () => {
  assert.deepEqual(runParams({ env: {} }), {
    seed: 42,
    size: 128,
    validation: 0.15,
    test: 0.15,
    clahe: null,
  });
});

Deno.test("params: environment overrides", () => {
  assert.deepEqual(
    runParams({
      env: {
        BRAIN_MRI_SEED: "7",
        BRAIN_MRI_IMAGE_SIZE: "96",
        BRAIN_MRI_VAL: "0.1",
        BRAIN_MRI_TEST: "0.2",
        BRAIN_MRI_CLAHE: "2",
      },
    }),
    {
      seed: 7,
      size: 96,
      validation: 0.1,
      test: 0.2,
      clahe: { clipLimit: 2, tiles: 8 },
    },
  );
});

Deno.test("params: a malformed value names the variable", () => {
  assert.throws(
    () => runParams({ env: { BRAIN_MRI_SEED: "x" } }),
    /BRAIN_MRI_SEED=x is not a valid value/,
  );
  assert.throws(
    () => runParams({ env: { BRAIN_MRI_IMAGE_SIZE: "8" } }),
    /BRAIN_MRI_IMAGE_SIZE=8/,
  );
  assert.throws(
    () => runParams({ env: { BRAIN_MRI_VAL: "1.5" } }),
    /BRAIN_MRI_VAL=1\.5/,
  );
  assert.throws(
    () => runParams({ env: { BRAIN_MRI_CLAHE: "-1" } }),
    /BRAIN_MRI_CLAHE=-1 is not a valid value/,
  );
});

Deno.test("params: training parameters", () => {
  const defaults = {
    arch: "seedCnn",
    imageSize: 128,
    seed: 42,
    validation: 0.15,
    test: 0.15,
    batchSize: 32,
    learningRate: 0.001,
    ema: 0,
    weightDecay: 0,
    labelSmoothing: 0,
    clahe: 0,
  };
  assert.deepEqual(trainParams({ env: {} }), {
    arch: "seedCnn",
    epochs: 10,
    batchSize: 32,
    learningRate: 0.001,
    run: runName(defaults),
    ema: 0,
    weightDecay: 0,
    labelSmoothing: 0,
  });
  assert.deepEqual(
    trainParams({
      env: {
        BRAIN_MRI_ARCH: "resnet",
        BRAIN_MRI_EPOCHS: "3",
        BRAIN_MRI_IMAGE_SIZE: "64",
        BRAIN_MRI_LR: "0.01",
        BRAIN_MRI_EMA: "0.998",
        BRAIN_MRI_WEIGHT_DECAY: "0.05",
        BRAIN_MRI_LABEL_SMOOTHING: "0.1",
        BRAIN_MRI_CLAHE: "2",
      },
    }),
    {
      arch: "resnet",
      epochs: 3,
      batchSize: 32,
      learningRate: 0.01,
      run: runName({
        ...defaults,
        arch: "resnet",
        imageSize: 64,
        learningRate: 0.01,
        ema: 0.998,
        weightDecay: 0.05,
        labelSmoothing: 0.1,
        clahe: 2,
      }),
      ema: 0.998,
      weightDecay: 0.05,
      labelSmoothing: 0.1,
    },
  );
  assert.throws(
    () => trainParams({ env: { BRAIN_MRI_ARCH: "lenet" } }),
    /BRAIN_MRI_ARCH=lenet/,
  );
  assert.throws(
    () => trainParams({ env: { BRAIN_MRI_EPOCHS: "0" } }),
    /BRAIN_MRI_EPOCHS=0/,
  );
  assert.throws(
    () => trainParams({ env: { BRAIN_MRI_EMA: "1" } }),
    /BRAIN_MRI_EMA=1 is not a valid value/,
  );
  assert.throws(
    () => trainParams({ env: { BRAIN_MRI_LABEL_SMOOTHING: "1" } }),
    /BRAIN_MRI_LABEL_SMOOTHING=1 is not a valid value/,
  );
  assert.throws(
    () => trainParams({ env: { BRAIN_MRI_WEIGHT_DECAY: "-0.1" } }),
    /BRAIN_MRI_WEIGHT_DECAY=-0.1 is not a valid value/,
  );
});

Deno.test("params: notebook constants, overridden by the environment", () => {
  const SEED = 42;
  const EPOCHS = 10;
  const ARCH = "seedCnn";
  assert.deepEqual(
    withEnvOverrides({ seed: SEED, epochs: EPOCHS, arch: ARCH }, { env: {} }),
    { seed: 42, epochs: 10, arch: "seedCnn" },
  );
  assert.deepEqual(
    withEnvOverrides({ seed: SEED, epochs: EPOCHS, arch: ARCH }, {
      env: {
        BRAIN_MRI_EPOCHS: "1",
        BRAIN_MRI_ARCH: "vgg",
        BRAIN_MRI_SEED: " ",
      },
    }),
    { seed: 42, epochs: 1, arch: "vgg" },
  );
  assert.throws(
    () => withEnvOverrides({ learningRate: 0 }, { env: {} }),
    /learningRate = 0 is not a valid value/,
  );
  assert.throws(
    () => withEnvOverrides({ arch: "lenet" as "vgg" }, { env: {} }),
    /arch = "lenet" is not one of seedCnn, vgg, resnet/,
  );
  assert.throws(
    () => withEnvOverrides({ run: "../elsewhere" }, { env: {} }),
    /run = "\.\.\/elsewhere" is not a valid value/,
  );
  assert.throws(
    () => withEnvOverrides({ bogus: 1 } as never, { env: {} }),
    /unknown notebook setting bogus/,
  );
});

Deno.test("params: run names follow the settings that must match to resume", () => {
  const base = trainParams({ env: {} }).run;
  assert.match(base, /^seedCnn-128-[0-9a-f]{8}$/);
  assert.equal(trainParams({ env: { BRAIN_MRI_EPOCHS: "20" } }).run, base);
  for (
    const env of [
      { BRAIN_MRI_LR: "0.01" },
      { BRAIN_MRI_BATCH: "16" },
      { BRAIN_MRI_SEED: "7" },
      { BRAIN_MRI_VAL: "0.2" },
      { BRAIN_MRI_EMA: "0.99" },
      { BRAIN_MRI_CLAHE: "2" },
    ]
  ) {
    const other = trainParams({ env }).run;
    assert.notEqual(other, base, JSON.stringify(env));
    assert.match(other, /^seedCnn-128-/);
  }
  assert.equal(trainParams({ env: { BRAIN_MRI_RUN: "mine" } }).run, "mine");
});

Deno.test("params: the run notebook 03 recorded is the one 04 and 05 open", async () => {
  const modelsDir = await Deno.makeTempDir();
  try {
    const fallback = notebookRun({ modelsDir, env: {} });
    assert.equal(fallback.run, trainParams({ env: {} }).run);
    const settings = {
      seed: 7,
      size: 64,
      validation: 0.1,
      test: 0.2,
      clahe: { clipLimit: 2, tiles: 8 },
    };
    await recordNotebookRun({
      run: "seedCnn-64-12345678",
      settings,
      modelsDir,
    });
    assert.deepEqual(notebookRun({ modelsDir, env: {} }), {
      run: "seedCnn-64-12345678",
      settings,
    });
    assert.deepEqual(
      notebookRun({ modelsDir, env: { BRAIN_MRI_RUN: "other" } }),
      { run: "other", settings: runParams({ env: {} }) },
    );
    assert.deepEqual(
      notebookRun({ run: "seedCnn-64-12345678", modelsDir, env: {} }).settings,
      settings,
    );
    // A run recorded before CLAHE existed reads as one without it.
    const { clahe: _, ...older } = settings;
    await Deno.writeTextFile(
      `${modelsDir}/notebook_run.json`,
      JSON.stringify({ run: "old", settings: older }),
    );
    assert.deepEqual(notebookRun({ modelsDir, env: {} }).settings, {
      ...older,
      clahe: null,
    });
  } finally {
    await Deno.remove(modelsDir, { recursive: true });
  }
});
