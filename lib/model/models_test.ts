import assert from "node:assert/strict";
import { tf } from "../core/tf.ts";
import { ARCHITECTURES, buildModel, resnet, seedCnn, vgg } from "./models.ts";
import { modelSummary } from "./summary.ts";

type LayersModel = import("@tensorflow/tfjs-node").LayersModel;

const SMALL = { inputSize: 32, channels: 1, numClasses: 3 };

function weightsOf(model: LayersModel): Float32Array[] {
  return model.getWeights().map((w) => w.dataSync() as Float32Array);
}

function sameWeights(a: Float32Array[], b: Float32Array[]): boolean {
  return a.length === b.length &&
    a.every((w, i) =>
      w.length === b[i].length && w.every((v, j) => v === b[i][j])
    );
}

Deno.test("seedCnn matches the Keras seed model: shape and 3,304,580 parameters", () => {
  const start = tf.memory().numTensors;
  const model = seedCnn({
    inputSize: 128,
    channels: 1,
    numClasses: 4,
    seed: 1,
  });
  assert.deepEqual(model.outputs[0].shape, [null, 4]);
  // Hand count in seedCnn's doc comment; bench/train_keras.py's Keras model
  // reports the same number.
  assert.equal(model.countParams(), 3_304_580);
  model.dispose();
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("vgg builds with and without batch norm, with the expected parameters", () => {
  const start = tf.memory().numTensors;
  const plain = vgg({ ...SMALL, filters: [8, 16], batchNorm: false });
  assert.deepEqual(plain.outputs[0].shape, [null, 3]);
  // convs 80 + 584 + 1168 + 2320, dense 16·3 + 3
  assert.equal(plain.countParams(), 4_203);
  const bn = vgg({ ...SMALL, filters: [8, 16] });
  // convs without bias 72 + 576 + 1152 + 2304, 4 BN weights per channel
  // (192), dense 51; moving mean/variance (96) do not train.
  const s = modelSummary(bn);
  assert.equal(s.totalParams, 4_347);
  assert.equal(s.nonTrainableParams, 96);
  const flat = vgg({
    ...SMALL,
    filters: [8],
    batchNorm: false,
    head: "flatten",
    denseUnits: 10,
  });
  // convs 80 + 584, dense 16·16·8·10 + 10, output 10·3 + 3
  assert.equal(flat.countParams(), 80 + 584 + 20_490 + 33);
  for (const m of [plain, bn, flat]) m.dispose();
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("resnet builds with projection shortcuts and the expected parameters", () => {
  const start = tf.memory().numTensors;
  const model = resnet({
    ...SMALL,
    stemFilters: 8,
    filters: [8, 16],
    blocksPerStage: 1,
  });
  assert.deepEqual(model.outputs[0].shape, [null, 3]);
  const s = modelSummary(model);
  // stem 200+32; stage 1 (8→8, identity shortcut) 2·(576+32);
  // stage 2 (8→16, stride 2) 1152+64 + 2304+64 + projection 128+64; dense 51
  assert.equal(s.totalParams, 5_275);
  assert.equal(s.nonTrainableParams, 144);
  const names = model.layers.map((l) => l.name);
  assert.ok(names.includes("stage2_block1_proj"));
  assert.ok(!names.includes("stage1_block1_proj"));
  assert.equal(
    s.rows.find((r) => r.layer === "stage2_block1_add")!.outputShape,
    "(None, 4, 4, 16)",
  );
  model.dispose();
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("the same seed gives identical weights, another seed different ones", () => {
  const start = tf.memory().numTensors;
  for (
    const arch of Object.keys(ARCHITECTURES) as (keyof typeof ARCHITECTURES)[]
  ) {
    const a = buildModel(arch, { ...SMALL, seed: 5 });
    const b = buildModel(arch, { ...SMALL, seed: 5 });
    const c = buildModel(arch, { ...SMALL, seed: 6 });
    assert.ok(sameWeights(weightsOf(a), weightsOf(b)), `${arch}: same seed`);
    assert.ok(!sameWeights(weightsOf(a), weightsOf(c)), `${arch}: other seed`);
    for (const m of [a, b, c]) m.dispose();
  }
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("bad options are refused with a clear message", () => {
  assert.throws(
    () => seedCnn({ inputSize: 16, channels: 1, numClasses: 4 }),
    /seedCnn: inputSize 16 is too small/,
  );
  assert.throws(
    () => vgg({ inputSize: 64, channels: 0, numClasses: 1 }),
    /vgg: channels must be a positive integer.*numClasses must be an integer >= 2/,
  );
  assert.throws(
    () => seedCnn({ ...SMALL, dropout: 1 }),
    /dropout must be in \[0, 1\)/,
  );
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => buildModel("alexnet" as any, SMALL),
    /unknown architecture "alexnet" \(known: seedCnn, vgg, resnet\)/,
  );
});
