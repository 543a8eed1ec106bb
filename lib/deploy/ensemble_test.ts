import assert from "node:assert/strict";
import { join } from "node:path";
import { projectPaths } from "../core/paths.ts";
import { tf } from "../core/tf.ts";
import { run } from "../tools/proc.ts";
import { evaluateModel } from "../evaluate/evaluate.ts";
import { openEngine } from "../model/engine.ts";
import { loadSavedModel, readModelMetadata } from "../model/saved_model.ts";
import { withSyntheticDataset } from "../../tests/fixtures.ts";
import { saveEnsemble } from "./ensemble.ts";

const TRAIN = join(projectPaths().root, "lib", "train", "train_cli.ts");

/** One tiny ResNet run on `data`, split with seed 5, trained with `trainSeed`. */
async function tinyRun(
  data: string,
  dir: string,
  out: string,
  trainSeed: number,
): Promise<void> {
  const r = await run(Deno.execPath(), {
    args: [
      "run",
      "-A",
      TRAIN,
      "--data",
      data,
      "--arch",
      "resnet",
      "--model-options",
      '{"filters":[8],"blocksPerStage":1}',
      "--size",
      "32",
      "--epochs",
      "1",
      "--batch-size",
      "8",
      "--seed",
      "5",
      "--train-seed",
      String(trainSeed),
      "--no-test",
      "--out",
      out,
    ],
    env: { BRAIN_MRI_CACHE: join(dir, "cache"), NO_COLOR: "1" },
    timeoutMs: 5 * 60_000,
  });
  assert.equal(r.code, 0, r.stderr);
}

/** The mean of two engines' probabilities, row-major. */
function mean(a: Float32Array, b: Float32Array): number[] {
  return Array.from(a, (v, i) => (v + b[i]) / 2);
}

Deno.test("runs that differ only in --train-seed share their split and save as one averaging ensemble", async () => {
  await withSyntheticDataset({ seed: 9, trainPerClass: 8 }, async (f) => {
    const [a, b] = [join(f.dir, "a"), join(f.dir, "b")];
    await tinyRun(f.data, f.dir, a, 1);
    await tinyRun(f.data, f.dir, b, 2);
    const ma = await readModelMetadata(join(a, "model"));
    assert.equal(ma.training.seed, 1);
    assert.equal(ma.training.split?.seed, 5);
    const out = join(f.dir, "ab");
    const saved = await saveEnsemble({ models: [a, b], out });
    assert.deepEqual(saved.members.map((m) => m.name), ["a", "b"]);
    // The ensemble gives the mean of its members, through both engines.
    const pixels = Uint8Array.from({ length: 3 * 32 * 32 }, (_, i) => i % 253);
    const probs = async (dir: string, kind: "tfjs" | "onnx") => {
      const loaded = await loadSavedModel(dir);
      const engine = await openEngine({ model: loaded, kind });
      const p = await engine.probabilities({ pixels, size: 32 });
      await engine.dispose();
      loaded.model.dispose();
      return p;
    };
    const start = tf.memory().numTensors;
    const want = mean(
      await probs(join(a, "model"), "tfjs"),
      await probs(join(b, "model"), "tfjs"),
    );
    for (const kind of ["tfjs", "onnx"] as const) {
      const got = await probs(out, kind);
      got.forEach((p, i) => assert.ok(Math.abs(p - want[i]) < 1e-5, kind));
    }
    assert.equal(tf.memory().numTensors, start);
    // Its validation split is its members' (seed 5), not its first member's training seed.
    const evaluation = await evaluateModel({
      modelDir: out,
      data: f.data,
      split: "validation",
      cacheDir: f.cacheDir,
    });
    assert.match(evaluation.dataset, /seed 5/);
    assert.equal(evaluation.metadata.arch, "ensemble");
    // A run split another way is refused, naming why.
    const c = join(f.dir, "c");
    await tinyRun(f.data, f.dir, c, 5);
    await Deno.rename(join(c, "model", "metadata.json"), join(f.dir, "m.json"));
    const meta = JSON.parse(await Deno.readTextFile(join(f.dir, "m.json")));
    meta.training.split.validation = 0.3;
    await Deno.writeTextFile(
      join(c, "model", "metadata.json"),
      JSON.stringify(meta),
    );
    await assert.rejects(
      () => saveEnsemble({ models: [a, c], out: join(f.dir, "ac") }),
      /member 2 was trained on another split/,
    );
  });
});
