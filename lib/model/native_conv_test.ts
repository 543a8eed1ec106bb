import assert from "node:assert/strict";
import { type Tensor, type Tensor4D, tf } from "../core/tf.ts";
import { KernelSwaps } from "./native_backend.ts";
import {
  installConv2D,
  installConv2DBackpropFilter,
  installConv2DBackpropInput,
} from "./native_conv.ts";

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** A convolution's output and its input and filter gradients. */
function convAndGrads(
  x: Tensor4D,
  w: Tensor4D,
  conv: { strides: number; pad: "same" | "valid" },
): Tensor[] {
  const f = (xt: Tensor, wt: Tensor) =>
    tf.conv2d(
      xt as Tensor4D,
      wt as Tensor4D,
      conv.strides,
      conv.pad,
    );
  const y = f(x, w);
  const [dx, dw] = tf.grads((xt: Tensor, wt: Tensor) => f(xt, wt).square())([
    x,
    w,
  ]);
  return [y, dx, dw];
}

/** `run` with tfjs's kernels and with the native convolutions. */
function tfjsAndNative(run: () => Tensor[]): [Tensor[], Tensor[]] {
  const reference = run();
  const swaps = new KernelSwaps();
  installConv2D(swaps);
  installConv2DBackpropInput(swaps);
  installConv2DBackpropFilter(swaps);
  try {
    assert.deepEqual(swaps.skipped, []);
    assert.deepEqual(swaps.replaced, [
      "Conv2D",
      "FusedConv2D",
      "Conv2DBackpropInput",
      "Conv2DBackpropFilter",
    ]);
    return [reference, run()];
  } finally {
    swaps.restore();
  }
}

Deno.test("native convolutions give tfjs's outputs and gradients (strided SAME, VALID, few and many channels)", () => {
  const start = tf.memory().numTensors;
  type Shape = [number, number, number, number];
  const cases: {
    x: Shape;
    w: Shape;
    strides: number;
    pad: "same" | "valid";
  }[] = [
    // 3 input channels: the filter gradient runs on oneDNN too
    { x: [2, 9, 7, 3], w: [5, 5, 3, 4], strides: 2, pad: "same" },
    // 8 input channels: the filter gradient stays with tfjs's kernel
    { x: [2, 8, 8, 8], w: [3, 3, 8, 6], strides: 1, pad: "valid" },
    // 1×1 convolutions: the filter gradient is a matrix product
    { x: [2, 9, 7, 3], w: [1, 1, 3, 5], strides: 2, pad: "same" },
    { x: [2, 6, 6, 20], w: [1, 1, 20, 4], strides: 1, pad: "valid" },
  ];
  for (const c of cases) {
    const x = tf.randomUniform(c.x, -1, 1, "float32", 1) as Tensor4D;
    const w = tf.randomUniform(c.w, -1, 1, "float32", 2) as Tensor4D;
    const [reference, native] = tfjsAndNative(() => convAndGrads(x, w, c));
    native.forEach((t, i) => {
      assert.deepEqual(t.shape, reference[i].shape);
      const scale = tf.tidy(() => tf.max(tf.abs(reference[i])).dataSync()[0]);
      assert.ok(scale > 0);
      assert.ok(
        maxAbsDiff(t, reference[i]) <= 1e-4 * scale,
        `${JSON.stringify(c)} output ${i}`,
      );
    });
    tf.dispose([x, w, ...reference, ...native]);
  }
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("native FusedConv2D: with and without a bias, ReLU fused, as tfjs computes them", () => {
  const start = tf.memory().numTensors;
  const x = tf.randomUniform([1, 6, 6, 2], -1, 1, "float32", 3) as Tensor4D;
  const filter = tf.randomUniform(
    [3, 3, 2, 5],
    -1,
    1,
    "float32",
    4,
  ) as Tensor4D;
  const bias = tf.tensor1d([0.5, -0.5, 0, 1, -1]);
  const [reference, native] = tfjsAndNative(() =>
    [bias, undefined].flatMap((b) =>
      (["linear", "relu"] as const).map((activation) =>
        tf.fused.conv2d({
          x,
          filter,
          ...(b ? { bias: b } : {}),
          strides: 1,
          pad: "same",
          activation,
        })
      )
    )
  );
  assert.equal(native.length, 4);
  native.forEach((t, i) => assert.ok(maxAbsDiff(t, reference[i]) < 1e-5));
  tf.dispose([x, filter, bias, ...reference, ...native]);
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("a dilated convolution falls back to tfjs's own kernel", () => {
  const start = tf.memory().numTensors;
  const x = tf.randomUniform([1, 9, 9, 2], -1, 1, "float32", 5) as Tensor4D;
  const w = tf.randomUniform([3, 3, 2, 3], -1, 1, "float32", 6) as Tensor4D;
  // (tfjs has no gradient for dilated convolutions: the forward pass only.)
  const [reference, native] = tfjsAndNative(() => [
    tf.conv2d(x, w, 1, "valid", "NHWC", 2),
  ]);
  // The same kernel ran both times: identical to the last bit.
  assert.deepEqual(native[0].shape, [1, 5, 5, 3]);
  assert.equal(maxAbsDiff(native[0], reference[0]), 0);
  tf.dispose([x, w, ...reference, ...native]);
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("a narrow 1×1 stride-2 convolution trains without touching TensorFlow's faulty filter gradient", () => {
  // TensorFlow's own Conv2DBackpropFilter corrupts the heap on this shape
  // (a ResNet projection shortcut out of an 8-channel stage). The reference
  // is the stride-1 gradient on the input's every other row and column,
  // which is the same sum.
  const start = tf.memory().numTensors;
  const x = tf.randomUniform([4, 16, 16, 8], -1, 1, "float32", 5) as Tensor4D;
  const w = tf.randomUniform([1, 1, 8, 16], -1, 1, "float32", 6) as Tensor4D;
  const picked = tf.stridedSlice(x, [0, 0, 0, 0], x.shape, [1, 2, 2, 1]);
  const reference = tf.grad((wt: Tensor) =>
    tf.conv2d(picked as Tensor4D, wt as Tensor4D, 1, "valid").square().sum()
  )(w);
  const swaps = new KernelSwaps();
  installConv2DBackpropFilter(swaps);
  try {
    const dw = tf.grad((wt: Tensor) =>
      tf.conv2d(x, wt as Tensor4D, 2, "same").square().sum()
    )(w);
    const scale = tf.tidy(() => tf.max(tf.abs(reference)).dataSync()[0]);
    assert.ok(maxAbsDiff(dw, reference) <= 1e-5 * scale);
    dw.dispose();
  } finally {
    swaps.restore();
  }
  tf.dispose([x, w, picked, reference]);
  assert.equal(tf.memory().numTensors, start);
});
