import assert from "node:assert/strict";
import { type Tensor, tf } from "../core/tf.ts";
import { buildModel } from "../model/models.ts";
import { evaluateSplit } from "./evaluate_split.ts";
import { batchTensor, crossEntropy } from "./step.ts";

const SIZE = 32;

function noisy(n: number) {
  const pixels = new Uint8Array(n * SIZE * SIZE);
  let s = 11;
  for (let i = 0; i < pixels.length; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    pixels[i] = s % 256;
  }
  return { pixels, labels: Int32Array.from({ length: n }, (_, i) => i % 4) };
}

Deno.test("evaluateSplit: the batch size changes nothing but the speed, and nothing leaks", async () => {
  const model = buildModel("seedCnn", {
    inputSize: SIZE,
    channels: 1,
    numClasses: 4,
    seed: 2,
  });
  const split = noisy(10);
  const start = tf.memory().numTensors;
  const small = await evaluateSplit(model, split, { size: SIZE, batchSize: 3 });
  const whole = await evaluateSplit(model, split, { size: SIZE });
  assert.equal(tf.memory().numTensors, start);
  assert.equal(small.count, 10);
  assert.deepEqual(small.predicted, whole.predicted);
  assert.equal(small.acc, whole.acc);
  assert.ok(Math.abs(small.loss - whole.loss) < 1e-6);
  // The loss is the mean plain cross-entropy, the accuracy the share right.
  const [expected, predicted] = tf.tidy(() => {
    const probs = model.predict(
      batchTensor(split.pixels, Array.from({ length: 10 }, (_, i) => i), SIZE),
    ) as Tensor;
    const y = tf.tensor1d(split.labels, "int32");
    return [
      tf.mean(crossEntropy(probs, y)).dataSync()[0],
      Array.from(tf.argMax(probs, -1).dataSync()),
    ];
  });
  assert.ok(Math.abs(whole.loss - expected) < 1e-6);
  assert.deepEqual(Array.from(whole.predicted), predicted);
  assert.equal(
    whole.acc,
    predicted.filter((p, i) => p === split.labels[i]).length / 10,
  );
  model.dispose();
});

Deno.test("evaluateSplit: an empty split has no loss or accuracy", async () => {
  const model = buildModel("seedCnn", {
    inputSize: SIZE,
    channels: 1,
    numClasses: 4,
  });
  const empty = { pixels: new Uint8Array(0), labels: new Int32Array(0) };
  const metrics = await evaluateSplit(model, empty, { size: SIZE });
  assert.equal(metrics.count, 0);
  assert.ok(Number.isNaN(metrics.loss) && Number.isNaN(metrics.acc));
  model.dispose();
});
