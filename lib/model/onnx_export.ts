/**
 * A tfjs Layers model as a standard ONNX graph (operator set
 * {@linkcode ONNX_OPSET}), so the classifier runs wherever ONNX runs
 * (onnxruntime in Python, C++, C#, Java, the browser, Node and Deno).
 *
 * The graph takes `image`, float32 `[batch, H, W, C]` (NHWC, scaled exactly as
 * `predictProbabilities` scales it: pixel × 1/255), with a dynamic batch
 * dimension, transposes it once to NCHW and returns `probabilities`,
 * `[batch, numClasses]`. Layers map to ONNX operators one by one:
 *
 * | Keras layer | ONNX |
 * | --- | --- |
 * | `Conv2D`, `DepthwiseConv2D`, `SeparableConv2D` | `Conv` (kernel HWIO → OIHW; `same` padding as explicit `pads`, TensorFlow's: the odd pixel at the bottom and right) |
 * | `BatchNormalization` | folded into the convolution or `Dense` just before it when that feeds only it; else `BatchNormalization` |
 * | `Dense` | `Gemm` |
 * | activations (`relu`, `relu6`, `softmax`, `sigmoid`, `tanh`, `elu`, `selu`, `softplus`, `softsign`, `hardSigmoid`, `swish`, `logSoftmax`, `linear`), `ReLU`, `LeakyReLU`, `ELU`, `Softmax`, `ThresholdedReLU`, `Activation` | the matching operator |
 * | `MaxPooling2D`, `AveragePooling2D` | `MaxPool`, `AveragePool` (padding excluded from the average, as TensorFlow does) |
 * | `GlobalAveragePooling2D`, `GlobalMaxPooling2D` | `GlobalAveragePool`, `GlobalMaxPool` + `Flatten` |
 * | `Flatten` | `Transpose` back to NHWC + `Flatten`, so `Dense` weights keep their order |
 * | `Add`, `Average`, `Maximum`, `Minimum`, `Multiply`, `Concatenate` | `Sum`, `Mean`, `Max`, `Min`, `Mul`, `Concat` |
 * | `ZeroPadding2D`, `Rescaling` | `Pad`, `Mul` + `Add` |
 * | `Dropout`, `SpatialDropout1D`, `GaussianNoise`, `GaussianDropout`, `AlphaDropout` | nothing: identity at inference |
 * | a nested model (the base of a transfer model) | its layers, inlined |
 *
 * Any other layer is refused with an {@linkcode OnnxExportError} naming the
 * layer and its class. A model that predicts with test-time augmentation
 * (`inference.tta` `"hflip"` in its metadata) gets it inside the graph: each
 * image and its mirror go through the network as one batch and their
 * probabilities are averaged, so the file gives what `deno task predict`
 * gives.
 *
 * The file's `metadata_props` carry, as JSON strings, `classes` (in output
 * order), `preprocessing` (size, fit, grayscale, scale, channels, layout),
 * `model` (name and architecture) and `inference` (the test-time
 * augmentation built in, and the operating point `tumourThreshold` when the
 * model has one: a tumour is called when 1 − P(notumor) reaches it).
 *
 * @module
 */
import { type Affine, batchNormAffine, weightsByName } from "./fold.ts";
import { type LayersModel, type SymbolicTensor, tf } from "../core/tf.ts";
import type { ModelMetadata, Tta } from "./saved_model.ts";
import {
  encodeOnnxModel,
  type OnnxAttributeValue,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
} from "./onnx_proto.ts";

type Layer = import("@tensorflow/tfjs-node").layers.Layer;
type Config = Record<string, unknown>;

/** The ONNX operator set the exported graphs use. */
export const ONNX_OPSET = 13;

/** The ONNX IR version of operator set {@linkcode ONNX_OPSET}. */
export const ONNX_IR_VERSION = 7;

/** The `producer_name` of every exported file. */
export const ONNX_PRODUCER = "brain-mri-cnn";

/** Name of the graph's input: float32 `[batch, H, W, C]`, scaled pixels. */
export const ONNX_INPUT = "image";

/** Name of the graph's output: float32 `[batch, numClasses]`. */
export const ONNX_OUTPUT = "probabilities";

/** Name of the dynamic batch dimension of the input and output. */
export const ONNX_BATCH_DIM = "batch";

/** A model (or one of its layers) cannot be written as ONNX. */
export class OnnxExportError extends Error {
  /**
   * Makes the error.
   *
   * @param message what cannot be exported and why
   */
  constructor(message: string) {
    super(message);
    this.name = "OnnxExportError";
  }
}

/** Options for {@linkcode onnxModel} and {@linkcode exportOnnx}. */
export interface OnnxExportOptions {
  /**
   * The saved model's metadata: its classes, preprocessing and architecture
   * go into the file's `metadata_props`.
   */
  metadata?: ModelMetadata;
  /** The model's name (e.g. its run folder); default the network's name. */
  name?: string;
  /**
   * Test-time augmentation built into the graph: `"hflip"` averages each
   * image's probabilities with its mirror's, as `predictProbabilities` does.
   * Default: the metadata's `inference.tta`, else `"none"`.
   */
  tta?: Tta;
}

/** A value of the ONNX graph: its name and rank (rank 4 is NCHW). */
interface Value {
  name: string;
  rank: number;
}

/** The graph under construction: nodes, constants, unique names. */
class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];
  /** Symbolic tensor id → the graph value holding it. */
  readonly values = new Map<number, Value>();
  readonly #names = new Set<string>([ONNX_INPUT]);

  /** `hint`, or `hint_1`, `hint_2`, ... when taken. */
  fresh(hint: string): string {
    let name = hint;
    for (let i = 1; this.#names.has(name); i++) name = `${hint}_${i}`;
    this.#names.add(name);
    return name;
  }

  /** Adds a node with one output, named from `hint`; returns that output. */
  node(
    opType: string,
    inputs: string[],
    hint: string,
    attributes?: Record<string, OnnxAttributeValue>,
  ): string {
    const output = this.fresh(hint);
    this.nodes.push({
      opType,
      name: output,
      inputs,
      outputs: [output],
      ...(attributes ? { attributes } : {}),
    });
    return output;
  }

  /** Adds a float32 constant; returns its name. */
  floats(hint: string, dims: number[], data: ArrayLike<number>): string {
    const name = this.fresh(hint);
    this.initializers.push({ name, dims, data: Float32Array.from(data) });
    return name;
  }

  /** Adds a 1-D int64 constant; returns its name. */
  int64s(hint: string, values: number[]): string {
    const name = this.fresh(hint);
    this.initializers.push({
      name,
      dims: [values.length],
      data: BigInt64Array.from(values.map(BigInt)),
    });
    return name;
  }

  /** The value a symbolic tensor was converted to. */
  value(tensor: SymbolicTensor): Value {
    const value = this.values.get(tensor.id);
    if (!value) {
      throw new OnnxExportError(
        `tensor ${tensor.name} is used before it is computed`,
      );
    }
    return value;
  }

  /** Renames a value everywhere it appears. */
  rename(from: string, to: string): void {
    for (const node of this.nodes) {
      node.inputs = node.inputs.map((n) => n === from ? to : n);
      node.outputs = node.outputs.map((n) => n === from ? to : n);
      if (node.name === from) node.name = to;
    }
  }
}

/** `what` of a layer, or an error naming the layer when it is missing. */
function weight(
  weights: Map<string, Float32Array>,
  what: string,
  layer: Layer,
): Float32Array {
  const w = weights.get(what);
  if (!w) {
    throw unsupported(layer, `it has no "${what}" weight`);
  }
  return w;
}

/** The shape of a layer's weight `what`, or an error naming the layer. */
function weightShape(layer: Layer, what: string): number[] {
  const w = layer.weights.find((w) => w.originalName.endsWith(`/${what}`));
  if (!w) throw unsupported(layer, `it has no "${what}" weight`);
  return w.shape as number[];
}

/** The error for a layer that cannot be exported. */
function unsupported(layer: Layer, why: string): OnnxExportError {
  return new OnnxExportError(
    `layer "${layer.name}" (${layer.getClassName()}) cannot be exported to ` +
      `ONNX: ${why}`,
  );
}

/** One application of a layer, as the converters see it. */
interface Step {
  layer: Layer;
  config: Config;
  inputs: Value[];
  /** The Keras (NHWC) shapes of the inputs. */
  inputShapes: (number | null)[][];
  graph: GraphBuilder;
  /** A batch normalisation layer to fold into this one's output. */
  fold?: Layer;
}

/** A batch normalisation layer's weights and epsilon, on `channels` channels. */
function normParams(layer: Layer, channels: number) {
  const config = layer.getConfig();
  const weights = weightsByName(layer);
  const ones = new Float32Array(channels).fill(1);
  const zeros = new Float32Array(channels);
  return {
    gamma: config.scale === false ? ones : weight(weights, "gamma", layer),
    beta: config.center === false ? zeros : weight(weights, "beta", layer),
    mean: weight(weights, "moving_mean", layer),
    variance: weight(weights, "moving_variance", layer),
    epsilon: config.epsilon as number,
  };
}

/** The batch normalisation of `layer` as y = x·scale + shift per channel. */
function normAffine(layer: Layer, channels: number): Affine {
  return batchNormAffine(normParams(layer, channels));
}

/**
 * Folds `fold` (when given) into weights whose output channel is
 * `channelOf(i)` and into the bias; returns both as float32.
 */
function folded(
  fold: Layer | undefined,
  channels: number,
  kernel: Float32Array,
  bias: Float32Array | undefined,
  channelOf: (i: number) => number,
): { kernel: Float32Array; bias: Float32Array | undefined } {
  if (!fold) return { kernel, bias };
  const { scale, shift } = normAffine(fold, channels);
  const k = kernel.map((v, i) => v * scale[channelOf(i)]);
  const b = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    b[c] = (bias ? bias[c] : 0) * scale[c] + shift[c];
  }
  return { kernel: k, bias: b };
}

/** A Keras kernel `[kh, kw, in, out]` as ONNX's `[out, in, kh, kw]`. */
function oihw(kernel: Float32Array, shape: number[]): Float32Array {
  const [kh, kw, ci, co] = shape;
  const out = new Float32Array(kernel.length);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      for (let i = 0; i < ci; i++) {
        for (let o = 0; o < co; o++) {
          out[((o * ci + i) * kh + y) * kw + x] =
            kernel[((y * kw + x) * ci + i) * co + o];
        }
      }
    }
  }
  return out;
}

/** A pair from a Keras config value that is a number or a pair of numbers. */
function pair(value: unknown): [number, number] {
  if (typeof value === "number") return [value, value];
  const [a, b] = value as number[];
  return [a, b ?? a];
}

/** The spatial geometry of a convolution or pooling window. */
interface Window {
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
}

/**
 * ONNX `pads` ([top, left, bottom, right]) reproducing Keras' `padding` on an
 * input of `size` (height, width). `"same"` pads as TensorFlow does: the
 * output has ⌈size / stride⌉ pixels, the padding is split with the odd pixel
 * at the bottom and right.
 *
 * @example TensorFlow's asymmetric "same" padding for a stride-2 convolution
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensorflowPads } from "./onnx_export.ts";
 * const window = { kernel: [3, 3], strides: [2, 2], dilations: [1, 1] } as const;
 * // 8 → 4 pixels: 1 pixel of padding in all, at the bottom and right.
 * assert.deepEqual(tensorflowPads("same", [8, 8], window), [0, 0, 1, 1]);
 * assert.deepEqual(tensorflowPads("same", [7, 7], window), [1, 1, 1, 1]);
 * assert.deepEqual(tensorflowPads("valid", [7, 7], window), [0, 0, 0, 0]);
 * ```
 */
export function tensorflowPads(
  padding: string,
  size: readonly [number, number],
  window: {
    kernel: readonly [number, number];
    strides: readonly [number, number];
    dilations: readonly [number, number];
  },
): number[] {
  if (padding === "valid") return [0, 0, 0, 0];
  if (padding !== "same") {
    throw new OnnxExportError(`padding "${padding}" is not supported`);
  }
  const before: number[] = [];
  const after: number[] = [];
  for (const d of [0, 1]) {
    const stride = window.strides[d];
    const extent = (window.kernel[d] - 1) * window.dilations[d] + 1;
    const out = Math.ceil(size[d] / stride);
    const total = Math.max((out - 1) * stride + extent - size[d], 0);
    before.push(Math.floor(total / 2));
    after.push(total - Math.floor(total / 2));
  }
  return [...before, ...after];
}

/** Height and width of a step's (NHWC) input; refuses unknown sizes. */
function spatialSize(step: Step): [number, number] {
  const [, h, w] = step.inputShapes[0];
  if (typeof h !== "number" || typeof w !== "number") {
    throw unsupported(step.layer, "its input has no fixed height and width");
  }
  return [h, w];
}

/** Refuses a layer whose input is not channels-last images. */
function requireImages(step: Step): void {
  const format = step.config.dataFormat;
  if (format !== undefined && format !== "channelsLast") {
    throw unsupported(step.layer, `data format "${format}" is not supported`);
  }
  if (step.inputs[0].rank !== 4) {
    throw unsupported(step.layer, `its input has rank ${step.inputs[0].rank}`);
  }
}

/** The `Conv` attributes of a window on the step's input. */
function convAttributes(
  step: Step,
  window: Window,
  group: number,
): Record<string, OnnxAttributeValue> {
  const padding = step.config.padding as string;
  if (padding !== "valid" && padding !== "same") {
    throw unsupported(step.layer, `padding "${padding}" is not supported`);
  }
  return {
    kernel_shape: { ints: window.kernel },
    strides: { ints: window.strides },
    dilations: { ints: window.dilations },
    pads: { ints: tensorflowPads(padding, spatialSize(step), window) },
    group: { int: group },
  };
}

/** The window of a convolution layer's config. */
function convWindow(config: Config): Window {
  return {
    kernel: pair(config.kernelSize),
    strides: pair(config.strides),
    dilations: pair(config.dilationRate ?? 1),
  };
}

/** Adds a `Conv` node; its weights are already in ONNX's layout. */
function convNode(
  step: Step,
  x: string,
  spec: {
    kernel: Float32Array;
    dims: number[];
    bias?: Float32Array;
    attributes: Record<string, OnnxAttributeValue>;
    hint: string;
  },
): string {
  const { graph } = step;
  const inputs = [
    x,
    graph.floats(`${spec.hint}/kernel`, spec.dims, spec.kernel),
  ];
  if (spec.bias) {
    inputs.push(graph.floats(`${spec.hint}/bias`, [spec.dims[0]], spec.bias));
  }
  return graph.node("Conv", inputs, spec.hint, spec.attributes);
}

function convertConv2d(step: Step): Value {
  requireImages(step);
  const { layer, config } = step;
  const weights = weightsByName(layer);
  const shape = weightShape(layer, "kernel");
  const [kh, kw, ci, co] = shape;
  const per = ci * kh * kw;
  const { kernel, bias } = folded(
    step.fold,
    co,
    oihw(weight(weights, "kernel", layer), shape),
    config.useBias === false ? undefined : weight(weights, "bias", layer),
    (i) => Math.floor(i / per),
  );
  const y = convNode(step, step.inputs[0].name, {
    kernel,
    dims: [co, ci, kh, kw],
    bias,
    attributes: convAttributes(step, convWindow(config), 1),
    hint: layer.name,
  });
  return activation(step, { name: y, rank: 4 }, config.activation);
}

/** A depthwise convolution's node (no bias unless given); returns its output. */
function depthwiseNode(
  step: Step,
  spec: { kernel: Float32Array; shape: number[]; bias?: Float32Array },
): string {
  const [kh, kw, ci, multiplier] = spec.shape;
  const channels = ci * multiplier;
  const fold = step.layer.getClassName() === "DepthwiseConv2D"
    ? step.fold
    : undefined;
  const { kernel, bias } = folded(
    fold,
    channels,
    oihw(spec.kernel, [kh, kw, 1, channels]),
    spec.bias,
    (i) => Math.floor(i / (kh * kw)),
  );
  return convNode(step, step.inputs[0].name, {
    kernel,
    dims: [channels, 1, kh, kw],
    bias,
    attributes: convAttributes(step, convWindow(step.config), ci),
    hint: step.layer.name,
  });
}

function convertDepthwise(step: Step): Value {
  requireImages(step);
  const { layer, config } = step;
  const weights = weightsByName(layer);
  const y = depthwiseNode(step, {
    kernel: weight(weights, "depthwise_kernel", layer),
    shape: weightShape(layer, "depthwise_kernel"),
    bias: config.useBias === false ? undefined : weight(weights, "bias", layer),
  });
  return activation(step, { name: y, rank: 4 }, config.activation);
}

function convertSeparable(step: Step): Value {
  requireImages(step);
  const { layer, config } = step;
  const weights = weightsByName(layer);
  const depthwise = depthwiseNode(step, {
    kernel: weight(weights, "depthwise_kernel", layer),
    shape: weightShape(layer, "depthwise_kernel"),
  });
  const pointShape = weightShape(layer, "pointwise_kernel");
  const [, , ci, co] = pointShape;
  const { kernel, bias } = folded(
    step.fold,
    co,
    oihw(weight(weights, "pointwise_kernel", layer), pointShape),
    config.useBias === false ? undefined : weight(weights, "bias", layer),
    (i) => Math.floor(i / ci),
  );
  const y = convNode(step, depthwise, {
    kernel,
    dims: [co, ci, 1, 1],
    bias,
    attributes: { kernel_shape: { ints: [1, 1] } },
    hint: `${layer.name}/pointwise`,
  });
  return activation(step, { name: y, rank: 4 }, config.activation);
}

function convertDense(step: Step): Value {
  const { layer, config, graph } = step;
  if (step.inputs[0].rank !== 2) {
    throw unsupported(
      layer,
      `its input has rank ${
        step.inputs[0].rank
      }; only [batch, features] is supported`,
    );
  }
  const weights = weightsByName(layer);
  const units = config.units as number;
  const { kernel, bias } = folded(
    step.fold,
    units,
    weight(weights, "kernel", layer),
    config.useBias === false ? undefined : weight(weights, "bias", layer),
    (i) => i % units,
  );
  const inputs = [
    step.inputs[0].name,
    graph.floats(
      `${layer.name}/kernel`,
      [kernel.length / units, units],
      kernel,
    ),
  ];
  if (bias) inputs.push(graph.floats(`${layer.name}/bias`, [units], bias));
  const y = graph.node("Gemm", inputs, layer.name);
  return activation(step, { name: y, rank: 2 }, config.activation);
}

/** The ONNX axis of a Keras axis on a value of rank `rank` (4: NHWC → NCHW). */
function onnxAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  return rank === 4 ? [0, 2, 3, 1][a] : a;
}

function convertBatchNorm(step: Step): Value {
  const { layer, config, graph } = step;
  const x = step.inputs[0];
  const axis = config.axis as number | number[];
  const a = Array.isArray(axis) && axis.length === 1 ? axis[0] : axis;
  if (typeof a !== "number" || onnxAxis(a, x.rank) !== 1) {
    throw unsupported(
      layer,
      `it normalises axis ${JSON.stringify(axis)}, not the channels`,
    );
  }
  const channels = step.inputShapes[0].at(-1) as number;
  const p = normParams(layer, channels);
  const y = graph.node(
    "BatchNormalization",
    [
      x.name,
      graph.floats(`${layer.name}/gamma`, [channels], p.gamma),
      graph.floats(`${layer.name}/beta`, [channels], p.beta),
      graph.floats(`${layer.name}/moving_mean`, [channels], p.mean),
      graph.floats(`${layer.name}/moving_variance`, [channels], p.variance),
    ],
    layer.name,
    { epsilon: { float: p.epsilon } },
  );
  return { name: y, rank: x.rank };
}

/**
 * Applies the Keras activation `name` (as a layer config names it) to `x`.
 */
function activation(step: Step, x: Value, name: unknown): Value {
  const { graph, layer } = step;
  const hint = `${layer.name}/${name}`;
  const unary = (
    op: string,
    attributes?: Record<string, OnnxAttributeValue>,
  ) => ({ name: graph.node(op, [x.name], hint, attributes), rank: x.rank });
  const axis = { axis: { int: x.rank === 4 ? 1 : -1 } };
  switch (name) {
    case undefined:
    case null:
    case "linear":
      return x;
    case "relu":
      return unary("Relu");
    case "relu6":
      return clip(graph, x, hint, 6);
    case "softmax":
      return unary("Softmax", axis);
    case "logSoftmax":
      return unary("LogSoftmax", axis);
    case "sigmoid":
      return unary("Sigmoid");
    case "tanh":
      return unary("Tanh");
    case "elu":
      return unary("Elu");
    case "selu":
      return unary("Selu");
    case "softplus":
      return unary("Softplus");
    case "softsign":
      return unary("Softsign");
    case "hardSigmoid":
      return unary("HardSigmoid", {
        alpha: { float: 0.2 },
        beta: { float: 0.5 },
      });
    case "swish": {
      const s = graph.node("Sigmoid", [x.name], `${hint}/sigmoid`);
      return { name: graph.node("Mul", [x.name, s], hint), rank: x.rank };
    }
    default:
      throw unsupported(layer, `activation "${name}" is not supported`);
  }
}

/** `Clip(x, 0, max)`. */
function clip(graph: GraphBuilder, x: Value, hint: string, max: number): Value {
  const lo = graph.floats(`${hint}/min`, [], [0]);
  const hi = graph.floats(`${hint}/max`, [], [max]);
  return { name: graph.node("Clip", [x.name, lo, hi], hint), rank: x.rank };
}

function convertActivationLayer(step: Step): Value {
  const { layer, config, graph } = step;
  const x = step.inputs[0];
  const unary = (
    op: string,
    attributes: Record<string, OnnxAttributeValue>,
  ) => ({
    name: graph.node(op, [x.name], layer.name, attributes),
    rank: x.rank,
  });
  switch (layer.getClassName()) {
    case "Activation":
      return activation(step, x, config.activation);
    case "ReLU": {
      const max = config.maxValue as number | null | undefined;
      if (max === null || max === undefined) {
        return { name: graph.node("Relu", [x.name], layer.name), rank: x.rank };
      }
      return clip(graph, x, layer.name, max);
    }
    case "LeakyReLU":
      return unary("LeakyRelu", { alpha: { float: config.alpha as number } });
    case "ELU":
      return unary("Elu", { alpha: { float: config.alpha as number } });
    case "ThresholdedReLU":
      return unary("ThresholdedRelu", {
        alpha: { float: config.theta as number },
      });
    default: {
      const axis = config.axis as number;
      return unary("Softmax", { axis: { int: onnxAxis(axis, x.rank) } });
    }
  }
}

function convertPool(step: Step): Value {
  requireImages(step);
  const { layer, config, graph } = step;
  const window: Window = {
    kernel: pair(config.poolSize),
    strides: pair(config.strides ?? config.poolSize),
    dilations: [1, 1],
  };
  const padding = config.padding as string;
  const op = layer.getClassName() === "MaxPooling2D"
    ? "MaxPool"
    : "AveragePool";
  const y = graph.node(op, [step.inputs[0].name], layer.name, {
    kernel_shape: { ints: window.kernel },
    strides: { ints: window.strides },
    pads: { ints: tensorflowPads(padding, spatialSize(step), window) },
  });
  return { name: y, rank: 4 };
}

function convertGlobalPool(step: Step): Value {
  requireImages(step);
  const { layer, config, graph } = step;
  const op = layer.getClassName() === "GlobalMaxPooling2D"
    ? "GlobalMaxPool"
    : "GlobalAveragePool";
  const pooled = graph.node(op, [step.inputs[0].name], `${layer.name}/pool`);
  if (config.keepDims === true) return { name: pooled, rank: 4 };
  const y = graph.node("Flatten", [pooled], layer.name, { axis: { int: 1 } });
  return { name: y, rank: 2 };
}

function convertFlatten(step: Step): Value {
  const { layer, graph } = step;
  const x = step.inputs[0];
  if (x.rank === 2) return x;
  if (x.rank !== 4) {
    throw unsupported(layer, `its input has rank ${x.rank}`);
  }
  const nhwc = graph.node("Transpose", [x.name], `${layer.name}/nhwc`, {
    perm: { ints: [0, 2, 3, 1] },
  });
  const y = graph.node("Flatten", [nhwc], layer.name, { axis: { int: 1 } });
  return { name: y, rank: 2 };
}

/** Merge layers and the ONNX operator each becomes (`pairwise`: two inputs at a time). */
const MERGES: Record<string, { op: string; pairwise?: boolean }> = {
  Add: { op: "Sum" },
  Average: { op: "Mean" },
  Maximum: { op: "Max" },
  Minimum: { op: "Min" },
  Multiply: { op: "Mul", pairwise: true },
};

function convertMerge(step: Step): Value {
  const { layer, graph, inputs } = step;
  const rank = inputs[0].rank;
  if (inputs.some((x) => x.rank !== rank)) {
    throw unsupported(layer, "its inputs have different ranks");
  }
  const { op, pairwise } = MERGES[layer.getClassName()];
  const names = inputs.map((x) => x.name);
  if (!pairwise) return { name: graph.node(op, names, layer.name), rank };
  let y = names[0];
  for (const next of names.slice(1)) {
    y = graph.node(op, [y, next], layer.name);
  }
  return { name: y, rank };
}

function convertConcatenate(step: Step): Value {
  const { layer, config, graph, inputs } = step;
  const rank = inputs[0].rank;
  if (inputs.some((x) => x.rank !== rank)) {
    throw unsupported(layer, "its inputs have different ranks");
  }
  const axis = onnxAxis((config.axis as number | undefined) ?? -1, rank);
  const y = graph.node("Concat", inputs.map((x) => x.name), layer.name, {
    axis: { int: axis },
  });
  return { name: y, rank };
}

function convertZeroPadding(step: Step): Value {
  requireImages(step);
  const { layer, config, graph } = step;
  const [[top, bottom], [left, right]] = (config.padding as unknown[]).map(
    pair,
  );
  const pads = graph.int64s(`${layer.name}/pads`, [
    0,
    0,
    top,
    left,
    0,
    0,
    bottom,
    right,
  ]);
  const y = graph.node("Pad", [step.inputs[0].name, pads], layer.name);
  return { name: y, rank: 4 };
}

function convertRescaling(step: Step): Value {
  const { layer, config, graph } = step;
  const x = step.inputs[0];
  const scale = graph.floats(`${layer.name}/scale`, [], [
    config.scale as number,
  ]);
  let y = graph.node("Mul", [x.name, scale], layer.name);
  const offset = (config.offset as number | undefined) ?? 0;
  if (offset !== 0) {
    const b = graph.floats(`${layer.name}/offset`, [], [offset]);
    y = graph.node("Add", [y, b], layer.name);
  }
  return { name: y, rank: x.rank };
}

/** Layers that do nothing at inference. */
const IDENTITY_LAYERS = new Set([
  "Dropout",
  "SpatialDropout1D",
  "GaussianNoise",
  "GaussianDropout",
  "AlphaDropout",
]);

/** The converter of each supported layer class. */
const CONVERTERS: Record<string, (step: Step) => Value> = {
  Conv2D: convertConv2d,
  DepthwiseConv2D: convertDepthwise,
  SeparableConv2D: convertSeparable,
  Dense: convertDense,
  BatchNormalization: convertBatchNorm,
  Activation: convertActivationLayer,
  ReLU: convertActivationLayer,
  LeakyReLU: convertActivationLayer,
  ELU: convertActivationLayer,
  ThresholdedReLU: convertActivationLayer,
  Softmax: convertActivationLayer,
  MaxPooling2D: convertPool,
  AveragePooling2D: convertPool,
  GlobalAveragePooling2D: convertGlobalPool,
  GlobalMaxPooling2D: convertGlobalPool,
  Flatten: convertFlatten,
  Concatenate: convertConcatenate,
  ZeroPadding2D: convertZeroPadding,
  Rescaling: convertRescaling,
  ...Object.fromEntries(Object.keys(MERGES).map((k) => [k, convertMerge])),
  ...Object.fromEntries([...IDENTITY_LAYERS].map((k) => [k, identity])),
};

function identity(step: Step): Value {
  return step.inputs[0];
}

/** A node of a tfjs model's graph (a layer applied to tensors). */
interface GraphNode {
  outboundLayer: Layer;
  inputTensors: SymbolicTensor[];
  outputTensors: SymbolicTensor[];
}

/** The parts of a tfjs model's graph the export walks. */
interface Container {
  nodesByDepth: Record<string, GraphNode[]>;
  inputs: SymbolicTensor[];
  outputs: SymbolicTensor[];
}

/** The nodes of a model's graph, every node after the nodes it reads. */
function nodesInOrder(container: Container): GraphNode[] {
  return Object.keys(container.nodesByDepth)
    .map(Number)
    .sort((a, b) => b - a)
    .flatMap((depth) => container.nodesByDepth[depth]);
}

/** Layers whose output a following batch normalisation can be folded into. */
const FOLDABLE = new Set([
  "Conv2D",
  "DepthwiseConv2D",
  "SeparableConv2D",
  "Dense",
]);

/**
 * The batch normalisation node to fold into `node`: the only reader of its
 * output (which is not a model output), normalising its channels, after a
 * foldable layer with no activation of its own.
 */
function foldableNorm(
  node: GraphNode,
  readers: Map<number, GraphNode[]>,
  outputs: Set<number>,
): GraphNode | undefined {
  const layer = node.outboundLayer;
  const config = layer.getConfig();
  if (
    !FOLDABLE.has(layer.getClassName()) ||
    (config.activation ?? "linear") !== "linear" ||
    node.outputTensors.length !== 1
  ) return undefined;
  const out = node.outputTensors[0];
  const next = readers.get(out.id) ?? [];
  if (outputs.has(out.id) || next.length !== 1) return undefined;
  const norm = next[0];
  if (
    norm.outboundLayer.getClassName() !== "BatchNormalization" ||
    norm.inputTensors.length !== 1
  ) return undefined;
  const axis = norm.outboundLayer.getConfig().axis as number | number[];
  const a = Array.isArray(axis) && axis.length === 1 ? axis[0] : axis;
  const rank = out.shape.length;
  return typeof a === "number" && onnxAxis(a, rank) === 1 ? norm : undefined;
}

/** Symbolic tensor id → the nodes reading it. */
function readersOf(nodes: GraphNode[]): Map<number, GraphNode[]> {
  const readers = new Map<number, GraphNode[]>();
  for (const node of nodes) {
    for (const t of node.inputTensors) {
      readers.set(t.id, [...(readers.get(t.id) ?? []), node]);
    }
  }
  return readers;
}

/** Converts one layer application (not a nested model) into the graph. */
function convertNode(
  node: GraphNode,
  graph: GraphBuilder,
  fold: GraphNode | undefined,
): Value {
  const layer = node.outboundLayer;
  const convert = CONVERTERS[layer.getClassName()];
  if (!convert) throw unsupported(layer, "this kind of layer is not supported");
  if (node.outputTensors.length !== 1) {
    throw unsupported(layer, "it has several outputs");
  }
  return convert({
    layer,
    config: layer.getConfig() as Config,
    inputs: node.inputTensors.map((t) => graph.value(t)),
    inputShapes: node.inputTensors.map((t) => t.shape),
    graph,
    fold: fold?.outboundLayer,
  });
}

/**
 * Converts the graph of `model` (a whole model or one nested in another)
 * whose inputs hold `inputs`; returns the values of its outputs.
 */
function convertModel(
  model: LayersModel,
  graph: GraphBuilder,
  inputs: Value[],
): Value[] {
  // A Sequential model builds its graph on first use (as `predict` does).
  if (model instanceof tf.Sequential && !model.built) model.build();
  const container = model as unknown as Container;
  container.inputs.forEach((t, i) => graph.values.set(t.id, inputs[i]));
  const nodes = nodesInOrder(container);
  const readers = readersOf(nodes);
  const outputs = new Set(container.outputs.map((t) => t.id));
  const folded = new Set<GraphNode>();
  for (const node of nodes) {
    const layer = node.outboundLayer;
    if (folded.has(node) || layer.getClassName() === "InputLayer") continue;
    if (layer instanceof tf.LayersModel) {
      const ins = node.inputTensors.map((t) => graph.value(t));
      const outs = convertModel(layer, graph, ins);
      node.outputTensors.forEach((t, i) => graph.values.set(t.id, outs[i]));
      continue;
    }
    const fold = foldableNorm(node, readers, outputs);
    if (fold) folded.add(fold);
    const value = convertNode(node, graph, fold);
    graph.values.set((fold ?? node).outputTensors[0].id, value);
  }
  return container.outputs.map((t) => graph.value(t));
}

/** The model's image input `[H, W, C]`; throws unless it has one, of fixed size. */
function imageShape(model: LayersModel): [number, number, number] {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new OnnxExportError(
      `model "${model.name}" has ${model.inputs.length} inputs and ` +
        `${model.outputs.length} outputs; only one of each can be exported`,
    );
  }
  const [, h, w, c] = model.inputs[0].shape;
  if (
    model.inputs[0].shape.length !== 4 ||
    ![h, w, c].every((d) => typeof d === "number")
  ) {
    throw new OnnxExportError(
      `model "${model.name}" takes input of shape [${
        model.inputs[0].shape.map(String)
      }]; only images of a fixed size [batch, H, W, C] can be exported`,
    );
  }
  const out = model.outputs[0].shape;
  if (out.length !== 2 || typeof out[1] !== "number") {
    throw new OnnxExportError(
      `model "${model.name}" returns shape [${
        out.map(String)
      }]; only [batch, classes] can be exported`,
    );
  }
  return [h, w, c] as [number, number, number];
}

/** The test-time augmentation to build in: the option, else the metadata's. */
function exportTta(options: OnnxExportOptions): Tta {
  const tta = options.tta ?? options.metadata?.inference?.tta ?? "none";
  if (tta !== "none" && tta !== "hflip") {
    throw new OnnxExportError(`tta must be "none" or "hflip" (got "${tta}")`);
  }
  return tta;
}

/**
 * The input images followed by their left-right mirrors, as one batch of
 * twice the size (`Slice` backwards along the width, `Concat` on the batch).
 */
function withMirrors(graph: GraphBuilder): string {
  const mirrored = graph.node("Slice", [
    ONNX_INPUT,
    graph.int64s("mirror/starts", [-1]),
    graph.int64s("mirror/ends", [-(2 ** 63)]),
    graph.int64s("mirror/axes", [2]),
    graph.int64s("mirror/steps", [-1]),
  ], "image_mirrored");
  return graph.node("Concat", [ONNX_INPUT, mirrored], "image_and_mirrored", {
    axis: { int: 0 },
  });
}

/** The mean of each image's probabilities and its mirror's (see {@linkcode withMirrors}). */
function averageMirrors(
  graph: GraphBuilder,
  probs: string,
  classes: number,
): string {
  const pairs = graph.node("Reshape", [
    probs,
    graph.int64s("mirror/pairs_shape", [2, -1, classes]),
  ], "mirror/pairs");
  return graph.node("ReduceMean", [pairs], "mirror/mean", {
    axes: { ints: [0] },
    keepdims: { int: 0 },
  });
}

/** The `metadata_props` of an exported model. */
function metadataProps(
  model: LayersModel,
  options: OnnxExportOptions,
): Record<string, string> {
  const m = options.metadata;
  const props: Record<string, string> = {
    model: JSON.stringify({
      name: options.name ?? m?.training?.run ?? model.name,
      arch: m?.arch ?? model.name,
    }),
  };
  if (m) {
    props.classes = JSON.stringify(m.classes);
    props.preprocessing = JSON.stringify({
      ...m.preprocessing,
      channels: m.channels,
      layout: "NHWC",
    });
  }
  const threshold = m?.inference?.tumourThreshold;
  props.inference = JSON.stringify({
    tta: exportTta(options),
    ...(threshold !== undefined ? { tumourThreshold: threshold } : {}),
  });
  return props;
}

/**
 * The ONNX model of a tfjs Layers classifier (see the module doc for the
 * graph's input, output and operators). Throws an
 * {@linkcode OnnxExportError} naming the first layer it cannot convert.
 *
 * @example The small seed CNN: one transpose, three convolutions, a Gemm pair
 * ```ts
 * import assert from "node:assert/strict";
 * import { onnxModel } from "./onnx_export.ts";
 * import { seedCnn } from "./models.ts";
 * const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
 * const onnx = onnxModel(model);
 * assert.deepEqual(onnx.inputs[0].shape, ["batch", 32, 32, 1]);
 * assert.deepEqual(onnx.outputs[0], { name: "probabilities", type: "float", shape: ["batch", 4] });
 * assert.deepEqual(
 *   onnx.nodes.map((n) => n.opType),
 *   ["Transpose", "Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Conv", "Relu",
 *     "MaxPool", "Transpose", "Flatten", "Gemm", "Relu", "Gemm", "Softmax"],
 * );
 * model.dispose();
 * ```
 */
export function onnxModel(
  model: LayersModel,
  options: OnnxExportOptions = {},
): OnnxModel {
  const [h, w, c] = imageShape(model);
  const numClasses = model.outputs[0].shape[1] as number;
  const tta = exportTta(options);
  const graph = new GraphBuilder();
  const images = tta === "hflip" ? withMirrors(graph) : ONNX_INPUT;
  const nchw = graph.node("Transpose", [images], "image_nchw", {
    perm: { ints: [0, 3, 1, 2] },
  });
  const [out] = convertModel(model, graph, [{ name: nchw, rank: 4 }]);
  if (out.rank !== 2) {
    throw new OnnxExportError(
      `model "${model.name}" does not end in [batch, classes]`,
    );
  }
  graph.rename(
    tta === "hflip" ? averageMirrors(graph, out.name, numClasses) : out.name,
    ONNX_OUTPUT,
  );
  return {
    irVersion: ONNX_IR_VERSION,
    opset: ONNX_OPSET,
    producerName: ONNX_PRODUCER,
    producerVersion: "1",
    graphName: model.name,
    docString: "Brain MRI classifier: image [batch, H, W, C] (NHWC, pixels " +
      "scaled as the preprocessing says) → probabilities [batch, classes].",
    nodes: graph.nodes,
    initializers: graph.initializers,
    inputs: [{
      name: ONNX_INPUT,
      type: "float",
      shape: [ONNX_BATCH_DIM, h, w, c],
    }],
    outputs: [{
      name: ONNX_OUTPUT,
      type: "float",
      shape: [ONNX_BATCH_DIM, numClasses],
    }],
    metadata: metadataProps(model, options),
  };
}

/**
 * The bytes of the ONNX file of a tfjs Layers classifier
 * ({@linkcode onnxModel}, encoded).
 *
 * @example The small seed CNN as an ONNX file
 * ```ts
 * import assert from "node:assert/strict";
 * import { exportOnnx } from "./onnx_export.ts";
 * import { decodeOnnxModel } from "./onnx_proto.ts";
 * import { seedCnn } from "./models.ts";
 * const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
 * const bytes = exportOnnx(model, { name: "tiny" });
 * const file = decodeOnnxModel(bytes) as { producerName: string; opsetImport: { version: number }[] };
 * assert.equal(file.producerName, "brain-mri-cnn");
 * assert.equal(file.opsetImport[0].version, 13);
 * model.dispose();
 * ```
 */
export function exportOnnx(
  model: LayersModel,
  options: OnnxExportOptions = {},
): Uint8Array {
  return encodeOnnxModel(onnxModel(model, options));
}
