import assert from "node:assert/strict";
import { tf } from "../core/tf.ts";
import { NativeAdam } from "./native_adam.ts";

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
