import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { projectPaths } from "../core/paths.ts";
import { run } from "./proc.ts";
import {
  installKernelspec,
  jupyterEnv,
  KERNEL_NAME,
  kernelArgv,
  PYTHON_REQUIREMENTS,
} from "./python_env.ts";

Deno.test("python_env: the kernelspec runs the given deno as a Jupyter kernel", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const specDir = await installKernelspec({
      jupyterData: dir,
      deno: Deno.execPath(),
      projectRoot: "/proj",
      env: { EXAMPLE: "1" },
    });
    assert.equal(specDir, join(dir, "kernels", KERNEL_NAME));
    const spec = JSON.parse(
      await Deno.readTextFile(join(specDir, "kernel.json")),
    );
    assert.deepEqual(spec.argv, kernelArgv(Deno.execPath(), "/proj"));
    assert.equal(spec.language, "typescript");
    assert.deepEqual(spec.env, { EXAMPLE: "1" });
    assert.ok(existsSync(join(specDir, "logo-64x64.png")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("python_env: Jupyter from the venv finds the project's deno kernel first", async () => {
  const paths = projectPaths();
  const env = jupyterEnv(paths);
  assert.ok(env.JUPYTER_PATH.startsWith(paths.jupyterData));
  const { code, stdout } = await run(join(paths.venv, "bin", "jupyter"), {
    args: ["kernelspec", "list", "--json"],
    env,
  });
  assert.equal(code, 0);
  const specs = JSON.parse(stdout).kernelspecs;
  assert.equal(
    specs[KERNEL_NAME].resource_dir,
    join(paths.jupyterData, "kernels", KERNEL_NAME),
  );
});

Deno.test("python_env: JupyterLab, nbclient, nbconvert and the Plotly renderer are installed", async () => {
  const { code, stderr } = await run(projectPaths().python, {
    args: [
      "-c",
      "import jupyterlab, nbclient, nbconvert, plotly; assert jupyterlab.__version__ == '4.6.4'",
    ],
  });
  assert.equal(code, 0, stderr);
});

Deno.test("python_env: onnx and onnxruntime (which check exported ONNX files) are installed at their pinned versions", async () => {
  const pinned = Object.fromEntries(
    PYTHON_REQUIREMENTS.filter((r) => r.startsWith("onnx")).map((r) =>
      r.split("==")
    ),
  );
  const { code, stdout, stderr } = await run(projectPaths().python, {
    args: [
      "-c",
      "import json, onnx, onnxruntime; print(json.dumps({'onnx': onnx.__version__, 'onnxruntime': onnxruntime.__version__}))",
    ],
  });
  assert.equal(code, 0, stderr);
  assert.deepEqual(JSON.parse(stdout), pinned);
});

Deno.test("python_env: the kernel command moves to the project only from outside it", async () => {
  const [sh, flag, script] = kernelArgv("/bin/echo", "/proj");
  const where = async (cwd: string) => {
    // Replace exec of deno by printing the folder the kernel would start in.
    const probe = script.replace(
      'exec "$2" jupyter --kernel --conn "$0"',
      "pwd",
    );
    const { stdout } = await run(sh, {
      args: [flag, probe, "conn.json", cwd === "/" ? "/tmp" : "/usr", "x"],
      cwd,
    });
    return stdout.trim();
  };
  assert.equal(
    await where("/usr/lib"),
    "/usr/lib",
    "inside the project: stays",
  );
  assert.equal(
    await where("/"),
    "/tmp",
    "outside the project: moves to its root",
  );
});
