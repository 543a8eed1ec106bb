/**
 * Reading an image's header before decoding it: the format, the size the
 * file claims, and whether its structure holds together — in microseconds,
 * without allocating the image. Every decode path calls
 * {@linkcode checkImageHeader} first, so an image that claims to be
 * 65,500 × 65,500 pixels, or whose markers contradict each other, is refused
 * before a decoder spends seconds and gigabytes on it.
 *
 * | format  | what is checked here                                                   |
 * | ------- | ---------------------------------------------------------------------- |
 * | JPEG    | every marker segment up to the image data: lengths inside the file, one frame header with a size, 1–4 components, a scan header that fits the frame |
 * | PNG     | the signature and the `IHDR` chunk: size, bit depth and colour type    |
 * | others  | recognised by their signature; their size is checked by the decoder (sharp's `limitInputPixels`) before it decodes |
 *
 * What the header cannot show (entropy-coded data cut short or damaged) is
 * caught by the strict decode in `./preprocess.ts`.
 *
 * @module
 */

/** Formats recognised by their signature. */
export type ImageFormat =
  | "jpeg"
  | "png"
  | "gif"
  | "webp"
  | "tiff"
  | "heif"
  | "unknown";

/** What an image's header says. */
export interface ImageHeader {
  /** The format, from the signature. */
  format: ImageFormat;
  /** Width in pixels, when this module reads it (JPEG, PNG). */
  width?: number;
  /** Height in pixels, when this module reads it (JPEG, PNG). */
  height?: number;
  /** JPEG: a progressive frame (its image data comes in several scans). */
  progressive?: boolean;
  /** JPEG: where the entropy-coded data of the first scan starts. */
  dataOffset?: number;
}

/** The header is inconsistent, or claims an image over the pixel limit. */
export class ImageHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageHeaderError";
  }
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function startsWith(b: Uint8Array, bytes: number[], at = 0): boolean {
  return bytes.every((v, i) => b[at + i] === v);
}

function ascii(b: Uint8Array, at: number, length: number): string {
  return String.fromCharCode(...b.subarray(at, at + length));
}

/**
 * The format of encoded image bytes, from their signature.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { imageFormat } from "./image_header.ts";
 * assert.equal(imageFormat(new Uint8Array([0xff, 0xd8, 0xff, 0xe0])), "jpeg");
 * assert.equal(imageFormat(new TextEncoder().encode("GIF89a")), "gif");
 * assert.equal(imageFormat(new TextEncoder().encode("hello")), "unknown");
 * ```
 */
export function imageFormat(b: Uint8Array): ImageFormat {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) {
    return "jpeg";
  }
  if (startsWith(b, PNG_SIGNATURE)) return "png";
  if (ascii(b, 0, 4) === "GIF8") return "gif";
  if (ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 4) === "WEBP") return "webp";
  if (ascii(b, 0, 4) === "II*\0" || ascii(b, 0, 4) === "MM\0*") return "tiff";
  if (ascii(b, 4, 4) === "ftyp") return "heif";
  return "unknown";
}

const hex = (v: number) => v.toString(16).toUpperCase().padStart(2, "0");

/** Start-of-frame markers: every 0xFFCn except DHT (C4), JPG (C8), DAC (CC). */
function isFrameMarker(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 &&
    marker !== 0xc8 && marker !== 0xcc;
}

interface Frame {
  width: number;
  height: number;
  components: number;
  progressive: boolean;
}

/** Progressive frame markers: SOF2, SOF6, SOF10, SOF14. */
const PROGRESSIVE = [0xc2, 0xc6, 0xca, 0xce];

function readFrame(b: Uint8Array, at: number, length: number): Frame {
  const height = (b[at + 5] << 8) | b[at + 6];
  const width = (b[at + 7] << 8) | b[at + 8];
  const components = b[at + 9];
  if (length !== 8 + 3 * components) {
    throw new ImageHeaderError(
      `inconsistent JPEG frame header at byte ${at}: length ${length} for ${components} components`,
    );
  }
  if (components < 1 || components > 4) {
    throw new ImageHeaderError(
      `JPEG frame header at byte ${at} has ${components} colour components (1 to 4 allowed)`,
    );
  }
  if (width === 0 || height === 0) {
    throw new ImageHeaderError(
      `JPEG frame header at byte ${at} gives no size (${width} × ${height})`,
    );
  }
  return {
    width,
    height,
    components,
    progressive: PROGRESSIVE.includes(b[at + 1]),
  };
}

function checkScan(b: Uint8Array, at: number, length: number, frame?: Frame) {
  if (!frame) {
    throw new ImageHeaderError(
      `JPEG image data at byte ${at} comes before any frame header`,
    );
  }
  const count = b[at + 4];
  if (count < 1 || count > frame.components || length !== 6 + 2 * count) {
    throw new ImageHeaderError(
      `inconsistent JPEG scan header at byte ${at}: ${count} components, length ${length}, frame of ${frame.components}`,
    );
  }
}

/** Marker segments from after SOI up to the first scan: the frame's size. */
function readJpegHeader(b: Uint8Array): ImageHeader {
  let frame: Frame | undefined;
  let i = 2;
  while (true) {
    if (i + 4 > b.length) {
      throw new ImageHeaderError(
        "JPEG file ends before its image data (no start-of-scan marker)",
      );
    }
    if (b[i] !== 0xff) {
      throw new ImageHeaderError(
        `inconsistent JPEG markers: byte ${i} is 0x${hex(b[i])}, not a marker`,
      );
    }
    const marker = b[i + 1];
    if (marker === 0xff) { // fill byte before a marker
      i += 1;
      continue;
    }
    if (
      marker === 0xd8 || marker === 0xd9 || (marker >= 0xd0 && marker <= 0xd7)
    ) {
      throw new ImageHeaderError(
        `inconsistent JPEG markers: 0xFF${
          hex(marker)
        } at byte ${i}, before the image data`,
      );
    }
    if (marker === 0x01) { // TEM: no length
      i += 2;
      continue;
    }
    const length = (b[i + 2] << 8) | b[i + 3];
    if (length < 2 || i + 2 + length > b.length) {
      throw new ImageHeaderError(
        `inconsistent JPEG markers: segment 0xFF${
          hex(marker)
        } at byte ${i} has length ${length}, past the end of the ${b.length}-byte file`,
      );
    }
    if (isFrameMarker(marker)) {
      if (frame) {
        throw new ImageHeaderError(
          `JPEG has a second frame header at byte ${i}`,
        );
      }
      frame = readFrame(b, i, length);
    } else if (marker === 0xda) {
      checkScan(b, i, length, frame);
      return {
        format: "jpeg",
        width: frame!.width,
        height: frame!.height,
        progressive: frame!.progressive,
        dataOffset: i + 2 + length,
      };
    }
    i += 2 + length;
  }
}

const PNG_DEPTHS: Record<number, number[]> = {
  0: [1, 2, 4, 8, 16], // grey
  2: [8, 16], // RGB
  3: [1, 2, 4, 8], // palette
  4: [8, 16], // grey + alpha
  6: [8, 16], // RGBA
};

function readPngHeader(b: Uint8Array): ImageHeader {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < 33 || view.getUint32(8) !== 13 || ascii(b, 12, 4) !== "IHDR") {
    throw new ImageHeaderError("PNG does not start with its IHDR header chunk");
  }
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  const depth = b[24];
  const colour = b[25];
  if (
    width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff
  ) {
    throw new ImageHeaderError(
      `PNG header gives an invalid size (${width} × ${height})`,
    );
  }
  if (!PNG_DEPTHS[colour]?.includes(depth)) {
    throw new ImageHeaderError(
      `PNG header gives an invalid bit depth ${depth} for colour type ${colour}`,
    );
  }
  return { format: "png", width, height };
}

/**
 * Reads the header of encoded image bytes: the format, and for JPEG and PNG
 * the size they claim, after checking that their structure holds together.
 * Throws {@linkcode ImageHeaderError} naming the inconsistency. Reads only
 * the header segments; never decodes.
 *
 * @example A PNG header, and a JPEG whose markers run past its end
 * ```ts
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * import { readImageHeader } from "./image_header.ts";
 * const png = await sharp({
 *   create: { width: 300, height: 200, channels: 3, background: "#000" },
 * }).png().toBuffer();
 * assert.deepEqual(readImageHeader(png), { format: "png", width: 300, height: 200 });
 * const jpeg = await sharp({
 *   create: { width: 64, height: 48, channels: 3, background: "#888" },
 * }).jpeg().toBuffer();
 * const header = readImageHeader(jpeg);
 * assert.equal(header.format, "jpeg");
 * assert.deepEqual([header.width, header.height, header.progressive], [64, 48, false]);
 * assert.throws(() => readImageHeader(jpeg.subarray(0, 40)), /JPEG/);
 * ```
 */
export function readImageHeader(bytes: Uint8Array): ImageHeader {
  const format = imageFormat(bytes);
  if (format === "jpeg") return readJpegHeader(bytes);
  if (format === "png") return readPngHeader(bytes);
  return { format };
}

/**
 * {@linkcode readImageHeader}, then the pixel limit: an image whose header
 * claims more than `maxPixels` (width × height) is refused with an
 * {@linkcode ImageHeaderError} saying how big it claims to be.
 *
 * @example A forged frame size: 65,500 × 65,500 pixels in a tiny file
 * ```ts
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * import { checkImageHeader } from "./image_header.ts";
 * const jpeg = new Uint8Array(await sharp({
 *   create: { width: 64, height: 64, channels: 3, background: "#888" },
 * }).jpeg().toBuffer());
 * assert.equal(checkImageHeader(jpeg, 50_000_000).width, 64);
 * const sof = jpeg.findIndex((v, i) => v === 0xff && jpeg[i + 1] === 0xc0);
 * jpeg.set([0xff, 0xdc, 0xff, 0xdc], sof + 5); // height, width := 65500
 * assert.throws(
 *   () => checkImageHeader(jpeg, 50_000_000),
 *   /65500 × 65500 pixels \(4290 megapixels\), over the limit of 50 megapixels/,
 * );
 * ```
 */
export function checkImageHeader(
  bytes: Uint8Array,
  maxPixels: number,
): ImageHeader {
  const header = readImageHeader(bytes);
  const { width, height } = header;
  if (
    width !== undefined && height !== undefined && width * height > maxPixels
  ) {
    throw new ImageHeaderError(
      `image claims ${width} × ${height} pixels (${
        megapixels(width * height)
      } megapixels), over the limit of ${megapixels(maxPixels)} megapixels`,
    );
  }
  return header;
}

function megapixels(pixels: number): string {
  const mp = pixels / 1e6;
  return mp >= 10 ? String(Math.round(mp)) : String(Number(mp.toPrecision(2)));
}
