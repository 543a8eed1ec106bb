/**
 * Transfer learning: a new classifier head on a pretrained tfjs Layers model,
 * and freezing or unfreezing the pretrained part for fine-tuning.
 *
 * {@linkcode transfer} builds `input → channel adapter (when needed) → the
 * pretrained layers up to a feature layer (a nested model named
 * {@linkcode TRANSFER_BASE_NAME}) → the pooling head of `models.ts`
 * ({@linkcode poolingHead})`. {@linkcode freezeBase} and
 * {@linkcode unfreezeBase} switch the nested model's layers off and on;
 * compile the model again afterwards (`compileModel`), since tfjs collects
 * the trainable weights at compile time.
 *
 * @module
 */
import {
  checkDropout,
  checkModelOptions,
  type ModelOptions,
  poolingHead,
  seededInitializers,
} from "./models.ts";
import { type LayersModel, type SymbolicTensor, tf } from "../core/tf.ts";

type Layer = import("@tensorflow/tfjs-node").layers.Layer;

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
 * Checks that the base takes images of side `inputSize` (or any side) and
 * returns how many channels it takes (`null`: any).
 */
function baseChannelsOf(base: LayersModel, inputSize: number): number | null {
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
  return baseChannels;
}

/** The layer called `name`, else the last one with an image-like output. */
function featureLayerOf(base: LayersModel, name?: string): Layer {
  let feature: Layer | undefined;
  if (name !== undefined) {
    try {
      feature = base.getLayer(name);
    } catch {
      throw new Error(
        `transfer: the base model has no layer "${name}" ` +
          `(layers: ${base.layers.map((l) => l.name).join(", ")})`,
      );
    }
  } else {
    feature = [...base.layers].reverse().find((l) => is4d(l.outputShape));
    if (!feature) {
      throw new Error(
        "transfer: the base model has no layer with an image-like (4-D) output",
      );
    }
  }
  if (!is4d(feature.outputShape)) {
    throw new Error(
      `transfer: feature layer "${feature.name}" has output shape ` +
        `[${feature.outputShape}], not an image-like 4-D one`,
    );
  }
  return feature;
}

/**
 * The base up to `feature` as a nested model named
 * {@linkcode TRANSFER_BASE_NAME}. A base we loaded ourselves (`owned`) is
 * ours to trim: its layers above the feature layer are freed.
 */
function featureModelOf(
  base: LayersModel,
  feature: Layer,
  owned: boolean,
): LayersModel {
  const featureModel = tf.model({
    name: TRANSFER_BASE_NAME,
    inputs: base.inputs,
    outputs: feature.output as SymbolicTensor,
  });
  if (owned) {
    const kept = new Set(featureModel.layers);
    for (const layer of base.layers) if (!kept.has(layer)) layer.dispose();
  }
  return featureModel;
}

/**
 * What makes `channels` input channels into the base's `baseChannels`:
 * nothing when they match, three copies of a grayscale channel (`"tile"`),
 * or a seeded learned 1×1 conv.
 */
function adaptChannels(
  input: SymbolicTensor,
  options: {
    channels: number;
    baseChannels: number | null;
    adapter: "tile" | "conv";
    seed: number;
  },
): SymbolicTensor {
  const { channels, baseChannels, adapter, seed } = options;
  if (baseChannels === null || baseChannels === channels) return input;
  if (channels === 1 && baseChannels === 3 && adapter === "tile") {
    return tf.layers.concatenate({ name: "gray_to_rgb", axis: -1 }).apply([
      input,
      input,
      input,
    ]) as SymbolicTensor;
  }
  return tf.layers.conv2d({
    name: "channel_adapter",
    filters: baseChannels,
    kernelSize: 1,
    ...seededInitializers(seed, "channel_adapter"),
  }).apply(input) as SymbolicTensor;
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
 * @example A grayscale head on a 3-channel base
 * ```ts
 * import assert from "node:assert/strict";
 * import { transfer, TRANSFER_BASE_NAME } from "./transfer.ts";
 * import { tf } from "../core/tf.ts";
 * const base = tf.sequential({ layers: [
 *   tf.layers.conv2d({ name: "conv", inputShape: [32, 32, 3], filters: 8, kernelSize: 3 }),
 *   tf.layers.maxPooling2d({ name: "pool", poolSize: 2 }),
 *   tf.layers.flatten({ name: "flatten" }),
 * ] });
 * const model = await transfer({ base, inputSize: 32, channels: 1, numClasses: 4 });
 * assert.deepEqual(
 *   model.layers.map((l) => l.name),
 *   ["input", "gray_to_rgb", TRANSFER_BASE_NAME, "head_gap", "head_dropout", "predictions"],
 * );
 * // The features are the base's last image-like output (pool: 15×15×8);
 * // only the new head trains.
 * assert.deepEqual(model.getLayer(TRANSFER_BASE_NAME).outputShape, [null, 15, 15, 8]);
 * assert.deepEqual(model.trainableWeights.map((w) => w.originalName), [
 *   "predictions/kernel",
 *   "predictions/bias",
 * ]);
 * model.dispose(); // the base's conv is the model's now: freed with it
 * ```
 */
export async function transfer(options: TransferOptions): Promise<LayersModel> {
  const seed = checkModelOptions(options, "transfer");
  const { inputSize, channels, numClasses } = options;
  const dropout = checkDropout(options.dropout ?? 0.3, "transfer");
  const adapter = options.channelAdapter ?? "tile";
  if (adapter !== "tile" && adapter !== "conv") {
    throw new Error(
      `transfer: channelAdapter must be "tile" or "conv" (got "${adapter}")`,
    );
  }
  const owned = typeof options.base === "string";
  const base = typeof options.base === "string"
    ? await loadBase(options.base)
    : options.base;
  const baseChannels = baseChannelsOf(base, inputSize);
  const feature = featureLayerOf(base, options.featureLayer);
  const featureModel = featureModelOf(base, feature, owned);
  const input = tf.input({
    name: "input",
    shape: [inputSize, inputSize, channels],
  });
  const adapted = adaptChannels(input, {
    channels,
    baseChannels,
    adapter,
    seed,
  });
  const output = poolingHead(featureModel.apply(adapted) as SymbolicTensor, {
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
 * import assert from "node:assert/strict";
 * import { freezeBase, transfer } from "./transfer.ts";
 * import { tf } from "../core/tf.ts";
 * const base = tf.sequential({ layers: [
 *   tf.layers.conv2d({ name: "conv", inputShape: [32, 32, 1], filters: 8, kernelSize: 3 }),
 * ] });
 * const model = await transfer({ base, inputSize: 32, channels: 1, numClasses: 4, freeze: false });
 * assert.equal(model.trainableWeights.length, 4); // the conv and the head
 * freezeBase(model);
 * assert.equal(model.trainableWeights.length, 2); // the head
 * model.dispose();
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

/** The index in `base` of `fromLayer` (0 when absent); throws if there is none. */
function unfreezeFrom(
  base: LayersModel,
  fromLayer: string | number | undefined,
): number {
  if (typeof fromLayer === "number") {
    if (
      !Number.isInteger(fromLayer) || fromLayer < 0 ||
      fromLayer >= base.layers.length
    ) {
      throw new Error(
        `unfreezeBase: fromLayer ${fromLayer} is out of range (the base has ` +
          `${base.layers.length} layers)`,
      );
    }
    return fromLayer;
  }
  if (typeof fromLayer === "string") {
    const from = base.layers.findIndex((l) => l.name === fromLayer);
    if (from < 0) {
      throw new Error(`unfreezeBase: the base has no layer "${fromLayer}"`);
    }
    return from;
  }
  return 0;
}

/**
 * Makes the pretrained part of a {@linkcode transfer} model trainable again,
 * from `fromLayer` on. Compile the model (again) afterwards, usually with a
 * smaller learning rate.
 *
 * @example Fine-tune the top of the base
 * ```ts
 * import assert from "node:assert/strict";
 * import { transfer, unfreezeBase } from "./transfer.ts";
 * import { tf } from "../core/tf.ts";
 * const base = tf.sequential({ layers: [
 *   tf.layers.conv2d({ name: "conv1", inputShape: [32, 32, 1], filters: 8, kernelSize: 3 }),
 *   tf.layers.conv2d({ name: "conv2", filters: 8, kernelSize: 3 }),
 * ] });
 * const model = await transfer({ base, inputSize: 32, channels: 1, numClasses: 4 });
 * unfreezeBase(model, { fromLayer: "conv2" });
 * assert.deepEqual(model.trainableWeights.map((w) => w.originalName), [
 *   "conv2/kernel",
 *   "conv2/bias",
 *   "predictions/kernel",
 *   "predictions/bias",
 * ]);
 * assert.throws(() => unfreezeBase(model, { fromLayer: 99 }), /out of range/);
 * model.dispose();
 * ```
 */
export function unfreezeBase(
  model: LayersModel,
  options: UnfreezeOptions = {},
): void {
  const base = baseOf(model);
  const from = unfreezeFrom(base, options.fromLayer);
  base.trainable = true;
  base.layers.forEach((layer, i) => {
    layer.trainable = i >= from;
  });
}
