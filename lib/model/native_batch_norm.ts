/**
 * Batch normalisation in training as TensorFlow's fused kernels. tfjs
 * normalises a training batch with `moments` + `batchNorm`, and their
 * gradients are ~40 small ops over the whole activation per layer and step
 * (half the ResNet's training time); TensorFlow's `FusedBatchNormV3` and
 * `FusedBatchNormGradV3` do each pass in one kernel.
 *
 * {@linkcode installBatchNormTraining} (one of the installers of
 * `useNativeKernels`, `native_kernels.ts`) registers the two as tfjs kernels
 * ({@linkcode NATIVE_BATCH_NORM}, {@linkcode NATIVE_BATCH_NORM_GRAD}) with
 * the gradient linking them, and routes tfjs-layers' `BatchNormalization` in
 * training (`training: true`, 4-D channels-last float32 input, centre and
 * scale on) to them, updating the moving mean and variance exactly as
 * tfjs-layers does (batch mean, biased batch variance, `momentum`).
 * {@linkcode installBatchNormInference} replaces the inference kernel
 * (`FusedBatchNorm`) with one multiply and one add.
 *
 * @module
 */
import type {
  KernelFunc,
  KernelSwaps,
  OpAttr,
  OpAttrs,
} from "./native_backend.ts";
import { type Tensor, tf } from "../core/tf.ts";

type KernelArgs = Parameters<KernelFunc>[0];

/** The tfjs kernel name of the fused forward pass in training. */
export const NATIVE_BATCH_NORM = "NativeBatchNormTraining";
/** The tfjs kernel name of its fused gradient. */
export const NATIVE_BATCH_NORM_GRAD = "NativeBatchNormTrainingGrad";

/** The fields of tfjs-layers' `BatchNormalization` the training path reads. */
interface BatchNormLayer {
  axis: number;
  momentum: number;
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma: { read(): Tensor };
  beta: { read(): Tensor };
  movingMean: { read(): Tensor; write(value: Tensor): void };
  movingVariance: { read(): Tensor; write(value: Tensor): void };
}

type LayerCall = (
  this: BatchNormLayer,
  inputs: Tensor | Tensor[],
  kwargs: Record<string, unknown>,
) => Tensor | Tensor[];

function bnAttrs(a: OpAttrs, epsilon: number): OpAttr[] {
  return [
    a.float(),
    a.float("U"),
    a.number("epsilon", epsilon),
    a.str("data_format", "NHWC"),
    a.bool("is_training", true),
  ];
}

/**
 * `FusedBatchNormV3` in training: six outputs, of which 0 is the normalised
 * batch and 3 and 4 (the reserve spaces) hold the batch mean and the biased
 * batch variance, which is what tfjs's moving averages use.
 */
function bnForward(
  swaps: KernelSwaps,
  inputs: { x: Tensor; scale: Tensor; offset: Tensor },
  epsilon: number,
): Tensor[] {
  // Training mode takes no running statistics: two empty inputs.
  const none = tf.tensor1d([], "float32");
  const out = swaps.backend.executeMultipleOutputs(
    "FusedBatchNormV3",
    bnAttrs(swaps.attrs, epsilon),
    [inputs.x, inputs.scale, inputs.offset, none, none],
    6,
  );
  none.dispose();
  return out;
}

/** `FusedBatchNormGradV3`: dx, dScale, dOffset and two empty outputs. */
function bnBackward(
  swaps: KernelSwaps,
  dy: Tensor,
  saved: Tensor[],
  epsilon: number,
): Tensor[] {
  return swaps.backend.executeMultipleOutputs(
    "FusedBatchNormGradV3",
    bnAttrs(swaps.attrs, epsilon),
    [dy, ...saved],
    5,
  );
}

/** Checks the batch statistics and two gradients on a 2×2×2 batch. */
function probeBatchNorm(swaps: KernelSwaps): boolean {
  return swaps.probe("FusedBatchNormV3", () => {
    const x = tf.tensor4d([1, 2, 3, 4, 6, 8, 0, 1], [2, 2, 1, 2]);
    const scale = tf.tensor1d([1, 2]);
    const out = bnForward(swaps, { x, scale, offset: tf.tensor1d([0, 1]) }, 0);
    const grads = bnBackward(swaps, tf.onesLike(x), [
      x,
      scale,
      ...out.slice(3),
    ], 0);
    // Channel 0 holds 1, 3, 6, 0: mean 2.5, biased variance 5.25.
    const [mean, variance] = [out[3].dataSync()[0], out[4].dataSync()[0]];
    const dScale = grads[1].dataSync()[0];
    if (mean !== 2.5 || Math.abs(variance - 5.25) > 1e-6) {
      throw new Error(`statistics check failed (${mean}, ${variance})`);
    }
    if (Math.abs(dScale) > 1e-5 || grads[2].dataSync()[0] !== 4) {
      throw new Error("gradient check failed");
    }
    return [...out, ...grads];
  });
}

/**
 * Registers {@linkcode NATIVE_BATCH_NORM} and {@linkcode NATIVE_BATCH_NORM_GRAD}
 * as kernels of the `tensorflow` backend, and the forward kernel's gradient.
 */
function registerBatchNormKernels(swaps: KernelSwaps): void {
  tf.registerKernel({
    kernelName: NATIVE_BATCH_NORM,
    backendName: "tensorflow",
    kernelFunc: ({ inputs, attrs }: KernelArgs) =>
      bnForward(swaps, {
        x: inputs.x as Tensor,
        scale: inputs.scale as Tensor,
        offset: inputs.offset as Tensor,
      }, attrs!.epsilon as number),
  });
  tf.registerKernel({
    kernelName: NATIVE_BATCH_NORM_GRAD,
    backendName: "tensorflow",
    kernelFunc: ({ inputs, attrs }: KernelArgs) => {
      const { dy, x, scale, mean, variance, reserve } = inputs as Record<
        string,
        Tensor
      >;
      const out = bnBackward(
        swaps,
        dy,
        [x, scale, mean, variance, reserve],
        attrs!.epsilon as number,
      );
      tf.dispose(out.slice(3));
      return out.slice(0, 3);
    },
  });
  tf.registerGradient({
    kernelName: NATIVE_BATCH_NORM,
    inputsToSave: ["x", "scale"],
    outputsToSave: [false, false, false, true, true, true],
    gradFunc: (dy, saved, attrs) => {
      const [x, scale, mean, variance, reserve] = saved;
      // One fused kernel computes all three gradients, here rather than in
      // the closures: tfjs runs each closure in its own tidy.
      const [dx, dScale, dOffset] = tf.engine().runKernel(
        NATIVE_BATCH_NORM_GRAD,
        {
          dy: (Array.isArray(dy) ? dy[0] : dy) as Tensor,
          x,
          scale,
          mean,
          variance,
          reserve,
        },
        { epsilon: attrs.epsilon as number },
      ) as Tensor[];
      return { x: () => dx, scale: () => dScale, offset: () => dOffset };
    },
  });
}

/**
 * One training step of a batch-norm layer through {@linkcode NATIVE_BATCH_NORM}:
 * the normalised batch, with the moving averages updated exactly as
 * tfjs-layers updates them.
 */
function trainingCall(layer: BatchNormLayer, x: Tensor): Tensor {
  return tf.tidy(() => {
    const [y, , , mean, variance] = tf.engine().runKernel(
      NATIVE_BATCH_NORM,
      { x, scale: layer.gamma.read(), offset: layer.beta.read() },
      { epsilon: layer.epsilon },
    ) as Tensor[];
    const decay = 1 - layer.momentum;
    for (
      const [v, value] of [
        [layer.movingMean, mean],
        [layer.movingVariance, variance],
      ] as const
    ) {
      tf.tidy(() => {
        const orig = v.read();
        v.write(tf.sub(orig, tf.mul(tf.sub(orig, value), decay)));
      });
    }
    return y;
  });
}

/**
 * Patches tfjs-layers' `BatchNormalization.call` to take
 * {@linkcode trainingCall} in the cases it covers; returns what undoes it.
 */
function patchBatchNormLayer(): () => void {
  const proto = Object.getPrototypeOf(tf.layers.batchNormalization({})) as {
    call: LayerCall;
  };
  const tfjsCall = proto.call;
  proto.call = function (inputs, kwargs) {
    const x = Array.isArray(inputs) && inputs.length === 1 ? inputs[0] : inputs;
    if (
      !kwargs?.training || Array.isArray(x) || x.rank !== 4 ||
      x.dtype !== "float32" || !this.center || !this.scale ||
      (this.axis !== -1 && this.axis !== 3)
    ) {
      return tfjsCall.call(this, inputs, kwargs);
    }
    return trainingCall(this, x);
  };
  return () => {
    proto.call = tfjsCall;
  };
}

/**
 * Routes tfjs-layers' `BatchNormalization` in training to TensorFlow's
 * `FusedBatchNormV3` and its gradient to `FusedBatchNormGradV3` (see the
 * module documentation for the cases covered). Recorded in `swaps` as
 * `BatchNormalization (training)`; skipped, with the reason, when the
 * TensorFlow build lacks the ops or their statistics differ from tfjs's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KernelSwaps } from "./native_backend.ts";
 * import { installBatchNormTraining } from "./native_batch_norm.ts";
 * const swaps = new KernelSwaps();
 * installBatchNormTraining(swaps);
 * assert.deepEqual(swaps.replaced, ["BatchNormalization (training)"]);
 * swaps.restore();
 * ```
 */
export function installBatchNormTraining(swaps: KernelSwaps): void {
  if (!probeBatchNorm(swaps)) return;
  registerBatchNormKernels(swaps);
  const unpatch = patchBatchNormLayer();
  swaps.onUndo(() => {
    unpatch();
    tf.unregisterGradient(NATIVE_BATCH_NORM);
    tf.unregisterKernel(NATIVE_BATCH_NORM, "tensorflow");
    tf.unregisterKernel(NATIVE_BATCH_NORM_GRAD, "tensorflow");
  });
  swaps.replaced.push("BatchNormalization (training)");
}

/**
 * Routes tfjs's `FusedBatchNorm` kernel (batch normalisation in inference:
 * validation during training, Grad-CAM, any unfolded model) to one multiply
 * and one add per element, `x·a + b` with the per-channel `a = γ/√(σ² + ε)`
 * and `b = β − μ·a`. TensorFlow's own `FusedBatchNorm` in inference takes
 * about fifteen times as long on this CPU (39 against 2.7 ms on a
 * `[64, 32, 32, 64]` batch). The result equals tfjs's up to float32
 * rounding; gradients are tfjs's, which do not call the kernel. Other
 * shapes keep tfjs's kernel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../core/tf.ts";
 * import { KernelSwaps } from "./native_backend.ts";
 * import { installBatchNormInference } from "./native_batch_norm.ts";
 * const x = tf.randomUniform([2, 4, 4, 3], -1, 1, "float32", 1);
 * const [m, v, o, s] = [[0.1, 0.2, 0.3], [1, 2, 0.5], [0, 1, -1], [2, 1, 0.5]]
 *   .map((a) => tf.tensor1d(a));
 * const before = tf.batchNorm(x, m, v, o, s, 1e-3);
 * const swaps = new KernelSwaps();
 * installBatchNormInference(swaps);
 * assert.deepEqual(swaps.replaced, ["FusedBatchNorm"]);
 * const after = tf.batchNorm(x, m, v, o, s, 1e-3);
 * assert.ok(tf.max(tf.abs(tf.sub(before, after))).dataSync()[0] < 1e-5);
 * swaps.restore();
 * tf.dispose([x, m, v, o, s, before, after]);
 * ```
 */
export function installBatchNormInference(swaps: KernelSwaps): void {
  swaps.replaceKernel("FusedBatchNorm", (original) => (args: KernelArgs) => {
    const { x, mean, variance, offset, scale } = args.inputs as Record<
      string,
      Tensor | undefined
    >;
    const epsilon = (args.attrs as { varianceEpsilon: number })
      .varianceEpsilon;
    if (
      x!.rank !== 4 || x!.dtype !== "float32" || mean!.rank !== 1 ||
      variance!.rank !== 1 || (scale && scale.rank !== 1) ||
      (offset && offset.rank !== 1)
    ) {
      return original(args);
    }
    return tf.tidy(() => {
      let a = tf.rsqrt(tf.add(variance!, epsilon));
      if (scale) a = tf.mul(a, scale);
      const shift = tf.mul(mean!, a);
      const b = offset ? tf.sub(offset, shift) : tf.neg(shift);
      return tf.add(tf.mul(x!, a), b);
    });
  });
}
