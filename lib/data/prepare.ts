/**
 * The data pipeline in one call: find the dataset (or make the synthetic
 * default), decode and cache every scan, audit duplicates, split without
 * leakage, and hand back packed pixels and labels per split.
 *
 * Notebooks, `deno task train` and `deno task evaluate` all go through
 * {@linkcode prepareData}, so they see the same splits for the same seed.
 *
 * @module
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { writeTextAtomic } from "../core/atomic.ts";
import { DEFAULTS } from "../core/defaults.ts";
import {
  auditDuplicates,
  type AuditReport,
  dedupeKeep,
  DEFAULT_NEAR_THRESHOLD,
  duplicateGroups,
} from "./audit.ts";
import type { Clahe } from "../core/clahe.ts";
import { type Dataset, discoverDataset, type ImageFile } from "./dataset.ts";
import {
  fingerprintFromHashes,
  loadImages,
  type LoadImagesResult,
} from "./image_cache.ts";
import { projectPaths } from "../core/paths.ts";
import { type FileHashes, hashFiles } from "./phash.ts";
import { assertNoLeak, type DatasetSplit, splitDataset } from "./split.ts";
import { generateSyntheticDataset, SYNTHETIC_DEFAULTS } from "./synthetic.ts";

/** Where the images come from. */
export interface DataSource {
  /** Dataset root (Kaggle layout or class folders). */
  root: string;
  /** True for the generated synthetic default. */
  synthetic: boolean;
  /** Why this root was chosen, in words. */
  reason: string;
}

/** Options for {@linkcode resolveDataSource}. */
export interface ResolveDataSourceOptions {
  /** Environment (default `Deno.env`). */
  env?: Record<string, string | undefined>;
  /** Seed of the synthetic default (default `DEFAULTS.seed`, 42). */
  syntheticSeed?: number;
  /** Training images per class of the synthetic default (default `SYNTHETIC_DEFAULTS`, 500). */
  syntheticTrainPerClass?: number;
  /** Testing images per class of the synthetic default (default `SYNTHETIC_DEFAULTS`, 40). */
  syntheticTestPerClass?: number;
}

function looksLikeDataset(root: string): boolean {
  if (!existsSync(root) || !statSync(root).isDirectory()) return false;
  for (const entry of Deno.readDirSync(root)) {
    if (entry.isDirectory && !entry.name.startsWith(".")) return true;
  }
  return false;
}

/**
 * Chooses the dataset: `BRAIN_MRI_DATA` when set (it must exist), else
 * `data/` when it holds class or split folders, else the synthetic default,
 * generated (once) under the cache folder.
 *
 * @example `BRAIN_MRI_DATA` names the dataset (here a temporary folder)
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { resolveDataSource } from "./prepare.ts";
 * const dir = await Deno.makeTempDir();
 * const source = await resolveDataSource({ env: { BRAIN_MRI_DATA: dir } });
 * assert.deepEqual(source, { root: dir, synthetic: false, reason: "BRAIN_MRI_DATA" });
 * await assert.rejects(
 *   resolveDataSource({ env: { BRAIN_MRI_DATA: join(dir, "missing") } }),
 *   /no such folder/,
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function resolveDataSource(
  options: ResolveDataSourceOptions = {},
): Promise<DataSource> {
  const paths = projectPaths(options.env ? { env: options.env } : {});
  const configured = (options.env ?? Deno.env.toObject()).BRAIN_MRI_DATA;
  if (configured?.trim()) {
    if (!existsSync(paths.data)) {
      throw new Error(`BRAIN_MRI_DATA=${configured}: no such folder`);
    }
    return { root: paths.data, synthetic: false, reason: "BRAIN_MRI_DATA" };
  }
  if (looksLikeDataset(paths.data)) {
    return { root: paths.data, synthetic: false, reason: "data/ folder" };
  }
  const seed = options.syntheticSeed ?? DEFAULTS.seed;
  const train = options.syntheticTrainPerClass ??
    SYNTHETIC_DEFAULTS.trainPerClass;
  const test = options.syntheticTestPerClass ?? SYNTHETIC_DEFAULTS.testPerClass;
  const outDir = join(
    paths.cache,
    "synthetic",
    `seed${seed}-train${train}-test${test}`,
  );
  await generateSyntheticDataset({
    outDir,
    seed,
    trainPerClass: train,
    testPerClass: test,
  });
  return {
    root: outDir,
    synthetic: true,
    reason: "no dataset configured (BRAIN_MRI_DATA unset, data/ empty): " +
      "using the SYNTHETIC default",
  };
}

/** The images of one split, packed. */
export interface SplitData {
  /** The files, in the order of the pixels. */
  files: ImageFile[];
  /** `files.length` images of `size*size` bytes, one channel. */
  pixels: Uint8Array;
  /** Class index of each image (into `classes`). */
  labels: Int32Array;
}

/** Options for {@linkcode prepareData}. */
export interface PrepareDataOptions {
  /** Dataset root or a resolved source; default {@linkcode resolveDataSource}. */
  source?: string | DataSource;
  /** Image side (default `DEFAULTS.imageSize`, 128). */
  size?: number;
  /** Seed of the split (default `DEFAULTS.seed`, 42). */
  seed?: number;
  /**
   * Validation fraction (default `DEFAULTS.validationFraction`, 0.15; of
   * Training when Testing exists).
   */
  validation?: number;
  /** Test fraction when carved from Training (default `DEFAULTS.testFraction`, 0.15). */
  test?: number;
  /** pHash distance for near duplicates (default the audit's, 4 of 64 bits). */
  nearThreshold?: number;
  /**
   * CLAHE of every image after resizing (default none; `./clahe.ts`). It
   * changes the pixels only: the duplicate audit and the split read the
   * files, so a run with it and one without share their split.
   */
  clahe?: Clahe | null;
  /** Cache folder (default `projectPaths().cache`). */
  cacheDir?: string;
  /** Progress messages. */
  log?: (message: string) => void;
}

/** Everything {@linkcode prepareData} found and made. */
export interface PreparedData {
  /** Where the images came from. */
  source: DataSource;
  /** Discovery: classes, files, skipped files. */
  dataset: Dataset;
  /** Class names in label order. */
  classes: string[];
  /** Image side. */
  size: number;
  /** The CLAHE applied to every image, or `null`. */
  clahe: Clahe | null;
  /** Seed of the split. */
  seed: number;
  /** SHA-256 over the sorted (label, content hash) pairs of all decoded images. */
  fingerprint: string;
  /** The duplicate audit of every decoded image. */
  audit: AuditReport;
  /** The split (paths), duplicate-aware. */
  split: DatasetSplit;
  /** Train images. */
  train: SplitData;
  /** Validation images. */
  validation: SplitData;
  /** Test images. */
  test: SplitData;
  /** The test images minus exact and near duplicates within the test set. */
  testDeduplicated: SplitData;
  /** Files that could not be decoded, with the reason (skipped, not fatal). */
  errors: { path: string; reason: string }[];
  /** Seconds per stage. */
  timings: Record<string, number>;
}

/** Cached pHashes by content (SHA-256), so the audit need not decode again. */
async function cachedHashes(
  files: ImageFile[],
  sha256: string[],
  cacheDir: string,
  log: (m: string) => void,
): Promise<FileHashes[]> {
  const path = join(cacheDir, "audit", "phash-by-sha256.json");
  let known: Record<string, string | null> = {};
  try {
    known = JSON.parse(await Deno.readTextFile(path));
  } catch {
    // first run or unreadable cache: start empty
  }
  const missing = files.filter((_, i) => sha256[i] && !(sha256[i] in known));
  if (missing.length) {
    log(`hashing ${missing.length} images for the duplicate audit`);
    const { hashes } = await hashFiles({
      paths: missing.map((f) => f.path),
      dhash: false,
    });
    for (const h of hashes) {
      known[h.sha256] = h.phash === undefined
        ? null
        : h.phash.toString(16).padStart(16, "0");
    }
    await writeTextAtomic(path, JSON.stringify(known));
  }
  return files.flatMap((f, i) => {
    if (!sha256[i]) return [];
    const hex = known[sha256[i]];
    return [{
      path: f.path,
      sha256: sha256[i],
      ...(hex ? { phash: BigInt(`0x${hex}`) } : {}),
    }];
  });
}

function pack(
  files: ImageFile[],
  pixelsOf: Map<string, Uint8Array>,
  classIndex: Map<string, number>,
  area: number,
): SplitData {
  const pixels = new Uint8Array(files.length * area);
  const labels = new Int32Array(files.length);
  files.forEach((f, i) => {
    pixels.set(pixelsOf.get(f.path)!, i * area);
    labels[i] = classIndex.get(f.label)!;
  });
  return { files, pixels, labels };
}

/** Seconds per named stage, and a wrapper that times one. */
function stopwatch(): {
  timings: Record<string, number>;
  time: <T>(name: string, body: () => Promise<T>) => Promise<T>;
} {
  const timings: Record<string, number> = {};
  const time = async <T>(name: string, body: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const out = await body();
    timings[name] = (performance.now() - t0) / 1000;
    return out;
  };
  return { timings, time };
}

/** The images that decoded: their files, content hashes and pixels. */
interface Decoded {
  /** The files that decoded, in dataset order. */
  files: ImageFile[];
  /** The SHA-256 of each of `files`. */
  hashes: string[];
  /** Each file's pixels, by path. */
  pixelsOf: Map<string, Uint8Array>;
  /** SHA-256 over the sorted (label, content hash) pairs of `files`. */
  fingerprint: string;
}

/** Picks the images that decoded out of what {@linkcode loadImages} returned. */
function decodedImages(
  dataset: Dataset,
  loaded: LoadImagesResult,
  area: number,
): Decoded {
  const files = loaded.ok.map((i) => dataset.files[i]);
  const hashes = loaded.ok.map((i) => loaded.hashes[i]);
  const pixelsOf = new Map<string, Uint8Array>();
  files.forEach((f, k) =>
    pixelsOf.set(f.path, loaded.pixels.subarray(k * area, (k + 1) * area))
  );
  const fingerprint = fingerprintFromHashes(
    files.map((f, i) => ({ label: f.label, hash: hashes[i] })),
  );
  return { files, hashes, pixelsOf, fingerprint };
}

/** The pixels and labels of each split, and the de-duplicated test set. */
function packSplits(
  classes: string[],
  decoded: Decoded,
  split: DatasetSplit,
  audit: AuditReport,
  area: number,
): Pick<PreparedData, "train" | "validation" | "test" | "testDeduplicated"> {
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const byPath = new Map(decoded.files.map((f) => [f.path, f]));
  const packFiles = (files: ImageFile[]) =>
    pack(files, decoded.pixelsOf, classIndex, area);
  const part = (paths: readonly string[]) =>
    packFiles(paths.map((p) => byPath.get(p)!));
  const test = part(split.test);
  return {
    train: part(split.train),
    validation: part(split.validation),
    test,
    testDeduplicated: packFiles(dedupeKeep(test.files, audit, { near: true })),
  };
}

/**
 * Runs the data pipeline: discover → decode (cached) → audit duplicates →
 * duplicate-aware stratified split → packed pixels and labels per split.
 * Corrupt images are reported in `errors` and left out; they never stop the
 * run. Throws if, despite the grouping, a duplicate straddles two splits.
 *
 * @example A small synthetic dataset, made and split in a temporary folder
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { prepareData } from "./prepare.ts";
 * import { generateSyntheticDataset } from "./synthetic.ts";
 * const dir = await Deno.makeTempDir();
 * const root = join(dir, "data");
 * await generateSyntheticDataset({ outDir: root, trainPerClass: 6, testPerClass: 2, sizes: [64] });
 * const data = await prepareData({ source: root, size: 32, cacheDir: join(dir, "cache") });
 * assert.deepEqual(data.classes, ["glioma", "meningioma", "notumor", "pituitary"]);
 * assert.equal(data.test.files.length, 8); // the Testing/ folder, as it is
 * assert.equal(data.train.files.length + data.validation.files.length, 24);
 * assert.equal(data.train.pixels.length, data.train.files.length * 32 * 32);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function prepareData(
  options: PrepareDataOptions = {},
): Promise<PreparedData> {
  const log = options.log ?? (() => {});
  const { timings, time } = stopwatch();
  const source: DataSource = typeof options.source === "string"
    ? { root: options.source, synthetic: false, reason: "given" }
    : options.source ?? await time("source", () => resolveDataSource());
  const size = options.size ?? DEFAULTS.imageSize;
  const seed = options.seed ?? DEFAULTS.seed;
  const cacheDir = options.cacheDir ?? projectPaths().cache;
  const area = size * size;

  const dataset = await time("discover", () => discoverDataset(source.root));
  log(`${dataset.files.length} images in ${dataset.classes.length} classes`);
  const loaded = await time(
    "decode",
    () =>
      loadImages(dataset.files, {
        size,
        clahe: options.clahe,
        cacheDir: join(cacheDir, "images"),
      }),
  );
  log(
    `decoded ${loaded.ok.length} images (${loaded.cacheHits} from cache) in ` +
      `${loaded.seconds.toFixed(1)} s`,
  );
  const decoded = decodedImages(dataset, loaded, area);
  const good = decoded.files;
  const audit = await time("audit", async () =>
    auditDuplicates({
      files: good,
      nearThreshold: options.nearThreshold ?? DEFAULT_NEAR_THRESHOLD,
      hashes: await cachedHashes(good, decoded.hashes, cacheDir, log),
    }));
  const groups = duplicateGroups(audit);
  const split = await time("split", () =>
    Promise.resolve(splitDataset({
      files: good,
      seed,
      validation: options.validation,
      test: options.test,
      groups,
    })));
  assertNoLeak(split, groups);
  return {
    source,
    dataset,
    classes: dataset.classes,
    size,
    clahe: options.clahe ?? null,
    seed,
    fingerprint: decoded.fingerprint,
    audit,
    split,
    ...packSplits(dataset.classes, decoded, split, audit, area),
    errors: loaded.errors,
    timings,
  };
}
