import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import sharp from "sharp";
import {
  checkImageHeader,
  imageFormat,
  ImageHeaderError,
  readImageHeader,
} from "./image_header.ts";

async function greyJpeg(width: number, height: number): Promise<Uint8Array> {
  return new Uint8Array(
    await sharp({
      create: { width, height, channels: 3, background: "#777" },
    }).jpeg().toBuffer(),
  );
}

/** Index of the first 0xFF byte followed by `marker`. */
function markerAt(bytes: Uint8Array, marker: number): number {
  return bytes.findIndex((v, i) => v === 0xff && bytes[i + 1] === marker);
}

/** A PNG whose IHDR says `width`×`height` grey, with a tiny (wrong) body. */
function pngClaiming(width: number, height: number): Uint8Array {
  const ihdr = new Uint8Array(25);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, 13);
  ihdr.set(new TextEncoder().encode("IHDR"), 4);
  view.setUint32(8, width);
  view.setUint32(12, height);
  ihdr.set([8, 0, 0, 0, 0], 16);
  const idat = deflateSync(new Uint8Array(1024));
  return new Uint8Array([
    0x89,
    0x50,
    0x4e,
    0x47,
    0x0d,
    0x0a,
    0x1a,
    0x0a,
    ...ihdr,
    ...idat.subarray(0, 8),
  ]);
}

Deno.test("readImageHeader gives the size a JPEG's frame header claims", async () => {
  const jpeg = await greyJpeg(120, 90);
  const header = readImageHeader(jpeg);
  assert.deepEqual(
    [header.format, header.width, header.height, header.progressive],
    ["jpeg", 120, 90, false],
  );
  // The image data starts right after the scan header.
  const sos = markerAt(jpeg, 0xda);
  assert.equal(
    header.dataOffset,
    sos + 2 + ((jpeg[sos + 2] << 8) | jpeg[sos + 3]),
  );
  const progressive = new Uint8Array(
    await sharp({
      create: { width: 32, height: 32, channels: 3, background: "#777" },
    }).jpeg({ progressive: true }).toBuffer(),
  );
  assert.equal(readImageHeader(progressive).progressive, true);
});

Deno.test("a forged JPEG frame size is refused in well under a millisecond", async () => {
  const jpeg = await greyJpeg(64, 64);
  const sof = markerAt(jpeg, 0xc0);
  jpeg.set([0xff, 0xdc, 0xff, 0xdc], sof + 5);
  const t0 = performance.now();
  for (let i = 0; i < 100; i++) {
    assert.throws(
      () => checkImageHeader(jpeg, 50_000_000),
      (e) =>
        e instanceof ImageHeaderError &&
        /65500 × 65500 pixels .* over the limit of 50 megapixels/.test(
          e.message,
        ),
    );
  }
  assert.ok((performance.now() - t0) / 100 < 1);
});

Deno.test("a JPEG segment running past the end of the file is inconsistent", async () => {
  const jpeg = await greyJpeg(64, 64);
  const first = jpeg[3].toString(16).toUpperCase(); // the segment after SOI
  jpeg.set([0xff, 0xf0], 4); // its length := 65520, in a file of ~1 KB
  assert.throws(
    () => readImageHeader(jpeg),
    new RegExp(`segment 0xFF${first} at byte 2 has length 65520, past the end`),
  );
});

Deno.test("a JPEG frame header with no size, or a scan before the frame, is refused", async () => {
  const noSize = await greyJpeg(64, 64);
  noSize.set([0, 0], markerAt(noSize, 0xc0) + 5);
  assert.throws(() => readImageHeader(noSize), /gives no size \(64 × 0\)/);

  const jpeg = await greyJpeg(64, 64);
  const sof = markerAt(jpeg, 0xc0);
  jpeg[sof + 1] = 0xe5; // the frame header becomes an APP5 segment
  assert.throws(() => readImageHeader(jpeg), /before any frame header/);
});

Deno.test("a JPEG cut inside its header ends before its image data", async () => {
  const jpeg = await greyJpeg(64, 64);
  const sos = markerAt(jpeg, 0xda);
  assert.throws(
    () => readImageHeader(jpeg.subarray(0, sos)),
    /ends before its image data/,
  );
});

Deno.test("a PNG decompression bomb is refused by its header, before inflating", () => {
  const bomb = pngClaiming(30_000, 30_000);
  assert.equal(imageFormat(bomb), "png");
  assert.throws(
    () => checkImageHeader(bomb, 50_000_000),
    /30000 × 30000 pixels \(900 megapixels\), over the limit of 50 megapixels/,
  );
  // Within the limit the header is fine (the decoder judges the rest).
  assert.equal(
    checkImageHeader(pngClaiming(7_000, 7_000), 50_000_000).width,
    7000,
  );
});

Deno.test("a PNG with an impossible bit depth is refused", () => {
  const png = pngClaiming(10, 10);
  png[24] = 3; // grey at 3 bits does not exist
  assert.throws(() => readImageHeader(png), /bit depth 3 for colour type 0/);
});

Deno.test("other formats are recognised by their signature and left to the decoder", async () => {
  const webp = new Uint8Array(
    await sharp({
      create: { width: 8, height: 8, channels: 3, background: "#000" },
    }).webp().toBuffer(),
  );
  assert.deepEqual(readImageHeader(webp), { format: "webp" });
  assert.deepEqual(readImageHeader(new TextEncoder().encode("plain text")), {
    format: "unknown",
  });
});
