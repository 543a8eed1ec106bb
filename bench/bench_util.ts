/**
 * Small pieces every benchmark needs: flag parsing errors, the machine's load,
 * medians, and an even sample of a list.
 *
 * @module
 */

/** A mistake in a benchmark's command line (its `main` prints the usage). */
export class UsageError extends Error {}

/**
 * A positive integer flag value, or `fallback` when absent; otherwise a
 * {@linkcode UsageError} naming the flag.
 *
 * @example
 * ```ts
 * import { positiveInt } from "./bench_util.ts";
 * console.log(positiveInt("3", "runs", 1), positiveInt(undefined, "runs", 1)); // 3 1
 * ```
 */
export function positiveInt(
  value: string | undefined,
  flag: string,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(
      `--${flag} must be a positive integer (got "${value}")`,
    );
  }
  return n;
}

/**
 * The one-minute load average (`/proc/loadavg`), printed beside timings.
 *
 * @example
 * ```ts
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
 * import { median } from "./bench_util.ts";
 * console.log(median([3, 1, 2]), median([4, 1, 2, 3])); // 2 2.5
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
 * import { evenlySpaced } from "./bench_util.ts";
 * console.log(evenlySpaced([0, 1, 2, 3, 4, 5], 3)); // [0, 2, 4]
 * ```
 */
export function evenlySpaced<T>(items: T[], limit?: number): T[] {
  if (limit === undefined || limit >= items.length) return items;
  return Array.from(
    { length: limit },
    (_, i) => items[Math.floor((i * items.length) / limit)],
  );
}
