import assert from "node:assert/strict";
import { tf } from "../core/tf.ts";
import { seedCnn, vgg } from "./models.ts";
import {
  nativeKernelsStatus,
  restoreTfjsKernels,
  useNativeKernels,
} from "./native_kernels.ts";

type Tensor = import("@tensorflow/tfjs-node").Tensor;
type LayersModel = import("@tensorflow/tfjs-node").LayersModel;

const SMALL = { inputSize: 32, channels: 1, numClasses: 3 };

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

Deno.test("native kernels give tfjs's gradients and predictions", () => {
  const start = tf.memory().numTensors;
  const cases: LayersModel[] = [
    seedCnn({ ...SMALL, seed: 2 }),
    vgg({
      inputSize: 23,
      channels: 2,
      numClasses: 3,
      filters: [4, 8],
      batchNorm: false,
      seed: 2,
    }),
  ];
  for (const model of cases) {
    const [, h, w, c] = model.inputs[0].shape as number[];
    // Random images plus one constant image (ties in max pooling).
    const xt = tf.tidy(() =>
      tf.concat([
        tf.randomUniform([4, h, w, c], 0, 1, "float32", 3),
        tf.ones([1, h, w, c]),
      ])
    );
    const y = tf.tidy(() =>
      tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1], "int32"), 3)
    );
    const loss = () =>
      tf.losses.softmaxCrossEntropy(
        y,
        model.apply(xt, { training: false }) as Tensor,
      ) as import("@tensorflow/tfjs-node").Scalar;
    restoreTfjsKernels();
    const reference = tf.variableGrads(loss);
    const referencePrediction = model.predict(xt) as Tensor;
    const status = useNativeKernels();
    assert.ok(status.active, `skipped: ${status.skipped.join("; ")}`);
    for (
      const name of [
        "Relu gradient",
        "MaxPool",
        "MaxPoolGrad",
        "Conv2D",
        "FusedConv2D",
      ]
    ) {
      assert.ok(status.replaced.includes(name), `${name} replaced`);
    }
    const native = tf.variableGrads(loss);
    const prediction = model.predict(xt) as Tensor;
    assert.ok(maxAbsDiff(prediction, referencePrediction) < 1e-5);
    assert.ok(
      Math.abs(native.value.dataSync()[0] - reference.value.dataSync()[0]) <
        1e-5,
    );
    for (const name of Object.keys(reference.grads)) {
      const scale = tf.tidy(() =>
        tf.max(tf.abs(reference.grads[name])).dataSync()[0]
      );
      assert.ok(
        maxAbsDiff(native.grads[name], reference.grads[name]) <=
          1e-4 * scale + 1e-7,
        `${model.name} ${name}`,
      );
    }
    tf.dispose([
      xt,
      y,
      reference.value,
      native.value,
      prediction,
      referencePrediction,
    ]);
    tf.dispose(Object.values(reference.grads));
    tf.dispose(Object.values(native.grads));
    model.dispose();
  }
  assert.ok(nativeKernelsStatus().active);
  assert.equal(tf.memory().numTensors, start);
});
