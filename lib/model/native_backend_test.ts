import assert from "node:assert/strict";
import { tf } from "../core/tf.ts";
import { KernelSwaps, nativeBackend, opAttrs } from "./native_backend.ts";

Deno.test("nativeBackend runs a TensorFlow op by name with opAttrs", () => {
  const start = tf.memory().numTensors;
  const backend = nativeBackend();
  const a = opAttrs(backend.binding);
  const x = tf.tensor1d([-2, 0, 3]);
  const y = backend.executeSingleOutput("Relu", [a.float()], [x]);
  assert.deepEqual(Array.from(y.dataSync()), [0, 0, 3]);
  tf.dispose([x, y]);
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("KernelSwaps: a replaced kernel runs until restore puts tfjs's back", () => {
  const start = tf.memory().numTensors;
  const tfjs = tf.getKernel("Neg", "tensorflow")!.kernelFunc;
  const swaps = new KernelSwaps();
  let calls = 0;
  swaps.replaceKernel("Neg", (original) => (args) => {
    calls++;
    return original(args);
  });
  let undone = false;
  swaps.onUndo(() => undone = true);
  assert.deepEqual(swaps.replaced, ["Neg"]);
  const x = tf.tensor1d([1, -2]);
  const y = tf.neg(x);
  assert.deepEqual(Array.from(y.dataSync()), [-1, 2]);
  assert.equal(calls, 1);
  swaps.restore();
  assert.ok(undone);
  assert.equal(tf.getKernel("Neg", "tensorflow")!.kernelFunc, tfjs);
  const z = tf.neg(x);
  assert.equal(calls, 1);
  tf.dispose([x, y, z]);
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("KernelSwaps: probes free their tensors and record why they fail", () => {
  const start = tf.memory().numTensors;
  const swaps = new KernelSwaps();
  assert.ok(swaps.probe("Relu", () => tf.relu(tf.tensor1d([1, -1]))));
  assert.equal(
    swaps.probe("NoSuchOp", () => {
      throw new Error("not in this build");
    }),
    false,
  );
  swaps.replaceKernel("NoSuchKernel", (original) => original);
  assert.deepEqual(swaps.skipped, [
    "NoSuchOp: not in this build",
    "NoSuchKernel: tfjs has no kernel to replace",
  ]);
  assert.deepEqual(swaps.replaced, []);
  assert.equal(tf.memory().numTensors, start);
});
