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
import { writeTextAtomic } from "../core/atomic.ts";
import { ensureChromium } from "./browser.ts";
import {
  bindingStatus,
  provisionLibtensorflow,
  type ProvisionOutcome,
  SetupError,
  tfjsNodeDir,
} from "./libtensorflow.ts";
import { projectPaths } from "../core/paths.ts";
import { configuredIndexes } from "./pip_index.ts";
import { run } from "./proc.ts";
import {
  ensureVenv,
  installKernelspec,
  KERNEL_NAME,
  pinDeno,
} from "./python_env.ts";
import { type ParsedCli, runCli } from "../core/cli.ts";

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

/** Runs one named step, timing it and recording its outcome. */
type StepRunner = (name: string, body: () => Promise<string>) => Promise<void>;

function stepRecorder(
  steps: SetupReport["steps"],
  log: (message: string) => void,
): StepRunner {
  return async (name, body) => {
    const t0 = performance.now();
    const outcome = await body();
    const ms = performance.now() - t0;
    steps[name] = { ms, outcome };
    log(`${name}: ${outcome} (${(ms / 1000).toFixed(1)} s)`);
  };
}

/** `deno install` from `deno.lock`. */
async function installNpmPackages(root: string): Promise<string> {
  const result = await run(Deno.execPath(), {
    args: ["install", "--quiet"],
    cwd: root,
    // onnxruntime-node ships its CPU library; its install script would only
    // fetch GPU providers. Deno runs no install script unless allowed to, and
    // should one ever be allowed, this tells it to fetch nothing.
    env: { NO_COLOR: "1", ONNXRUNTIME_NODE_INSTALL: "skip" },
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
}

/** What each way of provisioning libtensorflow reads as in the report. */
const PROVISION_OUTCOMES: Record<ProvisionOutcome, string> = {
  present: "already built",
  built: "binding built against the libtensorflow in deps/",
  official: "downloaded by tfjs-node",
  wheel: "built from the tensorflow-cpu wheel",
};

/** Makes sure a headless Chromium is there; says which and whether it was installed. */
async function chromiumOutcome(log: (message: string) => void) {
  const { chromium, installed } = await ensureChromium({ log });
  return `${installed ? "installed" : "present"}: ${chromium.executable}${
    chromium.version ? ` (${chromium.version})` : ""
  }`;
}

/**
 * Runs every set-up step; throws {@linkcode SetupError} naming what is missing
 * and how to fix it.
 *
 * Installs packages, builds native code and may download, so it is not run
 * by `deno test --doc`.
 *
 * @example
 * ```ts ignore
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
  const step = stepRecorder(steps, log);

  let deno = "";
  await step("deno", async () => {
    deno = await pinDeno(paths.tools);
    return `${Deno.version.deno} at ${deno}`;
  });
  await step("npm packages", () => installNpmPackages(paths.root));
  let indexes: string[] = [];
  await step("python environment", async () => {
    indexes = await configuredIndexes();
    const changed = await ensureVenv({ venv: paths.venv, indexes, log });
    return changed ? "installed" : "up to date";
  });
  const packageDir = tfjsNodeDir(paths.root);
  await step("libtensorflow", async () => {
    const outcome = await provisionLibtensorflow({
      packageDir,
      python: paths.python,
      indexes,
      wheelDir: join(paths.cache, "setup", "wheels"),
      tryOfficial: !options.skipOfficialDownload,
      force: options.forceLibtensorflow,
      log,
    });
    return PROVISION_OUTCOMES[outcome];
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
    return `kernelspec '${KERNEL_NAME}' in ${dir}`;
  });
  if (options.browser) await step("chromium", () => chromiumOutcome(log));
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

/** The command line of `deno task setup`. */
export const SETUP_CLI = {
  command: "deno task setup",
  summary: "Installs everything the project needs, idempotently: the npm\n" +
    "packages, the Python environment with JupyterLab, tfjs-node's native\n" +
    "TensorFlow and the Deno Jupyter kernel. A second run is a fast no-op.",
  flags: {
    "force-libtensorflow": {
      type: "boolean",
      help: "rebuild libtensorflow and the binding even if present",
    },
    "skip-official-download": {
      type: "boolean",
      help: "skip tfjs-node's own download; use the tensorflow-cpu wheel",
    },
    browser: {
      type: "boolean",
      help: "also make sure a headless Chromium is there (browser tests)",
    },
  },
} as const;

/** Runs set-up from the command line: exit 0 when done, 1 on failure. */
async function setupMain(
  { values }: ParsedCli<typeof SETUP_CLI>,
): Promise<number> {
  try {
    const report = await setup({
      forceLibtensorflow: values["force-libtensorflow"],
      skipOfficialDownload: values["skip-official-download"],
      browser: values.browser,
    });
    console.error(`[setup] done in ${(report.totalMs / 1000).toFixed(1)} s`);
    return 0;
  } catch (error) {
    if (error instanceof SetupError) {
      console.error(
        `\n[setup] FAILED: ${error.message}\n[setup] fix: ${error.hint}`,
      );
    } else {
      console.error(`\n[setup] FAILED: ${(error as Error)?.message ?? error}`);
    }
    return 1;
  }
}

if (import.meta.main) Deno.exit(await runCli(SETUP_CLI, setupMain));
