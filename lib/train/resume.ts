/**
 * Resuming a run: {@linkcode checkRunFolder} decides whether a run folder
 * may be trained into (empty, or holding a checkpoint to resume with the
 * same settings and data), and {@linkcode resumeFromCheckpoint} puts the
 * checkpoint back into a model and its optimizer.
 *
 * A run is refused when its folder already holds a run and `resume` is not
 * set, when it holds something else, or, when resuming, if the settings
 * ("cannot resume …: the settings differ"), the dataset or the number of
 * training images differ from the saved ones. Only `epochs` may change, so
 * that a finished run can be extended. The saved state is checked before it
 * is used ({@linkcode trainStateProblems}): a `state.json` whose counts are
 * not counts, say, is refused naming the file, not half-used.
 *
 * @example A new run in a fresh folder has nothing to resume
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveConfig } from "./config.ts";
 * import { checkRunFolder } from "./resume.ts";
 * import { runPaths } from "./run_files.ts";
 *
 * const images = { pixels: new Uint8Array(2 * 4), labels: new Int32Array([0, 1]) };
 * const config = resolveConfig({ train: images, validation: images, classes: ["a", "b"], size: 2 });
 * const dir = await Deno.makeTempDir();
 * const saved = await checkRunFolder({
 *   paths: runPaths(`${dir}/run`), resume: false, config, fingerprint: "", trainImages: 2,
 * });
 * assert.equal(saved, undefined);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */
import { readdirSync } from "node:fs";
import { isRecord, shownValue } from "../core/text.ts";
import type { LayersModel } from "../core/tf.ts";
import {
  hasCheckpoint,
  loadCheckpoint,
  readCheckpointFile,
  readCheckpointState,
} from "./checkpoint.ts";
import { configDifferences, type RunConfig } from "./config.ts";
import { RUN_CHECKPOINT_FILES, type RunPaths } from "./run_files.ts";
import { resumedState, type TrainState } from "./state.ts";

type Optimizer = import("@tensorflow/tfjs-node").Optimizer;

/** A test of a value and what it should have been, for messages. */
type Expect = [test: (value: unknown) => boolean, expected: string];

const isFiniteNumber = (v: unknown): v is number =>
  typeof v === "number" && Number.isFinite(v);
const COUNT: Expect = [
  (v) => Number.isSafeInteger(v) && (v as number) >= 0,
  "a non-negative integer",
];
const POSITIVE_COUNT: Expect = [
  (v) => Number.isSafeInteger(v) && (v as number) > 0,
  "a positive integer",
];
const NON_NEGATIVE: Expect = [
  (v) => isFiniteNumber(v) && v >= 0,
  "a non-negative number",
];
const NUMBER_OR_NULL: Expect = [
  (v) => v === null || isFiniteNumber(v),
  "a number or null",
];
const TEXT: Expect = [(v) => typeof v === "string", "a string"];
const STOP_REASONS = ["completed", "early-stopping", "time-budget", "aborted"];

/** A value as it may appear in a message: JSON, at most 40 characters. */
function shown(value: unknown): string {
  return shownValue(value, 40);
}

/** The fields of `value` (called `name`) that fail their expectation. */
function fieldProblems(
  name: string,
  value: unknown,
  fields: Record<string, Expect>,
): string[] {
  if (!isRecord(value)) return [`${name} is ${shown(value)}, not an object`];
  return Object.entries(fields).flatMap(([key, [test, expected]]) =>
    test(value[key])
      ? []
      : [`${name}.${key} is ${shown(value[key])}, expected ${expected}`]
  );
}

/** Problems of the saved history: one record per epoch, numbers in each. */
function historyProblems(history: unknown, epochs: number): string[] {
  if (!Array.isArray(history)) {
    return [`history is ${shown(history)}, not a list`];
  }
  const record: Record<string, Expect> = {
    epoch: [
      (v) => POSITIVE_COUNT[0](v) && (v as number) <= epochs,
      `a positive integer of at most epochsCompleted (${epochs})`,
    ],
  };
  for (
    const key of [
      "loss",
      "acc",
      "val_loss",
      "val_acc",
      "lr",
      "seconds",
      "trainSeconds",
      "imagesPerSecond",
    ]
  ) record[key] = NUMBER_OR_NULL;
  return history.flatMap((r, i) => fieldProblems(`history[${i}]`, r, record));
}

/** Problems of the saved settings, as far as messages and resuming use them. */
function configProblems(config: unknown): string[] {
  return fieldProblems("config", config, {
    arch: TEXT,
    inputSize: POSITIVE_COUNT,
    epochs: POSITIVE_COUNT,
  });
}

/**
 * The problems of a saved training state, one sentence each (none: it can be
 * resumed): the counts are non-negative integers, the numbers finite, the
 * best epoch one that was completed, the stop reason one of the known ones.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { trainStateProblems } from "./resume.ts";
 * import { resolveConfig } from "./config.ts";
 * import { initialState } from "./state.ts";
 * const images = { pixels: new Uint8Array(2 * 4), labels: new Int32Array([0, 1]) };
 * const config = resolveConfig({ train: images, validation: images, classes: ["a", "b"], size: 2 });
 * const state = initialState({ config, datasetFingerprint: "", trainImages: 2, at: "now" });
 * assert.deepEqual(trainStateProblems(state), []);
 * assert.deepEqual(trainStateProblems({ ...state, epochsCompleted: -1 }), [
 *   "epochsCompleted is -1, expected a non-negative integer",
 * ]);
 * assert.deepEqual(trainStateProblems(null), ["the state is null, not an object"]);
 * ```
 */
export function trainStateProblems(state: unknown): string[] {
  const top = fieldProblems("the state", state, {
    datasetFingerprint: TEXT,
    trainImages: COUNT,
    epochsCompleted: COUNT,
    learningRate: NON_NEGATIVE,
    seconds: NON_NEGATIVE,
    startedAt: TEXT,
    stopReason: [
      (v) => v === null || STOP_REASONS.includes(v as string),
      `null or one of ${STOP_REASONS.join(", ")}`,
    ],
    emaUpdates: [(v) => v === undefined || COUNT[0](v), COUNT[1]],
  }).map((p) => p.replace(/^the state\./, ""));
  if (!isRecord(state)) return top;
  const epochs = COUNT[0](state.epochsCompleted) ? state.epochsCompleted : 0;
  return [
    ...top,
    ...configProblems(state.config),
    ...historyProblems(state.history, epochs as number),
    ...fieldProblems("best", state.best, {
      loss: NUMBER_OR_NULL,
      epoch: [
        (v) => COUNT[0](v) && (v as number) <= (epochs as number),
        "a completed epoch",
      ],
    }),
    ...["earlyStopping", "plateau"].flatMap((key) =>
      fieldProblems(key, state[key], { best: NUMBER_OR_NULL, wait: COUNT })
    ),
    ...(Array.isArray(state.resumes) ? state.resumes : [null]).flatMap((r, i) =>
      fieldProblems(`resumes[${i}]`, r, { epochsCompleted: COUNT, at: TEXT })
    ),
  ];
}

/**
 * The training state saved in a run's checkpoint, checked by
 * {@linkcode trainStateProblems} (a state with problems is refused, naming
 * the checkpoint's `state.json`).
 *
 * @example Needs a checkpointed run folder, so it is not run by `deno test --doc`.
 * ```ts ignore
 * import { readTrainState } from "./resume.ts";
 * const state = await readTrainState("models/run/checkpoint");
 * console.log(state.epochsCompleted);
 * ```
 */
export function readTrainState(checkpoint: string): Promise<TrainState> {
  return readCheckpointState<TrainState>(checkpoint, {
    check: trainStateProblems,
  });
}

function isNonEmptyDir(path: string): boolean {
  try {
    return readdirSync(path).length > 0;
  } catch {
    return false;
  }
}

/** Options for {@linkcode checkRunFolder}. */
export interface CheckRunFolderOptions {
  /** The run folder. */
  paths: RunPaths;
  /** Whether the caller wants to continue a run found there. */
  resume: boolean;
  /** The settings of the new session. */
  config: RunConfig;
  /** The dataset's fingerprint ("" when unknown). */
  fingerprint: string;
  /** Training images of the new session. */
  trainImages: number;
}

/** Throws when the saved run and the new session do not match. */
function checkResumable(
  saved: TrainState,
  options: CheckRunFolderOptions,
): void {
  const { paths, fingerprint } = options;
  const diffs = configDifferences(saved.config, options.config);
  if (diffs.length) {
    throw new Error(
      `cannot resume ${paths.root}: the settings differ (${
        diffs.join("; ")
      }). To continue that run, use its settings again; to train the new ` +
        `settings, give the run another folder (--out for deno task train, ` +
        `RUN or BRAIN_MRI_RUN in the notebooks, whose default name follows ` +
        `the settings) or delete ${paths.root}`,
    );
  }
  if (saved.datasetFingerprint !== fingerprint) {
    throw new Error(
      `cannot resume ${paths.root}: the dataset differs (fingerprint ` +
        `${saved.datasetFingerprint.slice(0, 12) || "none"} in the run, ` +
        `${fingerprint.slice(0, 12) || "none"} now)`,
    );
  }
  if (saved.trainImages !== options.trainImages) {
    throw new Error(
      `cannot resume ${paths.root}: ${saved.trainImages} training images ` +
        `in the run, ${options.trainImages} now`,
    );
  }
}

/**
 * Checks that a run may be trained into `paths.root` (see the module
 * documentation) and returns the saved loop state when it resumes a run,
 * undefined for a new one. Reads no tensors.
 */
export async function checkRunFolder(
  options: CheckRunFolderOptions,
): Promise<TrainState | undefined> {
  const { paths } = options;
  if (await hasCheckpoint(paths.checkpoint)) {
    const saved = await readTrainState(paths.checkpoint);
    if (!options.resume) {
      throw new Error(
        `${paths.root} already holds a training run (checkpoint after ` +
          `epoch ${saved.epochsCompleted} of ${saved.config.epochs}); ` +
          "resume it or choose another run folder",
      );
    }
    checkResumable(saved, options);
    return saved;
  }
  if (isNonEmptyDir(paths.root) && !options.resume) {
    throw new Error(
      `${paths.root} exists and is not empty (but holds no checkpoint to ` +
        "resume); choose another run folder or remove it",
    );
  }
  return undefined;
}

/** Options for {@linkcode resumeFromCheckpoint}. */
export interface ResumeFromCheckpointOptions {
  /** The run folder. */
  paths: RunPaths;
  /** The model to restore (same architecture as the run's). */
  model: LayersModel;
  /** A fresh optimizer of the run's kind, to restore. */
  optimizer: Optimizer;
  /** The saved state ({@linkcode checkRunFolder}'s answer). */
  saved: TrainState;
  /** Epochs of the new session (may extend the run). */
  epochs: number;
}

/** A run put back as it was after its last completed epoch. */
export interface ResumedRun {
  /** The loop state to continue from (see `resumedState`). */
  state: TrainState;
  /** The best epoch's weights, as saved. */
  best?: Uint8Array;
}

/**
 * Restores the run's model weights and optimizer state from its checkpoint
 * and returns the state to continue from and the best weights so far.
 *
 * @example Needs a checkpointed run folder, so it is not run by `deno test --doc`.
 * ```ts ignore
 * import { resumeFromCheckpoint } from "./resume.ts";
 * const { state, best } = await resumeFromCheckpoint({ paths, model, optimizer, saved, epochs: 20 });
 * ```
 */
export async function resumeFromCheckpoint(
  options: ResumeFromCheckpointOptions,
): Promise<ResumedRun> {
  const { paths, model, optimizer } = options;
  await loadCheckpoint<TrainState>({
    dir: paths.checkpoint,
    model,
    optimizer,
    check: trainStateProblems,
  });
  const best = await readCheckpointFile(
    paths.checkpoint,
    RUN_CHECKPOINT_FILES.best,
  );
  const state = resumedState(options.saved, {
    epochs: options.epochs,
    at: new Date().toISOString(),
  });
  return { state, ...(best ? { best } : {}) };
}

/**
 * The weights' moving average saved in a run's checkpoint; throws when the
 * checkpoint has none (a run without `ema` cannot be resumed with it).
 *
 * @example Needs a checkpointed run folder, so it is not run by `deno test --doc`.
 * ```ts ignore
 * import { savedAverage } from "./resume.ts";
 * const initial = await savedAverage(paths);
 * ```
 */
export async function savedAverage(paths: RunPaths): Promise<Uint8Array> {
  const saved = await readCheckpointFile(
    paths.checkpoint,
    RUN_CHECKPOINT_FILES.ema,
  );
  if (!saved) {
    throw new Error(
      `cannot resume ${paths.root}: its checkpoint has no ` +
        `${RUN_CHECKPOINT_FILES.ema} (the weights' moving average)`,
    );
  }
  return saved;
}
