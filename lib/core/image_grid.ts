/**
 * Grids of scans for notebooks: each image encoded as PNG with sharp and laid
 * out in an HTML grid with captions, plus a plain-text fallback.
 *
 * @module
 */
import sharp from "sharp";
import { type Displayable, displayable, escapeHtml } from "./display.ts";

/** One image of a grid: grayscale or RGB pixels, row-major. */
export interface GridImage {
  /** Pixels, `width * height * channels` bytes. */
  pixels: Uint8Array;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** 1 (grayscale) or 3 (RGB); default 1. */
  channels?: 1 | 3;
  /** Caption under the image (may contain several lines). */
  caption?: string;
}

/**
 * Encodes raw pixels as PNG.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodePng } from "./image_grid.ts";
 * const png = await encodePng({ pixels: new Uint8Array(16 * 16), width: 16, height: 16 });
 * assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
 * await assert.rejects(
 *   () => encodePng({ pixels: new Uint8Array(3), width: 2, height: 2 }),
 *   /3 bytes do not make a 2×2×1 image/,
 * );
 * ```
 */
export async function encodePng(image: GridImage): Promise<Uint8Array> {
  const channels = image.channels ?? 1;
  if (image.pixels.length !== image.width * image.height * channels) {
    throw new Error(
      `encodePng: ${image.pixels.length} bytes do not make a ` +
        `${image.width}×${image.height}×${channels} image`,
    );
  }
  let pipeline = sharp(image.pixels, {
    raw: { width: image.width, height: image.height, channels },
  });
  // Keep grayscale grayscale: a 1-band PNG is a third the size.
  if (channels === 1) pipeline = pipeline.toColourspace("b-w");
  const buffer = await pipeline.png({ compressionLevel: 6 }).toBuffer();
  return new Uint8Array(buffer);
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Options for {@linkcode imageGrid}. */
export interface ImageGridOptions {
  /** The images, in reading order. */
  images: GridImage[];
  /** Images per row; default 6. */
  columns?: number;
  /** Displayed width of each image in CSS pixels; default 128. */
  cellSize?: number;
  /** A title above the grid. */
  title?: string;
}

/**
 * A grid of images with captions, as a notebook display object (HTML with
 * inline PNGs; text fallback lists the captions).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "./display.ts";
 * import { imageGrid } from "./image_grid.ts";
 * const grid = await imageGrid({
 *   images: [{ pixels: new Uint8Array(64 * 64).fill(128), width: 64, height: 64, caption: "grey" }],
 *   title: "One grey square",
 * });
 * const bundle = grid[JUPYTER_DISPLAY]();
 * assert.equal(bundle["text/plain"], "One grey square\n[1] 64×64 grey");
 * assert.match(bundle["text/html"] as string, /src="data:image\/png;base64,/);
 * ```
 */
export async function imageGrid(
  options: ImageGridOptions,
): Promise<Displayable> {
  const columns = options.columns ?? 6;
  const cell = options.cellSize ?? 128;
  const pngs = await Promise.all(options.images.map(encodePng));
  const figures = options.images.map((image, i) =>
    `<figure style="margin:0;text-align:center"><img alt="${
      escapeHtml(image.caption ?? `image ${i + 1}`)
    }" style="width:${cell}px;height:auto;image-rendering:auto" src="data:image/png;base64,${
      base64(pngs[i])
    }"/><figcaption style="font-size:11px;line-height:1.2;white-space:pre-line">${
      escapeHtml(image.caption ?? "")
    }</figcaption></figure>`
  ).join("");
  const title = options.title
    ? `<div style="font-weight:bold;margin-bottom:4px">${
      escapeHtml(options.title)
    }</div>`
    : "";
  const html =
    `${title}<div class="brain-mri-grid" style="display:grid;grid-template-columns:repeat(${columns},${cell}px);gap:6px">${figures}</div>`;
  const text = [
    ...(options.title ? [options.title] : []),
    ...options.images.map((image, i) =>
      `[${i + 1}] ${image.width}×${image.height} ${
        (image.caption ?? "").replace(/\n/g, " | ")
      }`
    ),
  ].join("\n");
  return displayable({ "text/html": html, "text/plain": text });
}
