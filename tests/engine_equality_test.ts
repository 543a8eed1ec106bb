/**
 * The two inference engines compute the same thing: on every scan of the
 * held-out test split of the synthetic default dataset (what `prepareData`
 * gives when no real data is configured), onnxruntime's probabilities equal
 * tfjs's within 1e-5 and no predicted class differs, for the shipped model
 * (ResNet) and the seed CNN, with and without the mirror test-time
 * augmentation. `bench/engine_equality.ts` measures the same on any
 * dataset's test split.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PROJECT_ROOT, SHIPPED_MODEL } from "../lib/core/paths.ts";
import { tf } from "../lib/core/tf.ts";
import { prepareData, resolveDataSource } from "../lib/data/prepare.ts";
import { decider } from "../lib/model/decision.ts";
import { openEngine } from "../lib/model/engine.ts";
import { loadSavedModel } from "../lib/model/saved_model.ts";

/** The largest |Δp| allowed between the engines. */
const TOLERANCE = 1e-5;

const MODELS = [SHIPPED_MODEL, "seedcnn-128-r2"];

/** The synthetic default's test split (no real data configured: `env: {}`). */
async function syntheticTestSplit() {
  const source = await resolveDataSource({ env: {} });
  assert.equal(source.synthetic, true);
  const data = await prepareData({ source });
  assert.ok(data.test.files.length >= 100, `${data.test.files.length} scans`);
  return { classes: data.classes, size: data.size, test: data.test };
}

let prepared: ReturnType<typeof syntheticTestSplit> | undefined;

/** The split, prepared once for both tests (inside a test, so a failure is one). */
function testSplit(): ReturnType<typeof syntheticTestSplit> {
  return prepared ??= syntheticTestSplit();
}

for (const name of MODELS) {
  Deno.test(`engines: onnx equals tfjs on the synthetic test split with ${name}`, async () => {
    const split = await testSplit();
    const loaded = await loadSavedModel(join(PROJECT_ROOT, "models", name));
    const { metadata } = loaded;
    assert.deepEqual(metadata.classes, split.classes);
    assert.equal(metadata.preprocessing.size, split.size);
    const before = tf.memory().numTensors;
    const tfjs = await openEngine({ model: loaded, kind: "tfjs" });
    const onnx = await openEngine({ model: loaded, kind: "onnx" });
    try {
      const decide = decider(metadata.classes, metadata.inference ?? {});
      const k = metadata.classes.length;
      for (const tta of ["none", "hflip"] as const) {
        const input = {
          pixels: split.test.pixels,
          size: split.size,
          scale: metadata.preprocessing.scale,
          tta,
        };
        const a = await tfjs.probabilities(input);
        const b = await onnx.probabilities(input);
        const n = split.test.files.length;
        assert.equal(a.length, n * k);
        assert.equal(b.length, n * k);
        let worst = 0;
        const differing: string[] = [];
        for (let i = 0; i < n; i++) {
          const rowA = a.subarray(i * k, (i + 1) * k);
          const rowB = b.subarray(i * k, (i + 1) * k);
          rowA.forEach((
            p,
            j,
          ) => (worst = Math.max(worst, Math.abs(p - rowB[j]))));
          if (decide(rowA) !== decide(rowB)) {
            differing.push(split.test.files[i].path);
          }
        }
        assert.ok(
          worst <= TOLERANCE,
          `${name}, tta ${tta}: max |Δp| ${worst} over ${n} scans exceeds ${TOLERANCE}`,
        );
        assert.deepEqual(
          differing,
          [],
          `${name}, tta ${tta}: the class differs on ${differing.length} of ${n} scans (max |Δp| ${worst})`,
        );
      }
    } finally {
      await tfjs.dispose();
      await onnx.dispose();
      loaded.model.dispose();
    }
    assert.ok(tf.memory().numTensors <= before);
  });
}
