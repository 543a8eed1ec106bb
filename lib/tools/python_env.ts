/**
 * The project-local Python environment (`.venv/`) with JupyterLab, nbclient
 * and nbconvert, and the Deno Jupyter kernel registered inside it.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { SetupError } from "./libtensorflow.ts";
import { isolatedPipEnv, pipIndexArgs } from "./pip_index.ts";
import { run, runOk } from "./proc.ts";
import { writeTextAtomic } from "../core/atomic.ts";

/**
 * What the notebook side needs: JupyterLab and the Plotly renderer at the
 * versions the project is tested with, nbclient and nbconvert for the
 * headless runner; what checks an exported ONNX graph (`onnx` for its
 * checker, `onnxruntime` to run it); and OpenCV, whose CLAHE the
 * project's CLAHE preprocessing is checked against (and which a Python user
 * of an exported model would use to prepare its input), at the versions it
 * is tested with.
 */
export const PYTHON_REQUIREMENTS: readonly string[] = [
  "jupyterlab==4.6.4",
  "nbclient",
  "nbconvert",
  "plotly==7.1.0",
  "onnx==1.23.1",
  "onnxruntime==1.30.0",
  "opencv-python-headless==5.0.0.93",
];

/** Name of the kernelspec the notebooks ask for. */
export const KERNEL_NAME = "deno";

/** Options for {@linkcode ensureVenv}. */
export interface EnsureVenvOptions {
  /** The venv folder. */
  venv: string;
  /** Index URLs (empty: pip's default). */
  indexes: string[];
  /** Requirements; defaults to {@linkcode PYTHON_REQUIREMENTS}. */
  requirements?: readonly string[];
  /** The Python that creates the venv; default `python3`. */
  basePython?: string;
  /** Progress messages. */
  log?: (message: string) => void;
}

/**
 * Creates the venv if needed and installs the requirements, unless a stamp
 * inside the venv says this exact list is already installed and importable.
 * Returns `true` when it had to install anything.
 *
 * Creates a Python environment and runs pip, so it is not run by
 * `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { ensureVenv } from "./python_env.ts";
 * await ensureVenv({ venv: ".venv", indexes: ["file:///opt/pypi/simple"] });
 * ```
 */
export async function ensureVenv(options: EnsureVenvOptions): Promise<boolean> {
  const requirements = options.requirements ?? PYTHON_REQUIREMENTS;
  const python = join(options.venv, "bin", "python");
  const stamp = join(options.venv, ".brain-mri-requirements");
  const wanted = [...requirements, ...options.indexes].join("\n");
  if (
    existsSync(python) && existsSync(stamp) &&
    Deno.readTextFileSync(stamp) === wanted
  ) {
    return false;
  }
  const log = options.log ?? (() => {});
  if (!existsSync(python)) {
    log(`creating ${options.venv}`);
    const base = options.basePython ?? "python3";
    const made = await run(base, {
      args: ["-m", "venv", options.venv],
      timeoutMs: 5 * 60_000,
    }).catch((error) => {
      throw new SetupError(
        `Python 3 is needed for JupyterLab and was not found: ${error.message}`,
        "install Python 3.9 or newer with venv (Debian: apt-get install " +
          "python3 python3-venv)",
      );
    });
    if (made.code !== 0) {
      await Deno.remove(options.venv, { recursive: true }).catch(() => {});
      throw new SetupError(
        `\`${base} -m venv\` failed: ${made.stderr.trim()}`,
        "install Python's venv module (Debian: apt-get install python3-venv)",
      );
    }
  }
  log(`installing ${requirements.join(", ")} into ${options.venv}`);
  const installed = await run(python, {
    args: [
      "-m",
      "pip",
      "install",
      "--disable-pip-version-check",
      "--quiet",
      ...pipIndexArgs(options.indexes),
      ...requirements,
    ],
    ...(options.indexes.length
      ? { env: isolatedPipEnv(), clearEnv: true }
      : {}),
    timeoutMs: 30 * 60_000,
  });
  if (installed.code !== 0) {
    const where = options.indexes.length
      ? options.indexes.join(" ")
      : "pip's default index";
    throw new SetupError(
      `could not install ${requirements.join(", ")} from ${where}:\n` +
        installed.stderr.trim().split("\n").filter((l) =>
          !l.startsWith("WARNING: Location")
        ).slice(-8).join("\n"),
      "make a Python package index holding them reachable (pip config " +
        "index-url, or BRAIN_MRI_PIP_INDEX)",
    );
  }
  await writeTextAtomic(stamp, wanted);
  return true;
}

/** Options for {@linkcode installKernelspec}. */
export interface KernelspecOptions {
  /** The Jupyter data folder (`.venv/share/jupyter`). */
  jupyterData: string;
  /** The `deno` binary the kernel runs. */
  deno: string;
  /** The project whose `deno.json` the kernel uses. */
  projectRoot: string;
  /** Extra environment for the kernel process. */
  env?: Record<string, string>;
}

/**
 * Writes the Deno kernelspec into the venv's Jupyter data folder, so JupyterLab
 * and nbclient started from the venv find it. Returns the kernelspec's folder.
 * See {@linkcode kernelArgv} for how the kernel finds the project's
 * `deno.json`.
 *
 * Runs `deno jupyter --install` in a subprocess, so it is not run by
 * `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { installKernelspec } from "./python_env.ts";
 * await installKernelspec({
 *   jupyterData: ".venv/share/jupyter",
 *   deno: ".tools/bin/deno",
 *   projectRoot: ".",
 * });
 * ```
 */
export async function installKernelspec(
  options: KernelspecOptions,
): Promise<string> {
  const dir = join(options.jupyterData, "kernels", KERNEL_NAME);
  await Deno.mkdir(dir, { recursive: true });
  // Let deno write its own kernelspec (with its logos) into a scratch HOME,
  // then take the logos from there.
  const scratch = await Deno.makeTempDir({ prefix: "deno-kernelspec-" });
  try {
    await runOk(options.deno, {
      args: ["jupyter", "--install", "--force"],
      env: { HOME: scratch },
      timeoutMs: 60_000,
    });
    const made = join(scratch, ".local", "share", "jupyter", "kernels", "deno");
    for (const entry of Deno.readDirSync(made)) {
      if (entry.isFile && entry.name !== "kernel.json") {
        await Deno.copyFile(join(made, entry.name), join(dir, entry.name));
      }
    }
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
  const spec = {
    argv: kernelArgv(options.deno, options.projectRoot),
    display_name: "Deno (brain-mri-cnn)",
    language: "typescript",
    env: options.env ?? {},
    metadata: { project: "brain-mri-cnn" },
  };
  await writeTextAtomic(
    join(dir, "kernel.json"),
    JSON.stringify(spec, null, 2) + "\n",
  );
  return dir;
}

/**
 * The kernel's command line. Jupyter starts a kernel in the notebook's folder,
 * and Deno finds `deno.json` by walking up from there: inside the project that
 * finds the project's. For a notebook outside the project the kernel moves to
 * the project root first, so `@brain/...` imports resolve wherever the notebook
 * sits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kernelArgv } from "./python_env.ts";
 * const argv = kernelArgv("/p/.tools/bin/deno", "/p");
 * assert.deepEqual(argv.slice(0, 2), ["/bin/sh", "-c"]);
 * // $0 is the connection file, $1 the project, $2 deno.
 * assert.deepEqual(argv.slice(3), ["{connection_file}", "/p", "/p/.tools/bin/deno"]);
 * assert.match(argv[2], /exec "\$2" jupyter --kernel --conn "\$0"$/);
 * ```
 */
export function kernelArgv(deno: string, projectRoot: string): string[] {
  const script = 'case "$PWD/" in "$1"/*) ;; *) cd "$1" ;; esac; ' +
    'exec "$2" jupyter --kernel --conn "$0"';
  return ["/bin/sh", "-c", script, "{connection_file}", projectRoot, deno];
}

/**
 * Environment for Jupyter processes started by the project: the venv's `bin`
 * first on PATH, and the venv's Jupyter data folder ahead of the user's, so
 * the project's `deno` kernelspec wins over any other of that name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jupyterEnv } from "./python_env.ts";
 * const env = jupyterEnv({ venv: "/p/.venv", jupyterData: "/p/.venv/share/jupyter" });
 * assert.ok(env.PATH.startsWith("/p/.venv/bin:"));
 * assert.ok(env.JUPYTER_PATH.startsWith("/p/.venv/share/jupyter"));
 * assert.equal(env.VIRTUAL_ENV, "/p/.venv");
 * ```
 */
export function jupyterEnv(
  options: { venv: string; jupyterData: string },
): Record<string, string> {
  const path = Deno.env.get("PATH") ?? "";
  const jupyterPath = Deno.env.get("JUPYTER_PATH");
  return {
    PATH: `${join(options.venv, "bin")}:${path}`,
    JUPYTER_PATH: jupyterPath
      ? `${options.jupyterData}:${jupyterPath}`
      : options.jupyterData,
    VIRTUAL_ENV: options.venv,
  };
}

/**
 * Copies the running `deno` binary to `<tools>/bin/deno` (unless the same
 * version is there), so that the kernelspec points at a binary that stays put
 * even when set-up ran from an `npx` cache. Returns the pinned path.
 *
 * Copies the `deno` binary (about 100 MB) and runs it, so it is not run by
 * `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { pinDeno } from "./python_env.ts";
 * console.log(await pinDeno(".tools")); // ".tools/bin/deno"
 * ```
 */
export async function pinDeno(tools: string): Promise<string> {
  const target = join(tools, "bin", "deno");
  const source = Deno.execPath();
  if (source === target) return target;
  if (existsSync(target)) {
    const { stdout } = await run(target, { args: ["--version"] });
    if (stdout.startsWith(`deno ${Deno.version.deno} `)) return target;
  }
  await Deno.mkdir(dirname(target), { recursive: true });
  const partial = `${target}.partial`;
  await Deno.copyFile(source, partial);
  await Deno.chmod(partial, 0o755);
  await Deno.rename(partial, target);
  return target;
}
