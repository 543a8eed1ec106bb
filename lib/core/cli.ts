/**
 * Small helpers shared by the command-line entry points.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/**
 * The arguments a task was given, without the `--` separator that
 * `deno task NAME -- --flag` passes through: both `deno task audit --data D`
 * and `deno task audit -- --data D` work.
 *
 * @example
 * ```ts
 * import { taskArgs } from "./cli.ts";
 * console.log(taskArgs(["--", "--data", "d"])); // ["--data", "d"]
 * ```
 */
export function taskArgs(args: readonly string[] = Deno.args): string[] {
  return args[0] === "--" ? args.slice(1) : [...args];
}

/**
 * Parses a command line with `node:util`'s `parseArgs` and handles what every
 * entry point handles the same way: `-h`/`--help` prints `usage` and gives
 * exit code 0; a usage error (unknown flag, missing value, stray argument)
 * prints `error: <why>` and `usage` to stderr and gives exit code 2. Returns
 * the parsed values and positionals, or that exit code.
 *
 * @example
 * ```ts
 * import { parseCli } from "./cli.ts";
 * const parsed = parseCli("usage: demo --data DIR", {
 *   args: ["--data", "d"],
 *   options: { data: { type: "string" } },
 *   strict: true,
 * });
 * if (typeof parsed !== "number") console.log(parsed.values.data); // "d"
 * ```
 */
export function parseCli<T extends ParseArgsConfig>(
  usage: string,
  config: T,
): ReturnType<typeof parseArgs<T>> | number {
  const args = config.args ?? taskArgs();
  const end = args.indexOf("--");
  const flags = end < 0 ? args : args.slice(0, end);
  if (flags.includes("--help") || flags.includes("-h")) {
    console.log(usage);
    return 0;
  }
  try {
    return parseArgs<T>({ ...config, args } as T);
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n${usage}`);
    return 2;
  }
}
