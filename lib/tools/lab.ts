/**
 * `deno task lab`: starts JupyterLab on the project with the project's Deno
 * kernel. Everything after `--` goes to JupyterLab
 * (`deno task lab -- --port 8899 --no-browser`); before it, `--help` shows
 * the usage.
 *
 * @module
 */
import { join } from "node:path";
import { projectPaths } from "../core/paths.ts";
import { jupyterEnv } from "./python_env.ts";
import { runCli } from "../core/cli.ts";

/** Options for {@linkcode labCommand}. */
export interface LabCommandOptions {
  /** Extra JupyterLab arguments. */
  args?: string[];
  /** The folder JupyterLab serves (default: the project root). */
  root?: string;
}

/**
 * The command that starts JupyterLab on the project: the venv's `jupyter lab`
 * with the project root as the server root, and the environment that makes
 * the project's `deno` kernelspec the one found (plus `--allow-root` when run
 * as root). `root` serves another folder with the same kernel (tests use a
 * temporary one).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { labCommand } from "./lab.ts";
 * const { command, args, env } = labCommand({ args: ["--no-browser"] });
 * assert.match(command, /\/\.venv\/bin\/jupyter$/);
 * assert.equal(args[0], "lab");
 * assert.equal(args.at(-1), "--no-browser");
 * assert.match(env.PATH, /\.venv\/bin:/);
 * ```
 */
export function labCommand(
  options: LabCommandOptions = {},
): { command: string; args: string[]; env: Record<string, string> } {
  const paths = projectPaths();
  return {
    command: join(paths.venv, "bin", "jupyter"),
    args: [
      "lab",
      `--ServerApp.root_dir=${options.root ?? paths.root}`,
      // Containers and CI run as root; JupyterLab refuses that without this.
      ...(Deno.uid() === 0 ? ["--allow-root"] : []),
      ...(options.args ?? []),
    ],
    env: jupyterEnv(paths),
  };
}

/** A command line of `deno task lab`, split at its first `--`. */
export interface LabArgs {
  /** The lab's own arguments (only `--help`). */
  own: string[];
  /** The arguments after `--`, for JupyterLab. */
  jupyter: string[];
}

/**
 * Splits the arguments `deno task lab` was given at the first `--`: what
 * comes before is the lab's own command line, what comes after goes to
 * JupyterLab unchanged (another `--` included). Without a `--`, only
 * `-h`/`--help` is the lab's own and everything else goes to JupyterLab, so
 * `deno task lab --no-browser` works as well.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { labArgs } from "./lab.ts";
 * assert.deepEqual(labArgs(["--", "--port", "8899"]), {
 *   own: [],
 *   jupyter: ["--port", "8899"],
 * });
 * assert.deepEqual(labArgs(["--help"]), { own: ["--help"], jupyter: [] });
 * assert.deepEqual(labArgs(["--no-browser"]), {
 *   own: [],
 *   jupyter: ["--no-browser"],
 * });
 * ```
 */
export function labArgs(args: readonly string[]): LabArgs {
  const end = args.indexOf("--");
  if (end >= 0) {
    return { own: args.slice(0, end), jupyter: args.slice(end + 1) };
  }
  const isHelp = (a: string) => a === "-h" || a === "--help";
  return { own: args.filter(isHelp), jupyter: args.filter((a) => !isHelp(a)) };
}

/** The command line of `deno task lab`. */
export const LAB_CLI = {
  command: "deno task lab",
  summary: "Starts JupyterLab on the project with the project's Deno kernel.",
  flags: {},
  footer: "Every argument after `--` goes to JupyterLab, e.g.\n" +
    "  deno task lab -- --no-browser --port 8899\n" +
    "(JupyterLab's own options: deno task lab -- --help)",
} as const;

/** Runs JupyterLab until it exits (Ctrl-C stops it); returns its exit code. */
async function startLab(jupyterArgs: string[]): Promise<number> {
  const { command, args, env } = labCommand({ args: jupyterArgs });
  const child = new Deno.Command(command, { args, env, stdin: "inherit" })
    .spawn();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => child.kill(signal));
  }
  return (await child.status).code;
}

if (import.meta.main) {
  const { own, jupyter } = labArgs(Deno.args);
  Deno.exit(await runCli(LAB_CLI, () => startLab(jupyter), { args: own }));
}
