/**
 * Stage 2 of the pipeline: the networks.
 *
 * The architectures (the seed CNN, VGG-style, ResNet, transfer learning), the
 * fused native kernels they train with, the saved-model format, inference over
 * packed images, and how probabilities become a predicted class (the operating
 * point). Imports only `core/`.
 *
 * | module | what |
 * | --- | --- |
 * | `decision.ts` | How a row of class probabilities becomes one predicted class: the most probable class (argmax,… |
 * | `inference.ts` | Running a model on packed images: class probabilities in batches, in inference mode, optionally… |
 * | `models.ts` | CNN model factories, the project's fast training set-up, and model summaries |
 * | `saved_model.ts` | The project's saved-model format: a folder holding a tfjs Layers model (`model.json` +… |
 *
 * @module
 */
export * from "./decision.ts";
export * from "./inference.ts";
export * from "./models.ts";
export * from "./saved_model.ts";
