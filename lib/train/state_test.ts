import assert from "node:assert/strict";
import { resolveConfig } from "./config.ts";
import {
  bestRecord,
  type EpochRecord,
  initialState,
  resumedState,
  type StopReason,
  type TrainState,
} from "./state.ts";

const IMAGES = {
  pixels: new Uint8Array(2 * 4),
  labels: new Int32Array([0, 1]),
};
const CONFIG = resolveConfig({
  train: IMAGES,
  validation: IMAGES,
  classes: ["a", "b"],
  size: 2,
  epochs: 3,
  learningRate: 2e-3,
});

function record(epoch: number, val_loss: number): EpochRecord {
  return {
    epoch,
    loss: 1,
    acc: 0.5,
    val_loss,
    val_acc: 0.5,
    lr: 2e-3,
    seconds: 1,
    trainSeconds: 1,
    imagesPerSecond: 2,
  };
}

/** A run that stopped after `epochs` epochs for `reason`. */
function stopped(epochs: number, reason: StopReason): TrainState {
  return {
    ...initialState({
      config: CONFIG,
      datasetFingerprint: "fp",
      trainImages: 2,
      at: "t0",
    }),
    epochsCompleted: epochs,
    history: [record(1, 0.9), record(2, 0.8), record(3, 0.85)].slice(0, epochs),
    stopReason: reason,
  };
}

Deno.test("initialState: nothing done, the initial learning rate, no best yet", () => {
  const state = initialState({
    config: CONFIG,
    datasetFingerprint: "fp",
    trainImages: 2,
    at: "2025-01-01T00:00:00.000Z",
  });
  assert.deepEqual(state, {
    config: CONFIG,
    datasetFingerprint: "fp",
    trainImages: 2,
    epochsCompleted: 0,
    history: [],
    learningRate: 2e-3,
    best: { loss: null, epoch: 0 },
    earlyStopping: { best: null, wait: 0 },
    plateau: { best: null, wait: 0 },
    stopReason: null,
    seconds: 0,
    startedAt: "2025-01-01T00:00:00.000Z",
    resumes: [],
  });
});

Deno.test("resumedState: more epochs reopen a completed run; an aborted one goes on; other stops hold", () => {
  const done = stopped(3, "completed");
  assert.equal(
    resumedState(done, { epochs: 3, at: "t1" }).stopReason,
    "completed",
  );
  const extended = resumedState(done, { epochs: 5, at: "t1" });
  assert.equal(extended.stopReason, null);
  assert.equal(extended.config.epochs, 5);
  assert.deepEqual(extended.resumes, [{ epochsCompleted: 3, at: "t1" }]);
  // The saved state is left as it was.
  assert.equal(done.config.epochs, 3);
  assert.deepEqual(done.resumes, []);
  assert.equal(
    resumedState(stopped(2, "aborted"), { epochs: 3, at: "t1" }).stopReason,
    null,
  );
  for (const reason of ["early-stopping", "time-budget"] as const) {
    assert.equal(
      resumedState(stopped(2, reason), { epochs: 9, at: "t1" }).stopReason,
      reason,
    );
  }
  const twice = resumedState(extended, { epochs: 5, at: "t2" });
  assert.equal(twice.resumes.length, 2);
});

Deno.test("bestRecord: the record of the best epoch", () => {
  const state = { ...stopped(3, "completed"), best: { loss: 0.8, epoch: 2 } };
  assert.equal(bestRecord(state), state.history[1]);
  assert.equal(bestRecord(stopped(0, "aborted")), undefined);
});
