/**
 * Adam as one fused TensorFlow op per weight: {@linkcode NativeAdam} runs
 * TensorFlow's `ResourceApplyAdam` instead of tfjs's ~15 element-wise ops
 * per weight and step. `compileModel` (`compile.ts`) uses it with the native
 * kernels of `native_kernels.ts`.
 *
 * @module
 */
import { DEFAULTS } from "../core/defaults.ts";
import { nativeBackend, opAttrs } from "./native_backend.ts";
import { type Tensor, tf } from "../core/tf.ts";

type NamedTensor = { name: string; tensor: Tensor };
type NamedTensorMap = import("@tensorflow/tfjs-node").NamedTensorMap;
type Variable = import("@tensorflow/tfjs-node").Variable;

/** Options for {@linkcode NativeAdam}. */
export interface AdamOptions {
  /** Step size; default `DEFAULTS.learningRate` (0.001). */
  learningRate?: number;
  /** Decay of the first moment; default 0.9. */
  beta1?: number;
  /** Decay of the second moment; default 0.999. */
  beta2?: number;
  /** Added to the denominator; default 1e-7 (Keras' default). */
  epsilon?: number;
}

/** A weight's TensorFlow resource variables: its copy and its two moments. */
interface AdamSlot {
  variable: Tensor;
  m: Tensor;
  v: Tensor;
}

/** The step's scalars: the powers βᵗ and the hyper-parameters. */
interface AdamScalars {
  b1Power: Tensor;
  b2Power: Tensor;
  constants: Tensor[];
}

let adamCounter = 0;

/**
 * Adam as one fused TensorFlow op per weight (`ResourceApplyAdam`) instead of
 * tfjs's ~15 element-wise ops. The update is Keras'/TensorFlow's:
 * `lr_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ)`, `w −= lr_t·m/(√v + ε)` (tfjs's own Adam puts
 * ε inside the bias correction, a negligible difference). The moments live in
 * TensorFlow resource variables; each step copies a weight in and out once.
 *
 * Reports its class name as `Adam`, so saved training configs load as tfjs's
 * Adam, and hands out and takes back its state in tfjs's Adam's layout
 * (`getWeights`/`setWeights`), so checkpoints of either load into the
 * other. Its learning rate can be set between steps. Dispose it (or let
 * `compileModel`'s model own it) to free the moments.
 *
 * @example Adam's first step moves a weight by the learning rate
 * ```ts
 * import assert from "node:assert/strict";
 * import { NativeAdam } from "./native_adam.ts";
 * import { tf } from "../core/tf.ts";
 * const w = tf.variable(tf.scalar(1), true, "native_adam_example_w");
 * const grad = tf.scalar(3);
 * const adam = new NativeAdam({ learningRate: 0.01 });
 * adam.applyGradients([{ name: w.name, tensor: grad }]);
 * assert.ok(Math.abs(w.dataSync()[0] - 0.99) < 1e-6);
 * assert.equal(adam.getClassName(), "Adam");
 * adam.dispose();
 * tf.dispose([w, grad]);
 * ```
 */
export class NativeAdam extends tf.Optimizer {
  /** Serialisation name: saved configs load as tfjs's Adam. */
  static get className(): string {
    return "Adam";
  }
  #learningRate: number;
  /** Decay of the first moment. */
  readonly beta1: number;
  /** Decay of the second moment. */
  readonly beta2: number;
  /** Added to the denominator. */
  readonly epsilon: number;
  #slots = new Map<string, AdamSlot>();
  /** Moments restored by `setWeights`, by position, until their weight's first step. */
  #restored: ({ name: string; m: Tensor; v: Tensor } | undefined)[] = [];
  #constants: Tensor[] | undefined;
  #id = ++adamCounter;
  #step = 0;

  /** @param options step size, decays and epsilon */
  constructor(options: AdamOptions = {}) {
    super();
    this.#learningRate = options.learningRate ?? DEFAULTS.learningRate;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-7;
  }

  /** Step size; setting it takes effect from the next step (a schedule sets it per epoch). */
  get learningRate(): number {
    return this.#learningRate;
  }

  set learningRate(value: number) {
    if (value === this.#learningRate) return;
    this.#learningRate = value;
    if (!this.#constants) return;
    this.#constants[0].dispose();
    this.#constants[0] = tf.keep(tf.scalar(value));
  }

  #handle(name: string, shape: number[]): Tensor {
    const be = nativeBackend();
    const a = opAttrs(be.binding);
    return tf.keep(be.executeSingleOutput("VarHandleOp", [
      a.str("container", ""),
      a.str("shared_name", `brain_mri_adam_${this.#id}/${name}`),
      a.float("dtype"),
      a.shape("shape", shape),
    ], []));
  }

  #assign(handle: Tensor, value: Tensor): void {
    const be = nativeBackend();
    be.executeMultipleOutputs(
      "AssignVariableOp",
      [opAttrs(be.binding).float("dtype")],
      [handle, value],
      0,
    );
  }

  /**
   * The slot of the variable `name`, made on first use: with the restored
   * moments waiting at its position (see {@linkcode NativeAdam.setWeights}),
   * else with zero moments.
   */
  #slotFor(name: string, variable: Tensor): AdamSlot {
    let slot = this.#slots.get(name);
    if (slot) return slot;
    slot = {
      variable: this.#handle(`${name}/var`, variable.shape),
      m: this.#handle(`${name}/m`, variable.shape),
      v: this.#handle(`${name}/v`, variable.shape),
    };
    const position = this.#slots.size;
    const restored = this.#restored[position];
    if (restored && restored.m.size !== variable.size) {
      throw new Error(
        `NativeAdam: the restored moments "${restored.name}" have shape ` +
          `[${restored.m.shape}], the weight ${name} [${variable.shape}]`,
      );
    }
    const zeros = restored ? undefined : tf.zerosLike(variable);
    this.#assign(slot.m, restored?.m ?? zeros!);
    this.#assign(slot.v, restored?.v ?? zeros!);
    zeros?.dispose();
    if (restored) {
      // The resource variables now hold the values.
      tf.dispose([restored.m, restored.v]);
      this.#restored[position] = undefined;
    }
    this.#slots.set(name, slot);
    return slot;
  }

  /** `ResourceApplyAdam` on one weight, written back to the tfjs variable. */
  #update(
    variable: Variable,
    slot: AdamSlot,
    grad: Tensor,
    scalars: AdamScalars,
  ): void {
    const be = nativeBackend();
    const a = opAttrs(be.binding);
    const [lr, b1, b2, eps] = scalars.constants;
    // The tfjs variable is the source of truth (it may have been set from
    // outside); TensorFlow copies it on write, so the assign is free.
    this.#assign(slot.variable, variable);
    be.executeMultipleOutputs("ResourceApplyAdam", [
      a.float(),
      a.bool("use_locking", false),
      a.bool("use_nesterov", false),
    ], [
      slot.variable,
      slot.m,
      slot.v,
      scalars.b1Power,
      scalars.b2Power,
      lr,
      b1,
      b2,
      eps,
      grad,
    ], 0);
    const updated = be.executeSingleOutput(
      "ReadVariableOp",
      [a.float("dtype")],
      [slot.variable],
    );
    variable.assign(updated);
    updated.dispose();
  }

  /**
   * Applies one Adam step to the named variables.
   *
   * @param variableGradients gradients by variable name
   */
  applyGradients(variableGradients: NamedTensorMap | NamedTensor[]): void {
    const list = Array.isArray(variableGradients)
      ? variableGradients
      : Object.entries(variableGradients).map(([name, tensor]) => ({
        name,
        tensor,
      }));
    this.#step++;
    this.#constants ??= [
      this.learningRate,
      this.beta1,
      this.beta2,
      this.epsilon,
    ].map((x) => tf.keep(tf.scalar(x)));
    const scalars: AdamScalars = {
      b1Power: tf.scalar(this.beta1 ** this.#step),
      b2Power: tf.scalar(this.beta2 ** this.#step),
      constants: this.#constants,
    };
    for (const { name, tensor: grad } of list) {
      if (grad == null) continue;
      const variable = tf.engine().registeredVariables[name];
      if (!variable) throw new Error(`NativeAdam: no variable named ${name}`);
      this.#update(variable, this.#slotFor(name, variable), grad, scalars);
    }
    scalars.b1Power.dispose();
    scalars.b2Power.dispose();
    this.incrementIterations();
  }

  /** A TensorFlow resource variable's value, as a new tensor. */
  #read(handle: Tensor): Tensor {
    const be = nativeBackend();
    return be.executeSingleOutput(
      "ReadVariableOp",
      [opAttrs(be.binding).float("dtype")],
      [handle],
    );
  }

  /**
   * The state in tfjs's Adam layout: the iteration count (`iter`), then
   * every weight's first moment (`<weight>/m`), then every second moment
   * (`<weight>/v`), in the order the weights were first stepped. The
   * tensors are new: the caller disposes them. A checkpoint of either
   * optimizer loads into the other.
   */
  override getWeights(): Promise<NamedTensor[]> {
    const slots = [...this.#slots];
    return Promise.resolve([
      { name: "iter", tensor: tf.scalar(this.iterations, "int32") },
      ...slots.map(([name, s]) => ({
        name: `${name}/m`,
        tensor: this.#read(s.m),
      })),
      ...slots.map(([name, s]) => ({
        name: `${name}/v`,
        tensor: this.#read(s.v),
      })),
    ]);
  }

  /**
   * Restores a state in the layout {@linkcode NativeAdam.getWeights} gives
   * (tfjs's Adam's too): the step count and the moments. As in tfjs's Adam,
   * moments are matched to weights by position (the order in which the
   * weights are stepped), not by name, so a rebuilt model whose weights
   * were renamed takes them back. Call it before the first step; the
   * tensors stay the caller's.
   */
  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const [iter, ...moments] = weightValues;
    if (iter?.name !== "iter" || moments.length % 2 !== 0) {
      throw new Error(
        "NativeAdam.setWeights: expected the iteration count, then the " +
          "first and second moments of each weight",
      );
    }
    if (this.#slots.size) {
      throw new Error("NativeAdam.setWeights: call it before the first step");
    }
    const steps = (await iter.tensor.data())[0];
    const half = moments.length / 2;
    this.#dropRestored();
    this.#restored = moments.slice(0, half).map((m, i) => ({
      name: m.name,
      m: tf.keep(m.tensor.clone()),
      v: tf.keep(moments[half + i].tensor.clone()),
    }));
    this.#step = steps;
    this.iterations_ = steps;
  }

  /** Frees restored moments no weight has taken yet. */
  #dropRestored(): void {
    tf.dispose(this.#restored.flatMap((r) => r ? [r.m, r.v] : []));
    this.#restored = [];
  }

  /** Frees the moments and the TensorFlow variables behind them. */
  override dispose(): void {
    const be = nativeBackend();
    for (const slot of this.#slots.values()) {
      for (const handle of [slot.variable, slot.m, slot.v]) {
        be.executeMultipleOutputs(
          "DestroyResourceOp",
          [opAttrs(be.binding).bool("ignore_lookup_error", true)],
          [handle],
          0,
        );
        handle.dispose();
      }
    }
    this.#slots.clear();
    this.#dropRestored();
    if (this.#constants) tf.dispose(this.#constants);
    this.#constants = undefined;
    super.dispose();
  }

  /** The hyper-parameters, as tfjs's Adam names them. */
  getConfig(): { [key: string]: number } {
    return {
      learningRate: this.learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
    };
  }
}
