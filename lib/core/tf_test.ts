import assert from "node:assert/strict";
import util from "node:util";
import { backendName, patchNodeUtil, type Tensor4D, tf, tfInfo } from "./tf.ts";

Deno.test("tf: the active backend is native TensorFlow", () => {
  assert.equal(backendName(), "tensorflow");
  assert.equal(tf.getBackend(), "tensorflow");
});

Deno.test("tf: tfInfo reports tfjs-node 4.22 and the libtensorflow in use", () => {
  const info = tfInfo();
  assert.equal(info.backend, "tensorflow");
  assert.equal(info.tfjs["tfjs-node"], "4.22.0");
  assert.match(info.libtensorflow, /^\d+\.\d+\.\d+/);
  assert.equal(info.deno.deno, Deno.version.deno);
});

Deno.test("tf: conv2d gives the known result and leaks no tensor", () => {
  const before = tf.memory().numTensors;
  const out = tf.tidy(() => {
    // 4x4 image 1..16, 3x3 kernel with a 1 in the centre and -1 top-left.
    const image = tf.tensor4d(
      Array.from({ length: 16 }, (_, i) => i + 1),
      [1, 4, 4, 1],
    );
    const kernel = tf.tensor4d([-1, 0, 0, 0, 1, 0, 0, 0, 0], [3, 3, 1, 1]);
    return tf.conv2d(image, kernel, 1, "valid").arraySync();
  });
  // centre pixel minus its top-left neighbour = 5 everywhere (row stride 4 + 1).
  assert.deepEqual(out, [[[[5], [5]], [[5], [5]]]]);
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("tf: same-padding conv2d of ones counts the neighbours", () => {
  const before = tf.memory().numTensors;
  const out = tf.tidy(() =>
    tf.conv2d(
      tf.ones([1, 3, 3, 1]) as Tensor4D,
      tf.ones([3, 3, 1, 1]) as Tensor4D,
      1,
      "same",
    ).arraySync()
  ) as number[][][][];
  assert.deepEqual(out[0].map((row) => row.map((p) => p[0])), [
    [4, 6, 4],
    [6, 9, 6],
    [4, 6, 4],
  ]);
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("tf: the node:util patch is in place and idempotent", () => {
  patchNodeUtil();
  const u = util as unknown as {
    isNullOrUndefined: (v: unknown) => boolean;
    isArray: (v: unknown) => boolean;
  };
  assert.equal(u.isNullOrUndefined(null), true);
  assert.equal(u.isNullOrUndefined(undefined), true);
  assert.equal(u.isNullOrUndefined(0), false);
  assert.equal(u.isArray([1]), true);
  assert.equal(u.isArray("x"), false);
});
