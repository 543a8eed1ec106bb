/**
 * Max pooling and its gradient on oneDNN: tfjs-node runs `MaxPool` and
 * `MaxPoolGrad` on Eigen, whose gradient is about 6× slower than oneDNN's
 * (`_MklNativeMaxPool`, `_MklNativeMaxPoolGrad`). The results are identical,
 * ties included. {@linkcode installMaxPool} is one of the installers of
 * `useNativeKernels` (`native_kernels.ts`).
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

/** A pooling window as TensorFlow's pooling ops take it (NHWC). */
export interface PoolGeometry {
  /** Whether the native op covers it (VALID or SAME padding). */
  ok: boolean;
  /** Window `[1, height, width, 1]`. */
  ksize: number[];
  /** Strides `[1, height, width, 1]`. */
  strides: number[];
  /** `VALID` or `SAME` (or tfjs's other padding types, then not `ok`). */
  padding: string;
}

/**
 * The TensorFlow window of a tfjs pooling call: input shape `xShape` and the
 * kernel's `filterSize`, `strides`, `pad` and `dimRoundingMode` attributes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { poolGeometry } from "./native_pool.ts";
 * assert.deepEqual(
 *   poolGeometry([1, 7, 5, 3], { filterSize: [3, 2], strides: 2, pad: "same" }),
 *   { ok: true, ksize: [1, 3, 2, 1], strides: [1, 2, 2, 1], padding: "SAME" },
 * );
 * ```
 */
export function poolGeometry(
  xShape: number[],
  attrs: Record<string, unknown>,
): PoolGeometry {
  const info = tf.backend_util.computePool2DInfo(
    xShape as [number, number, number, number],
    attrs.filterSize as number | [number, number],
    attrs.strides as number | [number, number],
    1,
    attrs.pad as "valid" | "same",
    attrs.dimRoundingMode as "floor" | undefined,
  );
  const type = info.padInfo.type;
  return {
    ok: type === "VALID" || type === "SAME",
    ksize: [1, info.filterHeight, info.filterWidth, 1],
    strides: [1, info.strideHeight, info.strideWidth, 1],
    padding: type,
  };
}

/** The attributes of oneDNN's max pooling ops, with the workspace on. */
function poolAttrs(a: OpAttrs, g: PoolGeometry): OpAttr[] {
  return [
    a.float(),
    a.ints("ksize", g.ksize),
    a.ints("strides", g.strides),
    a.str("padding", g.padding),
    a.str("data_format", "NHWC"),
    a.bool("workspace_enabled", true),
    a.mkl(),
  ];
}

/** oneDNN max pooling: the pooled tensor and its workspace (the argmax). */
function mklPoolWithWorkspace(
  swaps: KernelSwaps,
  x: Tensor,
  g: PoolGeometry,
): Tensor[] {
  return swaps.backend.executeMultipleOutputs(
    "_MklNativeMaxPool",
    poolAttrs(swaps.attrs, g),
    [x],
    2,
  );
}

function mklPool(swaps: KernelSwaps, x: Tensor, g: PoolGeometry): Tensor {
  const [y, workspace] = mklPoolWithWorkspace(swaps, x, g);
  workspace.dispose();
  return y;
}

/**
 * The gradient needs the forward pass's workspace (where each maximum came
 * from). Recomputing the pooling here costs a fraction of Eigen's gradient
 * and keeps the kernels stateless.
 */
function mklPoolGrad(
  swaps: KernelSwaps,
  x: Tensor,
  dy: Tensor,
  g: PoolGeometry,
): Tensor {
  const [y, workspace] = mklPoolWithWorkspace(swaps, x, g);
  const dx = swaps.backend.executeSingleOutput(
    "_MklNativeMaxPoolGrad",
    poolAttrs(swaps.attrs, g),
    [x, y, dy, workspace],
  );
  y.dispose();
  workspace.dispose();
  return dx;
}

/** Pools a 3×3 image with a tie-free maximum per window and checks the gradient. */
function probeMaxPool(swaps: KernelSwaps): boolean {
  return swaps.probe("_MklNativeMaxPool", () => {
    const x = tf.tensor4d([1, 5, 3, 2, 4, 4, 0, 9, 1], [1, 3, 3, 1]);
    const g = poolGeometry(x.shape, { filterSize: 2, strides: 2, pad: "same" });
    const y = mklPool(swaps, x, g);
    const dx = mklPoolGrad(swaps, x, tf.onesLike(y), g);
    const want = [0, 1, 0, 0, 0, 1, 0, 1, 1];
    if (dx.dataSync().join() !== want.join()) {
      throw new Error("gradient check failed");
    }
    return [y, dx];
  });
}

/**
 * Routes tfjs's `MaxPool` and `MaxPoolGrad` kernels to oneDNN's
 * `_MklNativeMaxPool` and `_MklNativeMaxPoolGrad`, for float32 input with
 * VALID or SAME padding (anything else goes to tfjs's kernel). Skipped, with
 * the reason recorded, when the TensorFlow build lacks the ops.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KernelSwaps } from "./native_backend.ts";
 * import { installMaxPool } from "./native_pool.ts";
 * const swaps = new KernelSwaps();
 * installMaxPool(swaps);
 * assert.deepEqual(swaps.replaced, ["MaxPool", "MaxPoolGrad"]);
 * swaps.restore();
 * ```
 */
export function installMaxPool(swaps: KernelSwaps): void {
  if (!probeMaxPool(swaps)) return;
  swaps.replaceKernel("MaxPool", (original) => (args: KernelArgs) => {
    const x = args.inputs.x as Tensor;
    const g = poolGeometry(x.shape, args.attrs as Record<string, unknown>);
    return g.ok && x.dtype === "float32"
      ? mklPool(swaps, x, g)
      : original(args);
  });
  swaps.replaceKernel("MaxPoolGrad", (original) => (args: KernelArgs) => {
    const { dy, input } = args.inputs as Record<string, Tensor>;
    const g = poolGeometry(input.shape, args.attrs as Record<string, unknown>);
    return g.ok && input.dtype === "float32"
      ? mklPoolGrad(swaps, input, dy, g)
      : original(args);
  });
}
