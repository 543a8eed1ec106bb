import assert from "node:assert/strict";
import { tf } from "../core/tf.ts";
import { buildModel } from "../model/models.ts";
import {
  restoreSnapshot,
  snapshotTensors,
  tensorsSnapshot,
  weightSnapshot,
} from "./snapshot.ts";

const seedCnn = (seed: number) =>
  buildModel("seedCnn", { inputSize: 32, channels: 1, numClasses: 4, seed });

Deno.test("a weight snapshot of one model restores into another of the same architecture, exactly", () => {
  const start = tf.memory().numTensors;
  const a = seedCnn(1);
  const b = seedCnn(2);
  const bytes = weightSnapshot(a);
  const values = a.weights.reduce(
    (s, w) => s + (w.shape as number[]).reduce((x, y) => x * y, 1),
    0,
  );
  assert.equal(bytes.byteLength, 4 * values);
  assert.notDeepEqual(weightSnapshot(b), bytes);
  restoreSnapshot(b, bytes);
  assert.deepEqual(weightSnapshot(b), bytes);
  a.dispose();
  b.dispose();
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("snapshotTensors: shapes and dtypes of the template, and a size check", () => {
  const start = tf.memory().numTensors;
  const tensors = [tf.tensor2d([[1, 2], [3, 4]]), tf.tensor1d([5])];
  // A view into a bigger buffer reads only its own bytes.
  const bytes = tensorsSnapshot(tensors);
  const padded = new Uint8Array(bytes.byteLength + 8);
  padded.set(bytes, 4);
  const back = snapshotTensors(
    padded.subarray(4, 4 + bytes.byteLength),
    tensors,
  );
  assert.deepEqual(back.map((t) => t.shape), [[2, 2], [1]]);
  assert.deepEqual(back.map((t) => Array.from(t.dataSync())), [[1, 2, 3, 4], [
    5,
  ]]);
  assert.throws(
    () => snapshotTensors(bytes, [tensors[0]]),
    /weights snapshot holds 5 values, the model 4/,
  );
  tf.dispose([...tensors, ...back]);
  assert.equal(tf.memory().numTensors, start);
});
