import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { projectPaths } from "../core/paths.ts";
import { rng } from "../core/random.ts";
import { type LayersModel, type SymbolicTensor, tf } from "../core/tf.ts";
import { predictProbabilities } from "./inference.ts";
import { resnet, seedCnn, vgg } from "./models.ts";
import {
  exportOnnx,
  ONNX_OPSET,
  OnnxExportError,
  onnxModel,
  tensorflowPads,
} from "./onnx_export.ts";
import { loadOnnxSession, onnxProbabilities } from "./onnx_runtime.ts";
import { transfer } from "./transfer.ts";

/** Seeded uint8 images, `count` of `size`×`size`. */
function randomPixels(count: number, size: number, seed: number): Uint8Array {
  const r = rng(seed);
  return Uint8Array.from({ length: count * size * size }, () => r.int(0, 255));
}

/**
 * Gives every batch normalisation non-trivial statistics and every bias a
 * small value, so folding a normalisation into a convolution is really
 * tested (fresh layers normalise with mean 0, variance 1, scale 1, shift 0).
 */
function perturbWeights(model: LayersModel, seed: number): void {
  const r = rng(seed);
  for (const layer of model.layers) {
    const values = layer.getWeights();
    const next = layer.weights.map((w, i) => {
      const kind = w.originalName.split("/").pop() ?? "";
      const size = values[i].size;
      const draw = (lo: number, hi: number) =>
        tf.tensor(
          Float32Array.from({ length: size }, () => r.uniform(lo, hi)),
          w.shape as number[],
        );
      if (kind === "moving_variance" || kind === "gamma") return draw(0.5, 1.5);
      if (["moving_mean", "beta", "bias"].includes(kind)) {
        return draw(-0.2, 0.2);
      }
      return values[i].clone();
    });
    if (next.length) layer.setWeights(next);
    tf.dispose(next);
  }
}

/** tfjs's and onnxruntime's probabilities for the same images. */
async function bothWays(
  model: LayersModel,
  pixels: Uint8Array,
  size: number,
  batchSize?: number,
) {
  const session = await loadOnnxSession(exportOnnx(model));
  try {
    const tfjs = await predictProbabilities(model, { pixels, size });
    const onnx = await onnxProbabilities(session, { pixels, size, batchSize });
    return { tfjs, onnx };
  } finally {
    await session.release();
  }
}

/** The largest |Δp| and whether every row's argmax agrees. */
function agreement(a: Float32Array, b: Float32Array, classes: number) {
  assert.equal(a.length, b.length);
  let maxDelta = 0;
  for (let i = 0; i < a.length; i++) {
    maxDelta = Math.max(maxDelta, Math.abs(a[i] - b[i]));
  }
  const argmax = (p: Float32Array, row: number) => {
    const r = Array.from(p.subarray(row * classes, (row + 1) * classes));
    return r.indexOf(Math.max(...r));
  };
  const rows = a.length / classes;
  const sameArgmax = Array.from({ length: rows }, (_, i) => i).every((i) =>
    argmax(a, i) === argmax(b, i)
  );
  return { maxDelta, sameArgmax };
}

/** Asserts that onnxruntime reproduces tfjs on random images. */
async function assertSameAsTfjs(
  model: LayersModel,
  size: number,
  count = 8,
): Promise<void> {
  const pixels = randomPixels(count, size, 7);
  const { tfjs, onnx } = await bothWays(model, pixels, size);
  const classes = model.outputs[0].shape[1] as number;
  const { maxDelta, sameArgmax } = agreement(tfjs, onnx, classes);
  assert.ok(maxDelta <= 1e-5, `max |Δp| ${maxDelta} > 1e-5`);
  assert.ok(sameArgmax, "the predicted classes differ");
}

Deno.test("onnx export: the seed CNN (32 px) gives tfjs's probabilities", async () => {
  const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
  perturbWeights(model, 1);
  await assertSameAsTfjs(model, 32);
  model.dispose();
});

Deno.test("onnx export: a small VGG with batch norm (folded) and each head", async () => {
  for (const head of ["gap", "flatten"] as const) {
    const model = vgg({
      inputSize: 32,
      channels: 1,
      numClasses: 4,
      filters: [8, 16],
      head,
      denseUnits: 16,
    });
    perturbWeights(model, 2);
    const graph = onnxModel(model);
    // Every normalisation follows a convolution: all folded away.
    assert.ok(!graph.nodes.some((n) => n.opType === "BatchNormalization"));
    await assertSameAsTfjs(model, 32);
    model.dispose();
  }
});

Deno.test("onnx export: a small ResNet (stride-2 'same' convs, projections, adds)", async () => {
  // 36 px: the stride-2 stem and stages meet odd and even sizes.
  const model = resnet({
    inputSize: 36,
    channels: 1,
    numClasses: 4,
    stemFilters: 8,
    filters: [8, 16],
    blocksPerStage: 1,
  });
  perturbWeights(model, 3);
  const ops = onnxModel(model).nodes.map((n) => n.opType);
  assert.ok(ops.includes("Sum") && !ops.includes("BatchNormalization"));
  await assertSameAsTfjs(model, 36);
  model.dispose();
});

/** A functional model using every other supported layer. */
function layerZoo(): LayersModel {
  const L = tf.layers;
  const apply = (
    layer: { apply: (x: SymbolicTensor | SymbolicTensor[]) => unknown },
    x: SymbolicTensor | SymbolicTensor[],
  ) => layer.apply(x) as SymbolicTensor;
  const input = tf.input({ shape: [21, 21, 1], name: "zoo_input" });
  let x = apply(L.rescaling({ scale: 2, offset: -1 }), input);
  x = apply(L.zeroPadding2d({ padding: [[1, 2], [0, 1]] }), x);
  const a = apply(
    L.depthwiseConv2d({
      kernelSize: 3,
      depthMultiplier: 4,
      padding: "same",
      strides: 2,
      activation: "tanh",
    }),
    x,
  );
  const b = apply(
    L.separableConv2d({
      filters: 4,
      kernelSize: 3,
      padding: "same",
      strides: 2,
      depthMultiplier: 2,
    }),
    x,
  );
  const bn = apply(L.batchNormalization({}), b);
  const c = apply(
    L.conv2d({
      filters: 4,
      kernelSize: 2,
      strides: 2,
      padding: "same",
      dilationRate: 1,
      activation: "swish",
    }),
    x,
  );
  let y = apply(L.concatenate({ axis: -1 }), [
    a,
    apply(L.leakyReLU({ alpha: 0.2 }), bn),
    c,
  ]);
  y = apply(L.batchNormalization({ name: "bn_after_concat" }), y);
  y = apply(
    L.averagePooling2d({ poolSize: 3, strides: 2, padding: "same" }),
    y,
  );
  const m1 = apply(
    L.conv2d({ filters: 6, kernelSize: 1, activation: "relu6" }),
    y,
  );
  const m2 = apply(
    L.conv2d({ filters: 6, kernelSize: 1, activation: "sigmoid" }),
    y,
  );
  let z = apply(L.multiply({}), [m1, m2]);
  z = apply(L.average({}), [z, m1]);
  z = apply(L.maximum({}), [z, m2]);
  z = apply(L.minimum({}), [z, m1]);
  z = apply(L.elu({}), z);
  z = apply(L.maxPooling2d({ poolSize: 2, padding: "same" }), z);
  const g1 = apply(L.globalMaxPooling2d({}), z);
  const g2 = apply(L.flatten({}), z);
  let h = apply(L.concatenate({}), [g1, g2]);
  h = apply(L.dense({ units: 12 }), h);
  h = apply(L.batchNormalization({ name: "bn_after_dense" }), h);
  h = apply(L.activation({ activation: "selu" }), h);
  h = apply(L.gaussianNoise({ stddev: 0.1 }), h);
  h = apply(L.dense({ units: 5 }), h);
  const out = apply(L.softmax({}), h);
  return tf.model({ inputs: input, outputs: out, name: "zoo" });
}

Deno.test("onnx export: depthwise, separable, padding, merges, pooling and normalisation layers", async () => {
  const model = layerZoo();
  perturbWeights(model, 4);
  const ops = onnxModel(model).nodes.map((n) => n.opType);
  // Only the normalisation after the concatenation stays an operator.
  assert.equal(ops.filter((op) => op === "BatchNormalization").length, 1);
  for (
    const op of [
      "Pad",
      "Concat",
      "AveragePool",
      "Mul",
      "Mean",
      "Max",
      "Min",
      "Clip",
      "GlobalMaxPool",
    ]
  ) {
    assert.ok(ops.includes(op), `${op} missing`);
  }
  await assertSameAsTfjs(model, 21);
  model.dispose();
});

Deno.test("onnx export: a transfer model's nested base is inlined", async () => {
  const input = tf.input({ shape: [24, 24, 3] });
  const conv = tf.layers.conv2d({
    filters: 6,
    kernelSize: 3,
    padding: "same",
    useBias: false,
  }).apply(input) as SymbolicTensor;
  const norm = tf.layers.batchNormalization({}).apply(conv) as SymbolicTensor;
  const act = tf.layers.reLU({}).apply(norm) as SymbolicTensor;
  const base = tf.model({ inputs: input, outputs: act });
  const model = await transfer({
    base,
    inputSize: 24,
    channels: 1,
    numClasses: 3,
  });
  perturbWeights(model, 5);
  await assertSameAsTfjs(model, 24);
  model.dispose(); // the base's layers with it
});

Deno.test("onnx export: one graph serves any batch size", async () => {
  const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
  perturbWeights(model, 6);
  const pixels = randomPixels(7, 32, 8);
  const session = await loadOnnxSession(exportOnnx(model));
  const one = await onnxProbabilities(session, {
    pixels,
    size: 32,
    batchSize: 1,
  });
  const seven = await onnxProbabilities(session, {
    pixels,
    size: 32,
    batchSize: 7,
  });
  await session.release();
  assert.ok(one.every((p, i) => Math.abs(p - seven[i]) <= 1e-6));
  model.dispose();
});

Deno.test("onnx export: test-time augmentation (hflip) inside the graph gives predictProbabilities' average", async () => {
  const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
  perturbWeights(model, 11);
  const pixels = randomPixels(7, 32, 12);
  const session = await loadOnnxSession(exportOnnx(model, { tta: "hflip" }));
  const tfjs = await predictProbabilities(model, {
    pixels,
    size: 32,
    tta: "hflip",
  });
  for (const batchSize of [1, 7]) {
    const onnx = await onnxProbabilities(session, {
      pixels,
      size: 32,
      batchSize,
    });
    const { maxDelta, sameArgmax } = agreement(tfjs, onnx, 4);
    assert.ok(maxDelta <= 1e-5 && sameArgmax, `max |Δp| ${maxDelta}`);
  }
  const plain = await predictProbabilities(model, { pixels, size: 32 });
  assert.ok(
    agreement(plain, tfjs, 4).maxDelta > 1e-4,
    "the mirror changed nothing",
  );
  await session.release();
  model.dispose();
});

Deno.test("onnx export: a layer it cannot convert is named with its class", () => {
  const model = tf.sequential({
    name: "unsupported",
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 2, kernelSize: 3 }),
      tf.layers.layerNormalization({ name: "norm_layer" }),
      tf.layers.flatten({}),
      tf.layers.dense({ units: 2, activation: "softmax" }),
    ],
  });
  assert.throws(
    () => exportOnnx(model),
    (error: unknown) =>
      error instanceof OnnxExportError &&
      /^layer "norm_layer" \(LayerNormalization\) cannot be exported to ONNX: this kind of layer is not supported$/
        .test(error.message),
  );
  const gelu = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [8, 8, 1],
        filters: 2,
        kernelSize: 3,
        activation: "gelu",
        name: "hidden",
      }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 2, activation: "softmax" }),
    ],
  });
  assert.throws(
    () => exportOnnx(gelu),
    /layer "hidden" \(Conv2D\) .*activation "gelu" is not supported/,
  );
  model.dispose();
  gelu.dispose();
});

Deno.test("onnx export: a model that is not an image classifier is refused", () => {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [4], units: 2, activation: "softmax" }),
    ],
  });
  assert.throws(
    () => exportOnnx(model),
    /takes input of shape \[null,4\]; only images of a fixed size/,
  );
  model.dispose();
});

Deno.test("onnx export: TensorFlow's 'same' padding puts the odd pixel last", () => {
  const window = (k: number, s: number, d = 1) =>
    ({ kernel: [k, k], strides: [s, s], dilations: [d, d] }) as const;
  assert.deepEqual(tensorflowPads("same", [128, 128], window(5, 2)), [
    1,
    1,
    2,
    2,
  ]);
  assert.deepEqual(tensorflowPads("same", [9, 10], window(3, 1)), [1, 1, 1, 1]);
  assert.deepEqual(tensorflowPads("same", [9, 10], window(2, 2)), [0, 0, 1, 0]);
  assert.deepEqual(tensorflowPads("same", [9, 9], window(3, 1, 2)), [
    2,
    2,
    2,
    2,
  ]);
  assert.throws(
    () => tensorflowPads("causal", [9, 9], window(3, 1)),
    /padding "causal"/,
  );
});

/** Checks an ONNX file with onnx's full checker and runs it with onnxruntime, in Python. */
const PYTHON_CHECK = `
import json, sys
import numpy as np
import onnx
import onnxruntime as ort
path, x_path, out_path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = onnx.load(path)
onnx.checker.check_model(model, full_check=True)
session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
inp = session.get_inputs()[0]
x = np.fromfile(x_path, dtype=np.float32).reshape([count] + inp.shape[1:])
(probs,) = session.run(["probabilities"], {"image": x})
probs.astype(np.float32).tofile(out_path)
print(json.dumps({
    "opset": [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0],
    "producer": model.producer_name,
    "input": [inp.name, inp.shape],
    "output": [session.get_outputs()[0].name, session.get_outputs()[0].shape],
    "metadata": {p.key: p.value for p in model.metadata_props},
}))
`;

Deno.test("onnx export: onnx's full checker accepts the file (mirror averaging built in) and Python's onnxruntime matches tfjs", async () => {
  const { python } = projectPaths();
  assert.ok(existsSync(python), `${python} is missing: run deno task setup`);
  const model = resnet({
    inputSize: 32,
    channels: 1,
    numClasses: 4,
    stemFilters: 8,
    filters: [8],
    blocksPerStage: 1,
  });
  perturbWeights(model, 9);
  const dir = await Deno.makeTempDir();
  try {
    const pixels = randomPixels(5, 32, 10);
    const file = join(dir, "model.onnx");
    await Deno.writeFile(
      file,
      exportOnnx(model, { name: "tiny-resnet", tta: "hflip" }),
    );
    const x = Float32Array.from(
      pixels,
      (p) => Math.fround(p * Math.fround(1 / 255)),
    );
    await Deno.writeFile(join(dir, "x.bin"), new Uint8Array(x.buffer));
    const { code, stdout, stderr } = await new Deno.Command(python, {
      args: [
        "-c",
        PYTHON_CHECK,
        file,
        join(dir, "x.bin"),
        join(dir, "p.bin"),
        "5",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const report = JSON.parse(new TextDecoder().decode(stdout));
    assert.deepEqual(report.input, ["image", ["batch", 32, 32, 1]]);
    assert.deepEqual(report.output, ["probabilities", ["batch", 4]]);
    assert.equal(report.opset, ONNX_OPSET);
    assert.equal(report.producer, "brain-mri-cnn");
    assert.deepEqual(JSON.parse(report.metadata.model), {
      name: "tiny-resnet",
      arch: "resnet",
    });
    assert.deepEqual(JSON.parse(report.metadata.inference), { tta: "hflip" });
    const fromPython = new Float32Array(
      (await Deno.readFile(join(dir, "p.bin"))).buffer,
    );
    const tfjs = await predictProbabilities(model, {
      pixels,
      size: 32,
      tta: "hflip",
    });
    const { maxDelta, sameArgmax } = agreement(tfjs, fromPython, 4);
    assert.ok(maxDelta <= 1e-5 && sameArgmax, `max |Δp| ${maxDelta}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
    model.dispose();
  }
});
