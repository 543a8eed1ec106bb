import assert from "node:assert/strict";
import { join } from "node:path";
import { tf } from "../core/tf.ts";
import { compileModel } from "./compile.ts";
import { modelSummary } from "./summary.ts";
import {
  freezeBase,
  transfer,
  TRANSFER_BASE_NAME,
  unfreezeBase,
} from "./transfer.ts";

type Tensor = import("@tensorflow/tfjs-node").Tensor;

async function saveTinyBase(dir: string): Promise<void> {
  const input = tf.input({ shape: [16, 16, 3], name: "base_input" });
  let t = tf.layers.conv2d({
    name: "base_conv1",
    filters: 4,
    kernelSize: 3,
    padding: "same",
    activation: "relu",
  })
    .apply(input) as import("@tensorflow/tfjs-node").SymbolicTensor;
  t = tf.layers.maxPooling2d({ name: "base_pool", poolSize: 2 }).apply(
    t,
  ) as import("@tensorflow/tfjs-node").SymbolicTensor;
  t = tf.layers.conv2d({
    name: "base_conv2",
    filters: 6,
    kernelSize: 3,
    padding: "same",
    activation: "relu",
  })
    .apply(t) as import("@tensorflow/tfjs-node").SymbolicTensor;
  t = tf.layers.globalAveragePooling2d({ name: "base_gap" }).apply(
    t,
  ) as import("@tensorflow/tfjs-node").SymbolicTensor;
  const out = tf.layers.dense({
    name: "base_top",
    units: 10,
    activation: "softmax",
  })
    .apply(t) as import("@tensorflow/tfjs-node").SymbolicTensor;
  const base = tf.model({ inputs: input, outputs: out });
  await base.save(`file://${dir}`);
  base.dispose();
}

/** Runs `body` with a tiny base model saved in a temporary folder. */
async function withTinyBase(body: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await saveTinyBase(dir);
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The grayscale transfer model of the first two tests, 4 classes. */
function grayTransfer(dir: string) {
  return transfer({
    base: dir,
    inputSize: 16,
    channels: 1,
    numClasses: 4,
    seed: 9,
  });
}

Deno.test("transfer: loads a saved base, adds a head, freezes and unfreezes", async () => {
  await withTinyBase(async (dir) => {
    const start = tf.memory().numTensors;
    const model = await grayTransfer(dir);
    assert.deepEqual(model.outputs[0].shape, [null, 4]);
    const names = model.layers.map((l) => l.name);
    assert.deepEqual(names, [
      "input",
      "gray_to_rgb",
      TRANSFER_BASE_NAME,
      "head_gap",
      "head_dropout",
      "predictions",
    ]);
    // The feature layer is the last 4-D one: base_conv2 (6 channels).
    const base = model.getLayer(TRANSFER_BASE_NAME);
    assert.deepEqual(base.outputShape, [null, 8, 8, 6]);
    const trainable = () =>
      model.trainableWeights.map((w) => w.originalName).sort();
    assert.deepEqual(trainable(), ["predictions/bias", "predictions/kernel"]);
    const s = modelSummary(model);
    assert.equal(s.trainableParams, 6 * 4 + 4);
    assert.equal(s.totalParams, 3 * 3 * 3 * 4 + 4 + 3 * 3 * 4 * 6 + 6 + 28);

    unfreezeBase(model);
    assert.deepEqual(trainable(), [
      "base_conv1/bias",
      "base_conv1/kernel",
      "base_conv2/bias",
      "base_conv2/kernel",
      "predictions/bias",
      "predictions/kernel",
    ]);
    unfreezeBase(model, { fromLayer: "base_conv2" });
    assert.deepEqual(trainable(), [
      "base_conv2/bias",
      "base_conv2/kernel",
      "predictions/bias",
      "predictions/kernel",
    ]);
    freezeBase(model);
    assert.deepEqual(trainable(), ["predictions/bias", "predictions/kernel"]);
    assert.throws(
      () => unfreezeBase(model, { fromLayer: "nope" }),
      /the base has no layer "nope"/,
    );
    model.dispose();
    assert.equal(tf.memory().numTensors, start);
  });
});

Deno.test("transfer: trains the head only and predicts on grayscale input", async () => {
  await withTinyBase(async (dir) => {
    const start = tf.memory().numTensors;
    const model = await grayTransfer(dir);
    const base = model.getLayer(TRANSFER_BASE_NAME);
    compileModel(model, { learningRate: 1e-2 });
    const frozenBefore = base.getWeights()[0].dataSync().slice();
    const x = tf.randomUniform([8, 16, 16, 1], 0, 1, "float32", 1);
    const y = tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3]);
    await model.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0 });
    assert.deepEqual(base.getWeights()[0].dataSync(), frozenBefore);
    const p = model.predict(x) as Tensor;
    assert.deepEqual(p.shape, [8, 4]);
    tf.dispose([x, y, p]);
    model.dispose();
    assert.equal(tf.memory().numTensors, start);
  });
});

Deno.test("transfer: a learned 1×1 conv adapter instead of tiling; a named feature layer", async () => {
  await withTinyBase(async (dir) => {
    const start = tf.memory().numTensors;
    const conv = await transfer({
      base: join(dir, "model.json"),
      inputSize: 16,
      channels: 1,
      numClasses: 2,
      channelAdapter: "conv",
      featureLayer: "base_pool",
    });
    assert.deepEqual(conv.getLayer(TRANSFER_BASE_NAME).outputShape, [
      null,
      8,
      8,
      4,
    ]);
    assert.deepEqual(
      conv.trainableWeights.map((w) => w.originalName).sort(),
      [
        "channel_adapter/bias",
        "channel_adapter/kernel",
        "predictions/bias",
        "predictions/kernel",
      ],
    );
    conv.dispose();
    assert.equal(tf.memory().numTensors, start);
  });
});

Deno.test("transfer: clear errors for a missing base, a wrong size or layer", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      transfer({
        base: join(dir, "missing"),
        inputSize: 16,
        channels: 1,
        numClasses: 2,
      }),
      /transfer: base model .*missing does not exist/,
    );
    await saveTinyBase(dir);
    await assert.rejects(
      transfer({ base: dir, inputSize: 32, channels: 1, numClasses: 2 }),
      /takes 16×16 images, not 32×32/,
    );
    await assert.rejects(
      transfer({
        base: dir,
        inputSize: 16,
        channels: 1,
        numClasses: 2,
        featureLayer: "block5",
      }),
      /has no layer "block5" \(layers: base_input, base_conv1/,
    );
    await assert.rejects(
      transfer({
        base: dir,
        inputSize: 16,
        channels: 1,
        numClasses: 2,
        featureLayer: "base_top",
      }),
      /feature layer "base_top" has output shape \[,10\]/,
    );
    await Deno.writeTextFile(join(dir, "broken.json"), "{ not json");
    await assert.rejects(
      transfer({
        base: join(dir, "broken.json"),
        inputSize: 16,
        channels: 1,
        numClasses: 2,
      }),
      /could not load the base model file:\/\/.*broken\.json/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
