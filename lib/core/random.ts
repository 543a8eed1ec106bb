/**
 * Seeded randomness. Every random choice in the project (synthetic data,
 * splits, shuffles, augmentation, weight initialisation) takes a seed and
 * draws from a generator made here, so runs are reproducible.
 *
 * Built on `seedrandom`'s Alea generator (the same package tfjs uses).
 *
 * @module
 */
import seedrandom from "seedrandom";

/** A seeded source of random numbers. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [min, max). */
  uniform(min: number, max: number): number;
  /** Integer uniform in [min, max] (both inclusive). */
  int(min: number, max: number): number;
  /** Standard normal (Box–Muller), scaled: mean + sd * z. */
  normal(mean?: number, sd?: number): number;
  /** A 32-bit integer, handy as a seed for another generator. */
  int32(): number;
  /** Shuffles an array in place (Fisher–Yates) and returns it. */
  shuffle<T>(items: T[]): T[];
  /** Picks one element. */
  pick<T>(items: readonly T[]): T;
}

/**
 * A seeded generator. The same seed always gives the same sequence, on every
 * machine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rng } from "./random.ts";
 * const a = rng(42);
 * const b = rng(42);
 * const order = a.shuffle([1, 2, 3, 4, 5]);
 * assert.deepEqual(order, b.shuffle([1, 2, 3, 4, 5])); // same seed, same order
 * assert.deepEqual([...order].sort(), [1, 2, 3, 4, 5]);
 * const k = a.int(0, 9);
 * assert.ok(Number.isInteger(k) && k >= 0 && k <= 9);
 * assert.equal(b.int(0, 9), k);
 * assert.equal(a.normal(0, 1), b.normal(0, 1));
 * ```
 */
export function rng(seed: number | string): Rng {
  const alea = seedrandom.alea(String(seed));
  const next = () => alea();
  const self: Rng = {
    next,
    uniform: (min, max) => min + (max - min) * next(),
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    normal: (mean = 0, sd = 1) => {
      const u = 1 - next();
      const v = next();
      return mean +
        sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    },
    int32: () => alea.int32(),
    shuffle: (items) => {
      for (let i = items.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [items[i], items[j]] = [items[j], items[i]];
      }
      return items;
    },
    pick: (items) => items[Math.floor(next() * items.length)],
  };
  return self;
}

/**
 * Derives an independent seed for a named sub-task from a base seed, so that
 * adding a random step in one place does not shift the numbers in another.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deriveSeed } from "./random.ts";
 * assert.notEqual(deriveSeed(42, "split"), deriveSeed(42, "augment"));
 * assert.equal(deriveSeed(42, "split"), deriveSeed(42, "split"));
 * ```
 */
export function deriveSeed(seed: number, name: string): number {
  return seedrandom.alea(`${seed}/${name}`).int32() >>> 0;
}

/** A Gamma(shape, 1) draw (Marsaglia and Tsang; shapes below 1 boosted). */
function gammaDraw(r: Rng, shape: number): number {
  if (shape < 1) {
    return gammaDraw(r, shape + 1) * Math.pow(1 - r.next(), 1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const z = r.normal();
    const v = Math.pow(1 + c * z, 3);
    if (v <= 0) continue;
    const u = 1 - r.next();
    if (Math.log(u) < 0.5 * z * z + d - d * v + d * Math.log(v)) return d * v;
  }
}

/**
 * A draw from the Beta(a, b) distribution, in [0, 1], from a seeded
 * generator (two Gamma draws, `x / (x + y)`). Mixup draws its mixing weight
 * from Beta(α, α).
 *
 * @example The same generator state gives the same draw; the mean is a / (a + b)
 * ```ts
 * import assert from "node:assert/strict";
 * import { betaDraw, rng } from "./random.ts";
 * assert.equal(betaDraw(rng(7), 0.2, 0.2), betaDraw(rng(7), 0.2, 0.2));
 * const r = rng(1);
 * let sum = 0;
 * for (let i = 0; i < 4000; i++) sum += betaDraw(r, 2, 6);
 * assert.ok(Math.abs(sum / 4000 - 0.25) < 0.01);
 * ```
 */
export function betaDraw(r: Rng, a: number, b: number): number {
  if (!(a > 0 && b > 0)) {
    throw new RangeError(`betaDraw: a and b must be > 0 (got ${a}, ${b})`);
  }
  const x = gammaDraw(r, a);
  const y = gammaDraw(r, b);
  return x + y === 0 ? 0.5 : x / (x + y);
}
