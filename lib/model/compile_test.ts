import assert from "node:assert/strict";
import { tf } from "../core/tf.ts";
import { rng } from "../core/random.ts";
import { compileModel } from "./compile.ts";
import { seedCnn } from "./models.ts";

type Tensor = import("@tensorflow/tfjs-node").Tensor;

const SMALL = { inputSize: 32, channels: 1, numClasses: 3 };

/** Images with a bright square (class 1) or without (class 0), plus noise. */
function brightSquares(n: number, size: number, seed: number) {
  const r = rng(seed);
  const x = new Float32Array(n * size * size);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const base = i * size * size;
    for (let p = 0; p < size * size; p++) x[base + p] = r.uniform(0, 0.3);
    y[i] = i % 2;
    if (y[i] === 1) {
      const s = 8;
      const top = r.int(0, size - s);
      const left = r.int(0, size - s);
      for (let dy = 0; dy < s; dy++) {
        for (let dx = 0; dx < s; dx++) {
          x[base + (top + dy) * size + left + dx] = 1;
        }
      }
    }
  }
  return {
    x: tf.tensor4d(x, [n, size, size, 1]),
    y: tf.tensor1d(y),
  };
}

Deno.test("a few training steps on bright squares lower the loss, without leaks", async () => {
  const start = tf.memory().numTensors;
  const { x, y } = brightSquares(64, 32, 11);
  for (const native of [true, false]) {
    const model = compileModel(seedCnn({ ...SMALL, numClasses: 2, seed: 3 }), {
      learningRate: 3e-3,
      native,
    });
    const lossOf = () => {
      const out = model.evaluate(x, y, { batchSize: 64 }) as Tensor[];
      const value = out[0].dataSync()[0];
      tf.dispose(out);
      return value;
    };
    const before = lossOf();
    await model.fit(x, y, {
      batchSize: 16,
      epochs: 4,
      shuffle: false,
      verbose: 0,
    });
    const after = lossOf();
    assert.ok(after < before * 0.8, `native=${native}: ${before} -> ${after}`);
    assert.equal(
      model.optimizer.constructor.name,
      native ? "NativeAdam" : "AdamOptimizer",
    );
    // Compiling again frees the previous optimizer.
    compileModel(model, { native });
    model.dispose();
  }
  tf.dispose([x, y]);
  assert.equal(tf.memory().numTensors, start);
});
