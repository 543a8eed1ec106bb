/**
 * Duplicate-aware, stratified, seeded train / validation / test splits.
 *
 * - {@linkcode stratifiedSplit}: splits items by fractions, class by class,
 *   keeping every duplicate group (exact or near, from `./audit.ts`) whole in
 *   one split. Items that share a group id — directly or through a chain of
 *   groups (A~B in one group, B~C in another) — are merged with union-find.
 * - {@linkcode splitDataset}: the two layouts of the Kaggle dataset:
 *   (a) no `Testing/` folder: train / validation / test are all carved from
 *   the training images; (b) a `Testing/` folder: the official test set is
 *   kept as it is, and train / validation are carved from `Training/`.
 *   In (b) a Training image that duplicates a Testing image cannot be moved
 *   into the test set (that would change the official benchmark), so it is
 *   **dropped** from train and validation and reported: the test set stays
 *   clean and its score comparable with published numbers.
 * - {@linkcode assertNoLeak}: throws, naming the files, if any duplicate group
 *   straddles two splits or one file is in two splits.
 *
 * @module
 */
import { DEFAULTS } from "../core/defaults.ts";
import { rng } from "../core/random.ts";

/** Disjoint sets over 0..n-1 with path halving and union by size. */
export class UnionFind {
  #parent: Int32Array;
  #size: Int32Array;

  /**
   * Makes `n` singleton sets.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { UnionFind } from "./split.ts";
   * const uf = new UnionFind(3);
   * uf.union(0, 2);
   * assert.equal(uf.find(0), uf.find(2));
   * assert.notEqual(uf.find(0), uf.find(1));
   * ```
   */
  constructor(n: number) {
    this.#parent = Int32Array.from({ length: n }, (_, i) => i);
    this.#size = new Int32Array(n).fill(1);
  }

  /**
   * The representative of `i`'s set.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { UnionFind } from "./split.ts";
   * const uf = new UnionFind(2);
   * assert.equal(uf.find(1), 1);
   * ```
   */
  find(i: number): number {
    const p = this.#parent;
    while (p[i] !== i) {
      p[i] = p[p[i]];
      i = p[i];
    }
    return i;
  }

  /**
   * Merges the sets of `a` and `b`; returns the new representative.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { UnionFind } from "./split.ts";
   * const uf = new UnionFind(3);
   * uf.union(0, 1);
   * const root = uf.union(1, 2);
   * assert.equal(uf.find(0), root);
   * assert.equal(uf.find(2), root);
   * ```
   */
  union(a: number, b: number): number {
    let ra = this.find(a);
    let rb = this.find(b);
    if (ra === rb) return ra;
    if (this.#size[ra] < this.#size[rb]) [ra, rb] = [rb, ra];
    this.#parent[rb] = ra;
    this.#size[ra] += this.#size[rb];
    return ra;
  }

  /**
   * The sets with at least `minSize` members, each sorted ascending.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { UnionFind } from "./split.ts";
   * const uf = new UnionFind(4);
   * uf.union(0, 3);
   * assert.deepEqual(uf.components(2), [[0, 3]]);
   * assert.equal(uf.components().length, 3);
   * ```
   */
  components(minSize = 1): number[][] {
    const by = new Map<number, number[]>();
    for (let i = 0; i < this.#parent.length; i++) {
      const r = this.find(i);
      const list = by.get(r);
      if (list) list.push(i);
      else by.set(r, [i]);
    }
    return [...by.values()].filter((c) => c.length >= minSize);
  }
}

/** Names of the three splits, in a fixed order. */
export const SPLIT_NAMES = ["train", "validation", "test"] as const;
/** One of {@linkcode SPLIT_NAMES}. */
export type SplitName = typeof SPLIT_NAMES[number];

/** Ids per split. */
export interface Splits {
  /** Training ids. */
  train: string[];
  /** Validation ids. */
  validation: string[];
  /** Test ids. */
  test: string[];
}

/** An item to split. */
export interface SplitItem {
  /** Unique id (a file path, typically). */
  id: string;
  /** Class label; the split is stratified by it. */
  label: string;
  /**
   * Duplicate-group id(s). Items sharing any id end up in the same split;
   * an item in several groups joins them (transitively).
   */
  group?: string | readonly string[];
}

/** Options for {@linkcode stratifiedSplit}. */
export interface StratifiedSplitOptions {
  /** Items to split; ids must be unique. */
  items: readonly SplitItem[];
  /** Fractions of each class per split; each in [0, 1], summing to 1. */
  fractions: { train: number; validation: number; test: number };
  /** Seed for the shuffle. */
  seed: number;
}

function checkFractions(f: StratifiedSplitOptions["fractions"]): void {
  for (const name of SPLIT_NAMES) {
    const v = f[name];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > 1) {
      throw new Error(
        `split fraction ${name} must be a number in [0, 1], got ${v}`,
      );
    }
  }
  const sum = f.train + f.validation + f.test;
  if (Math.abs(sum - 1) > 1e-9) {
    throw new Error(
      `split fractions must sum to 1, got ${f.train} + ${f.validation} + ${f.test} = ${sum}`,
    );
  }
}

/** Integer quotas for n items by largest remainder (ties: train, validation, test). */
function quotas(n: number, f: StratifiedSplitOptions["fractions"]): number[] {
  const exact = SPLIT_NAMES.map((s) => n * f[s]);
  const q = exact.map(Math.floor);
  let left = n - q.reduce((a, b) => a + b, 0);
  const order = [0, 1, 2].sort((a, b) =>
    (exact[b] - q[b]) - (exact[a] - q[a]) || a - b
  );
  for (const i of order) {
    if (left <= 0) break;
    if (f[SPLIT_NAMES[i]] > 0) {
      q[i]++;
      left--;
    }
  }
  return q;
}

/**
 * Splits items into train / validation / test, stratified by label, seeded,
 * and duplicate-aware.
 *
 * Items are first merged into units (union-find over shared group ids); each
 * unit is filed under its majority label. Class by class, units are shuffled
 * with the seed, the largest placed first, and each goes to the split (with a
 * non-zero fraction) that is furthest below its quota, where quotas are the
 * class size times the fractions, rounded by largest remainder. With no
 * groups every class lands exactly on its quotas; a group can overshoot a
 * quota by at most its own size minus one. Each returned list is sorted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stratifiedSplit } from "./split.ts";
 * const items = Array.from({ length: 20 }, (_, i) => ({
 *   id: `img${i}`,
 *   label: i % 2 ? "glioma" : "notumor",
 *   group: i < 2 ? "dup-1" : undefined, // img0 and img1 are copies
 * }));
 * const options = {
 *   items,
 *   fractions: { train: 0.7, validation: 0.15, test: 0.15 },
 *   seed: 42,
 * };
 * const s = stratifiedSplit(options);
 * const all = [...s.train, ...s.validation, ...s.test];
 * assert.equal(new Set(all).size, 20); // every item once
 * const home = (id: string) =>
 *   s.train.includes(id) ? "train" : s.validation.includes(id) ? "validation" : "test";
 * assert.equal(home("img0"), home("img1")); // the copies stay together
 * assert.deepEqual(stratifiedSplit(options), s); // same seed, same split
 * ```
 */
export function stratifiedSplit(options: StratifiedSplitOptions): Splits {
  const { items, fractions, seed } = options;
  checkFractions(fractions);
  const index = new Map<string, number>();
  items.forEach((it, i) => {
    if (typeof it.id !== "string") throw new Error(`item ${i} has no id`);
    if (index.has(it.id)) {
      throw new Error(`stratifiedSplit: duplicate item id ${it.id}`);
    }
    index.set(it.id, i);
  });
  const uf = new UnionFind(items.length);
  const firstOfGroup = new Map<string, number>();
  items.forEach((it, i) => {
    const gs = it.group === undefined
      ? []
      : typeof it.group === "string"
      ? [it.group]
      : it.group;
    for (const g of gs) {
      const first = firstOfGroup.get(g);
      if (first === undefined) firstOfGroup.set(g, i);
      else uf.union(first, i);
    }
  });
  // Units, filed under their majority label (ties: alphabetical).
  const strata = new Map<string, number[][]>();
  for (const unit of uf.components()) {
    const counts = new Map<string, number>();
    for (const i of unit) {
      counts.set(items[i].label, (counts.get(items[i].label) ?? 0) + 1);
    }
    const label = [...counts].sort((a, b) =>
      b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
    )[0][0];
    // Sort members by id so the unit does not depend on input order.
    unit.sort((a, b) => (items[a].id < items[b].id ? -1 : 1));
    const list = strata.get(label);
    if (list) {
      list.push(unit);
    } else strata.set(label, [unit]);
  }
  const r = rng(seed);
  const out: Record<SplitName, string[]> = {
    train: [],
    validation: [],
    test: [],
  };
  const open = SPLIT_NAMES.map((s) => fractions[s] > 0);
  for (const label of [...strata.keys()].sort()) {
    const units = strata.get(label)!;
    // Canonical order first (by first id), so input order does not matter.
    units.sort((a, b) => (items[a[0]].id < items[b[0]].id ? -1 : 1));
    r.shuffle(units);
    // Stable: largest units first, equal sizes stay in shuffled order.
    units.sort((a, b) => b.length - a.length);
    const n = units.reduce((s, u) => s + u.length, 0);
    const q = quotas(n, fractions);
    const have = [0, 0, 0];
    for (const unit of units) {
      let best = -1;
      for (let s = 0; s < 3; s++) {
        if (!open[s]) continue;
        if (best < 0 || q[s] - have[s] > q[best] - have[best]) best = s;
      }
      have[best] += unit.length;
      for (const i of unit) out[SPLIT_NAMES[best]].push(items[i].id);
    }
  }
  for (const s of SPLIT_NAMES) out[s].sort();
  return out;
}

/** A file to split (structurally the `ImageFile` of `./dataset.ts`). */
export interface SplitFile {
  /** Path to the image. */
  path: string;
  /** Class label. */
  label: string;
  /** Where it came from: `Training`, `Testing` or `root` (no split folders). */
  origin?: string;
}

/** Options for {@linkcode splitDataset}. */
export interface SplitDatasetOptions {
  /** All images (Training, Testing and/or root). */
  files: readonly SplitFile[];
  /** Seed for the split. */
  seed: number;
  /**
   * Validation fraction: of all images in case (a), of the Training images in
   * case (b). Default 0.15.
   */
  validation?: number;
  /** Test fraction, used only in case (a) (no Testing folder). Default 0.15. */
  test?: number;
  /**
   * Duplicate groups as lists of paths (exact and/or near, e.g. from
   * `duplicateGroups(report)` in `./audit.ts`). Overlapping groups are merged.
   */
  groups?: readonly (readonly string[])[];
}

/** A duplicate group that joins Training and Testing images. */
export interface CrossDuplicate {
  /** Its Training members (dropped from train / validation). */
  training: string[];
  /** Its Testing members (kept in the test set). */
  testing: string[];
}

/** Result of {@linkcode splitDataset}. */
export interface DatasetSplit extends Splits {
  /** `carved`: case (a), all three from Training; `official-test`: case (b). */
  mode: "carved" | "official-test";
  /** Case (b): Training/Testing duplicate groups, which cannot be moved. */
  crossDuplicates: CrossDuplicate[];
  /** Case (b): Training paths left out of train/validation because of them. */
  dropped: string[];
}

/**
 * Splits a dataset the way the project uses it.
 *
 * (a) No file with origin `Testing`: train / validation / test are carved
 * from all images by {@linkcode stratifiedSplit} with fractions
 * `1 - validation - test`, `validation`, `test`.
 *
 * (b) Some files have origin `Testing`: they are the test set, untouched.
 * The other files are split into train / validation (`validation` is the
 * fraction of them). A duplicate group (merged transitively) that contains a
 * Testing image and Training images is reported in `crossDuplicates`, and its
 * Training images are dropped (`dropped`), so nothing the model trains or
 * tunes on also appears in the official test set.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitDataset } from "./split.ts";
 * const files = [
 *   { path: "Training/glioma/a.jpg", label: "glioma", origin: "Training" },
 *   { path: "Training/glioma/b.jpg", label: "glioma", origin: "Training" },
 *   { path: "Testing/glioma/c.jpg", label: "glioma", origin: "Testing" },
 * ];
 * const s = splitDataset({
 *   files,
 *   seed: 1,
 *   validation: 0.5,
 *   groups: [["Training/glioma/b.jpg", "Testing/glioma/c.jpg"]],
 * });
 * assert.equal(s.mode, "official-test");
 * assert.deepEqual(s.test, ["Testing/glioma/c.jpg"]);
 * assert.deepEqual(s.dropped, ["Training/glioma/b.jpg"]);
 * assert.deepEqual(s.train.concat(s.validation), ["Training/glioma/a.jpg"]);
 * ```
 */
export function splitDataset(options: SplitDatasetOptions): DatasetSplit {
  const { files, seed, groups = [] } = options;
  const validation = options.validation ?? DEFAULTS.validationFraction;
  const test = options.test ?? DEFAULTS.testFraction;
  const seen = new Set<string>();
  for (const f of files) {
    if (seen.has(f.path)) {
      throw new Error(`splitDataset: file listed twice: ${f.path}`);
    }
    seen.add(f.path);
  }
  const groupIds = new Map<string, string[]>();
  groups.forEach((members, gi) => {
    for (const p of members) {
      const list = groupIds.get(p);
      if (list) list.push(`g${gi}`);
      else groupIds.set(p, [`g${gi}`]);
    }
  });
  const toItem = (f: SplitFile): SplitItem => ({
    id: f.path,
    label: f.label,
    group: groupIds.get(f.path),
  });
  const hasTesting = files.some((f) => f.origin === "Testing");
  if (!hasTesting) {
    const s = stratifiedSplit({
      items: files.map(toItem),
      fractions: { train: 1 - validation - test, validation, test },
      seed,
    });
    return { mode: "carved", ...s, crossDuplicates: [], dropped: [] };
  }
  // Case (b): components over all files, to find Training↔Testing groups.
  const idx = new Map(files.map((f, i) => [f.path, i]));
  const uf = new UnionFind(files.length);
  for (const members of groups) {
    const present = members.map((p) => idx.get(p)).filter((i) =>
      i !== undefined
    ) as number[];
    for (const i of present.slice(1)) uf.union(present[0], i);
  }
  const crossDuplicates: CrossDuplicate[] = [];
  const dropped = new Set<string>();
  for (const comp of uf.components(2)) {
    const testing = comp.filter((i) => files[i].origin === "Testing");
    const training = comp.filter((i) => files[i].origin !== "Testing");
    if (testing.length && training.length) {
      const tr = training.map((i) => files[i].path).sort();
      crossDuplicates.push({
        training: tr,
        testing: testing.map((i) => files[i].path).sort(),
      });
      for (const p of tr) dropped.add(p);
    }
  }
  crossDuplicates.sort((a, b) => (a.testing[0] < b.testing[0] ? -1 : 1));
  const trainSide = files.filter((f) =>
    f.origin !== "Testing" && !dropped.has(f.path)
  );
  const s = stratifiedSplit({
    items: trainSide.map(toItem),
    fractions: { train: 1 - validation, validation, test: 0 },
    seed,
  });
  return {
    mode: "official-test",
    train: s.train,
    validation: s.validation,
    test: files.filter((f) => f.origin === "Testing").map((f) => f.path)
      .sort(),
    crossDuplicates,
    dropped: [...dropped].sort(),
  };
}

/**
 * Throws if a file is in two of `train` / `validation` / `test`, or if any
 * duplicate group — merged transitively with overlapping groups — has
 * members in more than one of them. The message names every offending file
 * and its split. Files in no split are ignored, and so are other properties
 * (a {@linkcode DatasetSplit} can be passed as it is).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assertNoLeak } from "./split.ts";
 * const splits = { train: ["a", "b"], validation: [], test: ["c"] };
 * assertNoLeak(splits, [["a", "b"]]); // fine: both in train
 * assert.throws(
 *   () => assertNoLeak(splits, [["b", "c"]]),
 *   /straddles test and train: b \(train\), c \(test\)/,
 * );
 * ```
 */
export function assertNoLeak(
  splits: Partial<Record<SplitName, readonly string[]>>,
  groups: readonly (readonly string[])[],
): void {
  const where = new Map<string, string>();
  const problems: string[] = [];
  for (const name of SPLIT_NAMES) {
    for (const id of splits[name] ?? []) {
      const prev = where.get(id);
      if (prev !== undefined && prev !== name) {
        problems.push(`${id} is in both ${prev} and ${name}`);
      } else where.set(id, name);
    }
  }
  const ids = [...new Set(groups.flat())];
  const idx = new Map(ids.map((id, i) => [id, i]));
  const uf = new UnionFind(ids.length);
  for (const g of groups) {
    for (const id of g.slice(1)) uf.union(idx.get(g[0])!, idx.get(id)!);
  }
  let leaking = 0;
  for (const comp of uf.components(2)) {
    const placed = comp.map((i) => ids[i]).filter((id) => where.has(id));
    const names = new Set(placed.map((id) => where.get(id)));
    if (names.size > 1) {
      leaking++;
      problems.push(
        `duplicate group straddles ${[...names].sort().join(" and ")}: ` +
          placed.sort().map((id) => `${id} (${where.get(id)})`).join(", "),
      );
    }
  }
  if (problems.length) {
    const shown = problems.slice(0, 20);
    const more = problems.length > shown.length
      ? `\n... and ${problems.length - shown.length} more`
      : "";
    throw new Error(
      `split leak: ${leaking} duplicate group(s) across splits, ` +
        `${problems.length - leaking} file(s) in two splits\n` +
        shown.join("\n") + more,
    );
  }
}
