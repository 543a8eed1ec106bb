import assert from "node:assert/strict";
import { tf } from "../core/tf.ts";
import { resnet } from "./models.ts";
import {
  nativeKernelsStatus,
  restoreTfjsKernels,
  useNativeKernels,
} from "./native_kernels.ts";

type Tensor = import("@tensorflow/tfjs-node").Tensor;

const SMALL = { inputSize: 32, channels: 1, numClasses: 3 };

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

Deno.test("native batch norm in training gives tfjs's outputs, gradients and moving statistics", async () => {
  const start = tf.memory().numTensors;
  const options = { ...SMALL, filters: [8, 16], blocksPerStage: 1, seed: 5 };
  const xt = tf.randomUniform([6, 32, 32, 1], 0, 1, "float32", 8);
  const y = tf.tidy(() =>
    tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2], "int32"), 3)
  );
  // One training-mode pass of a fresh model: loss, gradients, weights after.
  const trainPass = async (native: boolean) => {
    if (native) useNativeKernels();
    else restoreTfjsKernels();
    const model = resnet({ ...options, dropout: 0 });
    const vars = model.trainableWeights.map((w) =>
      (w as unknown as { val: import("@tensorflow/tfjs-node").Variable }).val
    );
    let result!: { value: Tensor; grads: Record<string, Tensor> };
    const profile = await tf.profile(() => {
      result = tf.variableGrads(() =>
        tf.losses.softmaxCrossEntropy(
          y,
          model.apply(xt, { training: true }) as Tensor,
        ) as import("@tensorflow/tfjs-node").Scalar, vars);
    });
    const grads = vars.map((v) => result.grads[v.name]);
    const out = {
      kernels: new Set(profile.kernels.map((k) => k.name)),
      loss: result.value,
      grads,
      // Includes every batch norm layer's moving mean and variance.
      weights: model.getWeights().map((w) => w.clone()),
    };
    model.dispose();
    return out;
  };
  const reference = await trainPass(false);
  const native = await trainPass(true);
  assert.ok(
    nativeKernelsStatus().replaced.includes("BatchNormalization (training)"),
  );
  assert.ok(native.kernels.has("NativeBatchNormTraining"));
  assert.ok(native.kernels.has("NativeBatchNormTrainingGrad"));
  assert.ok(!reference.kernels.has("NativeBatchNormTraining"));
  assert.ok(maxAbsDiff(native.loss, reference.loss) < 1e-5);
  assert.equal(native.grads.length, reference.grads.length);
  native.grads.forEach((g, i) => {
    const scale = tf.tidy(() =>
      tf.max(tf.abs(reference.grads[i])).dataSync()[0]
    );
    assert.ok(scale > 0, `gradient ${i} is not all zero`);
    assert.ok(
      maxAbsDiff(g, reference.grads[i]) <= 1e-4 * scale + 1e-7,
      `gradient ${i}`,
    );
  });
  // The moving statistics moved, and moved the same way.
  const fresh = resnet(options);
  const moved = fresh.getWeights().some((w, i) =>
    maxAbsDiff(w, native.weights[i]) > 1e-3
  );
  fresh.dispose();
  assert.ok(moved, "moving statistics were updated");
  native.weights.forEach((w, i) =>
    assert.ok(maxAbsDiff(w, reference.weights[i]) < 1e-5, `weight ${i}`)
  );
  for (const r of [reference, native]) {
    tf.dispose([r.loss, ...r.grads, ...r.weights]);
  }
  tf.dispose([xt, y]);
  assert.equal(tf.memory().numTensors, start);
});
