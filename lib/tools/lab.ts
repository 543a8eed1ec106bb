/**
 * `deno task lab`: starts JupyterLab on the project with the project's Deno
 * kernel. Flags after `--` go to JupyterLab (e.g. `-- --port 8899 --no-browser`).
 *
 * @module
 */
import { join } from "node:path";
import { projectPaths } from "../core/paths.ts";
import { jupyterEnv } from "./python_env.ts";
import { taskArgs } from "../core/cli.ts";

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
 * import { labCommand } from "./lab.ts";
 * const { command, args } = labCommand({ args: ["--no-browser"] });
 * console.log(command, args.join(" "));
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

if (import.meta.main) {
  const { command, args, env } = labCommand({ args: taskArgs() });
  const child = new Deno.Command(command, { args, env, stdin: "inherit" })
    .spawn();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => child.kill(signal));
  }
  Deno.exit((await child.status).code);
}
