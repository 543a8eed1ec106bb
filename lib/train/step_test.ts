import assert from "node:assert/strict";
import { type Tensor, tf } from "../core/tf.ts";
import { DEFAULT_AUGMENT_OPTIONS } from "../data/augment.ts";
import { buildModel } from "../model/models.ts";
import { useNativeKernels } from "../model/native_kernels.ts";
import {
  batchTensor,
  createTrainStep,
  crossEntropy,
  mixupPlan,
  seedDropoutLayers,
  type StepConfig,
  type StepResult,
} from "./step.ts";

const SIZE = 32;
const CLASSES = ["a", "b", "c", "d"];

/** Eight noisy images, two per class. */
function images() {
  const n = 8;
  const pixels = new Uint8Array(n * SIZE * SIZE);
  let s = 7;
  for (let i = 0; i < pixels.length; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    pixels[i] = s % 256;
  }
  return { pixels, labels: Int32Array.from({ length: n }, (_, i) => i % 4) };
}
const IMAGES = images();

const BASE: StepConfig = {
  seed: 3,
  augmentation: false,
  classWeights: null,
  classes: CLASSES,
  labelSmoothing: 0,
  mixup: 0,
  weightDecay: 0,
  inputSize: SIZE,
};

/** One step of a fresh seed CNN (seed 1) with `config`, from the same start. */
async function firstStep(
  config: Partial<StepConfig>,
  at: { epoch?: number; batch?: number } = {},
): Promise<StepResult> {
  const model = buildModel("seedCnn", {
    inputSize: SIZE,
    channels: 1,
    numClasses: 4,
    seed: 1,
  });
  const optimizer = tf.train.adam(1e-3);
  const step = createTrainStep({
    model,
    optimizer,
    config: { ...BASE, ...config },
  });
  const result = await step({
    images: IMAGES,
    indices: [0, 1, 2, 3, 4, 5, 6, 7],
    epoch: at.epoch ?? 0,
    batch: at.batch ?? 0,
    learningRate: 1e-3,
  });
  model.dispose();
  optimizer.dispose();
  return result;
}

useNativeKernels();

Deno.test("a step is a function of the seed and its place in the run", async () => {
  const a = await firstStep({});
  assert.deepEqual(await firstStep({}), a);
  assert.ok(a.loss > 0 && Number.isFinite(a.loss));
  assert.ok(a.correct >= 0 && a.correct <= 8);
  // Dropout (and augmentation) follow (seed, epoch, batch).
  const augmented = { augmentation: { ...DEFAULT_AUGMENT_OPTIONS } };
  const b = await firstStep(augmented, { epoch: 2, batch: 5 });
  assert.deepEqual(await firstStep(augmented, { epoch: 2, batch: 5 }), b);
  assert.notEqual(
    (await firstStep(augmented, { epoch: 2, batch: 6 })).loss,
    b.loss,
  );
  assert.notEqual((await firstStep({ seed: 4 })).loss, a.loss);
});

Deno.test("class weights scale each image's loss; label smoothing raises it", async () => {
  const plain = await firstStep({});
  const doubled = await firstStep({
    classWeights: { a: 2, b: 2, c: 2, d: 2 },
  });
  // Doubling is exact in floating point.
  assert.equal(doubled.loss, 2 * plain.loss);
  assert.equal(doubled.correct, plain.correct);
  const smoothed = await firstStep({ labelSmoothing: 0.2 });
  assert.notEqual(smoothed.loss, plain.loss);
});

Deno.test("a step frees what it makes: only Adam's moments stay", async () => {
  const model = buildModel("seedCnn", {
    inputSize: SIZE,
    channels: 1,
    numClasses: 4,
    seed: 1,
  });
  const optimizer = tf.train.adam(1e-3);
  const step = createTrainStep({
    model,
    optimizer,
    config: {
      ...BASE,
      augmentation: { ...DEFAULT_AUGMENT_OPTIONS },
      weightDecay: 0.01,
      mixup: 0.2,
    },
  });
  const batch = {
    images: IMAGES,
    indices: [0, 1, 2, 3],
    epoch: 0,
    learningRate: 1e-3,
  };
  await step({ ...batch, batch: 0 });
  const after = tf.memory().numTensors;
  await step({ ...batch, batch: 1 });
  await step({ ...batch, batch: 2 });
  assert.equal(tf.memory().numTensors, after);
  model.dispose();
  optimizer.dispose();
});

/** The loss mixup should give, computed here from its definition. */
function mixupLossByHand(alpha: number, at: { epoch: number; batch: number }) {
  const indices = [0, 1, 2, 3, 4, 5, 6, 7];
  const plan = mixupPlan({ seed: BASE.seed, ...at, size: 8, alpha })!;
  const model = buildModel("seedCnn", {
    inputSize: SIZE,
    channels: 1,
    numClasses: 4,
    seed: 1,
  });
  seedDropoutLayers(model, { seed: BASE.seed, ...at });
  const loss = tf.tidy(() => {
    const x = batchTensor(IMAGES.pixels, indices, SIZE);
    const partner = batchTensor(IMAGES.pixels, plan.partners, SIZE);
    const mixed = tf.add(
      tf.mul(x, plan.lambda),
      tf.mul(partner, 1 - plan.lambda),
    );
    const probs = model.apply(mixed, { training: true }) as Tensor;
    const own = tf.tensor1d(IMAGES.labels, "int32");
    const other = tf.tensor1d(
      Int32Array.from(plan.partners, (k) => IMAGES.labels[k]),
      "int32",
    );
    return tf.mean(tf.add(
      tf.mul(crossEntropy(probs, own), plan.lambda),
      tf.mul(crossEntropy(probs, other), 1 - plan.lambda),
    )).dataSync()[0];
  });
  model.dispose();
  return { loss, plan };
}

Deno.test("mixup blends images and labels by the drawn weight", async () => {
  const at = { epoch: 1, batch: 4 };
  const { loss, plan } = mixupLossByHand(0.4, at);
  assert.ok(plan.lambda > 0.5 && plan.lambda < 1);
  assert.ok(plan.partners.some((k, i) => k !== i));
  const mixed = await firstStep({ mixup: 0.4 }, at);
  assert.ok(
    Math.abs(mixed.loss - loss) < 1e-5,
    `step ${mixed.loss} against ${loss}`,
  );
  assert.notEqual(mixed.loss, (await firstStep({}, at)).loss);
  assert.deepEqual(await firstStep({ mixup: 0.4 }, at), mixed);
});
