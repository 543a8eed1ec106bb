/**
 * Small pieces every benchmark needs: flag checks a type cannot express, the
 * dataset a benchmark reads by default, paths as the results record them,
 * the machine's load, medians, and an even sample of a list.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { UsageError } from "../lib/core/cli.ts";
import { projectPaths } from "../lib/core/paths.ts";
import { datasetName } from "../lib/train/run_files.ts";

/**
 * A flag's value when it is a positive integer; otherwise a
 * {@linkcode UsageError} naming the flag.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { positiveInt } from "./bench_util.ts";
 * assert.equal(positiveInt(3, "runs"), 3);
 * assert.throws(() => positiveInt(0, "runs"), /--runs must be a positive integer \(got "0"\)/);
 * ```
 */
export function positiveInt(value: number, flag: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new UsageError(
      `--${flag} must be a positive integer (got "${value}")`,
    );
  }
  return value;
}

/** Options for {@linkcode benchDataset}. */
export interface BenchDatasetOptions {
  /** The `--data` flag's value, if given (relative to the current folder). */
  given?: string;
  /** The dataset root to default to (default `projectPaths().data`). */
  root?: string;
}

/**
 * The folder of class folders a benchmark reads: `--data` when given, else
 * the `Training/` folder of the project's dataset root (`BRAIN_MRI_DATA`,
 * else `data/`), else that root itself. A folder that is not there is an
 * error that says how to get one (a {@linkcode UsageError} when `--data`
 * named it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { benchDataset } from "./bench_util.ts";
 * const root = Deno.makeTempDirSync();
 * assert.throws(() => benchDataset({ root: `${root}/none` }), /no dataset at /);
 * assert.equal(benchDataset({ root }), root);
 * Deno.mkdirSync(`${root}/Training`);
 * assert.equal(benchDataset({ root }), `${root}/Training`);
 * assert.equal(benchDataset({ given: root }), root);
 * Deno.removeSync(root, { recursive: true });
 * ```
 */
export function benchDataset(options: BenchDatasetOptions = {}): string {
  if (options.given !== undefined) {
    const path = resolve(options.given);
    if (!existsSync(path)) {
      throw new UsageError(`--data ${options.given}: no such folder`);
    }
    return path;
  }
  const root = options.root ?? projectPaths().data;
  const training = join(root, "Training");
  if (existsSync(training)) return training;
  if (existsSync(root)) return root;
  throw new Error(
    `no dataset at ${root}: pass --data DIR, set ` +
      "BRAIN_MRI_DATA, or fetch it with `deno task data:download`",
  );
}

/**
 * A path as the benchmark results record it, never absolute, so that a
 * result file says nothing about the machine it was measured on: relative to
 * the project root when it lies inside it (`.cache/bench/...`,
 * `models/NAME`), else its last two parts (`brain-tumor-mri/Training`), as
 * run manifests name datasets (`datasetName` of `lib/train/run_files.ts`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { recordedPath } from "./bench_util.ts";
 * import { PROJECT_ROOT } from "../lib/core/paths.ts";
 * assert.equal(recordedPath(`${PROJECT_ROOT}/models/run`), "models/run");
 * assert.equal(recordedPath("/srv/mri/brain-tumor-mri/Training"), "brain-tumor-mri/Training");
 * ```
 */
export function recordedPath(path: string): string {
  return datasetName(path);
}

/**
 * Text broken into lines of at most `width` characters at spaces (a word
 * longer than that keeps its own line): for long lists in a usage text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wrapWords } from "./bench_util.ts";
 * assert.equal(wrapWords("known: tfjs, native, native-bfc", 14), "known: tfjs,\nnative,\nnative-bfc");
 * ```
 */
export function wrapWords(text: string, width = 50): string {
  const lines: string[] = [];
  for (const word of text.split(" ")) {
    const last = lines.at(-1);
    if (last !== undefined && last.length + 1 + word.length <= width) {
      lines[lines.length - 1] = `${last} ${word}`;
    } else lines.push(word);
  }
  return lines.join("\n");
}

/**
 * The one-minute load average (`/proc/loadavg`), printed beside timings.
 *
 * Reads `/proc` (Linux only), so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { loadAverage } from "./bench_util.ts";
 * console.log(loadAverage() >= 0); // true
 * ```
 */
export function loadAverage(): number {
  return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
}

/**
 * The median of some numbers (the mean of the middle two for an even count).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { median } from "./bench_util.ts";
 * assert.equal(median([3, 1, 2]), 2);
 * assert.equal(median([4, 1, 2, 3]), 2.5);
 * ```
 */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * `limit` items spread evenly over the list (all of them when `limit` is
 * absent or not smaller than the list).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { evenlySpaced } from "./bench_util.ts";
 * assert.deepEqual(evenlySpaced([0, 1, 2, 3, 4, 5], 3), [0, 2, 4]);
 * ```
 */
export function evenlySpaced<T>(items: T[], limit?: number): T[] {
  if (limit === undefined || limit >= items.length) return items;
  return Array.from(
    { length: limit },
    (_, i) => items[Math.floor((i * items.length) / limit)],
  );
}
