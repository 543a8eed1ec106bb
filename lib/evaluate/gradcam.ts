/**
 * Grad-CAM (Selvaraju et al., 2017, "Grad-CAM: Visual Explanations from Deep
 * Networks via Gradient-based Localization"): where in the scan did the
 * network find the evidence for a class?
 *
 * For a convolutional layer with activations `A` (`h×w×k`) and the score `y`
 * of class `c`:
 *
 * 1. the gradients `∂y/∂A` are averaged over the `h×w` positions, giving one
 *    weight per channel, `α_k = mean_ij ∂y/∂A_ijk`;
 * 2. the map is `ReLU(Σ_k α_k A_k)`: the channels weighted by how much they
 *    raise the score, keeping only the positive evidence;
 * 3. it is upsampled bilinearly to the input size and scaled to [0, 1]
 *    (min–max per image; a constant map becomes all zeros).
 *
 * **Ensembles.** For an ensemble (`deno task ensemble`) without a
 * `layerName`, each member's map (its last convolution, its logit) for the
 * class the ensemble chose, averaged: `layerName` in the result lists them.
 *
 * **Which layer.** By default the last `Conv2D` layer of the model (searching
 * nested models too, so the pretrained base of a transfer model counts), or
 * any layer with an image-like output, by name: for the batch-normalised
 * `vgg` and `resnet` factories the last conv's output is pre-normalisation,
 * and `block4_conv2_relu` (vgg) or the last `stageN_blockM_relu` (resnet,
 * after the residual sum, so the shortcut's evidence counts too) are natural
 * alternatives.
 *
 * **Which score.** The class's pre-softmax logit, as in the paper, when the
 * model ends in a `Dense` layer with a softmax activation (every factory in
 * `./models.ts` does): the logit is recomputed from that layer's input and
 * weights. The softmax probability `p_c` is a poor target: its gradient is
 * `p_c (∂z_c − Σ_j p_j ∂z_j)`, which vanishes as the model grows confident
 * (so the most confident predictions get the weakest, noisiest maps) and
 * mixes in the evidence against the other classes. Models with another head
 * fall back to the output itself (`score: "probability"` in the result).
 *
 * **How the gradient reaches an inner layer.** tfjs computes gradients only
 * with respect to tensors that exist before the forward pass, and the
 * factories' graphs have branches (ResNet shortcuts) and nested models, so
 * splitting the model at the layer is not general. Instead the chosen
 * layer's `call` is wrapped for the duration of one forward pass to return
 * `A + Z`, where `Z` is a zero tensor of the activations' shape, and the
 * gradient is taken with respect to `Z`: since `∂(A + Z)/∂Z = 1`, `∂y/∂Z`
 * is exactly `∂y/∂A`, through every path the activations take. The wrapper
 * is removed before `gradCam` returns, even on error. Samples of a batch are
 * independent (inference mode: batch norm uses its moving statistics,
 * dropout is off), so one backward pass serves a whole batch (`batchSize`
 * images at a time).
 *
 * Every tensor made here is disposed before returning.
 *
 * @module
 */
import {
  type LayersModel,
  type Tensor,
  type Tensor4D,
  tf,
} from "../core/tf.ts";
import { toBatchTensor } from "../data/preprocess.ts";

type Layer = import("@tensorflow/tfjs-node").layers.Layer;
type Kwargs = Record<string, unknown>;
type CallFn = (inputs: Tensor | Tensor[], kwargs: Kwargs) => Tensor | Tensor[];

/** Layer classes {@linkcode gradCam} picks from by default. */
export const CONV_LAYER_CLASSES: readonly string[] = [
  "Conv2D",
  "SeparableConv2D",
  "DepthwiseConv2D",
];

/** Images per pass when {@linkcode GradCamOptions.batchSize} is not given. */
export const DEFAULT_GRADCAM_BATCH = 16;

/** Grayscale images as packed bytes (what `./preprocess.ts` produces). */
export interface PixelImages {
  /** `count * size * size` bytes, row-major, one channel per image. */
  pixels: Uint8Array;
  /** Side of each (square) image. */
  size: number;
}

/** Options for {@linkcode gradCam}. */
export interface GradCamOptions {
  /** The classifier: any model of `./models.ts`, trained or not. */
  model: LayersModel;
  /**
   * The input batch: a `[n, size, size, channels]` tensor scaled as the model
   * expects (left to the caller to dispose), or grayscale bytes, scaled to
   * [0, 1] as in training (`toBatchTensor`), and repeated over three
   * channels if the model takes RGB.
   */
  images: Tensor4D | PixelImages;
  /**
   * The class to explain: one index for every image, or one per image.
   * Default: each image's predicted class.
   */
  classIndex?: number | ArrayLike<number>;
  /** The layer to explain; default the last `Conv2D` layer (see the module docs). */
  layerName?: string;
  /**
   * Images per forward and backward pass (default 16): the backward pass
   * keeps every intermediate activation (several MB per 128×128 image), so
   * a whole test set at once would not fit. The result does not depend on it.
   */
  batchSize?: number;
}

/** What {@linkcode gradCam} returns. */
export interface GradCamResult {
  /** One map per image, `height * width` values in [0, 1], row-major. */
  heatmaps: Float32Array[];
  /** The class each map explains. */
  classIndex: number[];
  /** The model's class probabilities for each image. */
  probabilities: number[][];
  /** The layer explained. */
  layerName: string;
  /** `"logit"` (pre-softmax score) or `"probability"` (the model's output). */
  score: "logit" | "probability";
  /** Height of the maps (the input's). */
  height: number;
  /** Width of the maps (the input's). */
  width: number;
}

function isModel(layer: unknown): layer is LayersModel {
  return Array.isArray((layer as { layers?: unknown }).layers);
}

/** Every layer of the model, nested models expanded in place, in order. */
function flatLayers(model: LayersModel): Layer[] {
  const out: Layer[] = [];
  for (const layer of model.layers) {
    out.push(layer);
    if (isModel(layer)) out.push(...flatLayers(layer));
  }
  return out;
}

/**
 * Finds the layer Grad-CAM explains: the one named `layerName` (searched in
 * nested models too), or the last convolutional layer
 * ({@linkcode CONV_LAYER_CLASSES}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gradCamLayer } from "./gradcam.ts";
 * import { seedCnn } from "../model/models.ts";
 * const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
 * assert.equal(gradCamLayer(model).name, "conv3");
 * assert.equal(gradCamLayer(model, "conv2").name, "conv2");
 * assert.throws(() => gradCamLayer(model, "nope"), /has no layer "nope"/);
 * model.dispose();
 * ```
 */
export function gradCamLayer(model: LayersModel, layerName?: string): Layer {
  const layers = flatLayers(model);
  let layer: Layer | undefined;
  if (layerName !== undefined) {
    layer = layers.find((l) => l.name === layerName);
    if (!layer) {
      throw new Error(
        `gradCam: model "${model.name}" has no layer "${layerName}" ` +
          `(layers: ${layers.map((l) => l.name).join(", ")})`,
      );
    }
  } else {
    layer = [...layers].reverse().find((l) =>
      CONV_LAYER_CLASSES.includes(l.getClassName())
    );
    if (!layer) {
      throw new Error(
        `gradCam: model "${model.name}" has no convolutional layer; ` +
          "pass layerName",
      );
    }
  }
  const shape = layer.outputShape;
  if (
    !Array.isArray(shape) || shape.length !== 4 || Array.isArray(shape[0])
  ) {
    throw new Error(
      `gradCam: layer "${layer.name}" has output shape ` +
        `${JSON.stringify(shape)}, not an image-like [batch, height, width, ` +
        "channels] one",
    );
  }
  if ((shape as (number | null)[]).slice(1).some((d) => d === null)) {
    throw new Error(
      `gradCam: layer "${layer.name}" has output shape ${
        JSON.stringify(shape)
      } with unknown sizes; build the model for a fixed input size`,
    );
  }
  return layer;
}

/** The final layer and how to get its pre-softmax logits, if possible. */
function logitHead(model: LayersModel): Layer | undefined {
  const last = model.outputs[0]?.sourceLayer as Layer | undefined;
  if (!last || last.getClassName() !== "Dense") return undefined;
  const config = last.getConfig() as { activation?: string };
  return config.activation === "softmax" ? last : undefined;
}

function toInput(images: Tensor4D | PixelImages, model: LayersModel): Tensor4D {
  const shape = model.inputs[0].shape;
  const [, h, w, c] = shape;
  let x: Tensor4D;
  if (images instanceof tf.Tensor) {
    if (images.rank !== 4) {
      throw new Error(
        `gradCam: images must be a [n, height, width, channels] tensor ` +
          `(got shape [${images.shape}])`,
      );
    }
    x = images.clone();
  } else {
    const { pixels, size } = images;
    const area = size * size;
    if (!Number.isInteger(size) || size < 1 || pixels.length % area !== 0) {
      throw new Error(
        `gradCam: ${pixels.length} bytes are not a whole number of ` +
          `${size}×${size} images`,
      );
    }
    const gray = toBatchTensor(pixels, pixels.length / area, size);
    if (c === 3) {
      x = tf.tidy(() => tf.tile(gray, [1, 1, 1, 3]) as Tensor4D);
      gray.dispose();
    } else {
      x = gray;
    }
  }
  const [, xh, xw, xc] = x.shape;
  if (
    (h !== null && h !== xh) || (w !== null && w !== xw) ||
    (c !== null && c !== xc)
  ) {
    x.dispose();
    throw new Error(
      `gradCam: model "${model.name}" takes [${h}, ${w}, ${c}] images, ` +
        `got [${xh}, ${xw}, ${xc}]`,
    );
  }
  return x;
}

function wrapCall(layer: Layer, wrapper: (original: CallFn) => CallFn) {
  const target = layer as unknown as { call: CallFn };
  const own = Object.prototype.hasOwnProperty.call(target, "call");
  const previous = target.call;
  target.call = wrapper(previous.bind(layer));
  return () => {
    if (own) target.call = previous;
    else delete (target as { call?: CallFn }).call;
  };
}

/**
 * Grad-CAM heatmaps of a batch of images (see the module documentation for
 * the method, the default layer and why the logit is the score).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gradCam, overlayHeatmap } from "./gradcam.ts";
 * import { seedCnn } from "../model/models.ts";
 * import { tf } from "../core/tf.ts";
 * const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
 * const before = tf.memory().numTensors;
 * const pixels = new Uint8Array(32 * 32).map((_, i) => (i * 37) % 256);
 * const cam = gradCam({ model, images: { pixels, size: 32 }, classIndex: 2 });
 * assert.equal(tf.memory().numTensors, before); // nothing left behind
 * assert.equal(cam.layerName, "conv3");
 * assert.equal(cam.score, "logit");
 * assert.deepEqual(cam.classIndex, [2]);
 * assert.equal(cam.heatmaps[0].length, 32 * 32);
 * assert.ok(cam.heatmaps[0].every((v) => v >= 0 && v <= 1));
 * const rgb = overlayHeatmap({ pixels, size: 32, heatmap: cam.heatmaps[0] });
 * assert.equal(rgb.length, 32 * 32 * 3);
 * model.dispose();
 * ```
 */
export function gradCam(options: GradCamOptions): GradCamResult {
  const { model } = options;
  const batchSize = options.batchSize ?? DEFAULT_GRADCAM_BATCH;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(
      `gradCam: batchSize must be a positive integer (got ${batchSize})`,
    );
  }
  const targets = options.layerName === undefined
    ? ensembleTargets(model)
    : undefined;
  const layer = targets ? undefined : gradCamLayer(model, options.layerName);
  const head = targets ? undefined : logitHead(model);
  const numClasses = model.outputs[0].shape[1] as number;
  const x = toInput(options.images, model);
  const [n, height, width] = x.shape;
  const result: GradCamResult = {
    heatmaps: [],
    classIndex: [],
    probabilities: [],
    layerName: targets
      ? targets.map((t) => t.layer.name).join(", ")
      : layer!.name,
    score: targets || head ? "logit" : "probability",
    height,
    width,
  };
  try {
    let wanted: number[] | undefined;
    if (options.classIndex !== undefined) {
      const ci = options.classIndex;
      wanted = typeof ci === "number"
        ? new Array<number>(n).fill(ci)
        : Array.from(ci);
      if (wanted.length !== n) {
        throw new Error(
          `gradCam: ${wanted.length} class indices for ${n} images`,
        );
      }
      const bad = wanted.find((c) =>
        !Number.isInteger(c) || c < 0 || c >= numClasses
      );
      if (bad !== undefined) {
        throw new Error(
          `gradCam: class index ${bad} is not in [0, ${numClasses})`,
        );
      }
    }
    for (let from = 0; from < n; from += batchSize) {
      const count = Math.min(batchSize, n - from);
      const chunk = count === n ? x : x.slice(from, count);
      try {
        const batch = {
          model,
          numClasses,
          x: chunk,
          wanted: wanted?.slice(from, from + count),
        };
        const part = targets
          ? ensembleBatch(batch, targets)
          : camBatch({ ...batch, layer: layer!, head });
        result.heatmaps.push(...part.heatmaps);
        result.classIndex.push(...part.classIndex);
        result.probabilities.push(...part.probabilities);
      } finally {
        if (chunk !== x) chunk.dispose();
      }
    }
  } finally {
    x.dispose();
  }
  return result;
}

interface CamBatchInput {
  model: LayersModel;
  layer: Layer;
  head: Layer | undefined;
  numClasses: number;
  x: Tensor4D;
  wanted: number[] | undefined;
}

/** What the wrapped layers record during one forward pass. */
interface Captured {
  /** The zero tensor `Z` the gradient is taken against. */
  perturbation?: Tensor;
  /** The explained layer's activations `A` (kept past the model's tidy). */
  activations?: Tensor;
  /** The pre-softmax logits, when the model ends in a softmax `Dense`. */
  logits?: Tensor;
  /** How many times the explained layer ran. */
  calls: number;
}

/**
 * Wraps the explained layer to record its activations and return `A + Z`,
 * and the softmax head (if any) to record its logits, for one forward pass
 * (see the module documentation). Returns the function that unwraps both.
 */
function wrapForCam(
  layer: Layer,
  head: Layer | undefined,
  captured: Captured,
): () => void {
  const restore = [wrapCall(layer, (original) => (inputs, kwargs) => {
    if (++captured.calls > 1) {
      throw new Error(
        `gradCam: layer "${layer.name}" is used more than once in the ` +
          "model; choose another layer",
      );
    }
    const out = original(inputs, kwargs) as Tensor;
    // Kept: the model's call runs in a tidy that would free it.
    captured.activations = tf.keep(out);
    return tf.add(out, captured.perturbation!);
  })];
  if (head) {
    restore.push(wrapCall(head, (original) => (inputs, kwargs) => {
      const features = (Array.isArray(inputs) ? inputs[0] : inputs) as Tensor;
      const [kernel, bias] = head.weights.map((w) => w.read());
      let z = tf.matMul(features as Tensor, kernel as Tensor);
      if (bias) z = tf.add(z, bias);
      captured.logits = tf.keep(z);
      return original(inputs, kwargs);
    }));
  }
  return () => {
    for (const undo of restore.reverse()) undo();
  };
}

/** The activations of one batch with the gradient of the explained scores. */
interface ActivationGradient {
  /** The explained layer's activations `A`. */
  activations: Tensor;
  /** `∂y/∂A`, `y` the sum of each image's explained class score. */
  grad: Tensor;
  /** The class each image's map explains. */
  classIndex: number[];
  /** The model's class probabilities for each image. */
  probabilities: number[][];
}

/**
 * One forward and backward pass through the wrapped model: the explained
 * layer's activations and the gradient of the chosen classes' scores with
 * respect to them. Frees everything else it made, also on error.
 */
function activationGradient(input: CamBatchInput): ActivationGradient {
  const { model, layer, head, numClasses, x, wanted } = input;
  const captured: Captured = { calls: 0 };
  let probs: Tensor | undefined;
  let grad: Tensor | undefined;
  let classIndex: number[] = [];
  let probabilities: number[][] = [];
  const zero = tf.zeros([
    x.shape[0],
    ...(layer.outputShape as number[]).slice(1),
  ]);
  const unwrap = wrapForCam(layer, head, captured);
  try {
    grad = tf.grad((z: Tensor) => {
      captured.perturbation = z;
      const output = model.apply(x, { training: false }) as Tensor;
      if (captured.calls !== 1 || !captured.activations) {
        throw new Error(
          `gradCam: layer "${layer.name}" did not run in the forward pass`,
        );
      }
      const score = head ? captured.logits! : output;
      probs = tf.keep(head ? tf.softmax(score) : output);
      probabilities = probs.arraySync() as number[][];
      classIndex = wanted ??
        probabilities.map((row) => row.indexOf(Math.max(...row)));
      const mask = tf.oneHot(tf.tensor1d(classIndex, "int32"), numClasses)
        .toFloat();
      return tf.sum(tf.mul(score, mask));
    })(zero);
  } finally {
    unwrap();
    zero.dispose();
    // The maps need only the activations and the gradient.
    tf.dispose(
      [captured.logits, probs].filter((t): t is Tensor => t !== undefined),
    );
    if (!grad && captured.activations) captured.activations.dispose();
  }
  return {
    activations: captured.activations!,
    grad,
    classIndex,
    probabilities,
  };
}

/**
 * `ReLU(Σ_k α_k A_k)` with `α_k` the gradient averaged over positions,
 * upsampled bilinearly to `height × width`: the raw maps of a batch, one
 * after another. Disposes the activations and the gradient.
 */
function upsampledCams(
  activations: Tensor,
  grad: Tensor,
  height: number,
  width: number,
): Float32Array {
  const maps = tf.tidy(() => {
    const weights = tf.mean(grad, [1, 2], true);
    const cam = tf.relu(tf.sum(tf.mul(activations, weights), -1, true));
    return tf.image.resizeBilinear(
      cam as Tensor4D,
      [height, width],
      false,
      true,
    );
  });
  const values = maps.dataSync() as Float32Array;
  tf.dispose([maps, grad, activations]);
  return values;
}

/** Scales each of `n` maps of `area` values to [0, 1]; a constant map becomes zeros. */
function minMaxPerImage(
  values: Float32Array,
  n: number,
  area: number,
): Float32Array[] {
  return Array.from({ length: n }, (_, i) => {
    const map = values.slice(i * area, (i + 1) * area);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of map) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const range = hi - lo;
    if (!(range > 1e-12 * Math.max(1, Math.abs(hi)))) return map.fill(0);
    for (let j = 0; j < area; j++) map[j] = (map[j] - lo) / range;
    return map;
  });
}

/** Grad-CAM of one batch: see the module documentation. */
function camBatch(input: CamBatchInput) {
  const [n, height, width] = input.x.shape;
  const { activations, grad, classIndex, probabilities } = activationGradient(
    input,
  );
  const values = upsampledCams(activations, grad, height, width);
  const heatmaps = minMaxPerImage(values, n, height * width);
  return { heatmaps, classIndex, probabilities };
}

/** One member of an ensemble to explain: its last convolution and its softmax head. */
interface CamTarget {
  layer: Layer;
  head: Layer;
}

/**
 * For an ensemble (`deno task ensemble`: an `Average` of softmax `Dense`
 * heads, members' layers named `m1_…`, `m2_…`), each member's last
 * convolution and head; undefined for any other model.
 */
function ensembleTargets(model: LayersModel): CamTarget[] | undefined {
  const out = model.outputs[0]?.sourceLayer as Layer | undefined;
  if (!out || out.getClassName() !== "Average") return undefined;
  const heads = (out.inboundNodes[0]?.inboundLayers ?? []) as Layer[];
  const softmax = (h: Layer) =>
    h.getClassName() === "Dense" && h.getConfig().activation === "softmax";
  if (heads.length < 2 || !heads.every(softmax)) return undefined;
  const layers = [...flatLayers(model)].reverse();
  return heads.map((head) => {
    const prefix = head.name.slice(0, head.name.indexOf("_") + 1);
    const conv = layers.find((l) =>
      l.name.startsWith(prefix) && CONV_LAYER_CLASSES.includes(l.getClassName())
    );
    if (!prefix || !conv) {
      throw new Error(
        `gradCam: ensemble member of "${head.name}" has no convolutional ` +
          "layer; pass layerName",
      );
    }
    return { layer: gradCamLayer(model, conv.name), head };
  });
}

/**
 * An ensemble's maps: the class chosen from the ensemble's own
 * probabilities, each member's map for it (its last convolution, its
 * logit), averaged and scaled to [0, 1] again.
 */
function ensembleBatch(
  input: Omit<CamBatchInput, "layer" | "head">,
  targets: CamTarget[],
) {
  const [n, height, width] = input.x.shape;
  const area = height * width;
  const output = input.model.predict(input.x) as Tensor;
  const probabilities = output.arraySync() as number[][];
  output.dispose();
  const classIndex = input.wanted ??
    probabilities.map((row) => row.indexOf(Math.max(...row)));
  const sum = new Float32Array(n * area);
  for (const t of targets) {
    const part = camBatch({ ...input, ...t, wanted: classIndex });
    part.heatmaps.forEach((map, i) =>
      map.forEach((v, j) => sum[i * area + j] += v / targets.length)
    );
  }
  return {
    heatmaps: minMaxPerImage(sum, n, area),
    classIndex,
    probabilities,
  };
}

/**
 * The turbo colormap (Google's perceptually smoother rainbow), by its
 * published polynomial approximation: 0 → near black, 0.1 → blue,
 * 0.35 → cyan-green, 0.5 → yellow-green, 0.65 → orange-yellow, 0.8 → orange-red,
 * 1 → dark red. Values outside [0, 1] (or NaN) are clamped. Returns RGB bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { turbo } from "./gradcam.ts";
 * assert.deepEqual(turbo(0), [35, 23, 27]);
 * assert.deepEqual(turbo(1), [144, 13, 0]);
 * assert.deepEqual(turbo(2), turbo(1)); // clamped
 * ```
 */
export function turbo(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const r = 0.13572138 +
    x * (4.6153926 +
        x * (-42.66032258 +
            x * (132.13108234 + x * (-152.94239396 + x * 59.28637943))));
  const g = 0.09140261 +
    x * (2.19418839 +
        x * (4.84296658 +
            x * (-14.18503333 + x * (4.27729857 + x * 2.82956604))));
  const b = 0.1066733 +
    x * (12.64194608 +
        x * (-60.58204836 +
            x * (110.36276771 + x * (-89.90310912 + x * 27.34824973))));
  const byte = (v: number) => Math.round(255 * Math.min(1, Math.max(0, v)));
  return [byte(r), byte(g), byte(b)];
}

/** Options for {@linkcode overlayHeatmap}. */
export interface OverlayOptions {
  /** The grayscale scan, `size * size` bytes. */
  pixels: Uint8Array;
  /** Side of the scan. */
  size: number;
  /** The heatmap, `size * size` values in [0, 1] (from {@linkcode gradCam}). */
  heatmap: ArrayLike<number>;
  /** Weight of the colour, in [0, 1]; default 0.4. */
  alpha?: number;
}

/**
 * Blends a heatmap, coloured with {@linkcode turbo}, over a grayscale scan:
 * `(1 − alpha) · scan + alpha · colour`, as RGB bytes (`size * size * 3`),
 * ready for `imageGrid` with `channels: 3`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { overlayHeatmap } from "./gradcam.ts";
 * const rgb = overlayHeatmap({
 *   pixels: new Uint8Array([100, 100, 100, 100]),
 *   size: 2,
 *   heatmap: [0, 0.5, 1, 0],
 *   alpha: 0,
 * });
 * assert.deepEqual([...rgb], new Array(12).fill(100)); // alpha 0: the scan
 * ```
 */
export function overlayHeatmap(options: OverlayOptions): Uint8Array {
  const { pixels, size, heatmap } = options;
  const alpha = options.alpha ?? 0.4;
  const area = size * size;
  if (pixels.length !== area) {
    throw new Error(
      `overlayHeatmap: ${pixels.length} pixels for a ${size}×${size} scan`,
    );
  }
  if (heatmap.length !== area) {
    throw new Error(
      `overlayHeatmap: ${heatmap.length} heatmap values for a ${size}×${size} scan`,
    );
  }
  if (!(alpha >= 0 && alpha <= 1)) {
    throw new Error(`overlayHeatmap: alpha must be in [0, 1] (got ${alpha})`);
  }
  const out = new Uint8Array(area * 3);
  for (let i = 0; i < area; i++) {
    const colour = turbo(heatmap[i]);
    const gray = pixels[i] * (1 - alpha);
    for (let c = 0; c < 3; c++) {
      out[i * 3 + c] = Math.round(gray + alpha * colour[c]);
    }
  }
  return out;
}
