import assert from "node:assert/strict";
import { tf } from "../core/tf.ts";
import { restoreTfjsKernels, useNativeKernels } from "./native_kernels.ts";

type Tensor = import("@tensorflow/tfjs-node").Tensor;

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

Deno.test("max pooling with SAME padding and odd sizes matches tfjs", () => {
  useNativeKernels();
  const x = tf.randomUniform([2, 7, 5, 3], -1, 1, "float32", 4);
  const f = (t: Tensor) =>
    tf.maxPool(
      t as import("@tensorflow/tfjs-node").Tensor4D,
      [3, 2],
      [2, 2],
      "same",
    ).square().sum();
  const nativeY = tf.maxPool(
    x as import("@tensorflow/tfjs-node").Tensor4D,
    [3, 2],
    [2, 2],
    "same",
  );
  const nativeDx = tf.grad(f)(x);
  restoreTfjsKernels();
  const refY = tf.maxPool(
    x as import("@tensorflow/tfjs-node").Tensor4D,
    [3, 2],
    [2, 2],
    "same",
  );
  const refDx = tf.grad(f)(x);
  useNativeKernels();
  assert.deepEqual(nativeY.shape, [2, 4, 3, 3]);
  assert.equal(maxAbsDiff(nativeY, refY), 0);
  assert.equal(maxAbsDiff(nativeDx, refDx), 0);
  tf.dispose([x, nativeY, nativeDx, refY, refDx]);
});
