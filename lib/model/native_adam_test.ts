import assert from "node:assert/strict";
import { tf } from "../core/tf.ts";
import { NativeAdam } from "./native_adam.ts";

type Optimizer = import("@tensorflow/tfjs-node").Optimizer;
type Variable = import("@tensorflow/tfjs-node").Variable;

Deno.test("NativeAdam follows Keras' Adam update and leaves old values intact", () => {
  const start = tf.memory().numTensors;
  const w0 = [0.5, -1, 2];
  const v = tf.tidy(() =>
    tf.variable(tf.tensor1d(w0), true, "models_test_adam_w")
  );
  const before = v.clone();
  const opt = new NativeAdam({ learningRate: 0.1 });
  const grads = [[1, -2, 0.5], [0.3, 0.3, -1]];
  // Keras: m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²;
  // w -= lr·√(1-β2ᵗ)/(1-β1ᵗ) · m/(√v + ε)
  const want = [...w0];
  const m = [0, 0, 0];
  const s = [0, 0, 0];
  grads.forEach((g, step) => {
    const t = step + 1;
    const lrT = 0.1 * Math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t);
    for (let i = 0; i < 3; i++) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      s[i] = 0.999 * s[i] + 0.001 * g[i] ** 2;
      want[i] -= lrT * m[i] / (Math.sqrt(s[i]) + 1e-7);
    }
    const gt = tf.tensor1d(g);
    opt.applyGradients([{ name: v.name, tensor: gt }]);
    gt.dispose();
  });
  const got = Array.from(v.dataSync());
  got.forEach((x, i) =>
    assert.ok(Math.abs(x - want[i]) < 1e-6, `${x} vs ${want[i]}`)
  );
  assert.deepEqual(Array.from(before.dataSync()), w0);
  assert.equal(opt.iterations, 2);
  assert.equal(opt.getClassName(), "Adam");
  opt.dispose();
  tf.dispose([v, before]);
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("NativeAdam's state survives a round trip, also through tfjs's Adam, and its rate can change", async () => {
  const start = tf.memory().numTensors;
  const make = (name: string) =>
    tf.tidy(() => tf.variable(tf.tensor1d([0.5, -1, 2]), true, name));
  const grads = [[1, -2, 0.5], [0.3, 0.3, -1], [-0.2, 0.7, 0.1]];
  const step = (opt: Optimizer, w: Variable, g: number[]) => {
    const gt = tf.tensor1d(g);
    opt.applyGradients([{ name: w.name, tensor: gt }]);
    gt.dispose();
  };
  // Two steps, a saved state, a new optimizer, the third step: as three in one go.
  const a = make("native_adam_round_a");
  const straight = new NativeAdam({ learningRate: 0.1 });
  grads.forEach((g) => step(straight, a, g));
  const b = make("native_adam_round_b");
  const first = new NativeAdam({ learningRate: 0.1 });
  grads.slice(0, 2).forEach((g) => step(first, b, g));
  const state = await first.getWeights();
  assert.deepEqual(state.map((w) => w.name), [
    "iter",
    "native_adam_round_b/m",
    "native_adam_round_b/v",
  ]);
  const second = new NativeAdam({ learningRate: 0.1 });
  await second.setWeights(state);
  assert.equal(second.iterations, 2);
  step(second, b, grads[2]);
  assert.deepEqual(Array.from(b.dataSync()), Array.from(a.dataSync()));
  // tfjs's Adam reads the same layout.
  const tfjsAdam = tf.train.adam(0.1, 0.9, 0.999, 1e-7);
  await tfjsAdam.setWeights(state);
  assert.equal(tfjsAdam.iterations, 2);
  tf.dispose(state.map((w) => w.tensor));
  tfjsAdam.dispose();
  const tfjsAdam2 = tf.train.adam(0.1, 0.9, 0.999, 1e-7);
  // And NativeAdam takes over a state tfjs's Adam saved (an older checkpoint).
  const c = make("native_adam_round_c");
  grads.slice(0, 2).forEach((g) => step(tfjsAdam2, c, g));
  const saved = await tfjsAdam2.getWeights();
  const takeover = new NativeAdam({ learningRate: 0.1 });
  await takeover.setWeights(saved);
  const cNative = c.clone();
  step(tfjsAdam2, c, grads[2]);
  const cv = tf.variable(cNative, true, "native_adam_round_c2");
  // Moments are matched by position, so another weight's name is fine.
  step(takeover, cv, grads[2]);
  const close = Array.from(cv.dataSync()).every((x, i) =>
    Math.abs(x - c.dataSync()[i]) < 1e-5
  );
  assert.ok(close, `${cv.dataSync()} against ${c.dataSync()}`);
  saved.filter((w) => w.name === "iter").forEach((w) => w.tensor.dispose());
  takeover.dispose();
  tf.dispose([c, cNative, cv]);
  // A new learning rate applies to the next step: zero stops it.
  second.learningRate = 0;
  const before = Array.from(b.dataSync());
  step(second, b, grads[0]);
  assert.deepEqual(Array.from(b.dataSync()), before);
  assert.equal(second.getConfig().learningRate, 0);
  [straight, first, second, tfjsAdam2].forEach((o) => o.dispose());
  tf.dispose([a, b]);
  assert.equal(tf.memory().numTensors, start);
});
