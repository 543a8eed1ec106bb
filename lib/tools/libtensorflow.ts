/**
 * Provisioning tfjs-node's native side: libtensorflow and the N-API binding.
 *
 * tfjs-node's own install script downloads libtensorflow 2.9.1 and a prebuilt
 * binding. Where that works (a laptop on the open internet) we let it. Where
 * the download host cannot be reached, we take libtensorflow from the
 * `tensorflow-cpu` wheel in the configured pip index instead, lay it out in
 * tfjs-node's `deps/` under the names its build expects, and build the binding
 * from source with node-pre-gyp (about 20 s).
 *
 * @module
 */
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { indexProblem, isolatedPipEnv, pipIndexArgs } from "./pip_index.ts";
import { CommandError, run, runOk } from "./proc.ts";

/** The tensorflow-cpu wheel libtensorflow is taken from. */
export const TENSORFLOW_WHEEL = "tensorflow-cpu==2.21.0";

/** The libtensorflow version tfjs-node 4.22's scripts expect by name. */
const TFJS_LIBTENSORFLOW_VERSION = "2.9.1";

/** Set-up could not finish a step; `hint` says how to fix it. */
export class SetupError extends Error {
  /** What the user can do about it. */
  readonly hint: string;
  /**
   * A set-up failure with its fix.
   *
   * @param message what is missing or broken
   * @param hint how to fix it
   */
  constructor(message: string, hint: string) {
    super(message);
    this.name = "SetupError";
    this.hint = hint;
  }
}

/**
 * The real folder of the installed `@tensorflow/tfjs-node` package.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PROJECT_ROOT } from "../core/paths.ts";
 * import { SetupError, tfjsNodeDir } from "./libtensorflow.ts";
 * assert.match(tfjsNodeDir(PROJECT_ROOT), /@tensorflow[+/]tfjs-node@4\.22\.0/);
 * assert.throws(() => tfjsNodeDir("/no/such/project"), SetupError);
 * ```
 */
export function tfjsNodeDir(projectRoot: string): string {
  const link = join(projectRoot, "node_modules", "@tensorflow", "tfjs-node");
  if (!existsSync(link)) {
    throw new SetupError(
      `@tensorflow/tfjs-node is not installed (no ${link})`,
      "run `deno install` in the project root, or `deno task setup`",
    );
  }
  return Deno.realPathSync(link);
}

/** What is on disk of tfjs-node's native side. */
export interface BindingStatus {
  /** Path of the built `tfjs_binding.node`, if any. */
  binding?: string;
  /** Whether `deps/lib/libtensorflow.so.2.9.1` (or the official lib) exists. */
  library: boolean;
}

/**
 * Looks for the binding and libtensorflow inside a tfjs-node package folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PROJECT_ROOT } from "../core/paths.ts";
 * import { bindingStatus, tfjsNodeDir } from "./libtensorflow.ts";
 * // Set-up has built the binding against a libtensorflow in deps/.
 * const status = bindingStatus(tfjsNodeDir(PROJECT_ROOT));
 * assert.match(status.binding!, /\/lib\/napi-v\d+\/tfjs_binding\.node$/);
 * assert.equal(status.library, true);
 * // An empty folder has neither.
 * const empty = await Deno.makeTempDir();
 * assert.deepEqual(bindingStatus(empty), { binding: undefined, library: false });
 * await Deno.remove(empty);
 * ```
 */
export function bindingStatus(packageDir: string): BindingStatus {
  const libDir = join(packageDir, "lib");
  let binding: string | undefined;
  if (existsSync(libDir)) {
    for (const entry of readdirSync(libDir)) {
      const candidate = join(libDir, entry, "tfjs_binding.node");
      if (entry.startsWith("napi-v") && existsSync(candidate)) {
        binding = candidate;
      }
    }
  }
  const library = existsSync(
    join(
      packageDir,
      "deps",
      "lib",
      `libtensorflow.so.${TFJS_LIBTENSORFLOW_VERSION}`,
    ),
  ) || existsSync(join(packageDir, "deps", "lib", "libtensorflow.so"));
  return { binding, library };
}

/** Options for {@linkcode downloadTensorflowWheel}. */
export interface DownloadWheelOptions {
  /** Python whose pip downloads the wheel. */
  python: string;
  /** Index URLs (empty: pip's default). */
  indexes: string[];
  /** Folder the wheel is kept in (reused when already there). */
  dest: string;
}

/**
 * Downloads the tensorflow-cpu wheel (no dependencies) into `dest`, or finds
 * it there from an earlier run. Fails fast, naming the index and the wheel,
 * when the index is missing, unreachable, or lacks the wheel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { downloadTensorflowWheel, SetupError } from "./libtensorflow.ts";
 * // A local index that is not there fails before pip runs, naming it.
 * const dest = await Deno.makeTempDir();
 * await assert.rejects(
 *   () =>
 *     downloadTensorflowWheel({
 *       python: "python3",
 *       indexes: ["file:///no/such/simple"],
 *       dest,
 *     }),
 *   (error: Error) =>
 *     error instanceof SetupError &&
 *     error.message.includes("the local index file:///no/such/simple does not exist"),
 * );
 * await Deno.remove(dest);
 * ```
 */
export async function downloadTensorflowWheel(
  options: DownloadWheelOptions,
): Promise<string> {
  const existing = findWheel(options.dest);
  if (existing) return existing;
  const where = options.indexes.length
    ? options.indexes.join(" ")
    : "pip's default index";
  for (const url of options.indexes) {
    const problem = indexProblem(url);
    if (problem) {
      throw new SetupError(
        `cannot get ${TENSORFLOW_WHEEL} (for libtensorflow): ${problem}`,
        "point BRAIN_MRI_PIP_INDEX (or pip's index-url) at a Python package " +
          `index that holds ${TENSORFLOW_WHEEL}`,
      );
    }
  }
  Deno.mkdirSync(options.dest, { recursive: true });
  const result = await run(options.python, {
    args: [
      "-m",
      "pip",
      "download",
      "--no-deps",
      "--only-binary=:all:",
      "--disable-pip-version-check",
      "-d",
      options.dest,
      ...pipIndexArgs(options.indexes),
      TENSORFLOW_WHEEL,
    ],
    ...(options.indexes.length
      ? { env: isolatedPipEnv(), clearEnv: true }
      : {}),
    timeoutMs: 20 * 60_000,
  });
  const wheel = findWheel(options.dest);
  if (result.code !== 0 || !wheel) {
    const output = result.stderr + result.stdout;
    const missing = /No matching distribution|Could not find a version/.test(
      output,
    );
    throw new SetupError(
      missing
        ? `${TENSORFLOW_WHEEL} (for libtensorflow) is not in ${where}`
        : `could not download ${TENSORFLOW_WHEEL} (for libtensorflow) from ` +
          `${where}: ${lastLines(output)}`,
      "make a Python package index holding the wheel reachable (pip config " +
        "index-url, or BRAIN_MRI_PIP_INDEX), or put the wheel in " +
        `${options.dest}`,
    );
  }
  return wheel;
}

function findWheel(dir: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  const name = readdirSync(dir).find((f) =>
    /^tensorflow_cpu-2\.21\.0-.*\.whl$/.test(f)
  );
  return name ? join(dir, name) : undefined;
}

function lastLines(text: string, n = 6): string {
  return text.trim().split("\n").slice(-n).join("\n");
}

// Extracts libtensorflow and the C API headers from the wheel. Python's
// zipfile streams the 800 MB library without holding it in memory.
const EXTRACT_PY = `
import os, shutil, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
libs = {
    "tensorflow/libtensorflow_cc.so.2": "lib/libtensorflow.so.${TFJS_LIBTENSORFLOW_VERSION}",
    "tensorflow/libtensorflow_framework.so.2": "lib/libtensorflow_framework.so.${TFJS_LIBTENSORFLOW_VERSION}",
}
headers = ("tensorflow/c/", "tensorflow/core/platform/", "tsl/platform/", "xla/tsl/")
with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    for src in libs:
        if src not in names:
            sys.exit(f"{wheel} has no {src}")
    for name in names:
        rel = name[len("tensorflow/include/"):] if name.startswith("tensorflow/include/") else None
        if rel is not None and rel.startswith(headers) and not name.endswith("/"):
            libs[name] = "include/" + rel
    for src, dst in libs.items():
        path = os.path.join(out, dst)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with z.open(src) as f, open(path, "wb") as o:
            shutil.copyfileobj(f, o, 1 << 20)
`;

/** Options for {@linkcode layOutDeps}. */
export interface LayOutDepsOptions {
  /** Python used to unpack the wheel. */
  python: string;
  /** The tensorflow-cpu wheel. */
  wheel: string;
  /** The tfjs-node package folder. */
  packageDir: string;
}

/**
 * Unpacks libtensorflow from the wheel into `<packageDir>/deps`, atomically:
 * into a temporary folder first, renamed into place when complete. Adds the
 * links the build and the loader need (`libtensorflow.so`,
 * `libtensorflow_cc.so.2` for the soname, and the framework's).
 *
 * Needs the 800 MB wheel and runs Python, so it is not run by
 * `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { layOutDeps } from "./libtensorflow.ts";
 * await layOutDeps({ python: "python3", wheel: "tf.whl", packageDir: "node_modules/@tensorflow/tfjs-node" });
 * ```
 */
export async function layOutDeps(options: LayOutDepsOptions): Promise<void> {
  const deps = join(options.packageDir, "deps");
  const partial = `${deps}.partial`;
  await Deno.remove(partial, { recursive: true }).catch(() => {});
  try {
    await runOk(options.python, {
      args: ["-c", EXTRACT_PY, options.wheel, partial],
      timeoutMs: 10 * 60_000,
    });
  } catch (error) {
    throw new SetupError(
      `could not unpack libtensorflow from ${options.wheel}: ${
        (error as Error).message
      }`,
      `delete ${options.wheel} (it may be truncated) and run set-up again`,
    );
  }
  const lib = join(partial, "lib");
  const v = TFJS_LIBTENSORFLOW_VERSION;
  for (
    const [link, target] of [
      ["libtensorflow.so", `libtensorflow.so.${v}`],
      ["libtensorflow_cc.so.2", `libtensorflow.so.${v}`],
      ["libtensorflow_framework.so", `libtensorflow_framework.so.${v}`],
      ["libtensorflow_framework.so.2", `libtensorflow_framework.so.${v}`],
    ]
  ) {
    await Deno.symlink(target, join(lib, link));
  }
  await Deno.remove(deps, { recursive: true }).catch(() => {});
  await Deno.rename(partial, deps);
}

/** Options for {@linkcode buildBinding}. */
export interface BuildBindingOptions {
  /** The tfjs-node package folder. */
  packageDir: string;
  /** Milliseconds to allow; default 15 minutes. */
  timeoutMs?: number;
}

/**
 * Runs tfjs-node's own `scripts/install.js`: with `deps/` already laid out it
 * builds the binding (node-pre-gyp, falling back to a source build); without
 * it, it downloads libtensorflow first (the official path). Returns whether a
 * binding is there afterwards; the command's output is kept for errors.
 *
 * Runs Node.js and a compiler (or a download), so it is not run by
 * `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { buildBinding } from "./libtensorflow.ts";
 * const { ok } = await buildBinding({ packageDir: "node_modules/@tensorflow/tfjs-node" });
 * console.log(ok);
 * ```
 */
export async function buildBinding(
  options: BuildBindingOptions,
): Promise<{ ok: boolean; output: string }> {
  const preGyp = resolve(
    options.packageDir,
    "..",
    "..",
    "@mapbox",
    "node-pre-gyp",
    "bin",
  );
  const env: Record<string, string> = {
    PATH: `${preGyp}:${Deno.env.get("PATH") ?? ""}`,
  };
  // Build against the machine's Node.js headers when they are there, so that
  // node-gyp need not download them.
  if (
    !Deno.env.get("npm_config_nodedir") &&
    existsSync("/usr/include/node/node_api.h")
  ) {
    env.npm_config_nodedir = "/usr";
  }
  let result;
  try {
    result = await run("node", {
      args: ["scripts/install.js"],
      cwd: options.packageDir,
      env,
      timeoutMs: options.timeoutMs ?? 15 * 60_000,
    });
  } catch (error) {
    if (error instanceof CommandError && !error.result) {
      throw new SetupError(
        "Node.js (`node`) is needed to build tfjs-node's native binding and " +
          "was not found on PATH",
        "install Node.js 18 or newer, with a C++ compiler and make " +
          "(Debian: apt-get install nodejs npm g++ make)",
      );
    }
    throw error;
  }
  const ok = result.code === 0 && !!bindingStatus(options.packageDir).binding;
  return { ok, output: result.stdout + result.stderr };
}

/** Options for {@linkcode provisionLibtensorflow}. */
export interface ProvisionOptions {
  /** The tfjs-node package folder. */
  packageDir: string;
  /** Python used for pip and for unpacking. */
  python: string;
  /** Index URLs for the wheel. */
  indexes: string[];
  /** Where the wheel is kept between runs. */
  wheelDir: string;
  /** Try tfjs-node's official download first (default true). */
  tryOfficial?: boolean;
  /** Rebuild even when a binding is present. */
  force?: boolean;
  /** Progress messages. */
  log?: (message: string) => void;
}

/** How the native side came to be there. */
export type ProvisionOutcome = "present" | "built" | "official" | "wheel";

/**
 * Makes sure tfjs-node has libtensorflow and a built binding: leaves a working
 * install alone, lets the official download try, and falls back to the
 * tensorflow-cpu wheel plus a source build.
 *
 * May download and build native code, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { provisionLibtensorflow, tfjsNodeDir } from "./libtensorflow.ts";
 * const how = await provisionLibtensorflow({
 *   packageDir: tfjsNodeDir("."),
 *   python: ".venv/bin/python",
 *   indexes: [],
 *   wheelDir: ".cache/setup/wheels",
 * });
 * console.log(how); // "present", "built", "official" or "wheel"
 * ```
 */
export async function provisionLibtensorflow(
  options: ProvisionOptions,
): Promise<ProvisionOutcome> {
  const log = options.log ?? (() => {});
  const status = bindingStatus(options.packageDir);
  if (!options.force && status.binding && status.library) return "present";
  if (options.force) {
    await Deno.remove(join(options.packageDir, "deps"), { recursive: true })
      .catch(() => {});
    await Deno.remove(join(options.packageDir, "lib"), { recursive: true })
      .catch(() => {});
  } else if (status.library) {
    // An earlier run laid out libtensorflow but did not finish the build.
    log("building the tfjs-node binding against the libtensorflow in deps/");
    if ((await buildBinding({ packageDir: options.packageDir })).ok) {
      return "built";
    }
  }

  if (options.tryOfficial ?? true) {
    log("trying tfjs-node's own libtensorflow download");
    const official = await buildBinding({
      packageDir: options.packageDir,
      timeoutMs: 10 * 60_000,
    });
    if (official.ok && bindingStatus(options.packageDir).library) {
      return "official";
    }
    log(
      "the official download did not work (" +
        (official.output.split("\n").find((l) => /error/i.test(l))?.trim() ??
          lastLines(official.output, 1)) +
        "); using the tensorflow-cpu wheel instead",
    );
  }

  log(`getting ${TENSORFLOW_WHEEL}`);
  const wheel = await downloadTensorflowWheel({
    python: options.python,
    indexes: options.indexes,
    dest: options.wheelDir,
  });
  log(`unpacking libtensorflow from ${wheel}`);
  await layOutDeps({
    python: options.python,
    wheel,
    packageDir: options.packageDir,
  });
  log("building the tfjs-node binding from source");
  const built = await buildBinding({ packageDir: options.packageDir });
  if (!built.ok) {
    throw new SetupError(
      `building tfjs-node's binding from source failed:\n${
        lastLines(built.output, 20)
      }`,
      "a C++ compiler, make and Python 3 are needed (Debian: apt-get install " +
        "g++ make python3); see README, 'Troubleshooting the native " +
        "TensorFlow library'",
    );
  }
  return "wheel";
}
