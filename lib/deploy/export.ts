/**
 * `deno task export`: a saved model written as a standard ONNX file, for
 * deployments that run ONNX (onnxruntime in Python, C++, C#, Java, the
 * browser, Node or Deno) rather than TensorFlow.
 *
 * ```sh
 * deno task export -- [--model DIR] --onnx OUT.onnx [--tta none|hflip] [--check] [--json]
 * ```
 *
 * The graph (lib/model/onnx_export.ts) takes `image`, float32
 * `[batch, H, W, C]` holding the preprocessed scan scaled to [0, 1] (the
 * metadata's `preprocessing`), and returns `probabilities`,
 * `[batch, classes]`. The file is written atomically: a failed export leaves
 * whatever was there before. `--check` runs the written file with onnxruntime
 * on seeded random images and compares it with the saved model run by tfjs.
 *
 * @module
 */
import { resolve, sep } from "node:path";
import { writeFileAtomic } from "../core/atomic.ts";
import { MODEL_FLAG, type ParsedCli, runCli, UsageError } from "../core/cli.ts";
import { DEFAULTS } from "../core/defaults.ts";
import { projectPaths } from "../core/paths.ts";
import { rng } from "../core/random.ts";
import { predictProbabilities } from "../model/inference.ts";
import {
  exportOnnx,
  ONNX_BATCH_DIM,
  ONNX_INPUT,
  ONNX_OPSET,
  ONNX_OUTPUT,
} from "../model/onnx_export.ts";
import { loadOnnxSession, onnxProbabilities } from "../model/onnx_runtime.ts";
import {
  type LoadedModel,
  loadSavedModel,
  resolveModelDir,
  type Tta,
} from "../model/saved_model.ts";
import { modelName } from "./predict.ts";

/** Options for {@linkcode exportSavedModel}. */
export interface ExportOptions {
  /** Saved model or run folder (default: `projectPaths().defaultModel`). */
  model?: string;
  /** The ONNX file to write. */
  out: string;
  /** Test-time augmentation to build in (default: the model's own). */
  tta?: Tta;
  /** Also compare the written file with tfjs on random images (default false). */
  check?: boolean;
}

/** How the written file agreed with tfjs (`--check`). */
export interface ExportCheck {
  /** Images compared. */
  images: number;
  /** The largest |Δp| over every image and class. */
  maxDelta: number;
  /** Whether every image's most probable class is the same. */
  sameArgmax: boolean;
}

/** What {@linkcode exportSavedModel} wrote. */
export interface ExportResult {
  /** The ONNX file, as an absolute path. */
  out: string;
  /** Its size in bytes. */
  bytes: number;
  /** The saved-model folder it came from. */
  modelDir: string;
  /** The model's name. */
  name: string;
  /** Its architecture. */
  arch: string;
  /** Its classes, in output order. */
  classes: string[];
  /** The graph's input: name and shape. */
  input: { name: string; shape: (number | string)[] };
  /** The graph's output: name and shape. */
  output: { name: string; shape: (number | string)[] };
  /** The ONNX operator set. */
  opset: number;
  /** The test-time augmentation built in. */
  tta: Tta;
  /** The comparison with tfjs, when asked for. */
  check?: ExportCheck;
}

/** The largest tolerated |Δp| between onnxruntime and tfjs. */
export const EXPORT_TOLERANCE = 1e-5;

/** Images `--check` compares. */
const CHECK_IMAGES = 8;

/**
 * Refuses an output path that is empty, names a folder, or lies inside the
 * saved-model folder (the export must never overwrite the model it reads).
 */
function checkOutPath(out: string, modelDir: string): string {
  if (!out.trim()) throw new UsageError("--onnx needs a file name");
  const abs = resolve(out);
  if (abs === modelDir || abs.startsWith(modelDir + sep)) {
    throw new UsageError(
      `--onnx ${out} is inside the model folder ${modelDir}; write it elsewhere`,
    );
  }
  let isDirectory = false;
  try {
    isDirectory = Deno.statSync(abs).isDirectory;
  } catch {
    // A new file.
  }
  if (isDirectory) {
    throw new UsageError(`--onnx ${out} is a folder; name a file`);
  }
  return abs;
}

/** Compares the written file with tfjs on seeded random images. */
async function compareWithTfjs(
  loaded: LoadedModel,
  file: string,
  tta: Tta,
): Promise<ExportCheck> {
  const { inputSize: size, preprocessing, classes } = loaded.metadata;
  const r = rng(DEFAULTS.seed);
  const pixels = Uint8Array.from(
    { length: CHECK_IMAGES * size * size },
    () => r.int(0, 255),
  );
  const options = { pixels, size, scale: preprocessing.scale };
  const tfjs = await predictProbabilities(loaded.model, { ...options, tta });
  const session = await loadOnnxSession(file);
  let onnx: Float32Array;
  try {
    onnx = await onnxProbabilities(session, options);
  } finally {
    await session.release();
  }
  let maxDelta = 0;
  let sameArgmax = true;
  const k = classes.length;
  for (let i = 0; i < CHECK_IMAGES; i++) {
    const a = Array.from(tfjs.subarray(i * k, (i + 1) * k));
    const b = Array.from(onnx.subarray(i * k, (i + 1) * k));
    a.forEach((p, j) => maxDelta = Math.max(maxDelta, Math.abs(p - b[j])));
    sameArgmax &&= a.indexOf(Math.max(...a)) === b.indexOf(Math.max(...b));
  }
  return { images: CHECK_IMAGES, maxDelta, sameArgmax };
}

/**
 * Loads a saved model, writes it as an ONNX file (atomically) and says what
 * was written. Throws a `SavedModelError` for a model that cannot be loaded,
 * an `OnnxExportError` naming a layer that cannot be exported, a
 * {@linkcode UsageError} for an output path that cannot be used, and an
 * error naming the file when it cannot be written.
 *
 * Loads the shipped model and writes a file of about 11 MB, so it is not run
 * by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { exportSavedModel } from "./export.ts";
 * const result = await exportSavedModel({ out: "resnet.onnx", check: true });
 * console.log(result.bytes, result.check?.maxDelta);
 * ```
 */
export async function exportSavedModel(
  options: ExportOptions,
): Promise<ExportResult> {
  const modelDir = resolveModelDir(
    options.model ?? projectPaths().defaultModel,
  );
  const out = checkOutPath(options.out, modelDir);
  const loaded = await loadSavedModel(modelDir);
  try {
    const { metadata } = loaded;
    const name = modelName(modelDir, metadata);
    const tta = options.tta ?? metadata.inference?.tta ?? "none";
    const bytes = exportOnnx(loaded.model, { metadata, name, tta });
    try {
      await writeFileAtomic(out, bytes);
    } catch (error) {
      throw new Error(`cannot write ${out}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const { inputSize, channels, classes } = metadata;
    return {
      out,
      bytes: bytes.length,
      modelDir,
      name,
      arch: metadata.arch,
      classes,
      input: {
        name: ONNX_INPUT,
        shape: [ONNX_BATCH_DIM, inputSize, inputSize, channels],
      },
      output: { name: ONNX_OUTPUT, shape: [ONNX_BATCH_DIM, classes.length] },
      opset: ONNX_OPSET,
      tta,
      ...(options.check
        ? { check: await compareWithTfjs(loaded, out, tta) }
        : {}),
    };
  } finally {
    loaded.model.dispose();
  }
}

/**
 * The lines `deno task export` prints for a result.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatExport, type ExportResult } from "./export.ts";
 * const lines = formatExport({
 *   out: "out/resnet.onnx", bytes: 11_183_298, modelDir: "models/r/model", name: "r",
 *   arch: "resnet", classes: ["a", "b"], opset: 13, tta: "none",
 *   input: { name: "image", shape: ["batch", 128, 128, 1] },
 *   output: { name: "probabilities", shape: ["batch", 2] },
 *   check: { images: 8, maxDelta: 2.4e-7, sameArgmax: true },
 * } satisfies ExportResult);
 * assert.deepEqual(lines, [
 *   "wrote out/resnet.onnx (11.2 MB): r (resnet), ONNX opset 13",
 *   "  input  image [batch, 128, 128, 1] float32, NHWC, pixels scaled to [0, 1]",
 *   "  output probabilities [batch, 2]: a, b",
 *   "  checked against tfjs on 8 random images: max |Δp| 2.4e-7, same classes",
 * ]);
 * ```
 */
export function formatExport(result: ExportResult): string[] {
  const lines = [
    `wrote ${result.out} (${(result.bytes / 1e6).toFixed(1)} MB): ` +
    `${result.name} (${result.arch}), ONNX opset ${result.opset}` +
    (result.tta === "hflip" ? ", mirror averaging built in" : ""),
    `  input  ${result.input.name} [${result.input.shape.join(", ")}] ` +
    "float32, NHWC, pixels scaled to [0, 1]",
    `  output ${result.output.name} [${result.output.shape.join(", ")}]: ` +
    result.classes.join(", "),
  ];
  const check = result.check;
  if (check) {
    lines.push(
      `  checked against tfjs on ${check.images} random images: max |Δp| ` +
        `${check.maxDelta.toPrecision(2)}, ` +
        (check.sameArgmax ? "same classes" : "DIFFERENT classes"),
    );
  }
  return lines;
}

/** The command line of `deno task export`. */
export const EXPORT_CLI = {
  command: "deno task export",
  summary: "Writes a saved model as a standard ONNX file (opset 13): input\n" +
    "`image` float32 [batch, H, W, C] (NHWC, pixels scaled to [0, 1]),\n" +
    "output `probabilities` [batch, classes]; classes and preprocessing\n" +
    "in its metadata_props.",
  flags: {
    model: MODEL_FLAG,
    onnx: {
      type: "string",
      value: "OUT.onnx",
      help: "the ONNX file to write (required)",
    },
    tta: {
      type: "string",
      choices: ["none", "hflip"],
      defaultText: "the model's own",
      help: "test-time augmentation to build into the graph",
    },
    check: {
      type: "boolean",
      help: "run the file with onnxruntime on random images and compare\n" +
        `with tfjs (fails above max |Δp| ${EXPORT_TOLERANCE.toExponential()})`,
    },
    json: { type: "boolean", help: "print one JSON object" },
  },
  footer: "docs/onnx.md shows how to run the file with onnxruntime.",
} as const;

/** `deno task export`: exit 0 when written (and checked), 1 on failure. */
async function exportMain(
  { values }: ParsedCli<typeof EXPORT_CLI>,
): Promise<number> {
  if (values.onnx === undefined) {
    throw new UsageError("--onnx OUT.onnx is required");
  }
  let result: ExportResult;
  try {
    result = await exportSavedModel({
      model: values.model,
      out: values.onnx,
      tta: values.tta,
      check: values.check,
    });
  } catch (error) {
    if (error instanceof UsageError) throw error;
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
  console.log(
    values.json ? JSON.stringify(result) : formatExport(result).join("\n"),
  );
  const check = result.check;
  if (check && !(check.maxDelta <= EXPORT_TOLERANCE && check.sameArgmax)) {
    console.error(
      `error: the ONNX file differs from tfjs (max |Δp| ${check.maxDelta}, ` +
        `tolerance ${EXPORT_TOLERANCE})`,
    );
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await runCli(EXPORT_CLI, exportMain));
