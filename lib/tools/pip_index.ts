/**
 * Which Python package index pip should use, and the pip arguments for it.
 *
 * On the project's machines pip is configured (`pip config list`) with a local
 * file index; the public index is unreachable, and pip would wait minutes on
 * it. So: when pip's configuration names index URLs, set-up points pip at
 * exactly those (the first as `--index-url`, the rest as `--extra-index-url`)
 * and never at the public one. `BRAIN_MRI_PIP_INDEX` (space-separated URLs)
 * overrides both. With nothing configured (a laptop), pip's default is kept.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { run } from "./proc.ts";

/**
 * Parses the output of `pip config list` into the index URLs it names:
 * `index-url` first, then every `extra-index-url`, in order, without repeats.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePipConfig } from "./pip_index.ts";
 * const urls = parsePipConfig(
 *   "global.extra-index-url='file:///opt/pypi/simple file:///opt/more/simple'\n" +
 *     "global.index-url='https://pypi.example/simple'\n",
 * );
 * assert.deepEqual(urls, [
 *   "https://pypi.example/simple", // index-url first
 *   "file:///opt/pypi/simple",
 *   "file:///opt/more/simple",
 * ]);
 * ```
 */
export function parsePipConfig(text: string): string[] {
  const primary: string[] = [];
  const extra: string[] = [];
  for (const line of text.split("\n")) {
    const match = line.match(/^[\w:.]*?\.?(index-url|extra-index-url)='(.*)'$/);
    if (!match) continue;
    const urls = match[2].split(/\s+/).filter(Boolean);
    (match[1] === "index-url" ? primary : extra).push(...urls);
  }
  return [...new Set([...primary, ...extra])];
}

/** Options for {@linkcode configuredIndexes}. */
export interface ConfiguredIndexesOptions {
  /** The Python used to ask pip; defaults to `python3`. */
  python?: string;
  /** Environment; defaults to `Deno.env`. */
  env?: Record<string, string | undefined>;
}

/**
 * The index URLs set-up should use: `BRAIN_MRI_PIP_INDEX` if set, else the
 * ones pip's configuration and `PIP_INDEX_URL`/`PIP_EXTRA_INDEX_URL` name;
 * an empty list means "pip's default index".
 *
 * @example `BRAIN_MRI_PIP_INDEX` wins (pip is not asked)
 * ```ts
 * import assert from "node:assert/strict";
 * import { configuredIndexes } from "./pip_index.ts";
 * const indexes = await configuredIndexes({
 *   env: { BRAIN_MRI_PIP_INDEX: " file:///a/simple  file:///b/simple " },
 * });
 * assert.deepEqual(indexes, ["file:///a/simple", "file:///b/simple"]);
 * ```
 */
export async function configuredIndexes(
  options: ConfiguredIndexesOptions = {},
): Promise<string[]> {
  const get = (name: string) =>
    options.env ? options.env[name] : Deno.env.get(name);
  const override = get("BRAIN_MRI_PIP_INDEX")?.trim();
  if (override) return override.split(/\s+/);
  const fromEnv = [get("PIP_INDEX_URL"), get("PIP_EXTRA_INDEX_URL")]
    .flatMap((v) => v?.trim().split(/\s+/).filter(Boolean) ?? []);
  const { code, stdout } = await run(options.python ?? "python3", {
    args: ["-m", "pip", "config", "list"],
    timeoutMs: 60_000,
  });
  const fromConfig = code === 0 ? parsePipConfig(stdout) : [];
  return [...new Set([...fromEnv, ...fromConfig])];
}

/**
 * The pip arguments that use exactly `indexes` (none for pip's default), with
 * no retries against an index that does not answer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pipIndexArgs } from "./pip_index.ts";
 * assert.deepEqual(pipIndexArgs(["file:///a/simple", "file:///b/simple"]), [
 *   "--index-url",
 *   "file:///a/simple",
 *   "--extra-index-url",
 *   "file:///b/simple",
 *   "--retries",
 *   "1",
 *   "--timeout",
 *   "20",
 * ]);
 * assert.deepEqual(pipIndexArgs([]), []); // pip's default index
 * ```
 */
export function pipIndexArgs(indexes: string[]): string[] {
  if (indexes.length === 0) return [];
  const args = ["--index-url", indexes[0]];
  for (const url of indexes.slice(1)) args.push("--extra-index-url", url);
  return [...args, "--retries", "1", "--timeout", "20"];
}

/**
 * The environment for a pip that must use exactly the indexes on its command
 * line: pip's configuration files are switched off (`PIP_CONFIG_FILE` set to
 * `/dev/null`) and `PIP_*` index and find-links variables dropped, so neither
 * a configured extra index nor find-links folder can slip in. Use with
 * `clearEnv: true`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isolatedPipEnv } from "./pip_index.ts";
 * const env = isolatedPipEnv({ PATH: "/usr/bin", PIP_FIND_LINKS: "/opt/wheels" });
 * assert.deepEqual(env, { PATH: "/usr/bin", PIP_CONFIG_FILE: "/dev/null" });
 * ```
 */
export function isolatedPipEnv(
  env: Record<string, string> = Deno.env.toObject(),
): Record<string, string> {
  const dropped =
    /^PIP_(INDEX_URL|EXTRA_INDEX_URL|FIND_LINKS|NO_INDEX|CONFIG_FILE)$/;
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (!dropped.test(key)) out[key] = value;
  }
  out.PIP_CONFIG_FILE = "/dev/null";
  return out;
}

/**
 * Describes why an index cannot be used, or `undefined` when it may be. Only
 * `file:` indexes can be checked without a network round trip; others are
 * left to pip.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { indexProblem } from "./pip_index.ts";
 * assert.equal(
 *   indexProblem("file:///no/such/simple"),
 *   "the local index file:///no/such/simple does not exist",
 * );
 * assert.equal(indexProblem("https://pypi.org/simple"), undefined); // left to pip
 * ```
 */
export function indexProblem(url: string): string | undefined {
  if (!url.startsWith("file:")) return undefined;
  let path: string;
  try {
    path = fileURLToPath(url);
  } catch {
    return `the index URL ${url} is not a valid file URL`;
  }
  return existsSync(path) ? undefined : `the local index ${url} does not exist`;
}
