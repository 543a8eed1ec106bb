import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_ROOT } from "../core/paths.ts";
import { buildModel } from "./models.ts";
import {
  defaultPreprocessing,
  loadSavedModel,
  MODEL_FILES,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  type ModelMetadata,
  readModelMetadata,
  recoverDirAtomic,
  resolveModelDir,
  SavedModelError,
  saveModel,
  updateModelMetadata,
  validateMetadata,
  writeDirAtomic,
} from "./saved_model.ts";
import { type LayersModel, type Tensor, tf } from "../core/tf.ts";

const CLASSES = ["glioma", "meningioma", "notumor", "pituitary"];

function metadataFor(size: number, classes = CLASSES): ModelMetadata {
  return {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    classes,
    inputSize: size,
    channels: 1,
    preprocessing: defaultPreprocessing(size),
    arch: "seedCnn",
    training: {
      run: "test",
      epochs: 3,
      bestEpoch: 2,
      batchSize: 8,
      learningRate: 1e-3,
      seed: 5,
      augmentation: false,
      classWeights: null,
    },
    datasetFingerprint: "abc123",
    metrics: { val_acc: 0.5, val_loss: 1.2 },
    createdAt: new Date().toISOString(),
  };
}

function smallModel(size = 32, seed = 3): LayersModel {
  return buildModel("seedCnn", {
    inputSize: size,
    channels: 1,
    numClasses: 4,
    seed,
  });
}

function predict(model: LayersModel, x: Tensor): number[] {
  const y = model.predict(x) as Tensor;
  const out = Array.from(y.dataSync());
  y.dispose();
  return out;
}

async function withTemp(body: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "saved_model_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("saveModel → loadSavedModel gives identical predictions and metadata", async () => {
  await withTemp(async (dir) => {
    const start = tf.memory().numTensors;
    const model = smallModel();
    const x = tf.randomUniform([5, 32, 32, 1], 0, 1, "float32", 11);
    const before = predict(model, x);
    const metadata = metadataFor(32);
    const info = await saveModel({ model, dir: join(dir, "model"), metadata });
    assert.ok(info.bytes > 600_000);
    assert.deepEqual(readdirSync(join(dir, "model")).sort(), [
      MODEL_FILES.metadata,
      MODEL_FILES.modelJson,
      MODEL_FILES.weights,
    ]);
    const loaded = await loadSavedModel(join(dir, "model"));
    assert.deepEqual(predict(loaded.model, x), before);
    assert.deepEqual(loaded.metadata, metadata);
    // the files are the standard tfjs format: tfjs-node's own loader reads them
    // a run folder (holding model/) resolves to its model
    const viaRun = await loadSavedModel(dir);
    assert.deepEqual(predict(viaRun.model, x), before);
    viaRun.model.dispose();
    assert.equal(resolveModelDir(dir), join(dir, "model"));
    assert.equal(resolveModelDir(join(dir, "model")), join(dir, "model"));
    const viaTfjs = await tf.loadLayersModel(
      `file://${join(dir, "model", MODEL_FILES.modelJson)}`,
    );
    assert.deepEqual(predict(viaTfjs, x), before);
    viaTfjs.dispose();
    loaded.model.dispose();
    model.dispose();
    x.dispose();
    assert.equal(tf.memory().numTensors, start);
  });
});

Deno.test("saveModel replaces an existing model and leaves no temporary folders", async () => {
  await withTemp(async (dir) => {
    const target = join(dir, "model");
    const a = smallModel(32, 1);
    const b = smallModel(32, 2);
    await saveModel({ model: a, dir: target, metadata: metadataFor(32) });
    const m = metadataFor(32);
    m.metrics = { val_acc: 0.9 };
    await saveModel({ model: b, dir: target, metadata: m });
    assert.deepEqual(readdirSync(dir), ["model"]);
    const loaded = await loadSavedModel(target);
    assert.equal(loaded.metadata.metrics.val_acc, 0.9);
    const wb = b.getWeights()[0].dataSync();
    assert.deepEqual(
      Array.from(loaded.model.getWeights()[0].dataSync()),
      Array.from(wb),
    );
    a.dispose();
    b.dispose();
    loaded.model.dispose();
  });
});

Deno.test("saveModel refuses metadata that does not fit the network, writing nothing", async () => {
  await withTemp(async (dir) => {
    const model = smallModel(32);
    await assert.rejects(
      saveModel({ model, dir: join(dir, "m"), metadata: metadataFor(64) }),
      /input shape \[batch,32,32,1\] does not match the metadata \(inputSize 64/,
    );
    await assert.rejects(
      saveModel({
        model,
        dir: join(dir, "m"),
        metadata: metadataFor(32, ["a", "b", "c"]),
      }),
      /output shape \[batch,4\] does not match the 3 classes/,
    );
    assert.equal(existsSync(join(dir, "m")), false);
    model.dispose();
  });
});

Deno.test("loadSavedModel refuses models it cannot honour, naming the folder and the problem", async () => {
  await withTemp(async (dir) => {
    const target = join(dir, "model");
    const model = smallModel(32);
    await saveModel({ model, dir: target, metadata: metadataFor(32) });
    model.dispose();
    const metaPath = join(target, MODEL_FILES.metadata);
    const original = await Deno.readTextFile(metaPath);
    // deno-lint-ignore no-explicit-any
    const edit = async (change: (m: any) => void) => {
      const m = JSON.parse(original);
      change(m);
      await Deno.writeTextFile(metaPath, JSON.stringify(m));
    };
    const refused = async (pattern: RegExp) => {
      const error = await loadSavedModel(target).then(
        (loaded) => {
          loaded.model.dispose();
          return undefined;
        },
        (e) => e,
      );
      assert.ok(
        error instanceof SavedModelError,
        `expected refusal ${pattern}`,
      );
      assert.ok(error.message.includes(target), error.message);
      assert.match(error.message, pattern);
    };

    await edit((m) => {
      m.inputSize = 64;
      m.preprocessing.size = 64;
    });
    await refused(/input shape \[batch,32,32,1\] does not match the metadata/);
    await edit((m) => m.classes = ["a", "b"]);
    await refused(/output shape \[batch,4\] does not match the 2 classes/);
    await edit((m) => m.formatVersion = 99);
    await refused(/unknown metadata format version 99/);
    await edit((m) => m.format = "keras");
    await refused(/format "keras", expected "brain-mri-cnn\/saved-model"/);
    await edit((m) => m.preprocessing.fit = "pad");
    await refused(/preprocessing.fit "pad" is not supported/);
    await edit((m) => m.preprocessing.clahe = { clipLimit: 2, tiles: 0 });
    await refused(/preprocessing.clahe.tiles must be an integer from 1 to/);
    await edit((m) => m.classes = ["a", "a", "b", "c"]);
    await refused(/classes must be at least two distinct/);
    await edit((m) => delete m.preprocessing);
    await refused(/preprocessing is missing/);
    await Deno.writeTextFile(metaPath, "{ not json");
    await refused(/metadata.json is not valid JSON/);
    await Deno.remove(metaPath);
    await refused(/metadata.json is missing/);

    await Deno.writeTextFile(metaPath, original);
    const weights = join(target, MODEL_FILES.weights);
    const bytes = await Deno.readFile(weights);
    await Deno.writeFile(weights, bytes.subarray(0, 1000));
    await refused(/weights are 1000 bytes, model.json describes \d+/);
    await Deno.remove(weights);
    await refused(/weights file weights.bin is missing/);

    await assert.rejects(
      loadSavedModel(join(dir, "nowhere")),
      /saved model .*nowhere: no such folder/,
    );
  });
});

Deno.test("validateMetadata accepts what saveModel writes and lists every problem", () => {
  // One object (metadataFor stamps the time): a second call can differ by 1 ms.
  const good = metadataFor(32);
  const expected = structuredClone(good);
  assert.deepEqual(validateMetadata(good, "m"), expected);
  const bad = { ...metadataFor(32), inputSize: 0, channels: 3, arch: "" };
  assert.throws(
    () => validateMetadata(bad, "models/x/model"),
    (e: Error) =>
      e.message.startsWith(
        "saved model models/x/model: invalid metadata.json",
      ) &&
      e.message.includes("inputSize must be a positive integer") &&
      e.message.includes("arch must be a non-empty string") &&
      e.message.includes("channels is 3 but preprocessing is grayscale"),
  );
  assert.throws(() => validateMetadata([], "m"), /not a JSON object/);
});

Deno.test("updateModelMetadata merges metrics atomically and readModelMetadata reads them", async () => {
  await withTemp(async (dir) => {
    const model = smallModel(32);
    await saveModel({ model, dir: join(dir, "m"), metadata: metadataFor(32) });
    model.dispose();
    await updateModelMetadata(join(dir, "m"), { metrics: { test_acc: 0.75 } });
    const m = await readModelMetadata(join(dir, "m"));
    assert.deepEqual(m.metrics, {
      val_acc: 0.5,
      val_loss: 1.2,
      test_acc: 0.75,
    });
    await assert.rejects(
      updateModelMetadata(join(dir, "m"), { classes: ["only"] }),
      /classes must be at least two/,
    );
  });
});

Deno.test("writeDirAtomic keeps the previous folder when a write fails midway", async () => {
  await withTemp(async (dir) => {
    const target = join(dir, "out");
    await writeDirAtomic(target, async (out) => {
      await out.write("a.txt", "first");
      await out.write("b.txt", "first");
    });
    await assert.rejects(
      writeDirAtomic(target, async (out) => {
        await out.write("a.txt", "second");
        throw new Error("disk full (simulated)");
      }),
      /disk full/,
    );
    assert.equal(await Deno.readTextFile(join(target, "a.txt")), "first");
    assert.equal(await Deno.readTextFile(join(target, "b.txt")), "first");
    assert.deepEqual(readdirSync(dir), ["out"]);
  });
});

Deno.test("recoverDirAtomic puts back a folder moved aside by an interrupted swap", async () => {
  await withTemp(async (dir) => {
    const target = join(dir, "model");
    await writeDirAtomic(target, (out) => out.write("x.txt", "kept"));
    // The state a crash between the two renames leaves: target moved aside,
    // the new folder still under its temporary name.
    await Deno.rename(target, join(dir, ".model.old-123-abcd"));
    await Deno.mkdir(join(dir, ".model.tmp-123-abcd"));
    assert.equal(await recoverDirAtomic(target), true);
    assert.equal(await Deno.readTextFile(join(target, "x.txt")), "kept");
    assert.equal(await recoverDirAtomic(target), false);
    // the next write cleans the stale temporary folder
    await writeDirAtomic(target, (out) => out.write("x.txt", "new"));
    assert.deepEqual(readdirSync(dir), ["model"]);
  });
});

/** A freshly saved small model in `dir/model`; returns its folder. */
async function savedSmallModel(dir: string, classes = CLASSES) {
  const target = join(dir, "model");
  const model = smallModel(32);
  await saveModel({ model, dir: target, metadata: metadataFor(32, classes) });
  model.dispose();
  return target;
}

/**
 * Asserts that loading `path` is refused within a second with a
 * {@linkcode SavedModelError} whose message matches `pattern` and holds no
 * raw control character.
 */
async function refusedFast(path: string, pattern: RegExp): Promise<void> {
  const start = performance.now();
  const error = await loadSavedModel(path).then(
    (loaded) => {
      loaded.model.dispose();
      return undefined;
    },
    (e) => e,
  );
  const ms = performance.now() - start;
  assert.ok(error instanceof SavedModelError, `expected refusal ${pattern}`);
  assert.match(error.message, pattern);
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(error.message, /[\u0000-\u001f\u007f-\u009f]/);
  assert.ok(ms < 1000, `refusal took ${ms.toFixed(0)} ms: ${error.message}`);
}

/** A sparse file of `bytes` bytes (nothing written, so instant to make). */
async function sparseFile(path: string, bytes: number): Promise<string> {
  await Deno.writeFile(path, new Uint8Array(0));
  await Deno.truncate(path, bytes);
  return path;
}

const TWO_GB = 2 * 1024 * 1024 * 1024;

Deno.test("loadSavedModel refuses symbolic links, to files or folders, without reading them", async () => {
  await withTemp(async (dir) => {
    const target = await savedSmallModel(dir);
    const weights = join(target, MODEL_FILES.weights);
    const original = await Deno.readFile(weights);

    const big = await sparseFile(join(dir, "big.bin"), TWO_GB);
    await Deno.remove(weights);
    await Deno.symlink(big, weights);
    await refusedFast(
      target,
      /model .*model: weights file weights.bin is a symbolic link; a model folder holds only regular files/,
    );
    if (existsSync("/dev/zero")) {
      await Deno.remove(weights);
      await Deno.symlink("/dev/zero", weights);
      await refusedFast(target, /weights file weights.bin is a symbolic link/);
    }
    await Deno.remove(weights);
    await Deno.writeFile(weights, original);

    const metadata = join(target, MODEL_FILES.metadata);
    const outside = join(dir, "metadata-elsewhere.json");
    await Deno.rename(metadata, outside);
    await Deno.symlink(outside, metadata);
    await refusedFast(target, /metadata.json is a symbolic link/);
    await Deno.remove(metadata);
    await Deno.rename(outside, metadata);

    const link = join(dir, "linked-model");
    await Deno.symlink(target, link);
    await refusedFast(
      link,
      /model .*linked-model: the model folder is a symbolic link/,
    );

    // A weights file reached through a symlinked folder inside the model.
    const elsewhere = join(dir, "elsewhere");
    await Deno.mkdir(elsewhere);
    await Deno.rename(weights, join(elsewhere, MODEL_FILES.weights));
    await Deno.symlink(elsewhere, join(target, "shards"));
    const modelJson = join(target, MODEL_FILES.modelJson);
    const json = JSON.parse(await Deno.readTextFile(modelJson));
    json.weightsManifest[0].paths = ["shards/weights.bin"];
    await Deno.writeTextFile(modelJson, JSON.stringify(json));
    await refusedFast(target, /"shards" is a symbolic link/);
  });
});

Deno.test("loadSavedModel checks weights sizes against the manifest before reading", async () => {
  await withTemp(async (dir) => {
    const target = await savedSmallModel(dir);
    const weights = join(target, MODEL_FILES.weights);
    const original = await Deno.readFile(weights);
    const size = original.byteLength;

    await Deno.writeFile(weights, original.subarray(0, size - 4));
    await refusedFast(
      target,
      new RegExp(
        `weights file weights.bin: weights are ${size - 4} bytes, ` +
          `model.json describes ${size} \\(truncated or mismatched files\\)`,
      ),
    );
    const longer = new Uint8Array(size + 4);
    longer.set(original);
    await Deno.writeFile(weights, longer);
    await refusedFast(target, new RegExp(`weights are ${size + 4} bytes`));
    await Deno.remove(weights);
    await sparseFile(weights, TWO_GB);
    await refusedFast(
      target,
      new RegExp(`weights are ${TWO_GB} bytes, model.json describes ${size}`),
    );
    await Deno.remove(weights);
    await Deno.mkdir(weights);
    await refusedFast(target, /weights file weights.bin is not a regular file/);
    await Deno.remove(weights);
    await Deno.writeFile(weights, original);

    const modelJson = join(target, MODEL_FILES.modelJson);
    const text = await Deno.readTextFile(modelJson);
    // deno-lint-ignore no-explicit-any
    const editManifest = async (change: (group: any) => void) => {
      const json = JSON.parse(text);
      change(json.weightsManifest[0]);
      await Deno.writeTextFile(modelJson, JSON.stringify(json));
    };
    await editManifest((g) => g.paths = ["../weights.bin"]);
    await refusedFast(
      target,
      /names an invalid weights file "..\/weights.bin"/,
    );
    await editManifest((g) => g.paths = [weights]);
    await refusedFast(target, /names an invalid weights file/);
    await editManifest((g) => g.paths = ["w\u001b[2J\u009b.bin"]);
    await refusedFast(
      target,
      /weights file "w\\u001b\[2J\\u009b.bin" is missing/,
    );
    await editManifest((g) => g.weights[0].shape = [1_000_000, 1_000_000]);
    await refusedFast(target, /bytes of weights, more than the \d+ allowed/);
    await editManifest((g) => g.weights[0].dtype = "string");
    await refusedFast(
      target,
      /malformed weightsManifest: .* unsupported dtype "string"/,
    );
    await editManifest((g) => g.weights[0].shape = [-1]);
    await refusedFast(target, /malformed weightsManifest: .* invalid shape/);

    await Deno.writeTextFile(modelJson, text);
    const loaded = await loadSavedModel(target);
    loaded.model.dispose();
  });
});

Deno.test("loadSavedModel refuses class names that are empty, repeated or hold control characters", async () => {
  await withTemp(async (dir) => {
    const target = await savedSmallModel(dir);
    const metaPath = join(target, MODEL_FILES.metadata);
    const original = JSON.parse(await Deno.readTextFile(metaPath));
    const withClasses = async (classes: unknown[]) => {
      await Deno.writeTextFile(
        metaPath,
        JSON.stringify({ ...original, classes }),
      );
    };
    await withClasses(["glioma\u001b[31m", "meningioma", "notumor", "x"]);
    await refusedFast(
      target,
      /invalid metadata.json: .*class 0 "glioma\\u001b\[31m" has a control character/,
    );
    await withClasses(["glioma", "", "notumor", "pituitary"]);
    await refusedFast(target, /invalid metadata.json: .*class 1 is empty/);
    await withClasses(["glioma", "glioma", "notumor", "pituitary"]);
    await refusedFast(
      target,
      /invalid metadata.json: .*class 1 "glioma" is repeated/,
    );
    await withClasses(["glioma", 7, "notumor", "pituitary"]);
    await refusedFast(target, /class 1 7 is not a string/);
    await withClasses(["a\u0085b", "b", "c", "d"]);
    await refusedFast(target, /class 0 "a\\u0085b" has a control character/);
  });
});

Deno.test("the shipped models still load", async () => {
  for (const name of ["resnet-128-e11", "seedcnn-128-r2"]) {
    const { model, metadata } = await loadSavedModel(
      join(PROJECT_ROOT, "models", name),
    );
    assert.equal(metadata.classes.length, 4);
    model.dispose();
  }
});
