/**
 * The weights' exponential moving average (Polyak averaging), kept beside a
 * model while it trains: {@linkcode WeightAverage} holds one shadow variable
 * per weight (batch-norm statistics included), folds the live weights in
 * after every step with the decay of {@linkcode emaDecayAt}, and swaps the
 * average into the model for validation and saving.
 *
 * @example The average starts at the weights and follows them
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../core/tf.ts";
 * import { WeightAverage } from "./ema.ts";
 *
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] });
 * const zeros = [tf.tensor2d([[0]]), tf.tensor1d([0])];
 * const ones = [tf.tensor2d([[1]]), tf.tensor1d([1])];
 * model.setWeights(zeros);
 * const average = new WeightAverage(model, { decay: 0.5 });
 * model.setWeights(ones);
 * // After 0 updates the decay is min(0.5, 1/10) = 0.1: 0.1·0 + 0.9·1.
 * assert.equal(average.update(0), 1);
 * const values = Array.from(new Float32Array(average.snapshot().buffer));
 * assert.ok(values.every((v) => Math.abs(v - 0.9) < 1e-6));
 * tf.dispose([...zeros, ...ones]);
 * average.dispose();
 * model.dispose();
 * ```
 *
 * @module
 */
import { type LayersModel, tf } from "../core/tf.ts";
import {
  restoreSnapshot,
  snapshotTensors,
  tensorsSnapshot,
  weightSnapshot,
} from "./snapshot.ts";

type Variable = import("@tensorflow/tfjs-node").Variable;

/**
 * The weight of the old average at update `updates` (0-based):
 * `min(decay, (1 + n) / (10 + n))`, as in TensorFlow's
 * `ExponentialMovingAverage` with `num_updates`, so that the first steps
 * are not drowned by the initial weights.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { emaDecayAt } from "./ema.ts";
 * assert.equal(emaDecayAt(0.998, 0), 0.1);
 * assert.equal(emaDecayAt(0.998, 10), 0.55);
 * assert.equal(emaDecayAt(0.998, 1e6), 0.998);
 * ```
 */
export function emaDecayAt(decay: number, updates: number): number {
  return Math.min(decay, (1 + updates) / (10 + updates));
}

/** Options for a {@linkcode WeightAverage}. */
export interface WeightAverageOptions {
  /** Weight of the old average at each update, in (0, 1). */
  decay: number;
  /**
   * The average to start from (a `tensorsSnapshot`, e.g. a checkpoint's
   * `ema.bin`); default the model's current weights.
   */
  initial?: Uint8Array;
}

/** The live weights and the average, when the average is swapped in. */
export interface SwappedWeights {
  /** The live weights, to put back with `restoreSnapshot`. */
  live: Uint8Array;
  /** The average (as now in the model). */
  average: Uint8Array;
}

/**
 * A moving average of all of a model's weights. It reads the model's weight
 * variables directly; call {@linkcode WeightAverage.dispose} when done.
 */
export class WeightAverage {
  /** Weight of the old average at each update (before the warm-up cap). */
  readonly decay: number;
  readonly #model: LayersModel;
  readonly #live: Variable[];
  readonly #shadows: Variable[];

  /**
   * Starts an average of `model`'s weights.
   *
   * @param model the model whose weights to average
   * @param options the decay and where to start
   */
  constructor(model: LayersModel, options: WeightAverageOptions) {
    this.decay = options.decay;
    this.#model = model;
    this.#live = model.weights.map((w) =>
      (w as unknown as { read(): Variable }).read()
    );
    const initial = snapshotTensors(
      options.initial ?? tensorsSnapshot(this.#live),
      this.#live,
    );
    this.#shadows = initial.map((t) => tf.variable(t, false));
    tf.dispose(initial);
  }

  /**
   * Folds the live weights into the average, as update number `updates`
   * (0-based, counted over the whole run); returns `updates + 1`.
   */
  update(updates: number): number {
    const d = emaDecayAt(this.decay, updates);
    tf.tidy(() => {
      // Two scalars for all the weights, not two per weight.
      const keep = tf.scalar(d);
      const take = tf.scalar(1 - d);
      this.#shadows.forEach((v, i) =>
        v.assign(tf.add(tf.mul(v, keep), tf.mul(this.#live[i], take)))
      );
    });
    return updates + 1;
  }

  /** The average as a `tensorsSnapshot`. */
  snapshot(): Uint8Array {
    return tensorsSnapshot(this.#shadows);
  }

  /** Puts the average into the model; returns the live weights and the average. */
  swapIn(): SwappedWeights {
    const live = weightSnapshot(this.#model);
    const average = this.snapshot();
    restoreSnapshot(this.#model, average);
    return { live, average };
  }

  /** Frees the average's variables. */
  dispose(): void {
    tf.dispose(this.#shadows);
  }
}
