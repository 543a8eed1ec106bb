/**
 * Stage 4 of the pipeline: measuring a model.
 *
 * Metrics with confidence intervals, ROC curves, calibration, the clinical
 * targets, Grad-CAM, and `deno task evaluate`. Imports `core/`, `data/` and
 * `model/`.
 *
 * | module | what |
 * | --- | --- |
 * | `calibration.ts` | Calibration: does a predicted confidence of 90% mean right 90% of the time? |
 * | `degenerate.ts` | Is the model degenerate? A model that never predicts one of the classes, or does hardly better… |
 * | `evaluate.ts` | Evaluating a saved model on a dataset: every metric of `evaluationReport` on the full and on the… |
 * | `gradcam.ts` | Grad-CAM (Selvaraju et al., 2017, "Grad-CAM: Visual Explanations from Deep Networks via… |
 * | `metrics.ts` | Classification metrics on plain arrays (no TensorFlow): accuracy, cross-entropy, the confusion… |
 * | `roc.ts` | ROC curves and the area under them, for the classifier's probabilities |
 * | `targets.ts` | The clinical targets as data, and the run-ranking rule built on them: candidates are compared on… |
 *
 * @module
 */
export * from "./calibration.ts";
export * from "./degenerate.ts";
export * from "./evaluate.ts";
export * from "./gradcam.ts";
export * from "./metrics.ts";
export * from "./roc.ts";
export * from "./targets.ts";
