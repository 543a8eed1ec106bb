/**
 * The rules that steer a run between epochs, as small pure functions of the
 * epoch history (no TensorFlow): which loss is watched, whether an epoch is
 * the best so far, early stopping ("should we stop?"), reduce-on-plateau and
 * the cosine decay ("what is the next learning rate?"), and the time budget
 * ("is there time for one more epoch?"). {@linkcode afterEpoch} applies them
 * all in the order `trainModel` does.
 *
 * The counters they carry ({@linkcode PatienceState}) are part of the
 * checkpoint, so a resumed run takes the same decisions as one that was
 * never interrupted.
 *
 * @example Three epochs without a better loss stop a run with patience 3
 * ```ts
 * import assert from "node:assert/strict";
 * import { earlyStopping } from "./policies.ts";
 *
 * const options = { patience: 3, minDelta: 0 };
 * let state = { best: null as number | null, wait: 0 };
 * const stops = [1.0, 1.2, 1.1, 1.05].map((loss) => {
 *   const next = earlyStopping(state, loss, options);
 *   state = next.state;
 *   return next.stop;
 * });
 * assert.deepEqual(stops, [false, false, false, true]);
 * ```
 *
 * @module
 */
import type {
  EarlyStoppingOptions,
  ReduceLrOnPlateauOptions,
  RunConfig,
} from "./config.ts";
import type {
  EpochRecord,
  PatienceState,
  StopReason,
  TrainState,
} from "./state.ts";

/**
 * The loss the policies watch: the validation loss, or the training loss of
 * a run without a validation split.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { monitoredLoss } from "./policies.ts";
 * assert.equal(monitoredLoss({ loss: 0.8, val_loss: 0.9 }), 0.9);
 * assert.equal(monitoredLoss({ loss: 0.8, val_loss: null }), 0.8);
 * ```
 */
export function monitoredLoss(
  record: Pick<EpochRecord, "loss" | "val_loss">,
): number {
  return record.val_loss ?? record.loss;
}

/**
 * Whether `monitored` beats the best loss so far (any loss beats none).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isImprovement } from "./policies.ts";
 * assert.equal(isImprovement({ loss: null }, 5), true);
 * assert.equal(isImprovement({ loss: 0.5 }, 0.5), false);
 * assert.equal(isImprovement({ loss: 0.5 }, 0.4), true);
 * ```
 */
export function isImprovement(
  best: { loss: number | null },
  monitored: number,
): boolean {
  return best.loss === null || monitored < best.loss;
}

/**
 * Early stopping after one epoch: an improvement by more than `minDelta`
 * resets the wait; otherwise the wait grows, and the run stops once it
 * reaches `patience`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { earlyStopping } from "./policies.ts";
 * const options = { patience: 2, minDelta: 0.1 };
 * // 0.95 is better than 1.0, but not by more than 0.1: no improvement.
 * assert.deepEqual(earlyStopping({ best: 1, wait: 1 }, 0.95, options), {
 *   state: { best: 1, wait: 2 },
 *   stop: true,
 * });
 * ```
 */
export function earlyStopping(
  state: PatienceState,
  monitored: number,
  options: Required<EarlyStoppingOptions>,
): { state: PatienceState; stop: boolean } {
  if (state.best === null || monitored < state.best - options.minDelta) {
    return { state: { best: monitored, wait: 0 }, stop: false };
  }
  const next = { best: state.best, wait: state.wait + 1 };
  return { state: next, stop: next.wait >= options.patience };
}

/**
 * Reduce-on-plateau after one epoch: after `patience` epochs without an
 * improvement by more than `minDelta`, the learning rate is multiplied by
 * `factor` (not below `minLr`) and the wait starts over.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reduceOnPlateau } from "./policies.ts";
 * const options = { patience: 2, factor: 0.5, minLr: 1e-5, minDelta: 0 };
 * assert.deepEqual(reduceOnPlateau({ best: 1, wait: 1 }, 1.2, 1e-3, options), {
 *   state: { best: 1, wait: 0 },
 *   learningRate: 5e-4,
 * });
 * // At the floor the rate stays.
 * assert.equal(reduceOnPlateau({ best: 1, wait: 1 }, 1.2, 1e-5, options).learningRate, 1e-5);
 * ```
 */
export function reduceOnPlateau(
  state: PatienceState,
  monitored: number,
  learningRate: number,
  options: Required<ReduceLrOnPlateauOptions>,
): { state: PatienceState; learningRate: number } {
  if (state.best === null || monitored < state.best - options.minDelta) {
    return { state: { best: monitored, wait: 0 }, learningRate };
  }
  if (state.wait + 1 < options.patience) {
    return { state: { best: state.best, wait: state.wait + 1 }, learningRate };
  }
  const next = learningRate > options.minLr
    ? Math.max(learningRate * options.factor, options.minLr)
    : learningRate;
  return { state: { best: state.best, wait: 0 }, learningRate: next };
}

/**
 * The learning rate of a cosine decay at the start of epoch `epoch`
 * (0-based) of `epochs`: `minLr + (lr - minLr) · (1 + cos(π · epoch / epochs)) / 2`.
 * Any unit works: for a decay over a time budget, `epoch` is the seconds
 * spent and `epochs` the budget's seconds (past the end it stays at `minLr`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cosineLearningRate } from "./policies.ts";
 * assert.equal(cosineLearningRate({ learningRate: 1e-3, minLr: 0, epoch: 0, epochs: 10 }), 1e-3);
 * assert.ok(Math.abs(cosineLearningRate({ learningRate: 1e-3, minLr: 0, epoch: 5, epochs: 10 }) - 5e-4) < 1e-15);
 * assert.equal(cosineLearningRate({ learningRate: 1e-3, minLr: 1e-5, epoch: 20, epochs: 10 }), 1e-5);
 * ```
 */
export function cosineLearningRate(
  options: {
    learningRate: number;
    minLr: number;
    epoch: number;
    epochs: number;
  },
): number {
  const { learningRate, minLr, epoch, epochs } = options;
  const t = Math.min(1, Math.max(0, epoch / epochs));
  return minLr + (learningRate - minLr) * 0.5 * (1 + Math.cos(Math.PI * t));
}

/**
 * The learning rate a schedule sets at the start of epoch `epoch` (0-based),
 * or undefined when the rate is not scheduled (no cosine decay: it stays,
 * or reduce-on-plateau changes it). A decay over time follows `seconds`,
 * the training seconds spent before the epoch.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scheduledLearningRate } from "./policies.ts";
 * const config = { learningRate: 1e-3, epochs: 4, maxSeconds: 100 };
 * const overTime = { ...config, cosineDecay: { minLr: 0, over: "time" as const } };
 * assert.equal(scheduledLearningRate(overTime, { epoch: 3, seconds: 50 }), 5e-4);
 * assert.equal(scheduledLearningRate({ ...config, cosineDecay: false }, { epoch: 3, seconds: 50 }), undefined);
 * ```
 */
export function scheduledLearningRate(
  config: Pick<
    RunConfig,
    "cosineDecay" | "learningRate" | "epochs" | "maxSeconds"
  >,
  at: { epoch: number; seconds: number },
): number | undefined {
  if (!config.cosineDecay) return undefined;
  const byTime = config.cosineDecay.over === "time";
  return cosineLearningRate({
    learningRate: config.learningRate,
    minLr: config.cosineDecay.minLr,
    epoch: byTime ? at.seconds : at.epoch,
    epochs: byTime ? config.maxSeconds! : config.epochs,
  });
}

/**
 * Whether the time budget is spent: true when one more epoch as long as the
 * one just run (`epochSeconds`) would take the run (`seconds` before that
 * epoch) past `maxSeconds`. Never with no budget.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { timeBudgetSpent } from "./policies.ts";
 * assert.equal(timeBudgetSpent({ seconds: 50, epochSeconds: 20, maxSeconds: 100 }), false);
 * assert.equal(timeBudgetSpent({ seconds: 70, epochSeconds: 20, maxSeconds: 100 }), true);
 * assert.equal(timeBudgetSpent({ seconds: 70, epochSeconds: 20, maxSeconds: null }), false);
 * ```
 */
export function timeBudgetSpent(
  options: { seconds: number; epochSeconds: number; maxSeconds: number | null },
): boolean {
  return options.maxSeconds !== null &&
    options.seconds + 2 * options.epochSeconds > options.maxSeconds;
}

/** What {@linkcode afterEpoch} decides. */
export interface EpochDecision {
  /** Early stopping's counters after the epoch. */
  earlyStopping: PatienceState;
  /** Reduce-on-plateau's counters after the epoch. */
  plateau: PatienceState;
  /** The learning rate of the next epoch. */
  learningRate: number;
  /** Set when the run stops after this epoch. */
  stopReason?: StopReason;
}

/**
 * Applies the policies after a finished epoch, in order: early stopping,
 * reduce-on-plateau, then the stop reason (early stopping first, then the
 * last epoch, then the time budget).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { afterEpoch } from "./policies.ts";
 * const config = {
 *   epochs: 10, maxSeconds: null,
 *   earlyStopping: { patience: 1, minDelta: 0 },
 *   reduceLrOnPlateau: { patience: 1, factor: 0.5, minLr: 0, minDelta: 0 },
 * };
 * const state = {
 *   epochsCompleted: 2, learningRate: 1e-3, seconds: 10,
 *   earlyStopping: { best: 0.5, wait: 0 }, plateau: { best: 0.5, wait: 0 },
 * };
 * assert.deepEqual(afterEpoch(config, state, { monitored: 0.6, epochSeconds: 5 }), {
 *   earlyStopping: { best: 0.5, wait: 1 },
 *   plateau: { best: 0.5, wait: 0 },
 *   learningRate: 5e-4,
 *   stopReason: "early-stopping",
 * });
 * ```
 */
export function afterEpoch(
  config: Pick<
    RunConfig,
    "earlyStopping" | "reduceLrOnPlateau" | "epochs" | "maxSeconds"
  >,
  state: Pick<
    TrainState,
    | "earlyStopping"
    | "plateau"
    | "learningRate"
    | "epochsCompleted"
    | "seconds"
  >,
  epoch: { monitored: number; epochSeconds: number },
): EpochDecision {
  const decision: EpochDecision = {
    earlyStopping: state.earlyStopping,
    plateau: state.plateau,
    learningRate: state.learningRate,
  };
  if (config.earlyStopping) {
    const es = earlyStopping(
      state.earlyStopping,
      epoch.monitored,
      config.earlyStopping,
    );
    decision.earlyStopping = es.state;
    if (es.stop) decision.stopReason = "early-stopping";
  }
  if (config.reduceLrOnPlateau) {
    const rp = reduceOnPlateau(
      state.plateau,
      epoch.monitored,
      state.learningRate,
      config.reduceLrOnPlateau,
    );
    decision.plateau = rp.state;
    decision.learningRate = rp.learningRate;
  }
  if (!decision.stopReason && state.epochsCompleted >= config.epochs) {
    decision.stopReason = "completed";
  }
  if (
    !decision.stopReason &&
    timeBudgetSpent({
      seconds: state.seconds,
      epochSeconds: epoch.epochSeconds,
      maxSeconds: config.maxSeconds,
    })
  ) {
    decision.stopReason = "time-budget";
  }
  return decision;
}
