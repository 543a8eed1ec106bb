import assert from "node:assert/strict";
import { join } from "node:path";
import { tf } from "../core/tf.ts";
import { rng } from "../core/random.ts";
import {
  ARCHITECTURES,
  buildModel,
  compileModel,
  freezeBase,
  modelSummary,
  NativeAdam,
  nativeKernelsStatus,
  resnet,
  restoreTfjsKernels,
  seedCnn,
  transfer,
  TRANSFER_BASE_NAME,
  unfreezeBase,
  useNativeKernels,
  vgg,
} from "./models.ts";

type Tensor = import("@tensorflow/tfjs-node").Tensor;
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

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** Images with a bright square (class 1) or without (class 0), plus noise. */
function brightSquares(n: number, size: number, seed: number) {
  const r = rng(seed);
  const x = new Float32Array(n * size * size);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const base = i * size * size;
    for (let p = 0; p < size * size; p++) x[base + p] = r.uniform(0, 0.3);
    y[i] = i % 2;
    if (y[i] === 1) {
      const s = 8;
      const top = r.int(0, size - s);
      const left = r.int(0, size - s);
      for (let dy = 0; dy < s; dy++) {
        for (let dx = 0; dx < s; dx++) {
          x[base + (top + dy) * size + left + dx] = 1;
        }
      }
    }
  }
  return {
    x: tf.tensor4d(x, [n, size, size, 1]),
    y: tf.tensor1d(y),
  };
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
  const summary = modelSummary(model);
  assert.deepEqual(
    summary.rows.map((r) => [r.layer, r.type, r.outputShape, r.params]),
    [
      ["conv1", "Conv2D", "(None, 126, 126, 32)", 320],
      ["pool1", "MaxPooling2D", "(None, 63, 63, 32)", 0],
      ["conv2", "Conv2D", "(None, 61, 61, 64)", 18_496],
      ["pool2", "MaxPooling2D", "(None, 30, 30, 64)", 0],
      ["conv3", "Conv2D", "(None, 28, 28, 128)", 73_856],
      ["pool3", "MaxPooling2D", "(None, 14, 14, 128)", 0],
      ["flatten", "Flatten", "(None, 25088)", 0],
      ["dense", "Dense", "(None, 128)", 3_211_392],
      ["dropout", "Dropout", "(None, 128)", 0],
      ["predictions", "Dense", "(None, 4)", 516],
    ],
  );
  assert.equal(summary.totalParams, 3_304_580);
  assert.equal(summary.trainableParams, 3_304_580);
  assert.equal(summary.nonTrainableParams, 0);
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

Deno.test("native kernels give tfjs's gradients and predictions", () => {
  const start = tf.memory().numTensors;
  const cases: LayersModel[] = [
    seedCnn({ ...SMALL, seed: 2 }),
    vgg({
      inputSize: 23,
      channels: 2,
      numClasses: 3,
      filters: [4, 8],
      batchNorm: false,
      seed: 2,
    }),
  ];
  for (const model of cases) {
    const [, h, w, c] = model.inputs[0].shape as number[];
    // Random images plus one constant image (ties in max pooling).
    const xt = tf.tidy(() =>
      tf.concat([
        tf.randomUniform([4, h, w, c], 0, 1, "float32", 3),
        tf.ones([1, h, w, c]),
      ])
    );
    const y = tf.tidy(() =>
      tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1], "int32"), 3)
    );
    const loss = () =>
      tf.losses.softmaxCrossEntropy(
        y,
        model.apply(xt, { training: false }) as Tensor,
      ) as import("@tensorflow/tfjs-node").Scalar;
    restoreTfjsKernels();
    const reference = tf.variableGrads(loss);
    const referencePrediction = model.predict(xt) as Tensor;
    const status = useNativeKernels();
    assert.ok(status.active, `skipped: ${status.skipped.join("; ")}`);
    for (
      const name of [
        "Relu gradient",
        "MaxPool",
        "MaxPoolGrad",
        "Conv2D",
        "FusedConv2D",
      ]
    ) {
      assert.ok(status.replaced.includes(name), `${name} replaced`);
    }
    const native = tf.variableGrads(loss);
    const prediction = model.predict(xt) as Tensor;
    assert.ok(maxAbsDiff(prediction, referencePrediction) < 1e-5);
    assert.ok(
      Math.abs(native.value.dataSync()[0] - reference.value.dataSync()[0]) <
        1e-5,
    );
    for (const name of Object.keys(reference.grads)) {
      const scale = tf.tidy(() =>
        tf.max(tf.abs(reference.grads[name])).dataSync()[0]
      );
      assert.ok(
        maxAbsDiff(native.grads[name], reference.grads[name]) <=
          1e-4 * scale + 1e-7,
        `${model.name} ${name}`,
      );
    }
    tf.dispose([
      xt,
      y,
      reference.value,
      native.value,
      prediction,
      referencePrediction,
    ]);
    tf.dispose(Object.values(reference.grads));
    tf.dispose(Object.values(native.grads));
    model.dispose();
  }
  assert.ok(nativeKernelsStatus().active);
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("max pooling with SAME padding and odd sizes matches tfjs", () => {
  useNativeKernels();
  const x = tf.randomUniform([2, 7, 5, 3], -1, 1, "float32", 4);
  const f = (t: Tensor) =>
    tf.maxPool(
      t as import("@tensorflow/tfjs-node").Tensor4D,
      [3, 2],
      [2, 2],
      "same",
    ).square().sum();
  const nativeY = tf.maxPool(
    x as import("@tensorflow/tfjs-node").Tensor4D,
    [3, 2],
    [2, 2],
    "same",
  );
  const nativeDx = tf.grad(f)(x);
  restoreTfjsKernels();
  const refY = tf.maxPool(
    x as import("@tensorflow/tfjs-node").Tensor4D,
    [3, 2],
    [2, 2],
    "same",
  );
  const refDx = tf.grad(f)(x);
  useNativeKernels();
  assert.deepEqual(nativeY.shape, [2, 4, 3, 3]);
  assert.equal(maxAbsDiff(nativeY, refY), 0);
  assert.equal(maxAbsDiff(nativeDx, refDx), 0);
  tf.dispose([x, nativeY, nativeDx, refY, refDx]);
});

Deno.test("native batch norm in training gives tfjs's outputs, gradients and moving statistics", async () => {
  const start = tf.memory().numTensors;
  const options = { ...SMALL, filters: [8, 16], blocksPerStage: 1, seed: 5 };
  const xt = tf.randomUniform([6, 32, 32, 1], 0, 1, "float32", 8);
  const y = tf.tidy(() =>
    tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2], "int32"), 3)
  );
  // One training-mode pass of a fresh model: loss, gradients, weights after.
  const trainPass = async (native: boolean) => {
    if (native) useNativeKernels();
    else restoreTfjsKernels();
    const model = resnet({ ...options, dropout: 0 });
    const vars = model.trainableWeights.map((w) =>
      (w as unknown as { val: import("@tensorflow/tfjs-node").Variable }).val
    );
    let result!: { value: Tensor; grads: Record<string, Tensor> };
    const profile = await tf.profile(() => {
      result = tf.variableGrads(() =>
        tf.losses.softmaxCrossEntropy(
          y,
          model.apply(xt, { training: true }) as Tensor,
        ) as import("@tensorflow/tfjs-node").Scalar, vars);
    });
    const grads = vars.map((v) => result.grads[v.name]);
    const out = {
      kernels: new Set(profile.kernels.map((k) => k.name)),
      loss: result.value,
      grads,
      // Includes every batch norm layer's moving mean and variance.
      weights: model.getWeights().map((w) => w.clone()),
    };
    model.dispose();
    return out;
  };
  const reference = await trainPass(false);
  const native = await trainPass(true);
  assert.ok(
    nativeKernelsStatus().replaced.includes("BatchNormalization (training)"),
  );
  assert.ok(native.kernels.has("NativeBatchNormTraining"));
  assert.ok(native.kernels.has("NativeBatchNormTrainingGrad"));
  assert.ok(!reference.kernels.has("NativeBatchNormTraining"));
  assert.ok(maxAbsDiff(native.loss, reference.loss) < 1e-5);
  assert.equal(native.grads.length, reference.grads.length);
  native.grads.forEach((g, i) => {
    const scale = tf.tidy(() =>
      tf.max(tf.abs(reference.grads[i])).dataSync()[0]
    );
    assert.ok(scale > 0, `gradient ${i} is not all zero`);
    assert.ok(
      maxAbsDiff(g, reference.grads[i]) <= 1e-4 * scale + 1e-7,
      `gradient ${i}`,
    );
  });
  // The moving statistics moved, and moved the same way.
  const fresh = resnet(options);
  const moved = fresh.getWeights().some((w, i) =>
    maxAbsDiff(w, native.weights[i]) > 1e-3
  );
  fresh.dispose();
  assert.ok(moved, "moving statistics were updated");
  native.weights.forEach((w, i) =>
    assert.ok(maxAbsDiff(w, reference.weights[i]) < 1e-5, `weight ${i}`)
  );
  for (const r of [reference, native]) {
    tf.dispose([r.loss, ...r.grads, ...r.weights]);
  }
  tf.dispose([xt, y]);
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("NativeAdam follows Keras' Adam update and leaves old values intact", () => {
  const start = tf.memory().numTensors;
  const w0 = [0.5, -1, 2];
  const v = tf.tidy(() =>
    tf.variable(tf.tensor1d(w0), true, "models_test_adam_w")
  );
  const before = v.clone();
  const opt = new NativeAdam({ learningRate: 0.1 });
  const grads = [[1, -2, 0.5], [0.3, 0.3, -1]];
  // Keras: m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²;
  // w -= lr·√(1-β2ᵗ)/(1-β1ᵗ) · m/(√v + ε)
  const want = [...w0];
  const m = [0, 0, 0];
  const s = [0, 0, 0];
  grads.forEach((g, step) => {
    const t = step + 1;
    const lrT = 0.1 * Math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t);
    for (let i = 0; i < 3; i++) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      s[i] = 0.999 * s[i] + 0.001 * g[i] ** 2;
      want[i] -= lrT * m[i] / (Math.sqrt(s[i]) + 1e-7);
    }
    const gt = tf.tensor1d(g);
    opt.applyGradients([{ name: v.name, tensor: gt }]);
    gt.dispose();
  });
  const got = Array.from(v.dataSync());
  got.forEach((x, i) =>
    assert.ok(Math.abs(x - want[i]) < 1e-6, `${x} vs ${want[i]}`)
  );
  assert.deepEqual(Array.from(before.dataSync()), w0);
  assert.equal(opt.iterations, 2);
  assert.equal(opt.getClassName(), "Adam");
  opt.dispose();
  tf.dispose([v, before]);
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("a few training steps on bright squares lower the loss, without leaks", async () => {
  const start = tf.memory().numTensors;
  const { x, y } = brightSquares(64, 32, 11);
  for (const native of [true, false]) {
    const model = compileModel(seedCnn({ ...SMALL, numClasses: 2, seed: 3 }), {
      learningRate: 3e-3,
      native,
    });
    const lossOf = () => {
      const out = model.evaluate(x, y, { batchSize: 64 }) as Tensor[];
      const value = out[0].dataSync()[0];
      tf.dispose(out);
      return value;
    };
    const before = lossOf();
    await model.fit(x, y, {
      batchSize: 16,
      epochs: 4,
      shuffle: false,
      verbose: 0,
    });
    const after = lossOf();
    assert.ok(after < before * 0.8, `native=${native}: ${before} -> ${after}`);
    assert.equal(
      model.optimizer.constructor.name,
      native ? "NativeAdam" : "AdamOptimizer",
    );
    // Compiling again frees the previous optimizer.
    compileModel(model, { native });
    model.dispose();
  }
  tf.dispose([x, y]);
  assert.equal(tf.memory().numTensors, start);
});

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

Deno.test("transfer: loads a saved base, adds a head, freezes and unfreezes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await saveTinyBase(dir);
    const start = tf.memory().numTensors;
    const model = await transfer({
      base: dir,
      inputSize: 16,
      channels: 1,
      numClasses: 4,
      seed: 9,
    });
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

    // It trains (head only) and predicts on grayscale input.
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

    // A learned 1×1 conv adapter instead of tiling; a named feature layer.
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
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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
