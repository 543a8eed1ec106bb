/**
 * What the notebooks show.
 *
 * Notebook views of each stage: data, model, evaluation, explanations of
 * mistakes and deployment checks. They return display objects and never touch
 * `Deno.jupyter`. Imports any stage; nothing imports them.
 *
 * | module | what |
 * | --- | --- |
 * | `data.ts` | Notebook views of the data pipeline: the source banner, class balance, sample scans, image… |
 * | `deploy.ts` | The pieces of notebook 05 (deploy): check that a saved and reloaded model predicts exactly like… |
 * | `evaluation.ts` | Notebook views of an evaluation: the confusion matrix, the per-class table, ROC curves, the… |
 * | `explain.ts` | Explaining a model's mistakes in a notebook: the most confident misclassified scans beside their… |
 * | `model.ts` | Notebook views of the models: layer tables, parameter counts and a chart of how the activations… |
 * | `warnings.ts` | Warnings a notebook shows above the numbers they qualify: today, that the evaluated model is… |
 *
 * @module
 */
export * from "./data.ts";
export * from "./deploy.ts";
export * from "./evaluation.ts";
export * from "./explain.ts";
export * from "./model.ts";
export * from "./warnings.ts";
