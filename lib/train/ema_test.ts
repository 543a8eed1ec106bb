import assert from "node:assert/strict";
import { type LayersModel, tf } from "../core/tf.ts";
import { emaDecayAt, WeightAverage } from "./ema.ts";
import { tensorsSnapshot, weightSnapshot } from "./snapshot.ts";

function tinyModel(): LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({ units: 2, inputShape: [2] }),
      tf.layers.batchNormalization(),
    ],
  });
}

/** Sets every weight of `model` to `value`. */
function fill(model: LayersModel, value: number): void {
  const tensors = model.weights.map((w) => tf.fill(w.shape as number[], value));
  model.setWeights(tensors);
  tf.dispose(tensors);
}

const floats = (bytes: Uint8Array) =>
  Array.from(
    new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4),
  );

Deno.test("emaDecayAt: a warm-up of (1 + n) / (10 + n), capped at the decay", () => {
  assert.equal(emaDecayAt(0.9, 0), 0.1);
  assert.equal(emaDecayAt(0.9, 1), 2 / 11);
  assert.equal(emaDecayAt(0.9, 80), 0.9); // 81/90 = 0.9 exactly at the cap
  assert.equal(emaDecayAt(0.9, 1000), 0.9);
  assert.equal(emaDecayAt(0.5, 10), 0.5);
});

Deno.test("WeightAverage folds the live weights in, batch-norm statistics included", () => {
  const start = tf.memory().numTensors;
  const model = tinyModel();
  fill(model, 0);
  const average = new WeightAverage(model, { decay: 0.5 });
  let expected = 0;
  let updates = 0;
  for (const live of [1, 3, -2, 5]) {
    fill(model, live);
    const d = emaDecayAt(0.5, updates);
    updates = average.update(updates);
    expected = d * expected + (1 - d) * live;
  }
  assert.equal(updates, 4);
  for (const v of floats(average.snapshot())) {
    assert.ok(Math.abs(v - expected) < 1e-6, `${v} vs ${expected}`);
  }
  // Swapping in: the model holds the average, the live weights come back.
  const swap = average.swapIn();
  assert.deepEqual(floats(swap.live), floats(swap.live).map(() => 5));
  assert.deepEqual(weightSnapshot(model), swap.average);
  average.dispose();
  model.dispose();
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("WeightAverage starts from a saved average when given one", () => {
  const model = tinyModel();
  fill(model, 1);
  const saved = model.weights.map((w) => tf.fill(w.shape as number[], 7));
  const initial = tensorsSnapshot(saved);
  tf.dispose(saved);
  const average = new WeightAverage(model, { decay: 0.9, initial });
  assert.deepEqual(average.snapshot(), initial);
  assert.throws(
    () =>
      new WeightAverage(model, { decay: 0.9, initial: initial.subarray(4) }),
    /weights snapshot holds/,
  );
  average.dispose();
  model.dispose();
});
