/**
 * Contrast-limited adaptive histogram equalisation (CLAHE) of a decoded
 * grey image: an optional preprocessing step that evens out the contrast of
 * scans taken with different scanners and windowing. It lives here, among
 * the foundations, because every stage that handles a model's input needs
 * it: the data pipeline applies it, a saved model records it, and predict and
 * serve apply it again.
 *
 * The image is cut into `tiles`×`tiles` tiles. Each tile's histogram is
 * clipped at `clipLimit` times the mean bin count (the clipped counts are
 * spread over all bins), and its cumulative histogram becomes the tile's
 * grey-level mapping; each pixel is then mapped by the four nearest tiles'
 * mappings, weighted bilinearly by its distance to their centres.
 *
 * It is the algorithm of OpenCV's `cv2.createCLAHE(clipLimit, (tiles,
 * tiles)).apply(image)`, step for step in the same float32 arithmetic,
 * including the mirrored padding of an image whose side the tiles do not
 * divide, so a Python user of an exported model can reproduce the input with
 * OpenCV; `clahe_test.ts` compares the two pixel by pixel.
 *
 * Why not a library: sharp has `clahe()`, but it is libvips' variant (window
 * sizes in pixels, a different clipping), which no Python user could
 * reproduce exactly, and each sharp call costs milliseconds of overhead on an
 * image of 128×128 pixels, where this takes about 0.4 ms.
 *
 * @module
 */

/** CLAHE settings, as `cv2.createCLAHE` takes them. */
export interface Clahe {
  /**
   * The histogram is clipped at this many times a tile's mean bin count
   * (OpenCV's `clipLimit`, e.g. 2); larger values allow more contrast.
   */
  clipLimit: number;
  /** Tiles per side (OpenCV's `tileGridSize`, square: e.g. 8 gives 8×8). */
  tiles: number;
}

/** Most tiles per side accepted. */
export const MAX_CLAHE_TILES = 64;

/** Most `clipLimit` accepted (256 already means no clipping at all). */
export const MAX_CLAHE_CLIP = 256;

const BINS = 256;

/**
 * What is wrong with CLAHE settings for images of side `size` (none: `[]`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { claheProblems } from "./clahe.ts";
 * assert.deepEqual(claheProblems({ clipLimit: 2, tiles: 8 }, 128), []);
 * assert.match(claheProblems({ clipLimit: 0, tiles: 8 }, 128)[0], /clipLimit/);
 * assert.match(claheProblems({ clipLimit: 2, tiles: 200 }, 128)[0], /tiles/);
 * ```
 */
export function claheProblems(value: unknown, size?: number): string[] {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return ["clahe must be an object { clipLimit, tiles }"];
  }
  const { clipLimit, tiles } = value as Record<string, unknown>;
  const problems: string[] = [];
  if (
    typeof clipLimit !== "number" || !(clipLimit > 0) ||
    !(clipLimit <= MAX_CLAHE_CLIP)
  ) {
    problems.push(
      `clahe.clipLimit must be a number above 0 and at most ${MAX_CLAHE_CLIP} ` +
        `(got ${JSON.stringify(clipLimit) ?? String(clipLimit)})`,
    );
  }
  const most = Math.min(MAX_CLAHE_TILES, size ?? MAX_CLAHE_TILES);
  if (
    typeof tiles !== "number" || !Number.isInteger(tiles) || tiles < 1 ||
    tiles > most
  ) {
    problems.push(
      `clahe.tiles must be an integer from 1 to ${most}` +
        `${size === undefined ? "" : ` for ${size}-pixel images`} ` +
        `(got ${JSON.stringify(tiles) ?? String(tiles)})`,
    );
  }
  return problems;
}

/**
 * Equalises one `size`×`size` grey image (row-major, one byte per pixel) and
 * returns the result; the input is left as it is.
 *
 * @example A dim ramp is stretched to the full grey range
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyClahe } from "./clahe.ts";
 * const size = 16;
 * const dim = Uint8Array.from({ length: size * size }, (_, i) => 100 + (i % size));
 * const out = applyClahe(dim, size, { clipLimit: 40, tiles: 1 });
 * assert.equal(Math.min(...dim), 100);
 * assert.equal(Math.max(...dim), 115);
 * assert.equal(Math.min(...out), 16); // one grey level in 16 of the histogram
 * assert.equal(Math.max(...out), 255);
 * ```
 */
export function applyClahe(
  pixels: Uint8Array,
  size: number,
  clahe: Clahe,
): Uint8Array {
  const problems = claheProblems(clahe, size);
  if (problems.length > 0) throw new Error(problems.join("; "));
  if (pixels.length !== size * size) {
    throw new Error(
      `applyClahe: ${pixels.length} bytes are not one ${size}×${size} image`,
    );
  }
  const side = Math.ceil(size / clahe.tiles);
  const luts = tileMappings(pixels, size, side, clahe);
  return interpolate(pixels, size, side, clahe.tiles, luts);
}

/**
 * Equalises each of the `size`×`size` images packed in `pixels`, in place.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyClahe, claheImages } from "./clahe.ts";
 * const a = Uint8Array.from({ length: 64 }, (_, i) => 90 + (i % 7));
 * const b = Uint8Array.from({ length: 64 }, (_, i) => 30 + (i % 5));
 * const packed = new Uint8Array([...a, ...b]);
 * claheImages(packed, 8, { clipLimit: 2, tiles: 2 });
 * assert.deepEqual(packed.subarray(0, 64), applyClahe(a, 8, { clipLimit: 2, tiles: 2 }));
 * assert.deepEqual(packed.subarray(64), applyClahe(b, 8, { clipLimit: 2, tiles: 2 }));
 * ```
 */
export function claheImages(
  pixels: Uint8Array,
  size: number,
  clahe: Clahe,
): Uint8Array {
  const area = size * size;
  if (pixels.length % area !== 0) {
    throw new Error(
      `claheImages: ${pixels.length} bytes are not whole ${size}×${size} images`,
    );
  }
  for (let start = 0; start < pixels.length; start += area) {
    const image = pixels.subarray(start, start + area);
    image.set(applyClahe(image, size, clahe));
  }
  return pixels;
}

/**
 * A short name for CLAHE settings, for cache keys and logs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { claheName } from "./clahe.ts";
 * assert.equal(claheName({ clipLimit: 2, tiles: 8 }), "clahe2x8");
 * ```
 */
export function claheName(clahe: Clahe): string {
  return `clahe${clahe.clipLimit}x${clahe.tiles}`;
}

/** Rounds to the nearest integer, halves to even (`cvRound`), then to 0–255. */
function toByte(v: number): number {
  const floor = Math.floor(v);
  const rest = v - floor;
  const r = rest > 0.5 || (rest === 0.5 && floor % 2 !== 0) ? floor + 1 : floor;
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

/**
 * Each tile's grey-level mapping (256 bytes per tile, tiles row by row): the
 * clipped histogram, accumulated and scaled to 0–255. Tiles past the image's
 * edge read it mirrored without repeating the edge row (OpenCV's
 * `BORDER_REFLECT_101`).
 */
function tileMappings(
  pixels: Uint8Array,
  size: number,
  side: number,
  clahe: Clahe,
): Uint8Array {
  const { tiles } = clahe;
  const area = side * side;
  const limit = Math.max(1, Math.trunc(clahe.clipLimit * area / BINS));
  const scale = Math.fround((BINS - 1) / area);
  const at = (i: number) => (i < size ? i : 2 * size - 2 - i);
  const luts = new Uint8Array(tiles * tiles * BINS);
  const hist = new Int32Array(BINS);
  for (let ty = 0; ty < tiles; ty++) {
    for (let tx = 0; tx < tiles; tx++) {
      hist.fill(0);
      for (let y = 0; y < side; y++) {
        const row = at(ty * side + y) * size;
        for (let x = 0; x < side; x++) hist[pixels[row + at(tx * side + x)]]++;
      }
      clipHistogram(hist, limit);
      const lut = luts.subarray((ty * tiles + tx) * BINS);
      let sum = 0;
      for (let i = 0; i < BINS; i++) {
        sum += hist[i];
        lut[i] = toByte(Math.fround(sum * scale));
      }
    }
  }
  return luts;
}

/** Clips a histogram at `limit` and spreads the excess evenly, remainder stepwise. */
function clipHistogram(hist: Int32Array, limit: number): void {
  let clipped = 0;
  for (let i = 0; i < BINS; i++) {
    if (hist[i] > limit) {
      clipped += hist[i] - limit;
      hist[i] = limit;
    }
  }
  const batch = Math.trunc(clipped / BINS);
  let residual = clipped - batch * BINS;
  for (let i = 0; i < BINS; i++) hist[i] += batch;
  if (residual === 0) return;
  const step = Math.max(Math.trunc(BINS / residual), 1);
  for (let i = 0; i < BINS && residual > 0; i += step, residual--) hist[i]++;
}

/** Where a pixel falls between tile centres along one axis (float32, as OpenCV). */
interface AxisWeights {
  /** Offset of the lower tile's mapping (tile index × 256 along x, × row along y). */
  lower: Int32Array;
  /** Offset of the upper tile's mapping. */
  upper: Int32Array;
  /** Weight of the upper tile. */
  weight: Float32Array;
}

function axisWeights(
  size: number,
  side: number,
  tiles: number,
  stride: number,
): AxisWeights {
  const inverse = Math.fround(1 / side);
  const lower = new Int32Array(size);
  const upper = new Int32Array(size);
  const weight = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    const f = Math.fround(Math.fround(i * inverse) - 0.5);
    const t1 = Math.floor(f);
    weight[i] = Math.fround(f - t1);
    lower[i] = Math.max(t1, 0) * stride;
    upper[i] = Math.min(t1 + 1, tiles - 1) * stride;
  }
  return { lower, upper, weight };
}

/** Maps every pixel by its four nearest tiles' mappings, bilinearly. */
function interpolate(
  pixels: Uint8Array,
  size: number,
  side: number,
  tiles: number,
  luts: Uint8Array,
): Uint8Array {
  const f = Math.fround;
  const xs = axisWeights(size, side, tiles, BINS);
  const ys = axisWeights(size, side, tiles, tiles * BINS);
  const out = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) {
    const ya = ys.weight[y];
    const ya1 = f(1 - ya);
    for (let x = 0; x < size; x++) {
      const v = pixels[y * size + x];
      const xa = xs.weight[x];
      const xa1 = f(1 - xa);
      const a = ys.lower[y] + v;
      const b = ys.upper[y] + v;
      const top = f(
        f(luts[a + xs.lower[x]] * xa1) + f(luts[a + xs.upper[x]] * xa),
      );
      const bottom = f(
        f(luts[b + xs.lower[x]] * xa1) + f(luts[b + xs.upper[x]] * xa),
      );
      out[y * size + x] = toByte(f(f(top * ya1) + f(bottom * ya)));
    }
  }
  return out;
}
