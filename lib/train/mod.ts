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
 * | `progress.ts` | Live training progress for `trainModel`, in a terminal and in a notebook |
 * | `train.ts` | Training: `trainModel` trains a CNN on packed uint8 images (the `SplitData` that `prepareData`… |
 * | `train_cli.ts` | `deno task train`: prepares the data, trains a model into a run folder with live progress,… |
 *
 * @module
 */
export * from "./checkpoint.ts";
export * from "./progress.ts";
export * from "./train.ts";
export * from "./train_cli.ts";
