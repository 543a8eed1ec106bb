/**
 * The training loop's state, as a checkpoint keeps it: the epochs done and
 * their numbers, the learning rate, the best epoch, the counters of early
 * stopping and reduce-on-plateau. {@linkcode initialState} starts a run;
 * {@linkcode resumedState} continues one from its checkpoint.
 *
 * @example A run stopped at its epoch limit goes on when given more epochs
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveConfig } from "./config.ts";
 * import { initialState, resumedState } from "./state.ts";
 *
 * const images = { pixels: new Uint8Array(2 * 4), labels: new Int32Array([0, 1]) };
 * const config = resolveConfig({ train: images, validation: images, classes: ["a", "b"], size: 2, epochs: 3 });
 * const done = {
 *   ...initialState({ config, datasetFingerprint: "fp", trainImages: 2, at: "t0" }),
 *   epochsCompleted: 3,
 *   stopReason: "completed" as const,
 * };
 * const resumed = resumedState(done, { epochs: 5, at: "t1" });
 * assert.equal(resumed.stopReason, null);
 * assert.equal(resumed.config.epochs, 5);
 * assert.deepEqual(resumed.resumes, [{ epochsCompleted: 3, at: "t1" }]);
 * ```
 *
 * @module
 */
import type { RunConfig } from "./config.ts";

/** One epoch's numbers (as in `history.json`). */
export interface EpochRecord {
  /** Epoch number, 1-based. */
  epoch: number;
  /** Mean training loss over the epoch (class-weighted when weights are set). */
  loss: number;
  /** Training accuracy over the epoch. */
  acc: number;
  /** Validation loss (unweighted), null without a validation split. */
  val_loss: number | null;
  /** Validation accuracy, null without a validation split. */
  val_acc: number | null;
  /** Learning rate used during the epoch. */
  lr: number;
  /** Wall-clock seconds of the epoch (training + validation + saving). */
  seconds: number;
  /** Seconds of the training batches alone. */
  trainSeconds: number;
  /** Training images per second. */
  imagesPerSecond: number;
}

/** Why training stopped. */
export type StopReason =
  | "completed"
  | "early-stopping"
  | "time-budget"
  | "aborted";

/** The best monitored loss a patience counter has seen and the epochs since. */
export interface PatienceState {
  /** Lowest monitored loss so far (null before the first epoch). */
  best: number | null;
  /** Epochs since it last improved. */
  wait: number;
}

/** The loop state kept in the checkpoint. */
export interface TrainState {
  /** Settings the run started with. */
  config: RunConfig;
  /** Dataset fingerprint the run started with. */
  datasetFingerprint: string;
  /** Training images the run started with. */
  trainImages: number;
  /** Epochs completed. */
  epochsCompleted: number;
  /** All epochs so far. */
  history: EpochRecord[];
  /** Learning rate for the next epoch. */
  learningRate: number;
  /** Best monitored loss so far and its epoch (1-based; 0 for none). */
  best: { loss: number | null; epoch: number };
  /** Early stopping's best and wait. */
  earlyStopping: PatienceState;
  /** Reduce-on-plateau's best and wait. */
  plateau: PatienceState;
  /** Set once the run has stopped. */
  stopReason: StopReason | null;
  /** Batches averaged into the weights' moving average (with `ema`). */
  emaUpdates?: number;
  /** Training wall-clock seconds so far. */
  seconds: number;
  /** When the run started. */
  startedAt: string;
  /** Each resume: epochs done at the time and when. */
  resumes: { epochsCompleted: number; at: string }[];
}

/** Options for {@linkcode initialState}. */
export interface InitialStateOptions {
  /** The run's settings. */
  config: RunConfig;
  /** Fingerprint of the dataset it trains on ("" when unknown). */
  datasetFingerprint: string;
  /** Training images. */
  trainImages: number;
  /** When the run starts (ISO time). */
  at: string;
}

/**
 * The state of a new run: nothing done yet, the initial learning rate.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveConfig } from "./config.ts";
 * import { initialState } from "./state.ts";
 * const images = { pixels: new Uint8Array(2 * 4), labels: new Int32Array([0, 1]) };
 * const config = resolveConfig({ train: images, validation: images, classes: ["a", "b"], size: 2 });
 * const state = initialState({ config, datasetFingerprint: "", trainImages: 2, at: "t0" });
 * assert.equal(state.learningRate, config.learningRate);
 * assert.deepEqual(state.best, { loss: null, epoch: 0 });
 * ```
 */
export function initialState(options: InitialStateOptions): TrainState {
  return {
    config: options.config,
    datasetFingerprint: options.datasetFingerprint,
    trainImages: options.trainImages,
    epochsCompleted: 0,
    history: [],
    learningRate: options.config.learningRate,
    best: { loss: null, epoch: 0 },
    earlyStopping: { best: null, wait: 0 },
    plateau: { best: null, wait: 0 },
    stopReason: null,
    seconds: 0,
    startedAt: options.at,
    resumes: [],
  };
}

/**
 * The state a run continues from after its checkpoint `saved`: `epochs` may
 * be raised, the resume is recorded, and a run that was aborted, or stopped
 * at an epoch limit now raised, may go on (early stopping and a spent time
 * budget still hold).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveConfig } from "./config.ts";
 * import { initialState, resumedState } from "./state.ts";
 * const images = { pixels: new Uint8Array(2 * 4), labels: new Int32Array([0, 1]) };
 * const config = resolveConfig({ train: images, validation: images, classes: ["a", "b"], size: 2 });
 * const stopped = {
 *   ...initialState({ config, datasetFingerprint: "", trainImages: 2, at: "t0" }),
 *   epochsCompleted: 4,
 *   stopReason: "early-stopping" as const,
 * };
 * assert.equal(resumedState(stopped, { epochs: 20, at: "t1" }).stopReason, "early-stopping");
 * ```
 */
export function resumedState(
  saved: TrainState,
  options: { epochs: number; at: string },
): TrainState {
  const state: TrainState = {
    ...saved,
    config: { ...saved.config, epochs: options.epochs },
  };
  state.resumes = [...state.resumes, {
    epochsCompleted: state.epochsCompleted,
    at: options.at,
  }];
  // A run stopped at its epoch limit may be extended.
  if (
    state.stopReason === "completed" &&
    state.epochsCompleted < options.epochs
  ) {
    state.stopReason = null;
  }
  if (state.stopReason === "aborted") state.stopReason = null;
  return state;
}

/**
 * The record of the state's best epoch, if any ran.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bestRecord } from "./state.ts";
 * const record = { epoch: 2, loss: 1, acc: 0.5, val_loss: 0.9, val_acc: 0.6, lr: 1e-3, seconds: 1, trainSeconds: 1, imagesPerSecond: 9 };
 * assert.equal(bestRecord({ history: [record], best: { loss: 0.9, epoch: 2 } }), record);
 * assert.equal(bestRecord({ history: [record], best: { loss: null, epoch: 0 } }), undefined);
 * ```
 */
export function bestRecord(
  state: Pick<TrainState, "history" | "best">,
): EpochRecord | undefined {
  return state.history.find((r) => r.epoch === state.best.epoch);
}
