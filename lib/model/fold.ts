/**
 * Batch normalisation folded into the convolution before it, for inference.
 *
 * In inference a batch normalisation is a fixed affine map per channel,
 * `y = x·scale + shift`, with `scale = γ / √(σ² + ε)` and `shift = β −
 * μ·scale`. When it reads a convolution's output and nothing else does, it
 * can be folded into that convolution: the kernel's output channels
 * multiplied by `scale`, the bias becoming `bias·scale + shift`. A ReLU
 * right after it becomes the convolution's own activation. tfjs then runs
 * conv + bias + ReLU as one fused kernel instead of three passes over the
 * activation, which is what Keras' compiled graph and the ONNX export do.
 * Folding changes the probabilities only by float32 rounding.
 *
 * {@linkcode foldBatchNorm} builds the folded copy of a model; the tfjs
 * inference engine (`engine.ts`) runs it. Training and Grad-CAM keep the
 * model as it is.
 *
 * @module
 */
import { type LayersModel, tf } from "../core/tf.ts";
import {
  type LayerJson,
  modelFromTopology,
  type ModelTopology,
  modelTopology,
} from "./topology.ts";

type Layer = LayersModel["layers"][number];

/** A batch normalisation in inference as `y = x·scale + shift` per channel. */
export interface Affine {
  /** Per-channel factor. */
  scale: Float64Array;
  /** Per-channel offset. */
  shift: Float64Array;
}

/** A batch normalisation's inference parameters, per channel. */
export interface BatchNormParams {
  /** γ (ones when the layer does not scale). */
  gamma: ArrayLike<number>;
  /** β (zeros when the layer does not centre). */
  beta: ArrayLike<number>;
  /** The moving mean μ. */
  mean: ArrayLike<number>;
  /** The moving variance σ². */
  variance: ArrayLike<number>;
  /** ε. */
  epsilon: number;
}

/**
 * The affine map of a batch normalisation in inference, in float64.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { batchNormAffine } from "./fold.ts";
 * const { scale, shift } = batchNormAffine({
 *   gamma: [2], beta: [1], mean: [3], variance: [4], epsilon: 0,
 * });
 * assert.deepEqual([scale[0], shift[0]], [1, -2]); // 2/√4 and 1 − 3·1
 * ```
 */
export function batchNormAffine(p: BatchNormParams): Affine {
  const channels = p.mean.length;
  const scale = new Float64Array(channels);
  const shift = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    scale[c] = p.gamma[c] / Math.sqrt(p.variance[c] + p.epsilon);
    shift[c] = p.beta[c] - p.mean[c] * scale[c];
  }
  return { scale, shift };
}

/**
 * A layer's weights by their short names (`kernel`, `bias`, `gamma`, …),
 * as float32 arrays.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../core/tf.ts";
 * import { weightsByName } from "./fold.ts";
 * const dense = tf.layers.dense({ units: 2, inputShape: [3] });
 * tf.sequential({ layers: [dense] });
 * assert.deepEqual([...weightsByName(dense).keys()], ["kernel", "bias"]);
 * ```
 */
export function weightsByName(layer: Layer): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const w of layer.weights) {
    const short = w.originalName.split("/").pop() ?? w.originalName;
    out.set(short, w.read().dataSync() as Float32Array);
  }
  return out;
}

/** The kernel and bias of `conv` with the batch normalisation `norm` folded in. */
function foldedWeights(conv: Layer, norm: Layer): [Float32Array, Float32Array] {
  const c = weightsByName(conv);
  const n = weightsByName(norm);
  const kernel = c.get("kernel")!;
  const mean = n.get("moving_mean")!;
  const config = norm.getConfig();
  const { scale, shift } = batchNormAffine({
    gamma: config.scale === false ? mean.map(() => 1) : n.get("gamma")!,
    beta: config.center === false ? mean.map(() => 0) : n.get("beta")!,
    mean,
    variance: n.get("moving_variance")!,
    epsilon: config.epsilon as number,
  });
  const channels = mean.length;
  const bias = c.get("bias");
  const k = kernel.map((v, i) => v * scale[i % channels]);
  const b = new Float32Array(channels);
  for (let o = 0; o < channels; o++) {
    b[o] = (bias ? bias[o] : 0) * scale[o] + shift[o];
  }
  return [k, b];
}

/** The names of the layers reading each layer's output (outputs count as a reader). */
function readersOf(topology: ModelTopology): Map<string, string[]> {
  const readers = new Map<string, string[]>();
  const add = (from: string, to: string) =>
    readers.set(from, [...(readers.get(from) ?? []), to]);
  for (const layer of topology.config.layers) {
    for (const node of layer.inbound_nodes) {
      for (const [from] of node) add(from, layer.name);
    }
  }
  for (const [from] of topology.config.output_layers) add(from, "(output)");
  return readers;
}

/** The single layer reading `layer`, when there is exactly one (and it is a layer). */
function onlyReader(
  layer: LayerJson,
  readers: Map<string, string[]>,
  byName: Map<string, LayerJson>,
): LayerJson | undefined {
  const next = readers.get(layer.name) ?? [];
  if (next.length !== 1 || layer.inbound_nodes.length !== 1) return undefined;
  const reader = byName.get(next[0]);
  return reader && reader.inbound_nodes.length === 1 &&
      reader.inbound_nodes[0].length === 1
    ? reader
    : undefined;
}

/** Whether `layer` is a plain ReLU (the `ReLU` layer or `Activation("relu")`). */
function isPlainRelu(layer: LayerJson): boolean {
  const c = layer.config;
  if (layer.class_name === "Activation") return c.activation === "relu";
  return layer.class_name === "ReLU" && c.max_value == null &&
    !c.negative_slope && !c.threshold;
}

/** One fold: the conv, its batch normalisation and the ReLU after it, if any. */
interface Fold {
  conv: LayerJson;
  norm: LayerJson;
  relu?: LayerJson;
}

/** The folds the topology allows (see the module documentation). */
function findFolds(topology: ModelTopology): Fold[] {
  const byName = new Map(topology.config.layers.map((l) => [l.name, l]));
  const readers = readersOf(topology);
  const folds: Fold[] = [];
  for (const conv of topology.config.layers) {
    if (
      conv.class_name !== "Conv2D" ||
      (conv.config.activation ?? "linear") !== "linear" ||
      conv.config.data_format === "channels_first"
    ) continue;
    const norm = onlyReader(conv, readers, byName);
    const axis = norm?.config.axis;
    if (
      !norm || norm.class_name !== "BatchNormalization" ||
      !(axis === -1 || axis === 3 || (Array.isArray(axis) && axis[0] === 3))
    ) continue;
    const next = onlyReader(norm, readers, byName);
    folds.push({
      conv,
      norm,
      ...(next && isPlainRelu(next) ? { relu: next } : {}),
    });
  }
  return folds;
}

/** The topology with each fold's norm (and ReLU) removed and the conv rewired. */
function foldedTopology(topology: ModelTopology, folds: Fold[]): ModelTopology {
  const copy = structuredClone(topology);
  const renamed = new Map<string, string>();
  const convs = new Map<string, Fold>();
  for (const f of folds) {
    renamed.set(f.norm.name, f.conv.name);
    if (f.relu) renamed.set(f.relu.name, f.conv.name);
    convs.set(f.conv.name, f);
  }
  copy.config.layers = copy.config.layers.filter((l) => !renamed.has(l.name));
  for (const layer of copy.config.layers) {
    const fold = convs.get(layer.name);
    if (fold) {
      layer.config.use_bias = true;
      if (fold.relu) layer.config.activation = "relu";
    }
    for (const node of layer.inbound_nodes) {
      for (const ref of node) ref[0] = renamed.get(ref[0]) ?? ref[0];
    }
  }
  for (const ref of copy.config.output_layers) {
    ref[0] = renamed.get(ref[0]) ?? ref[0];
  }
  return copy;
}

/** Copies every weight into `folded`, folding where `folds` says. */
function setFoldedWeights(
  model: LayersModel,
  folded: LayersModel,
  folds: Fold[],
): void {
  const norms = new Map(folds.map((f) => [f.conv.name, f.norm.name]));
  for (const layer of folded.layers) {
    if (!layer.weights.length) continue;
    const source = model.getLayer(layer.name);
    const norm = norms.get(layer.name);
    if (!norm) {
      const weights = source.getWeights();
      if (weights.length) layer.setWeights(weights);
      continue;
    }
    const [kernel, bias] = foldedWeights(source, model.getLayer(norm));
    const tensors = [
      tf.tensor(kernel, source.getWeights()[0].shape),
      tf.tensor1d(bias),
    ];
    layer.setWeights(tensors);
    tf.dispose(tensors);
  }
}

/**
 * A copy of `model` for inference with every batch normalisation that
 * follows a `Conv2D` (and feeds on nothing else) folded into it, and a plain
 * ReLU after it made the convolution's activation. Returns `model` itself
 * when there is nothing to fold; otherwise the copy (a functional model,
 * also for a Sequential one) is the caller's to dispose. The copy
 * computes the same probabilities up to float32 rounding.
 *
 * @example A ResNet loses its batch-norm and ReLU layers, not its answers
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Tensor, tf } from "../core/tf.ts";
 * import { foldBatchNorm } from "./fold.ts";
 * import { resnet } from "./models.ts";
 * const model = resnet({ inputSize: 32, channels: 1, numClasses: 4, filters: [8], blocksPerStage: 1 });
 * const folded = await foldBatchNorm(model);
 * const count = (m: typeof model, kind: string) =>
 *   m.layers.filter((l) => l.getClassName() === kind).length;
 * assert.equal(count(folded, "BatchNormalization"), 0);
 * assert.ok(count(model, "BatchNormalization") > 0);
 * const x = tf.randomUniform([2, 32, 32, 1], 0, 1, "float32", 7);
 * const a = model.predict(x) as Tensor, b = folded.predict(x) as Tensor;
 * assert.ok(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] < 1e-5);
 * tf.dispose([x, a, b]);
 * folded.dispose();
 * model.dispose();
 * ```
 */
export async function foldBatchNorm(
  model: LayersModel,
): Promise<LayersModel> {
  const topology = modelTopology(model);
  const folds = findFolds(topology);
  if (!folds.length) return model;
  const folded = await modelFromTopology(foldedTopology(topology, folds));
  setFoldedWeights(model, folded, folds);
  return folded;
}
