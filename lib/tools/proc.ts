/**
 * Running other programs (pip, python, node, deno) with their output captured
 * and failures that name the command.
 *
 * @module
 */

/** What a finished command left behind. */
export interface RunResult {
  /** Exit code. */
  code: number;
  /** Standard output, decoded as UTF-8. */
  stdout: string;
  /** Standard error, decoded as UTF-8. */
  stderr: string;
}

/** Options for {@linkcode run}. */
export interface RunOptions {
  /** Arguments after the command. */
  args?: string[];
  /** Working directory. */
  cwd?: string;
  /** Extra environment variables (added to the current environment). */
  env?: Record<string, string>;
  /** Start from an empty environment: only `env` is passed. */
  clearEnv?: boolean;
  /** Pass output through to this process's terminal instead of capturing. */
  inherit?: boolean;
  /** Kill the command after this many milliseconds. */
  timeoutMs?: number;
}

/** A command could not be started, failed, or timed out. */
export class CommandError extends Error {
  /** The result, when the command ran at all. */
  readonly result?: RunResult;
  /**
   * A command that failed, with its result when it ran at all.
   *
   * @param message what went wrong
   * @param result the command's result
   */
  constructor(message: string, result?: RunResult) {
    super(message);
    this.name = "CommandError";
    this.result = result;
  }
}

/**
 * Runs a command to completion. Never throws for a non-zero exit (check
 * `code`); throws {@linkcode CommandError} when the program does not exist
 * or the timeout passes.
 *
 * Runs another program, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { run } from "./proc.ts";
 * const { code, stdout } = await run("python3", { args: ["--version"] });
 * console.log(code, stdout);
 * ```
 */
export async function run(
  command: string,
  options: RunOptions = {},
): Promise<RunResult> {
  const controller = new AbortController();
  const timer = options.timeoutMs === undefined
    ? undefined
    : setTimeout(() => controller.abort(), options.timeoutMs);
  try {
    const output = await new Deno.Command(command, {
      args: options.args ?? [],
      cwd: options.cwd,
      env: options.env,
      clearEnv: options.clearEnv,
      stdin: "null",
      stdout: options.inherit ? "inherit" : "piped",
      stderr: options.inherit ? "inherit" : "piped",
      signal: controller.signal,
    }).output();
    const decoder = new TextDecoder();
    const result = {
      code: output.code,
      stdout: options.inherit ? "" : decoder.decode(output.stdout),
      stderr: options.inherit ? "" : decoder.decode(output.stderr),
    };
    if (controller.signal.aborted) {
      throw new CommandError(
        `${describe(command, options.args)} did not finish within ` +
          `${options.timeoutMs} ms`,
        result,
      );
    }
    return result;
  } catch (error) {
    if (error instanceof CommandError) throw error;
    if (error instanceof Deno.errors.NotFound) {
      throw new CommandError(`${command}: not found on PATH`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs a command and throws {@linkcode CommandError} unless it exits 0. The
 * error message carries the tail of the command's standard error.
 *
 * Runs another program, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { runOk } from "./proc.ts";
 * const { stdout } = await runOk("git", { args: ["--version"] });
 * console.log(stdout.trim());
 * ```
 */
export async function runOk(
  command: string,
  options: RunOptions = {},
): Promise<RunResult> {
  const result = await run(command, options);
  if (result.code !== 0) {
    throw new CommandError(
      `${describe(command, options.args)} exited with code ${result.code}` +
        tail(result.stderr || result.stdout),
      result,
    );
  }
  return result;
}

/** Options for {@linkcode stopProcess}. */
export interface StopProcessOptions {
  /** How long SIGTERM may take before SIGKILL (default 60,000 ms). */
  graceMs?: number;
}

/**
 * Stops a spawned process: SIGTERM, then SIGKILL if it has not exited after
 * `graceMs`, so a caller never waits forever on a process that hangs on
 * SIGTERM. Resolves with its exit status (also when it had already exited).
 *
 * Starts and stops another program, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { stopProcess } from "./proc.ts";
 * const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
 * const status = await stopProcess(child, { graceMs: 5_000 });
 * console.log(status.signal); // "SIGTERM"
 * ```
 */
export async function stopProcess(
  child: Deno.ChildProcess,
  options: StopProcessOptions = {},
): Promise<Deno.CommandStatus> {
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // it has exited already
    }
  };
  kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stopped = await Promise.race([
    child.status,
    new Promise<null>((r) =>
      timer = setTimeout(() => r(null), options.graceMs ?? 60_000)
    ),
  ]);
  clearTimeout(timer);
  if (stopped) return stopped;
  kill("SIGKILL");
  return await child.status;
}

function describe(command: string, args: string[] = []): string {
  const shown = [command, ...args].join(" ");
  return `\`${shown.length > 160 ? shown.slice(0, 157) + "..." : shown}\``;
}

function tail(text: string, lines = 15): string {
  const kept = text.trim().split("\n").slice(-lines).join("\n");
  return kept ? `:\n${kept}` : "";
}
