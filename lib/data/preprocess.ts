/**
 * Turning image files into small one-channel uint8 arrays for the CNN:
 * decode → grayscale → resize to `size`×`size` (default 128, stretched like
 * the seed notebook's `cv2.resize`; `fit` is configurable) → uint8 →
 * optionally CLAHE, contrast-limited adaptive histogram equalisation
 * (`clahe`; `./clahe.ts`).
 *
 * Two decoders, chosen by the file's content, never by chance:
 *
 * - **JPEG** (`decoder: "auto"`, the default): TensorFlow's native
 *   libjpeg-turbo decoder, asked for the luma channel only and for DCT-domain
 *   scaling (1/2, 1/4, 1/8) down to the smallest scale that still covers the
 *   target — the same mechanism as PIL's `draft("L", ...)` and libvips'
 *   shrink-on-load — then a box pre-shrink when the remaining factor is 2 or
 *   more, then bilinear resampling to the exact size.
 * - **Everything else** (PNG of any channel count, 8 or 16 bits, with or
 *   without alpha; JPEGs TensorFlow cannot decode, such as CMYK): sharp
 *   (libvips): flatten alpha onto black, resize (triangle filter), convert to
 *   `b-w`, 8-bit raw output. `decoder: "sharp"` sends JPEGs this way too.
 *
 * Why not sharp for everything: on this project's 2-core VM sharp spends about
 * 4 ms of CPU per 512×512 JPEG (much of it per-call overhead in libvips'
 * object system and thread hand-offs; and its shrink-on-load stops at 1/2 for
 * an exact 4× reduction), against about 0.5 ms for the TensorFlow path (1.5 ms
 * without DCT scaling) and 0.6 ms for PIL with `draft` (1.7 ms without).
 * `bench/preprocess.ts` measures all of them.
 *
 * The resampling after the decode is plain TypeScript (box filter, then
 * bilinear): TensorFlow's ops cost more in dispatch than they compute here.
 *
 * Batches of 1,024 files or more are spread over one Web Worker per core
 * (each loads TensorFlow and sharp once, ~0.3 s, while this thread already
 * decodes; once a worker is ready this thread only hands out work). Smaller
 * batches run in this thread. The pixels are the same either way.
 * Corrupt or truncated files are reported with the reason and skipped; one
 * bad file never stops a run.
 *
 * Before any decoder runs, the header is read (`./image_header.ts`): an image
 * claiming more than `maxPixels` (default 50 megapixels) or with
 * inconsistent markers is refused in microseconds, without allocating it.
 * Decoding is strict: where sharp decodes, any decoder warning ("Corrupt JPEG
 * data: premature end of data segment", a PNG checksum) is an error.
 * TensorFlow's decoder fills a cut-short scan with grey without failing, so a
 * JPEG it decodes is checked for the signs of that (its last row exactly
 * mid-grey, unexpected markers inside its image data, a progressive frame)
 * and, on any sign, decoded again by sharp at 1/8 scale with warnings as
 * errors. Intact scans pay nothing for the check (a strict decode of every
 * JPEG would cost about 2 ms of CPU each, three times the decode itself).
 *
 * @module
 */
import { createHash } from "node:crypto";
import sharp, { type SharpOptions } from "sharp";
import { DEFAULTS } from "../core/defaults.ts";
import { type Tensor4D, tf } from "../core/tf.ts";
import {
  applyClahe,
  type Clahe,
  claheName,
  claheProblems,
} from "../core/clahe.ts";
import { checkImageHeader, type ImageHeader } from "./image_header.ts";
import { decodeGated, decoderReason } from "./decode_gate.ts";

/**
 * Bumped whenever the pixels produced for the same file and settings change,
 * so caches keyed by {@linkcode pipelineKey} drop stale entries.
 */
export const PIPELINE_VERSION = 3;

/** How the image is fitted into the square. */
export type Fit = "fill" | "contain" | "cover";

/** Which decoder handles JPEG files (see the module documentation). */
export type Decoder = "auto" | "sharp";

/** Options for {@linkcode preprocessFiles} and {@linkcode preprocessImage}. */
export interface PreprocessOptions {
  /** Output side in pixels (default `DEFAULTS.imageSize`, 128). */
  size?: number;
  /**
   * `fill` (default): stretch to the square, ignoring the aspect ratio, as
   * `cv2.resize` does; `contain`: keep the aspect ratio, pad with black;
   * `cover`: keep the aspect ratio, crop the centre.
   */
  fit?: Fit;
  /** `auto` (default): TensorFlow for JPEG, sharp for the rest; `sharp`: sharp for all. */
  decoder?: Decoder;
  /**
   * Let the JPEG decoder scale down in the DCT domain (default true). With
   * `false` the TensorFlow path decodes at full size and box-filters down
   * (about twice the work; what PIL does without `draft`); sharp is given
   * `fastShrinkOnLoad: false`, which still shrinks on load but leaves at
   * least a factor of two to its resampling filter.
   */
  shrinkOnLoad?: boolean;
  /**
   * Contrast-limited adaptive histogram equalisation of the resized image
   * (`./clahe.ts`; default none).
   */
  clahe?: Clahe | null;
  /**
   * The largest image accepted, in pixels (default `DEFAULTS.maxPixels`):
   * the header is read first and a bigger image is refused before anything
   * is decoded.
   */
  maxPixels?: number;
  /** sharp calls in flight at once in each thread (default 4). */
  concurrency?: number;
  /**
   * Web Workers that decode (0 or 1: this thread only; this thread also
   * decodes until the first worker has loaded). Default: one per core when
   * there are at least 1,024 files, else none.
   */
  workers?: number;
  /** Called after each file (in this thread) or each chunk (workers). */
  onProgress?: (done: number, total: number) => void;
}

/** Decoded images, packed. */
export interface PreprocessResult {
  /** Side of every image. */
  size: number;
  /**
   * `ok.length` images of `size*size` bytes each, row-major, one channel,
   * in the order of `ok`.
   */
  pixels: Uint8Array;
  /** Indices (into the input list, ascending) of the inputs that decoded. */
  ok: number[];
  /** The inputs that did not decode, with the reason. */
  errors: { path: string; reason: string }[];
}

/** Settings that change the output pixels. */
export interface PipelineSettings {
  /** Output side. */
  size: number;
  /** Fit mode. */
  fit: Fit;
  /** JPEG decoder. */
  decoder: Decoder;
  /** DCT-domain downscaling while decoding JPEG. */
  shrinkOnLoad: boolean;
  /** CLAHE of the resized image, or `null` for none. */
  clahe: Clahe | null;
}

/** The settings a decode runs with: the pipeline's, and the pixel limit. */
interface DecodeSettings extends PipelineSettings {
  /** The largest image accepted (width × height). */
  maxPixels: number;
}

/** The options that shape the output pixels. */
export type SettingsOptions = Pick<
  PreprocessOptions,
  "size" | "fit" | "decoder" | "shrinkOnLoad" | "clahe"
>;

/** One unit of work for {@linkcode preprocessJobs}. */
export interface DecodeJob {
  /** File to read (used when `bytes` is absent; named in errors). */
  path?: string;
  /** Encoded image bytes. */
  bytes?: Uint8Array;
  /** Also return the SHA-256 of the bytes (hex). */
  hash?: boolean;
}

/** What became of one {@linkcode DecodeJob}. */
export interface DecodeOutcome {
  /** `size*size` bytes when it decoded. */
  pixels?: Uint8Array;
  /** Why it did not decode. */
  error?: string;
  /** SHA-256 (hex) of the bytes, when asked and the file could be read. */
  sha256?: string;
}

const DEFAULT_SIZE = DEFAULTS.imageSize;
const WORKER_NAME = "brain-mri-cnn:preprocess";
const WORKER_THRESHOLD = 1024;
const WORKER_CHUNK = 32;
const MAX_SIZE = 4096;

/**
 * Fills in defaults and validates the settings that shape the output.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveSettings } from "./preprocess.ts";
 * assert.deepEqual(resolveSettings({ size: 64 }), {
 *   size: 64,
 *   fit: "fill",
 *   decoder: "auto",
 *   shrinkOnLoad: true,
 *   clahe: null,
 * });
 * assert.throws(() => resolveSettings({ size: 0 }), /size must be an integer/);
 * assert.throws(() => resolveSettings({ clahe: { clipLimit: 2, tiles: 0 } }), /clahe.tiles/);
 * ```
 */
export function resolveSettings(
  options: SettingsOptions = {},
): PipelineSettings {
  const size = options.size ?? DEFAULT_SIZE;
  if (!Number.isInteger(size) || size < 1 || size > MAX_SIZE) {
    throw new Error(
      `size must be an integer from 1 to ${MAX_SIZE}, got ${size}`,
    );
  }
  const fit = options.fit ?? "fill";
  if (!["fill", "contain", "cover"].includes(fit)) {
    throw new Error(`fit must be fill, contain or cover, got ${fit}`);
  }
  const decoder = options.decoder ?? "auto";
  if (decoder !== "auto" && decoder !== "sharp") {
    throw new Error(`decoder must be auto or sharp, got ${decoder}`);
  }
  const shrinkOnLoad = options.shrinkOnLoad ?? true;
  const clahe = options.clahe ?? null;
  const problems = clahe ? claheProblems(clahe, size) : [];
  if (problems.length > 0) throw new Error(problems.join("; "));
  return {
    size,
    fit,
    decoder,
    shrinkOnLoad,
    clahe: clahe && { clipLimit: clahe.clipLimit, tiles: clahe.tiles },
  };
}

/**
 * A string naming everything that determines the output pixels: pipeline
 * version, size, fit, grayscale, decoder and the versions of the libraries
 * that do the work. Caches key their entries by it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PIPELINE_VERSION, pipelineKey } from "./preprocess.ts";
 * const key = pipelineKey({ size: 64 });
 * assert.ok(key.startsWith(`v${PIPELINE_VERSION}-64-fill-gray-auto-tf`));
 * assert.match(key, /-vips[\d.]+$/);
 * // Every setting that changes the pixels changes the key.
 * assert.notEqual(pipelineKey({ size: 64, fit: "cover" }), key);
 * assert.notEqual(pipelineKey({ size: 64, shrinkOnLoad: false }), key);
 * assert.notEqual(pipelineKey({ size: 64, clahe: { clipLimit: 2, tiles: 8 } }), key);
 * ```
 */
export function pipelineKey(options: SettingsOptions = {}): string {
  const s = resolveSettings(options);
  const tfVersion = (tf.version as Record<string, string>)["tfjs-node"] ??
    "unknown";
  return [
    `v${PIPELINE_VERSION}`,
    s.size,
    s.fit,
    "gray",
    s.decoder,
    ...(s.shrinkOnLoad ? [] : ["noshrink"]),
    ...(s.clahe ? [claheName(s.clahe)] : []),
    `tf${tfVersion}`,
    `vips${sharp.versions.vips}`,
  ].join("-");
}

/**
 * Whether the JPEG ends with its end-of-image marker (allowing a little
 * padding after it). A truncated file does not, and goes straight to sharp,
 * which names the problem (libjpeg inside TensorFlow would log to stderr).
 */
function hasJpegEnd(b: Uint8Array): boolean {
  for (let i = b.length - 2; i >= Math.max(2, b.length - 64); i--) {
    if (b[i] === 0xff && b[i + 1] === 0xd9) return true;
  }
  return false;
}

/** The largest libjpeg DCT scale (1, 2, 4, 8) whose output still covers the target. */
function dctRatio(width: number, height: number, s: PipelineSettings): number {
  for (const r of [8, 4, 2]) {
    const w = Math.ceil(width / r);
    const h = Math.ceil(height / r);
    const covers = s.fit === "contain"
      ? Math.max(w, h) >= s.size
      : w >= s.size && h >= s.size;
    if (covers) return r;
  }
  return 1;
}

/** A one-channel float image. */
interface Plane {
  data: Float32Array;
  height: number;
  width: number;
}

/**
 * Resamples the window (top, left, height, width) of a one-channel image
 * (row stride `stride`) to th×tw: a box filter by the integer part of the
 * factor when it is 2 or more (an area average, so no aliasing), then
 * bilinear interpolation with half-pixel centres for the rest. Plain loops:
 * TensorFlow's avgPool takes 5 ms for a 512×512 image, this 0.3 ms.
 */
function resample(
  src: ArrayLike<number>,
  stride: number,
  window: { top: number; left: number; height: number; width: number },
  th: number,
  tw: number,
): Plane {
  const { top, left, height, width } = window;
  const kh = height >= 2 * th ? Math.floor(height / th) : 1;
  const kw = width >= 2 * tw ? Math.floor(width / tw) : 1;
  const bh = Math.floor(height / kh);
  const bw = Math.floor(width / kw);
  const box = new Float32Array(bh * bw);
  for (let y = 0; y < bh; y++) {
    const out = y * bw;
    for (let dy = 0; dy < kh; dy++) {
      const row = (top + y * kh + dy) * stride + left;
      for (let x = 0; x < bw; x++) {
        let sum = 0;
        const base = row + x * kw;
        for (let dx = 0; dx < kw; dx++) sum += src[base + dx];
        box[out + x] += sum;
      }
    }
  }
  if (kh * kw > 1) {
    const inv = 1 / (kh * kw);
    for (let i = 0; i < box.length; i++) box[i] *= inv;
  }
  if (bh === th && bw === tw) return { data: box, height: th, width: tw };
  const out = new Float32Array(th * tw);
  const sy = bh / th;
  const sx = bw / tw;
  const x0 = new Int32Array(tw);
  const x1 = new Int32Array(tw);
  const fx = new Float32Array(tw);
  for (let x = 0; x < tw; x++) {
    const at = Math.max(0, (x + 0.5) * sx - 0.5);
    x0[x] = Math.min(Math.floor(at), bw - 1);
    x1[x] = Math.min(x0[x] + 1, bw - 1);
    fx[x] = at - Math.floor(at);
  }
  for (let y = 0; y < th; y++) {
    const at = Math.max(0, (y + 0.5) * sy - 0.5);
    const y0 = Math.min(Math.floor(at), bh - 1);
    const y1 = Math.min(y0 + 1, bh - 1);
    const fy = at - Math.floor(at);
    const r0 = y0 * bw;
    const r1 = y1 * bw;
    for (let x = 0; x < tw; x++) {
      const a = box[r0 + x0[x]] + (box[r0 + x1[x]] - box[r0 + x0[x]]) * fx[x];
      const b = box[r1 + x0[x]] + (box[r1 + x1[x]] - box[r1 + x0[x]]) * fx[x];
      out[y * tw + x] = a + (b - a) * fy;
    }
  }
  return { data: out, height: th, width: tw };
}

/** Rounds and clamps pixels to uint8 (round half to even). */
function toUint8(values: Float32Array | Int32Array | Uint8Array): Uint8Array {
  // The typed-array constructor converts natively (2× faster than .from).
  const clamped = new Uint8ClampedArray(values);
  return new Uint8Array(clamped.buffer, 0, clamped.length);
}

/** Fits a one-channel image (h×w, row-major) into S×S by the settings' fit. */
function fitImage(
  src: ArrayLike<number>,
  h: number,
  w: number,
  s: PipelineSettings,
): Uint8Array {
  const S = s.size;
  const whole = { top: 0, left: 0, height: h, width: w };
  if (s.fit === "fill") return toUint8(resample(src, w, whole, S, S).data);
  if (s.fit === "cover") {
    const side = Math.min(h, w);
    const window = {
      top: Math.floor((h - side) / 2),
      left: Math.floor((w - side) / 2),
      height: side,
      width: side,
    };
    return toUint8(resample(src, w, window, S, S).data);
  }
  const scale = S / Math.max(h, w);
  const nh = Math.max(1, Math.min(S, Math.round(h * scale)));
  const nw = Math.max(1, Math.min(S, Math.round(w * scale)));
  const inner = toUint8(resample(src, w, whole, nh, nw).data);
  const out = new Uint8Array(S * S);
  const top = Math.floor((S - nh) / 2);
  const left = Math.floor((S - nw) / 2);
  for (let y = 0; y < nh; y++) {
    out.set(inner.subarray(y * nw, (y + 1) * nw), (top + y) * S + left);
  }
  return out;
}

/** JPEG through TensorFlow: luma-only, DCT-scaled decode, then resample. */
function decodeJpegTf(
  bytes: Uint8Array,
  header: ImageHeader,
  s: PipelineSettings,
): { pixels: Uint8Array; greyTail: boolean } {
  const ratio = s.shrinkOnLoad ? dctRatio(header.width!, header.height!, s) : 1;
  const decoded = tf.node.decodeJpeg(
    bytes,
    1,
    ratio,
    true,
    false,
    1,
    "INTEGER_ACCURATE",
  );
  let values: Int32Array;
  try {
    values = decoded.dataSync() as Int32Array;
  } finally {
    decoded.dispose();
  }
  const [h, w] = decoded.shape;
  const greyTail = values.subarray((h - 1) * w).every((v) => v === 128);
  // The common case (512×512 at 1/4 → 128×128): nothing left to do.
  const pixels = h === s.size && w === s.size
    ? toUint8(values)
    : fitImage(values, h, w, s);
  return { pixels, greyTail };
}

/**
 * Whether the entropy-coded data of a baseline JPEG, from `start` to its
 * end-of-image marker, holds nothing but data, stuffed `FF 00` bytes and
 * restart markers. Anything else there (another marker, bytes after a
 * marker that should not be) calls for the strict decode.
 */
function scanDataClean(bytes: Uint8Array, start: number): boolean {
  let end = bytes.length - 2;
  while (end > start && !(bytes[end] === 0xff && bytes[end + 1] === 0xd9)) {
    end--;
  }
  for (let i = bytes.indexOf(0xff, start); i !== -1 && i < end;) {
    const next = bytes[i + 1];
    const restart = next >= 0xd0 && next <= 0xd7;
    if (next !== 0x00 && !restart && next !== 0xff) return false;
    i = bytes.indexOf(0xff, i + (next === 0xff ? 1 : 2));
  }
  return true;
}

/**
 * Why a JPEG TensorFlow decoded needs the strict decode to be trusted, or
 * `undefined`: its last row is exactly mid-grey — what libjpeg leaves where
 * a scan ran out of data ("premature end of data segment": every block
 * after it decodes as 128) —, its image data holds unexpected markers, or it
 * is progressive (a cut-short progressive file is blurry, not grey).
 */
function damageSign(
  bytes: Uint8Array,
  header: ImageHeader,
  greyTail: boolean,
): string | undefined {
  if (greyTail) return "last row exactly mid-grey";
  if (!scanDataClean(bytes, header.dataOffset ?? 2)) {
    return "a marker inside the image data";
  }
  if (header.progressive) return "progressive";
  return undefined;
}

/**
 * The sign of damage that makes the pipeline decode a JPEG a second time,
 * strictly, before trusting TensorFlow's decode of it (see the module
 * documentation), or `undefined` for none. `bench/decoder_warnings.ts`
 * counts them over a dataset.
 *
 * @example Half a scan closed by an end-of-image marker
 * ```ts
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * import { jpegDamageSign } from "./preprocess.ts";
 * const raw = new Uint8Array(256 * 256 * 3).map((_, i) => (i * 7919) % 251);
 * const jpeg = new Uint8Array(await sharp(raw, {
 *   raw: { width: 256, height: 256, channels: 3 },
 * }).jpeg().toBuffer());
 * assert.equal(jpegDamageSign(jpeg), undefined);
 * const half = new Uint8Array([...jpeg.subarray(0, jpeg.length >> 1), 0xff, 0xd9]);
 * assert.equal(jpegDamageSign(half), "last row exactly mid-grey");
 * ```
 */
export function jpegDamageSign(
  bytes: Uint8Array,
  options: SettingsOptions = {},
): string | undefined {
  const s = resolveSettings(options);
  const header = checkImageHeader(bytes, Number.MAX_SAFE_INTEGER);
  if (header.format !== "jpeg") throw new Error("not a JPEG");
  return damageSign(bytes, header, decodeJpegTf(bytes, header, s).greyTail);
}

/** Anything libvips reads, through sharp. Throws with sharp's reason. */
async function decodeSharp(
  bytes: Uint8Array,
  s: DecodeSettings,
): Promise<Uint8Array> {
  const { data, info } = await decodeGated(() =>
    sharp(bytes, strictInput(s))
      .flatten({ background: "#000000" })
      .resize(s.size, s.size, {
        fit: s.fit,
        kernel: "linear",
        background: "#000000",
        fastShrinkOnLoad: s.shrinkOnLoad,
      })
      .toColourspace("b-w")
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true })
  );
  if (info.width !== s.size || info.height !== s.size) {
    throw new Error(
      `resized to ${info.width}×${info.height} instead of ${s.size}×${s.size}`,
    );
  }
  const pixels = new Uint8Array(s.size * s.size);
  if (info.channels === 1) {
    pixels.set(data.subarray(0, pixels.length));
  } else {
    for (let i = 0; i < pixels.length; i++) pixels[i] = data[i * info.channels];
  }
  return pixels;
}

/**
 * sharp's input options for every decode: any decoder warning (libjpeg's
 * "Corrupt JPEG data", "Premature end of JPEG file", a PNG checksum) is an
 * error, and libvips checks the pixel limit against the header before it
 * decodes. Not one of the 5,712 Kaggle Training scans makes the decoder warn
 * (`bench/decoder_warnings.ts` counts them), so a warning means damage.
 */
function strictInput(s: DecodeSettings): SharpOptions {
  return {
    failOn: "warning",
    limitInputPixels: s.maxPixels,
    sequentialRead: true,
  };
}

/**
 * Decodes the whole image strictly at the smallest scale libjpeg offers and
 * throws on any decoder warning: the check that entropy-coded data is
 * complete and intact, which TensorFlow's decoder does not make (it fills a
 * cut-short scan with grey and carries on). About 2 ms of CPU for a 512×512
 * scan, three times the TensorFlow decode, so it runs only when
 * {@linkcode damageSign} finds a sign of damage.
 */
async function checkIntact(bytes: Uint8Array, s: DecodeSettings) {
  await decodeGated(() =>
    sharp(bytes, strictInput(s))
      .resize(8, 8, { fit: "fill", fastShrinkOnLoad: true })
      .raw()
      .toBuffer()
  );
}

function reasonOf(error: unknown): string {
  return decoderReason(error)
    .replace(/^Input buffer (has|contains) /, "")
    .replace(/^(corrupt header: )?(Vips\w+|\w+load(_buffer)?): /i, "")
    .replace(/^Corrupt JPEG data/, "corrupt JPEG data")
    .replace(
      /^Input image exceeds pixel limit$/,
      `image is over the pixel limit`,
    )
    .slice(0, 300) || "unknown error";
}

/**
 * Decodes one image's bytes with the settings' pipeline. Throws an error with
 * the decoder's reason (no path: callers add it).
 */
async function decodeBytes(
  bytes: Uint8Array,
  s: DecodeSettings,
): Promise<Uint8Array> {
  const pixels = await decodeResized(bytes, s);
  return s.clahe ? applyClahe(pixels, s.size, s.clahe) : pixels;
}

/** The decoded, grey, resized image (before any CLAHE). */
async function decodeResized(
  bytes: Uint8Array,
  s: DecodeSettings,
): Promise<Uint8Array> {
  if (bytes.length === 0) throw new Error("empty file");
  const header = checkImageHeader(bytes, s.maxPixels);
  if (s.decoder === "auto" && header.format === "jpeg" && hasJpegEnd(bytes)) {
    let decoded: ReturnType<typeof decodeJpegTf> | undefined;
    try {
      decoded = decodeJpegTf(bytes, header, s);
    } catch {
      // Left to sharp below: it decodes what libjpeg-in-TF cannot (e.g.
      // CMYK), and gives the better reason when the file is really broken.
    }
    if (decoded) {
      if (damageSign(bytes, header, decoded.greyTail)) {
        await checkIntact(bytes, s).catch((error) =>
          explainWarning(error, header, bytes)
        );
      }
      return decoded.pixels;
    }
  }
  return await decodeSharp(bytes, s).catch((error) =>
    explainWarning(error, header, bytes)
  );
}

/**
 * Rethrows a decode error; when sharp gives only "Warning treated as error"
 * (the decoder's own words went to its log, not into the error), says what
 * the warning was about instead.
 */
function explainWarning(
  error: unknown,
  header: ImageHeader,
  bytes: Uint8Array,
): never {
  if (!/^Warning treated as error/.test(reasonOf(error))) throw error;
  if (header.format === "jpeg" && !hasJpegEnd(bytes)) {
    throw new Error(
      "truncated JPEG: premature end of data (no end-of-image marker)",
    );
  }
  throw new Error(`corrupt ${header.format} data: the decoder warned`);
}

/** The pipeline's settings plus the pixel limit. */
function decodeSettings(
  options: SettingsOptions & { maxPixels?: number },
): DecodeSettings {
  const maxPixels = options.maxPixels ?? DEFAULTS.maxPixels;
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) {
    throw new Error(`maxPixels must be a positive integer, got ${maxPixels}`);
  }
  return { ...resolveSettings(options), maxPixels };
}

/**
 * The job's bytes. Files are read synchronously: for files of tens of KB in
 * the page cache that is ~3× cheaper than an asynchronous read, and the
 * parallelism comes from the worker threads anyway.
 */
function readJob(job: DecodeJob): Uint8Array {
  if (job.bytes) return job.bytes;
  if (job.path === undefined) throw new Error("job has neither path nor bytes");
  return Deno.readFileSync(job.path);
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Runs jobs in this thread, `concurrency` at a time (sharp is asynchronous). */
async function runLocal(
  jobs: DecodeJob[],
  s: DecodeSettings,
  concurrency: number,
  onDone?: (count: number) => void,
): Promise<DecodeOutcome[]> {
  const out = new Array<DecodeOutcome>(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      const job = jobs[i];
      let bytes: Uint8Array;
      try {
        bytes = readJob(job);
      } catch (error) {
        out[i] = { error: `cannot be read: ${reasonOf(error)}` };
        onDone?.(1);
        continue;
      }
      const outcome: DecodeOutcome = {};
      if (job.hash) outcome.sha256 = sha256Hex(bytes);
      try {
        outcome.pixels = await decodeBytes(bytes, s);
      } catch (error) {
        outcome.error = reasonOf(error);
      }
      out[i] = outcome;
      onDone?.(1);
    }
  };
  await Promise.all(
    Array.from(
      { length: Math.max(1, Math.min(concurrency, jobs.length)) },
      worker,
    ),
  );
  return out;
}

interface WorkerRequest {
  id: number;
  settings: DecodeSettings;
  concurrency: number;
  jobs: DecodeJob[];
}

interface WorkerReply {
  type: "ready" | "done" | "failed";
  id?: number;
  pixels?: Uint8Array;
  ok?: boolean[];
  errors?: (string | null)[];
  hashes?: (string | null)[];
  message?: string;
}

/** How {@linkcode runPool} spreads the work. */
interface PoolOptions {
  /** The pipeline's settings and the pixel limit. */
  settings: DecodeSettings;
  /** Web Workers to start. */
  workers: number;
  /** sharp calls in flight in each thread. */
  concurrency: number;
  /** Called with the number of jobs each finished chunk held. */
  onDone?: (count: number) => void;
}

/**
 * One {@linkcode runPool} call: the jobs cut into chunks, the workers, which
 * chunks each has in flight, and the outcomes in input order.
 */
class DecodePool {
  readonly out: DecodeOutcome[];
  readonly #jobs: DecodeJob[];
  readonly #options: PoolOptions;
  readonly #chunks: [number, number][] = [];
  readonly #workers = new Set<Worker>();
  readonly #ready = new Set<Worker>();
  readonly #pending = new Map<Worker, Set<number>>();
  readonly #retry: number[] = [];
  #nextChunk = 0;
  #finished = 0;
  #mainRunning = false;
  #resolve: () => void = () => {};
  #reject: (error: unknown) => void = () => {};

  constructor(jobs: DecodeJob[], options: PoolOptions) {
    this.#jobs = jobs;
    this.#options = options;
    this.out = new Array<DecodeOutcome>(jobs.length);
    for (let start = 0; start < jobs.length; start += WORKER_CHUNK) {
      this.#chunks.push([start, Math.min(jobs.length, start + WORKER_CHUNK)]);
    }
  }

  /** Starts the workers and this thread; settles when every chunk is done. */
  async run(): Promise<DecodeOutcome[]> {
    try {
      await new Promise<void>((resolve, reject) => {
        this.#resolve = resolve;
        this.#reject = reject;
        for (let k = 0; k < this.#options.workers; k++) this.#spawn();
        this.#startMain();
      });
    } finally {
      for (const w of this.#workers) w.terminate();
    }
    return this.out;
  }

  /** The next chunk to hand out: a dropped worker's first, then new ones. */
  #take(): number | undefined {
    return this.#retry.length > 0
      ? this.#retry.shift()
      : this.#nextChunk < this.#chunks.length
      ? this.#nextChunk++
      : undefined;
  }

  #completed(count: number): void {
    this.#options.onDone?.(count);
    this.#finished++;
    if (this.#finished === this.#chunks.length) this.#resolve();
  }

  /**
   * This thread decodes only while no worker is ready (they spend ~0.3 s
   * loading TensorFlow) or after every worker has failed, and gives the event
   * loop a turn after each chunk: decoding is synchronous, so without that
   * turn the workers' "ready" messages would wait until this thread had done
   * the whole batch alone.
   */
  async #mainLoop(): Promise<void> {
    if (this.#mainRunning) return;
    this.#mainRunning = true;
    const { settings, concurrency } = this.#options;
    try {
      while (this.#ready.size === 0) {
        const id = this.#take();
        if (id === undefined) break;
        const [start, end] = this.#chunks[id];
        const jobs = this.#jobs.slice(start, end);
        const done = await runLocal(jobs, settings, concurrency);
        done.forEach((o, j) => (this.out[start + j] = o));
        this.#completed(end - start);
        await new Promise((next) => setTimeout(next, 0));
      }
    } finally {
      this.#mainRunning = false;
    }
  }

  #startMain(): void {
    this.#mainLoop().catch((error) => this.#reject(error));
  }

  /** Starts one worker and listens to it. */
  #spawn(): void {
    const w = new Worker(import.meta.url, {
      type: "module",
      name: WORKER_NAME,
    });
    this.#workers.add(w);
    this.#pending.set(w, new Set());
    w.onerror = (event) => {
      event.preventDefault();
      this.#drop(w);
    };
    w.onmessageerror = () => this.#drop(w);
    w.onmessage = (event: MessageEvent<WorkerReply>) =>
      this.#onReply(w, event.data);
  }

  #onReply(w: Worker, reply: WorkerReply): void {
    if (reply.type === "ready") {
      this.#ready.add(w);
      // Two chunks in flight, so a worker never waits for this thread.
      this.#feed(w);
      return this.#feed(w);
    }
    if (reply.type === "failed") return this.#drop(w);
    this.#pending.get(w)?.delete(reply.id!);
    const [start, end] = this.#store(reply);
    this.#feed(w);
    this.#completed(end - start);
  }

  /** Puts a worker's finished chunk into `out`; returns the chunk's range. */
  #store(reply: WorkerReply): [number, number] {
    const area = this.#options.settings.size ** 2;
    const [start, end] = this.#chunks[reply.id!];
    for (let i = start; i < end; i++) {
      const j = i - start;
      const outcome: DecodeOutcome = {};
      if (reply.hashes![j]) outcome.sha256 = reply.hashes![j]!;
      if (reply.ok![j]) {
        outcome.pixels = reply.pixels!.slice(j * area, (j + 1) * area);
      } else {
        outcome.error = reply.errors![j] ?? "unknown error";
      }
      this.out[i] = outcome;
    }
    return [start, end];
  }

  /** Sends a worker the next chunk, if any is left. */
  #feed(w: Worker): void {
    const id = this.#take();
    if (id === undefined) return;
    this.#pending.get(w)!.add(id);
    const [start, end] = this.#chunks[id];
    const request: WorkerRequest = {
      id,
      settings: this.#options.settings,
      concurrency: this.#options.concurrency,
      jobs: this.#jobs.slice(start, end),
    };
    w.postMessage(request);
  }

  /**
   * Drops a failed worker: its chunks go to the surviving workers, or, with
   * none left, to this thread.
   */
  #drop(w: Worker): void {
    if (!this.#workers.delete(w)) return;
    this.#ready.delete(w);
    w.terminate();
    this.#retry.push(...(this.#pending.get(w) ?? []));
    this.#pending.delete(w);
    for (const other of this.#ready) {
      if (this.#retry.length > 0) this.#feed(other);
    }
    this.#startMain();
  }
}

/**
 * Runs jobs chunk by chunk on `options.workers` workers, and on this thread
 * until the first worker is ready, and puts the outcomes in input order. A
 * worker that fails (cannot start, or dies) is dropped and its chunks go to
 * the other workers, or to this thread when none is left, so the run still
 * completes.
 */
function runPool(
  jobs: DecodeJob[],
  options: PoolOptions,
): Promise<DecodeOutcome[]> {
  return new DecodePool(jobs, options).run();
}

/**
 * Decodes a list of jobs (paths or bytes), optionally hashing their bytes,
 * with the settings' pipeline. Never throws for a bad image: its outcome
 * carries `error` instead. The building block of {@linkcode preprocessFiles}
 * and of the image cache.
 *
 * @example Decode encoded bytes: a made-up grey PNG and a broken file
 * ```ts
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * import { preprocessJobs } from "./preprocess.ts";
 * const png = await sharp({
 *   create: { width: 40, height: 30, channels: 3, background: "#808080" },
 * }).png().toBuffer();
 * const [good, bad] = await preprocessJobs([
 *   { bytes: png, hash: true },
 *   { bytes: new TextEncoder().encode("not an image") },
 * ], { size: 16 });
 * assert.equal(good.pixels!.length, 16 * 16);
 * assert.equal(good.sha256!.length, 64);
 * assert.equal(bad.pixels, undefined);
 * assert.equal(typeof bad.error, "string"); // the decoder's reason
 * ```
 */
export async function preprocessJobs(
  jobs: DecodeJob[],
  options: PreprocessOptions = {},
): Promise<DecodeOutcome[]> {
  const s = decodeSettings(options);
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const cores = Math.max(1, navigator.hardwareConcurrency ?? 1);
  let done = 0;
  const onDone = options.onProgress
    ? (n: number) => options.onProgress!(done += n, jobs.length)
    : undefined;
  // Default: this thread plus one worker per further core, for big batches.
  const threads = options.workers !== undefined
    ? options.workers
    : jobs.length >= WORKER_THRESHOLD
    ? cores
    : 0;
  if (threads <= 1 || jobs.length <= WORKER_CHUNK) {
    return await runLocal(jobs, s, concurrency, onDone);
  }
  return await runPool(jobs, {
    settings: s,
    workers: threads,
    concurrency,
    onDone,
  });
}

/**
 * Decodes, converts to grayscale and resizes many files, skipping (and
 * reporting) the ones that fail. The pixels of the files that decoded are
 * packed in input order.
 *
 * @example Preprocess the files of a temporary folder to 32×32
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import sharp from "sharp";
 * import { preprocessFiles } from "./preprocess.ts";
 * const dir = await Deno.makeTempDir();
 * const [a, b] = [join(dir, "a.jpg"), join(dir, "b.png")];
 * await sharp({
 *   create: { width: 64, height: 64, channels: 3, background: "#222" },
 * }).jpeg().toFile(a);
 * await Deno.writeTextFile(b, "truncated");
 * const r = await preprocessFiles([a, b], { size: 32 });
 * assert.deepEqual(r.ok, [0]);
 * assert.equal(r.pixels.length, 32 * 32);
 * assert.deepEqual(r.errors.map((e) => e.path), [b]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function preprocessFiles(
  paths: string[],
  options: PreprocessOptions = {},
): Promise<PreprocessResult> {
  const s = resolveSettings(options);
  const outcomes = await preprocessJobs(paths.map((path) => ({ path })), {
    ...options,
    ...s,
  });
  return packOutcomes(paths, outcomes, s.size);
}

/**
 * Packs outcomes into a {@linkcode PreprocessResult} (pixels of the good ones
 * in input order; errors named by path).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packOutcomes } from "./preprocess.ts";
 * const r = packOutcomes(
 *   ["a.jpg", "b.jpg"],
 *   [{ error: "broken" }, { pixels: new Uint8Array([1, 2, 3, 4]) }],
 *   2,
 * );
 * assert.deepEqual(r.ok, [1]);
 * assert.deepEqual(r.pixels, new Uint8Array([1, 2, 3, 4]));
 * assert.deepEqual(r.errors, [{ path: "a.jpg", reason: "broken" }]);
 * ```
 */
export function packOutcomes(
  paths: string[],
  outcomes: DecodeOutcome[],
  size: number,
): PreprocessResult {
  const ok: number[] = [];
  const errors: { path: string; reason: string }[] = [];
  outcomes.forEach((o, i) => {
    if (o.pixels) ok.push(i);
    else errors.push({ path: paths[i], reason: o.error ?? "unknown error" });
  });
  const area = size * size;
  const pixels = new Uint8Array(ok.length * area);
  ok.forEach((i, k) => pixels.set(outcomes[i].pixels!, k * area));
  return { size, pixels, ok, errors };
}

/**
 * Preprocesses one image (a path or encoded bytes) to `size*size` uint8
 * pixels. Throws an error naming the file and the reason when it does not
 * decode.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * import { preprocessImage } from "./preprocess.ts";
 * const png = await sharp({
 *   create: { width: 100, height: 80, channels: 3, background: "#808080" },
 * }).png().toBuffer();
 * const pixels = await preprocessImage(png, { size: 64 });
 * assert.equal(pixels.length, 64 * 64);
 * assert.ok(pixels.every((v) => v === pixels[0])); // flat grey stays flat
 * await assert.rejects(
 *   preprocessImage(new Uint8Array([1, 2, 3])),
 *   /^Error: image bytes: /,
 * );
 * ```
 */
export async function preprocessImage(
  input: string | Uint8Array,
  options: SettingsOptions & { maxPixels?: number } = {},
): Promise<Uint8Array> {
  const s = decodeSettings(options);
  const name = typeof input === "string" ? input : "image bytes";
  let bytes: Uint8Array;
  try {
    bytes = typeof input === "string" ? await Deno.readFile(input) : input;
  } catch (error) {
    throw new Error(`${name}: cannot be read: ${reasonOf(error)}`);
  }
  try {
    return await decodeBytes(bytes, s);
  } catch (error) {
    throw new Error(`${name}: ${reasonOf(error)}`);
  }
}

/**
 * Makes a `[count, size, size, 1]` float32 tensor in [0, 1] from packed uint8
 * pixels. The caller owns (and disposes) the tensor.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toBatchTensor } from "./preprocess.ts";
 * const x = toBatchTensor(new Uint8Array(2 * 4 * 4).fill(255), 2, 4);
 * assert.deepEqual(x.shape, [2, 4, 4, 1]);
 * assert.equal(x.dtype, "float32");
 * assert.ok(x.dataSync().every((v) => v === 1)); // 255 → 1
 * x.dispose();
 * ```
 */
export function toBatchTensor(
  pixels: Uint8Array,
  count: number,
  size: number,
): Tensor4D {
  const n = count * size * size;
  if (!Number.isInteger(count) || count < 0) {
    throw new Error(`count must be a non-negative integer, got ${count}`);
  }
  if (pixels.length < n) {
    throw new Error(
      `need ${count}×${size}×${size} = ${n} pixels, got ${pixels.length}`,
    );
  }
  const values = new Float32Array(n);
  const scale = 1 / 255;
  for (let i = 0; i < n; i++) values[i] = pixels[i] * scale;
  return tf.tensor4d(values, [count, size, size, 1], "float32");
}

// ---------------------------------------------------------------------------
// Worker side: this same module, started by runPool() under WORKER_NAME.

function startWorker(): void {
  const scope = globalThis as unknown as {
    onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
    postMessage(message: WorkerReply, transfer?: Transferable[]): void;
  };
  scope.onmessage = async (event) => {
    const { id, settings, jobs, concurrency } = event.data;
    try {
      const outcomes = await runLocal(jobs, settings, concurrency);
      const area = settings.size * settings.size;
      const pixels = new Uint8Array(jobs.length * area);
      outcomes.forEach((o, j) => o.pixels && pixels.set(o.pixels, j * area));
      scope.postMessage({
        type: "done",
        id,
        pixels,
        ok: outcomes.map((o) => o.pixels !== undefined),
        errors: outcomes.map((o) => o.error ?? null),
        hashes: outcomes.map((o) => o.sha256 ?? null),
      }, [pixels.buffer]);
    } catch (error) {
      scope.postMessage({ type: "failed", message: reasonOf(error) });
    }
  };
  scope.postMessage({ type: "ready" });
}

if ((globalThis as { name?: unknown }).name === WORKER_NAME) startWorker();
