import assert from "node:assert/strict";
import { join } from "node:path";
import { usage } from "../core/cli.ts";
import { PROJECT_ROOT, projectPaths, SHIPPED_MODEL } from "../core/paths.ts";
import { rng } from "../core/random.ts";
import { tf } from "../core/tf.ts";
import { renderSlice, SYNTHETIC_CLASSES } from "../data/synthetic.ts";
import { predictProbabilities } from "../model/inference.ts";
import { seedCnn } from "../model/models.ts";
import { loadOnnxSession, onnxProbabilities } from "../model/onnx_runtime.ts";
import {
  defaultPreprocessing,
  loadSavedModel,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  type ModelMetadata,
  saveModel,
} from "../model/saved_model.ts";
import { EXPORT_CLI, exportSavedModel } from "./export.ts";

const SHIPPED = join(PROJECT_ROOT, "models", SHIPPED_MODEL);

/**
 * 16 scans of the synthetic default dataset's kind (four per class, drawn at
 * the model's size) followed by 4 random images.
 */
function scans(size: number): Uint8Array {
  const images: Uint8Array[] = [];
  for (const [c, label] of SYNTHETIC_CLASSES.entries()) {
    for (let i = 0; i < 4; i++) {
      images.push(renderSlice({ label, seed: 100 * c + i, size }));
    }
  }
  const r = rng(5);
  for (let i = 0; i < 4; i++) {
    images.push(Uint8Array.from({ length: size * size }, () => r.int(0, 255)));
  }
  const pixels = new Uint8Array(images.length * size * size);
  images.forEach((img, i) => pixels.set(img, i * size * size));
  return pixels;
}

/** The largest |Δp| and whether every row's argmax agrees. */
function agreement(a: Float32Array, b: Float32Array, classes: number) {
  assert.equal(a.length, b.length);
  let maxDelta = 0;
  let sameArgmax = true;
  for (let row = 0; row < a.length / classes; row++) {
    const x = Array.from(a.subarray(row * classes, (row + 1) * classes));
    const y = Array.from(b.subarray(row * classes, (row + 1) * classes));
    x.forEach((p, j) => maxDelta = Math.max(maxDelta, Math.abs(p - y[j])));
    sameArgmax &&= x.indexOf(Math.max(...x)) === y.indexOf(Math.max(...y));
  }
  return { maxDelta, sameArgmax };
}

/** Runs the venv's Python on `script` with `args`; returns stdout, asserting exit 0. */
async function python(script: string, ...args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(
    projectPaths().python,
    { args: ["-c", script, ...args], stdout: "piped", stderr: "piped" },
  ).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return new TextDecoder().decode(stdout);
}

/** onnx's full checker, then onnxruntime on a float32 `[n, 128, 128, 1]` input file. */
const PYTHON_RUN = `
import json, sys
import numpy as np, onnx, onnxruntime as ort
path, x_path, out_path = sys.argv[1:4]
model = onnx.load(path)
onnx.checker.check_model(model, full_check=True)
session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
x = np.fromfile(x_path, dtype=np.float32).reshape([-1, 128, 128, 1])
session.run(["probabilities"], {"image": x})[0].astype(np.float32).tofile(out_path)
print(json.dumps({p.key: json.loads(p.value) for p in model.metadata_props}))
`;

Deno.test("export: the shipped ResNet as ONNX gives tfjs's probabilities on synthetic scans, in Deno and in Python", async () => {
  const dir = await Deno.makeTempDir();
  const { model, metadata } = await loadSavedModel(SHIPPED);
  try {
    const out = join(dir, "resnet.onnx");
    const result = await exportSavedModel({ model: SHIPPED, out });
    assert.deepEqual(result.input.shape, ["batch", 128, 128, 1]);
    const pixels = scans(128);
    // The export builds the model's own test-time augmentation into the graph.
    const tfjs = await predictProbabilities(model, {
      pixels,
      size: 128,
      tta: metadata.inference?.tta,
    });
    const session = await loadOnnxSession(out);
    const deno = await onnxProbabilities(session, { pixels, size: 128 });
    await session.release();
    const inDeno = agreement(tfjs, deno, 4);
    console.log(`shipped ResNet, 20 images: max |Δp| ${inDeno.maxDelta}`);
    assert.ok(inDeno.maxDelta <= 1e-5 && inDeno.sameArgmax);
    const x = Float32Array.from(
      pixels,
      (p) => Math.fround(p * Math.fround(1 / 255)),
    );
    await Deno.writeFile(join(dir, "x.bin"), new Uint8Array(x.buffer));
    const props = JSON.parse(
      await python(PYTHON_RUN, out, join(dir, "x.bin"), join(dir, "p.bin")),
    );
    assert.deepEqual(props.classes, metadata.classes);
    assert.deepEqual(props.model, { name: SHIPPED_MODEL, arch: "resnet" });
    assert.equal(props.preprocessing.size, 128);
    assert.equal(props.preprocessing.channels, 1);
    assert.equal(
      props.inference.tumourThreshold,
      metadata.inference?.tumourThreshold,
    );
    const py = new Float32Array(
      (await Deno.readFile(join(dir, "p.bin"))).buffer,
    );
    const inPython = agreement(tfjs, py, 4);
    assert.ok(
      inPython.maxDelta <= 1e-5 && inPython.sameArgmax,
      `${inPython.maxDelta}`,
    );
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

function exportCli(...args: string[]) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(PROJECT_ROOT, "lib/deploy/export.ts"), ...args],
    cwd: PROJECT_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output().then(({ code, stdout, stderr }) => ({
    code,
    stdout: new TextDecoder().decode(stdout),
    stderr: new TextDecoder().decode(stderr),
  }));
}

Deno.test("export CLI: --help, a missing --onnx, and --check on a small saved model with --json", async () => {
  const help = await exportCli("--help");
  assert.equal(help.code, 0);
  assert.equal(help.stdout.trim(), usage(EXPORT_CLI).trim());
  const missing = await exportCli("--model", SHIPPED);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /error: --onnx OUT\.onnx is required/);
  const dir = await Deno.makeTempDir();
  const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 2 });
  try {
    await saveModel({
      model,
      dir: join(dir, "run", "model"),
      metadata: metadataFor(32),
    });
    const out = join(dir, "exported", "tiny.onnx");
    const run = await exportCli(
      "--model",
      join(dir, "run"),
      "--onnx",
      out,
      "--check",
      "--json",
    );
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout);
    assert.equal(result.name, "run");
    assert.deepEqual(result.output, {
      name: "probabilities",
      shape: ["batch", 2],
    });
    assert.ok(result.check.maxDelta <= 1e-5 && result.check.sameArgmax);
    assert.ok((await Deno.stat(out)).size === result.bytes);
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Valid metadata for a two-class model of input side `size`. */
function metadataFor(size: number): ModelMetadata {
  return {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    classes: ["notumor", "tumour"],
    inputSize: size,
    channels: 1,
    preprocessing: defaultPreprocessing(size),
    arch: "custom",
    training: {
      epochs: 0,
      bestEpoch: 0,
      batchSize: 32,
      learningRate: 1e-3,
      seed: 1,
      augmentation: false,
      classWeights: null,
    },
    datasetFingerprint: "",
    metrics: {},
    createdAt: new Date().toISOString(),
  };
}

Deno.test("export CLI: bad input gets a one-line error naming the problem, and the existing file is kept", async () => {
  const dir = await Deno.makeTempDir();
  const out = join(dir, "kept.onnx");
  await Deno.writeTextFile(out, "an earlier export");
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [16, 16, 1], filters: 2, kernelSize: 3 }),
      tf.layers.layerNormalization({ name: "norm_layer" }),
      tf.layers.flatten({}),
      tf.layers.dense({ units: 2, activation: "softmax" }),
    ],
  });
  try {
    await saveModel({
      model,
      dir: join(dir, "odd"),
      metadata: metadataFor(16),
    });
    const modelJson = await Deno.readFile(join(SHIPPED, "model", "model.json"));
    const cases: [string[], number, RegExp][] = [
      [
        ["--model", join(dir, "odd")],
        1,
        /^error: layer "norm_layer" \(LayerNormalization\) cannot be exported to ONNX: this kind of layer is not supported\n$/,
      ],
      [
        ["--model", join(dir, "nowhere")],
        1,
        /^error: saved model .*nowhere: no such folder\n$/,
      ],
      [
        ["--model", SHIPPED, "--tta", "vflip"],
        2,
        /^error: --tta must be one of none, hflip/,
      ],
    ];
    for (const [args, code, message] of cases) {
      const run = await exportCli(...args, "--onnx", out);
      assert.equal(run.code, code, run.stderr);
      assert.match(run.stderr.replace(/^(WARNING|I0000).*\n/gm, ""), message);
      assert.equal(await Deno.readTextFile(out), "an earlier export");
    }
    const inside = await exportCli(
      "--onnx",
      join(SHIPPED, "model", "model.json"),
    );
    assert.equal(inside.code, 2);
    assert.match(
      inside.stderr,
      /is inside the model folder .*; write it elsewhere/,
    );
    assert.deepEqual(
      await Deno.readFile(join(SHIPPED, "model", "model.json")),
      modelJson,
    );
    const folder = await exportCli("--onnx", dir);
    assert.equal(folder.code, 2);
    assert.match(folder.stderr, /--onnx .* is a folder; name a file/);
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
