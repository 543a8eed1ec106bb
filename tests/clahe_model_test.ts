import assert from "node:assert/strict";
import { join } from "node:path";
import { projectPaths } from "../lib/core/paths.ts";
import { tf } from "../lib/core/tf.ts";
import { applyClahe } from "../lib/core/clahe.ts";
import { preprocessImage } from "../lib/data/preprocess.ts";
import { generateSyntheticDataset } from "../lib/data/synthetic.ts";
import { predictFiles } from "../lib/deploy/predict.ts";
import { modelCard } from "../lib/deploy/model_card.ts";
import { evaluateModel } from "../lib/evaluate/evaluate.ts";
import { predictProbabilities } from "../lib/model/inference.ts";
import { type LoadedModel, loadSavedModel } from "../lib/model/saved_model.ts";
import { run } from "../lib/tools/proc.ts";

const TRAIN = join(projectPaths().root, "lib", "train", "train_cli.ts");
const CLAHE = { clipLimit: 2, tiles: 4 };

/** Trains two epochs with `--clahe 2 --clahe-tiles 4`; the test accuracy it printed. */
async function trainWithClahe(data: string, out: string, cacheDir: string) {
  const trained = await run(Deno.execPath(), {
    args: [
      ...["run", "-A", TRAIN, "--", "--data", data, "--size", "32"],
      ...["--batch-size", "8", "--epochs", "2", "--out", out],
      ...["--clahe", "2", "--clahe-tiles", "4"],
    ],
    cwd: projectPaths().root,
    env: { BRAIN_MRI_CACHE: cacheDir, NO_COLOR: "1" },
    timeoutMs: 5 * 60_000,
  });
  assert.equal(trained.code, 0, trained.stderr);
  const accuracy = /^test accuracy: +([\d.]+) % on 8 images;/m.exec(
    trained.stdout,
  );
  assert.ok(accuracy, trained.stdout);
  return Number(accuracy[1]);
}

/** predict's probabilities for `scan` equal the network's on its equalised pixels. */
async function checkPredict(loaded: LoadedModel, scan: string) {
  const { metadata } = loaded;
  const [prediction] = (await predictFiles({
    inputs: [scan],
    model: loaded,
    engine: "tfjs",
  })).predictions;
  const plain = await preprocessImage(scan, { size: 32 });
  const start = tf.memory().numTensors;
  const [withClahe, without] = await Promise.all(
    [applyClahe(plain, 32, CLAHE), plain].map(
      (pixels) => predictProbabilities(loaded.model, { pixels, size: 32 }),
    ),
  );
  assert.equal(tf.memory().numTensors, start);
  const got = metadata.classes.map((c) => prediction.probabilities[c]);
  for (const [k, p] of got.entries()) {
    assert.ok(Math.abs(p - withClahe[k]) < 1e-6, `${p} vs ${withClahe[k]}`);
  }
  assert.ok(
    got.some((p, k) => Math.abs(p - without[k]) > 1e-4),
    "the prediction differs from the one without CLAHE",
  );
}

Deno.test("a model trained with --clahe records it, and evaluate and predict apply it to new scans", async () => {
  const dir = await Deno.makeTempDir({ prefix: "clahe_model_test_" });
  const cacheDir = join(dir, "cache");
  try {
    const data = join(dir, "data");
    await generateSyntheticDataset({
      outDir: data,
      seed: 4,
      trainPerClass: 6,
      testPerClass: 2,
    });
    const out = join(dir, "runs", "clahe");
    const accuracy = await trainWithClahe(data, out, cacheDir);
    const loaded = await loadSavedModel(join(out, "model"));
    try {
      assert.deepEqual(loaded.metadata.preprocessing.clahe, CLAHE);
      // evaluate re-derives the test split with the model's CLAHE: the same
      // accuracy the training run printed.
      const evaluation = await evaluateModel({
        modelDir: join(out, "model"),
        data,
        split: "test",
        cacheDir,
        engine: "tfjs",
      });
      assert.equal(
        (100 * evaluation.full.accuracy).toFixed(2),
        accuracy.toFixed(2),
      );
      const card = modelCard({
        ...evaluation,
        name: "clahe",
        command: "deno task evaluate",
      });
      assert.match(
        card.replace(/\s+/g, " "),
        /equalised by CLAHE \(clip limit 2, 4×4 tiles, as OpenCV's createCLAHE\)/,
      );
      await checkPredict(loaded, evaluation.files[0].path);
    } finally {
      loaded.model.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
