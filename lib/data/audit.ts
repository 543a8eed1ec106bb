/**
 * Duplicate and leakage audit of an image dataset.
 *
 * {@linkcode auditDuplicates} hashes every image (SHA-256 of the bytes and a
 * 64-bit DCT pHash, see `./phash.ts`) and reports:
 *
 * - **exact-duplicate groups**: files with the same SHA-256;
 * - **near-duplicate groups**: different files whose pHashes differ in at most
 *   `nearThreshold` bits, merged transitively (union-find over the pairs; a
 *   BK-tree finds the pairs without comparing all n² of them). Byte copies are
 *   collapsed first, so a near group joins distinct contents and lists every
 *   file of each;
 * - per group: its members (path, label, split), whether the labels conflict
 *   (one scan filed under two classes) and whether it crosses splits
 *   (train/test leakage);
 * - summary counts overall, within each split and across splits.
 *
 * {@linkcode dedupeKeep} turns a report into a de-duplicated file list (the
 * "de-duplicated test set"), {@linkcode duplicateGroups} into the groups that
 * `./split.ts` keeps together, {@linkcode auditTables} into notebook tables and
 * {@linkcode auditToJSON} into plain JSON.
 *
 * {@linkcode auditDataset} finds a dataset on disk and audits it, carrying on
 * past what a clumsy folder holds: an empty class folder is a warning (the
 * other classes are audited), and so is a class folder that is a symbolic
 * link (followed); a file where a class folder should be, a FIFO, a device
 * or an unreadable file is listed as skipped or unreadable, with why. Only a
 * dataset with no image at all is an error.
 *
 * Run as a script: `deno task audit --data DIR [--json] [--threshold N] [--sweep N]`
 * (flags in {@linkcode AUDIT_CLI}; `--help` prints them).
 *
 * @module
 */
import { join } from "node:path";
import { type Dataset, discoverDataset, type SkippedFile } from "./dataset.ts";
import { escapeControl } from "../core/text.ts";
import {
  type Displayable,
  htmlTable,
  JUPYTER_DISPLAY,
} from "../core/display.ts";
import {
  type FileHashes,
  type HashError,
  hashFiles,
  hashToHex,
} from "./phash.ts";
import { UnionFind } from "./split.ts";
import {
  type FlagValues,
  type ParsedCli,
  runCli,
  UsageError,
} from "../core/cli.ts";

/**
 * Default near-duplicate threshold: pHashes differing in at most 4 of 64
 * bits.
 *
 * Measured on the real Training set (5,712 images, 5,505 distinct contents;
 * distances are always even because every pHash has 32 bits set):
 *
 * | distance | pairs | pairs whose labels differ |
 * | -------- | ----- | ------------------------- |
 * | 0        | 467   | 0                         |
 * | 2        | 627   | 0                         |
 * | 4        | 732   | 0                         |
 * | 6        | 1,105 | 20 (1.8 %)                |
 * | 8        | 1,546 | 75 (4.9 %)                |
 * | 10       | 2,445 | 408 (16.7 %)              |
 *
 * Random pairs differ in label 75 % of the time, so cross-class pairs are a
 * measure of false matches: none up to 4 bits, then a growing share (and by
 * 8 bits transitive grouping starts to build one 89-image component, 1,098
 * images at 10). Pairs at ≤ 4 bits viewed side by side are the same scan
 * re-encoded, rescaled or re-windowed (one notumor scan appears 16 times at
 * different brightness), or an adjacent slice of the same series — same
 * patient, so grouping it is the safe side for splitting. At 6 bits different
 * patients start to match (glioma vs meningioma slices at the same level).
 */
export const DEFAULT_NEAR_THRESHOLD = 4;

/** An image to audit (structurally the `ImageFile` of `./dataset.ts`). */
export interface AuditFile {
  /** Path to the image. */
  path: string;
  /** Class label. */
  label: string;
  /** `Training`, `Testing` or `root`; the default split name. */
  origin?: string;
}

/** Options for {@linkcode auditDuplicates}. */
export interface AuditOptions {
  /** Images to audit. */
  files: readonly AuditFile[];
  /**
   * Split of each path (e.g. train / validation / test). Default: each file's
   * `origin`, so Training↔Testing duplicates show as cross-split. Paths not
   * in the map have no split.
   */
  splits?: Map<string, string> | Record<string, string>;
  /** Max pHash Hamming distance (bits of 64) for near duplicates. */
  nearThreshold?: number;
  /** Images decoded at once (see `hashFiles`). */
  concurrency?: number;
  /** Hashes already computed for these files (skips hashing). */
  hashes?: readonly FileHashes[];
  /** Called while hashing with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** One file in a duplicate group. */
export interface GroupMember {
  /** Path to the image. */
  path: string;
  /** Class label. */
  label: string;
  /** Split, if it has one. */
  split?: string;
  /** SHA-256 of its bytes. */
  sha256: string;
  /** pHash as 16 hex characters, if it decoded. */
  phash?: string;
}

/** A pair of near-duplicate contents (one representative path each). */
export interface NearPair {
  /** First image. */
  a: string;
  /** Second image. */
  b: string;
  /** pHash Hamming distance. */
  distance: number;
}

/** A group of duplicate images. */
export interface DuplicateGroup {
  /** `E1`, `E2`, … for exact groups, `N1`, … for near groups. */
  id: string;
  /** Exact (same bytes) or near (similar pHash). */
  kind: "exact" | "near";
  /** Members, sorted by path. */
  members: GroupMember[];
  /** Distinct labels, sorted. */
  labels: string[];
  /** More than one label: the same scan under two classes. */
  labelConflict: boolean;
  /** Distinct splits of the members that have one, sorted. */
  splits: string[];
  /** Members in more than one split: leakage. */
  crossSplit: boolean;
  /** Near groups: the linking pairs (distance ≤ threshold). */
  pairs?: NearPair[];
  /** Largest pHash distance among `pairs` (0 for exact groups). */
  maxDistance: number;
}

/**
 * Counts for one kind of group. Near groups list every file of each content,
 * so their `images` / `redundant` include byte copies that are also counted
 * under exact groups.
 */
export interface GroupCounts {
  /** Number of groups. */
  groups: number;
  /** Images in them. */
  images: number;
  /** Images beyond the first of each group (what de-duplication removes). */
  redundant: number;
  /** Groups with conflicting labels. */
  labelConflicts: number;
  /** Groups across splits. */
  crossSplit: number;
}

/** Counts inside one split (groups with at least two members in it). */
export interface SplitCounts {
  /** Files in the split. */
  files: number;
  /** Exact groups with ≥ 2 members in this split. */
  exactGroups: number;
  /** Redundant exact copies within this split. */
  exactRedundant: number;
  /** Near groups with ≥ 2 members in this split. */
  nearGroups: number;
  /** Redundant near copies within this split (byte copies inside near groups count too). */
  nearRedundant: number;
}

/** Summary of an audit. */
export interface AuditSummary {
  /** Files audited. */
  files: number;
  /** Files with a pHash. */
  hashed: number;
  /** Files that could not be read or decoded. */
  errors: number;
  /** Near-duplicate threshold used. */
  nearThreshold: number;
  /** Exact-duplicate counts. */
  exact: GroupCounts;
  /** Near-duplicate counts. */
  near: GroupCounts;
  /** Near pairs (distinct contents within the threshold). */
  nearPairs: number;
  /** Per split. */
  bySplit: Record<string, SplitCounts>;
}

/** The result of {@linkcode auditDuplicates}. */
export interface AuditReport {
  /** Summary counts. */
  summary: AuditSummary;
  /** Exact-duplicate groups, by first path. */
  exactGroups: DuplicateGroup[];
  /** Near-duplicate groups, by first path. */
  nearGroups: DuplicateGroup[];
  /** Unreadable or undecodable files. */
  errors: HashError[];
  /** The hashes, for reuse (e.g. a threshold sweep). */
  hashes: FileHashes[];
  /** Milliseconds spent hashing and grouping. */
  timings: { hashMs: number; groupMs: number };
}

// ---------------------------------------------------------------- BK-tree

interface BkNode {
  hi: number;
  lo: number;
  id: number;
  children: Map<number, BkNode> | undefined;
}

function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

function split64(h: bigint): [number, number] {
  const u = BigInt.asUintN(64, h);
  return [Number(u >> 32n), Number(u & 0xffffffffn)];
}

/**
 * All pairs of hashes within `maxDistance` bits, found with a BK-tree
 * (metric tree over Hamming distance) instead of comparing all n² pairs.
 * Returns index pairs `[i, j, distance]` with i < j.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pairsWithin } from "./audit.ts";
 * assert.deepEqual(pairsWithin([0b0n, 0b1n, 0xffn], 1), [[0, 1, 1]]);
 * assert.deepEqual(pairsWithin([0b0n, 0b1n, 0xffn], 8), [[0, 1, 1], [0, 2, 8], [1, 2, 7]]);
 * ```
 */
export function pairsWithin(
  hashes: readonly bigint[],
  maxDistance: number,
): [number, number, number][] {
  const out: [number, number, number][] = [];
  let root: BkNode | undefined;
  const stack: BkNode[] = [];
  for (let id = 0; id < hashes.length; id++) {
    const [hi, lo] = split64(hashes[id]);
    const node: BkNode = { hi, lo, id, children: undefined };
    if (!root) {
      root = node;
      continue;
    }
    // Query the tree built so far.
    stack.length = 0;
    stack.push(root);
    while (stack.length) {
      const n = stack.pop()!;
      const d = popcount32(n.hi ^ hi) + popcount32(n.lo ^ lo);
      if (d <= maxDistance) out.push([n.id, id, d]);
      if (n.children) {
        for (const [k, child] of n.children) {
          if (k >= d - maxDistance && k <= d + maxDistance) stack.push(child);
        }
      }
    }
    // Insert.
    let cur = root;
    for (;;) {
      const d = popcount32(cur.hi ^ hi) + popcount32(cur.lo ^ lo);
      cur.children ??= new Map();
      const next = cur.children.get(d);
      if (!next) {
        cur.children.set(d, node);
        break;
      }
      cur = next;
    }
  }
  out.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  return out;
}

// ---------------------------------------------------------------- audit

function splitLookup(
  splits: AuditOptions["splits"],
): (f: AuditFile) => string | undefined {
  if (!splits) return (f) => f.origin;
  if (splits instanceof Map) return (f) => splits.get(f.path);
  return (f) => Object.hasOwn(splits, f.path) ? splits[f.path] : undefined;
}

/** Distinct contents: one entry per SHA-256, with its files. */
interface Content {
  sha256: string;
  phash?: bigint;
  files: number[];
}

function contentsOf(
  files: readonly AuditFile[],
  byPath: Map<string, FileHashes>,
): Content[] {
  const bySha = new Map<string, Content>();
  files.forEach((f, i) => {
    const h = byPath.get(f.path);
    if (!h) return;
    let c = bySha.get(h.sha256);
    if (!c) {
      c = { sha256: h.sha256, phash: h.phash, files: [] };
      bySha.set(h.sha256, c);
    }
    c.files.push(i);
  });
  return [...bySha.values()];
}

/**
 * Near-duplicate counts for each threshold, from hashes already computed
 * (byte copies collapsed first). Shows how fast matches grow with the
 * threshold, to choose one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { thresholdSweep } from "./audit.ts";
 * const hashes = [ // made-up: a and b are byte copies, c is 2 bits away
 *   { path: "a.jpg", sha256: "aa", phash: 0xf0n },
 *   { path: "b.jpg", sha256: "aa", phash: 0xf0n },
 *   { path: "c.jpg", sha256: "cc", phash: 0xf3n },
 * ];
 * assert.deepEqual(thresholdSweep({ hashes, thresholds: [0, 2] }), [
 *   { threshold: 0, pairs: 0, groups: 0, images: 0, largest: 0 },
 *   { threshold: 2, pairs: 1, groups: 1, images: 3, largest: 3 },
 * ]);
 * ```
 */
export function thresholdSweep(options: {
  /** Hashes from `hashFiles` or a report. */
  hashes: readonly FileHashes[];
  /** Thresholds to count at; default 0..10. */
  thresholds?: readonly number[];
}): {
  threshold: number;
  pairs: number;
  groups: number;
  images: number;
  largest: number;
}[] {
  const thresholds = options.thresholds ??
    Array.from({ length: 11 }, (_, i) => i);
  const bySha = new Map<string, { phash: bigint; n: number }>();
  for (const h of options.hashes) {
    if (h.phash === undefined) continue;
    const c = bySha.get(h.sha256);
    if (c) c.n++;
    else bySha.set(h.sha256, { phash: h.phash, n: 1 });
  }
  const contents = [...bySha.values()];
  const max = Math.max(0, ...thresholds);
  const all = pairsWithin(contents.map((c) => c.phash), max);
  return thresholds.map((t) => {
    const uf = new UnionFind(contents.length);
    let pairs = 0;
    for (const [i, j, d] of all) {
      if (d <= t) {
        pairs++;
        uf.union(i, j);
      }
    }
    const sizes = uf.components(2).map((c) =>
      c.reduce((k, i) => k + contents[i].n, 0)
    );
    return {
      threshold: t,
      pairs,
      groups: sizes.length,
      images: sizes.reduce((s, n) => s + n, 0),
      largest: Math.max(0, ...sizes),
    };
  });
}

function makeGroup(
  kind: "exact" | "near",
  fileIdx: number[],
  files: readonly AuditFile[],
  byPath: Map<string, FileHashes>,
  splitOf: (f: AuditFile) => string | undefined,
): DuplicateGroup {
  const members: GroupMember[] = fileIdx.map((i) => {
    const f = files[i];
    const h = byPath.get(f.path)!;
    const m: GroupMember = { path: f.path, label: f.label, sha256: h.sha256 };
    const s = splitOf(f);
    if (s !== undefined) m.split = s;
    if (h.phash !== undefined) m.phash = hashToHex(h.phash);
    return m;
  }).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const labels = [...new Set(members.map((m) => m.label))].sort();
  const splits = [
    ...new Set(members.flatMap((m) => m.split === undefined ? [] : [m.split])),
  ].sort();
  return {
    id: "",
    kind,
    members,
    labels,
    labelConflict: labels.length > 1,
    splits,
    crossSplit: splits.length > 1,
    maxDistance: 0,
  };
}

function countGroups(groups: DuplicateGroup[]): GroupCounts {
  return {
    groups: groups.length,
    images: groups.reduce((s, g) => s + g.members.length, 0),
    redundant: groups.reduce((s, g) => s + g.members.length - 1, 0),
    labelConflicts: groups.filter((g) => g.labelConflict).length,
    crossSplit: groups.filter((g) => g.crossSplit).length,
  };
}

/**
 * Audits a dataset for exact and near duplicates, label conflicts and
 * cross-split leakage. Unreadable or corrupt images are listed in `errors`
 * and otherwise skipped (a corrupt file still takes part in exact matching
 * when its bytes can be read).
 *
 * @example With hashes already computed (without them, every file is read and decoded)
 * ```ts
 * import assert from "node:assert/strict";
 * import { auditDuplicates } from "./audit.ts";
 * const files = [
 *   { path: "Training/glioma/a.jpg", label: "glioma", origin: "Training" },
 *   { path: "Training/glioma/b.jpg", label: "glioma", origin: "Training" },
 *   { path: "Testing/glioma/c.jpg", label: "glioma", origin: "Testing" },
 * ];
 * const report = await auditDuplicates({
 *   files,
 *   hashes: [ // made-up hashes: b is a byte copy of a, c is 2 bits from a
 *     { path: files[0].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[1].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[2].path, sha256: "cc", phash: 0xf3n },
 *   ],
 * });
 * assert.equal(report.summary.exact.groups, 1); // a and b
 * assert.equal(report.exactGroups[0].crossSplit, false);
 * assert.deepEqual(report.nearGroups[0].members.map((m) => m.path), [
 *   "Testing/glioma/c.jpg",
 *   "Training/glioma/a.jpg",
 *   "Training/glioma/b.jpg",
 * ]);
 * assert.deepEqual(report.nearGroups[0].splits, ["Testing", "Training"]); // a leak
 * assert.equal(report.summary.near.crossSplit, 1);
 * ```
 */
export async function auditDuplicates(
  options: AuditOptions,
): Promise<AuditReport> {
  const { files } = options;
  const threshold = checkAuditOptions(options);
  const t0 = performance.now();
  const { hashes, errors } = await auditHashes(options);
  const t1 = performance.now();
  const source: GroupSource = {
    files,
    byPath: new Map(hashes.map((h) => [h.path, h])),
    splitOf: splitLookup(options.splits),
  };
  const contents = contentsOf(files, source.byPath);
  const exactGroups = contents.filter((c) => c.files.length > 1).map((c) =>
    makeGroup("exact", c.files, files, source.byPath, source.splitOf)
  );
  const near = nearGroupsOf(contents, threshold, source);
  numberGroups(exactGroups, "E");
  numberGroups(near.groups, "N");
  const bySplit = countBySplit(
    files,
    [...exactGroups, ...near.groups],
    source.splitOf,
  );
  const t2 = performance.now();
  return {
    summary: {
      files: files.length,
      hashed: hashes.filter((h) => h.phash !== undefined).length,
      errors: errors.length,
      nearThreshold: threshold,
      exact: countGroups(exactGroups),
      near: countGroups(near.groups),
      nearPairs: near.pairs,
      bySplit,
    },
    exactGroups,
    nearGroups: near.groups,
    errors,
    hashes,
    timings: { hashMs: t1 - t0, groupMs: t2 - t1 },
  };
}

/** Throws on a bad threshold or a file listed twice; returns the threshold. */
function checkAuditOptions(options: AuditOptions): number {
  const threshold = options.nearThreshold ?? DEFAULT_NEAR_THRESHOLD;
  if (!Number.isInteger(threshold) || threshold < 0 || threshold > 64) {
    throw new Error(
      `nearThreshold must be an integer in 0..64, got ${threshold}`,
    );
  }
  const seen = new Set<string>();
  for (const f of options.files) {
    if (seen.has(f.path)) throw new Error(`file listed twice: ${f.path}`);
    seen.add(f.path);
  }
  return threshold;
}

/** The hashes given (a file without one is an error), else computed now. */
async function auditHashes(
  options: AuditOptions,
): Promise<{ hashes: FileHashes[]; errors: HashError[] }> {
  if (!options.hashes) {
    return await hashFiles({
      paths: options.files.map((f) => f.path),
      concurrency: options.concurrency,
      onProgress: options.onProgress,
    });
  }
  const hashes = [...options.hashes];
  const got = new Set(hashes.map((h) => h.path));
  const errors = options.files.filter((f) => !got.has(f.path)).map((f) => ({
    path: f.path,
    error: "no hash given",
  }));
  return { hashes, errors };
}

/** What a group's members are described from: the files, hashes and splits. */
interface GroupSource {
  files: readonly AuditFile[];
  byPath: Map<string, FileHashes>;
  splitOf: (f: AuditFile) => string | undefined;
}

/**
 * Near-duplicate groups: distinct contents whose pHashes are within
 * `threshold` bits, merged transitively, each with its linking pairs.
 */
function nearGroupsOf(
  contents: Content[],
  threshold: number,
  source: GroupSource,
): { groups: DuplicateGroup[]; pairs: number } {
  const hashed = contents.filter((c) => c.phash !== undefined);
  const pairs = pairsWithin(hashed.map((c) => c.phash!), threshold);
  const uf = new UnionFind(hashed.length);
  for (const [i, j] of pairs) uf.union(i, j);
  const pairsByRoot = new Map<number, NearPair[]>();
  const rep = (c: Content) =>
    c.files.map((i) => source.files[i].path).sort()[0];
  for (const [i, j, d] of pairs) {
    const r = uf.find(i);
    const list = pairsByRoot.get(r) ?? [];
    const [a, b] = [rep(hashed[i]), rep(hashed[j])].sort();
    list.push({ a, b, distance: d });
    pairsByRoot.set(r, list);
  }
  const groups = uf.components(2).map((comp) => {
    const g = makeGroup(
      "near",
      comp.flatMap((ci) => hashed[ci].files),
      source.files,
      source.byPath,
      source.splitOf,
    );
    g.pairs = (pairsByRoot.get(uf.find(comp[0])) ?? []).sort((x, y) =>
      x.distance - y.distance || (x.a < y.a ? -1 : x.a > y.a ? 1 : 0)
    );
    g.maxDistance = Math.max(0, ...g.pairs.map((p) => p.distance));
    return g;
  });
  return { groups, pairs: pairs.length };
}

/** Sorts groups by their first path and numbers them `E1`, `E2`, … */
function numberGroups(groups: DuplicateGroup[], prefix: "E" | "N"): void {
  groups.sort((a, b) => a.members[0].path < b.members[0].path ? -1 : 1)
    .forEach((g, i) => (g.id = `${prefix}${i + 1}`));
}

/** Per split: its files, and the groups with at least two members in it. */
function countBySplit(
  files: readonly AuditFile[],
  groups: DuplicateGroup[],
  splitOf: (f: AuditFile) => string | undefined,
): Record<string, SplitCounts> {
  const bySplit: Record<string, SplitCounts> = {};
  const splitRow = (s: string) =>
    bySplit[s] ??= {
      files: 0,
      exactGroups: 0,
      exactRedundant: 0,
      nearGroups: 0,
      nearRedundant: 0,
    };
  for (const f of files) {
    const s = splitOf(f);
    if (s !== undefined) splitRow(s).files++;
  }
  for (const g of groups) {
    const per = new Map<string, number>();
    for (const m of g.members) {
      if (m.split !== undefined) per.set(m.split, (per.get(m.split) ?? 0) + 1);
    }
    for (const [s, n] of per) {
      if (n < 2) continue;
      const row = splitRow(s);
      if (g.kind === "exact") {
        row.exactGroups++;
        row.exactRedundant += n - 1;
      } else {
        row.nearGroups++;
        row.nearRedundant += n - 1;
      }
    }
  }
  return bySplit;
}

/**
 * The duplicate groups as lists of paths, for `stratifiedSplit` /
 * `splitDataset` / `assertNoLeak` in `./split.ts`. Exact groups always; near
 * groups too unless `near: false`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { auditDuplicates, duplicateGroups } from "./audit.ts";
 * const files = [
 *   { path: "Training/glioma/a.jpg", label: "glioma", origin: "Training" },
 *   { path: "Training/glioma/b.jpg", label: "glioma", origin: "Training" },
 *   { path: "Testing/glioma/c.jpg", label: "glioma", origin: "Testing" },
 * ];
 * const report = await auditDuplicates({
 *   files,
 *   hashes: [ // made-up hashes: b is a byte copy of a, c is 2 bits from a
 *     { path: files[0].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[1].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[2].path, sha256: "cc", phash: 0xf3n },
 *   ],
 * });
 * assert.deepEqual(duplicateGroups(report, { near: false }), [
 *   ["Training/glioma/a.jpg", "Training/glioma/b.jpg"],
 * ]);
 * assert.equal(duplicateGroups(report).length, 2); // and the near group
 * ```
 */
export function duplicateGroups(
  report: AuditReport,
  options: { near?: boolean } = {},
): string[][] {
  const groups = options.near === false
    ? report.exactGroups
    : [...report.exactGroups, ...report.nearGroups];
  return groups.map((g) => g.members.map((m) => m.path));
}

/** Options for {@linkcode dedupeKeep}. */
export interface DedupeOptions {
  /** Also keep only one image per near-duplicate group. Default false. */
  near?: boolean;
  /**
   * What to do with a group whose present members carry different labels:
   * `drop` all of them (default: no label can be trusted) or `keep-first`.
   */
  conflicts?: "drop" | "keep-first";
}

/**
 * The files with duplicates removed: of each exact-duplicate group (and, with
 * `near: true`, each near-duplicate group, merged with overlapping exact
 * groups) only the member that comes first by path is kept. Works on any
 * subset of the audited files (e.g. just the test split): only the members
 * present in `files` count. Input order is preserved.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { auditDuplicates, dedupeKeep } from "./audit.ts";
 * const files = [
 *   { path: "Training/glioma/a.jpg", label: "glioma", origin: "Training" },
 *   { path: "Training/glioma/b.jpg", label: "glioma", origin: "Training" },
 *   { path: "Testing/glioma/c.jpg", label: "glioma", origin: "Testing" },
 * ];
 * const report = await auditDuplicates({
 *   files,
 *   hashes: [ // made-up hashes: b is a byte copy of a, c is 2 bits from a
 *     { path: files[0].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[1].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[2].path, sha256: "cc", phash: 0xf3n },
 *   ],
 * });
 * const paths = (kept: typeof files) => kept.map((f) => f.path);
 * assert.deepEqual(paths(dedupeKeep(files, report)), [
 *   "Training/glioma/a.jpg",
 *   "Testing/glioma/c.jpg",
 * ]);
 * assert.deepEqual(paths(dedupeKeep(files, report, { near: true })), [
 *   "Testing/glioma/c.jpg",
 * ]);
 * ```
 */
export function dedupeKeep<T extends { path: string; label: string }>(
  files: readonly T[],
  report: AuditReport,
  options: DedupeOptions = {},
): T[] {
  const conflicts = options.conflicts ?? "drop";
  const idx = new Map(files.map((f, i) => [f.path, i]));
  const uf = new UnionFind(files.length);
  const groups = options.near
    ? [...report.exactGroups, ...report.nearGroups]
    : report.exactGroups;
  for (const g of groups) {
    const present = g.members.map((m) => idx.get(m.path)).filter((i) =>
      i !== undefined
    ) as number[];
    for (const i of present.slice(1)) uf.union(present[0], i);
  }
  const keep = new Set<number>();
  for (const comp of uf.components()) {
    if (comp.length === 1) {
      keep.add(comp[0]);
      continue;
    }
    const labels = new Set(comp.map((i) => files[i].label));
    if (labels.size > 1 && conflicts === "drop") continue;
    const first = comp.reduce((
      a,
      b,
    ) => (files[b].path < files[a].path ? b : a));
    keep.add(first);
  }
  return files.filter((_, i) => keep.has(i));
}

/**
 * Plain JSON of a report (hashes as hex, no bigints), for `--json` and for
 * saving next to a run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { auditDuplicates, auditToJSON } from "./audit.ts";
 * const files = [
 *   { path: "Training/glioma/a.jpg", label: "glioma", origin: "Training" },
 *   { path: "Training/glioma/b.jpg", label: "glioma", origin: "Training" },
 *   { path: "Testing/glioma/c.jpg", label: "glioma", origin: "Testing" },
 * ];
 * const report = await auditDuplicates({
 *   files,
 *   hashes: [ // made-up hashes: b is a byte copy of a, c is 2 bits from a
 *     { path: files[0].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[1].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[2].path, sha256: "cc", phash: 0xf3n },
 *   ],
 * });
 * const json = JSON.parse(JSON.stringify(auditToJSON(report)));
 * assert.equal(json.exactGroups[0].members[0].phash, "00000000000000f0");
 * assert.equal(json.hashes, undefined); // the raw hashes stay out
 * ```
 */
export function auditToJSON(report: AuditReport): {
  summary: AuditSummary;
  exactGroups: DuplicateGroup[];
  nearGroups: DuplicateGroup[];
  errors: HashError[];
  timings: { hashMs: number; groupMs: number };
} {
  return structuredClone({
    summary: report.summary,
    exactGroups: report.exactGroups,
    nearGroups: report.nearGroups,
    errors: report.errors,
    timings: report.timings,
  });
}

/**
 * Rows summarising a report, one per kind of group, for `htmlTable`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { auditDuplicates, auditSummaryRows } from "./audit.ts";
 * const files = [
 *   { path: "Training/glioma/a.jpg", label: "glioma", origin: "Training" },
 *   { path: "Training/glioma/b.jpg", label: "glioma", origin: "Training" },
 *   { path: "Testing/glioma/c.jpg", label: "glioma", origin: "Testing" },
 * ];
 * const report = await auditDuplicates({
 *   files,
 *   hashes: [ // made-up hashes: b is a byte copy of a, c is 2 bits from a
 *     { path: files[0].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[1].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[2].path, sha256: "cc", phash: 0xf3n },
 *   ],
 * });
 * const [exact, near] = auditSummaryRows(report);
 * assert.equal(exact.kind, "exact (same bytes)");
 * assert.equal(exact["redundant copies"], 1);
 * assert.equal(near.kind, "near (pHash ≤ 4 bits)");
 * assert.equal(near["cross-split groups"], 1);
 * ```
 */
export function auditSummaryRows(
  report: AuditReport,
): Record<string, string | number>[] {
  const s = report.summary;
  const row = (kind: string, c: GroupCounts) => ({
    kind,
    groups: c.groups,
    images: c.images,
    "redundant copies": c.redundant,
    "label conflicts": c.labelConflicts,
    "cross-split groups": c.crossSplit,
  });
  return [
    row("exact (same bytes)", s.exact),
    row(`near (pHash ≤ ${s.nearThreshold} bits)`, s.near),
  ];
}

/**
 * Rows per split (duplicates inside each split) plus one for groups across
 * splits, for `htmlTable`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { auditDuplicates, auditSplitRows } from "./audit.ts";
 * const files = [
 *   { path: "Training/glioma/a.jpg", label: "glioma", origin: "Training" },
 *   { path: "Training/glioma/b.jpg", label: "glioma", origin: "Training" },
 *   { path: "Testing/glioma/c.jpg", label: "glioma", origin: "Testing" },
 * ];
 * const report = await auditDuplicates({
 *   files,
 *   hashes: [ // made-up hashes: b is a byte copy of a, c is 2 bits from a
 *     { path: files[0].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[1].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[2].path, sha256: "cc", phash: 0xf3n },
 *   ],
 * });
 * const rows = auditSplitRows(report);
 * assert.deepEqual(rows.map((r) => r.split), ["Testing", "Training", "across splits"]);
 * assert.equal(rows[1]["exact groups"], 1); // a and b, both in Training
 * assert.equal(rows[2]["near groups"], 1); // c joins them from Testing
 * ```
 */
export function auditSplitRows(
  report: AuditReport,
): Record<string, string | number>[] {
  const s = report.summary;
  const rows: Record<string, string | number>[] = Object.keys(s.bySplit)
    .sort().map((name) => {
      const c = s.bySplit[name];
      return {
        split: name,
        files: c.files,
        "exact groups": c.exactGroups,
        "exact redundant": c.exactRedundant,
        "near groups": c.nearGroups,
        "near redundant": c.nearRedundant,
      };
    });
  rows.push({
    split: "across splits",
    files: "",
    "exact groups": s.exact.crossSplit,
    "exact redundant": "",
    "near groups": s.near.crossSplit,
    "near redundant": "",
  });
  return rows;
}

/**
 * Rows listing groups (by default only those with a label conflict or
 * crossing splits), one per group, for `htmlTable`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { auditDuplicates, auditGroupRows } from "./audit.ts";
 * const files = [
 *   { path: "Training/glioma/a.jpg", label: "glioma", origin: "Training" },
 *   { path: "Training/glioma/b.jpg", label: "glioma", origin: "Training" },
 *   { path: "Testing/glioma/c.jpg", label: "glioma", origin: "Testing" },
 * ];
 * const report = await auditDuplicates({
 *   files,
 *   hashes: [ // made-up hashes: b is a byte copy of a, c is 2 bits from a
 *     { path: files[0].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[1].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[2].path, sha256: "cc", phash: 0xf3n },
 *   ],
 * });
 * assert.deepEqual(auditGroupRows(report).map((r) => r.group), ["N1"]); // the leak only
 * assert.deepEqual(
 *   auditGroupRows(report, { all: true }).map((r) => r.group),
 *   ["E1", "N1"],
 * );
 * ```
 */
export function auditGroupRows(
  report: AuditReport,
  options: { all?: boolean; limit?: number } = {},
): Record<string, string | number>[] {
  const limit = options.limit ?? 50;
  return [...report.exactGroups, ...report.nearGroups]
    .filter((g) => options.all || g.labelConflict || g.crossSplit)
    .slice(0, limit)
    .map((g) => ({
      group: g.id,
      size: g.members.length,
      labels: g.labels.join(", "),
      splits: g.splits.join(", "),
      conflict: g.labelConflict ? "yes" : "",
      leak: g.crossSplit ? "yes" : "",
      "max dist": g.maxDistance,
      members: g.members.map((m) => m.path.split("/").slice(-2).join("/"))
        .join(" "),
    }));
}

/**
 * The audit as notebook tables: summary, per split, and the problem groups.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { auditDuplicates, auditTables } from "./audit.ts";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * const files = [
 *   { path: "Training/glioma/a.jpg", label: "glioma", origin: "Training" },
 *   { path: "Training/glioma/b.jpg", label: "glioma", origin: "Training" },
 *   { path: "Testing/glioma/c.jpg", label: "glioma", origin: "Testing" },
 * ];
 * const report = await auditDuplicates({
 *   files,
 *   hashes: [ // made-up hashes: b is a byte copy of a, c is 2 bits from a
 *     { path: files[0].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[1].path, sha256: "aa", phash: 0xf0n },
 *     { path: files[2].path, sha256: "cc", phash: 0xf3n },
 *   ],
 * });
 * const tables = auditTables(report);
 * assert.equal(tables.length, 3); // summary, per split, problem groups
 * const html = tables[0][JUPYTER_DISPLAY]()["text/html"] as string;
 * assert.match(html, /Duplicates among 3 images/);
 * ```
 */
export function auditTables(report: AuditReport): Displayable[] {
  const s = report.summary;
  return [
    htmlTable({
      rows: auditSummaryRows(report),
      caption:
        `Duplicates among ${s.files} images (${s.errors} unreadable or corrupt)`,
    }),
    htmlTable({ rows: auditSplitRows(report), caption: "Per split" }),
    htmlTable({
      rows: auditGroupRows(report),
      columns: [
        "group",
        "size",
        "labels",
        "splits",
        "conflict",
        "leak",
        "max dist",
        "members",
      ],
      caption: "Groups with a label conflict or crossing splits (first 50)",
    }),
  ];
}

// ---------------------------------------------------------------- a dataset on disk

/** Options for {@linkcode auditDataset}. */
export interface AuditDatasetOptions
  extends Pick<AuditOptions, "nearThreshold" | "concurrency" | "onProgress"> {
  /** The dataset root (`DIR/<class>/*` or `DIR/{Training,Testing}/<class>/*`). */
  data: string;
}

/** A dataset on disk, audited. */
export interface DatasetAudit {
  /** The dataset as found (its `skipped` lists the empty class folders too). */
  dataset: Dataset;
  /** What was found but not audited, and why (files and entries, not class folders). */
  skipped: SkippedFile[];
  /**
   * What did not stop the audit but deserves a look, one sentence each:
   * class folders with no image, class folders that are symbolic links.
   */
  warnings: string[];
  /** The duplicate audit of the dataset's images. */
  report: AuditReport;
}

/** The class folders of a dataset (those of `Training` and `Testing` in the Kaggle layout). */
function classFolderPaths(dataset: Dataset): string[] {
  const parents = dataset.layout === "kaggle"
    ? Object.keys(dataset.counts).map((origin) => join(dataset.root, origin))
    : [dataset.root];
  return [
    ...parents,
    ...parents.flatMap((p) => dataset.classes.map((c) => join(p, c))),
  ];
}

/** Warnings for the class folders (and split folders) that are symbolic links. */
async function linkWarnings(dataset: Dataset): Promise<string[]> {
  const warnings: string[] = [];
  for (const path of classFolderPaths(dataset)) {
    const info = await Deno.lstat(path).catch(() => undefined);
    if (!info?.isSymlink) continue;
    const target = await Deno.realPath(path).catch(() => "?");
    warnings.push(
      `${escapeControl(path)} is a symbolic link to ${
        escapeControl(target)
      }; its images are audited as if they were here`,
    );
  }
  return warnings;
}

/**
 * Finds the dataset at `options.data` and audits its images (see the module
 * documentation for what is reported rather than fatal). Throws when the
 * root is missing or not a folder, has no class folder, or no image at all.
 *
 * @example Needs a dataset on disk, so it is not run by `deno test --doc`.
 * ```ts ignore
 * import { auditDataset } from "./audit.ts";
 * const { warnings, report } = await auditDataset({ data: "data" });
 * for (const w of warnings) console.warn(`warning: ${w}`);
 * console.log(report.summary.exact.groups);
 * ```
 */
export async function auditDataset(
  options: AuditDatasetOptions,
): Promise<DatasetAudit> {
  const dataset = await discoverDataset(options.data, {
    allowEmptyClasses: true,
  });
  const classDirs = new Set(classFolderPaths(dataset));
  const empty = dataset.skipped.filter((s) => classDirs.has(s.path));
  if (dataset.files.length === 0) {
    throw new Error(
      `no JPEG or PNG images in any class folder of ${
        escapeControl(dataset.root)
      }` + (empty.length ? ` (${empty.length} empty class folders)` : ""),
    );
  }
  const warnings = [
    ...empty.map((s) =>
      `${escapeControl(s.path)}: ${s.reason}; the other classes are audited`
    ),
    ...await linkWarnings(dataset),
  ];
  const report = await auditDuplicates({
    files: dataset.files,
    nearThreshold: options.nearThreshold,
    concurrency: options.concurrency,
    onProgress: options.onProgress,
  });
  const skipped = dataset.skipped.filter((s) => !classDirs.has(s.path));
  return { dataset, skipped, warnings, report };
}

// ---------------------------------------------------------------- CLI

/** The audit's command line: every flag with its type, default and help. */
export const AUDIT_CLI = {
  command: "deno task audit",
  summary: "Duplicate and leakage audit of an image dataset: exact and near\n" +
    "duplicates, label conflicts and duplicates crossing splits.",
  flags: {
    data: {
      type: "string",
      value: "DIR",
      help: "dataset root, required: DIR/<class>/*.jpg or\n" +
        "DIR/{Training,Testing}/<class>/*",
    },
    json: {
      type: "boolean",
      help:
        "print one JSON object (summary, groups, errors)\ninstead of tables",
    },
    threshold: {
      type: "integer",
      default: DEFAULT_NEAR_THRESHOLD,
      help: "near-duplicate pHash distance, bits of 64",
    },
    sweep: {
      type: "integer",
      help: "also count near duplicates at every threshold 0..N",
    },
    concurrency: {
      type: "integer",
      defaultText: "4",
      help: "images decoded at once",
    },
  },
} as const;

/** A whole number in 0..max, or a usage error naming the flag. */
function inRange<T extends number | undefined>(
  name: string,
  value: T,
  max: number,
): T {
  if (value !== undefined && (value < 0 || value > max)) {
    throw new UsageError(`--${name} must be an integer in 0..${max}`);
  }
  return value;
}

/** Prints the audit as text tables, then what could not be read. */
function printAudit(
  report: AuditReport,
  sweepRows: ReturnType<typeof thresholdSweep> | undefined,
  wallMs: number,
): void {
  const text = (d: Displayable) => d[JUPYTER_DISPLAY]()["text/plain"] as string;
  for (const t of auditTables(report)) console.log(text(t) + "\n");
  if (sweepRows) {
    console.log(
      text(htmlTable({
        rows: sweepRows,
        caption: "Near duplicates by pHash threshold (groups chained; " +
          "largest: the images of the largest group)",
      })) + "\n",
    );
  }
  for (const e of report.errors) {
    console.log(
      `unreadable: ${escapeControl(e.path)}: ${escapeControl(e.error)}`,
    );
  }
  console.log(
    `${report.summary.files} images; hashing ${
      (report.timings.hashMs / 1000).toFixed(1)
    } s, ` +
      `grouping ${(report.timings.groupMs / 1000).toFixed(2)} s, ` +
      `total ${(wallMs / 1000).toFixed(1)} s`,
  );
}

/** Audits the dataset the command line names and prints the result. */
async function audit(
  values: FlagValues<typeof AUDIT_CLI>,
  data: string,
): Promise<void> {
  const t0 = performance.now();
  const { skipped, warnings, report } = await auditDataset({
    data,
    nearThreshold: values.threshold,
    concurrency: values.concurrency || undefined,
  });
  const wallMs = performance.now() - t0;
  for (const w of warnings) console.error(`warning: ${w}`);
  for (const s of skipped) {
    console.error(
      `skipped: ${escapeControl(s.path)}: ${escapeControl(s.reason)}`,
    );
  }
  const sweepRows = values.sweep === undefined ? undefined : thresholdSweep({
    hashes: report.hashes,
    thresholds: Array.from({ length: values.sweep + 1 }, (_, i) => i),
  });
  if (!values.json) return printAudit(report, sweepRows, wallMs);
  console.log(JSON.stringify({
    data,
    ...auditToJSON(report),
    warnings,
    skipped,
    wallMs,
    ...(sweepRows ? { sweep: sweepRows } : {}),
  }));
}

async function main(
  { values }: ParsedCli<typeof AUDIT_CLI>,
): Promise<number> {
  if (!values.data) throw new UsageError("--data DIR is required");
  inRange("threshold", values.threshold, 64);
  inRange("sweep", values.sweep, 64);
  inRange("concurrency", values.concurrency, 256);
  try {
    await audit(values, values.data);
    return 0;
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await runCli(AUDIT_CLI, main));
