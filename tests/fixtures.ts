/**
 * Test fixtures shared by several test files.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { type CliSpec, usage } from "../lib/core/cli.ts";
import { rng } from "../lib/core/random.ts";
import { run } from "../lib/tools/proc.ts";
// Types only: saveTinyModel imports TensorFlow lazily, so the fixtures of
// tests that do not need it stay light.
import type { ModelMetadata } from "../lib/model/saved_model.ts";

/**
 * A JPEG "scan": low-amplitude noise plus a few bright ellipses, seeded, so
 * different seeds give clearly different images (for duplicate tests).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ellipseScanJpeg } from "./fixtures.ts";
 * const jpeg = await ellipseScanJpeg(1, 64);
 * assert.deepEqual([...jpeg.subarray(0, 2)], [0xff, 0xd8]); // a JPEG
 * assert.deepEqual(await ellipseScanJpeg(1, 64), jpeg); // same seed, same bytes
 * assert.notDeepEqual(await ellipseScanJpeg(2, 64), jpeg);
 * ```
 */
export async function ellipseScanJpeg(
  seed: number,
  size = 128,
): Promise<Uint8Array> {
  const r = rng(seed);
  const px = new Uint8Array(size * size * 3);
  const shapes = Array.from({ length: 5 }, () => ({
    cx: r.uniform(0.15, 0.85) * size,
    cy: r.uniform(0.15, 0.85) * size,
    rx: r.uniform(0.06, 0.3) * size,
    ry: r.uniform(0.06, 0.3) * size,
    v: r.int(90, 230),
  }));
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let v = 20 + r.int(0, 25);
      for (const s of shapes) {
        if (((x - s.cx) / s.rx) ** 2 + ((y - s.cy) / s.ry) ** 2 <= 1) {
          v = Math.max(v, s.v + r.int(-10, 10));
        }
      }
      const o = (y * size + x) * 3;
      px[o] = px[o + 1] = px[o + 2] = Math.min(255, v);
    }
  }
  return new Uint8Array(
    await sharp(px, { raw: { width: size, height: size, channels: 3 } })
      .jpeg({ quality: 92 }).toBuffer(),
  );
}

/**
 * Ten predictions over four classes, shared by the metrics, ROC, calibration
 * and evaluation-plot tests. Predicted classes (argmax):
 * `[0, 0, 2, 0, 3, 2, 2, 2, 3, 3]`, 7 of 10 right; meningioma (1) is never
 * predicted. Each test file states the values it derives from them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TEN_PREDICTIONS } from "./fixtures.ts";
 * const { probs, yTrue } = TEN_PREDICTIONS;
 * const predicted = probs.map((row) => row.indexOf(Math.max(...row)));
 * assert.deepEqual(predicted, [0, 0, 2, 0, 3, 2, 2, 2, 3, 3]);
 * assert.equal(predicted.filter((p, i) => p === yTrue[i]).length, 7);
 * ```
 */
export const TEN_PREDICTIONS: {
  readonly classes: string[];
  readonly yTrue: number[];
  readonly probs: number[][];
} = {
  classes: ["glioma", "meningioma", "notumor", "pituitary"],
  yTrue: [0, 0, 0, 1, 1, 2, 2, 2, 3, 3],
  probs: [
    [0.7, 0.1, 0.1, 0.1],
    [0.5, 0.2, 0.2, 0.1],
    [0.2, 0.1, 0.6, 0.1],
    [0.6, 0.3, 0.05, 0.05],
    [0.1, 0.3, 0.2, 0.4],
    [0.1, 0.1, 0.8, 0.0],
    [0.05, 0.05, 0.9, 0.0],
    [0.3, 0.1, 0.4, 0.2],
    [0.1, 0.1, 0.1, 0.7],
    [0.2, 0.1, 0.3, 0.4],
  ],
};

/**
 * The same seeded scan as {@linkcode ellipseScanJpeg}, as a PNG (three
 * channels, 8 bits), for tests that need both formats.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ellipseScanPng } from "./fixtures.ts";
 * const png = await ellipseScanPng(1, 64);
 * assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
 * ```
 */
export async function ellipseScanPng(
  seed: number,
  size = 128,
): Promise<Uint8Array> {
  const jpeg = await ellipseScanJpeg(seed, size);
  return new Uint8Array(await sharp(jpeg).png().toBuffer());
}

/** One notebook cell for {@linkcode notebookJson}: its type and source. */
export type NotebookCell = [type: "code" | "markdown", source: string];

/**
 * A notebook (nbformat 4.5) for the project's Deno kernel, as the JSON text
 * of an `.ipynb` file: the cells in order, ids `c0`, `c1`, ..., code cells
 * not yet run (no outputs).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { notebookJson } from "./fixtures.ts";
 * const nb = JSON.parse(notebookJson([["markdown", "# Title"], ["code", "1 + 1"]]));
 * assert.equal(nb.metadata.kernelspec.name, "deno");
 * assert.deepEqual(nb.cells[1], {
 *   cell_type: "code",
 *   id: "c1",
 *   metadata: {},
 *   source: "1 + 1",
 *   execution_count: null,
 *   outputs: [],
 * });
 * ```
 */
export function notebookJson(cells: readonly NotebookCell[]): string {
  return JSON.stringify({
    cells: cells.map(([type, source], i) => ({
      cell_type: type,
      id: `c${i}`,
      metadata: {},
      source,
      ...(type === "code" ? { execution_count: null, outputs: [] } : {}),
    })),
    metadata: {
      kernelspec: {
        name: "deno",
        display_name: "Deno",
        language: "typescript",
      },
    },
    nbformat: 4,
    nbformat_minor: 5,
  });
}

/** The four classes of the Kaggle dataset, in label order. */
export const MRI_CLASSES: readonly string[] = [
  "glioma",
  "meningioma",
  "notumor",
  "pituitary",
];

/**
 * Saves a tiny, untrained (seeded) seedCnn with valid metadata into `dir`
 * with `saveModel`, for tests of what consumes saved models (predict, serve).
 * Returns the metadata written. Leaves no tensor behind. Loads TensorFlow
 * on first use (not when this module is imported).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { saveTinyModel } from "./fixtures.ts";
 * const dir = await Deno.makeTempDir();
 * const metadata = await saveTinyModel(join(dir, "model"), { size: 32 });
 * assert.equal(metadata.inputSize, 32);
 * const saved = JSON.parse(await Deno.readTextFile(join(dir, "model", "metadata.json")));
 * assert.equal(saved.training.run, "tiny-test");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveTinyModel(
  dir: string,
  options: {
    size?: number;
    seed?: number;
    run?: string;
    /** The split its metadata records (`training.split`); default none. */
    split?: ModelMetadata["training"]["split"];
  } = {},
): Promise<ModelMetadata> {
  const { buildModel } = await import("../lib/model/models.ts");
  const {
    defaultPreprocessing,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    saveModel,
  } = await import("../lib/model/saved_model.ts");
  const size = options.size ?? 32;
  const seed = options.seed ?? 7;
  const model = buildModel("seedCnn", {
    inputSize: size,
    channels: 1,
    numClasses: MRI_CLASSES.length,
    seed,
  });
  const metadata: ModelMetadata = {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    classes: [...MRI_CLASSES],
    inputSize: size,
    channels: 1,
    preprocessing: defaultPreprocessing(size),
    arch: "seedCnn",
    training: {
      run: options.run ?? "tiny-test",
      epochs: 0,
      bestEpoch: 0,
      batchSize: 8,
      learningRate: 1e-3,
      seed,
      augmentation: false,
      classWeights: null,
      ...(options.split ? { split: options.split } : {}),
    },
    datasetFingerprint: "test",
    metrics: {},
    createdAt: new Date(0).toISOString(),
  };
  try {
    await saveModel({ model, dir, metadata });
  } finally {
    model.dispose();
  }
  return metadata;
}

/** What {@linkcode withSyntheticDataset} hands its body. */
export interface SyntheticDatasetFixture {
  /** A temp folder, removed afterwards. */
  dir: string;
  /** The synthetic dataset's root (Kaggle layout) inside `dir`. */
  data: string;
  /** A decoded-image cache folder inside `dir`. */
  cacheDir: string;
}

/**
 * Runs `body` with a small seeded synthetic dataset (10 training and 1
 * testing scan per class unless told otherwise) in a temp folder that is
 * removed afterwards, whatever `body` does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { existsSync } from "node:fs";
 * import { join } from "node:path";
 * import { withSyntheticDataset } from "./fixtures.ts";
 * let root = "";
 * await withSyntheticDataset({ seed: 4, trainPerClass: 2 }, async ({ dir, data }) => {
 *   root = dir;
 *   const gliomas = [...Deno.readDirSync(join(data, "Training", "glioma"))];
 *   assert.equal(gliomas.length, 2);
 * });
 * assert.equal(existsSync(root), false); // removed afterwards
 * ```
 */
export async function withSyntheticDataset(
  options: { seed: number; trainPerClass?: number; prefix?: string },
  body: (fixture: SyntheticDatasetFixture) => Promise<void>,
): Promise<void> {
  const { generateSyntheticDataset } = await import("../lib/data/synthetic.ts");
  const dir = await Deno.makeTempDir({
    prefix: options.prefix ?? "synthetic_fixture_",
  });
  try {
    const data = join(dir, "ds");
    await generateSyntheticDataset({
      outDir: data,
      seed: options.seed,
      trainPerClass: options.trainPerClass ?? 10,
      testPerClass: 1,
    });
    await body({ dir, data, cacheDir: join(dir, "cache") });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Checks a command-line entry point built on `runCli`: `--help` prints its
 * usage to stdout and exits 0 (exactly the usage generated from `spec`, when
 * given); an unknown flag prints the error and the usage to stderr and exits
 * 2; neither does any work. Returns the usage text.
 *
 * Runs the script in a `deno` subprocess, so it is not run by
 * `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { checkUsage } from "./fixtures.ts";
 * import { SETUP_CLI } from "../lib/tools/setup.ts";
 * const usage = await checkUsage("lib/tools/setup.ts", SETUP_CLI);
 * console.log(usage.split("\n")[0]); // "usage: deno task setup -- [options]"
 * ```
 */
export async function checkUsage(
  script: string,
  spec?: CliSpec,
): Promise<string> {
  const help = await run(Deno.execPath(), {
    args: ["run", "-A", script, "--help"],
  });
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^usage: deno task /);
  if (spec) assert.equal(help.stdout, `${usage(spec)}\n`);
  const bad = await run(Deno.execPath(), {
    args: ["run", "-A", script, "--no-such-flag"],
  });
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /^error: Unknown option '--no-such-flag'/);
  assert.match(bad.stderr, /usage: deno task /);
  assert.equal(bad.stdout, "");
  return help.stdout;
}
