/**
 * Convolutions on oneDNN: tfjs-node runs `Conv2D` and its gradients on
 * Eigen; oneDNN's `_MklNativeConv2D*` kernels compute the same convolutions
 * faster on CPU (the same maths; float rounding may differ). The three
 * installers here are part of `useNativeKernels` (`native_kernels.ts`):
 *
 * | installer                                  | tfjs kernel                 | TensorFlow op                      |
 * | ------------------------------------------ | --------------------------- | ---------------------------------- |
 * | {@linkcode installConv2D}                  | `Conv2D`, `FusedConv2D`     | `_MklNativeConv2D`, `…WithBias`    |
 * | {@linkcode installConv2DBackpropInput}     | `Conv2DBackpropInput`       | `_MklNativeConv2DBackpropInput`    |
 * | {@linkcode installConv2DBackpropFilter}    | `Conv2DBackpropFilter`      | `_MklNativeConv2DBackpropFilter`   |
 *
 * Cases the native ops do not cover (NCHW, dilations, explicit padding,
 * other dtypes) go to tfjs's own kernel.
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

/** A convolution as TensorFlow's convolution ops take it (NHWC). */
export interface ConvGeometry {
  /** Whether the native ops cover it: VALID or SAME, NHWC, no dilation. */
  ok: boolean;
  /** Strides `[1, height, width, 1]`. */
  strides: number[];
  /** `VALID` or `SAME` (or tfjs's other padding types, then not `ok`). */
  padding: string;
  /** The input shape (what the input gradient is sized to). */
  inShape: number[];
}

/**
 * The TensorFlow geometry of a tfjs convolution: input shape `xShape`,
 * filter shape `filterShape` and the kernel's `strides`, `pad`,
 * `dataFormat`, `dilations` and `dimRoundingMode` attributes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { convGeometry } from "./native_conv.ts";
 * assert.deepEqual(
 *   convGeometry([1, 8, 8, 2], [3, 3, 2, 4], { strides: 2, pad: "same" }),
 *   { ok: true, strides: [1, 2, 2, 1], padding: "SAME", inShape: [1, 8, 8, 2] },
 * );
 * assert.equal(
 *   convGeometry([1, 8, 8, 2], [3, 3, 2, 4], { strides: 1, pad: "valid", dilations: 2 }).ok,
 *   false,
 * );
 * ```
 */
export function convGeometry(
  xShape: number[],
  filterShape: number[],
  attrs: Record<string, unknown>,
): ConvGeometry {
  const dataFormat = (attrs.dataFormat as string | undefined) ?? "NHWC";
  const dilations = (attrs.dilations as number | number[] | undefined) ?? 1;
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides as number | [number, number],
    dilations as number | [number, number],
    attrs.pad as "valid" | "same",
    attrs.dimRoundingMode as "floor" | undefined,
    false,
    tf.backend_util.convertConv2DDataFormat(dataFormat as "NHWC"),
  );
  const type = info.padInfo.type;
  return {
    ok: (type === "VALID" || type === "SAME") &&
      info.dataFormat === "channelsLast" &&
      info.dilationHeight === 1 && info.dilationWidth === 1,
    strides: [1, info.strideHeight, info.strideWidth, 1],
    padding: type,
    inShape: info.inShape,
  };
}

/** The attributes of oneDNN's convolution ops. */
function convAttrs(a: OpAttrs, g: ConvGeometry): OpAttr[] {
  return [
    a.float(),
    a.ints("strides", g.strides),
    a.str("padding", g.padding),
    a.str("data_format", "NHWC"),
    a.bool("use_cudnn_on_gpu", true),
    a.ints("dilations", [1, 1, 1, 1]),
    a.mkl(),
  ];
}

/** The probes' convolution: a 4×4×2 image of ones, a 3×3×2→3 filter of ones. */
function convProbe() {
  const x = tf.ones([1, 4, 4, 2]);
  const w = tf.ones([3, 3, 2, 3]);
  const attrs = { strides: 1, pad: "valid", dataFormat: "NHWC", dilations: 1 };
  return {
    x,
    w,
    b: tf.tensor1d([1, 2, 3]),
    g: convGeometry(x.shape, w.shape, attrs),
  };
}

function probeConv2D(swaps: KernelSwaps): boolean {
  const { backend, attrs } = swaps;
  return swaps.probe("_MklNativeConv2D", () => {
    const { x, w, b, g } = convProbe();
    const y = backend.executeSingleOutput(
      "_MklNativeConv2D",
      convAttrs(attrs, g),
      [x, w],
    );
    const yb = backend.executeSingleOutput(
      "_MklNativeConv2DWithBias",
      convAttrs(attrs, g),
      [x, w, b],
    );
    // Each output sums 3·3·2 ones (18); the bias adds 1, 2, 3.
    if (y.dataSync()[0] !== 18 || yb.dataSync()[2] !== 21) {
      throw new Error("result check failed");
    }
    return [y, yb];
  });
}

/**
 * tfjs's `FusedConv2D` (conv + optional bias + optional ReLU; tfjs-layers
 * runs every `Conv2D` layer through it) as oneDNN's conv, with the bias fused
 * in when there is one, then TensorFlow's `Relu`. Without this, a conv layer
 * without a bias (every convolution followed by batch normalisation) would
 * run tfjs-node's plain `Conv2D` op, Eigen's kernel. Other activations, a
 * PReLU, or an odd bias go to tfjs's kernel.
 */
function fusedConv2D(swaps: KernelSwaps, original: KernelFunc): KernelFunc {
  const { backend, attrs } = swaps;
  return (args: KernelArgs) => {
    const { x, filter, bias, preluActivationWeights } = args
      .inputs as Record<string, Tensor | undefined>;
    const at = args.attrs as Record<string, unknown>;
    const activation = at.activation ?? "linear";
    const g = convGeometry(x!.shape, filter!.shape, at);
    if (
      !g.ok || x!.dtype !== "float32" ||
      (bias && (bias.rank !== 1 || bias.shape[0] !== filter!.shape[3])) ||
      preluActivationWeights ||
      (activation !== "linear" && activation !== "relu")
    ) {
      return original(args);
    }
    const y = bias
      ? backend.executeSingleOutput(
        "_MklNativeConv2DWithBias",
        convAttrs(attrs, g),
        [x!, filter!, bias],
      )
      : backend.executeSingleOutput("_MklNativeConv2D", convAttrs(attrs, g), [
        x!,
        filter!,
      ]);
    if (activation === "linear") return y;
    const r = backend.executeSingleOutput("Relu", [attrs.float()], [y]);
    y.dispose();
    return r;
  };
}

/**
 * Routes tfjs's `Conv2D` to oneDNN's `_MklNativeConv2D` and `FusedConv2D`
 * (inference with the bias, and a ReLU, fused into the conv) to
 * `_MklNativeConv2DWithBias`: faster than Eigen's convolution on CPU.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KernelSwaps } from "./native_backend.ts";
 * import { installConv2D } from "./native_conv.ts";
 * const swaps = new KernelSwaps();
 * installConv2D(swaps);
 * assert.deepEqual(swaps.replaced, ["Conv2D", "FusedConv2D"]);
 * swaps.restore();
 * ```
 */
export function installConv2D(swaps: KernelSwaps): void {
  if (!probeConv2D(swaps)) return;
  const { backend, attrs } = swaps;
  swaps.replaceKernel("Conv2D", (original) => (args: KernelArgs) => {
    const { x, filter } = args.inputs as Record<string, Tensor>;
    const g = convGeometry(
      x.shape,
      filter.shape,
      args.attrs as Record<string, unknown>,
    );
    return g.ok && x.dtype === "float32"
      ? backend.executeSingleOutput("_MklNativeConv2D", convAttrs(attrs, g), [
        x,
        filter,
      ])
      : original(args);
  });
  swaps.replaceKernel(
    "FusedConv2D",
    (original) => fusedConv2D(swaps, original),
  );
}

/**
 * Routes tfjs's `Conv2DBackpropInput` (the gradient of a convolution with
 * respect to its input) to oneDNN's `_MklNativeConv2DBackpropInput`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KernelSwaps } from "./native_backend.ts";
 * import { installConv2DBackpropInput } from "./native_conv.ts";
 * const swaps = new KernelSwaps();
 * installConv2DBackpropInput(swaps);
 * assert.deepEqual(swaps.replaced, ["Conv2DBackpropInput"]);
 * swaps.restore();
 * ```
 */
export function installConv2DBackpropInput(swaps: KernelSwaps): void {
  const { backend, attrs } = swaps;
  const op = "_MklNativeConv2DBackpropInput";
  const run = (g: ConvGeometry, filter: Tensor, dy: Tensor) => {
    const sizes = tf.tensor1d(g.inShape, "int32");
    const dx = backend.executeSingleOutput(op, convAttrs(attrs, g), [
      sizes,
      filter,
      dy,
    ]);
    sizes.dispose();
    return dx;
  };
  const probed = swaps.probe(op, () => {
    const { w, g } = convProbe();
    return run(g, w, tf.ones([1, 2, 2, 3]));
  });
  if (!probed) return;
  swaps.replaceKernel("Conv2DBackpropInput", (original) => (args) => {
    const { dy, filter } = args.inputs as Record<string, Tensor>;
    const at = args.attrs as Record<string, unknown>;
    const g = convGeometry(at.inputShape as number[], filter.shape, at);
    return g.ok && dy.dtype === "float32" ? run(g, filter, dy) : original(args);
  });
}

/**
 * Routes tfjs's `Conv2DBackpropFilter` (the gradient of a convolution with
 * respect to its filter) to oneDNN's `_MklNativeConv2DBackpropFilter` for
 * inputs of at most 4 channels: oneDNN wins for inputs with few channels
 * (the first layer); Eigen's kernel is as fast or faster from ~16 channels
 * on (`bench/train.ts`), so those stay with tfjs's kernel. The filter
 * gradient of every 1×1 convolution is a matrix product instead
 * (`pointwiseFilterGradient`), which also keeps away from a TensorFlow bug.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KernelSwaps } from "./native_backend.ts";
 * import { installConv2DBackpropFilter } from "./native_conv.ts";
 * const swaps = new KernelSwaps();
 * installConv2DBackpropFilter(swaps);
 * assert.deepEqual(swaps.replaced, ["Conv2DBackpropFilter"]);
 * swaps.restore();
 * ```
 */
export function installConv2DBackpropFilter(swaps: KernelSwaps): void {
  const { backend, attrs } = swaps;
  const op = "_MklNativeConv2DBackpropFilter";
  const run = (
    g: ConvGeometry,
    x: Tensor,
    filterShape: number[],
    dy: Tensor,
  ) => {
    const sizes = tf.tensor1d(filterShape, "int32");
    const dw = backend.executeSingleOutput(op, convAttrs(attrs, g), [
      x,
      sizes,
      dy,
    ]);
    sizes.dispose();
    return dw;
  };
  const probed = swaps.probe(op, () => {
    const { x, w, g } = convProbe();
    return run(g, x, w.shape, tf.ones([1, 2, 2, 3]));
  });
  if (!probed) return;
  swaps.replaceKernel("Conv2DBackpropFilter", (original) => (args) => {
    const { x, dy } = args.inputs as Record<string, Tensor>;
    const at = args.attrs as Record<string, unknown>;
    const filterShape = at.filterShape as number[];
    const g = convGeometry(x.shape, filterShape, at);
    if (!g.ok || x.dtype !== "float32") return original(args);
    if (filterShape[0] === 1 && filterShape[1] === 1) {
      return pointwiseFilterGradient(x, dy, g);
    }
    return filterShape[2] > 4 ? original(args) : run(g, x, filterShape, dy);
  });
}

/**
 * The filter gradient of a 1×1 convolution (NHWC, no dilation) as one
 * matrix product: `dw[0, 0, i, o] = Σ x[n, s·h, s·w, i] · dy[n, h, w, o]`
 * over the strided input, which a 1×1 kernel never pads. TensorFlow 2.9's
 * own `Conv2DBackpropFilter` corrupts the heap on 1×1 stride-2 convolutions
 * of fewer than 16 input channels and an even input size (the process dies
 * with a malloc error), as a ResNet's projection shortcut has when a stage
 * is narrow; this path never calls it.
 */
function pointwiseFilterGradient(
  x: Tensor,
  dy: Tensor,
  g: ConvGeometry,
): Tensor {
  return tf.tidy(() => {
    const [, sh, sw] = g.strides;
    const picked = sh === 1 && sw === 1
      ? x
      : tf.stridedSlice(x, [0, 0, 0, 0], x.shape, [1, sh, sw, 1]);
    const inChannels = x.shape[3]!, outChannels = dy.shape[3]!;
    const rows = dy.size / outChannels;
    const dw = tf.matMul(
      tf.reshape(picked, [rows, inChannels]),
      tf.reshape(dy, [rows, outChannels]),
      true,
      false,
    );
    return tf.reshape(dw, [1, 1, inChannels, outChannels]);
  });
}
