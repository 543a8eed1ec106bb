/**
 * The one module that loads TensorFlow. Every other module imports `tf` from
 * here, never from `@tensorflow/tfjs-node` directly.
 *
 * Loading does three things, in order:
 * 1. patches `node:util` with `isNullOrUndefined` and `isArray`, which
 *    tfjs-node 4.22 calls and Deno's `node:util` does not have;
 * 2. quiets TensorFlow's C++ start-up log unless `TF_CPP_MIN_LOG_LEVEL` is set,
 *    and turns on TensorFlow's pooling CPU allocator unless
 *    `TF_CPU_ALLOCATOR_USE_BFC` is set (a large speed-up for training);
 * 3. loads `@tensorflow/tfjs-node` (native TensorFlow) and checks that the
 *    active backend is `tensorflow`, failing with a fix-it message otherwise.
 *
 * @module
 */
import util from "node:util";

/** The tfjs-node namespace type. */
export type TF = typeof import("@tensorflow/tfjs-node");

// Types only (erased at run time, so they do not load tfjs-node early):
// `tf` is a value, so write `Tensor4D`, not `tf.Tensor4D`, in type positions.
export type {
  History,
  LayersModel,
  Logs,
  Rank,
  Scalar,
  Sequential,
  SymbolicTensor,
  Tensor,
  Tensor1D,
  Tensor2D,
  Tensor3D,
  Tensor4D,
  TensorContainer,
} from "@tensorflow/tfjs-node";

type UtilShim = {
  isNullOrUndefined?: (value: unknown) => boolean;
  isArray?: (value: unknown) => boolean;
};

/**
 * Adds the `node:util` functions tfjs-node 4.22 still calls. Safe to call more
 * than once; existing functions are left alone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import util from "node:util";
 * import { patchNodeUtil } from "./tf.ts";
 * patchNodeUtil();
 * const u = util as unknown as {
 *   isArray(v: unknown): boolean;
 *   isNullOrUndefined(v: unknown): boolean;
 * };
 * assert.equal(u.isArray([1]), true);
 * assert.equal(u.isNullOrUndefined(null), true);
 * assert.equal(u.isNullOrUndefined(0), false);
 * ```
 */
export function patchNodeUtil(): void {
  const u = util as unknown as UtilShim;
  u.isNullOrUndefined ??= (value: unknown) =>
    value === null || value === undefined;
  u.isArray ??= (value: unknown) => Array.isArray(value);
}

async function load(): Promise<TF> {
  patchNodeUtil();
  if (Deno.env.get("TF_CPP_MIN_LOG_LEVEL") === undefined) {
    Deno.env.set("TF_CPP_MIN_LOG_LEVEL", "2");
  }
  // TensorFlow's pooling (BFC) CPU allocator: tfjs-node runs one op at a
  // time, and with glibc malloc every large output is a fresh mapping plus
  // page faults. Measured on seedCnn training: 11.7 → 9.5 ms/image/epoch
  // (bench/train.ts); as good as LD_PRELOAD of tcmalloc, without a launcher.
  if (Deno.env.get("TF_CPU_ALLOCATOR_USE_BFC") === undefined) {
    Deno.env.set("TF_CPU_ALLOCATOR_USE_BFC", "true");
  }
  try {
    return await import("@tensorflow/tfjs-node");
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `Could not load @tensorflow/tfjs-node's native binding: ${reason}\n` +
        "Run `deno task setup` to install or rebuild it " +
        "(see README, 'Troubleshooting the native TensorFlow library').",
      { cause: error },
    );
  }
}

/** TensorFlow.js with the native TensorFlow backend. */
export const tf: TF = await load();

/**
 * The name of the active backend: `tensorflow` when the native library is in
 * use.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backendName } from "./tf.ts";
 * assert.equal(backendName(), "tensorflow");
 * ```
 */
export function backendName(): string {
  return tf.getBackend();
}

/** Versions of the pieces that do the numerical work. */
export interface TfInfo {
  /** Active tfjs backend (`tensorflow` for native). */
  backend: string;
  /** tfjs-node and its sibling packages. */
  tfjs: Record<string, string>;
  /** Version of the libtensorflow C library in use, as it reports itself. */
  libtensorflow: string;
  /** Deno, V8 and TypeScript versions. */
  deno: typeof Deno.version;
}

/**
 * Reports the backend and the library versions, for manifests and the setup
 * check notebook.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tfInfo } from "./tf.ts";
 * const info = tfInfo();
 * assert.equal(info.backend, "tensorflow");
 * assert.match(info.tfjs["tfjs-node"], /^\d+\.\d+\.\d+$/);
 * assert.match(info.libtensorflow, /^\d+\.\d+/);
 * ```
 */
export function tfInfo(): TfInfo {
  const versions = tf.version as unknown as Record<string, string>;
  const backend = tf.backend() as unknown as {
    binding?: { TF_Version?: string };
  };
  return {
    backend: tf.getBackend(),
    tfjs: { ...versions },
    libtensorflow: backend.binding?.TF_Version ?? "unknown",
    deno: Deno.version,
  };
}

if (import.meta.main) {
  console.log(JSON.stringify(tfInfo()));
}
