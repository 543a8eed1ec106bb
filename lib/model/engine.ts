/**
 * Inference engines: one interface for running a loaded saved model on
 * packed grey images, whatever runs the network underneath.
 *
 * | engine | what runs the network |
 * | --- | --- |
 * | `tfjs` | tfjs-node on libtensorflow ({@linkcode predictProbabilities}), as training does |
 * | `onnx` | onnxruntime on the CPU, on the model exported to ONNX in memory (`onnx_export.ts`, `onnx_runtime.ts`) |
 *
 * Both engines scale the pixels in float32 by the same factor, batch them the
 * same way and, with test-time augmentation (`tta: "hflip"`), run each batch
 * and its left-right mirror as two forward passes and average the two
 * probabilities in float32, exactly as {@linkcode predictProbabilities}
 * does, so they compute the same thing (tests/engine_equality_test.ts holds
 * them to 1e-5 on every scan of a test split). The engine of the command-line
 * tools is `--engine`, else `BRAIN_MRI_ENGINE`, else
 * {@linkcode DEFAULT_ENGINE}; Grad-CAM needs gradients and always runs
 * through tfjs.
 *
 * @module
 */
import { foldBatchNorm } from "./fold.ts";
import { type FlagSpec, UsageError } from "../core/cli.ts";
import { DEFAULTS } from "../core/defaults.ts";
import { predictProbabilities } from "./inference.ts";
import { exportOnnx } from "./onnx_export.ts";
import {
  loadOnnxSession,
  onnxProbabilities,
  type OnnxSession,
} from "./onnx_runtime.ts";
import { isTta, type LoadedModel, type Tta } from "./saved_model.ts";

/** The inference engines, in the order `--help` lists them. */
export const ENGINE_KINDS = ["tfjs", "onnx"] as const;

/** An inference engine's name. */
export type EngineKind = typeof ENGINE_KINDS[number];

/**
 * The engine `predict` and `evaluate` use when neither `--engine` nor
 * `BRAIN_MRI_ENGINE` names one: tfjs, the engine that trained the model and
 * the reference the other is checked against, and, with its batch
 * normalisations folded into the convolutions, the faster of the two on
 * batches and on a cold single prediction (docs/benchmarks.md). onnxruntime
 * gives the same probabilities (within 1e-5, no class differs).
 */
export const DEFAULT_ENGINE: EngineKind = "tfjs";

/**
 * The engine `serve` uses when neither `--engine` nor `BRAIN_MRI_ENGINE`
 * names one: onnx. A server opens its engine once, and onnxruntime answers
 * more requests per second than tfjs (and than Keras) on both shipped models
 * (docs/benchmarks.md).
 */
export const SERVE_ENGINE: EngineKind = "onnx";

/** The environment variable that chooses the engine when no flag does. */
export const ENGINE_ENV = "BRAIN_MRI_ENGINE";

/**
 * The `--engine` flag, declared once, with the engine a command falls back
 * to.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { engineFlag } from "./engine.ts";
 * assert.match(engineFlag("onnx").defaultText, /else onnx$/);
 * ```
 */
export function engineFlag(fallback: EngineKind) {
  return {
    type: "string",
    choices: ENGINE_KINDS,
    defaultText: `${ENGINE_ENV},\nelse ${fallback}`,
    help: "inference engine: tfjs, or onnx (onnxruntime on\n" +
      "the model exported to ONNX in memory)",
  } as const satisfies FlagSpec;
}

/** The `--engine` flag of `predict` and `evaluate`. */
export const ENGINE_FLAG = engineFlag(DEFAULT_ENGINE);

/**
 * Whether a value names an inference engine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isEngineKind } from "./engine.ts";
 * assert.equal(isEngineKind("onnx"), true);
 * assert.equal(isEngineKind("ONNX"), false);
 * ```
 */
export function isEngineKind(value: unknown): value is EngineKind {
  return (ENGINE_KINDS as readonly unknown[]).includes(value);
}

/**
 * The engine to use: the one given (a flag's value), else
 * `BRAIN_MRI_ENGINE` when set and not blank, else `fallback` (default
 * {@linkcode DEFAULT_ENGINE}).
 * This is the one place the variable is read. Throws a `UsageError` naming
 * the variable for a value that is not an engine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveEngineKind } from "./engine.ts";
 * assert.equal(resolveEngineKind(undefined, {}), "tfjs");
 * assert.equal(resolveEngineKind(undefined, { BRAIN_MRI_ENGINE: "onnx" }), "onnx");
 * assert.equal(resolveEngineKind("tfjs", { BRAIN_MRI_ENGINE: "onnx" }), "tfjs");
 * assert.equal(resolveEngineKind(undefined, {}, "onnx"), "onnx");
 * assert.throws(
 *   () => resolveEngineKind(undefined, { BRAIN_MRI_ENGINE: "torch" }),
 *   /BRAIN_MRI_ENGINE must be one of tfjs, onnx \(got "torch"\)/,
 * );
 * ```
 *
 * @param given the engine named on the command line, if any
 * @param env the environment (default `Deno.env`)
 * @param fallback the engine when neither names one
 */
export function resolveEngineKind(
  given?: string,
  env?: Record<string, string | undefined>,
  fallback: EngineKind = DEFAULT_ENGINE,
): EngineKind {
  if (given !== undefined) {
    if (!isEngineKind(given)) {
      throw new UsageError(
        `--engine must be one of ${ENGINE_KINDS.join(", ")} (got "${given}")`,
      );
    }
    return given;
  }
  const value = (env ? env[ENGINE_ENV] : Deno.env.get(ENGINE_ENV))?.trim();
  if (!value) return fallback;
  if (!isEngineKind(value)) {
    throw new UsageError(
      `${ENGINE_ENV} must be one of ${
        ENGINE_KINDS.join(", ")
      } (got "${value}")`,
    );
  }
  return value;
}

/** What {@linkcode InferenceEngine.probabilities} takes. */
export interface EngineInput {
  /** Packed grayscale images, `count * size * size` bytes. */
  pixels: Uint8Array;
  /** Image side. */
  size: number;
  /** Pixel scale (default 1/255). */
  scale?: number;
  /** Images per batch (default `DEFAULTS.evalBatchSize`, 64). */
  batchSize?: number;
  /** Test-time augmentation: `"hflip"` averages each image with its mirror. */
  tta?: Tta;
}

/** A loaded model, ready to give class probabilities. */
export interface InferenceEngine {
  /** Which engine runs the network. */
  readonly kind: EngineKind;
  /**
   * Class probabilities for packed uint8 images: `count * numClasses`
   * values, row-major.
   */
  probabilities(input: EngineInput): Promise<Float32Array>;
  /**
   * Frees what the engine holds (the ONNX session); the loaded model stays
   * the caller's to dispose.
   */
  dispose(): Promise<void>;
}

/** Options for {@linkcode openEngine}. */
export interface OpenEngineOptions {
  /** The loaded saved model (left to the caller to dispose). */
  model: LoadedModel;
  /** The engine (default {@linkcode resolveEngineKind}`()`). */
  kind?: EngineKind;
  /**
   * onnx: threads of one operator (default one per logical core,
   * `navigator.hardwareConcurrency`; onnxruntime's own default counts
   * physical cores, which is one thread on a 2-vCPU machine and about 25%
   * slower there).
   */
  threads?: number;
}

/**
 * Opens an engine on a loaded model. `tfjs` runs the model (its batch
 * normalisations folded into the convolutions before them); `onnx`
 * exports it to ONNX in memory (without test-time augmentation in the
 * graph: the engine mirrors as tfjs does) and opens it with onnxruntime.
 *
 * @example The small seed CNN through both engines
 * ```ts
 * import assert from "node:assert/strict";
 * import { openEngine } from "./engine.ts";
 * import { seedCnn } from "./models.ts";
 * import type { ModelMetadata } from "./saved_model.ts";
 * const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
 * const loaded = { model, metadata: {} as ModelMetadata };
 * const pixels = Uint8Array.from({ length: 2 * 32 * 32 }, (_, i) => (i * 37) % 256);
 * const tfjs = await openEngine({ model: loaded, kind: "tfjs" });
 * const onnx = await openEngine({ model: loaded, kind: "onnx" });
 * const a = await tfjs.probabilities({ pixels, size: 32, tta: "hflip" });
 * const b = await onnx.probabilities({ pixels, size: 32, tta: "hflip" });
 * assert.equal(b.length, 2 * 4);
 * b.forEach((p, i) => assert.ok(Math.abs(p - a[i]) < 1e-5));
 * await tfjs.dispose();
 * await onnx.dispose();
 * model.dispose();
 * ```
 */
export async function openEngine(
  options: OpenEngineOptions,
): Promise<InferenceEngine> {
  const kind = options.kind ?? resolveEngineKind();
  if (kind === "tfjs") return await tfjsEngine(options.model);
  const bytes = exportOnnx(options.model.model, { tta: "none" });
  const threads = options.threads ?? navigator.hardwareConcurrency;
  const session = await loadOnnxSession(bytes, threads ? { threads } : {});
  return onnxEngine(session);
}

/**
 * The tfjs engine: {@linkcode predictProbabilities} on the model with its
 * batch normalisations folded into the convolutions before them
 * (`foldBatchNorm`, fold.ts), as the ONNX export folds them.
 */
async function tfjsEngine(loaded: LoadedModel): Promise<InferenceEngine> {
  const folded = await foldBatchNorm(loaded.model);
  return {
    kind: "tfjs",
    probabilities: (input) => predictProbabilities(folded, input),
    dispose: () => {
      if (folded !== loaded.model) folded.dispose();
      return Promise.resolve();
    },
  };
}

/** The onnx engine on an open session. */
function onnxEngine(session: OnnxSession): InferenceEngine {
  return {
    kind: "onnx",
    probabilities: (input) => onnxTtaProbabilities(session, input),
    dispose: () => session.release(),
  };
}

/**
 * Each image's left-right mirror: the columns of every row reversed (what
 * `tf.reverse(x, 2)` does to a `[count, size, size, 1]` batch).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mirrorImages } from "./engine.ts";
 * const two = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8); // two 2×2 images
 * assert.deepEqual([...mirrorImages(two, 2)], [2, 1, 4, 3, 6, 5, 8, 7]);
 * ```
 */
export function mirrorImages(pixels: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(pixels.length);
  for (let row = 0; row < pixels.length; row += size) {
    for (let x = 0; x < size; x++) {
      out[row + x] = pixels[row + size - 1 - x];
    }
  }
  return out;
}

/**
 * onnxruntime's probabilities with {@linkcode predictProbabilities}'
 * test-time augmentation: batch by batch, the batch and its mirror as two
 * runs, averaged in float32.
 */
async function onnxTtaProbabilities(
  session: OnnxSession,
  input: EngineInput,
): Promise<Float32Array> {
  if (input.tta !== undefined && !isTta(input.tta)) {
    throw new Error(
      `onnx engine: tta must be "none" or "hflip" (got "${input.tta}")`,
    );
  }
  if (input.tta !== "hflip") return await onnxProbabilities(session, input);
  const area = input.size * input.size;
  const count = input.pixels.length / area;
  if (!Number.isInteger(count)) {
    throw new Error(
      `onnx engine: ${input.pixels.length} bytes are not whole ` +
        `${input.size}×${input.size} images`,
    );
  }
  const batchSize = input.batchSize ?? DEFAULTS.evalBatchSize;
  const parts: Float32Array[] = [];
  for (let start = 0; start < count; start += batchSize) {
    const end = Math.min(count, start + batchSize);
    const pixels = input.pixels.subarray(start * area, end * area);
    const batch = { size: input.size, scale: input.scale, batchSize };
    const p = await onnxProbabilities(session, { ...batch, pixels });
    const m = await onnxProbabilities(session, {
      ...batch,
      pixels: mirrorImages(pixels, input.size),
    });
    // (p + m) / 2 in float32, as tfjs' p.add(m).div(2).
    parts.push(p.map((v, i) => Math.fround(v + m[i]) / 2));
  }
  const out = new Float32Array(parts.reduce((n, r) => n + r.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
