import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_ROOT, projectPaths } from "../core/paths.ts";
import { seedCnn } from "./models.ts";
import { exportOnnx } from "./onnx_export.ts";
import { loadOnnxSession, onnxProbabilities } from "./onnx_runtime.ts";

Deno.test("onnx runtime: the CPU library comes from onnxruntime-node's npm package, and its install script (GPU downloads) never ran", () => {
  const arch = Deno.build.arch === "aarch64" ? "arm64" : "x64";
  const bin = join(
    projectPaths().nodeModules,
    "onnxruntime-node",
    "bin",
    "napi-v6",
    Deno.build.os,
    arch,
  );
  assert.ok(existsSync(join(bin, "onnxruntime_binding.node")), bin);
  const fetched = readdirSync(bin).filter((name) =>
    /providers_(cuda|tensorrt|shared)/.test(name)
  );
  assert.deepEqual(fetched, []);
  const config = JSON.parse(
    readFileSync(join(PROJECT_ROOT, "deno.json"), "utf8"),
  );
  assert.ok(
    !JSON.stringify(config.allowScripts ?? []).includes("onnxruntime-node"),
    "deno.json allows onnxruntime-node's install script",
  );
});

Deno.test("onnx runtime: pixels that are not whole images are refused before running", async () => {
  const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
  const session = await loadOnnxSession(exportOnnx(model));
  try {
    await assert.rejects(
      onnxProbabilities(session, {
        pixels: new Uint8Array(32 * 32 + 1),
        size: 32,
      }),
      /^Error: onnxProbabilities: 1025 bytes are not whole 32×32 images$/,
    );
  } finally {
    await session.release();
    model.dispose();
  }
});
