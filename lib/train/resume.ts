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
 * that a finished run can be extended.
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
    const saved = await readCheckpointState<TrainState>(paths.checkpoint);
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
  await loadCheckpoint<TrainState>({ dir: paths.checkpoint, model, optimizer });
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
