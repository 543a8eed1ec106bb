import assert from "node:assert/strict";
import { runParams, trainParams } from "./params.ts";

Deno.test("params: defaults", () => {
  assert.deepEqual(runParams({ env: {} }), {
    seed: 42,
    size: 128,
    validation: 0.15,
    test: 0.15,
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
      },
    }),
    { seed: 7, size: 96, validation: 0.1, test: 0.2 },
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
});

Deno.test("params: training parameters", () => {
  assert.deepEqual(trainParams({ env: {} }), {
    arch: "seedCnn",
    epochs: 10,
    batchSize: 32,
    learningRate: 0.001,
    run: "seedCnn-128-notebook",
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
      },
    }),
    {
      arch: "resnet",
      epochs: 3,
      batchSize: 32,
      learningRate: 0.01,
      run: "resnet-64-notebook",
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
