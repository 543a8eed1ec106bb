import assert from "node:assert/strict";
import { join } from "node:path";
import { type LayersModel, tf } from "../core/tf.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import { resolveConfig, type RunConfigOptions } from "./config.ts";
import {
  checkRunFolder,
  readTrainState,
  resumeFromCheckpoint,
  savedAverage,
} from "./resume.ts";
import { RUN_CHECKPOINT_FILES, type RunPaths, runPaths } from "./run_files.ts";
import { initialState, type TrainState } from "./state.ts";
import { tensorsSnapshot, weightSnapshot } from "./snapshot.ts";

const IMAGES = {
  pixels: new Uint8Array(2 * 4),
  labels: new Int32Array([0, 1]),
};
const config = (extra: Partial<RunConfigOptions> = {}) =>
  resolveConfig({
    train: IMAGES,
    validation: IMAGES,
    classes: ["a", "b"],
    size: 2,
    epochs: 3,
    ...extra,
  });

function tinyModel(): LayersModel {
  return tf.sequential({
    layers: [tf.layers.dense({ units: 2, inputShape: [3] })],
  });
}

/** A run folder whose checkpoint is after epoch 2 of 3, with a best snapshot. */
async function savedRun(
  paths: RunPaths,
  extraFiles: Record<string, Uint8Array> = {},
): Promise<{ state: TrainState; weights: Uint8Array }> {
  const model = tinyModel();
  const optimizer = tf.train.adam(0.01);
  const state: TrainState = {
    ...initialState({
      config: config(),
      datasetFingerprint: "fp",
      trainImages: 2,
      at: "t0",
    }),
    epochsCompleted: 2,
  };
  const weights = weightSnapshot(model);
  await saveCheckpoint({
    dir: paths.checkpoint,
    model,
    optimizer,
    state,
    extraFiles: { [RUN_CHECKPOINT_FILES.best]: weights, ...extraFiles },
  });
  model.dispose();
  optimizer.dispose();
  return { state, weights };
}

async function withRun(body: (paths: RunPaths, dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "resume_test_" });
  try {
    await body(runPaths(join(dir, "run")), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const check = (paths: RunPaths, extra: Record<string, unknown> = {}) =>
  checkRunFolder({
    paths,
    resume: true,
    config: config(),
    fingerprint: "fp",
    trainImages: 2,
    ...extra,
  });

Deno.test("checkRunFolder: a new folder is fine, a folder holding something else is not", async () => {
  await withRun(async (paths) => {
    assert.equal(await check(paths, { resume: false }), undefined);
    // --resume on nothing starts a new run.
    assert.equal(await check(paths), undefined);
    await Deno.mkdir(paths.root);
    assert.equal(await check(paths, { resume: false }), undefined);
    await Deno.writeTextFile(join(paths.root, "notes.txt"), "");
    await assert.rejects(
      check(paths, { resume: false }),
      /exists and is not empty \(but holds no checkpoint to resume\)/,
    );
  });
});

Deno.test("checkRunFolder: a saved run resumes only with the same settings and data", async () => {
  await withRun(async (paths) => {
    const { state } = await savedRun(paths);
    assert.deepEqual(await check(paths), state);
    // More epochs are fine: a run can be extended.
    assert.deepEqual(
      await check(paths, { config: config({ epochs: 9 }) }),
      state,
    );
    await assert.rejects(
      check(paths, { resume: false }),
      /already holds a training run \(checkpoint after epoch 2 of 3\); resume it/,
    );
    await assert.rejects(
      check(paths, { config: config({ seed: 1 }) }),
      /cannot resume .*: the settings differ \(seed: 42 in the run, 1 now\)/,
    );
    await assert.rejects(
      check(paths, { fingerprint: "other" }),
      /cannot resume .*: the dataset differs \(fingerprint fp in the run, other now\)/,
    );
    await assert.rejects(
      check(paths, { trainImages: 5 }),
      /cannot resume .*: 2 training images in the run, 5 now/,
    );
  });
});

Deno.test("resumeFromCheckpoint restores the weights and continues the state; savedAverage needs ema.bin", async () => {
  await withRun(async (paths) => {
    const average = tf.tensor1d([1, 2, 3, 4, 5, 6, 7, 8]);
    const { state, weights } = await savedRun(paths, {
      [RUN_CHECKPOINT_FILES.ema]: tensorsSnapshot([average]),
    });
    average.dispose();
    const model = tinyModel();
    const optimizer = tf.train.adam(0.01);
    const resumed = await resumeFromCheckpoint({
      paths,
      model,
      optimizer,
      saved: state,
      epochs: 5,
    });
    assert.deepEqual(weightSnapshot(model), weights);
    assert.deepEqual(resumed.best, weights);
    assert.equal(resumed.state.config.epochs, 5);
    assert.equal(resumed.state.resumes.length, 1);
    assert.equal(resumed.state.resumes[0].epochsCompleted, 2);
    const saved = await savedAverage(paths);
    assert.deepEqual(Array.from(new Float32Array(saved.buffer)), [
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
    ]);
    await Deno.remove(join(paths.checkpoint, RUN_CHECKPOINT_FILES.ema));
    await assert.rejects(
      savedAverage(paths),
      /cannot resume .*: its checkpoint has no ema.bin \(the weights' moving average\)/,
    );
    model.dispose();
    optimizer.dispose();
  });
});

/** Rewrites the saved state of the run's checkpoint with `change`. */
async function editSavedState(
  paths: RunPaths,
  change: (state: Record<string, unknown>) => void,
): Promise<void> {
  const file = join(paths.checkpoint, "state.json");
  const doc = JSON.parse(await Deno.readTextFile(file));
  change(doc.state);
  await Deno.writeTextFile(file, JSON.stringify(doc));
}

Deno.test("a saved state whose numbers are not what they claim is refused, naming state.json", async () => {
  const cases: [(s: Record<string, unknown>) => void, RegExp][] = [
    [
      (s) => s.epochsCompleted = -1,
      /epochsCompleted is -1, expected a non-negative integer/,
    ],
    [
      (s) => s.epochsCompleted = 1.5,
      /epochsCompleted is 1.5, expected a non-negative integer/,
    ],
    [
      (s) => s.trainImages = "2",
      /trainImages is "2", expected a non-negative integer/,
    ],
    [
      (s) => s.learningRate = null,
      /learningRate is null, expected a non-negative number/,
    ],
    [
      (s) => s.best = { loss: null, epoch: 7 },
      /best.epoch is 7, expected a completed epoch/,
    ],
    [
      (s) => s.stopReason = "bored",
      /stopReason is "bored", expected null or one of/,
    ],
    [(s) => delete s.config, /config is undefined, not an object/],
    [
      (s) => s.history = [{ epoch: 0, loss: "x" }],
      /history\[0\].epoch is 0, expected a positive integer .*; history\[0\].loss is "x"/,
    ],
    [(s) => s.resumes = {}, /resumes\[0\] is null, not an object/],
  ];
  await withRun(async (paths) => {
    const model = tinyModel();
    const optimizer = tf.train.adam(0.01);
    for (const [change, problem] of cases) {
      const { state } = await savedRun(paths);
      await editSavedState(paths, change);
      const named = (e: Error) =>
        e.message.startsWith(`checkpoint ${paths.checkpoint}: state.json: `) &&
        problem.test(e.message);
      await assert.rejects(check(paths), named);
      await assert.rejects(check(paths, { resume: false }), named);
      await assert.rejects(readTrainState(paths.checkpoint), named);
      await assert.rejects(
        resumeFromCheckpoint({
          paths,
          model,
          optimizer,
          saved: state,
          epochs: 3,
        }),
        named,
      );
    }
    model.dispose();
    optimizer.dispose();
  });
});
