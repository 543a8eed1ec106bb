/**
 * Command lines, declared once. A command lists its flags — name, type,
 * default and help — in one {@linkcode CliSpec}; the usage text is generated
 * from that declaration and the same declaration parses, converts and checks
 * the arguments. Every entry point behaves the same way:
 *
 * - `-h`/`--help` prints the usage and exits 0;
 * - a mistake (unknown flag, missing or malformed value, stray argument)
 *   prints `error: <why>` and the usage to stderr and exits 2;
 * - `deno task NAME -- --flag` and `deno task NAME --flag` are the same.
 *
 * @example A command with two flags
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseFlags, usage } from "./cli.ts";
 * const spec = {
 *   command: "deno task demo",
 *   summary: "Shows how flags are declared.",
 *   flags: {
 *     epochs: { type: "integer", default: 10, help: "most epochs" },
 *     data: { type: "string", value: "DIR", help: "dataset root" },
 *   },
 * } as const;
 * const { values } = parseFlags(spec, ["--epochs", "3"]);
 * assert.equal(values.epochs, 3);
 * assert.equal(values.data, undefined);
 * assert.match(usage(spec), /--epochs N +most epochs \(default 10\)/);
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";

/** A mistake in a command line: reported with the usage, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The types a flag's value can have. */
export type FlagType = "string" | "number" | "integer" | "boolean";

/** One flag: its type, default and help line. */
export interface FlagSpec {
  /** The value's type; `boolean` flags take no value. */
  readonly type: FlagType;
  /** One line (or a few) of help. */
  readonly help: string;
  /** The value when the flag is not given; shown as `(default …)`. */
  readonly default?: string | number | boolean;
  /** Shown instead of the default value (e.g. `"BRAIN_MRI_DATA, else data/"`). */
  readonly defaultText?: string;
  /** The value's placeholder in the usage (default `N`, `X` or `VALUE`). */
  readonly value?: string;
  /** The only values allowed (strings). */
  readonly choices?: readonly string[];
  /** The flag may be repeated; its value is then an array. */
  readonly multiple?: boolean;
  /** A one-letter alias, e.g. `"o"` for `-o`. */
  readonly short?: string;
}

/**
 * The `--model DIR` flag every command that uses a saved model shares: a
 * saved-model folder or a run folder holding `model/`; by default
 * `BRAIN_MRI_MODEL`, else the shipped model.
 */
export const MODEL_FLAG = {
  type: "string",
  value: "DIR",
  defaultText: "BRAIN_MRI_MODEL, else the shipped model",
  help: "saved model, or a run folder holding model/",
} as const satisfies FlagSpec;

/** A command: what it is called, what it does, its flags and arguments. */
export interface CliSpec {
  /** How it is run, e.g. `"deno task train"`. */
  readonly command: string;
  /** What it does, one short paragraph. */
  readonly summary: string;
  /** Its flags, by name as typed (`"batch-size"`). */
  readonly flags: Readonly<Record<string, FlagSpec>>;
  /** Its positional arguments, e.g. `"FILE_OR_DIR..."`; none when absent. */
  readonly positionals?: string;
  /** The fewest positional arguments (default 0). */
  readonly minPositionals?: number;
  /** Text after the flags (environment variables, examples). */
  readonly footer?: string;
}

type Scalar<F extends FlagSpec> = F["type"] extends "boolean" ? boolean
  : F["type"] extends "number" | "integer" ? number
  : F extends { choices: readonly (infer C)[] } ? C
  : string;

/** The parsed value of one flag: defaults make it always present. */
export type FlagValue<F extends FlagSpec> = F["multiple"] extends true
  ? Scalar<F>[]
  : F["type"] extends "boolean" ? boolean
  : F extends { default: string | number | boolean } ? Scalar<F>
  : Scalar<F> | undefined;

/** The parsed values of a command's flags, by flag name. */
export type FlagValues<S extends CliSpec> = {
  -readonly [K in keyof S["flags"]]: FlagValue<S["flags"][K]>;
};

/** A parsed command line. */
export interface ParsedCli<S extends CliSpec> {
  /** Every flag's value (converted, checked, defaulted). */
  values: FlagValues<S>;
  /** The positional arguments. */
  positionals: string[];
}

/**
 * The arguments a task was given, without the `--` separator that
 * `deno task NAME -- --flag` passes through: both `deno task audit --data D`
 * and `deno task audit -- --data D` work.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { taskArgs } from "./cli.ts";
 * assert.deepEqual(taskArgs(["--", "--data", "d"]), ["--data", "d"]);
 * ```
 */
export function taskArgs(args: readonly string[] = Deno.args): string[] {
  return args[0] === "--" ? args.slice(1) : [...args];
}

function placeholder(flag: FlagSpec): string {
  if (flag.type === "boolean") return "";
  if (flag.value) return flag.value;
  if (flag.choices) return flag.choices.join("|");
  return flag.type === "integer" ? "N" : flag.type === "number" ? "X" : "VALUE";
}

function defaultNote(flag: FlagSpec): string {
  if (flag.defaultText !== undefined) return ` (default ${flag.defaultText})`;
  if (flag.default === undefined || flag.type === "boolean") return "";
  return ` (default ${flag.default})`;
}

/**
 * The usage text of a command, generated from its declaration: the synopsis,
 * the summary, one entry per flag with its default, and the footer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { usage } from "./cli.ts";
 * const text = usage({
 *   command: "deno task predict",
 *   summary: "Classifies scans.",
 *   positionals: "FILE...",
 *   flags: { json: { type: "boolean", help: "print JSON" } },
 * });
 * assert.match(text, /^usage: deno task predict -- \[options\] FILE\.\.\./);
 * assert.match(text, /  --json +print JSON/);
 * assert.match(text, /  -h, --help +show this help/);
 * ```
 */
export function usage(spec: CliSpec): string {
  const entries = Object.entries(spec.flags).map(([name, flag]) => {
    const short = flag.short ? `-${flag.short}, ` : "";
    const value = placeholder(flag);
    return {
      left: `${short}--${name}${value ? ` ${value}` : ""}`,
      help: `${flag.help}${defaultNote(flag)}`,
    };
  });
  entries.push({ left: "-h, --help", help: "show this help" });
  const width = Math.min(
    28,
    Math.max(...entries.map((e) => e.left.length)) + 2,
  );
  const lines = entries.map(({ left, help }) => {
    const pad = left.length + 2 > width
      ? `\n${" ".repeat(width + 2)}`
      : " ".repeat(width - left.length);
    const body = help.replaceAll("\n", `\n${" ".repeat(width + 2)}`);
    return `  ${left}${pad}${body}`;
  });
  const synopsis = `usage: ${spec.command} -- [options]` +
    (spec.positionals ? ` ${spec.positionals}` : "");
  const parts = [synopsis, "", spec.summary.trim(), "", ...lines];
  if (spec.footer) parts.push("", spec.footer.trim());
  return parts.join("\n");
}

function convert(name: string, flag: FlagSpec, raw: string | boolean) {
  if (flag.type === "boolean") return raw;
  const text = String(raw);
  if (flag.type === "string") {
    if (flag.choices && !flag.choices.includes(text)) {
      throw new UsageError(
        `--${name} must be one of ${flag.choices.join(", ")} (got "${text}")`,
      );
    }
    return text;
  }
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value)) {
    throw new UsageError(`--${name} must be a number (got "${text}")`);
  }
  if (flag.type === "integer" && !Number.isInteger(value)) {
    throw new UsageError(`--${name} must be a whole number (got "${text}")`);
  }
  return value;
}

/**
 * Parses a command line against a declaration: converts each value to its
 * type, checks choices, fills in defaults and counts positionals. Throws
 * {@linkcode UsageError} on any mistake. `--help` is not handled here (see
 * {@linkcode runCli}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseFlags, UsageError } from "./cli.ts";
 * const spec = {
 *   command: "deno task demo",
 *   summary: "Demo.",
 *   flags: { lr: { type: "number", default: 0.001, help: "learning rate" } },
 * } as const;
 * assert.equal(parseFlags(spec, ["--lr", "0.01"]).values.lr, 0.01);
 * assert.throws(() => parseFlags(spec, ["--lr", "fast"]), UsageError);
 * assert.throws(() => parseFlags(spec, ["--nope"]), UsageError);
 * ```
 */
export function parseFlags<const S extends CliSpec>(
  spec: S,
  args: readonly string[],
): ParsedCli<S> {
  const options: Record<
    string,
    { type: "string" | "boolean"; multiple?: boolean; short?: string }
  > = {};
  for (const [name, flag] of Object.entries(spec.flags)) {
    options[name] = {
      type: flag.type === "boolean" ? "boolean" : "string",
      ...(flag.multiple ? { multiple: true } : {}),
      ...(flag.short ? { short: flag.short } : {}),
    };
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: taskArgs(args),
      options,
      strict: true,
      allowPositionals: spec.positionals !== undefined,
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const values: Record<string, unknown> = {};
  for (const [name, flag] of Object.entries(spec.flags)) {
    const raw = parsed.values[name];
    if (raw === undefined) {
      values[name] = flag.multiple
        ? []
        : flag.type === "boolean"
        ? false
        : flag.default;
    } else if (Array.isArray(raw)) {
      values[name] = raw.map((r) => convert(name, flag, r));
    } else {
      values[name] = convert(name, flag, raw);
    }
  }
  const positionals = parsed.positionals;
  if (positionals.length < (spec.minPositionals ?? 0)) {
    throw new UsageError(`expected ${spec.positionals}`);
  }
  return { values: values as FlagValues<S>, positionals };
}

/** Options for {@linkcode runCli}. */
export interface RunCliOptions {
  /** The arguments (default `Deno.args`). */
  args?: readonly string[];
}

/**
 * Runs a command: `--help` prints the usage (exit 0); otherwise the arguments
 * are parsed and `main` runs with them. A {@linkcode UsageError} — from the
 * parse or thrown by `main` — prints `error: <why>` and the usage to stderr
 * (exit 2). Returns the exit code.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runCli } from "./cli.ts";
 * const spec = {
 *   command: "deno task demo",
 *   summary: "Demo.",
 *   flags: { n: { type: "integer", default: 1, help: "how many" } },
 * } as const;
 * const code = await runCli(spec, async ({ values }) => values.n * 0, {
 *   args: ["--n", "2"],
 * });
 * assert.equal(code, 0);
 * ```
 */
export async function runCli<const S extends CliSpec>(
  spec: S,
  main: (parsed: ParsedCli<S>) => Promise<number> | number,
  options: RunCliOptions = {},
): Promise<number> {
  const args = taskArgs(options.args ?? Deno.args);
  const end = args.indexOf("--");
  const flags = end < 0 ? args : args.slice(0, end);
  if (flags.includes("--help") || flags.includes("-h")) {
    console.log(usage(spec));
    return 0;
  }
  try {
    return await main(parseFlags(spec, args));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`error: ${error.message}\n${usage(spec)}`);
    return 2;
  }
}
