/**
 * `deno task setup`: installs everything the project needs, idempotently.
 *
 * 1. pins the running `deno` binary to `.tools/bin/deno` (the kernel runs it);
 * 2. installs the npm packages (`deno install`, from `deno.lock`);
 * 3. creates `.venv/` with JupyterLab, nbclient and nbconvert from the
 *    configured pip index;
 * 4. provisions tfjs-node's libtensorflow and native binding (official
 *    download where it works, else the tensorflow-cpu wheel and a source
 *    build);
 * 5. checks that TensorFlow loads with the `tensorflow` backend;
 * 6. registers the Deno Jupyter kernel inside `.venv/`;
 * 7. with `--browser` (what `deno task test` passes): makes sure a headless
 *    Chromium is there for the browser tests, installing Debian's `chromium`
 *    package when it is not (see `browser.ts`).
 *
 * Each step checks before it acts, so a second run is a fast no-op, and each
 * writes atomically, so an interrupted run can simply be run again.
 *
 * @module
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { writeTextAtomic } from "../core/atomic.ts";
import { ensureChromium } from "./browser.ts";
import {
  bindingStatus,
  provisionLibtensorflow,
  SetupError,
  tfjsNodeDir,
} from "./libtensorflow.ts";
import { projectPaths } from "../core/paths.ts";
import { configuredIndexes } from "./pip_index.ts";
import { run } from "./proc.ts";
import { ensureVenv, installKernelspec, pinDeno } from "./python_env.ts";
import { taskArgs } from "../core/cli.ts";

/** Options for {@linkcode setup}. */
export interface SetupOptions {
  /** Project root; defaults to this project. */
  root?: string;
  /** Rebuild libtensorflow and the binding even if present. */
  forceLibtensorflow?: boolean;
  /** Skip tfjs-node's own download and use the wheel directly. */
  skipOfficialDownload?: boolean;
  /** Also make sure Chromium is there for the browser tests. */
  browser?: boolean;
  /** Progress messages; default prints to stderr. */
  log?: (message: string) => void;
}

/** What {@linkcode setup} did, step by step, with timings in ms. */
export interface SetupReport {
  /** Step name → milliseconds and a short outcome. */
  steps: Record<string, { ms: number; outcome: string }>;
  /** Total milliseconds. */
  totalMs: number;
}

/**
 * Runs every set-up step; throws {@linkcode SetupError} naming what is missing
 * and how to fix it.
 *
 * @example
 * ```ts
 * import { setup } from "./setup.ts";
 * const report = await setup();
 * console.log(report.totalMs);
 * ```
 */
export async function setup(options: SetupOptions = {}): Promise<SetupReport> {
  const paths = projectPaths(options.root ? { root: options.root } : {});
  const log = options.log ?? ((m: string) => console.error(`[setup] ${m}`));
  const started = performance.now();
  const steps: SetupReport["steps"] = {};
  const step = async (name: string, body: () => Promise<string>) => {
    const t0 = performance.now();
    const outcome = await body();
    const ms = performance.now() - t0;
    steps[name] = { ms, outcome };
    log(`${name}: ${outcome} (${(ms / 1000).toFixed(1)} s)`);
  };

  let deno = "";
  await step("deno", async () => {
    deno = await pinDeno(paths.tools);
    return `${Deno.version.deno} at ${deno}`;
  });

  await step("npm packages", async () => {
    const result = await run(Deno.execPath(), {
      args: ["install", "--quiet"],
      cwd: paths.root,
      env: { NO_COLOR: "1" },
      timeoutMs: 20 * 60_000,
    });
    if (result.code !== 0) {
      throw new SetupError(
        `\`deno install\` failed: ${
          result.stderr.trim().split("\n").slice(-8).join("\n")
        }`,
        "check that the npm registry is reachable (npm config get registry)",
      );
    }
    return "installed from deno.lock";
  });

  let indexes: string[] = [];
  await step("python environment", async () => {
    indexes = await configuredIndexes();
    const changed = await ensureVenv({ venv: paths.venv, indexes, log });
    return changed ? "installed" : "up to date";
  });

  const packageDir = tfjsNodeDir(paths.root);
  let outcome = "present";
  await step("libtensorflow", async () => {
    outcome = await provisionLibtensorflow({
      packageDir,
      python: paths.python,
      indexes,
      wheelDir: join(paths.cache, "setup", "wheels"),
      tryOfficial: !options.skipOfficialDownload,
      force: options.forceLibtensorflow,
      log,
    });
    return {
      present: "already built",
      built: "binding built against the libtensorflow in deps/",
      official: "downloaded by tfjs-node",
      wheel: "built from the tensorflow-cpu wheel",
    }[outcome] ?? outcome;
  });

  await step(
    "tensorflow check",
    () => verifyTensorflow(paths.root, paths.cache, packageDir),
  );

  await step("jupyter kernel", async () => {
    const dir = await installKernelspec({
      jupyterData: paths.jupyterData,
      deno,
      projectRoot: paths.root,
    });
    return `kernelspec '${"deno"}' in ${dir}`;
  });

  if (options.browser) {
    await step("chromium", async () => {
      const { chromium, installed } = await ensureChromium({ log });
      return `${installed ? "installed" : "present"}: ${chromium.executable}${
        chromium.version ? ` (${chromium.version})` : ""
      }`;
    });
  }

  return { steps, totalMs: performance.now() - started };
}

async function verifyTensorflow(
  root: string,
  cache: string,
  packageDir: string,
): Promise<string> {
  const { binding } = bindingStatus(packageDir);
  if (!binding) {
    throw new SetupError(
      "tfjs-node's native binding is missing after set-up",
      "run `deno task setup --force-libtensorflow`",
    );
  }
  const st = statSync(binding);
  const key =
    `${binding}:${st.size}:${st.mtime?.getTime()}:${Deno.version.deno}`;
  const stamp = join(cache, "setup", "tensorflow-verified");
  if (existsSync(stamp) && Deno.readTextFileSync(stamp) === key) {
    return "verified earlier";
  }
  const result = await run(Deno.execPath(), {
    args: ["run", "-A", "--quiet", join(root, "lib", "core", "tf.ts")],
    cwd: root,
    timeoutMs: 5 * 60_000,
  });
  let info: { backend?: string; libtensorflow?: string } = {};
  try {
    info = JSON.parse(result.stdout);
  } catch {
    // reported below
  }
  if (result.code !== 0 || info.backend !== "tensorflow") {
    throw new SetupError(
      `TensorFlow did not load with the native backend (backend: ${
        info.backend ?? "none"
      }):\n${result.stderr.trim().split("\n").slice(-10).join("\n")}`,
      "run `deno task setup --force-libtensorflow`; see README, " +
        "'Troubleshooting the native TensorFlow library'",
    );
  }
  await writeTextAtomic(stamp, key);
  return `backend tensorflow, libtensorflow ${info.libtensorflow}`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: taskArgs(),
    options: {
      "force-libtensorflow": { type: "boolean", default: false },
      "skip-official-download": { type: "boolean", default: false },
      browser: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      "deno task setup [--force-libtensorflow] [--skip-official-download] " +
        "[--browser]",
    );
    Deno.exit(0);
  }
  try {
    const report = await setup({
      forceLibtensorflow: values["force-libtensorflow"],
      skipOfficialDownload: values["skip-official-download"],
      browser: values.browser,
    });
    console.error(`[setup] done in ${(report.totalMs / 1000).toFixed(1)} s`);
  } catch (error) {
    if (error instanceof SetupError) {
      console.error(
        `\n[setup] FAILED: ${error.message}\n[setup] fix: ${error.hint}`,
      );
    } else {
      console.error(`\n[setup] FAILED: ${(error as Error)?.message ?? error}`);
    }
    Deno.exit(1);
  }
}
