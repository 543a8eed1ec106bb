/**
 * Running an exported ONNX classifier (`onnx_export.ts`) with onnxruntime on
 * the CPU, fed exactly as `predictProbabilities` feeds a tfjs model: packed
 * uint8 grey images, multiplied by the preprocessing's scale in float32, in
 * batches. onnxruntime's native library is loaded on first use, not when this
 * module is imported.
 *
 * @module
 */
import type { InferenceSession } from "onnxruntime-node";
import { DEFAULTS } from "../core/defaults.ts";
import { ONNX_INPUT, ONNX_OUTPUT } from "./onnx_export.ts";

/** An onnxruntime session on an exported classifier. */
export type OnnxSession = InferenceSession;

/** Options for {@linkcode loadOnnxSession}. */
export interface OnnxSessionOptions {
  /** Threads of one operator (default: onnxruntime's, one per core). */
  threads?: number;
}

/**
 * Opens an ONNX file (a path or its bytes) with onnxruntime's CPU provider.
 * Release it with `session.release()`.
 *
 * @example The small seed CNN, exported and run on two grey images
 * ```ts
 * import assert from "node:assert/strict";
 * import { exportOnnx } from "./onnx_export.ts";
 * import { loadOnnxSession, onnxProbabilities } from "./onnx_runtime.ts";
 * import { seedCnn } from "./models.ts";
 * const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
 * const session = await loadOnnxSession(exportOnnx(model));
 * const pixels = new Uint8Array(2 * 32 * 32).fill(128);
 * const probs = await onnxProbabilities(session, { pixels, size: 32 });
 * assert.equal(probs.length, 2 * 4);
 * assert.ok(Math.abs(probs.slice(0, 4).reduce((a, b) => a + b) - 1) < 1e-5);
 * await session.release();
 * model.dispose();
 * ```
 */
export async function loadOnnxSession(
  source: string | Uint8Array,
  options: OnnxSessionOptions = {},
): Promise<OnnxSession> {
  const ort = await import("onnxruntime-node");
  const settings: InferenceSession.SessionOptions = {
    executionProviders: ["cpu"],
    ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
  };
  return typeof source === "string"
    ? await ort.InferenceSession.create(source, settings)
    : await ort.InferenceSession.create(source, settings);
}

/**
 * Runs the graph on a float32 `[batch, H, W, C]` input; returns the
 * `[batch, classes]` probabilities, row-major.
 *
 * Needs an exported model, so it is shown without being run by
 * `deno test --doc` (see {@linkcode loadOnnxSession} for a run).
 *
 * @example
 * ```ts ignore
 * import { loadOnnxSession, runOnnx } from "./onnx_runtime.ts";
 * const session = await loadOnnxSession("model.onnx");
 * const probs = await runOnnx(session, new Float32Array(128 * 128), [1, 128, 128, 1]);
 * ```
 */
export async function runOnnx(
  session: OnnxSession,
  input: Float32Array,
  dims: number[],
): Promise<Float32Array> {
  const ort = await import("onnxruntime-node");
  const image = new ort.Tensor("float32", input, dims);
  const result = await session.run({ [ONNX_INPUT]: image });
  const out = result[ONNX_OUTPUT];
  if (!out) {
    throw new Error(`the ONNX graph has no output "${ONNX_OUTPUT}"`);
  }
  const probs = out.data as Float32Array;
  image.dispose();
  out.dispose();
  return probs;
}

/** Options for {@linkcode onnxProbabilities}. */
export interface OnnxPredictOptions {
  /** Packed grayscale images, `count * size * size` bytes. */
  pixels: Uint8Array;
  /** Image side. */
  size: number;
  /** Pixel scale (default 1/255). */
  scale?: number;
  /** Images per batch (default `DEFAULTS.evalBatchSize`). */
  batchSize?: number;
}

/**
 * Class probabilities for packed uint8 images through an exported graph,
 * scaled and batched as `predictProbabilities` does for tfjs. Returns
 * `count * numClasses` values, row-major.
 *
 * Needs an exported model, so it is shown without being run by
 * `deno test --doc` (see {@linkcode loadOnnxSession} for a run).
 *
 * @example
 * ```ts ignore
 * import { loadOnnxSession, onnxProbabilities } from "./onnx_runtime.ts";
 * const session = await loadOnnxSession("model.onnx");
 * const probs = await onnxProbabilities(session, { pixels, size: 128 });
 * ```
 */
export async function onnxProbabilities(
  session: OnnxSession,
  options: OnnxPredictOptions,
): Promise<Float32Array> {
  const area = options.size * options.size;
  const count = options.pixels.length / area;
  if (!Number.isInteger(count)) {
    throw new Error(
      `onnxProbabilities: ${options.pixels.length} bytes are not whole ` +
        `${options.size}×${options.size} images`,
    );
  }
  const batchSize = options.batchSize ?? DEFAULTS.evalBatchSize;
  const scale = Math.fround(options.scale ?? 1 / 255);
  const rows: Float32Array[] = [];
  for (let start = 0; start < count; start += batchSize) {
    const end = Math.min(count, start + batchSize);
    const pixels = options.pixels.subarray(start * area, end * area);
    const x = Float32Array.from(pixels, (p) => Math.fround(p * scale));
    rows.push(
      await runOnnx(session, x, [end - start, options.size, options.size, 1]),
    );
  }
  const out = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  let offset = 0;
  for (const r of rows) {
    out.set(r, offset);
    offset += r.length;
  }
  return out;
}
