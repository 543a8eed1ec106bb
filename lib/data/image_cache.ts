/**
 * A disk cache of preprocessed images, so only the first run pays for
 * decoding.
 *
 * Layout under `cacheDir` (default `<cache>/images`):
 *
 * ```text
 * hashes.json              path → [size, mtime, ctime, inode, sha256]
 * <pipelineKey>/<id>.bin   packed uint8 images, size*size bytes each
 * <pipelineKey>/<id>.json  { hashes: [...], sha256 } — each image's content hash; the .bin's SHA-256
 * ```
 *
 * - **Keyed by content.** An image is found by the SHA-256 of its file's
 *   bytes, inside the folder of the {@linkcode pipelineKey} (pipeline version,
 *   size, fit, grayscale, decoder, library versions). Changing a setting
 *   changes the folder; changing a file changes its hash: either way the
 *   affected images are decoded again.
 * - **Packed.** Each load that had to decode anything writes one pack holding
 *   every image of that request (a whole split in one file), then deletes the
 *   older packs it makes redundant. A warm load of the Training split (5,712
 *   images, 93 MB at 128×128) is one JSON parse, 5,712 `stat`s, one 93 MB
 *   read and its checksum (≈60 ms).
 * - **Hashes are not recomputed on a warm run.** `hashes.json` remembers each
 *   file's hash with its size, modification time (ms), change time and inode,
 *   as git's index does, so a warm run only `stat`s the files (≈20 ms for
 *   5,712) instead of reading and hashing 200 MB. The trade-off: a file
 *   rewritten with the same size whose modification time is then put back
 *   (a tool that preserves times) within the same second (Deno reports the
 *   change time in whole seconds) is taken as unchanged. `verify: true`
 *   re-reads and re-hashes every file.
 * - **Safe.** Every file is written atomically and durably (temporary file,
 *   flushed to disk, then a rename); a pack's `.json` is written after its
 *   `.bin`, and a pack whose `.bin` has the wrong length is ignored. Files
 *   that fail to decode are reported and never cached.
 * - **Verified.** A pack's `.json` records the SHA-256 of its `.bin`, checked
 *   on every read. A pack that fails (damaged on disk, zeroed in place) is
 *   never used: a warning names it, it is removed, and its images are decoded
 *   again and packed anew. Packs of an older format (without a checksum) are
 *   not trusted either: they are removed when the cache opens. Temporary
 *   files left by killed writes are removed when the cache opens too.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join, resolve } from "node:path";
import {
  removeStaleTemps,
  writeFileAtomic,
  writeTextAtomic,
} from "../core/atomic.ts";
import { projectPaths } from "../core/paths.ts";
import { type Clahe, claheImages } from "../core/clahe.ts";
import {
  type DecodeJob,
  type DecodeOutcome,
  type Decoder,
  type Fit,
  packOutcomes,
  pipelineKey,
  type PipelineSettings,
  preprocessJobs,
  type PreprocessOptions,
  type PreprocessResult,
  resolveSettings,
} from "./preprocess.ts";

/** Options for {@linkcode loadImages}. */
export interface LoadImagesOptions {
  /** Output side in pixels (default `DEFAULTS.imageSize`, 128). */
  size?: number;
  /** Fit mode (default `fill`). */
  fit?: Fit;
  /** JPEG decoder (default `auto`). */
  decoder?: Decoder;
  /** DCT-domain downscaling while decoding JPEG (default true). */
  shrinkOnLoad?: boolean;
  /**
   * CLAHE of each image (default none). The cache holds the images before
   * it, so runs with and without it share one decode.
   */
  clahe?: Clahe | null;
  /** Cache folder; default `projectPaths().cache + "/images"`. */
  cacheDir?: string;
  /** Re-read and re-hash every file instead of trusting size and times. */
  verify?: boolean;
  /** Decoding threads (see `PreprocessOptions.workers`). */
  workers?: number;
  /** Progress: images done (hits and decoded) out of the total. */
  onProgress?: (done: number, total: number) => void;
  /** Where warnings go (a pack that failed its checksum); default `console.warn`. */
  onWarning?: (message: string) => void;
}

/** What {@linkcode loadImages} returns. */
export interface LoadImagesResult extends PreprocessResult {
  /** Images served from the cache. */
  cacheHits: number;
  /** Images decoded in this call (including ones that failed). */
  cacheMisses: number;
  /** Wall-clock seconds the call took. */
  seconds: number;
  /** SHA-256 of each input file (`""` when it could not be read). */
  hashes: string[];
}

/** Options for {@linkcode contentHashes} and {@linkcode datasetFingerprint}. */
export interface HashOptions {
  /** Cache folder holding `hashes.json`; default `projectPaths().cache + "/images"`. */
  cacheDir?: string;
  /** Re-read and re-hash every file. */
  verify?: boolean;
}

const INDEX_VERSION = 1;
/** Version 2 added the `.bin` checksum; older packs are removed unread. */
const PACK_VERSION = 2;

type IndexEntry = [
  size: number,
  mtime: number,
  ctime: number,
  ino: number,
  sha256: string,
];

interface HashIndex {
  path: string;
  files: Record<string, IndexEntry>;
  changed: boolean;
}

interface PackRef {
  id: string;
  hashes: string[];
  /** SHA-256 (hex) of the pack's `.bin`. */
  sha256: string;
}

interface Stamp {
  size: number;
  mtime: number;
  ctime: number;
  ino: number;
}

function defaultCacheDir(): string {
  return join(projectPaths().cache, "images");
}

function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}

async function loadHashIndex(cacheDir: string): Promise<HashIndex> {
  const path = join(cacheDir, "hashes.json");
  const data = await readJson(path) as
    | { version?: number; files?: Record<string, IndexEntry> }
    | undefined;
  const files = data?.version === INDEX_VERSION && data.files &&
      typeof data.files === "object"
    ? data.files
    : {};
  return { path, files, changed: false };
}

async function saveHashIndex(index: HashIndex): Promise<void> {
  if (!index.changed) return;
  await writeTextAtomic(
    index.path,
    JSON.stringify({ version: INDEX_VERSION, files: index.files }),
  );
  index.changed = false;
}

function stampOf(path: string): Stamp | Error {
  try {
    const info = Deno.statSync(path);
    if (!info.isFile) return new Error("not a regular file");
    return {
      size: info.size,
      mtime: info.mtime?.getTime() ?? 0,
      ctime: info.ctime?.getTime() ?? 0,
      ino: info.ino ?? 0,
    };
  } catch (error) {
    return error as Error;
  }
}

function knownHash(index: HashIndex, path: string, st: Stamp): string {
  const e = index.files[path];
  if (
    Array.isArray(e) && e[0] === st.size && e[1] === st.mtime &&
    e[2] === st.ctime && e[3] === st.ino && typeof e[4] === "string"
  ) {
    return e[4];
  }
  return "";
}

function remember(
  index: HashIndex,
  path: string,
  st: Stamp,
  sha256: string,
): void {
  const e = index.files[path];
  if (!e || e[4] !== sha256 || e[0] !== st.size || e[1] !== st.mtime) {
    index.changed = true;
  }
  index.files[path] = [st.size, st.mtime, st.ctime, st.ino, sha256];
}

function reasonOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split(
    "\n",
  )[0];
}

/**
 * Hashes files, with the stat index: a file whose size and times have not
 * changed since it was last hashed is not read again. Returns the hashes in
 * input order (`""` for a file that cannot be read) and the stamps.
 */
async function hashWithIndex(
  paths: string[],
  index: HashIndex,
  verify: boolean,
): Promise<{ hashes: string[]; stamps: (Stamp | Error)[] }> {
  const stamps = paths.map(stampOf);
  const hashes = paths.map((p, i) => {
    const st = stamps[i];
    return st instanceof Error || verify ? "" : knownHash(index, p, st);
  });
  for (let i = 0; i < paths.length; i++) {
    const st = stamps[i];
    if (hashes[i] || st instanceof Error) continue;
    try {
      hashes[i] = sha256Hex(Deno.readFileSync(paths[i]));
      remember(index, paths[i], st, hashes[i]);
    } catch (error) {
      stamps[i] = error as Error;
    }
    if (i % 256 === 255) await new Promise((r) => setTimeout(r, 0));
  }
  return { hashes, stamps };
}

/**
 * SHA-256 (hex) of each file's bytes, reusing the hashes remembered in the
 * cache's `hashes.json` for files whose size and times have not changed.
 * Throws, naming the file, when a file cannot be read.
 *
 * @example A file in a temporary folder, hashed, then changed
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import { join } from "node:path";
 * import { contentHashes } from "./image_cache.ts";
 * const dir = await Deno.makeTempDir();
 * const path = join(dir, "scan.bin");
 * await Deno.writeTextFile(path, "abc");
 * const options = { cacheDir: join(dir, "cache") };
 * const [h] = await contentHashes([path], options);
 * assert.equal(h, createHash("sha256").update("abc").digest("hex"));
 * await Deno.writeTextFile(path, "abcd"); // a new size: hashed again
 * assert.notEqual((await contentHashes([path], options))[0], h);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function contentHashes(
  paths: string[],
  options: HashOptions = {},
): Promise<string[]> {
  const cacheDir = resolve(options.cacheDir ?? defaultCacheDir());
  const index = await loadHashIndex(cacheDir);
  const abs = paths.map((p) => resolve(p));
  const { hashes, stamps } = await hashWithIndex(
    abs,
    index,
    options.verify ?? false,
  );
  await saveHashIndex(index);
  const bad = stamps.findIndex((s) => s instanceof Error);
  if (bad >= 0) {
    throw new Error(
      `${abs[bad]}: cannot be read: ${reasonOf(stamps[bad])}`,
    );
  }
  return hashes;
}

/**
 * A fingerprint of (label, content) pairs: SHA-256 over the sorted
 * `label<TAB>sha256` lines. Independent of paths and file order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fingerprintFromHashes } from "./image_cache.ts";
 * const x = { label: "glioma", hash: "ab" };
 * const y = { label: "notumor", hash: "cd" };
 * const a = fingerprintFromHashes([x, y]);
 * assert.equal(fingerprintFromHashes([y, x]), a); // order does not matter
 * assert.notEqual(fingerprintFromHashes([x, { ...y, label: "glioma" }]), a);
 * assert.match(a, /^[0-9a-f]{64}$/);
 * ```
 */
export function fingerprintFromHashes(
  pairs: { label: string; hash: string }[],
): string {
  const lines = pairs.map((p) => `${p.label}\t${p.hash}`).sort();
  return sha256Hex(lines.join("\n"));
}

/**
 * The dataset fingerprint manifests record: SHA-256 over the sorted (label,
 * content hash) pairs of the files. Renaming or moving files keeps it; a
 * changed image, a changed label, an added or a removed file changes it.
 *
 * @example Moving a file keeps the fingerprint; relabelling it does not
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { datasetFingerprint } from "./image_cache.ts";
 * const dir = await Deno.makeTempDir();
 * const [a, b] = [join(dir, "a.jpg"), join(dir, "b.jpg")];
 * await Deno.writeTextFile(a, "scan");
 * const options = { cacheDir: join(dir, "cache") };
 * const before = await datasetFingerprint([{ path: a, label: "glioma" }], options);
 * await Deno.rename(a, b);
 * assert.equal(await datasetFingerprint([{ path: b, label: "glioma" }], options), before);
 * assert.notEqual(await datasetFingerprint([{ path: b, label: "notumor" }], options), before);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function datasetFingerprint(
  files: { path: string; label: string }[],
  options: HashOptions = {},
): Promise<string> {
  const hashes = await contentHashes(files.map((f) => f.path), options);
  return fingerprintFromHashes(
    files.map((f, i) => ({ label: f.label, hash: hashes[i] })),
  );
}

/** Removes a pack's two files (either may be missing already). */
async function removePack(dir: string, id: string): Promise<void> {
  await Deno.remove(join(dir, `${id}.json`)).catch(() => {});
  await Deno.remove(join(dir, `${id}.bin`)).catch(() => {});
}

/**
 * Reads one pack's `.json`: the pack when it is complete (its `.bin` has the
 * right length), `"old"` when it was written by an older format, else
 * `undefined` (unreadable, another size, or an interrupted write).
 */
async function readPackMeta(
  dir: string,
  id: string,
  area: number,
): Promise<PackRef | "old" | undefined> {
  const meta = await readJson(join(dir, `${id}.json`)) as
    | { version?: number; area?: number; hashes?: string[]; sha256?: string }
    | undefined;
  if (typeof meta?.version === "number" && meta.version < PACK_VERSION) {
    return "old";
  }
  if (
    meta?.version !== PACK_VERSION || meta.area !== area ||
    !Array.isArray(meta.hashes) || typeof meta.sha256 !== "string"
  ) return undefined;
  let size = -1;
  try {
    size = Deno.statSync(join(dir, `${id}.bin`)).size;
  } catch {
    // no .bin: an interrupted write; ignored
  }
  if (size !== meta.hashes.length * area) return undefined;
  return { id, hashes: meta.hashes, sha256: meta.sha256 };
}

/**
 * Lists the complete packs of one settings folder, largest first, and
 * removes the packs of older formats, which carry no checksum.
 */
async function listPacks(dir: string, area: number): Promise<PackRef[]> {
  const packs: PackRef[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return packs;
  }
  for (const e of entries) {
    if (!e.isFile || !e.name.endsWith(".json") || e.name.startsWith(".")) {
      continue;
    }
    const id = e.name.slice(0, -5);
    const pack = await readPackMeta(dir, id, area);
    if (pack === "old") await removePack(dir, id);
    else if (pack) packs.push(pack);
  }
  return packs.sort((a, b) => b.hashes.length - a.hashes.length);
}

/** Writes one pack (.bin, then .json) and returns its id. */
async function writePack(
  dir: string,
  area: number,
  hashes: string[],
  pixels: (hash: string) => Uint8Array,
): Promise<string> {
  const id = sha256Hex(hashes.join("\n")).slice(0, 32);
  const bin = new Uint8Array(hashes.length * area);
  hashes.forEach((h, k) => bin.set(pixels(h), k * area));
  await writeFileAtomic(join(dir, `${id}.bin`), bin);
  await writeTextAtomic(
    join(dir, `${id}.json`),
    JSON.stringify({
      version: PACK_VERSION,
      area,
      hashes,
      sha256: sha256Hex(bin),
    }),
  );
  return id;
}

/** Where each cached image is, by content hash: its pack and slot. */
type Slots = Map<string, { pack: number; slot: number }>;

/**
 * One {@linkcode loadImages} call: its files, what the cache holds for these
 * settings, and what has become of each file so far.
 */
interface Load {
  /** The files, resolved. */
  paths: string[];
  /** Bytes per image. */
  area: number;
  /** The folder of this pipeline's packs. */
  packDir: string;
  index: HashIndex;
  packs: PackRef[];
  slots: Slots;
  stamps: (Stamp | Error)[];
  /** Content hash of each file (`""` while unknown). */
  hashes: string[];
  outcomes: DecodeOutcome[];
}

/**
 * Reads the hash index and lists the packs made with these settings, after
 * removing the temporary files of killed writes.
 */
async function openCache(
  files: { path: string }[],
  settings: PipelineSettings,
  cacheDirOption: string | undefined,
): Promise<Load> {
  const area = settings.size * settings.size;
  const cacheDir = resolve(cacheDirOption ?? defaultCacheDir());
  const packDir = join(cacheDir, pipelineKey(settings));
  const paths = files.map((f) => resolve(f.path));
  await removeStaleTemps(cacheDir);
  await removeStaleTemps(packDir);
  const packs = await listPacks(packDir, area);
  const slots: Slots = new Map();
  packs.forEach((p, k) =>
    p.hashes.forEach((h, slot) => {
      if (!slots.has(h)) slots.set(h, { pack: k, slot });
    })
  );
  return {
    paths,
    area,
    packDir,
    index: await loadHashIndex(cacheDir),
    packs,
    slots,
    stamps: [],
    hashes: [],
    outcomes: new Array<DecodeOutcome>(paths.length),
  };
}

/**
 * Content hashes from the stat index; when packs exist, the files it does
 * not know are hashed now so that cached images are found; otherwise they
 * are hashed while decoding.
 */
async function findHashes(load: Load, verify: boolean): Promise<void> {
  const { paths, index } = load;
  const stamps = paths.map(stampOf);
  const hashes = paths.map((p, i) => {
    const st = stamps[i];
    return st instanceof Error || verify ? "" : knownHash(index, p, st);
  });
  load.stamps = stamps;
  load.hashes = hashes;
  if (load.slots.size === 0) return;
  const unknown = paths.map((_, i) => i).filter((i) =>
    !hashes[i] && !(stamps[i] instanceof Error)
  );
  const sub = await hashWithIndex(unknown.map((i) => paths[i]), index, true);
  unknown.forEach((i, k) => {
    hashes[i] = sub.hashes[k];
    if (sub.stamps[k] instanceof Error) stamps[i] = sub.stamps[k];
  });
}

/**
 * Reads one pack's `.bin` and checks it against its checksum. A pack that
 * fails is removed, with a warning naming it; a pack that vanished since it
 * was listed (a concurrent run replaced it) is quietly skipped. Either way
 * its images become misses.
 */
async function readPack(
  load: Load,
  pack: PackRef,
  warn: (message: string) => void,
): Promise<Uint8Array | undefined> {
  const path = join(load.packDir, `${pack.id}.bin`);
  let bin: Uint8Array;
  try {
    bin = await Deno.readFile(path);
  } catch {
    return undefined;
  }
  if (bin.length === pack.hashes.length * load.area) {
    if (sha256Hex(bin) === pack.sha256) return bin;
  }
  warn(
    `image cache: ${path} fails its checksum (damaged on disk); ` +
      `removed, its ${pack.hashes.length} images are decoded again`,
  );
  await removePack(load.packDir, pack.id);
  return undefined;
}

/**
 * Reads and verifies the packs holding any requested image, and gives each
 * unreadable file its error.
 */
async function readUsedPacks(
  load: Load,
  warn: (message: string) => void,
): Promise<Map<number, Uint8Array>> {
  const used = new Set<number>();
  load.stamps.forEach((st, i) => {
    if (st instanceof Error) {
      load.outcomes[i] = { error: `cannot be read: ${reasonOf(st)}` };
      return;
    }
    const at = load.hashes[i] ? load.slots.get(load.hashes[i]) : undefined;
    if (at) used.add(at.pack);
  });
  const bins = new Map<number, Uint8Array>();
  for (const k of used) {
    const bin = await readPack(load, load.packs[k], warn);
    if (bin) bins.set(k, bin);
  }
  return bins;
}

/** Serves the images found in `bins`; returns the hits and the files to decode. */
function serveHits(
  load: Load,
  bins: Map<number, Uint8Array>,
): { hits: number; misses: number[] } {
  const { area, hashes, outcomes } = load;
  const misses: number[] = [];
  let hits = 0;
  for (let i = 0; i < load.paths.length; i++) {
    if (outcomes[i]) continue;
    const at = hashes[i] ? load.slots.get(hashes[i]) : undefined;
    const bin = at ? bins.get(at.pack) : undefined;
    if (at && bin) {
      outcomes[i] = {
        pixels: bin.subarray(at.slot * area, (at.slot + 1) * area),
      };
      hits++;
    } else {
      misses.push(i);
    }
  }
  return { hits, misses };
}

/** Decodes the misses, hashing the ones whose hash is still unknown. */
async function decodeMisses(
  load: Load,
  misses: number[],
  options: PreprocessOptions,
): Promise<void> {
  if (misses.length === 0) return;
  const { paths, hashes, stamps, index } = load;
  const total = paths.length;
  const before = total - misses.length;
  const onProgress = options.onProgress;
  const jobs: DecodeJob[] = misses.map((i) => ({
    path: paths[i],
    hash: !hashes[i],
  }));
  const decoded = await preprocessJobs(jobs, {
    ...options,
    onProgress: onProgress ? (n) => onProgress(before + n, total) : undefined,
  });
  misses.forEach((i, k) => {
    const o = decoded[k];
    if (o.sha256) {
      hashes[i] = o.sha256;
      remember(index, paths[i], stamps[i] as Stamp, o.sha256);
    }
    load.outcomes[i] = o.pixels
      ? { pixels: o.pixels }
      : { error: o.error ?? "unknown error" };
  });
}

/**
 * Writes one pack with every good image of this request, when anything was
 * decoded or the hits came from several packs; then drops the packs it makes
 * redundant.
 */
async function storePack(
  load: Load,
  misses: number[],
  packsRead: number,
): Promise<void> {
  const { hashes, outcomes, packDir } = load;
  const good = new Map<string, Uint8Array>();
  outcomes.forEach((o, i) => {
    if (o.pixels && hashes[i] && !good.has(hashes[i])) {
      good.set(hashes[i], o.pixels);
    }
  });
  const decodedGood = misses.some((i) => outcomes[i].pixels);
  if (good.size === 0 || !(decodedGood || packsRead > 1)) return;
  const id = await writePack(
    packDir,
    load.area,
    [...good.keys()],
    (h) => good.get(h)!,
  );
  for (const p of load.packs) {
    if (p.id !== id && p.hashes.every((h) => good.has(h))) {
      await removePack(packDir, p.id);
    }
  }
}

/**
 * Loads preprocessed images for `files`, decoding only what the cache lacks
 * (see the module documentation). Files that cannot be read or decoded are
 * reported in `errors` and skipped; `pixels` holds the good ones in input
 * order, as listed by `ok`.
 *
 * @example Two made-up images: the first load decodes, the second reads the cache
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import sharp from "sharp";
 * import { loadImages } from "./image_cache.ts";
 * const dir = await Deno.makeTempDir();
 * const files = [{ path: join(dir, "a.png") }, { path: join(dir, "b.png") }];
 * for (const [i, { path }] of files.entries()) {
 *   await sharp({
 *     create: { width: 48, height: 48, channels: 3, background: i ? "#fff" : "#444" },
 *   }).png().toFile(path);
 * }
 * const options = { size: 32, cacheDir: join(dir, "cache") };
 * const cold = await loadImages(files, options);
 * assert.deepEqual([cold.cacheHits, cold.cacheMisses], [0, 2]);
 * const warm = await loadImages(files, options);
 * assert.deepEqual([warm.cacheHits, warm.cacheMisses], [2, 0]);
 * assert.deepEqual(warm.pixels, cold.pixels);
 * assert.equal(warm.pixels.length, 2 * 32 * 32);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadImages(
  files: { path: string }[],
  options: LoadImagesOptions = {},
): Promise<LoadImagesResult> {
  const t0 = performance.now();
  const { clahe, ...plain } = resolveSettings(options);
  const settings = { ...plain, clahe: null };
  const load = await openCache(files, settings, options.cacheDir);
  await findHashes(load, options.verify ?? false);
  const bins = await readUsedPacks(
    load,
    options.onWarning ?? ((message) => console.warn(message)),
  );
  const { hits, misses } = serveHits(load, bins);
  const total = load.paths.length;
  options.onProgress?.(total - misses.length, total);
  await decodeMisses(load, misses, {
    ...settings,
    workers: options.workers,
    onProgress: options.onProgress,
  });
  await storePack(load, misses, bins.size);
  await saveHashIndex(load.index);
  const packed = packOutcomes(load.paths, load.outcomes, settings.size);
  if (clahe) claheImages(packed.pixels, settings.size, clahe);
  return {
    ...packed,
    cacheHits: hits,
    cacheMisses: misses.length,
    seconds: (performance.now() - t0) / 1000,
    hashes: load.hashes,
  };
}
