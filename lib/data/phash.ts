/**
 * Perceptual and exact image hashes, for finding duplicate scans.
 *
 * - {@linkcode pHash}: a 64-bit DCT hash. The image is decoded with sharp,
 *   turned to grayscale and resized to 32×32; a 2-D DCT-II is taken; the 8×8
 *   block of lowest frequencies *after skipping row 0 and column 0* (so the DC
 *   term, and the bits it would waste, are left out — the same choice as the
 *   reference pHash.org library) gives 64 coefficients; each bit says whether
 *   its coefficient is above the block's median. Re-encoding, mild resizing
 *   and small brightness or contrast changes leave almost every bit alone.
 * - {@linkcode dHash}: a 64-bit gradient hash (the same 32×32 thumbnail
 *   area-resampled to 9×8; "is the left pixel darker than its right
 *   neighbour"), a useful second opinion that costs no extra decode.
 * - {@linkcode sha256File} / {@linkcode sha256Bytes}: exact (byte-identical)
 *   duplicates.
 *
 * Hashes are `bigint`s; {@linkcode hashToHex} / {@linkcode hashFromHex} turn
 * them into 16-character lowercase hex strings for JSON and back.
 * {@linkcode hashFiles} hashes many files with bounded concurrency and
 * reports unreadable or corrupt images instead of failing.
 *
 * Every decode first checks the image's header (`checkImageHeader` of
 * `./image_header.ts`: consistent markers, and the pixel limit,
 * `DEFAULTS.maxPixels`), treats corrupt or truncated data as an error, and
 * names the problem in the decoder's words ({@linkcode decodeGated}: never
 * "Unknown error", even when many images fail at once). Files are read only
 * when they are regular files of a size an image within the pixel limit can
 * have ({@linkcode MAX_IMAGE_FILE_BYTES}); a FIFO or a device is refused
 * without being opened.
 *
 * @module
 */
import sharp from "sharp";
import { createHash } from "node:crypto";
import { DEFAULTS } from "../core/defaults.ts";
import { decodeGated, decoderReason } from "./decode_gate.ts";
import { checkImageHeader } from "./image_header.ts";

/** Side of the grayscale thumbnail the DCT is taken on. */
const DCT_SIZE = 32;
/** Side of the block of low frequencies kept (8 × 8 = 64 bits). */
const LOW = 8;

/** COS[u * 32 + x] = c(u) · cos((2x + 1) u π / 64), orthonormal DCT-II rows 0..8. */
const COS: Float64Array = (() => {
  const rows = LOW + 1;
  const m = new Float64Array(rows * DCT_SIZE);
  for (let u = 0; u < rows; u++) {
    const c = u === 0 ? Math.sqrt(1 / DCT_SIZE) : Math.sqrt(2 / DCT_SIZE);
    for (let x = 0; x < DCT_SIZE; x++) {
      m[u * DCT_SIZE + x] = c *
        Math.cos(((2 * x + 1) * u * Math.PI) / (2 * DCT_SIZE));
    }
  }
  return m;
})();

/** An image to hash: a file path or its encoded bytes. */
export type ImageInput = string | Uint8Array;

/** Perceptual hashes of one image. */
export interface ImageHashes {
  /** 64-bit DCT perceptual hash. */
  phash: bigint;
  /** 64-bit difference hash, when asked for. */
  dhash?: bigint;
}

function toSharp(input: Uint8Array): ReturnType<typeof sharp> {
  // failOn "error": a truncated or corrupt JPEG is an error, not a half-grey
  // image that would hash as a false duplicate of other broken files.
  return sharp(input, {
    failOn: "error",
    limitInputPixels: DEFAULTS.maxPixels,
  });
}

/**
 * The largest image file read, in bytes: 8 bytes for each pixel of the
 * pixel limit (400 MB), more than any encoding of an image within it takes
 * (16-bit RGBA, uncompressed, is 8 bytes a pixel).
 */
export const MAX_IMAGE_FILE_BYTES: number = 8 * DEFAULTS.maxPixels;

/**
 * The bytes of the image file `path` (symbolic links followed): only a
 * regular file, only if it is at most `maxBytes`, and only as many bytes as
 * it had when checked. A FIFO, a device or a folder is refused without being
 * opened.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readImageFile } from "./phash.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeFile(path, new Uint8Array(100));
 * assert.equal((await readImageFile(path)).length, 100);
 * await assert.rejects(readImageFile(path, 99), /100 bytes, more than the 99 an image file may have/);
 * await assert.rejects(readImageFile("/dev/zero"), /not a regular file/);
 * await Deno.remove(path);
 * ```
 */
export async function readImageFile(
  path: string,
  maxBytes: number = MAX_IMAGE_FILE_BYTES,
): Promise<Uint8Array> {
  const before = await Deno.stat(path);
  if (!before.isFile) throw new Error("not a regular file");
  if (before.size > maxBytes) {
    throw new Error(
      `${before.size} bytes, more than the ${maxBytes} an image file may have`,
    );
  }
  using file = await Deno.open(path, { read: true });
  const info = await file.stat();
  const bytes = new Uint8Array(before.size);
  let offset = 0;
  while (info.ino === before.ino && offset < bytes.length) {
    const n = await file.read(bytes.subarray(offset));
    if (n === null) break;
    offset += n;
  }
  if (!info.isFile || info.size !== before.size || offset !== bytes.length) {
    throw new Error("the file changed while it was being read");
  }
  return bytes;
}

function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/**
 * The pHash of a 32×32 grayscale thumbnail (row-major, 1024 values). Exposed
 * so the DCT step can be tested without decoding an image.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hammingDistance, pHashFromPixels } from "./phash.ts";
 * // A made-up 32×32 image: a bright square on a dark background.
 * const square = Array.from({ length: 1024 }, (_, i) => {
 *   const [y, x] = [Math.floor(i / 32), i % 32];
 *   return x >= 8 && x < 20 && y >= 10 && y < 24 ? 200 : 30;
 * });
 * const hash = pHashFromPixels(square);
 * // Brighter overall: the DC term is left out, so the hash does not move.
 * assert.equal(pHashFromPixels(square.map((v) => v + 40)), hash);
 * // The same square mirrored left–right is a different picture.
 * const mirrored = square.map((_, i) => square[i - (i % 32) + 31 - (i % 32)]);
 * assert.ok(hammingDistance(pHashFromPixels(mirrored), hash) > 4);
 * // Every hash of a non-flat image has 32 bits set (above the median).
 * assert.equal(hammingDistance(hash, 0n), 32);
 * ```
 */
export function pHashFromPixels(pixels: ArrayLike<number>): bigint {
  if (pixels.length !== DCT_SIZE * DCT_SIZE) {
    throw new Error(
      `pHashFromPixels: expected ${
        DCT_SIZE * DCT_SIZE
      } pixels, got ${pixels.length}`,
    );
  }
  // rowsT[u][y] = Σ_x COS[u][x] · p[y][x]   (DCT along each row, u = 0..8)
  const rows = LOW + 1;
  const t = new Float64Array(rows * DCT_SIZE);
  for (let y = 0; y < DCT_SIZE; y++) {
    const off = y * DCT_SIZE;
    for (let u = 0; u < rows; u++) {
      const cu = u * DCT_SIZE;
      let s = 0;
      for (let x = 0; x < DCT_SIZE; x++) s += COS[cu + x] * pixels[off + x];
      t[u * DCT_SIZE + y] = s;
    }
  }
  // coef[v][u] = Σ_y COS[v][y] · rowsT[u][y], for v, u = 1..8
  const coef = new Float64Array(LOW * LOW);
  for (let v = 1; v <= LOW; v++) {
    const cv = v * DCT_SIZE;
    for (let u = 1; u <= LOW; u++) {
      const tu = u * DCT_SIZE;
      let s = 0;
      for (let y = 0; y < DCT_SIZE; y++) s += COS[cv + y] * t[tu + y];
      coef[(v - 1) * LOW + (u - 1)] = s;
    }
  }
  const sorted = Float64Array.from(coef).sort();
  const median = (sorted[31] + sorted[32]) / 2;
  let hash = 0n;
  for (let i = 0; i < 64; i++) {
    if (coef[i] > median) hash |= 1n << BigInt(63 - i);
  }
  return hash;
}

/**
 * The 64-bit DCT perceptual hash of an image (path or encoded bytes).
 * Throws, naming the file, if the image cannot be decoded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * import { hammingDistance, pHash } from "./phash.ts";
 * // A made-up image (a white disc on black), encoded as PNG and as JPEG.
 * const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">
 *   <rect width="64" height="64"/><circle cx="24" cy="30" r="14" fill="#fff"/>
 * </svg>`;
 * const png = await sharp(new TextEncoder().encode(svg)).png().toBuffer();
 * const jpeg = await sharp(png).jpeg({ quality: 70 }).toBuffer();
 * assert.ok(hammingDistance(await pHash(png), await pHash(jpeg)) <= 4);
 * ```
 */
export async function pHash(input: ImageInput): Promise<bigint> {
  const { data } = await decodeGray(input, DCT_SIZE, DCT_SIZE);
  return pHashFromPixels(data);
}

/**
 * The 64-bit difference hash of an image: its 32×32 grayscale thumbnail (the
 * one pHash uses, so both hashes cost a single decode) is area-resampled to
 * 9×8, and each bit is set where a pixel is darker than its right-hand
 * neighbour.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * import { dHash } from "./phash.ts";
 * // A made-up image that gets brighter from left to right.
 * const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">
 *   <linearGradient id="g"><stop offset="0"/><stop offset="1" stop-color="#fff"/>
 *   </linearGradient><rect width="64" height="64" fill="url(#g)"/></svg>`;
 * const png = await sharp(new TextEncoder().encode(svg)).png().toBuffer();
 * assert.equal(await dHash(png), 0xffffffffffffffffn); // each darker than its right
 * assert.equal(await dHash(await sharp(png).flop().toBuffer()), 0n); // mirrored
 * ```
 */
export async function dHash(input: ImageInput): Promise<bigint> {
  const { data } = await decodeGray(input, DCT_SIZE, DCT_SIZE);
  return dHashFromPixels(data);
}

/** Area-resamples a square n×n image to w×h (box filter with fractional edges). */
function areaResample(
  p: ArrayLike<number>,
  n: number,
  w: number,
  h: number,
): Float64Array {
  const weights = (cells: number) => {
    // For each output cell: [first pixel, weights...]
    const out: { start: number; w: number[] }[] = [];
    const step = n / cells;
    for (let c = 0; c < cells; c++) {
      const a = c * step;
      const b = a + step;
      const start = Math.floor(a);
      const ws: number[] = [];
      for (let i = start; i < Math.min(n, Math.ceil(b)); i++) {
        ws.push((Math.min(b, i + 1) - Math.max(a, i)) / step);
      }
      out.push({ start, w: ws });
    }
    return out;
  };
  const wx = weights(w);
  const wy = weights(h);
  const out = new Float64Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      const { start: y0, w: ys } = wy[y];
      const { start: x0, w: xs } = wx[x];
      for (let j = 0; j < ys.length; j++) {
        const row = (y0 + j) * n;
        for (let i = 0; i < xs.length; i++) {
          s += ys[j] * xs[i] * p[row + x0 + i];
        }
      }
      out[y * w + x] = s;
    }
  }
  return out;
}

/**
 * The dHash of a 32×32 grayscale thumbnail (row-major, 1024 values).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dHashFromPixels } from "./phash.ts";
 * // Brighter to the right everywhere: every bit set; mirrored, none.
 * const ramp = Array.from({ length: 1024 }, (_, i) => (i % 32) * 8);
 * assert.equal(dHashFromPixels(ramp), 0xffffffffffffffffn);
 * assert.equal(dHashFromPixels(ramp.map((v) => 248 - v)), 0n);
 * ```
 */
export function dHashFromPixels(pixels: ArrayLike<number>): bigint {
  if (pixels.length !== DCT_SIZE * DCT_SIZE) {
    throw new Error(
      `dHashFromPixels: expected ${
        DCT_SIZE * DCT_SIZE
      } pixels, got ${pixels.length}`,
    );
  }
  const p = areaResample(pixels, DCT_SIZE, 9, 8);
  let hash = 0n;
  let bit = 63;
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++, bit--) {
      if (p[y * 9 + x] < p[y * 9 + x + 1]) hash |= 1n << BigInt(bit);
    }
  }
  return hash;
}

async function decodeGray(
  input: ImageInput,
  width: number,
  height: number,
): Promise<{ data: Uint8Array }> {
  const name = typeof input === "string" ? `image ${input}` : "image";
  let bytes: Uint8Array;
  try {
    bytes = typeof input === "string" ? await readImageFile(input) : input;
  } catch (err) {
    throw new Error(`cannot read ${name}: ${(err as Error).message}`);
  }
  try {
    checkImageHeader(bytes, DEFAULTS.maxPixels);
    const { data, info } = await decodeGated(() =>
      toSharp(bytes)
        .greyscale()
        .resize(width, height, { fit: "fill" })
        .raw()
        .toBuffer({ resolveWithObject: true })
    );
    if (info.channels !== 1 || data.length !== width * height) {
      throw new Error(`unexpected ${info.channels}-channel output`);
    }
    return { data };
  } catch (err) {
    throw new Error(`cannot decode ${name}: ${decoderReason(err)}`);
  }
}

/**
 * Both perceptual hashes of one image.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * import { dHash, imageHashes, pHash } from "./phash.ts";
 * const png = await sharp({
 *   create: { width: 40, height: 40, channels: 3, background: "#336699" },
 * }).png().toBuffer();
 * const { phash, dhash } = await imageHashes(png);
 * assert.equal(phash, await pHash(png)); // one decode, the same hashes
 * assert.equal(dhash, await dHash(png));
 * assert.equal((await imageHashes(png, { dhash: false })).dhash, undefined);
 * ```
 */
export async function imageHashes(
  input: ImageInput,
  options: { dhash?: boolean } = {},
): Promise<ImageHashes> {
  const { data } = await decodeGray(input, DCT_SIZE, DCT_SIZE);
  const phash = pHashFromPixels(data);
  if (options.dhash === false) return { phash };
  return { phash, dhash: dHashFromPixels(data) };
}

/**
 * Number of differing bits between two 64-bit hashes (bigint or hex).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hammingDistance } from "./phash.ts";
 * assert.equal(hammingDistance(0b1011n, 0b0001n), 2);
 * assert.equal(hammingDistance("00000000000000ff", "000000000000000f"), 4);
 * ```
 */
export function hammingDistance(
  a: bigint | string,
  b: bigint | string,
): number {
  const x = BigInt.asUintN(
    64,
    (typeof a === "string" ? hashFromHex(a) : a) ^
      (typeof b === "string" ? hashFromHex(b) : b),
  );
  return popcount32(Number(x & 0xffffffffn)) + popcount32(Number(x >> 32n));
}

/**
 * A 64-bit hash as 16 lowercase hex characters (zero-padded).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hashToHex } from "./phash.ts";
 * assert.equal(hashToHex(255n), "00000000000000ff");
 * ```
 */
export function hashToHex(hash: bigint): string {
  return BigInt.asUintN(64, hash).toString(16).padStart(16, "0");
}

/**
 * Parses a 16-character hex hash back into a bigint.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hashFromHex } from "./phash.ts";
 * assert.equal(hashFromHex("00000000000000ff"), 255n);
 * assert.throws(() => hashFromHex("ff"), /not a 16-character hex hash/);
 * ```
 */
export function hashFromHex(hex: string): bigint {
  if (!/^[0-9a-fA-F]{16}$/.test(hex)) {
    throw new Error(`not a 16-character hex hash: ${JSON.stringify(hex)}`);
  }
  return BigInt(`0x${hex}`);
}

/**
 * SHA-256 of bytes, as lowercase hex.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256Bytes } from "./phash.ts";
 * assert.equal(sha256Bytes(new TextEncoder().encode("abc")).slice(0, 8), "ba7816bf");
 * ```
 */
export function sha256Bytes(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * SHA-256 of a file's bytes, as lowercase hex, read as a stream. Throws,
 * naming the file, if it cannot be read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256Bytes, sha256File } from "./phash.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "abc");
 * assert.equal(await sha256File(path), sha256Bytes(new TextEncoder().encode("abc")));
 * await Deno.remove(path);
 * ```
 */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  let file: Deno.FsFile;
  try {
    // A FIFO would block the open, a device never end.
    if (!(await Deno.stat(path)).isFile) throw new Error("not a regular file");
    file = await Deno.open(path, { read: true });
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    for await (const chunk of file.readable) hash.update(chunk);
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
  return hash.digest("hex");
}

/** Hashes of one file from {@linkcode hashFiles}. */
export interface FileHashes {
  /** The file. */
  path: string;
  /** SHA-256 of its bytes (present whenever the file could be read). */
  sha256: string;
  /** DCT pHash; missing when the image could not be decoded. */
  phash?: bigint;
  /** Difference hash; missing when not asked for or not decodable. */
  dhash?: bigint;
}

/** A file that could not be read or decoded. */
export interface HashError {
  /** The file. */
  path: string;
  /** What went wrong. */
  error: string;
}

/** Options for {@linkcode hashFiles}. */
export interface HashFilesOptions {
  /** Files to hash. */
  paths: readonly string[];
  /** Images decoded at once; default 4 (sharp also uses its own threads). */
  concurrency?: number;
  /** Also compute the dHash; default true. */
  dhash?: boolean;
  /** Called after each file with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** Result of {@linkcode hashFiles}. */
export interface HashFilesResult {
  /** One entry per readable file, in input order (decode failures included, without pHash). */
  hashes: FileHashes[];
  /** Files that could not be read or decoded, in input order. */
  errors: HashError[];
}

/**
 * Hashes many image files — SHA-256 of the bytes plus pHash (and dHash) of the
 * decoded image — with at most `concurrency` files in flight. Each file is
 * read once. A file that cannot be read is left out of `hashes`; one that
 * reads but does not decode keeps its SHA-256 (byte copies of a broken file
 * are still duplicates) but has no pHash. Both land in `errors`; neither
 * stops the run.
 *
 * @example Hash a real image and a broken one in a temporary folder
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import sharp from "sharp";
 * import { hashFiles } from "./phash.ts";
 * const dir = await Deno.makeTempDir();
 * const good = join(dir, "good.png");
 * const broken = join(dir, "broken.jpg");
 * await sharp({
 *   create: { width: 16, height: 16, channels: 3, background: "#444" },
 * }).png().toFile(good);
 * await Deno.writeTextFile(broken, "not an image");
 * const { hashes, errors } = await hashFiles({ paths: [good, broken] });
 * assert.equal(hashes.length, 2); // both read: both have a SHA-256
 * assert.equal(typeof hashes[0].phash, "bigint");
 * assert.equal(hashes[1].phash, undefined); // the broken one did not decode
 * assert.deepEqual(errors.map((e) => e.path), [broken]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function hashFiles(
  options: HashFilesOptions,
): Promise<HashFilesResult> {
  const { paths, dhash = true, onProgress } = options;
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 4));
  const slots: (FileHashes | undefined)[] = new Array(paths.length);
  const errs: (HashError | undefined)[] = new Array(paths.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < paths.length) {
      const i = next++;
      const path = paths[i];
      let bytes: Uint8Array | undefined;
      try {
        bytes = await readImageFile(path);
      } catch (err) {
        errs[i] = { path, error: `cannot read: ${(err as Error).message}` };
      }
      if (bytes) {
        const entry: FileHashes = { path, sha256: sha256Bytes(bytes) };
        try {
          const h = await imageHashes(bytes, { dhash });
          entry.phash = h.phash;
          if (h.dhash !== undefined) entry.dhash = h.dhash;
        } catch (err) {
          errs[i] = { path, error: (err as Error).message };
        }
        slots[i] = entry;
      }
      done++;
      onProgress?.(done, paths.length);
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(concurrency, paths.length) }, worker),
  );
  return {
    hashes: slots.filter((s): s is FileHashes => s !== undefined),
    errors: errs.filter((e): e is HashError => e !== undefined),
  };
}
