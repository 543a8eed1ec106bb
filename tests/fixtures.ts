/**
 * Test fixtures shared by several test files.
 *
 * @module
 */
import sharp from "sharp";
import { rng } from "../lib/random.ts";

/**
 * A JPEG "scan": low-amplitude noise plus a few bright ellipses, seeded, so
 * different seeds give clearly different images (for duplicate tests).
 *
 * @example
 * ```ts
 * import { ellipseScanJpeg } from "./fixtures.ts";
 * const jpeg = await ellipseScanJpeg(1, 64);
 * console.log(jpeg[0] === 0xff); // true
 * ```
 */
export async function ellipseScanJpeg(
  seed: number,
  size = 128,
): Promise<Uint8Array> {
  const r = rng(seed);
  const px = new Uint8Array(size * size * 3);
  const shapes = Array.from({ length: 5 }, () => ({
    cx: r.uniform(0.15, 0.85) * size,
    cy: r.uniform(0.15, 0.85) * size,
    rx: r.uniform(0.06, 0.3) * size,
    ry: r.uniform(0.06, 0.3) * size,
    v: r.int(90, 230),
  }));
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let v = 20 + r.int(0, 25);
      for (const s of shapes) {
        if (((x - s.cx) / s.rx) ** 2 + ((y - s.cy) / s.ry) ** 2 <= 1) {
          v = Math.max(v, s.v + r.int(-10, 10));
        }
      }
      const o = (y * size + x) * 3;
      px[o] = px[o + 1] = px[o + 2] = Math.min(255, v);
    }
  }
  return new Uint8Array(
    await sharp(px, { raw: { width: size, height: size, channels: 3 } })
      .jpeg({ quality: 92 }).toBuffer(),
  );
}

/**
 * Ten predictions over four classes, shared by the metrics, ROC, calibration
 * and evaluation-plot tests. Predicted classes (argmax):
 * `[0, 0, 2, 0, 3, 2, 2, 2, 3, 3]`, 7 of 10 right; meningioma (1) is never
 * predicted. Each test file states the values it derives from them.
 *
 * @example
 * ```ts
 * import { TEN_PREDICTIONS } from "./fixtures.ts";
 * console.log(TEN_PREDICTIONS.yTrue.length); // 10
 * ```
 */
export const TEN_PREDICTIONS: {
  readonly classes: string[];
  readonly yTrue: number[];
  readonly probs: number[][];
} = {
  classes: ["glioma", "meningioma", "notumor", "pituitary"],
  yTrue: [0, 0, 0, 1, 1, 2, 2, 2, 3, 3],
  probs: [
    [0.7, 0.1, 0.1, 0.1],
    [0.5, 0.2, 0.2, 0.1],
    [0.2, 0.1, 0.6, 0.1],
    [0.6, 0.3, 0.05, 0.05],
    [0.1, 0.3, 0.2, 0.4],
    [0.1, 0.1, 0.8, 0.0],
    [0.05, 0.05, 0.9, 0.0],
    [0.3, 0.1, 0.4, 0.2],
    [0.1, 0.1, 0.1, 0.7],
    [0.2, 0.1, 0.3, 0.4],
  ],
};
