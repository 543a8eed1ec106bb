/**
 * Where a cold single prediction's time goes, phase by phase, for
 * bench/inference.ts: run as a fresh process per engine, it does what
 * `deno task predict` does for one scan, importing each part only when it is
 * needed, and prints the milliseconds of each phase as JSON.
 *
 * | phase | what |
 * | --- | --- |
 * | `runtimeStart` | from process start until this module runs (Deno's start-up, this module's own imports) |
 * | `importTensorflow` | loading tfjs-node and libtensorflow |
 * | `importPredict` | the rest of predict's module graph (sharp, onnxruntime's bindings are loaded later, on first use) |
 * | `loadModel` | `loadSavedModel`: reading and checking the files, building the network |
 * | `openEngine` | tfjs: nothing; onnx: exporting the network to ONNX in memory and opening an onnxruntime session |
 * | `decode` | the scan's header check, strict decode, resize to the input size |
 * | `firstForwardPass` | the forward pass of a fresh engine (kernels chosen, buffers allocated) |
 * | `secondForwardPass` | the same pass again, warm |
 *
 * ```sh
 * deno run -A bench/inference_profile.ts -- MODEL_DIR tfjs|onnx SCAN
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { runCli } from "../lib/core/cli.ts";

/**
 * The phases of one cold prediction, in milliseconds (see the module
 * documentation).
 *
 * Loads a model and decodes a scan, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { profileColdPredict } from "./inference_profile.ts";
 * const phases = await profileColdPredict("models/resnet-128-e11", "onnx", "scan.jpg");
 * console.log(phases.openEngine);
 * ```
 */
export async function profileColdPredict(
  modelDir: string,
  engine: string,
  file: string,
): Promise<Record<string, number>> {
  const marks: [string, number][] = [["runtimeStart", performance.now()]];
  const mark = (name: string) => marks.push([name, performance.now()]);
  await import("../lib/core/tf.ts");
  mark("importTensorflow");
  await import("../lib/deploy/predict.ts");
  const { loadSavedModel } = await import("../lib/model/saved_model.ts");
  const { openEngine, resolveEngineKind } = await import(
    "../lib/model/engine.ts"
  );
  const { preprocessJobs } = await import("../lib/data/preprocess.ts");
  mark("importPredict");
  const root = new URL("..", import.meta.url).pathname;
  const loaded = await loadSavedModel(join(root, modelDir));
  mark("loadModel");
  const session = await openEngine({
    model: loaded,
    kind: resolveEngineKind(engine),
  });
  mark("openEngine");
  const { size, fit, scale } = loaded.metadata.preprocessing;
  const [outcome] = await preprocessJobs([{ path: file }], { size, fit });
  if (!outcome.pixels) throw new Error(`${file}: ${outcome.error}`);
  mark("decode");
  await session.probabilities({ pixels: outcome.pixels, size, scale });
  mark("firstForwardPass");
  await session.probabilities({ pixels: outcome.pixels, size, scale });
  mark("secondForwardPass");
  await session.dispose();
  loaded.model.dispose();
  return Object.fromEntries(
    marks.map(([name, t], i) => [name, t - (i ? marks[i - 1][1] : 0)]),
  );
}

/** The command line. */
export const INFERENCE_PROFILE_CLI = {
  command: "deno run -A bench/inference_profile.ts",
  summary:
    "Times a cold single prediction phase by phase (milliseconds, JSON).",
  positionals: "MODEL_DIR tfjs|onnx SCAN",
  minPositionals: 3,
  flags: {},
} as const;

if (import.meta.main) {
  Deno.exit(
    await runCli(INFERENCE_PROFILE_CLI, async ({ positionals }) => {
      const [modelDir, engine, file] = positionals;
      const phases = await profileColdPredict(modelDir, engine, file);
      console.log(JSON.stringify(phases));
      return 0;
    }),
  );
}
