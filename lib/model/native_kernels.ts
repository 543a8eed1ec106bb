/**
 * TensorFlow's fused native CPU kernels in place of tfjs's, where they
 * compute the same thing.
 *
 * tfjs-node runs TensorFlow op by op, and some of tfjs's gradients are built
 * from many small JavaScript-level ops. {@linkcode useNativeKernels} (called
 * by `compileModel`) swaps in, one installer per kernel:
 *
 * | installer                              | what it routes to TensorFlow                                 | module                 |
 * | -------------------------------------- | ------------------------------------------------------------ | ---------------------- |
 * | {@linkcode installReluGrad}            | the ReLU gradient → `ReluGrad`                               | this one               |
 * | `installMaxPool`                       | `MaxPool`, `MaxPoolGrad` → oneDNN pooling                    | `native_pool.ts`       |
 * | `installConv2D`                        | `Conv2D`, `FusedConv2D` → oneDNN convolutions                | `native_conv.ts`       |
 * | `installConv2DBackpropInput`           | the input gradient of a conv → oneDNN                        | `native_conv.ts`       |
 * | `installConv2DBackpropFilter`          | the filter gradient of a few-channel conv → oneDNN           | `native_conv.ts`       |
 * | `installBatchNormTraining`             | batch norm in training → `FusedBatchNormV3` and its gradient | `native_batch_norm.ts` |
 * | `installBatchNormInference`            | batch norm in inference → one multiply and one add           | `native_batch_norm.ts` |
 *
 * The fused Adam step is `NativeAdam` (`native_adam.ts`). See
 * `bench/train.ts` (the seed CNN) and `bench/time_to_accuracy.ts` (the
 * ResNet) for the measurements against Keras.
 *
 * @module
 */
import { KernelSwaps } from "./native_backend.ts";
import {
  installBatchNormInference,
  installBatchNormTraining,
} from "./native_batch_norm.ts";
import {
  installConv2D,
  installConv2DBackpropFilter,
  installConv2DBackpropInput,
} from "./native_conv.ts";
import { installMaxPool } from "./native_pool.ts";
import { type Tensor, tf } from "../core/tf.ts";

type KernelArgs = Parameters<import("./native_backend.ts").KernelFunc>[0];

/** Which kernels {@linkcode useNativeKernels} replaced. */
export interface NativeKernelsStatus {
  /** Whether the replacements are active. */
  active: boolean;
  /** Names of the replaced tfjs kernels and gradients. */
  replaced: string[];
  /** Why some or all replacements were skipped, if they were. */
  skipped: string[];
}

let installed: KernelSwaps | undefined;
let lastStatus: NativeKernelsStatus = {
  active: false,
  replaced: [],
  skipped: [],
};

/** The tfjs kernel name of TensorFlow's `ReluGrad`. */
export const NATIVE_RELU_GRAD = "NativeReluGrad";

/**
 * Routes the ReLU gradient to TensorFlow's `ReluGrad` (registered as the
 * kernel {@linkcode NATIVE_RELU_GRAD}): tfjs builds it from `Step`, seven
 * ops plus a JavaScript-side array of ones the size of the activation.
 * Recorded in `swaps` as `Relu gradient`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KernelSwaps } from "./native_backend.ts";
 * import { installReluGrad } from "./native_kernels.ts";
 * import { tf } from "../core/tf.ts";
 * const swaps = new KernelSwaps();
 * installReluGrad(swaps);
 * assert.deepEqual(swaps.replaced, ["Relu gradient"]);
 * const x = tf.tensor1d([-1, 2]);
 * const dx = tf.grad((t) => tf.relu(t).sum())(x);
 * assert.deepEqual(Array.from(dx.dataSync()), [0, 1]);
 * tf.dispose([x, dx]);
 * swaps.restore();
 * ```
 */
export function installReluGrad(swaps: KernelSwaps): void {
  const { backend, attrs } = swaps;
  const reluGrad = (dy: Tensor, x: Tensor) =>
    backend.executeSingleOutput("ReluGrad", [attrs.float()], [dy, x]);
  if (
    !swaps.probe(
      "ReluGrad",
      () => reluGrad(tf.ones([2]), tf.tensor1d([-1, 1])),
    )
  ) return;
  tf.registerKernel({
    kernelName: NATIVE_RELU_GRAD,
    backendName: "tensorflow",
    kernelFunc: ({ inputs }: KernelArgs) =>
      reluGrad(inputs.dy as Tensor, inputs.x as Tensor),
  });
  const original = tf.getGradient("Relu");
  if (original) tf.unregisterGradient("Relu");
  tf.registerGradient({
    kernelName: "Relu",
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => {
      const [x] = saved;
      return {
        x: () =>
          tf.engine().runKernel(NATIVE_RELU_GRAD, {
            dy: dy as Tensor,
            x,
          }, {}) as Tensor,
      };
    },
  });
  swaps.onUndo(() => {
    tf.unregisterGradient("Relu");
    if (original) tf.registerGradient(original);
    tf.unregisterKernel(NATIVE_RELU_GRAD, "tensorflow");
  });
  swaps.replaced.push("Relu gradient");
}

/**
 * Replaces tfjs kernels and gradients of the `tensorflow` backend with
 * TensorFlow's fused native CPU kernels, where they compute the same thing
 * (the table in the module documentation): the ReLU gradient, max pooling
 * and its gradient (identical results, ties included), convolutions and
 * their gradients (same maths, float rounding may differ), and batch
 * normalisation in training (outputs, gradients and moving statistics as
 * tfjs computes them; inference keeps tfjs's path).
 *
 * Each replacement is probed on a tiny tensor first and skipped when the
 * TensorFlow build lacks the op; cases the native op does not cover (NCHW,
 * dilations, explicit padding) fall back to tfjs's own kernel. Idempotent;
 * {@linkcode restoreTfjsKernels} undoes it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { restoreTfjsKernels, useNativeKernels } from "./native_kernels.ts";
 * const status = useNativeKernels();
 * assert.ok(status.active, status.skipped.join("; "));
 * assert.ok(status.replaced.includes("Conv2D"));
 * assert.ok(status.replaced.includes("BatchNormalization (training)"));
 * restoreTfjsKernels();
 * ```
 */
export function useNativeKernels(): NativeKernelsStatus {
  if (installed) return lastStatus;
  if (tf.getBackend() !== "tensorflow") {
    lastStatus = {
      active: false,
      replaced: [],
      skipped: [`the active backend is "${tf.getBackend()}", not tensorflow`],
    };
    return lastStatus;
  }
  const swaps = new KernelSwaps();
  installReluGrad(swaps);
  installMaxPool(swaps);
  installConv2D(swaps);
  installConv2DBackpropInput(swaps);
  installConv2DBackpropFilter(swaps);
  installBatchNormTraining(swaps);
  installBatchNormInference(swaps);
  installed = swaps;
  lastStatus = {
    active: swaps.replaced.length > 0,
    replaced: [...swaps.replaced],
    skipped: [...swaps.skipped],
  };
  return lastStatus;
}

/**
 * Undoes {@linkcode useNativeKernels}: tfjs's own kernels and gradients are
 * registered again.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   nativeKernelsStatus,
 *   restoreTfjsKernels,
 *   useNativeKernels,
 * } from "./native_kernels.ts";
 * import { tf } from "../core/tf.ts";
 * const tfjsMaxPool = tf.getKernel("MaxPool", "tensorflow")?.kernelFunc;
 * useNativeKernels();
 * assert.notEqual(tf.getKernel("MaxPool", "tensorflow")?.kernelFunc, tfjsMaxPool);
 * restoreTfjsKernels();
 * assert.equal(nativeKernelsStatus().active, false);
 * assert.equal(tf.getKernel("MaxPool", "tensorflow")?.kernelFunc, tfjsMaxPool);
 * ```
 */
export function restoreTfjsKernels(): void {
  if (!installed) return;
  installed.restore();
  installed = undefined;
  lastStatus = { active: false, replaced: [], skipped: [] };
}

/**
 * Whether {@linkcode useNativeKernels} is in effect, and what it replaced.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nativeKernelsStatus, restoreTfjsKernels, useNativeKernels } from "./native_kernels.ts";
 * useNativeKernels();
 * assert.ok(nativeKernelsStatus().replaced.includes("MaxPoolGrad"));
 * restoreTfjsKernels();
 * assert.deepEqual(nativeKernelsStatus().replaced, []);
 * ```
 */
export function nativeKernelsStatus(): NativeKernelsStatus {
  return { ...lastStatus, replaced: [...lastStatus.replaced] };
}
