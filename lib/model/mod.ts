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
 * | `compile.ts` | The training set-up: Adam, cross-entropy and accuracy on the native kernels with the fused Adam |
 * | `decision.ts` | How a row of class probabilities becomes one predicted class: the most probable class (argmax,… |
 * | `engine.ts` | Inference engines (`tfjs`, `onnx`): one interface for running a loaded model, chosen by `--engine` or `BRAIN_MRI_ENGINE` |
 * | `ensemble.ts` | Ensembles: several networks as one model averaging their class probabilities, and when saved models may be combined |
 * | `fold.ts` | Batch normalisation folded into the convolution before it, for inference (the tfjs engine runs the folded copy) |
 * | `inference.ts` | Running a model on packed images: class probabilities in batches, in inference mode, optionally… |
 * | `models.ts` | The architectures (seed CNN, VGG-style, ResNet, `buildModel` by name) and their seeded building blocks |
 * | `native_adam.ts` | `NativeAdam`: Adam as one fused TensorFlow op (`ResourceApplyAdam`) per weight |
 * | `native_backend.ts` | tfjs-node's native backend: running TensorFlow ops by name, their attributes, undoable kernel swaps |
 * | `native_batch_norm.ts` | Batch normalisation in training as `FusedBatchNormV3` and its fused gradient |
 * | `native_conv.ts` | Convolutions and their gradients on oneDNN |
 * | `native_kernels.ts` | `useNativeKernels`: TensorFlow's fused kernels in place of tfjs's, one installer per kernel |
 * | `native_pool.ts` | Max pooling and its gradient on oneDNN |
 * | `onnx_export.ts` | A tfjs Layers classifier as a standard ONNX graph (opset 13, NHWC `image` in, `probabilities` out) |
 * | `onnx_proto.ts` | ONNX files as plain objects, encoded and decoded with protobufjs from ONNX's own `onnx.proto` |
 * | `onnx_runtime.ts` | Running an exported ONNX classifier with onnxruntime on the CPU, fed as `predictProbabilities` feeds tfjs |
 * | `saved_model.ts` | The project's saved-model format: a folder holding a tfjs Layers model (`model.json` +… |
 * | `summary.ts` | Keras-style model summaries: layers, output shapes, parameter counts |
 * | `topology.ts` | A model's layer graph as JSON, read from any Layers model and built back into one (for folding and ensembles) |
 * | `transfer.ts` | Transfer learning: a new head on a pretrained model, freezing and unfreezing its base |
 *
 * @module
 */
export * from "./compile.ts";
export * from "./decision.ts";
export * from "./engine.ts";
export * from "./ensemble.ts";
export * from "./fold.ts";
export * from "./inference.ts";
export * from "./models.ts";
export * from "./native_adam.ts";
export * from "./native_backend.ts";
export * from "./native_batch_norm.ts";
export * from "./native_conv.ts";
export * from "./native_kernels.ts";
export * from "./native_pool.ts";
export * from "./onnx_export.ts";
export * from "./onnx_proto.ts";
export * from "./onnx_runtime.ts";
export * from "./saved_model.ts";
export * from "./summary.ts";
export * from "./topology.ts";
export * from "./transfer.ts";
