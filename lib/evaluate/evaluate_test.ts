import assert from "node:assert/strict";
import { join } from "node:path";
import { evaluateModel, formatEvaluation } from "./evaluate.ts";
import { degenerateReasons } from "./degenerate.ts";
import { predictProbabilities } from "../model/inference.ts";
import { buildModel } from "../model/models.ts";
import { compileModel } from "../model/compile.ts";
import { PROJECT_ROOT } from "../core/paths.ts";
import { run } from "../tools/proc.ts";
import {
  defaultPreprocessing,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  readModelMetadata,
  saveModel,
  updateModelMetadata,
} from "../model/saved_model.ts";
import { prepareData } from "../data/prepare.ts";
import { generateSyntheticDataset } from "../data/synthetic.ts";
import { tf } from "../core/tf.ts";

const CLASSES = ["glioma", "meningioma", "notumor", "pituitary"];

async function fixture() {
  const dir = await Deno.makeTempDir({ prefix: "evaluate-test-" });
  const data = join(dir, "ds");
  await generateSyntheticDataset({
    outDir: data,
    seed: 11,
    trainPerClass: 3,
    testPerClass: 5,
  });
  const model = buildModel("seedCnn", {
    inputSize: 32,
    channels: 1,
    numClasses: 4,
    seed: 1,
  });
  compileModel(model, { learningRate: 1e-3 });
  const modelDir = join(dir, "model");
  await saveModel({
    model,
    dir: modelDir,
    metadata: {
      format: MODEL_FORMAT,
      formatVersion: MODEL_FORMAT_VERSION,
      classes: CLASSES,
      inputSize: 32,
      channels: 1,
      preprocessing: defaultPreprocessing(32),
      arch: "seedCnn",
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
    },
  });
  model.dispose();
  return { dir, data, modelDir };
}

Deno.test("evaluate: a Kaggle root evaluates Testing/, full and de-duplicated, without leaks", async () => {
  const { dir, data, modelDir } = await fixture();
  try {
    const before = tf.memory().numTensors;
    const e = await evaluateModel({
      modelDir,
      data,
      cacheDir: join(dir, "cache"),
    });
    assert.equal(tf.memory().numTensors, before);
    assert.equal(e.files.length, 20, "the 4×5 Testing images, not Training");
    assert.ok(e.files.every((f) => f.origin === "Testing"));
    assert.equal(e.full.n, 20);
    assert.ok(e.deduplicated.n <= 20);
    assert.equal(e.probabilities.length, 80);
    for (let i = 0; i < 20; i++) {
      const row = e.probabilities.subarray(i * 4, i * 4 + 4);
      assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-4);
    }
    assert.match(formatEvaluation(e), /accuracy .*95% CI/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("evaluate: classes the model does not know are a clear error", async () => {
  const { dir, data, modelDir } = await fixture();
  try {
    await Deno.rename(
      join(data, "Training", "pituitary"),
      join(data, "Training", "lymphoma"),
    );
    await Deno.rename(
      join(data, "Testing", "pituitary"),
      join(data, "Testing", "lymphoma"),
    );
    await assert.rejects(
      evaluateModel({ modelDir, data, cacheDir: join(dir, "cache") }),
      /classes lymphoma are not known to the model \(it knows glioma, meningioma, notumor, pituitary\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("evaluate: the CLI's --json has the documented keys", async () => {
  const { dir, data, modelDir } = await fixture();
  try {
    const { code, stdout, stderr } = await run(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(PROJECT_ROOT, "lib", "evaluate", "evaluate.ts"),
        "--",
        "--model",
        modelDir,
        "--data",
        data,
        "--json",
      ],
      env: { BRAIN_MRI_CACHE: join(dir, "cache") },
    });
    assert.equal(code, 0, stderr);
    const out = JSON.parse(stdout);
    assert.deepEqual(Object.keys(out).sort(), [
      "dataset",
      "deduplicated",
      "degenerate",
      "full",
      "model",
      "skipped",
    ]);
    assert.deepEqual(out.degenerate, degenerateReasons(out.full));
    for (
      const key of [
        "accuracy",
        "accuracyCi",
        "loss",
        "cohenKappa",
        "confusionMatrix",
        "confusionMatrixNormalized",
        "perClass",
        "macro",
        "weighted",
        "binary",
        "calibration",
      ]
    ) {
      assert.ok(key in out.full, `full.${key}`);
      assert.ok(key in out.deduplicated, `deduplicated.${key}`);
    }
    assert.deepEqual(out.model.classes, CLASSES);
    const usage = await run(Deno.execPath(), {
      args: ["run", "-A", join(PROJECT_ROOT, "lib", "evaluate", "evaluate.ts")],
    });
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--data is required/);
    // Without --model: BRAIN_MRI_MODEL, else the shipped model.
    const byDefault = await run(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(PROJECT_ROOT, "lib", "evaluate", "evaluate.ts"),
        "--data",
        data,
        "--json",
      ],
      env: { BRAIN_MRI_CACHE: join(dir, "cache"), BRAIN_MRI_MODEL: modelDir },
    });
    assert.equal(byDefault.code, 0, byDefault.stderr);
    const again = JSON.parse(byDefault.stdout);
    assert.equal(again.model.dir, modelDir);
    assert.deepEqual(again.full.accuracy, out.full.accuracy);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("evaluate: predictProbabilities rejects a partial image", async () => {
  const model = buildModel("seedCnn", {
    inputSize: 32,
    channels: 1,
    numClasses: 4,
    seed: 1,
  });
  try {
    await assert.rejects(
      predictProbabilities(model, { pixels: new Uint8Array(100), size: 32 }),
      /100 bytes are not whole 32×32 images/,
    );
  } finally {
    model.dispose();
  }
});

Deno.test("evaluate: the onnx engine gives tfjs's classes and metrics, and the report names the engine", async () => {
  const { dir, data, modelDir } = await fixture();
  try {
    const cacheDir = join(dir, "cache");
    const before = tf.memory().numTensors;
    const tfjs = await evaluateModel({
      modelDir,
      data,
      cacheDir,
      engine: "tfjs",
    });
    const onnx = await evaluateModel({
      modelDir,
      data,
      cacheDir,
      engine: "onnx",
      tta: "hflip",
    });
    const mirrored = await evaluateModel({
      modelDir,
      data,
      cacheDir,
      engine: "tfjs",
      tta: "hflip",
    });
    assert.equal(tf.memory().numTensors, before);
    assert.equal(tfjs.engine, "tfjs");
    assert.equal(onnx.engine, "onnx");
    assert.deepEqual(onnx.files, mirrored.files);
    const worst = Math.max(
      ...onnx.probabilities.map((p, i) =>
        Math.abs(p - mirrored.probabilities[i])
      ),
    );
    assert.ok(worst < 1e-5, `max |Δp| ${worst}`);
    assert.deepEqual(onnx.full.confusionMatrix, mirrored.full.confusionMatrix);
    assert.match(
      formatEvaluation(onnx),
      /test-time augmentation: hflip; engine: onnx/,
    );
    assert.match(formatEvaluation(tfjs), /engine: tfjs/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("evaluate: the CLI's --engine onnx is recorded in --json; an unknown engine is a usage error", async () => {
  const { dir, data, modelDir } = await fixture();
  try {
    const cacheDir = join(dir, "cache");
    const tfjs = await evaluateModel({ modelDir, data, cacheDir });
    const script = join(PROJECT_ROOT, "lib", "evaluate", "evaluate.ts");
    const env = { BRAIN_MRI_CACHE: cacheDir };
    const cli = await run(Deno.execPath(), {
      args: [
        "run",
        "-A",
        script,
        "--model",
        modelDir,
        "--data",
        data,
        "--json",
        "--engine",
        "onnx",
      ],
      env,
    });
    assert.equal(cli.code, 0, cli.stderr);
    const out = JSON.parse(cli.stdout);
    assert.equal(out.model.engine, "onnx");
    assert.deepEqual(out.full.confusionMatrix, tfjs.full.confusionMatrix);
    const bad = await run(Deno.execPath(), {
      args: [
        "run",
        "-A",
        script,
        "--model",
        modelDir,
        "--data",
        data,
        "--engine",
        "jax",
      ],
      env,
    });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(
      bad.stderr,
      /--engine must be one of tfjs, onnx \(got "jax"\)/,
    );
    assert.match(bad.stderr, /usage: deno task evaluate/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("evaluate: --split test re-derives the split with the model's grouping radius", async () => {
  const { dir, data, modelDir } = await fixture();
  try {
    const cacheDir = join(dir, "cache");
    const training = join(data, "Training");
    const split = { validation: 0.25, test: 0.25, groupRadius: 12 };
    const { training: t } = await readModelMetadata(modelDir);
    await updateModelMetadata(modelDir, { training: { ...t, split } });
    const e = await evaluateModel({
      modelDir,
      data: training,
      cacheDir,
      split: "test",
    });
    const grouped = await prepareData({
      source: training,
      size: 32,
      seed: 1,
      validation: 0.25,
      test: 0.25,
      nearThreshold: 12,
      cacheDir,
    });
    assert.deepEqual(
      e.files.map((f) => f.path),
      grouped.test.files.map((f) => f.path),
    );
    assert.match(
      e.dataset,
      /seed 1, scans within 12 pHash bits kept in one split/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
