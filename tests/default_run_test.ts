/**
 * The default run, end to end, as the report's training notebook runs it
 * when no real data is configured: the synthetic default dataset →
 * `prepareData` → the seed CNN trained by `trainModel` with `DEFAULTS` →
 * accuracy and per-class recall on the test split.
 *
 * It checks that the synthetic default teaches: the seed CNN reaches at
 * least 90% test accuracy with every class's recall at least 0.75; and that
 * the numbers README.md and docs/training.md quote for it are within one
 * point of what this run measures, so the docs cannot drift from the data.
 *
 * Everything is written to a temporary folder, never into the repository.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULTS } from "../lib/core/defaults.ts";
import { PROJECT_ROOT } from "../lib/core/paths.ts";
import { prepareData } from "../lib/data/prepare.ts";
import { generateSyntheticDataset } from "../lib/data/synthetic.ts";
import { evaluateSplit, trainModel } from "../lib/train/train.ts";

/** The goal the synthetic default must let the seed CNN reach. */
const GOAL = { testAccuracy: 0.9, recall: 0.75 };

/** How far (in percentage points) a quoted number may be from the measured one. */
const TOLERANCE_POINTS = 1;

/** What the default run measured on the test split. */
interface DefaultRun {
  accuracy: number;
  scans: number;
  recall: Record<string, number>;
  epochs: { loss: number; acc: number; val_acc: number | null }[];
}

/** Recall of each class: correct predictions over the class's images. */
function recallByClass(
  classes: string[],
  labels: Int32Array,
  predicted: Int32Array,
): Record<string, number> {
  const total = new Array(classes.length).fill(0);
  const correct = new Array(classes.length).fill(0);
  labels.forEach((label, i) => {
    total[label]++;
    if (predicted[i] === label) correct[label]++;
  });
  return Object.fromEntries(classes.map((c, k) => [c, correct[k] / total[k]]));
}

/**
 * The synthetic default (the generator's defaults, as `resolveDataSource`
 * makes it), prepared, trained and tested with the project's defaults.
 */
async function runDefault(dir: string): Promise<DefaultRun> {
  const synthetic = await generateSyntheticDataset({
    outDir: join(dir, "synthetic"),
  });
  const data = await prepareData({
    source: { root: synthetic.outDir, synthetic: true, reason: "test" },
    cacheDir: join(dir, "cache"),
  });
  const result = await trainModel({
    train: data.train,
    validation: data.validation,
    classes: data.classes,
    size: data.size,
    seed: DEFAULTS.seed,
  });
  try {
    const test = await evaluateSplit(result.model, data.test, {
      size: data.size,
    });
    return {
      accuracy: test.acc,
      scans: test.count,
      recall: recallByClass(data.classes, data.test.labels, test.predicted),
      epochs: result.history,
    };
  } finally {
    result.model.dispose();
  }
}

/**
 * The test accuracy, test scans and lowest recall a doc quotes for the
 * synthetic default.
 */
async function quotedNumbers(
  path: string,
): Promise<{ accuracy: number; scans: number; recall: number }> {
  const text = (await Deno.readTextFile(join(PROJECT_ROOT, path)))
    .replace(/\s+/g, " ");
  const match =
    /reaches [\d.]+% validation and ([\d.]+)% test accuracy on it \((\d+) test scans; every class's recall at least ([\d.]+)%/
      .exec(text);
  assert.ok(
    match,
    `${path} has no sentence quoting the synthetic default's test accuracy`,
  );
  return {
    accuracy: Number(match[1]),
    scans: Number(match[2]),
    recall: Number(match[3]),
  };
}

Deno.test({
  name:
    "default run: the seed CNN learns the synthetic default, as the docs say",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "default_run_test_" });
    try {
      const run = await runDefault(dir);
      const summary = JSON.stringify(run);
      assert.ok(run.accuracy >= GOAL.testAccuracy, summary);
      for (const [label, recall] of Object.entries(run.recall)) {
        assert.ok(recall >= GOAL.recall, `${label}: ${summary}`);
      }
      // It learns over the epochs rather than at once.
      assert.ok((run.epochs[0].val_acc ?? 1) < 0.9, summary);
      assert.ok(run.epochs.at(-1)!.loss < run.epochs[0].loss - 0.5, summary);
      const lowest = Math.min(...Object.values(run.recall));
      for (const path of ["README.md", "docs/training.md"]) {
        const quoted = await quotedNumbers(path);
        assert.ok(
          Math.abs(quoted.accuracy - 100 * run.accuracy) <= TOLERANCE_POINTS,
          `${path} quotes ${quoted.accuracy}% test accuracy: ${summary}`,
        );
        assert.equal(quoted.scans, run.scans, `${path}: ${summary}`);
        assert.ok(
          Math.abs(quoted.recall - 100 * lowest) <= TOLERANCE_POINTS,
          `${path} quotes a lowest recall of ${quoted.recall}%: ${summary}`,
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
