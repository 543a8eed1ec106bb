/**
 * Small helpers shared by the command-line entry points.
 *
 * @module
 */

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
