import assert from "node:assert/strict";
import {
  type LayersModel,
  type SymbolicTensor,
  type Tensor,
  tf,
} from "../core/tf.ts";
import { openEngine } from "./engine.ts";
import { foldBatchNorm } from "./fold.ts";
import { resnet, seedCnn, vgg } from "./models.ts";
import type { ModelMetadata } from "./saved_model.ts";

/** Gives every batch norm non-trivial statistics, as a trained model has. */
function randomiseNorms(model: LayersModel): void {
  let seed = 11;
  for (const layer of model.layers) {
    if (layer.getClassName() !== "BatchNormalization") continue;
    const values = layer.getWeights().map((w, i) =>
      i === 3
        ? tf.randomUniform(w.shape, 0.5, 2, "float32", seed++)
        : tf.randomUniform(w.shape, -0.5, 0.5, "float32", seed++)
    );
    layer.setWeights(values);
    tf.dispose(values);
  }
}

function maxDiff(a: LayersModel, b: LayersModel, x: Tensor): number {
  return tf.tidy(() =>
    tf.max(tf.abs(tf.sub(a.predict(x) as Tensor, b.predict(x) as Tensor)))
      .dataSync()[0]
  );
}

function classes(model: LayersModel): string[] {
  return model.layers.map((l) => l.getClassName());
}

Deno.test("folding a ResNet's batch norms keeps its probabilities and frees what it made", async () => {
  const start = tf.memory().numTensors;
  const model = resnet({
    inputSize: 32,
    channels: 1,
    numClasses: 4,
    filters: [8, 16],
    blocksPerStage: 1,
  });
  randomiseNorms(model);
  const folded = await foldBatchNorm(model);
  assert.notEqual(folded, model);
  assert.equal(
    classes(folded).filter((c) => c === "BatchNormalization").length,
    0,
  );
  // The ReLUs after a conv + batch norm are gone; those after an add stay.
  const relus = (m: LayersModel) =>
    classes(m).filter((c) => c === "ReLU").length;
  assert.equal(relus(folded), 2);
  assert.ok(relus(model) > relus(folded));
  assert.equal(folded.countParams() < model.countParams(), true);
  const x = tf.randomUniform([3, 32, 32, 1], 0, 1, "float32", 3);
  assert.ok(maxDiff(model, folded, x) < 1e-5);
  x.dispose();
  folded.dispose();
  model.dispose();
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("a conv whose output is read twice, or a Sequential model, is left as it is", async () => {
  const input = tf.input({ shape: [8, 8, 1] });
  const conv = tf.layers.conv2d({ filters: 4, kernelSize: 3, useBias: false })
    .apply(input) as SymbolicTensor;
  const norm = tf.layers.batchNormalization().apply(conv) as SymbolicTensor;
  const both = tf.layers.concatenate().apply([conv, norm]) as SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: both });
  assert.equal(await foldBatchNorm(model), model);
  model.dispose();
  const seq = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
  assert.equal(await foldBatchNorm(seq), seq);
  seq.dispose();
});

Deno.test("a Sequential network with batch norms (the VGG) folds too", async () => {
  const start = tf.memory().numTensors;
  const model = vgg({
    inputSize: 32,
    channels: 1,
    numClasses: 4,
    batchNorm: true,
    filters: [8, 16],
  });
  randomiseNorms(model);
  const folded = await foldBatchNorm(model);
  assert.equal(
    classes(folded).filter((c) => c === "BatchNormalization").length,
    0,
  );
  const x = tf.randomUniform([2, 32, 32, 1], 0, 1, "float32", 8);
  assert.ok(maxDiff(model, folded, x) < 1e-5);
  x.dispose();
  folded.dispose();
  model.dispose();
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("a conv with a bias, and a batch norm that neither scales nor centres, fold exactly", async () => {
  const input = tf.input({ shape: [8, 8, 2] });
  let y = tf.layers.conv2d({ filters: 3, kernelSize: 3, useBias: true })
    .apply(input) as SymbolicTensor;
  y = tf.layers.batchNormalization({ scale: false, center: false }).apply(
    y,
  ) as SymbolicTensor;
  y = tf.layers.activation({ activation: "relu" }).apply(
    y,
  ) as SymbolicTensor;
  y = tf.layers.flatten().apply(y) as SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: y });
  const conv = model.layers[1];
  const bias = tf.tensor1d([0.3, -0.2, 0.1]);
  conv.setWeights([conv.getWeights()[0], bias]);
  randomiseNorms(model);
  const folded = await foldBatchNorm(model);
  assert.deepEqual(classes(folded), ["InputLayer", "Conv2D", "Flatten"]);
  const x = tf.randomUniform([2, 8, 8, 2], -1, 1, "float32", 4);
  assert.ok(maxDiff(model, folded, x) < 1e-5);
  tf.dispose([x, bias]);
  folded.dispose();
  model.dispose();
});

Deno.test("the tfjs engine runs the folded copy and frees it when disposed", async () => {
  const model = resnet({
    inputSize: 32,
    channels: 1,
    numClasses: 4,
    filters: [8],
    blocksPerStage: 1,
  });
  randomiseNorms(model);
  const start = tf.memory().numTensors;
  const engine = await openEngine({
    model: { model, metadata: {} as ModelMetadata },
    kind: "tfjs",
  });
  const pixels = Uint8Array.from({ length: 2 * 32 * 32 }, (_, i) => i % 251);
  const p = await engine.probabilities({ pixels, size: 32 });
  const direct = tf.tidy(() =>
    (model.predict(
      tf.tensor4d(pixels, [2, 32, 32, 1], "float32").mul(1 / 255),
    ) as Tensor).dataSync()
  );
  p.forEach((v, i) => assert.ok(Math.abs(v - direct[i]) < 1e-5));
  await engine.dispose();
  assert.equal(tf.memory().numTensors, start);
  model.dispose();
});
