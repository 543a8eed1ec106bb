/**
 * Stage 3 of the pipeline: training.
 *
 * `trainModel` (checkpoints and resume, early stopping, learning-rate
 * schedules, weight averaging), live progress in a terminal or a notebook, and
 * `deno task train`. Imports `core/`, `data/` and `model/`.
 *
 * | module | what |
 * | --- | --- |
 * | `checkpoint.ts` | Training checkpoints: the model's weights, the optimizer's state and the training loop's own… |
 * | `config.ts` | The settings of a run: `resolveConfig` checks `trainModel`'s options and fills in `DEFAULTS` |
 * | `ema.ts` | The weights' exponential moving average (`WeightAverage`) |
 * | `evaluate_split.ts` | Validation: loss, accuracy and predictions of a model on a split, in batches |
 * | `policies.ts` | Early stopping, reduce-on-plateau, cosine decay and the time budget, as pure functions |
 * | `progress.ts` | Live training progress for `trainModel`, in a terminal and in a notebook |
 * | `resume.ts` | Whether a run folder may be trained into, and resuming a run from its checkpoint |
 * | `run_files.ts` | A run folder's files: paths, manifest, history, the saved model's metadata, the dataset's name |
 * | `snapshot.ts` | Weight snapshots: a model's weights as one block of float32 bytes, and back |
 * | `state.ts` | The training loop's state, as a checkpoint keeps it |
 * | `step.ts` | One training step: batch tensor, augmentation, Dropout seeds, loss, Adam, weight decay |
 * | `train.ts` | Training: `trainModel` trains a CNN on packed uint8 images (the `SplitData` that `prepareData`… |
 * | `train_cli.ts` | `deno task train`: prepares the data, trains a model into a run folder with live progress,… |
 *
 * @module
 */
export * from "./checkpoint.ts";
export * from "./config.ts";
export * from "./ema.ts";
export * from "./evaluate_split.ts";
export * from "./policies.ts";
export * from "./progress.ts";
export * from "./resume.ts";
export * from "./run_files.ts";
export * from "./snapshot.ts";
export * from "./state.ts";
export * from "./step.ts";
export * from "./train.ts";
export * from "./train_cli.ts";
