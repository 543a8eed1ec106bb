/**
 * CNN model factories, the project's fast training set-up, and model
 * summaries.
 *
 * Factories build a fresh, **uncompiled** `tf.LayersModel` on every call
 * (nothing is built at import time); {@linkcode compileModel} compiles one with
 * Adam, sparse categorical cross-entropy and accuracy.
 *
 * | factory                  | what                                                        |
 * | ------------------------ | ----------------------------------------------------------- |
 * | {@linkcode seedCnn}      | the seed notebook's 3×(conv+pool) → dense(128) → dropout CNN |
 * | {@linkcode vgg}          | VGG-style blocks of two 3×3 convs + pool, optional batch norm |
 * | {@linkcode resnet}       | a small ResNet with batch norm and projection shortcuts      |
 * | {@linkcode transfer}     | a new head on a pretrained tfjs Layers model                 |
 *
 * Every kernel initialiser is seeded from the model seed through
 * {@linkcode deriveSeed} and the layer's name, so two builds with the same
 * seed have identical weights. (Dropout masks are not seeded: a fixed tfjs
 * dropout seed would draw the same mask on every step.)
 *
 * Speed. tfjs-node runs TensorFlow op by op, and some of tfjs's gradients are
 * built from many small JavaScript-level ops. {@linkcode useNativeKernels}
 * (called by {@linkcode compileModel}) swaps in TensorFlow's own fused CPU
 * kernels where they give the same results: `ReluGrad` for the ReLU gradient
 * (tfjs builds it from `Step`, seven ops and a JavaScript-side array of ones),
 * oneDNN max pooling and its gradient, oneDNN convolutions, batch
 * normalisation in training as `FusedBatchNormV3` and its fused gradient
 * (tfjs: `moments` + `batchNorm`, ~40 small ops per layer and step, half the
 * ResNet's training time), and a fused Adam step ({@linkcode NativeAdam},
 * TensorFlow's `ResourceApplyAdam`). See `bench/train.ts` (the seed CNN) and
 * `bench/time_to_accuracy.ts` (the ResNet) for the measurements against Keras.
 *
 * @module
 */
import { DEFAULTS } from "../core/defaults.ts";
import { tf } from "../core/tf.ts";
import { deriveSeed } from "../core/random.ts";

type Tensor = import("@tensorflow/tfjs-node").Tensor;
type LayersModel = import("@tensorflow/tfjs-node").LayersModel;
type SymbolicTensor = import("@tensorflow/tfjs-node").SymbolicTensor;
type Layer = import("@tensorflow/tfjs-node").layers.Layer;
type NamedTensor = { name: string; tensor: Tensor };
type NamedTensorMap = import("@tensorflow/tfjs-node").NamedTensorMap;

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

function checkOptions(options: ModelOptions, what: string): number {
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

function checkRate(rate: number, what: string): number {
  if (!(rate >= 0 && rate < 1)) {
    throw new Error(`${what}: dropout must be in [0, 1) (got ${rate})`);
  }
  return rate;
}

/** Seeded initialisers for the layer called `name`. */
function init(seed: number, name: string) {
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
 * import { compileModel, seedCnn } from "./models.ts";
 * const model = compileModel(seedCnn({ inputSize: 128, channels: 1, numClasses: 4, seed: 1 }));
 * console.log(model.countParams()); // 3304580
 * model.dispose();
 * ```
 */
export function seedCnn(options: SeedCnnOptions): LayersModel {
  const seed = checkOptions(options, "seedCnn");
  const { inputSize, channels, numClasses } = options;
  const dropout = checkRate(options.dropout ?? 0.5, "seedCnn");
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
      ...init(seed, name),
    }));
    model.add(tf.layers.maxPooling2d({ name: `pool${i + 1}`, poolSize: 2 }));
  });
  model.add(tf.layers.flatten({ name: "flatten" }));
  model.add(tf.layers.dense({
    name: "dense",
    units: options.denseUnits ?? 128,
    activation: "relu",
    ...init(seed, "dense"),
  }));
  model.add(tf.layers.dropout({ name: "dropout", rate: dropout }));
  model.add(tf.layers.dense({
    name: "predictions",
    units: numClasses,
    activation: "softmax",
    ...init(seed, "predictions"),
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
 * import { vgg } from "./models.ts";
 * const model = vgg({ inputSize: 64, channels: 1, numClasses: 4, filters: [16, 32], batchNorm: false });
 * console.log(model.outputs[0].shape); // [null, 4]
 * model.dispose();
 * ```
 */
export function vgg(options: VggOptions): LayersModel {
  const seed = checkOptions(options, "vgg");
  const { inputSize, channels, numClasses } = options;
  const filters = options.filters ?? [32, 64, 128, 256];
  const batchNorm = options.batchNorm ?? true;
  const head = options.head ?? "gap";
  const dropout = checkRate(options.dropout ?? 0.5, "vgg");
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
        ...init(seed, name),
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
      ...init(seed, "dense"),
    }));
  } else {
    throw new Error(`vgg: head must be "gap" or "flatten" (got "${head}")`);
  }
  model.add(tf.layers.dropout({ name: "dropout", rate: dropout }));
  model.add(tf.layers.dense({
    name: "predictions",
    units: numClasses,
    activation: "softmax",
    ...init(seed, "predictions"),
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
    ...init(seed, name),
  }).apply(x) as SymbolicTensor;
  y = tf.layers.batchNormalization({ name: `${name}_bn` }).apply(
    y,
  ) as SymbolicTensor;
  if (relu) {
    y = tf.layers.reLU({ name: `${name}_relu` }).apply(y) as SymbolicTensor;
  }
  return y;
}

/**
 * The classifier head of the functional models: global average pooling,
 * dropout, and a seeded softmax layer named `predictions`.
 */
function poolingHead(
  x: SymbolicTensor,
  options: {
    seed: number;
    numClasses: number;
    dropout: number;
    names: { gap: string; dropout: string };
  },
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
    ...init(seed, "predictions"),
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
 * import { resnet } from "./models.ts";
 * const model = resnet({ inputSize: 64, channels: 1, numClasses: 4, filters: [16, 32], blocksPerStage: 1 });
 * console.log(model.outputs[0].shape); // [null, 4]
 * model.dispose();
 * ```
 */
export function resnet(options: ResnetOptions): LayersModel {
  const seed = checkOptions(options, "resnet");
  const { inputSize, channels, numClasses } = options;
  const filters = options.filters ?? [32, 64, 128];
  const blocks = options.blocksPerStage ?? 2;
  const stem = options.stemFilters ?? 32;
  const dropout = checkRate(options.dropout ?? 0.3, "resnet");
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
 * import { buildModel } from "./models.ts";
 * const model = buildModel("vgg", { inputSize: 64, channels: 1, numClasses: 4, seed: 7 });
 * console.log(model.name); // "vgg"
 * model.dispose();
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

// ---------------------------------------------------------------------------
// Transfer learning
// ---------------------------------------------------------------------------

/** Name of the nested model holding the pretrained layers in a transfer model. */
export const TRANSFER_BASE_NAME = "transfer_base";

/** Options for {@linkcode transfer}. */
export interface TransferOptions extends ModelOptions {
  /**
   * The pretrained tfjs Layers model: a loaded model, a URL
   * (`file://`, `http(s)://`), a path to its `model.json`, or the folder
   * holding it.
   */
  base: string | LayersModel;
  /**
   * The layer whose output feeds the new head; default the last layer with a
   * 4-D (image-like) output.
   */
  featureLayer?: string;
  /** Dropout rate of the new head; default 0.3. */
  dropout?: number;
  /**
   * How grayscale input meets a 3-channel base: `"tile"` repeats the channel
   * three times (no weights; what the base saw in pretraining), `"conv"` puts a
   * learned 1×1 conv in front. Default `"tile"`. Other channel mismatches
   * always use `"conv"`.
   */
  channelAdapter?: "tile" | "conv";
  /** Freeze the base after building; default true. */
  freeze?: boolean;
}

function modelUrl(base: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(base)) return base;
  let path = base;
  try {
    if (Deno.statSync(path).isDirectory) path = `${path}/model.json`;
  } catch {
    throw new Error(`transfer: base model ${base} does not exist`);
  }
  const absolute = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  return `file://${absolute}`;
}

async function loadBase(base: string): Promise<LayersModel> {
  const url = modelUrl(base);
  try {
    return await tf.loadLayersModel(url);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `transfer: could not load the base model ${url}: ${reason}`,
      { cause: error },
    );
  }
}

function is4d(shape: unknown): boolean {
  return Array.isArray(shape) && shape.length === 4 &&
    !Array.isArray(shape[0]);
}

/**
 * Builds a transfer-learning model: optional channel adapter → the pretrained
 * layers up to `featureLayer` (a nested model named
 * {@linkcode TRANSFER_BASE_NAME}) → global average pooling → dropout → a new
 * softmax layer. The base is frozen unless `freeze: false`. Returns an
 * uncompiled model; the base model's weights are shared, not copied. When
 * `base` is a path or URL the layers above the feature layer are freed; a
 * model passed in keeps them (and stays the caller's to dispose, though its
 * layers up to the feature layer now belong to the returned model too).
 *
 * @example
 * ```ts
 * import { compileModel, transfer, unfreezeBase } from "./models.ts";
 * const model = await transfer({
 *   base: "models/pretrained/mobilenet/model.json",
 *   inputSize: 128, channels: 1, numClasses: 4, seed: 3,
 * });
 * compileModel(model, { learningRate: 1e-3 }); // train the head
 * unfreezeBase(model, { fromLayer: "conv_pw_12" });
 * compileModel(model, { learningRate: 1e-5 }); // fine-tune the top
 * ```
 */
export async function transfer(options: TransferOptions): Promise<LayersModel> {
  const seed = checkOptions(options, "transfer");
  const { inputSize, channels, numClasses } = options;
  const dropout = checkRate(options.dropout ?? 0.3, "transfer");
  const adapter = options.channelAdapter ?? "tile";
  if (adapter !== "tile" && adapter !== "conv") {
    throw new Error(
      `transfer: channelAdapter must be "tile" or "conv" (got "${adapter}")`,
    );
  }
  const base = typeof options.base === "string"
    ? await loadBase(options.base)
    : options.base;
  const baseInput = base.inputs[0].shape;
  if (baseInput.length !== 4) {
    throw new Error(
      `transfer: the base model takes input of shape [${baseInput}], ` +
        "not images",
    );
  }
  const [, h, w, baseChannels] = baseInput;
  if ((h !== null && h !== inputSize) || (w !== null && w !== inputSize)) {
    throw new Error(
      `transfer: the base model takes ${h}×${w} images, not ${inputSize}×` +
        `${inputSize}; resize the images or use a base without a fixed size`,
    );
  }
  let feature: Layer;
  if (options.featureLayer !== undefined) {
    try {
      feature = base.getLayer(options.featureLayer);
    } catch {
      throw new Error(
        `transfer: the base model has no layer "${options.featureLayer}" ` +
          `(layers: ${base.layers.map((l) => l.name).join(", ")})`,
      );
    }
  } else {
    const found = [...base.layers].reverse().find((l) => is4d(l.outputShape));
    if (!found) {
      throw new Error(
        "transfer: the base model has no layer with an image-like (4-D) output",
      );
    }
    feature = found;
  }
  if (!is4d(feature.outputShape)) {
    throw new Error(
      `transfer: feature layer "${feature.name}" has output shape ` +
        `[${feature.outputShape}], not an image-like 4-D one`,
    );
  }
  const featureModel = tf.model({
    name: TRANSFER_BASE_NAME,
    inputs: base.inputs,
    outputs: feature.output as SymbolicTensor,
  });
  if (typeof options.base === "string") {
    // We loaded it, so we own it: free the layers above the feature layer.
    const kept = new Set(featureModel.layers);
    for (const layer of base.layers) if (!kept.has(layer)) layer.dispose();
  }

  const input = tf.input({
    name: "input",
    shape: [inputSize, inputSize, channels],
  });
  let x: SymbolicTensor = input;
  if (baseChannels !== null && baseChannels !== channels) {
    if (channels === 1 && baseChannels === 3 && adapter === "tile") {
      x = tf.layers.concatenate({ name: "gray_to_rgb", axis: -1 }).apply([
        input,
        input,
        input,
      ]) as SymbolicTensor;
    } else {
      x = tf.layers.conv2d({
        name: "channel_adapter",
        filters: baseChannels,
        kernelSize: 1,
        ...init(seed, "channel_adapter"),
      }).apply(input) as SymbolicTensor;
    }
  }
  x = featureModel.apply(x) as SymbolicTensor;
  const output = poolingHead(x, {
    seed,
    numClasses,
    dropout,
    names: { gap: "head_gap", dropout: "head_dropout" },
  });
  const model = tf.model({ name: "transfer", inputs: input, outputs: output });
  if (options.freeze ?? true) freezeBase(model);
  return model;
}

function baseOf(model: LayersModel): LayersModel {
  try {
    return model.getLayer(TRANSFER_BASE_NAME) as unknown as LayersModel;
  } catch {
    throw new Error(
      `model "${model.name}" has no "${TRANSFER_BASE_NAME}" layer; ` +
        "was it built with transfer()?",
    );
  }
}

/**
 * Freezes the pretrained part of a {@linkcode transfer} model, so only the
 * adapter and the head train. Compile the model (again) afterwards: tfjs
 * collects the trainable weights at compile time.
 *
 * @example
 * ```ts
 * import { compileModel, freezeBase, transfer } from "./models.ts";
 * const model = await transfer({ base: "models/base", inputSize: 96, channels: 3, numClasses: 4, freeze: false });
 * freezeBase(model);
 * compileModel(model);
 * ```
 */
export function freezeBase(model: LayersModel): void {
  const base = baseOf(model);
  base.trainable = false;
  for (const layer of base.layers) layer.trainable = false;
}

/** Options for {@linkcode unfreezeBase}. */
export interface UnfreezeOptions {
  /**
   * First base layer (name or index in the base) to make trainable; the
   * layers before it stay frozen. Default: the whole base.
   */
  fromLayer?: string | number;
}

/**
 * Makes the pretrained part of a {@linkcode transfer} model trainable again,
 * from `fromLayer` on. Compile the model (again) afterwards, usually with a
 * smaller learning rate.
 *
 * @example
 * ```ts
 * import { compileModel, transfer, unfreezeBase } from "./models.ts";
 * const model = await transfer({ base: "models/base", inputSize: 96, channels: 3, numClasses: 4 });
 * unfreezeBase(model, { fromLayer: 2 }); // keep the first two base layers frozen
 * compileModel(model, { learningRate: 1e-5 });
 * ```
 */
export function unfreezeBase(
  model: LayersModel,
  options: UnfreezeOptions = {},
): void {
  const base = baseOf(model);
  let from = 0;
  if (typeof options.fromLayer === "number") {
    from = options.fromLayer;
    if (!Number.isInteger(from) || from < 0 || from >= base.layers.length) {
      throw new Error(
        `unfreezeBase: fromLayer ${from} is out of range (the base has ` +
          `${base.layers.length} layers)`,
      );
    }
  } else if (typeof options.fromLayer === "string") {
    from = base.layers.findIndex((l) => l.name === options.fromLayer);
    if (from < 0) {
      throw new Error(
        `unfreezeBase: the base has no layer "${options.fromLayer}"`,
      );
    }
  }
  base.trainable = true;
  base.layers.forEach((layer, i) => {
    layer.trainable = i >= from;
  });
}

// ---------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------

/** One row of {@linkcode modelSummary}. */
export interface SummaryRow {
  /** Layer name. */
  layer: string;
  /** Layer class, e.g. `Conv2D`. */
  type: string;
  /** Output shape, Keras style, e.g. `(None, 126, 126, 32)`. */
  outputShape: string;
  /** Number of weights (trainable or not). */
  params: number;
  /** Whether the layer's weights train. */
  trainable: boolean;
}

/** What {@linkcode modelSummary} returns. */
export interface ModelSummary {
  /** Model name. */
  name: string;
  /** One row per top-level layer (a nested model is one row). */
  rows: SummaryRow[];
  /** All weights. */
  totalParams: number;
  /** Weights the optimizer updates. */
  trainableParams: number;
  /** Frozen weights and batch-norm statistics. */
  nonTrainableParams: number;
}

function formatShape(shape: unknown): string {
  if (Array.isArray(shape) && shape.some(Array.isArray)) {
    return shape.map(formatShape).join(", ");
  }
  const dims = (shape as (number | null)[]).map((d) =>
    d === null ? "None" : String(d)
  );
  return `(${dims.join(", ")}${dims.length === 1 ? "," : ""})`;
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Layer-by-layer summary (for `htmlTable({ rows })`) and parameter counts.
 *
 * @example
 * ```ts
 * import { modelSummary, seedCnn } from "./models.ts";
 * const model = seedCnn({ inputSize: 128, channels: 1, numClasses: 4 });
 * const { rows, totalParams } = modelSummary(model);
 * console.log(rows[0], totalParams); // { layer: "conv1", type: "Conv2D", ... } 3304580
 * model.dispose();
 * ```
 */
export function modelSummary(model: LayersModel): ModelSummary {
  const rows = model.layers.map((layer) => ({
    layer: layer.name,
    type: layer.getClassName(),
    outputShape: formatShape(layer.outputShape),
    params: layer.countParams(),
    trainable: layer.trainable && layer.trainableWeights.length > 0,
  }));
  const totalParams = model.countParams();
  const trainableParams = model.trainableWeights.reduce(
    (n, w) => n + size(w.shape as number[]),
    0,
  );
  return {
    name: model.name,
    rows,
    totalParams,
    trainableParams,
    nonTrainableParams: totalParams - trainableParams,
  };
}

// ---------------------------------------------------------------------------
// Native kernels
// ---------------------------------------------------------------------------

interface OpAttr {
  name: string;
  type: number;
  value: unknown;
}

interface Binding {
  TF_ATTR_STRING: number;
  TF_ATTR_INT: number;
  TF_ATTR_BOOL: number;
  TF_ATTR_TYPE: number;
  TF_ATTR_SHAPE: number;
  TF_ATTR_FLOAT: number;
  TF_FLOAT: number;
  TF_INT32: number;
  TF_UINT8: number;
}

interface NodeBackend {
  binding: Binding;
  executeSingleOutput(name: string, attrs: OpAttr[], inputs: Tensor[]): Tensor;
  executeMultipleOutputs(
    name: string,
    attrs: OpAttr[],
    inputs: Tensor[],
    outputs: number,
  ): Tensor[];
}

function nodeBackend(): NodeBackend {
  const backend = tf.findBackend("tensorflow") as unknown as
    | NodeBackend
    | null;
  if (!backend?.binding || !backend.executeSingleOutput) {
    throw new Error("the native TensorFlow backend is not loaded");
  }
  return backend;
}

/** Attribute builders for TensorFlow ops. */
function attrs(b: Binding) {
  return {
    float: (name = "T"): OpAttr => ({
      name,
      type: b.TF_ATTR_TYPE,
      value: b.TF_FLOAT,
    }),
    type: (name: string, value: number): OpAttr => ({
      name,
      type: b.TF_ATTR_TYPE,
      value,
    }),
    str: (name: string, value: string): OpAttr => ({
      name,
      type: b.TF_ATTR_STRING,
      value,
    }),
    ints: (name: string, value: number[]): OpAttr => ({
      name,
      type: b.TF_ATTR_INT,
      value,
    }),
    bool: (name: string, value: boolean): OpAttr => ({
      name,
      type: b.TF_ATTR_BOOL,
      value,
    }),
    shape: (name: string, value: number[]): OpAttr => ({
      name,
      type: b.TF_ATTR_SHAPE,
      value,
    }),
    number: (name: string, value: number): OpAttr => ({
      name,
      type: b.TF_ATTR_FLOAT,
      value,
    }),
    // Selects the oneDNN kernel registered under an `_Mkl*` op name.
    mkl: (): OpAttr => ({
      name: "_kernel",
      type: b.TF_ATTR_STRING,
      value: "MklNameChangeOp",
    }),
  };
}

type KernelFunc = import("@tensorflow/tfjs-node").KernelFunc;
type KernelConfig = import("@tensorflow/tfjs-node").KernelConfig;
type KernelArgs = Parameters<KernelFunc>[0];

interface ConvGeometry {
  ok: boolean;
  strides: number[];
  padding: string;
  inShape: number[];
}

function convGeometry(
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

interface PoolGeometry {
  ok: boolean;
  ksize: number[];
  strides: number[];
  padding: string;
}

function poolGeometry(
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

/** Which kernels {@linkcode useNativeKernels} replaced. */
export interface NativeKernelsStatus {
  /** Whether the replacements are active. */
  active: boolean;
  /** Names of the replaced tfjs kernels and gradients. */
  replaced: string[];
  /** Why some or all replacements were skipped, if they were. */
  skipped: string[];
}

interface Installed {
  /** The tfjs kernels that were replaced, to register again. */
  kernels: KernelConfig[];
  /** Undoes everything else: added kernels, gradients, patched layers. */
  undo: (() => void)[];
  replaced: string[];
  skipped: string[];
}

let installed: Installed | undefined;
let lastStatus: NativeKernelsStatus = {
  active: false,
  replaced: [],
  skipped: [],
};

const NATIVE_RELU_GRAD = "NativeReluGrad";
const NATIVE_BATCH_NORM = "NativeBatchNormTraining";
const NATIVE_BATCH_NORM_GRAD = "NativeBatchNormTrainingGrad";

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

/**
 * Replaces tfjs kernels and gradients of the `tensorflow` backend with
 * TensorFlow's fused native CPU kernels, where they compute the same thing:
 *
 * - the ReLU gradient → `ReluGrad` (tfjs: `Step` = seven ops plus a
 *   JavaScript-side array of ones the size of the activation);
 * - `MaxPool` and `MaxPoolGrad` → oneDNN pooling (Eigen's gradient is about
 *   6× slower), identical results including ties;
 * - `Conv2D`, `FusedConv2D` (inference, with the bias fused into the conv),
 *   `Conv2DBackpropInput`, and `Conv2DBackpropFilter` for inputs with few
 *   channels → oneDNN convolutions (same maths, float rounding may differ);
 * - tfjs-layers' `BatchNormalization` in training (`training: true`, 4-D
 *   channels-last input, centre and scale on) → `FusedBatchNormV3` and
 *   `FusedBatchNormGradV3`, with the moving mean and variance updated exactly
 *   as tfjs-layers does (batch mean, biased batch variance, `momentum`).
 *   Inference keeps tfjs's path.
 *
 * Each replacement is probed on a tiny tensor first and skipped when the
 * TensorFlow build lacks the op; cases the native op does not cover (NCHW,
 * dilations, explicit padding) fall back to tfjs's own kernel. Idempotent;
 * {@linkcode restoreTfjsKernels} undoes it.
 *
 * @example
 * ```ts
 * import { useNativeKernels } from "./models.ts";
 * const status = useNativeKernels();
 * console.log(status.active, status.replaced);
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
  const be = nodeBackend();
  const a = attrs(be.binding);
  const state: Installed = {
    kernels: [],
    undo: [],
    replaced: [],
    skipped: [],
  };

  const probe = (what: string, run: () => Tensor | Tensor[]): boolean => {
    try {
      tf.dispose(tf.tidy(run));
      return true;
    } catch (error) {
      state.skipped.push(
        `${what}: ${error instanceof Error ? error.message : error}`,
      );
      return false;
    }
  };
  const replaceKernel = (
    name: string,
    make: (original: KernelFunc) => KernelFunc,
  ) => {
    const original = tf.getKernel(name, "tensorflow");
    if (!original) {
      state.skipped.push(`${name}: tfjs has no kernel to replace`);
      return;
    }
    tf.unregisterKernel(name, "tensorflow");
    tf.registerKernel({
      kernelName: name,
      backendName: "tensorflow",
      kernelFunc: make(original.kernelFunc),
    });
    state.kernels.push(original);
    state.replaced.push(name);
  };

  // --- ReLU gradient --------------------------------------------------------
  const reluGrad = (dy: Tensor, x: Tensor) =>
    be.executeSingleOutput("ReluGrad", [a.float()], [dy, x]);
  if (
    probe("ReluGrad", () => reluGrad(tf.ones([2]), tf.tensor1d([-1, 1])))
  ) {
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
    state.undo.push(() => {
      tf.unregisterGradient("Relu");
      if (original) tf.registerGradient(original);
      tf.unregisterKernel(NATIVE_RELU_GRAD, "tensorflow");
    });
    state.replaced.push("Relu gradient");
  }

  // --- Max pooling ------------------------------------------------------------
  const poolAttrs = (g: PoolGeometry) => [
    a.float(),
    a.ints("ksize", g.ksize),
    a.ints("strides", g.strides),
    a.str("padding", g.padding),
    a.str("data_format", "NHWC"),
    a.bool("workspace_enabled", true),
    a.mkl(),
  ];
  const mklPoolWithWorkspace = (x: Tensor, g: PoolGeometry) =>
    be.executeMultipleOutputs("_MklNativeMaxPool", poolAttrs(g), [x], 2);
  const mklPool = (x: Tensor, g: PoolGeometry) => {
    const [y, workspace] = mklPoolWithWorkspace(x, g);
    workspace.dispose();
    return y;
  };
  // The gradient needs the forward pass's workspace (where each maximum came
  // from). Recomputing the pooling here costs a fraction of Eigen's gradient
  // and keeps the kernels stateless.
  const mklPoolGrad = (x: Tensor, dy: Tensor, g: PoolGeometry) => {
    const [y, workspace] = mklPoolWithWorkspace(x, g);
    const dx = be.executeSingleOutput(
      "_MklNativeMaxPoolGrad",
      poolAttrs(g),
      [x, y, dy, workspace],
    );
    y.dispose();
    workspace.dispose();
    return dx;
  };
  const poolProbeX = () =>
    tf.tensor4d([1, 5, 3, 2, 4, 4, 0, 9, 1], [1, 3, 3, 1]);
  const poolProbeAttrs = { filterSize: 2, strides: 2, pad: "same" };
  if (
    probe("_MklNativeMaxPool", () => {
      const x = poolProbeX();
      const g = poolGeometry(x.shape, poolProbeAttrs);
      const y = mklPool(x, g);
      const dx = mklPoolGrad(x, tf.onesLike(y), g);
      const want = [0, 1, 0, 0, 0, 1, 0, 1, 1];
      if (dx.dataSync().join() !== want.join()) {
        throw new Error("gradient check failed");
      }
      return [y, dx];
    })
  ) {
    replaceKernel("MaxPool", (original) => (args: KernelArgs) => {
      const x = args.inputs.x as Tensor;
      const g = poolGeometry(x.shape, args.attrs as Record<string, unknown>);
      return g.ok && x.dtype === "float32" ? mklPool(x, g) : original(args);
    });
    replaceKernel("MaxPoolGrad", (original) => (args: KernelArgs) => {
      const { dy, input } = args.inputs as Record<string, Tensor>;
      const g = poolGeometry(
        input.shape,
        args.attrs as Record<string, unknown>,
      );
      return g.ok && input.dtype === "float32"
        ? mklPoolGrad(input, dy, g)
        : original(args);
    });
  }

  // --- Convolutions -----------------------------------------------------------
  const convAttrs = (g: ConvGeometry) => [
    a.float(),
    a.ints("strides", g.strides),
    a.str("padding", g.padding),
    a.str("data_format", "NHWC"),
    a.bool("use_cudnn_on_gpu", true),
    a.ints("dilations", [1, 1, 1, 1]),
    a.mkl(),
  ];
  const convProbe = () => ({
    x: tf.ones([1, 4, 4, 2]),
    w: tf.ones([3, 3, 2, 3]),
    b: tf.tensor1d([1, 2, 3]),
    attrs: { strides: 1, pad: "valid", dataFormat: "NHWC", dilations: 1 },
  });
  if (
    probe("_MklNativeConv2D", () => {
      const p = convProbe();
      const g = convGeometry(p.x.shape, p.w.shape, p.attrs);
      const y = be.executeSingleOutput("_MklNativeConv2D", convAttrs(g), [
        p.x,
        p.w,
      ]);
      const yb = be.executeSingleOutput(
        "_MklNativeConv2DWithBias",
        convAttrs(g),
        [p.x, p.w, p.b],
      );
      if (y.dataSync()[0] !== 18 || yb.dataSync()[2] !== 21) {
        throw new Error("result check failed");
      }
      return [y, yb];
    })
  ) {
    replaceKernel("Conv2D", (original) => (args: KernelArgs) => {
      const { x, filter } = args.inputs as Record<string, Tensor>;
      const g = convGeometry(
        x.shape,
        filter.shape,
        args.attrs as Record<string, unknown>,
      );
      return g.ok && x.dtype === "float32"
        ? be.executeSingleOutput("_MklNativeConv2D", convAttrs(g), [x, filter])
        : original(args);
    });
    replaceKernel("FusedConv2D", (original) => (args: KernelArgs) => {
      const { x, filter, bias, preluActivationWeights } = args
        .inputs as Record<string, Tensor | undefined>;
      const activation = (args.attrs as Record<string, unknown>).activation ??
        "linear";
      const g = convGeometry(
        x!.shape,
        filter!.shape,
        args.attrs as Record<string, unknown>,
      );
      if (
        !g.ok || x!.dtype !== "float32" || !bias || bias.rank !== 1 ||
        bias.shape[0] !== filter!.shape[3] || preluActivationWeights ||
        (activation !== "linear" && activation !== "relu")
      ) {
        return original(args);
      }
      const y = be.executeSingleOutput(
        "_MklNativeConv2DWithBias",
        convAttrs(g),
        [x!, filter!, bias],
      );
      if (activation === "linear") return y;
      const r = be.executeSingleOutput("Relu", [a.float()], [y]);
      y.dispose();
      return r;
    });
  }
  if (
    probe("_MklNativeConv2DBackpropInput", () => {
      const p = convProbe();
      const g = convGeometry(p.x.shape, p.w.shape, p.attrs);
      const sizes = tf.tensor1d(g.inShape, "int32");
      return be.executeSingleOutput(
        "_MklNativeConv2DBackpropInput",
        convAttrs(g),
        [sizes, p.w, tf.ones([1, 2, 2, 3])],
      );
    })
  ) {
    replaceKernel("Conv2DBackpropInput", (original) => (args: KernelArgs) => {
      const { dy, filter } = args.inputs as Record<string, Tensor>;
      const at = args.attrs as Record<string, unknown>;
      const g = convGeometry(at.inputShape as number[], filter.shape, at);
      if (!g.ok || dy.dtype !== "float32") return original(args);
      const sizes = tf.tensor1d(g.inShape, "int32");
      const dx = be.executeSingleOutput(
        "_MklNativeConv2DBackpropInput",
        convAttrs(g),
        [sizes, filter, dy],
      );
      sizes.dispose();
      return dx;
    });
  }
  if (
    probe("_MklNativeConv2DBackpropFilter", () => {
      const p = convProbe();
      const g = convGeometry(p.x.shape, p.w.shape, p.attrs);
      const sizes = tf.tensor1d(p.w.shape, "int32");
      return be.executeSingleOutput(
        "_MklNativeConv2DBackpropFilter",
        convAttrs(g),
        [p.x, sizes, tf.ones([1, 2, 2, 3])],
      );
    })
  ) {
    // oneDNN wins for inputs with few channels (the first layer); Eigen's
    // kernel is as fast or faster from ~16 channels on (bench/train.ts).
    replaceKernel("Conv2DBackpropFilter", (original) => (args: KernelArgs) => {
      const { x, dy } = args.inputs as Record<string, Tensor>;
      const at = args.attrs as Record<string, unknown>;
      const filterShape = at.filterShape as number[];
      const g = convGeometry(x.shape, filterShape, at);
      if (!g.ok || x.dtype !== "float32" || filterShape[2] > 4) {
        return original(args);
      }
      const sizes = tf.tensor1d(filterShape, "int32");
      const dw = be.executeSingleOutput(
        "_MklNativeConv2DBackpropFilter",
        convAttrs(g),
        [x, sizes, dy],
      );
      sizes.dispose();
      return dw;
    });
  }
  // --- Batch normalisation in training ---------------------------------------
  // tfjs normalises a training batch with `moments` + `batchNorm`, and their
  // gradients are ~40 small ops over the whole activation; TensorFlow's
  // `FusedBatchNormV3` and `FusedBatchNormGradV3` do each pass in one kernel.
  // Outputs 3 and 4 (reserve spaces) hold the batch mean and the biased
  // batch variance, which is what tfjs's moving averages use.
  const bnAttrs = (epsilon: number) => [
    a.float(),
    a.float("U"),
    a.number("epsilon", epsilon),
    a.str("data_format", "NHWC"),
    a.bool("is_training", true),
  ];
  const bnForward = (
    x: Tensor,
    scale: Tensor,
    offset: Tensor,
    eps: number,
  ) => {
    // Training mode takes no running statistics: two empty inputs.
    const none = tf.tensor1d([], "float32");
    const out = be.executeMultipleOutputs("FusedBatchNormV3", bnAttrs(eps), [
      x,
      scale,
      offset,
      none,
      none,
    ], 6);
    none.dispose();
    return out;
  };
  const bnBackward = (dy: Tensor, saved: Tensor[], eps: number) =>
    be.executeMultipleOutputs("FusedBatchNormGradV3", bnAttrs(eps), [
      dy,
      ...saved,
    ], 5);
  if (
    probe("FusedBatchNormV3", () => {
      const x = tf.tensor4d([1, 2, 3, 4, 6, 8, 0, 1], [2, 2, 1, 2]);
      const scale = tf.tensor1d([1, 2]);
      const out = bnForward(x, scale, tf.tensor1d([0, 1]), 0);
      const grads = bnBackward(tf.onesLike(x), [x, scale, ...out.slice(3)], 0);
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
    })
  ) {
    tf.registerKernel({
      kernelName: NATIVE_BATCH_NORM,
      backendName: "tensorflow",
      kernelFunc: ({ inputs, attrs }: KernelArgs) =>
        bnForward(
          inputs.x as Tensor,
          inputs.scale as Tensor,
          inputs.offset as Tensor,
          attrs!.epsilon as number,
        ),
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
    const proto = Object.getPrototypeOf(tf.layers.batchNormalization({})) as {
      call: LayerCall;
    };
    const tfjsCall = proto.call;
    proto.call = function (inputs, kwargs) {
      const x = Array.isArray(inputs) && inputs.length === 1
        ? inputs[0]
        : inputs;
      if (
        !kwargs?.training || Array.isArray(x) || x.rank !== 4 ||
        x.dtype !== "float32" || !this.center || !this.scale ||
        (this.axis !== -1 && this.axis !== 3)
      ) {
        return tfjsCall.call(this, inputs, kwargs);
      }
      return tf.tidy(() => {
        const [y, , , mean, variance] = tf.engine().runKernel(
          NATIVE_BATCH_NORM,
          { x, scale: this.gamma.read(), offset: this.beta.read() },
          { epsilon: this.epsilon },
        ) as Tensor[];
        // The moving averages exactly as tfjs-layers updates them.
        const decay = 1 - this.momentum;
        for (
          const [v, value] of [
            [this.movingMean, mean],
            [this.movingVariance, variance],
          ] as const
        ) {
          tf.tidy(() => {
            const orig = v.read();
            v.write(tf.sub(orig, tf.mul(tf.sub(orig, value), decay)));
          });
        }
        return y;
      });
    };
    state.undo.push(() => {
      proto.call = tfjsCall;
      tf.unregisterGradient(NATIVE_BATCH_NORM);
      tf.unregisterKernel(NATIVE_BATCH_NORM, "tensorflow");
      tf.unregisterKernel(NATIVE_BATCH_NORM_GRAD, "tensorflow");
    });
    state.replaced.push("BatchNormalization (training)");
  }

  installed = state;
  lastStatus = {
    active: state.replaced.length > 0,
    replaced: [...state.replaced],
    skipped: [...state.skipped],
  };
  return lastStatus;
}

/**
 * Undoes {@linkcode useNativeKernels}: tfjs's own kernels and gradients are
 * registered again.
 *
 * @example
 * ```ts
 * import { restoreTfjsKernels, useNativeKernels } from "./models.ts";
 * useNativeKernels();
 * restoreTfjsKernels();
 * ```
 */
export function restoreTfjsKernels(): void {
  if (!installed) return;
  for (const config of installed.kernels) {
    tf.unregisterKernel(config.kernelName, "tensorflow");
    tf.registerKernel(config);
  }
  for (const undo of installed.undo) undo();
  installed = undefined;
  lastStatus = { active: false, replaced: [], skipped: [] };
}

/**
 * Whether {@linkcode useNativeKernels} is in effect, and what it replaced.
 *
 * @example
 * ```ts
 * import { nativeKernelsStatus } from "./models.ts";
 * console.log(nativeKernelsStatus().active);
 * ```
 */
export function nativeKernelsStatus(): NativeKernelsStatus {
  return { ...lastStatus, replaced: [...lastStatus.replaced] };
}

// ---------------------------------------------------------------------------
// Native Adam
// ---------------------------------------------------------------------------

/** Options for {@linkcode NativeAdam}. */
export interface AdamOptions {
  /** Step size; default 0.001. */
  learningRate?: number;
  /** Decay of the first moment; default 0.9. */
  beta1?: number;
  /** Decay of the second moment; default 0.999. */
  beta2?: number;
  /** Added to the denominator; default 1e-7 (Keras' default). */
  epsilon?: number;
}

interface AdamSlot {
  variable: Tensor;
  m: Tensor;
  v: Tensor;
}

let adamCounter = 0;

/**
 * Adam as one fused TensorFlow op per weight (`ResourceApplyAdam`) instead of
 * tfjs's ~15 element-wise ops. The update is Keras'/TensorFlow's:
 * `lr_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ)`, `w −= lr_t·m/(√v + ε)` (tfjs's own Adam puts
 * ε inside the bias correction, a negligible difference). The moments live in
 * TensorFlow resource variables; each step copies a weight in and out once.
 *
 * Reports its class name as `Adam`, so saved training configs load as tfjs's
 * Adam. Dispose it (or let {@linkcode compileModel}'s model own it) to free
 * the moments.
 *
 * @example
 * ```ts
 * import { NativeAdam, seedCnn } from "./models.ts";
 * const model = seedCnn({ inputSize: 64, channels: 1, numClasses: 4 });
 * model.compile({ optimizer: new NativeAdam({ learningRate: 1e-3 }), loss: "sparseCategoricalCrossentropy" });
 * ```
 */
export class NativeAdam extends tf.Optimizer {
  /** Serialisation name: saved configs load as tfjs's Adam. */
  static get className(): string {
    return "Adam";
  }
  /** Step size. */
  readonly learningRate: number;
  /** Decay of the first moment. */
  readonly beta1: number;
  /** Decay of the second moment. */
  readonly beta2: number;
  /** Added to the denominator. */
  readonly epsilon: number;
  #slots = new Map<string, AdamSlot>();
  #constants: Tensor[] | undefined;
  #id = ++adamCounter;
  #step = 0;

  /** @param options step size, decays and epsilon */
  constructor(options: AdamOptions = {}) {
    super();
    this.learningRate = options.learningRate ?? 1e-3;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-7;
  }

  #handle(name: string, shape: number[]): Tensor {
    const be = nodeBackend();
    const a = attrs(be.binding);
    return tf.keep(be.executeSingleOutput("VarHandleOp", [
      a.str("container", ""),
      a.str("shared_name", `brain_mri_adam_${this.#id}/${name}`),
      a.float("dtype"),
      a.shape("shape", shape),
    ], []));
  }

  #assign(handle: Tensor, value: Tensor): void {
    const be = nodeBackend();
    be.executeMultipleOutputs(
      "AssignVariableOp",
      [attrs(be.binding).float("dtype")],
      [handle, value],
      0,
    );
  }

  /**
   * Applies one Adam step to the named variables.
   *
   * @param variableGradients gradients by variable name
   */
  applyGradients(variableGradients: NamedTensorMap | NamedTensor[]): void {
    const be = nodeBackend();
    const a = attrs(be.binding);
    const list = Array.isArray(variableGradients)
      ? variableGradients
      : Object.entries(variableGradients).map(([name, tensor]) => ({
        name,
        tensor,
      }));
    this.#step++;
    this.#constants ??= [
      this.learningRate,
      this.beta1,
      this.beta2,
      this.epsilon,
    ].map((x) => tf.keep(tf.scalar(x)));
    const [lr, b1, b2, eps] = this.#constants;
    const b1Power = tf.scalar(this.beta1 ** this.#step);
    const b2Power = tf.scalar(this.beta2 ** this.#step);
    for (const { name, tensor: grad } of list) {
      if (grad == null) continue;
      const variable = tf.engine().registeredVariables[name];
      if (!variable) throw new Error(`NativeAdam: no variable named ${name}`);
      let slot = this.#slots.get(name);
      if (!slot) {
        slot = {
          variable: this.#handle(`${name}/var`, variable.shape),
          m: this.#handle(`${name}/m`, variable.shape),
          v: this.#handle(`${name}/v`, variable.shape),
        };
        const zeros = tf.zerosLike(variable);
        this.#assign(slot.m, zeros);
        this.#assign(slot.v, zeros);
        zeros.dispose();
        this.#slots.set(name, slot);
      }
      // The tfjs variable is the source of truth (it may have been set from
      // outside); TensorFlow copies it on write, so the assign is free.
      this.#assign(slot.variable, variable);
      be.executeMultipleOutputs("ResourceApplyAdam", [
        a.float(),
        a.bool("use_locking", false),
        a.bool("use_nesterov", false),
      ], [
        slot.variable,
        slot.m,
        slot.v,
        b1Power,
        b2Power,
        lr,
        b1,
        b2,
        eps,
        grad,
      ], 0);
      const updated = be.executeSingleOutput(
        "ReadVariableOp",
        [a.float("dtype")],
        [slot.variable],
      );
      variable.assign(updated);
      updated.dispose();
    }
    b1Power.dispose();
    b2Power.dispose();
    this.incrementIterations();
  }

  /** Frees the moments and the TensorFlow variables behind them. */
  override dispose(): void {
    const be = nodeBackend();
    for (const slot of this.#slots.values()) {
      for (const handle of [slot.variable, slot.m, slot.v]) {
        be.executeMultipleOutputs(
          "DestroyResourceOp",
          [attrs(be.binding).bool("ignore_lookup_error", true)],
          [handle],
          0,
        );
        handle.dispose();
      }
    }
    this.#slots.clear();
    if (this.#constants) tf.dispose(this.#constants);
    this.#constants = undefined;
    super.dispose();
  }

  /** The hyper-parameters, as tfjs's Adam names them. */
  getConfig(): { [key: string]: number } {
    return {
      learningRate: this.learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
    };
  }
}

/** Options for {@linkcode compileModel}. */
export interface CompileOptions {
  /** Adam's step size; default 0.001. */
  learningRate?: number;
  /**
   * Use TensorFlow's native kernels and fused Adam ({@linkcode useNativeKernels},
   * {@linkcode NativeAdam}); default true. `false` uses tfjs's Adam and does
   * not install the kernels (kernels installed earlier stay until
   * {@linkcode restoreTfjsKernels}).
   */
  native?: boolean;
}

/**
 * Compiles a model for classification: Adam, sparse categorical
 * cross-entropy (integer labels), accuracy. By default switches on
 * {@linkcode useNativeKernels} and uses {@linkcode NativeAdam}, which the
 * model then owns (`model.dispose()` frees it). Compiling again (e.g. after
 * {@linkcode freezeBase}) frees the previous optimizer. Returns the model.
 *
 * @example
 * ```ts
 * import { compileModel, seedCnn } from "./models.ts";
 * const model = compileModel(
 *   seedCnn({ inputSize: 128, channels: 1, numClasses: 4 }),
 *   { learningRate: 1e-3 },
 * );
 * console.log(model.optimizer.getClassName()); // "Adam"
 * ```
 */
export function compileModel(
  model: LayersModel,
  options: CompileOptions = {},
): LayersModel {
  const learningRate = options.learningRate ?? 1e-3;
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
