/**
 * Training: {@linkcode trainModel} trains a CNN on packed uint8 images (the
 * `SplitData` that `prepareData` returns) with a hand-written batch loop,
 * and — given a run folder — keeps everything needed to use, audit and
 * resume the run (see ./run_files.ts for the folder's layout).
 *
 * A run goes through named stages:
 *
 * 1. **the config**: the options checked and completed with the project's
 *    defaults (`resolveConfig`, ./config.ts);
 * 2. **the run folder**: empty, or holding a checkpoint to resume with the
 *    same settings and data (`checkRunFolder`, ./resume.ts);
 * 3. **the session**: the model compiled with Adam, the loop state,
 *    new or restored from the checkpoint, and the weights' moving average
 *    when `ema` is on (./ema.ts);
 * 4. **the epochs**, each: the learning rate the schedule sets
 *    (./policies.ts); the training batches in a seeded shuffle, one step
 *    each (`createTrainStep`, ./step.ts: augmentation keyed by `(seed,
 *    epoch, batch)`, Dropout seeded from `(seed, epoch, batch, layer)`, Adam
 *    on the (class-weighted) cross-entropy, weight decay); validation
 *    (./evaluate_split.ts); the best weights (lowest validation loss);
 *    early stopping, reduce-on-plateau and the time budget (./policies.ts);
 *    then the best model, the checkpoint and the run files;
 * 5. **the end**: the best weights (or the average) put back, the model and
 *    the manifest written with the reason training stopped.
 *
 * Every random choice is a function of the seed and the position in the run,
 * and the checkpoint holds the full optimizer state (Adam's moments,
 * iteration count and β-powers), so a run resumed from its checkpoint takes
 * the same steps as one that was never interrupted.
 *
 * The optimizer is `NativeAdam` (Keras' Adam, ε = 1e-7, one fused
 * TensorFlow op per weight and step, about a tenth of tfjs's Adam's time on
 * the ResNet), with TensorFlow's fused kernels (`useNativeKernels`) for the
 * forward and backward passes; with `nativeKernels: false`, tfjs's own Adam
 * and kernels. Both hand out and take back their state in the same layout,
 * so a checkpoint of either resumes with the other.
 *
 * Progress goes to callbacks ({@linkcode TrainCallbacks}); ./progress.ts
 * makes them for a terminal and for a notebook. The pieces above are
 * re-exported here, so that this module stays the one import for training.
 *
 * @module
 */
import { basename } from "node:path";
import { deriveSeed, rng } from "../core/random.ts";
import { type LayersModel, tf } from "../core/tf.ts";
import { versions } from "../core/versions.ts";
import { type Architecture, buildModel } from "../model/models.ts";
import { useNativeKernels } from "../model/native_kernels.ts";
import { NativeAdam } from "../model/native_adam.ts";
import { saveModel, type TrainingSplit } from "../model/saved_model.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import {
  resolveConfig,
  type RunConfig,
  type RunConfigOptions,
} from "./config.ts";
import { type SwappedWeights, WeightAverage } from "./ema.ts";
import { evaluateSplit } from "./evaluate_split.ts";
import {
  afterEpoch,
  isImprovement,
  monitoredLoss,
  scheduledLearningRate,
} from "./policies.ts";
import {
  checkRunFolder,
  resumeFromCheckpoint,
  savedAverage,
} from "./resume.ts";
import {
  modelMetadata,
  RUN_CHECKPOINT_FILES,
  type RunInfo,
  type RunPaths,
  runPaths,
  writeRunFiles,
} from "./run_files.ts";
import { restoreSnapshot, weightSnapshot } from "./snapshot.ts";
import {
  bestRecord,
  type EpochRecord,
  initialState,
  type StopReason,
  type TrainState,
} from "./state.ts";
import { createTrainStep, setLearningRate, type TrainStep } from "./step.ts";

export {
  type CosineDecayOptions,
  type EarlyStoppingOptions,
  type EmaOptions,
  type ReduceLrOnPlateauOptions,
  resolveClassWeights,
  type RunConfig,
  type TrainSplit,
} from "./config.ts";
export {
  evaluateSplit,
  type EvaluateSplitOptions,
  type SplitMetrics,
} from "./evaluate_split.ts";
export { cosineLearningRate } from "./policies.ts";
export {
  datasetRecord,
  readRunManifest,
  RUN_FILES,
  type RunManifest,
  runPaths,
  updateRunManifest,
} from "./run_files.ts";
export type { EpochRecord, StopReason, TrainState } from "./state.ts";
export { batchTensor, crossEntropy, seedDropoutLayers } from "./step.ts";

type Optimizer = import("@tensorflow/tfjs-node").Optimizer;

/** What {@linkcode TrainCallbacks.onTrainBegin} gets. */
export interface TrainBeginInfo {
  /** Run name (the run folder's name), if any. */
  run?: string;
  /** The run's settings. */
  config: RunConfig;
  /** Epochs already done (non-zero when resuming). */
  startEpoch: number;
  /** Batches per epoch. */
  batchesPerEpoch: number;
  /** Training images. */
  trainImages: number;
  /** Validation images. */
  validationImages: number;
  /** History so far (when resuming). */
  history: EpochRecord[];
  /** Current learning rate. */
  learningRate: number;
}

/** What {@linkcode TrainCallbacks.onBatchEnd} gets. */
export interface BatchEndInfo {
  /** Epoch, 0-based. */
  epoch: number;
  /** Batch, 0-based. */
  batch: number;
  /** Batches in the epoch. */
  batches: number;
  /** Epochs in the run. */
  epochs: number;
  /** Mean loss over the epoch so far. */
  loss: number;
  /** Accuracy over the epoch so far. */
  acc: number;
  /** Images trained on this epoch so far. */
  seen: number;
  /** Seconds since the epoch began. */
  seconds: number;
  /** Training images per second this epoch. */
  imagesPerSecond: number;
}

/** What {@linkcode TrainCallbacks.onEpochEnd} gets. */
export interface EpochEndInfo {
  /** The epoch just finished. */
  record: EpochRecord;
  /** All epochs so far. */
  history: EpochRecord[];
  /** Epochs in the run. */
  epochs: number;
  /** Whether this epoch is the best so far. */
  improved: boolean;
  /** The best epoch so far. */
  best: EpochRecord;
  /** The learning rate for the next epoch (lower after a plateau). */
  nextLearningRate: number;
  /** Set when training stops after this epoch. */
  stopReason?: StopReason;
}

/** What {@linkcode TrainCallbacks.onTrainEnd} gets. */
export interface TrainEndInfo {
  /** All epochs. */
  history: EpochRecord[];
  /** The best epoch (undefined when none ran). */
  best?: EpochRecord;
  /** Why training stopped. */
  stopReason: StopReason;
  /** Training wall-clock seconds over all sessions of the run. */
  seconds: number;
}

/** Hooks called during training (any may be async). */
export interface TrainCallbacks {
  /** Before the first epoch of this session. */
  onTrainBegin?(info: TrainBeginInfo): void | Promise<void>;
  /** Before each epoch (0-based). */
  onEpochBegin?(epoch: number, epochs: number): void | Promise<void>;
  /** After each training batch. */
  onBatchEnd?(info: BatchEndInfo): void | Promise<void>;
  /** After each epoch (validation done, checkpoint written). */
  onEpochEnd?(info: EpochEndInfo): void | Promise<void>;
  /** After training (best weights restored, model saved). */
  onTrainEnd?(info: TrainEndInfo): void | Promise<void>;
  /** Messages (resuming, saving, warnings). */
  onLog?(message: string): void;
}

/**
 * Options for {@linkcode trainModel}: the data, the model and the recipe
 * (see `RunConfigOptions`, with the defaults from `DEFAULTS`), and where and
 * how the run is kept.
 */
export interface TrainOptions extends RunConfigOptions {
  /** Run folder; without one nothing is written. */
  runDir?: string;
  /**
   * Continue the run in `runDir` from its checkpoint. Without it, a run
   * folder holding a checkpoint is refused.
   */
  resume?: boolean;
  /** Dataset fingerprint, for the manifest and metadata (and resume checks). */
  datasetFingerprint?: string;
  /**
   * Anything else to record in the manifest (the dataset as
   * `datasetRecord` names it, split sizes...). No absolute paths: the
   * manifest travels with the model.
   */
  manifestExtra?: Record<string, unknown>;
  /**
   * The validation and test fractions the data was split with, recorded in
   * the saved model's metadata (`training.split`) so that evaluation can
   * re-derive the same splits (with `seed`); `validationTrained` marks a
   * refit, whose training data includes the validation split.
   */
  split?: TrainingSplit;
  /** Progress hooks. */
  callbacks?: TrainCallbacks | TrainCallbacks[];
  /** Stops after the current batch when aborted (the last checkpoint stays). */
  signal?: AbortSignal;
  /** Use TensorFlow's fused CPU kernels (`useNativeKernels`) and `NativeAdam` (default true). */
  nativeKernels?: boolean;
}

/** What {@linkcode trainModel} returns. */
export interface TrainResult {
  /**
   * The trained model (best weights when `restoreBestWeights`); yours to
   * dispose, which also frees its optimizer.
   */
  model: LayersModel;
  /** The optimizer (owned by the model). */
  optimizer: Optimizer;
  /** Every epoch of the run, including those before a resume. */
  history: EpochRecord[];
  /** The best epoch (lowest validation loss). */
  best?: EpochRecord;
  /** Why training stopped. */
  stopReason: StopReason;
  /** The run's settings. */
  config: RunConfig;
  /** Epochs done before this session (0 unless resumed). */
  resumedFrom: number;
  /** Training wall-clock seconds over all sessions. */
  seconds: number;
  /** The run folder, absolute, when there is one. */
  runDir?: string;
}

// ---------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------

/** The callbacks, called in turn. */
interface Hooks {
  call<K extends keyof TrainCallbacks>(
    name: K,
    ...args: Parameters<NonNullable<TrainCallbacks[K]>>
  ): Promise<void>;
  log(message: string): void;
}

function hooksOf(callbacks: TrainOptions["callbacks"]): Hooks {
  const list = callbacks === undefined
    ? []
    : Array.isArray(callbacks)
    ? callbacks
    : [callbacks];
  return {
    async call(name, ...args) {
      for (const c of list) {
        const f = c[name] as ((...a: unknown[]) => unknown) | undefined;
        if (f) await f.apply(c, args);
      }
    },
    log(message) {
      for (const c of list) c.onLog?.(message);
    },
  };
}

// ---------------------------------------------------------------------------
// The session: what every epoch works with
// ---------------------------------------------------------------------------

/** A training session: one call of {@linkcode trainModel}. */
interface Session {
  options: TrainOptions;
  config: RunConfig;
  hooks: Hooks;
  paths?: RunPaths;
  model: LayersModel;
  optimizer: Optimizer;
  step: TrainStep;
  /** The loop state (the checkpoint's), updated in place. */
  state: TrainState;
  /** The best epoch's weights, when one ran. */
  best?: Uint8Array;
  /** The weights' moving average, with `ema`. */
  average?: WeightAverage;
  /** Epochs done before this session. */
  resumedFrom: number;
  /** Batches per epoch. */
  batches: number;
  /** What the run files say (shares `state`). */
  info: RunInfo;
}

function buildRunModel(config: RunConfig): LayersModel {
  return buildModel(config.arch as Architecture, {
    inputSize: config.inputSize,
    channels: config.channels,
    numClasses: config.classes.length,
    seed: config.seed,
    ...config.modelOptions,
  });
}

/** Compiles `model` with `optimizer`, which the model then owns. */
function compileForTraining(model: LayersModel, optimizer: Optimizer): void {
  model.compile({
    optimizer,
    loss: "sparseCategoricalCrossentropy",
    metrics: ["accuracy"],
  });
  (model as unknown as { isOptimizerOwned: boolean }).isOptimizerOwned = true;
}

/** What {@linkcode openSession} starts from. */
interface SessionStart {
  options: TrainOptions;
  config: RunConfig;
  hooks: Hooks;
  paths?: RunPaths;
  model: LayersModel;
  optimizer: Optimizer;
  /** The saved state of the run to resume. */
  saved?: TrainState;
}

/**
 * The loop state, new or restored with the weights and the optimizer from
 * the run's checkpoint, and the session around it. The moving average is
 * made last, so that nothing can fail once it holds tensors.
 */
async function openSession(start: SessionStart): Promise<Session> {
  const { options, config, hooks, paths, model, optimizer, saved } = start;
  let state: TrainState;
  let best: Uint8Array | undefined;
  if (saved && paths) {
    ({ state, best } = await resumeFromCheckpoint({
      paths,
      model,
      optimizer,
      saved,
      epochs: config.epochs,
    }));
    hooks.log(
      `resuming ${paths.root} after epoch ${state.epochsCompleted} ` +
        `(learning rate ${state.learningRate})`,
    );
  } else {
    state = initialState({
      config,
      datasetFingerprint: options.datasetFingerprint ?? "",
      trainImages: options.train.labels.length,
      at: new Date().toISOString(),
    });
  }
  setLearningRate(optimizer, state.learningRate);
  const session: Session = {
    ...start,
    step: createTrainStep({ model, optimizer, config }),
    state,
    ...(best ? { best } : {}),
    resumedFrom: saved ? saved.epochsCompleted : 0,
    batches: Math.ceil(options.train.labels.length / config.batchSize),
    info: runInfo(options, config, state, model),
  };
  if (config.ema) {
    const initial = saved && paths ? await savedAverage(paths) : undefined;
    session.average = new WeightAverage(model, {
      decay: config.ema.decay,
      ...(initial ? { initial } : {}),
    });
  }
  return session;
}

function runInfo(
  options: TrainOptions,
  config: RunConfig,
  state: TrainState,
  model: LayersModel,
): RunInfo {
  const run = options.runDir ? basename(runPaths(options.runDir).root) : "";
  return {
    state,
    config,
    ...(run ? { run } : {}),
    fingerprint: options.datasetFingerprint ?? "",
    train: options.train,
    validation: options.validation,
    params: model.countParams(),
    versions: versions(),
    ...(options.manifestExtra ? { extra: options.manifestExtra } : {}),
    ...(options.split ? { split: options.split } : {}),
  };
}

/** Creates the run folder and its first files; tells the callbacks. */
async function beginRun(s: Session): Promise<void> {
  if (s.paths) {
    await Deno.mkdir(s.paths.root, { recursive: true });
    await writeRunFiles(s.paths, s.info, "running");
  }
  await s.hooks.call("onTrainBegin", {
    ...(s.info.run ? { run: s.info.run } : {}),
    config: s.state.config,
    startEpoch: s.state.epochsCompleted,
    batchesPerEpoch: s.batches,
    trainImages: s.options.train.labels.length,
    validationImages: s.options.validation.labels.length,
    history: [...s.state.history],
    learningRate: s.state.learningRate,
  });
}

// ---------------------------------------------------------------------------
// One epoch
// ---------------------------------------------------------------------------

/** Running sums of an epoch's training batches. */
interface EpochTotals {
  loss: number;
  correct: number;
  seen: number;
}

/** The order of the training images in epoch `epoch`: a seeded shuffle. */
function epochOrder(seed: number, epoch: number, n: number): Uint32Array {
  return new Uint32Array(
    rng(deriveSeed(seed, `shuffle/${epoch}`)).shuffle(
      Array.from({ length: n }, (_, i) => i),
    ),
  );
}

/**
 * The training batches of one epoch: a step each, the moving average after
 * it, progress to the callbacks. Undefined when aborted; throws when the
 * loss is no longer finite.
 */
async function trainEpoch(
  s: Session,
  epoch: number,
  t0: number,
): Promise<EpochTotals | undefined> {
  const { config, state, options } = s;
  const nTrain = options.train.labels.length;
  const order = epochOrder(config.seed, epoch, nTrain);
  const totals: EpochTotals = { loss: 0, correct: 0, seen: 0 };
  for (let b = 0; b < s.batches; b++) {
    if (options.signal?.aborted) return undefined;
    const indices = order.subarray(
      b * config.batchSize,
      Math.min(nTrain, (b + 1) * config.batchSize),
    );
    const { loss, correct } = await s.step({
      images: options.train,
      indices,
      epoch,
      batch: b,
      learningRate: state.learningRate,
    });
    if (s.average) state.emaUpdates = s.average.update(state.emaUpdates ?? 0);
    totals.loss += loss * indices.length;
    totals.correct += correct;
    totals.seen += indices.length;
    const seconds = (performance.now() - t0) / 1000;
    await s.hooks.call("onBatchEnd", {
      epoch,
      batch: b,
      batches: s.batches,
      epochs: config.epochs,
      loss: totals.loss / totals.seen,
      acc: totals.correct / totals.seen,
      seen: totals.seen,
      seconds,
      imagesPerSecond: totals.seen / seconds,
    });
    if (!Number.isFinite(loss)) {
      throw new Error(
        `trainModel: the loss became ${loss} at epoch ${epoch + 1}, ` +
          `batch ${b + 1} (learning rate ${state.learningRate} too high?)`,
      );
    }
  }
  return totals;
}

/** Validates the model as it is now and records the epoch. */
async function validateEpoch(
  s: Session,
  epoch: number,
  totals: EpochTotals,
  trainSeconds: number,
): Promise<EpochRecord> {
  const validation = s.options.validation;
  const val = validation.labels.length
    ? await evaluateSplit(s.model, validation, {
      size: s.config.inputSize,
      batchSize: s.config.evalBatchSize,
    })
    : undefined;
  return {
    epoch: epoch + 1,
    loss: totals.loss / totals.seen,
    acc: totals.correct / totals.seen,
    val_loss: val ? val.loss : null,
    val_acc: val ? val.acc : null,
    lr: s.state.learningRate,
    seconds: 0,
    trainSeconds,
    imagesPerSecond: totals.seen / trainSeconds,
  };
}

/** Keeps the model's weights when `record` is the best epoch so far. */
function keepIfBest(s: Session, record: EpochRecord): boolean {
  const monitored = monitoredLoss(record);
  const improved = isImprovement(s.state.best, monitored);
  if (improved) {
    s.state.best = { loss: monitored, epoch: record.epoch };
    s.best = weightSnapshot(s.model);
  }
  return improved;
}

/**
 * Early stopping, reduce-on-plateau and the time budget after an epoch
 * begun at `t0`; returns why the run stops, if it does.
 */
function applyPolicies(
  s: Session,
  record: EpochRecord,
  t0: number,
): StopReason | undefined {
  const { state, config } = s;
  const decision = afterEpoch(config, state, {
    monitored: monitoredLoss(record),
    epochSeconds: (performance.now() - t0) / 1000,
  });
  state.earlyStopping = decision.earlyStopping;
  state.plateau = decision.plateau;
  if (decision.learningRate !== state.learningRate) {
    const patience = config.reduceLrOnPlateau
      ? config.reduceLrOnPlateau.patience
      : 0;
    s.hooks.log(
      `epoch ${record.epoch}: validation loss has not improved for ` +
        `${patience} epochs; learning rate ${state.learningRate} → ${decision.learningRate}`,
    );
    state.learningRate = decision.learningRate;
    setLearningRate(s.optimizer, decision.learningRate);
  }
  state.stopReason = decision.stopReason ?? null;
  return decision.stopReason;
}

/**
 * Saves an epoch: the model when it is the best so far (the average, with
 * `ema`), then the live weights back, the epoch's seconds, the checkpoint
 * and the run files.
 */
async function saveEpoch(
  s: Session,
  epoch: {
    record: EpochRecord;
    improved: boolean;
    swap?: SwappedWeights;
    t0: number;
  },
): Promise<void> {
  const { paths, state } = s;
  if (paths && epoch.improved) {
    await saveModel({
      model: s.model,
      dir: paths.model,
      metadata: modelMetadata(s.info, new Date().toISOString()),
    });
  }
  // Training goes on from the live weights.
  if (epoch.swap) restoreSnapshot(s.model, epoch.swap.live);
  epoch.record.seconds = (performance.now() - epoch.t0) / 1000;
  state.seconds += epoch.record.seconds;
  if (!paths) return;
  await saveCheckpoint({
    dir: paths.checkpoint,
    model: s.model,
    optimizer: s.optimizer,
    state,
    extraFiles: {
      ...(s.best ? { [RUN_CHECKPOINT_FILES.best]: s.best } : {}),
      ...(epoch.swap ? { [RUN_CHECKPOINT_FILES.ema]: epoch.swap.average } : {}),
    },
  });
  await writeRunFiles(paths, s.info, "running");
}

/**
 * One epoch: the scheduled learning rate, the training batches, validation,
 * the best weights, the policies, then saving. False when aborted.
 */
async function runEpoch(s: Session, epoch: number): Promise<boolean> {
  const { config, state } = s;
  const scheduled = scheduledLearningRate(config, {
    epoch,
    seconds: state.seconds,
  });
  if (scheduled !== undefined) {
    state.learningRate = scheduled;
    setLearningRate(s.optimizer, scheduled);
  }
  await s.hooks.call("onEpochBegin", epoch, config.epochs);
  const t0 = performance.now();
  const totals = await trainEpoch(s, epoch, t0);
  if (!totals) return false;
  const trainSeconds = (performance.now() - t0) / 1000;
  // Validation, the best snapshot and the saved model use the average.
  const swap = s.average?.swapIn();
  const record = await validateEpoch(s, epoch, totals, trainSeconds);
  state.history.push(record);
  state.epochsCompleted = epoch + 1;
  const improved = keepIfBest(s, record);
  const stopReason = applyPolicies(s, record, t0);
  await saveEpoch(s, { record, improved, ...(swap ? { swap } : {}), t0 });
  await s.hooks.call("onEpochEnd", {
    record,
    history: [...state.history],
    epochs: config.epochs,
    improved,
    best: bestRecord(state)!,
    nextLearningRate: state.learningRate,
    ...(stopReason ? { stopReason } : {}),
  });
  return true;
}

/** The epochs up to the last or a stop; true when aborted. */
async function runEpochs(s: Session): Promise<boolean> {
  for (
    let epoch = s.state.epochsCompleted;
    epoch < s.config.epochs && s.state.stopReason === null;
    epoch++
  ) {
    if (!await runEpoch(s, epoch)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// The end
// ---------------------------------------------------------------------------

/**
 * Puts the best weights (or the average) into the model, writes the final
 * model and run files, tells the callbacks, and returns the result.
 */
async function finishRun(s: Session, aborted: boolean): Promise<TrainResult> {
  const { config, state, paths, model } = s;
  const stopReason: StopReason = aborted
    ? "aborted"
    : state.stopReason ?? "completed";
  const restoreBest = config.restoreBestWeights && s.best;
  if (restoreBest) restoreSnapshot(model, s.best!);
  else if (s.average) restoreSnapshot(model, s.average.snapshot());
  if (paths) {
    state.stopReason = stopReason;
    if (restoreBest) {
      await saveModel({
        model,
        dir: paths.model,
        metadata: modelMetadata(s.info, new Date().toISOString()),
      });
    }
    await writeRunFiles(paths, s.info, stopReason);
  }
  const best = bestRecord(state);
  await s.hooks.call("onTrainEnd", {
    history: [...state.history],
    ...(best ? { best } : {}),
    stopReason,
    seconds: state.seconds,
  });
  return {
    model,
    optimizer: s.optimizer,
    history: state.history,
    ...(best ? { best } : {}),
    stopReason,
    config: state.config,
    resumedFrom: s.resumedFrom,
    seconds: state.seconds,
    ...(paths ? { runDir: paths.root } : {}),
  };
}

/**
 * Trains a model (see the module documentation for the stages of a run and
 * ./run_files.ts for what lands in the run folder). Throws before training
 * if the options are invalid, if `runDir` holds a checkpoint and `resume`
 * is not set, or if a resumed run's settings or data differ from the saved
 * ones.
 *
 * @example Needs a dataset on disk, so it is not run by `deno test --doc`.
 * ```ts ignore
 * import { prepareData } from "../data/prepare.ts";
 * import { trainModel } from "./train.ts";
 * import { terminalProgress } from "./progress.ts";
 * const data = await prepareData({ size: 64 });
 * const result = await trainModel({
 *   train: data.train, validation: data.validation, classes: data.classes,
 *   size: 64, arch: "seedCnn", epochs: 5, runDir: "models/demo",
 *   datasetFingerprint: data.fingerprint, callbacks: terminalProgress(),
 * });
 * console.log(result.best);
 * result.model.dispose();
 * ```
 */
export async function trainModel(options: TrainOptions): Promise<TrainResult> {
  const config = resolveConfig(options);
  const hooks = hooksOf(options.callbacks);
  const paths = options.runDir ? runPaths(options.runDir) : undefined;
  const saved = paths
    ? await checkRunFolder({
      paths,
      resume: options.resume ?? false,
      config,
      fingerprint: options.datasetFingerprint ?? "",
      trainImages: options.train.labels.length,
    })
    : undefined;
  const native = options.nativeKernels ?? true;
  if (native) useNativeKernels();
  const ownModel = !options.model;
  const model = options.model ?? buildRunModel(config);
  const optimizer = native
    ? new NativeAdam({ learningRate: config.learningRate, epsilon: 1e-7 })
    : tf.train.adam(config.learningRate, 0.9, 0.999, 1e-7);
  let session: Session | undefined;
  try {
    compileForTraining(model, optimizer);
    session = await openSession({
      options,
      config,
      hooks,
      ...(paths ? { paths } : {}),
      model,
      optimizer,
      ...(saved ? { saved } : {}),
    });
    await beginRun(session);
    const aborted = await runEpochs(session);
    return await finishRun(session, aborted);
  } catch (error) {
    if (ownModel) model.dispose();
    else optimizer.dispose();
    throw error;
  } finally {
    session?.average?.dispose();
  }
}
