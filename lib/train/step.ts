/**
 * One training step: the batch tensor from packed uint8 pixels (`/255`),
 * augmentation keyed by `(seed, epoch, batch)`, Dropout seeded from
 * `(seed, epoch, batch, layer)`, the forward pass, the (class-weighted,
 * label-smoothed, mixed-up) cross-entropy, the gradients and Adam's update, then the
 * decoupled weight decay of the kernels. {@linkcode createTrainStep} binds
 * these to a model, an optimizer and a run's settings once;
 * {@linkcode batchTensor}, {@linkcode crossEntropy} and
 * {@linkcode seedDropoutLayers} are the pieces.
 *
 * @example One step of the small seed CNN on four blank images
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../core/tf.ts";
 * import { buildModel } from "../model/models.ts";
 * import { createTrainStep } from "./step.ts";
 *
 * const model = buildModel("seedCnn", { inputSize: 32, channels: 1, numClasses: 4 });
 * const optimizer = tf.train.adam(1e-3);
 * const step = createTrainStep({
 *   model, optimizer,
 *   config: { seed: 1, augmentation: false, classWeights: null, classes: ["a", "b", "c", "d"], labelSmoothing: 0, mixup: 0, weightDecay: 0, inputSize: 32 },
 * });
 * const images = { pixels: new Uint8Array(4 * 32 * 32), labels: new Int32Array([0, 1, 2, 3]) };
 * const { loss, correct } = await step({ images, indices: [0, 1, 2, 3], epoch: 0, batch: 0, learningRate: 1e-3 });
 * assert.ok(loss > 0 && Number.isFinite(loss));
 * assert.ok(correct >= 0 && correct <= 4);
 * model.dispose();
 * optimizer.dispose();
 * ```
 *
 * @module
 */
import { betaDraw, deriveSeed, rng } from "../core/random.ts";
import {
  type LayersModel,
  type Scalar,
  type Tensor,
  type Tensor1D,
  type Tensor4D,
  tf,
} from "../core/tf.ts";
import { applyAugmentation } from "../data/augment.ts";
import type { RunConfig, TrainSplit } from "./config.ts";

type Optimizer = import("@tensorflow/tfjs-node").Optimizer;
type Variable = import("@tensorflow/tfjs-node").Variable;

/**
 * Builds a `[n, size, size, 1]` float32 batch in [0, 1] from packed uint8
 * pixels and image indices.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { batchTensor } from "./step.ts";
 * const pixels = new Uint8Array([0, 255, 255, 0, 51, 51, 51, 51]);
 * const x = batchTensor(pixels, [1], 2);
 * assert.deepEqual(x.shape, [1, 2, 2, 1]);
 * assert.deepEqual(Array.from(x.dataSync()), [0.2, 0.2, 0.2, 0.2].map(Math.fround));
 * x.dispose();
 * ```
 */
export function batchTensor(
  pixels: Uint8Array,
  indices: ArrayLike<number>,
  size: number,
): Tensor4D {
  const area = size * size;
  const buf = new Float32Array(indices.length * area);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    buf.set(pixels.subarray(i * area, (i + 1) * area), k * area);
  }
  return tf.tidy(() =>
    tf.div(tf.tensor4d(buf, [indices.length, size, size, 1]), 255)
  );
}

/**
 * Keras' sparse categorical cross-entropy on probabilities, per sample; with
 * `labelSmoothing` ε the target is `(1 − ε)·onehot + ε/k` (Keras'
 * `CategoricalCrossentropy({label_smoothing})`). Tensors are not disposed:
 * call it inside `tf.tidy`.
 *
 * @example A 50/50 guess costs ln 2 whatever the target
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../core/tf.ts";
 * import { crossEntropy } from "./step.ts";
 *
 * const loss = tf.tidy(() =>
 *   crossEntropy(tf.tensor2d([[0.5, 0.5]]), tf.tensor1d([0], "int32"), {
 *     labelSmoothing: 0.1,
 *   }).arraySync() as number[]
 * );
 * assert.ok(Math.abs(loss[0] - Math.LN2) < 1e-6);
 * ```
 */
export function crossEntropy(
  probs: Tensor,
  labels: Tensor,
  options: { labelSmoothing?: number } = {},
): Tensor {
  const eps = 1e-7;
  const smoothing = options.labelSmoothing ?? 0;
  const numClasses = probs.shape[probs.shape.length - 1];
  let p = tf.clipByValue(probs, eps, 1 - eps);
  p = tf.div(p, tf.sum(p, -1, true));
  p = tf.clipByValue(p, eps, 1 - eps);
  let target = tf.oneHot(labels as Tensor1D, numClasses);
  if (smoothing > 0) {
    target = tf.add(tf.mul(target, 1 - smoothing), smoothing / numClasses);
  }
  return tf.neg(tf.sum(tf.mul(target, tf.log(p)), -1));
}

interface DropoutLike {
  getClassName(): string;
  name: string;
  seed?: number;
  layers?: DropoutLike[];
}

/** Every Dropout layer of a model, nested models included. */
function dropoutLayers(model: LayersModel): DropoutLike[] {
  const out: DropoutLike[] = [];
  const visit = (layers: DropoutLike[]) => {
    for (const layer of layers) {
      if (layer.getClassName() === "Dropout") out.push(layer);
      if (Array.isArray(layer.layers)) visit(layer.layers);
    }
  };
  visit(model.layers as unknown as DropoutLike[]);
  return out;
}

function seedDropout(
  layers: DropoutLike[],
  seed: number,
  epoch: number,
  batch: number,
): void {
  for (const layer of layers) {
    layer.seed = deriveSeed(seed, `dropout/${epoch}/${batch}/${layer.name}`);
  }
}

/**
 * Seeds every Dropout layer of a model (nested models included) for one
 * training step and returns how many there are. tfjs draws a Dropout mask
 * from `Math.random` unless the layer has a `seed`, and a fixed seed repeats
 * the same mask at every step; a seed derived from `(seed, epoch, batch,
 * layer name)`, set before each step, gives a fresh mask per step that a
 * resumed run draws again. Each step of {@linkcode createTrainStep} does it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildModel } from "../model/models.ts";
 * import { seedDropoutLayers } from "./step.ts";
 * const model = buildModel("seedCnn", { inputSize: 32, channels: 1, numClasses: 4 });
 * assert.equal(seedDropoutLayers(model, { seed: 42, epoch: 0, batch: 0 }), 1);
 * model.dispose();
 * ```
 */
export function seedDropoutLayers(
  model: LayersModel,
  key: { seed: number; epoch: number; batch: number },
): number {
  const layers = dropoutLayers(model);
  seedDropout(layers, key.seed, key.epoch, key.batch);
  return layers.length;
}

/**
 * Sets an optimizer's learning rate for the steps to come (tfjs's Adam
 * reads its `learningRate` field at every step).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../core/tf.ts";
 * import { setLearningRate } from "./step.ts";
 * const optimizer = tf.train.adam(1e-3);
 * setLearningRate(optimizer, 5e-4);
 * assert.equal((optimizer as unknown as { learningRate: number }).learningRate, 5e-4);
 * optimizer.dispose();
 * ```
 */
export function setLearningRate(optimizer: Optimizer, lr: number): void {
  (optimizer as unknown as { learningRate: number }).learningRate = lr;
}

/** The settings a training step reads. */
export type StepConfig = Pick<
  RunConfig,
  | "seed"
  | "augmentation"
  | "classWeights"
  | "classes"
  | "labelSmoothing"
  | "mixup"
  | "weightDecay"
  | "inputSize"
>;

/** Options for {@linkcode createTrainStep}. */
export interface CreateTrainStepOptions {
  /** The model to train (compiled or not); its trainable weights are updated. */
  model: LayersModel;
  /** The optimizer taking the steps. */
  optimizer: Optimizer;
  /** The run's settings. */
  config: StepConfig;
}

/** One batch of a step: which images, and where in the run it is. */
export interface StepBatch {
  /** The split the images come from. */
  images: TrainSplit;
  /** Indices of the batch's images in `images`. */
  indices: ArrayLike<number>;
  /** Epoch, 0-based (keys the augmentation and Dropout). */
  epoch: number;
  /** Batch, 0-based (keys the augmentation and Dropout). */
  batch: number;
  /** The epoch's learning rate (for the weight decay). */
  learningRate: number;
}

/** What a step reports. */
export interface StepResult {
  /** Mean (class-weighted) training loss over the batch, before the update. */
  loss: number;
  /** Images of the batch the model classified right, before the update. */
  correct: number;
}

/** A training step bound to a model (see {@linkcode createTrainStep}). */
export type TrainStep = (batch: StepBatch) => Promise<StepResult>;

/** The batch's input: pixels, augmented when the run augments. */
function stepInput(config: StepConfig, batch: StepBatch): Tensor4D {
  const raw = batchTensor(batch.images.pixels, batch.indices, config.inputSize);
  if (!config.augmentation) return raw;
  const x = applyAugmentation(raw, {
    ...config.augmentation,
    seed: config.seed,
    epoch: batch.epoch,
    batch: batch.batch,
  });
  raw.dispose();
  return x;
}

/** The batch's input, mixed with its partners when the run mixes. */
function stepInputMixed(
  config: StepConfig,
  batch: StepBatch,
  plan: MixupPlan | undefined,
): Tensor4D {
  const x = stepInput(config, batch);
  if (!plan) return x;
  const mixed = mixImages(x, plan);
  x.dispose();
  return mixed;
}

function batchLabels(images: TrainSplit, indices: ArrayLike<number>) {
  const l = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) l[k] = images.labels[indices[k]];
  return l;
}

/** One batch's mixup: the weight of each image and whose image it is mixed with. */
export interface MixupPlan {
  /** Weight of each image's own pixels and label, in [0.5, 1]. */
  lambda: number;
  /** For each position in the batch, the position of its partner. */
  partners: Int32Array;
}

/**
 * The mixup of one batch (Zhang et al., 2018), drawn from a generator keyed
 * by `(seed, epoch, batch)` so that a resumed run draws it again: λ from
 * Beta(α, α), folded to `max(λ, 1 − λ)` so that each image keeps the larger
 * share and its own label stays the one accuracy is counted against, and the
 * partners a shuffle of the batch. Returns undefined when `alpha` is 0 (off).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mixupPlan } from "./step.ts";
 * const key = { seed: 42, epoch: 3, batch: 7 };
 * const plan = mixupPlan({ ...key, size: 8, alpha: 0.2 })!;
 * assert.deepEqual(plan, mixupPlan({ ...key, size: 8, alpha: 0.2 }));
 * assert.ok(plan.lambda >= 0.5 && plan.lambda <= 1);
 * assert.deepEqual([...plan.partners].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
 * assert.equal(mixupPlan({ ...key, size: 8, alpha: 0 }), undefined);
 * ```
 */
export function mixupPlan(
  options: {
    seed: number;
    epoch: number;
    batch: number;
    size: number;
    alpha: number;
  },
): MixupPlan | undefined {
  if (!(options.alpha > 0)) return undefined;
  const r = rng(
    deriveSeed(options.seed, `mixup/${options.epoch}/${options.batch}`),
  );
  const draw = betaDraw(r, options.alpha, options.alpha);
  const order = r.shuffle(Array.from({ length: options.size }, (_, i) => i));
  return { lambda: Math.max(draw, 1 - draw), partners: Int32Array.from(order) };
}

/** `x` mixed with its partners: `λ·x + (1 − λ)·x[partners]`. */
function mixImages(x: Tensor4D, plan: MixupPlan): Tensor4D {
  return tf.tidy(() =>
    tf.add(
      tf.mul(x, plan.lambda),
      tf.mul(
        tf.gather(x, tf.tensor1d(plan.partners, "int32")),
        1 - plan.lambda,
      ),
    )
  );
}

/** The batch's labels and per-image loss weights, one set per mixed side. */
interface LossSide {
  labels: Tensor1D;
  weights?: Tensor1D;
  share: number;
}

function lossSides(
  labels: Int32Array,
  classWeights: number[] | undefined,
  plan: MixupPlan | undefined,
): LossSide[] {
  const side = (l: Int32Array, share: number): LossSide => ({
    labels: tf.tensor1d(l, "int32"),
    weights: classWeights
      ? tf.tensor1d(Float32Array.from(l, (c) => classWeights[c]))
      : undefined,
    share,
  });
  if (!plan) return [side(labels, 1)];
  const partnerLabels = Int32Array.from(plan.partners, (k) => labels[k]);
  return [side(labels, plan.lambda), side(partnerLabels, 1 - plan.lambda)];
}

/** The mean training loss over the sides: Σ share · weight · cross-entropy. */
function mixedLoss(
  probs: Tensor,
  sides: LossSide[],
  labelSmoothing: number,
): Scalar {
  let total: Tensor | undefined;
  for (const side of sides) {
    let perSample = crossEntropy(probs, side.labels, { labelSmoothing });
    if (side.weights) perSample = tf.mul(perSample, side.weights);
    if (side.share !== 1) perSample = tf.mul(perSample, side.share);
    total = total ? tf.add(total, perSample) : perSample;
  }
  return tf.mean(total!) as Scalar;
}

/**
 * A training step for `model`: for a batch it runs the forward pass in
 * training mode, takes the optimizer's step on the mean cross-entropy
 * (weighted by class, smoothed and mixed up, as the config says) and then multiplies
 * every kernel (trainable weight of rank ≥ 2) by `1 − lr · weightDecay`.
 * It disposes every tensor it makes. See the module example.
 */
export function createTrainStep(options: CreateTrainStepOptions): TrainStep {
  const { model, optimizer, config } = options;
  const weightsByIndex = config.classWeights
    ? config.classes.map((c) => config.classWeights![c])
    : undefined;
  const dropouts = dropoutLayers(model);
  const variables = model.trainableWeights.map((w) =>
    (w as unknown as { read(): Variable }).read()
  );
  const kernels = variables.filter((v) => v.rank >= 2);
  return async (batch) => {
    const plan = mixupPlan({
      seed: config.seed,
      epoch: batch.epoch,
      batch: batch.batch,
      size: batch.indices.length,
      alpha: config.mixup,
    });
    const x = stepInputMixed(config, batch, plan);
    const sides = lossSides(
      batchLabels(batch.images, batch.indices),
      weightsByIndex,
      plan,
    );
    const y = sides[0].labels;
    seedDropout(dropouts, config.seed, batch.epoch, batch.batch);
    let correct: Tensor | undefined;
    const lossT = optimizer.minimize(
      () => {
        const probs = model.apply(x, { training: true }) as Tensor;
        correct = tf.keep(
          tf.sum(tf.cast(tf.equal(tf.argMax(probs, -1), y), "float32")),
        );
        return mixedLoss(probs, sides, config.labelSmoothing);
      },
      true,
      variables,
    )!;
    const [lossV, correctV] = await Promise.all([
      lossT.data(),
      correct!.data(),
    ]);
    tf.dispose([x, lossT, correct!]);
    for (const side of sides) tf.dispose([side.labels, side.weights ?? []]);
    if (config.weightDecay > 0) {
      tf.tidy(() => {
        const keep = tf.scalar(1 - batch.learningRate * config.weightDecay);
        kernels.forEach((v) => v.assign(tf.mul(v, keep)));
      });
    }
    return { loss: lossV[0], correct: correctV[0] };
  };
}
