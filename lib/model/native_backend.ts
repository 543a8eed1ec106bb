/**
 * The native TensorFlow backend of tfjs-node, as the native kernels and the
 * native Adam use it: running a TensorFlow op by name
 * ({@linkcode nativeBackend}), building its attributes ({@linkcode opAttrs}),
 * and a record of the tfjs kernels swapped for native ones so that they can
 * be put back ({@linkcode KernelSwaps}).
 *
 * @module
 */
import { type Tensor, tf } from "../core/tf.ts";

/** The kernel implementation type of tfjs. */
export type KernelFunc = import("@tensorflow/tfjs-node").KernelFunc;
type KernelConfig = import("@tensorflow/tfjs-node").KernelConfig;

/** One attribute of a TensorFlow op, as tfjs-node's binding takes it. */
export interface OpAttr {
  /** Attribute name, e.g. `T` or `padding`. */
  name: string;
  /** One of the binding's `TF_ATTR_*` codes. */
  type: number;
  /** The value. */
  value: unknown;
}

/** The attribute and data type codes of tfjs-node's TensorFlow binding. */
export interface Binding {
  /** String attribute. */
  TF_ATTR_STRING: number;
  /** Integer (or integer list) attribute. */
  TF_ATTR_INT: number;
  /** Boolean attribute. */
  TF_ATTR_BOOL: number;
  /** Data type attribute. */
  TF_ATTR_TYPE: number;
  /** Shape attribute. */
  TF_ATTR_SHAPE: number;
  /** Float attribute. */
  TF_ATTR_FLOAT: number;
  /** float32. */
  TF_FLOAT: number;
  /** int32. */
  TF_INT32: number;
  /** uint8. */
  TF_UINT8: number;
}

/** The part of tfjs-node's `tensorflow` backend that runs ops by name. */
export interface NativeBackend {
  /** The binding's type codes. */
  binding: Binding;
  /** Runs the op `name` and returns its one output. */
  executeSingleOutput(name: string, attrs: OpAttr[], inputs: Tensor[]): Tensor;
  /** Runs the op `name` and returns its `outputs` outputs. */
  executeMultipleOutputs(
    name: string,
    attrs: OpAttr[],
    inputs: Tensor[],
    outputs: number,
  ): Tensor[];
}

/**
 * The loaded `tensorflow` backend; throws when it is not loaded.
 *
 * @example Run TensorFlow's `AddV2` op directly
 * ```ts
 * import assert from "node:assert/strict";
 * import { nativeBackend, opAttrs } from "./native_backend.ts";
 * import { tf } from "../core/tf.ts";
 * const backend = nativeBackend();
 * const [a, b] = [tf.tensor1d([1, 2]), tf.tensor1d([3, 4])];
 * const sum = backend.executeSingleOutput("AddV2", [opAttrs(backend.binding).float()], [a, b]);
 * assert.deepEqual(Array.from(sum.dataSync()), [4, 6]);
 * tf.dispose([a, b, sum]);
 * ```
 */
export function nativeBackend(): NativeBackend {
  const backend = tf.findBackend("tensorflow") as unknown as
    | NativeBackend
    | null;
  if (!backend?.binding || !backend.executeSingleOutput) {
    throw new Error("the native TensorFlow backend is not loaded");
  }
  return backend;
}

/** Attribute builders for TensorFlow ops (see {@linkcode opAttrs}). */
export interface OpAttrs {
  /** The float32 type attribute `name` (default `T`). */
  float(name?: string): OpAttr;
  /** A type attribute. */
  type(name: string, value: number): OpAttr;
  /** A string attribute. */
  str(name: string, value: string): OpAttr;
  /** An integer list attribute. */
  ints(name: string, value: number[]): OpAttr;
  /** A boolean attribute. */
  bool(name: string, value: boolean): OpAttr;
  /** A shape attribute. */
  shape(name: string, value: number[]): OpAttr;
  /** A float attribute. */
  number(name: string, value: number): OpAttr;
  /** Selects the oneDNN kernel registered under an `_Mkl*` op name. */
  mkl(): OpAttr;
}

/**
 * Attribute builders for TensorFlow ops, with the binding's type codes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nativeBackend, opAttrs } from "./native_backend.ts";
 * const { binding } = nativeBackend();
 * const a = opAttrs(binding);
 * assert.deepEqual(a.str("padding", "SAME"), {
 *   name: "padding",
 *   type: binding.TF_ATTR_STRING,
 *   value: "SAME",
 * });
 * assert.equal(a.float().value, binding.TF_FLOAT);
 * ```
 */
export function opAttrs(b: Binding): OpAttrs {
  const attr = (name: string, type: number, value: unknown): OpAttr => ({
    name,
    type,
    value,
  });
  return {
    float: (name = "T") => attr(name, b.TF_ATTR_TYPE, b.TF_FLOAT),
    type: (name, value) => attr(name, b.TF_ATTR_TYPE, value),
    str: (name, value) => attr(name, b.TF_ATTR_STRING, value),
    ints: (name, value) => attr(name, b.TF_ATTR_INT, value),
    bool: (name, value) => attr(name, b.TF_ATTR_BOOL, value),
    shape: (name, value) => attr(name, b.TF_ATTR_SHAPE, value),
    number: (name, value) => attr(name, b.TF_ATTR_FLOAT, value),
    mkl: () => attr("_kernel", b.TF_ATTR_STRING, "MklNameChangeOp"),
  };
}

/**
 * The record of one installation of native kernels: which tfjs kernels were
 * replaced (to register again), what else to undo (added kernels, gradients,
 * patched layers), and what was replaced or skipped and why. Each installer
 * of `native_kernels.ts` and its neighbours probes its op with
 * {@linkcode KernelSwaps.probe} and swaps it in through this record.
 *
 * @example Swap a kernel and put tfjs's back
 * ```ts
 * import assert from "node:assert/strict";
 * import { KernelSwaps } from "./native_backend.ts";
 * const swaps = new KernelSwaps();
 * swaps.replaceKernel("Square", (original) => (args) => original(args));
 * assert.deepEqual(swaps.replaced, ["Square"]);
 * swaps.restore();
 * ```
 */
export class KernelSwaps {
  /** The backend the kernels run on. */
  readonly backend: NativeBackend;
  /** Attribute builders for its binding. */
  readonly attrs: OpAttrs;
  /** Names of the replaced tfjs kernels and gradients. */
  readonly replaced: string[] = [];
  /** Why some replacements were skipped. */
  readonly skipped: string[] = [];
  #kernels: KernelConfig[] = [];
  #undo: (() => void)[] = [];

  /** Starts an empty record on the loaded `tensorflow` backend. */
  constructor() {
    this.backend = nativeBackend();
    this.attrs = opAttrs(this.backend.binding);
  }

  /**
   * Runs `run` on tiny tensors (in a tidy, everything freed); false, with
   * the reason recorded as skipped, when it throws (the TensorFlow build
   * lacks the op, or its result is wrong).
   */
  probe(what: string, run: () => Tensor | Tensor[]): boolean {
    try {
      tf.dispose(tf.tidy(run));
      return true;
    } catch (error) {
      this.skipped.push(
        `${what}: ${error instanceof Error ? error.message : error}`,
      );
      return false;
    }
  }

  /**
   * Replaces tfjs's kernel `name` on the `tensorflow` backend with
   * `make(original)`; the original is kept to register again.
   */
  replaceKernel(
    name: string,
    make: (original: KernelFunc) => KernelFunc,
  ): void {
    const original = tf.getKernel(name, "tensorflow");
    if (!original) {
      this.skipped.push(`${name}: tfjs has no kernel to replace`);
      return;
    }
    tf.unregisterKernel(name, "tensorflow");
    tf.registerKernel({
      kernelName: name,
      backendName: "tensorflow",
      kernelFunc: make(original.kernelFunc),
    });
    this.#kernels.push(original);
    this.replaced.push(name);
  }

  /** Records what undoes a change other than a kernel replacement. */
  onUndo(undo: () => void): void {
    this.#undo.push(undo);
  }

  /** Registers tfjs's kernels again and undoes everything else. */
  restore(): void {
    for (const config of this.#kernels) {
      tf.unregisterKernel(config.kernelName, "tensorflow");
      tf.registerKernel(config);
    }
    for (const undo of this.#undo) undo();
    this.#kernels = [];
    this.#undo = [];
  }
}
