import assert from "node:assert/strict";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import sharp from "sharp";
import { tf } from "../core/tf.ts";
import {
  pipelineKey,
  preprocessFiles,
  preprocessImage,
  preprocessJobs,
  resolveSettings,
  toBatchTensor,
} from "./preprocess.ts";

/** A smooth 3-channel test image (gray diagonal gradient plus a bright disc). */
function grayPattern(width: number, height: number): Uint8Array {
  const raw = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const r = Math.hypot(x - width / 2, y - height / 2);
      const v = r < Math.min(width, height) / 4
        ? 220
        : Math.round(40 + (120 * (x + y)) / (width + height));
      raw.set([v, v, v], (y * width + x) * 3);
    }
  }
  return raw;
}

async function patternJpeg(
  width: number,
  height: number,
  options: { channels?: 1 | 3; noise?: boolean } = {},
): Promise<Uint8Array> {
  const raw = grayPattern(width, height);
  if (options.noise) {
    let seed = 12345;
    for (let i = 0; i < raw.length; i += 3) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const v = seed >>> 24;
      raw.set([v, v, v], i);
    }
  }
  let image = sharp(raw, { raw: { width, height, channels: 3 } });
  if (options.channels === 1) image = image.toColourspace("b-w");
  return await image.jpeg({ quality: 95 }).toBuffer();
}

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** A 16-bit RGB PNG of one colour, written by hand. */
function png16(width: number, height: number, value: number): Uint8Array {
  const chunk = (type: string, data: Uint8Array) => {
    const out = new Uint8Array(12 + data.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, data.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(data, 8);
    view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  const h = new DataView(ihdr.buffer);
  h.setUint32(0, width);
  h.setUint32(4, height);
  ihdr.set([16, 2, 0, 0, 0], 8); // 16 bits, RGB
  const row = 1 + width * 6;
  const raw = new Uint8Array(row * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width * 3; x++) {
      raw[y * row + 1 + x * 2] = value >> 8;
      raw[y * row + 2 + x * 2] = value & 0xff;
    }
  }
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", new Uint8Array(deflateSync(raw))),
    chunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function mean(values: Uint8Array): number {
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "preprocess-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("preprocessImage: JPEG to one-channel size×size, both decoders agree", async () => {
  const before = tf.memory().numTensors;
  const bytes = await patternJpeg(256, 256);
  for (const size of [64, 100]) {
    const auto = await preprocessImage(bytes, { size });
    const viaSharp = await preprocessImage(bytes, { size, decoder: "sharp" });
    assert.equal(auto.length, size * size);
    assert.equal(viaSharp.length, size * size);
    assert.ok(meanAbsDiff(auto, viaSharp) < 3, "decoders differ too much");
    // Centre of the bright disc, and a corner of the gradient.
    const mid = (size / 2) * size + size / 2;
    assert.ok(Math.abs(auto[mid] - 220) <= 4, `centre ${auto[mid]}`);
    assert.ok(Math.abs(auto[0] - 40) <= 6, `corner ${auto[0]}`);
  }
  assert.equal(tf.memory().numTensors, before, "tensor leak");
});

Deno.test("preprocessImage: odd shapes and large images (box pre-shrink), all fits", async () => {
  const before = tf.memory().numTensors;
  const wide = await patternJpeg(1600, 400);
  const fill = await preprocessImage(wide, { size: 64 });
  const fillSharp = await preprocessImage(wide, { size: 64, decoder: "sharp" });
  assert.ok(meanAbsDiff(fill, fillSharp) < 4);
  // Full-size decode (no DCT scaling) gives nearly the same picture.
  const full = await preprocessImage(wide, { size: 64, shrinkOnLoad: false });
  assert.ok(meanAbsDiff(fill, full) < 3);
  const square = await patternJpeg(512, 512);
  assert.ok(
    meanAbsDiff(
      await preprocessImage(square, { size: 64 }),
      await preprocessImage(square, { size: 64, shrinkOnLoad: false }),
    ) < 3,
  );

  // contain: the 4:1 image becomes 64×16 with black bars above and below.
  const contain = await preprocessImage(wide, { size: 64, fit: "contain" });
  const containSharp = await preprocessImage(wide, {
    size: 64,
    fit: "contain",
    decoder: "sharp",
  });
  assert.equal(mean(contain.subarray(0, 64 * 20)), 0, "top bar is black");
  assert.equal(mean(contain.subarray(64 * 44)), 0, "bottom bar is black");
  assert.ok(mean(contain.subarray(64 * 26, 64 * 38)) > 40);
  assert.ok(meanAbsDiff(contain, containSharp) < 6);

  // cover: the centre square, no bars; its middle is the bright disc.
  const cover = await preprocessImage(wide, { size: 64, fit: "cover" });
  const coverSharp = await preprocessImage(wide, {
    size: 64,
    fit: "cover",
    decoder: "sharp",
  });
  assert.ok(Math.min(...cover) > 20);
  assert.ok(cover[32 * 64 + 32] > 200);
  assert.ok(meanAbsDiff(cover, coverSharp) < 4);

  // Upscaling a small image works too.
  const small = await preprocessImage(await patternJpeg(20, 30), { size: 48 });
  assert.equal(small.length, 48 * 48);
  assert.equal(tf.memory().numTensors, before, "tensor leak");
});

Deno.test("preprocessImage: PNG with alpha, 16-bit PNG, 1- and 3-channel inputs", async () => {
  // RGBA: opaque grey left half, fully transparent right half → flattened on black.
  const w = 32;
  const rgba = new Uint8Array(w * w * 4);
  for (let y = 0; y < w; y++) {
    for (let x = 0; x < w; x++) {
      rgba.set(
        x < w / 2 ? [200, 200, 200, 255] : [255, 255, 255, 0],
        (y * w + x) * 4,
      );
    }
  }
  const pngAlpha = await sharp(rgba, {
    raw: { width: w, height: w, channels: 4 },
  })
    .png().toBuffer();
  const a = await preprocessImage(pngAlpha, { size: 16 });
  assert.equal(a.length, 256);
  assert.ok(Math.abs(a[8 * 16 + 2] - 200) <= 2, `opaque ${a[8 * 16 + 2]}`);
  assert.equal(a[8 * 16 + 13], 0, "transparent becomes black");

  // 16-bit: 0x8080 is 50.2% → 128 in 8 bits.
  const deep = png16(20, 20, 0x8080);
  const meta = await sharp(deep).metadata();
  assert.equal(meta.depth, "ushort");
  const d = await preprocessImage(deep, { size: 8 });
  assert.equal(d.length, 64);
  assert.ok(d.every((v) => Math.abs(v - 128) <= 1), `16-bit gives ${d[0]}`);

  // One-channel JPEG and PNG, three-channel PNG.
  const grayJpeg = await patternJpeg(64, 64, { channels: 1 });
  assert.equal((await sharp(grayJpeg).metadata()).channels, 1);
  const grayPng = await sharp(grayPattern(64, 64), {
    raw: { width: 64, height: 64, channels: 3 },
  }).toColourspace("b-w").png().toBuffer();
  assert.equal((await sharp(grayPng).metadata()).channels, 1);
  const rgbPng = await sharp(grayPattern(64, 64), {
    raw: { width: 64, height: 64, channels: 3 },
  }).png().toBuffer();
  const outs = await Promise.all(
    [grayJpeg, grayPng, rgbPng].map((b) => preprocessImage(b, { size: 32 })),
  );
  for (const o of outs) assert.equal(o.length, 32 * 32);
  assert.ok(meanAbsDiff(outs[1], outs[2]) < 1.5, "gray and RGB PNG agree");
  assert.ok(meanAbsDiff(outs[0], outs[1]) < 4, "gray JPEG close to PNG");
});

Deno.test("preprocessFiles: corrupt and truncated files are reported and skipped", async () => {
  await withTemp(async (dir) => {
    const good1 = join(dir, "good1.jpg");
    const good2 = join(dir, "good2.png");
    const truncated = join(dir, "truncated.jpg");
    const random = join(dir, "random.jpg");
    const fakeHeader = join(dir, "fake-header.jpg");
    const missing = join(dir, "missing.jpg");
    const big = await patternJpeg(320, 320, { noise: true });
    await Deno.writeFile(good1, await patternJpeg(128, 96));
    await Deno.writeFile(
      good2,
      await sharp(grayPattern(40, 40), {
        raw: { width: 40, height: 40, channels: 3 },
      }).png().toBuffer(),
    );
    await Deno.writeFile(truncated, big.subarray(0, big.length >> 1));
    const noise = new Uint8Array(5000);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919 + 13) % 251;
    await Deno.writeFile(random, noise);
    await Deno.writeFile(
      fakeHeader,
      new Uint8Array([0xff, 0xd8, 0xff, ...noise]),
    );
    const paths = [good1, truncated, random, good2, fakeHeader, missing];

    for (const decoder of ["auto", "sharp"] as const) {
      const before = tf.memory().numTensors;
      const r = await preprocessFiles(paths, { size: 32, decoder });
      assert.equal(r.size, 32);
      assert.deepEqual(r.ok, [0, 3]);
      assert.equal(r.pixels.length, 2 * 32 * 32);
      assert.deepEqual(r.errors.map((e) => e.path), [
        truncated,
        random,
        fakeHeader,
        missing,
      ]);
      for (const e of r.errors) assert.ok(e.reason.length > 0);
      assert.match(r.errors[3].reason, /cannot be read/);
      assert.equal(tf.memory().numTensors, before, "tensor leak");
    }
    await assert.rejects(
      preprocessImage(truncated),
      (error: Error) => error.message.startsWith(`${truncated}: `),
    );
    await assert.rejects(
      preprocessImage(missing),
      /missing\.jpg: cannot be read/,
    );
  });
});

Deno.test("preprocessFiles: worker threads give the same pixels as this thread", async () => {
  await withTemp(async (dir) => {
    const paths: string[] = [];
    for (let i = 0; i < 70; i++) {
      const p = join(dir, `${i}.jpg`);
      await Deno.writeFile(p, await patternJpeg(96 + i, 80 + 2 * i));
      paths.push(p);
    }
    paths.splice(40, 0, join(dir, "missing.jpg"));
    const progress: number[] = [];
    const here = await preprocessFiles(paths, { size: 24, workers: 1 });
    const pooled = await preprocessFiles(paths, {
      size: 24,
      workers: 2,
      onProgress: (done, total) => {
        assert.equal(total, paths.length);
        progress.push(done);
      },
    });
    assert.equal(here.ok.length, 70);
    assert.deepEqual(pooled.ok, here.ok);
    assert.deepEqual(pooled.errors, here.errors);
    assert.deepEqual(pooled.pixels, here.pixels);
    assert.equal(progress.at(-1), paths.length);
  });
});

Deno.test("toBatchTensor: [N, size, size, 1] float32 in [0, 1], no leak", () => {
  const before = tf.memory().numTensors;
  const pixels = new Uint8Array(3 * 4 * 4);
  pixels[0] = 255;
  pixels[17] = 51;
  const x = toBatchTensor(pixels, 3, 4);
  assert.deepEqual(x.shape, [3, 4, 4, 1]);
  assert.equal(x.dtype, "float32");
  const values = x.dataSync();
  assert.equal(values[0], 1);
  assert.ok(Math.abs(values[17] - 0.2) < 1e-6);
  assert.equal(Math.min(...values), 0);
  x.dispose();
  assert.throws(
    () => toBatchTensor(pixels, 4, 4),
    /need 4×4×4 = 64 pixels, got 48/,
  );
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("resolveSettings and pipelineKey: validation and what the key covers", () => {
  assert.deepEqual(resolveSettings(), {
    size: 128,
    fit: "fill",
    decoder: "auto",
    shrinkOnLoad: true,
    clahe: null,
  });
  assert.throws(() => resolveSettings({ size: 0 }), /size must be an integer/);
  assert.throws(
    () => resolveSettings({ fit: "stretch" as "fill" }),
    /fit must be fill, contain or cover/,
  );
  const key = pipelineKey({ size: 64 });
  assert.match(key, /^v\d+-64-fill-gray-auto-tf[\d.]+-vips[\d.]+$/);
  assert.notEqual(pipelineKey({ size: 64, fit: "cover" }), key);
  assert.notEqual(pipelineKey({ size: 64, decoder: "sharp" }), key);
  assert.notEqual(pipelineKey({ size: 64, shrinkOnLoad: false }), key);
  assert.equal(pipelineKey({ size: 64 }), key);
});

/** `jpeg` with the frame header's height and width bytes set to `side`. */
function forgedSize(jpeg: Uint8Array, side: number): Uint8Array {
  const out = new Uint8Array(jpeg); // a copy (Buffer#slice would share)
  const sof = out.findIndex((v, i) => v === 0xff && out[i + 1] === 0xc0);
  out.set([side >> 8, side & 0xff, side >> 8, side & 0xff], sof + 5);
  return out;
}

Deno.test("decode: a forged 65500×65500 frame header is refused from the header, fast and small", async () => {
  const jpeg = await patternJpeg(512, 512, { noise: true });
  const forged = forgedSize(jpeg, 65500);
  for (const decoder of ["auto", "sharp"] as const) {
    const rss = Deno.memoryUsage().rss;
    const t0 = performance.now();
    const [outcome] = await preprocessJobs([{ bytes: forged }], { decoder });
    const ms = performance.now() - t0;
    assert.equal(outcome.pixels, undefined);
    assert.match(
      outcome.error!,
      /claims 65500 × 65500 pixels \(4290 megapixels\), over the limit of 50 megapixels/,
    );
    assert.ok(ms < 100, `${decoder}: ${ms} ms`);
    assert.ok(Deno.memoryUsage().rss - rss < 50e6, "no image allocated");
  }
});

Deno.test("decode: the pixel limit is an option", async () => {
  const jpeg = await patternJpeg(200, 200);
  const [small] = await preprocessJobs([{ bytes: jpeg }], {
    maxPixels: 200 * 200,
  });
  const [big] = await preprocessJobs([{ bytes: jpeg }], {
    maxPixels: 200 * 200 - 1,
  });
  assert.equal(small.pixels?.length, 128 * 128);
  assert.match(big.error!, /over the limit of 0\.04 megapixels/);
  await assert.rejects(
    preprocessJobs([{ bytes: jpeg }], { maxPixels: 0 }),
    /maxPixels must be a positive integer/,
  );
});

Deno.test("decode: corrupt JPEG data is an error on every decoder, never a grey-filled image", async () => {
  const jpeg = await patternJpeg(512, 512, { noise: true });
  const cases: Record<string, Uint8Array> = {
    // Half the scan, then a proper end-of-image marker: libjpeg would fill
    // the rest with grey and TensorFlow would return it as if it were fine.
    "half a scan + EOI": new Uint8Array([
      ...jpeg.subarray(0, jpeg.length >> 1),
      0xff,
      0xd9,
    ]),
    // A frame header that claims more rows than the data holds (within the
    // pixel limit): the same, from the other side.
    "forged 2048×2048 header": forgedSize(jpeg, 2048),
    "truncated, no EOI": jpeg.subarray(0, jpeg.length >> 1),
  };
  for (const [name, bytes] of Object.entries(cases)) {
    for (const decoder of ["auto", "sharp"] as const) {
      const [outcome] = await preprocessJobs([{ bytes }], { decoder });
      assert.equal(outcome.pixels, undefined, `${name} (${decoder}) decoded`);
      assert.match(
        outcome.error!,
        /corrupt JPEG data|premature end/i,
        `${name} (${decoder}): ${outcome.error}`,
      );
    }
  }
  // The intact file still decodes, and its pixels did not change.
  const [a] = await preprocessJobs([{ bytes: jpeg }]);
  assert.equal(a.pixels?.length, 128 * 128, a.error);
});

Deno.test("decode: a marker inside the image data, or a cut-short progressive JPEG, is checked strictly and refused", async () => {
  const jpeg = await patternJpeg(256, 256, { noise: true });
  const sos = jpeg.findIndex((v, i) => v === 0xff && jpeg[i + 1] === 0xda);
  const mid = sos + Math.floor((jpeg.length - sos) / 2);
  // A stray DHT marker dropped into the middle of the scan.
  const stray = new Uint8Array([
    ...jpeg.subarray(0, mid),
    0xff,
    0xc4,
    ...jpeg.subarray(mid),
  ]);
  const raw = new Uint8Array(256 * 256 * 3).map((_, i) => (i * 7919) % 251);
  const progressive = await sharp(raw, {
    raw: { width: 256, height: 256, channels: 3 },
  }).jpeg({ progressive: true }).toBuffer();
  const cutProgressive = new Uint8Array([
    ...progressive.subarray(0, progressive.length >> 1),
    0xff,
    0xd9,
  ]);
  for (
    const [name, bytes] of [["stray marker", stray], [
      "cut progressive",
      cutProgressive,
    ]] as const
  ) {
    const [outcome] = await preprocessJobs([{ bytes }]);
    assert.equal(outcome.pixels, undefined, `${name} decoded`);
    assert.ok(outcome.error!.length > 0);
  }
  // The intact progressive file decodes.
  const [ok] = await preprocessJobs([{ bytes: progressive }]);
  assert.equal(ok.pixels?.length, 128 * 128, ok.error);
});
