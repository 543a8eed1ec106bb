import assert from "node:assert/strict";
import { join } from "node:path";
import { UsageError } from "../core/cli.ts";
import { PROJECT_ROOT, SHIPPED_MODEL } from "../core/paths.ts";
import { tf } from "../core/tf.ts";
import {
  DEFAULT_ENGINE,
  ENGINE_FLAG,
  ENGINE_KINDS,
  mirrorImages,
  openEngine,
  resolveEngineKind,
} from "./engine.ts";
import { seedCnn } from "./models.ts";
import { loadSavedModel, type ModelMetadata } from "./saved_model.ts";

/** `count` seeded pseudo-random grey images of `size`². */
function noiseImages(count: number, size: number, seed: number): Uint8Array {
  let state = seed;
  return Uint8Array.from({ length: count * size * size }, () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state >> 23;
  });
}

Deno.test("resolveEngineKind: flag, then BRAIN_MRI_ENGINE, then the default", () => {
  assert.deepEqual(ENGINE_KINDS, ["tfjs", "onnx"]);
  assert.equal(DEFAULT_ENGINE, "tfjs");
  assert.equal(resolveEngineKind(undefined, {}), DEFAULT_ENGINE);
  assert.equal(resolveEngineKind(undefined, { BRAIN_MRI_ENGINE: " " }), "tfjs");
  assert.equal(
    resolveEngineKind(undefined, { BRAIN_MRI_ENGINE: "onnx" }),
    "onnx",
  );
  assert.equal(resolveEngineKind("onnx", { BRAIN_MRI_ENGINE: "tfjs" }), "onnx");
  assert.throws(() => resolveEngineKind("keras", {}), UsageError);
  assert.throws(
    () => resolveEngineKind(undefined, { BRAIN_MRI_ENGINE: "Onnx" }),
    (e: Error) =>
      e instanceof UsageError && /BRAIN_MRI_ENGINE/.test(e.message) &&
      /"Onnx"/.test(e.message),
  );
  assert.deepEqual(ENGINE_FLAG.choices, ENGINE_KINDS);
});

Deno.test("mirrorImages reverses columns as tf.reverse(x, 2) does", () => {
  const size = 5;
  const pixels = noiseImages(3, size, 11);
  const mirrored = tf.tidy(() =>
    tf.reverse(tf.tensor4d(pixels, [3, size, size, 1], "int32"), 2)
      .dataSync()
  );
  assert.deepEqual([...mirrorImages(pixels, size)], [...mirrored]);
  assert.deepEqual(mirrorImages(mirrorImages(pixels, size), size), pixels);
});

Deno.test("both engines give the shipped model's probabilities, with and without the mirror", async () => {
  const loaded = await loadSavedModel(
    join(PROJECT_ROOT, "models", SHIPPED_MODEL),
  );
  const size = loaded.metadata.preprocessing.size;
  const k = loaded.metadata.classes.length;
  const pixels = noiseImages(5, size, 3);
  const before = tf.memory().numTensors;
  const tfjs = await openEngine({ model: loaded, kind: "tfjs" });
  const onnx = await openEngine({ model: loaded, kind: "onnx" });
  try {
    assert.equal(tfjs.kind, "tfjs");
    assert.equal(onnx.kind, "onnx");
    for (const tta of ["none", "hflip"] as const) {
      // batches of 2: the last batch is partial.
      const input = { pixels, size, batchSize: 2, tta };
      const a = await tfjs.probabilities(input);
      const b = await onnx.probabilities(input);
      assert.equal(a.length, 5 * k);
      assert.equal(b.length, 5 * k);
      const worst = Math.max(...b.map((p, i) => Math.abs(p - a[i])));
      assert.ok(worst < 1e-5, `tta ${tta}: max |Δp| ${worst}`);
    }
    const plain = await onnx.probabilities({ pixels, size });
    const mirrored = await onnx.probabilities({
      pixels: mirrorImages(pixels, size),
      size,
    });
    const both = await onnx.probabilities({ pixels, size, tta: "hflip" });
    both.forEach((p, i) =>
      assert.equal(p, Math.fround(plain[i] + mirrored[i]) / 2)
    );
  } finally {
    await tfjs.dispose();
    await onnx.dispose();
    loaded.model.dispose();
  }
  assert.ok(tf.memory().numTensors <= before);
});

Deno.test("the onnx engine refuses partial images and an unknown augmentation", async () => {
  const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
  const onnx = await openEngine({
    model: { model, metadata: {} as ModelMetadata },
    kind: "onnx",
  });
  try {
    await assert.rejects(
      onnx.probabilities({ pixels: new Uint8Array(32 * 32 + 1), size: 32 }),
      /not whole 32×32 images/,
    );
    await assert.rejects(
      onnx.probabilities({
        pixels: new Uint8Array(32 * 32 + 1),
        size: 32,
        tta: "hflip",
      }),
      /not whole 32×32 images/,
    );
    await assert.rejects(
      onnx.probabilities({
        pixels: new Uint8Array(32 * 32),
        size: 32,
        tta: "vflip" as "hflip",
      }),
      /tta must be "none" or "hflip" \(got "vflip"\)/,
    );
  } finally {
    await onnx.dispose();
    model.dispose();
  }
});
