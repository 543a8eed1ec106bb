/**
 * The networks trained from scratch, and the seeded building blocks they
 * share with the transfer-learning head (`transfer.ts`).
 *
 * Factories build a fresh, **uncompiled** `tf.LayersModel` on every call
 * (nothing is built at import time); `compileModel` (`compile.ts`) compiles
 * one for training.
 *
 * | factory              | what                                                          |
 * | -------------------- | ------------------------------------------------------------- |
 * | {@linkcode seedCnn}  | the seed notebook's 3×(conv+pool) → dense(128) → dropout CNN  |
 * | {@linkcode vgg}      | VGG-style blocks of two 3×3 convs + pool, optional batch norm |
 * | {@linkcode resnet}   | a small ResNet with batch norm and projection shortcuts       |
 *
 * {@linkcode buildModel} builds one of them by name.
 *
 * Every kernel initialiser is seeded from the model seed through
 * {@linkcode deriveSeed} and the layer's name
 * ({@linkcode seededInitializers}), so two builds with the same seed have
 * identical weights. (Dropout masks are not seeded: a fixed tfjs dropout seed
 * would draw the same mask on every step.)
 *
 * @module
 */
import { DEFAULTS } from "../core/defaults.ts";
import { type LayersModel, type SymbolicTensor, tf } from "../core/tf.ts";
import { deriveSeed } from "../core/random.ts";

/** The seed used when a factory is given none. */
export const DEFAULT_SEED: number = DEFAULTS.seed;

/** Options every factory takes. */
export interface ModelOptions {
  /** Height and width of the square input images, in pixels. */
  inputSize: number;
  /** Channels of the input images (1 for grayscale, 3 for RGB). */
  channels: number;
  /** Number of output classes (softmax units). */
  numClasses: number;
  /** Seed for the weight initialisers; default {@linkcode DEFAULT_SEED}. */
  seed?: number;
}

/** Options for {@linkcode seedCnn}. */
export interface SeedCnnOptions extends ModelOptions {
  /** Units of the hidden dense layer; default 128. */
  denseUnits?: number;
  /** Dropout rate before the output layer; default 0.5. */
  dropout?: number;
}

/** Options for {@linkcode vgg}. */
export interface VggOptions extends ModelOptions {
  /** Filters of each block (two 3×3 convs then a 2×2 max pool); default [32, 64, 128, 256]. */
  filters?: number[];
  /** Batch normalisation after every conv; default true. */
  batchNorm?: boolean;
  /** `"gap"` (global average pooling) or `"flatten"` + a hidden dense layer; default `"gap"`. */
  head?: "gap" | "flatten";
  /** Units of the hidden dense layer of the `"flatten"` head; default 256. */
  denseUnits?: number;
  /** Dropout rate before the output layer; default 0.5. */
  dropout?: number;
}

/** Options for {@linkcode resnet}. */
export interface ResnetOptions extends ModelOptions {
  /** Filters of the stem conv; default 32. */
  stemFilters?: number;
  /** Filters of each stage; every stage after the first halves the resolution; default [32, 64, 128]. */
  filters?: number[];
  /** Residual blocks per stage; default 2. */
  blocksPerStage?: number;
  /** Dropout rate before the output layer; default 0.3. */
  dropout?: number;
}

/** The architectures {@linkcode buildModel} knows. */
export type Architecture = "seedCnn" | "vgg" | "resnet";

/**
 * Checks the options every factory takes and returns the seed to use (the
 * given one, else {@linkcode DEFAULT_SEED}). Throws one error listing every
 * problem, prefixed with `what` (the factory's name).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkModelOptions, DEFAULT_SEED } from "./models.ts";
 * assert.equal(checkModelOptions({ inputSize: 32, channels: 1, numClasses: 4 }, "vgg"), DEFAULT_SEED);
 * assert.throws(
 *   () => checkModelOptions({ inputSize: 32, channels: 0, numClasses: 1 }, "vgg"),
 *   /vgg: channels must be a positive integer .*; numClasses must be an integer >= 2/,
 * );
 * ```
 */
export function checkModelOptions(options: ModelOptions, what: string): number {
  const { inputSize, channels, numClasses } = options;
  const problems: string[] = [];
  if (!Number.isInteger(inputSize) || inputSize < 1) {
    problems.push(`inputSize must be a positive integer (got ${inputSize})`);
  }
  if (!Number.isInteger(channels) || channels < 1) {
    problems.push(`channels must be a positive integer (got ${channels})`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 2) {
    problems.push(`numClasses must be an integer >= 2 (got ${numClasses})`);
  }
  const seed = options.seed ?? DEFAULT_SEED;
  if (!Number.isFinite(seed)) {
    problems.push(`seed must be a number (got ${seed})`);
  }
  if (problems.length) throw new Error(`${what}: ${problems.join("; ")}`);
  return seed;
}

/**
 * Returns a dropout rate if it is in [0, 1); throws an error prefixed with
 * `what` otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkDropout } from "./models.ts";
 * assert.equal(checkDropout(0.3, "resnet"), 0.3);
 * assert.throws(() => checkDropout(1, "resnet"), /resnet: dropout must be in \[0, 1\) \(got 1\)/);
 * ```
 */
export function checkDropout(rate: number, what: string): number {
  if (!(rate >= 0 && rate < 1)) {
    throw new Error(`${what}: dropout must be in [0, 1) (got ${rate})`);
  }
  return rate;
}

/** The initialisers {@linkcode seededInitializers} returns. */
export interface SeededInitializers {
  /** Glorot-uniform, seeded from the model seed and the layer name. */
  kernelInitializer: ReturnType<typeof tf.initializers.glorotUniform>;
  /** Zeros. */
  biasInitializer: ReturnType<typeof tf.initializers.zeros>;
}

/**
 * Seeded initialisers for the layer called `name`: a Glorot-uniform kernel
 * whose seed is derived from the model seed and `${name}/kernel`, and a zero
 * bias. Spread them into a layer's config.
 *
 * @example The same seed and name draw the same kernel
 * ```ts
 * import assert from "node:assert/strict";
 * import { seededInitializers } from "./models.ts";
 * import { tf } from "../core/tf.ts";
 * const [a, b] = [1, 2].map(() =>
 *   seededInitializers(42, "conv1").kernelInitializer.apply([3, 3])
 * );
 * assert.deepEqual(a.dataSync(), b.dataSync());
 * tf.dispose([a, b]);
 * ```
 */
export function seededInitializers(
  seed: number,
  name: string,
): SeededInitializers {
  return {
    kernelInitializer: tf.initializers.glorotUniform({
      seed: deriveSeed(seed, `${name}/kernel`),
    }),
    biasInitializer: tf.initializers.zeros(),
  };
}

/**
 * The seed notebook's CNN: Conv2D(32, 3, relu) → MaxPool(2) → Conv2D(64, 3,
 * relu) → MaxPool(2) → Conv2D(128, 3, relu) → MaxPool(2) → Flatten →
 * Dense(128, relu) → Dropout(0.5) → Dense(numClasses, softmax). Convs use
 * "valid" padding, as Keras' default.
 *
 * At 128×128×1 with 4 classes it has 3,304,580 parameters, the same as the
 * Keras model in `bench/train_keras.py`:
 *
 * | layer   | output        | parameters                      |
 * | ------- | ------------- | ------------------------------- |
 * | conv1   | 126×126×32    | 3·3·1·32 + 32 = 320             |
 * | pool1   | 63×63×32      |                                 |
 * | conv2   | 61×61×64      | 3·3·32·64 + 64 = 18,496         |
 * | pool2   | 30×30×64      |                                 |
 * | conv3   | 28×28×128     | 3·3·64·128 + 128 = 73,856       |
 * | pool3   | 14×14×128     |                                 |
 * | flatten | 25,088        |                                 |
 * | dense   | 128           | 25,088·128 + 128 = 3,211,392    |
 * | output  | 4             | 128·4 + 4 = 516                 |
 *
 * Returns an uncompiled model.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { seedCnn } from "./models.ts";
 * const model = seedCnn({ inputSize: 128, channels: 1, numClasses: 4, seed: 1 });
 * assert.equal(model.countParams(), 3_304_580);
 * assert.deepEqual(model.outputs[0].shape, [null, 4]);
 * model.dispose();
 * ```
 */
export function seedCnn(options: SeedCnnOptions): LayersModel {
  const seed = checkModelOptions(options, "seedCnn");
  const { inputSize, channels, numClasses } = options;
  const dropout = checkDropout(options.dropout ?? 0.5, "seedCnn");
  let size = inputSize;
  for (let i = 0; i < 3; i++) size = Math.floor((size - 2) / 2);
  if (size < 1) {
    throw new Error(
      `seedCnn: inputSize ${inputSize} is too small (three 3×3 convs and ` +
        "2×2 pools need at least 22 pixels)",
    );
  }
  const model = tf.sequential({ name: "seed_cnn" });
  [32, 64, 128].forEach((filters, i) => {
    const name = `conv${i + 1}`;
    model.add(tf.layers.conv2d({
      name,
      filters,
      kernelSize: 3,
      activation: "relu",
      ...(i === 0 ? { inputShape: [inputSize, inputSize, channels] } : {}),
      ...seededInitializers(seed, name),
    }));
    model.add(tf.layers.maxPooling2d({ name: `pool${i + 1}`, poolSize: 2 }));
  });
  model.add(tf.layers.flatten({ name: "flatten" }));
  model.add(tf.layers.dense({
    name: "dense",
    units: options.denseUnits ?? 128,
    activation: "relu",
    ...seededInitializers(seed, "dense"),
  }));
  model.add(tf.layers.dropout({ name: "dropout", rate: dropout }));
  model.add(tf.layers.dense({
    name: "predictions",
    units: numClasses,
    activation: "softmax",
    ...seededInitializers(seed, "predictions"),
  }));
  return model;
}

/**
 * A VGG-style network: blocks of two 3×3 "same" convs (each optionally
 * followed by batch normalisation) and a 2×2 max pool, doubling the filters
 * block by block; then global average pooling (or flatten + a hidden dense
 * layer), dropout and a softmax layer. Returns an uncompiled model.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { vgg } from "./models.ts";
 * const model = vgg({ inputSize: 64, channels: 1, numClasses: 4, filters: [16, 32], batchNorm: false });
 * assert.deepEqual(model.outputs[0].shape, [null, 4]);
 * assert.deepEqual(
 *   model.layers.slice(0, 3).map((l) => l.name),
 *   ["block1_conv1", "block1_conv2", "block1_pool"],
 * );
 * model.dispose();
 * ```
 */
export function vgg(options: VggOptions): LayersModel {
  const seed = checkModelOptions(options, "vgg");
  const { inputSize, channels, numClasses } = options;
  const filters = options.filters ?? [32, 64, 128, 256];
  const batchNorm = options.batchNorm ?? true;
  const head = options.head ?? "gap";
  const dropout = checkDropout(options.dropout ?? 0.5, "vgg");
  if (!filters.length || filters.some((f) => !Number.isInteger(f) || f < 1)) {
    throw new Error(
      `vgg: filters must be positive integers (got [${filters}])`,
    );
  }
  if (inputSize >> filters.length < 1) {
    throw new Error(
      `vgg: inputSize ${inputSize} is too small for ${filters.length} ` +
        `pooling blocks (needs at least ${1 << filters.length} pixels)`,
    );
  }
  const model = tf.sequential({ name: "vgg" });
  filters.forEach((f, b) => {
    for (let c = 1; c <= 2; c++) {
      const name = `block${b + 1}_conv${c}`;
      model.add(tf.layers.conv2d({
        name,
        filters: f,
        kernelSize: 3,
        padding: "same",
        useBias: !batchNorm,
        activation: batchNorm ? "linear" : "relu",
        ...(b === 0 && c === 1
          ? { inputShape: [inputSize, inputSize, channels] }
          : {}),
        ...seededInitializers(seed, name),
      }));
      if (batchNorm) {
        model.add(tf.layers.batchNormalization({ name: `${name}_bn` }));
        model.add(tf.layers.reLU({ name: `${name}_relu` }));
      }
    }
    model.add(
      tf.layers.maxPooling2d({ name: `block${b + 1}_pool`, poolSize: 2 }),
    );
  });
  if (head === "gap") {
    model.add(tf.layers.globalAveragePooling2d({ name: "gap" }));
  } else if (head === "flatten") {
    model.add(tf.layers.flatten({ name: "flatten" }));
    model.add(tf.layers.dense({
      name: "dense",
      units: options.denseUnits ?? 256,
      activation: "relu",
      ...seededInitializers(seed, "dense"),
    }));
  } else {
    throw new Error(`vgg: head must be "gap" or "flatten" (got "${head}")`);
  }
  model.add(tf.layers.dropout({ name: "dropout", rate: dropout }));
  model.add(tf.layers.dense({
    name: "predictions",
    units: numClasses,
    activation: "softmax",
    ...seededInitializers(seed, "predictions"),
  }));
  return model;
}

function convBn(
  x: SymbolicTensor,
  seed: number,
  name: string,
  filters: number,
  kernelSize: number,
  strides: number,
  relu: boolean,
): SymbolicTensor {
  let y = tf.layers.conv2d({
    name,
    filters,
    kernelSize,
    strides,
    padding: "same",
    useBias: false,
    ...seededInitializers(seed, name),
  }).apply(x) as SymbolicTensor;
  y = tf.layers.batchNormalization({ name: `${name}_bn` }).apply(
    y,
  ) as SymbolicTensor;
  if (relu) {
    y = tf.layers.reLU({ name: `${name}_relu` }).apply(y) as SymbolicTensor;
  }
  return y;
}

/** Options for {@linkcode poolingHead}. */
export interface PoolingHeadOptions {
  /** The model seed (the softmax layer's kernel is seeded from it). */
  seed: number;
  /** Softmax units. */
  numClasses: number;
  /** Dropout rate before the softmax layer. */
  dropout: number;
  /** Names of the pooling and dropout layers. */
  names: { gap: string; dropout: string };
}

/**
 * The classifier head of the functional models (the ResNet and the transfer
 * model): global average pooling, dropout, and a seeded softmax layer named
 * `predictions`, applied to the image-like tensor `x`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { poolingHead } from "./models.ts";
 * import { tf } from "../core/tf.ts";
 * const input = tf.input({ shape: [8, 8, 16] });
 * const output = poolingHead(input, {
 *   seed: 1, numClasses: 4, dropout: 0.3, names: { gap: "gap", dropout: "dropout" },
 * });
 * const model = tf.model({ inputs: input, outputs: output });
 * assert.deepEqual(output.shape, [null, 4]);
 * assert.equal(model.countParams(), 16 * 4 + 4);
 * model.dispose();
 * ```
 */
export function poolingHead(
  x: SymbolicTensor,
  options: PoolingHeadOptions,
): SymbolicTensor {
  const { seed, numClasses, dropout, names } = options;
  const pooled = tf.layers.globalAveragePooling2d({ name: names.gap }).apply(
    x,
  ) as SymbolicTensor;
  const dropped = tf.layers.dropout({ name: names.dropout, rate: dropout })
    .apply(pooled) as SymbolicTensor;
  return tf.layers.dense({
    name: "predictions",
    units: numClasses,
    activation: "softmax",
    ...seededInitializers(seed, "predictions"),
  }).apply(dropped) as SymbolicTensor;
}

/**
 * A small ResNet: a 5×5 stride-2 stem conv with batch norm and a 2×2 max
 * pool, then stages of basic residual blocks (two 3×3 conv + batch norm, a
 * 1×1 projection shortcut whenever the shape changes), global average
 * pooling, dropout and a softmax layer. Every stage after the first halves
 * the resolution. Returns an uncompiled model.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resnet } from "./models.ts";
 * const model = resnet({ inputSize: 64, channels: 1, numClasses: 4, filters: [16, 32], blocksPerStage: 1 });
 * assert.deepEqual(model.outputs[0].shape, [null, 4]);
 * // The second stage halves the resolution: a projection shortcut.
 * assert.ok(model.layers.some((l) => l.name === "stage2_block1_proj"));
 * model.dispose();
 * ```
 */
export function resnet(options: ResnetOptions): LayersModel {
  const seed = checkModelOptions(options, "resnet");
  const { inputSize, channels, numClasses } = options;
  const filters = options.filters ?? [32, 64, 128];
  const blocks = options.blocksPerStage ?? 2;
  const stem = options.stemFilters ?? 32;
  const dropout = checkDropout(options.dropout ?? 0.3, "resnet");
  if (!filters.length || filters.some((f) => !Number.isInteger(f) || f < 1)) {
    throw new Error(
      `resnet: filters must be positive integers (got [${filters}])`,
    );
  }
  if (!Number.isInteger(blocks) || blocks < 1) {
    throw new Error(`resnet: blocksPerStage must be >= 1 (got ${blocks})`);
  }
  if (inputSize < 8) {
    throw new Error(`resnet: inputSize must be at least 8 (got ${inputSize})`);
  }
  const input = tf.input({
    name: "input",
    shape: [inputSize, inputSize, channels],
  });
  let x = convBn(input, seed, "stem_conv", stem, 5, 2, true);
  x = tf.layers.maxPooling2d({ name: "stem_pool", poolSize: 2 }).apply(
    x,
  ) as SymbolicTensor;
  let width = stem;
  filters.forEach((f, s) => {
    for (let b = 0; b < blocks; b++) {
      const name = `stage${s + 1}_block${b + 1}`;
      const strides = s > 0 && b === 0 ? 2 : 1;
      let y = convBn(x, seed, `${name}_conv1`, f, 3, strides, true);
      y = convBn(y, seed, `${name}_conv2`, f, 3, 1, false);
      const shortcut = strides !== 1 || width !== f
        ? convBn(x, seed, `${name}_proj`, f, 1, strides, false)
        : x;
      x = tf.layers.add({ name: `${name}_add` }).apply([
        y,
        shortcut,
      ]) as SymbolicTensor;
      x = tf.layers.reLU({ name: `${name}_relu` }).apply(x) as SymbolicTensor;
      width = f;
    }
  });
  const output = poolingHead(x, {
    seed,
    numClasses,
    dropout,
    names: { gap: "gap", dropout: "dropout" },
  });
  return tf.model({ name: "resnet", inputs: input, outputs: output });
}

/** The from-scratch architectures, by name. */
export const ARCHITECTURES: {
  readonly seedCnn: typeof seedCnn;
  readonly vgg: typeof vgg;
  readonly resnet: typeof resnet;
} = { seedCnn, vgg, resnet };

/**
 * Builds one of {@linkcode ARCHITECTURES} by name (uncompiled). Extra
 * options are passed to the factory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildModel } from "./models.ts";
 * const model = buildModel("vgg", { inputSize: 64, channels: 1, numClasses: 4, seed: 7 });
 * assert.equal(model.name, "vgg");
 * model.dispose();
 * assert.throws(
 *   () => buildModel("alexnet" as "vgg", { inputSize: 64, channels: 1, numClasses: 4 }),
 *   /unknown architecture "alexnet"/,
 * );
 * ```
 */
export function buildModel(
  arch: Architecture,
  options: SeedCnnOptions | VggOptions | ResnetOptions,
): LayersModel {
  const factory = ARCHITECTURES[arch];
  if (!factory) {
    throw new Error(
      `unknown architecture "${arch}" (known: ${
        Object.keys(ARCHITECTURES).join(", ")
      })`,
    );
  }
  return factory(options);
}
