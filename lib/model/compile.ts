/**
 * The project's training set-up for a model: {@linkcode compileModel}
 * compiles it for classification (Adam, sparse categorical cross-entropy,
 * accuracy) on TensorFlow's native kernels (`native_kernels.ts`) with the
 * fused Adam step (`native_adam.ts`).
 *
 * @module
 */
import { DEFAULTS } from "../core/defaults.ts";
import { NativeAdam } from "./native_adam.ts";
import { useNativeKernels } from "./native_kernels.ts";
import { type LayersModel, tf } from "../core/tf.ts";

/** Options for {@linkcode compileModel}. */
export interface CompileOptions {
  /** Adam's step size; default `DEFAULTS.learningRate` (0.001). */
  learningRate?: number;
  /**
   * Use TensorFlow's native kernels and fused Adam (`useNativeKernels`,
   * `NativeAdam`); default true. `false` uses tfjs's Adam and does not
   * install the kernels (kernels installed earlier stay until
   * `restoreTfjsKernels`).
   */
  native?: boolean;
}

/**
 * Compiles a model for classification: Adam, sparse categorical
 * cross-entropy (integer labels), accuracy. By default switches on
 * `useNativeKernels` and uses `NativeAdam`, which the model then owns
 * (`model.dispose()` frees it). Compiling again (e.g. after `freezeBase`)
 * frees the previous optimizer. Returns the model.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compileModel } from "./compile.ts";
 * import { seedCnn } from "./models.ts";
 * const model = compileModel(
 *   seedCnn({ inputSize: 32, channels: 1, numClasses: 4 }),
 *   { learningRate: 1e-3 },
 * );
 * assert.equal(model.optimizer.getClassName(), "Adam");
 * assert.equal(model.optimizer.constructor.name, "NativeAdam");
 * assert.throws(() => compileModel(model, { learningRate: 0 }), /learningRate must be > 0/);
 * model.dispose();
 * ```
 */
export function compileModel(
  model: LayersModel,
  options: CompileOptions = {},
): LayersModel {
  const learningRate = options.learningRate ?? DEFAULTS.learningRate;
  if (!(learningRate > 0)) {
    throw new Error(
      `compileModel: learningRate must be > 0 (got ${learningRate})`,
    );
  }
  const native = (options.native ?? true) && useNativeKernels().active;
  const owned = model as unknown as {
    optimizer_?: { dispose(): void };
    isOptimizerOwned?: boolean;
  };
  if (owned.optimizer_ && owned.isOptimizerOwned) owned.optimizer_.dispose();
  const optimizer = native
    ? new NativeAdam({ learningRate })
    : tf.train.adam(learningRate);
  model.compile({
    optimizer,
    loss: "sparseCategoricalCrossentropy",
    metrics: ["accuracy"],
  });
  owned.isOptimizerOwned = true;
  return model;
}
