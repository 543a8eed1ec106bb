/**
 * Whether the two inference engines (lib/model/engine.ts) give the same
 * answers on a dataset's whole test split: for each model and each
 * test-time augmentation (none, the mirror), the largest |Δp| between
 * onnxruntime's and tfjs's probabilities over every scan and class, the mean
 * |Δp|, and the scans whose predicted class (by the model's operating point)
 * differs. tests/engine_equality_test.ts asserts the same on the synthetic
 * default; this measures it on any dataset.
 *
 * The test split is the one `deno task evaluate -- --split test` evaluates
 * with the project's defaults: `Testing/` of a Kaggle root that has it, else
 * carved from the root's images with `DEFAULTS` (seed 42, 15% validation,
 * 15% test), through `prepareData`.
 *
 * ```sh
 * BRAIN_MRI_DATA=path/to/brain-tumor-mri deno run -A bench/engine_equality.ts
 * deno run -A bench/engine_equality.ts --data DIR [--model DIR]... [--out FILE]
 * ```
 *
 * Writes `bench/results/engine_equality.json` (no machine paths: the dataset
 * and models are named relative to the project or by their last parts).
 *
 * @module
 */
import { join } from "node:path";
import { runCli } from "../lib/core/cli.ts";
import { writeTextAtomic } from "../lib/core/atomic.ts";
import { DEFAULTS } from "../lib/core/defaults.ts";
import { PROJECT_ROOT, SHIPPED_MODEL } from "../lib/core/paths.ts";
import { versions } from "../lib/core/versions.ts";
import { prepareData, type PreparedData } from "../lib/data/prepare.ts";
import { decider } from "../lib/model/decision.ts";
import { openEngine } from "../lib/model/engine.ts";
import { loadSavedModel, type Tta } from "../lib/model/saved_model.ts";
import { recordedPath } from "./bench_util.ts";

/** The models compared by default: the shipped ResNet and the seed CNN. */
export const EQUALITY_MODELS: readonly string[] = [
  join("models", SHIPPED_MODEL),
  join("models", "seedcnn-128-r2"),
];

/** One model, one test-time augmentation: how far the engines differ. */
export interface EngineDifference {
  /** The model folder, relative to the project. */
  model: string;
  /** The test-time augmentation both engines ran. */
  tta: Tta;
  /** Scans compared. */
  images: number;
  /** The largest |p_onnx − p_tfjs| over every scan and class. */
  maxAbsDiff: number;
  /** The mean |p_onnx − p_tfjs|. */
  meanAbsDiff: number;
  /** Scans whose predicted class differs between the engines. */
  classesDiffering: number;
  /** Those scans (paths as results record them). */
  differing: string[];
}

/** Options for {@linkcode rowDifferences}. */
export interface RowDifferenceOptions {
  /** One engine's probabilities, `n * k`, row-major. */
  a: Float32Array;
  /** The other's. */
  b: Float32Array;
  /** Classes per row. */
  k: number;
  /** The predicted class of a row. */
  decide: (row: ArrayLike<number>) => number;
}

/**
 * The largest and mean |Δp| of two probability tables and the rows whose
 * predicted class differs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rowDifferences } from "./engine_equality.ts";
 * const argmax = (r: ArrayLike<number>) => (r[0] >= r[1] ? 0 : 1);
 * const d = rowDifferences({
 *   a: Float32Array.of(0.75, 0.25, 0.5, 0.5),
 *   b: Float32Array.of(0.75, 0.25, 0.25, 0.75),
 *   k: 2,
 *   decide: argmax,
 * });
 * assert.deepEqual(d, { maxAbsDiff: 0.25, meanAbsDiff: 0.125, rows: [1] });
 * ```
 */
export function rowDifferences(
  options: RowDifferenceOptions,
): { maxAbsDiff: number; meanAbsDiff: number; rows: number[] } {
  const { a, b, k, decide } = options;
  if (a.length !== b.length || a.length % k !== 0) {
    throw new Error(
      `rowDifferences: ${a.length} and ${b.length} values are not two ` +
        `tables of ${k} classes`,
    );
  }
  let maxAbsDiff = 0;
  let sum = 0;
  const rows: number[] = [];
  for (let i = 0; i < a.length / k; i++) {
    const rowA = a.subarray(i * k, (i + 1) * k);
    const rowB = b.subarray(i * k, (i + 1) * k);
    for (let j = 0; j < k; j++) {
      const d = Math.abs(rowA[j] - rowB[j]);
      maxAbsDiff = Math.max(maxAbsDiff, d);
      sum += d;
    }
    if (decide(rowA) !== decide(rowB)) rows.push(i);
  }
  return { maxAbsDiff, meanAbsDiff: a.length ? sum / a.length : 0, rows };
}

/**
 * Both engines on one model over a prepared test split, with and without
 * the mirror.
 *
 * Needs a dataset and a saved model, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { compareEngines } from "./engine_equality.ts";
 * import { prepareData } from "../lib/data/prepare.ts";
 * const data = await prepareData();
 * const rows = await compareEngines("models/resnet-128-e11", data);
 * console.log(rows.map((r) => r.maxAbsDiff));
 * ```
 */
export async function compareEngines(
  modelDir: string,
  data: PreparedData,
): Promise<EngineDifference[]> {
  const loaded = await loadSavedModel(join(PROJECT_ROOT, modelDir));
  const { metadata } = loaded;
  const tfjs = await openEngine({ model: loaded, kind: "tfjs" });
  const onnx = await openEngine({ model: loaded, kind: "onnx" });
  try {
    const decide = decider(metadata.classes, metadata.inference ?? {});
    const out: EngineDifference[] = [];
    for (const tta of ["none", "hflip"] as const) {
      const input = {
        pixels: data.test.pixels,
        size: metadata.preprocessing.size,
        scale: metadata.preprocessing.scale,
        tta,
      };
      const d = rowDifferences({
        a: await tfjs.probabilities(input),
        b: await onnx.probabilities(input),
        k: metadata.classes.length,
        decide,
      });
      out.push({
        model: modelDir,
        tta,
        images: data.test.files.length,
        maxAbsDiff: d.maxAbsDiff,
        meanAbsDiff: d.meanAbsDiff,
        classesDiffering: d.rows.length,
        differing: d.rows.map((i) => recordedPath(data.test.files[i].path)),
      });
    }
    return out;
  } finally {
    await tfjs.dispose();
    await onnx.dispose();
    loaded.model.dispose();
  }
}

/** `--model`, repeatable, default {@linkcode EQUALITY_MODELS}: shared with bench/inference.ts. */
export const MODELS_FLAG = {
  type: "string",
  value: "DIR",
  multiple: true,
  help: "saved model, relative to the project (repeatable;\n" +
    `default ${EQUALITY_MODELS.join(" and ")})`,
} as const;

/** The command line. */
export const ENGINE_EQUALITY_CLI = {
  command: "deno run -A bench/engine_equality.ts",
  summary: "Compares the onnx and tfjs inference engines on every scan of a\n" +
    "dataset's test split (max and mean |Δp|, classes differing).",
  flags: {
    data: {
      type: "string",
      value: "DIR",
      defaultText: "BRAIN_MRI_DATA, else data/, else the synthetic default",
      help: "dataset root",
    },
    model: MODELS_FLAG,
    out: {
      type: "string",
      value: "FILE",
      default: "bench/results/engine_equality.json",
      help: "results file",
    },
  },
} as const;

if (import.meta.main) {
  Deno.exit(
    await runCli(ENGINE_EQUALITY_CLI, async ({ values }) => {
      const data = await prepareData({
        ...(values.data ? { source: values.data } : {}),
        log: (m) => console.error(m),
      });
      const models = values.model.length ? values.model : EQUALITY_MODELS;
      const results: EngineDifference[] = [];
      for (const model of models) {
        for (const row of await compareEngines(model, data)) {
          console.error(
            `${row.model} tta ${row.tta}: ${row.images} scans, max |Δp| ` +
              `${row.maxAbsDiff.toExponential(2)}, mean ` +
              `${row.meanAbsDiff.toExponential(2)}, ${row.classesDiffering} ` +
              "classes differ",
          );
          results.push(row);
        }
      }
      const ort = await import("onnxruntime-node");
      const report = {
        date: new Date().toISOString(),
        dataset: data.source.synthetic
          ? "synthetic default"
          : recordedPath(data.source.root),
        split: {
          name: "test",
          seed: DEFAULTS.seed,
          validation: DEFAULTS.validationFraction,
          test: DEFAULTS.testFraction,
          images: data.test.files.length,
        },
        tolerance: 1e-5,
        results,
        versions: { ...versions(), "onnxruntime-node": ort.env.versions.node },
      };
      await writeTextAtomic(values.out, `${JSON.stringify(report, null, 2)}\n`);
      console.log(JSON.stringify(results.map(({ differing: _, ...r }) => r)));
      return 0;
    }),
  );
}
