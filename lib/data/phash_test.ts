import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import {
  dHash,
  dHashFromPixels,
  hammingDistance,
  hashFiles,
  hashFromHex,
  hashToHex,
  imageHashes,
  pHash,
  pHashFromPixels,
  readImageFile,
  sha256Bytes,
  sha256File,
} from "./phash.ts";
import { ellipseScanJpeg } from "../../tests/fixtures.ts";
import { rng } from "../core/random.ts";

/** A seeded JPEG "scan" (128 px unless told). */
function syntheticScan(seed: number, size = 128): Promise<Uint8Array> {
  return ellipseScanJpeg(seed, size);
}

function naiveBits(a: bigint, b: bigint): number {
  let x = BigInt.asUintN(64, a ^ b);
  let n = 0;
  while (x) {
    n += Number(x & 1n);
    x >>= 1n;
  }
  return n;
}

function randomHash(r: ReturnType<typeof rng>): bigint {
  return (BigInt(r.int32() >>> 0) << 32n) | BigInt(r.int32() >>> 0);
}

Deno.test("hammingDistance: known values, hex and bigint, agrees with a bit loop", () => {
  assert.equal(hammingDistance(0n, 0n), 0);
  assert.equal(hammingDistance(0n, 0xffffffffffffffffn), 64);
  assert.equal(hammingDistance(0b1011n, 0b0001n), 2);
  assert.equal(hammingDistance(1n << 63n, 1n), 2);
  assert.equal(hammingDistance("00000000000000ff", "000000000000000f"), 4);
  assert.equal(hammingDistance("ffffffff00000000", 0xffffffffn), 64);
  const r = rng(5);
  for (let i = 0; i < 500; i++) {
    const a = randomHash(r);
    const b = randomHash(r);
    assert.equal(hammingDistance(a, b), naiveBits(a, b));
    assert.equal(hammingDistance(a, b), hammingDistance(b, a));
    assert.equal(hammingDistance(hashToHex(a), hashToHex(b)), naiveBits(a, b));
  }
});

Deno.test("hashToHex / hashFromHex round-trip; bad hex is rejected", () => {
  const r = rng(9);
  for (let i = 0; i < 100; i++) {
    const h = randomHash(r);
    const hex = hashToHex(h);
    assert.match(hex, /^[0-9a-f]{16}$/);
    assert.equal(hashFromHex(hex), h);
  }
  assert.equal(hashToHex(1n), "0000000000000001");
  assert.throws(() => hashFromHex("abc"), /16-character hex/);
  assert.throws(() => hashFromHex("zzzzzzzzzzzzzzzz"), /16-character hex/);
});

/** Full 32×32 orthonormal DCT-II, the slow textbook way. */
function naiveDct(p: number[]): number[][] {
  const N = 32;
  const c = (k: number) => (k === 0 ? Math.sqrt(1 / N) : Math.sqrt(2 / N));
  const out: number[][] = [];
  for (let v = 0; v < N; v++) {
    out.push([]);
    for (let u = 0; u < N; u++) {
      let s = 0;
      for (let y = 0; y < N; y++) {
        for (let x = 0; x < N; x++) {
          s += p[y * N + x] *
            Math.cos(((2 * x + 1) * u * Math.PI) / (2 * N)) *
            Math.cos(((2 * y + 1) * v * Math.PI) / (2 * N));
        }
      }
      out[v].push(c(u) * c(v) * s);
    }
  }
  return out;
}

Deno.test("pHashFromPixels matches a textbook DCT: rows/cols 1..8, median threshold", () => {
  const r = rng(11);
  for (let trial = 0; trial < 3; trial++) {
    const p = Array.from({ length: 1024 }, () => r.int(0, 255));
    const d = naiveDct(p);
    const coef: number[] = [];
    for (let v = 1; v <= 8; v++) {
      for (let u = 1; u <= 8; u++) coef.push(d[v][u]);
    }
    const sorted = [...coef].sort((a, b) => a - b);
    const median = (sorted[31] + sorted[32]) / 2;
    let expected = 0n;
    coef.forEach((c, i) => {
      if (c > median) expected |= 1n << BigInt(63 - i);
    });
    assert.equal(pHashFromPixels(p), expected);
  }
});

Deno.test("pHashFromPixels: 32 bits set, invariant to brightness/contrast, inverted by negation", () => {
  const r = rng(12);
  const p = Array.from({ length: 1024 }, () => r.int(10, 200));
  const h = pHashFromPixels(p);
  assert.equal(hammingDistance(h, 0n), 32);
  assert.equal(pHashFromPixels(p.map((v) => v * 1.1 + 7)), h);
  assert.equal(hammingDistance(pHashFromPixels(p.map((v) => 255 - v)), h), 64);
  assert.throws(() => pHashFromPixels([1, 2, 3]), /expected 1024 pixels/);
});

Deno.test("dHashFromPixels: a left-to-right ramp sets every bit, the reverse none", () => {
  const ramp = Array.from({ length: 1024 }, (_, i) => (i % 32) * 8);
  assert.equal(dHashFromPixels(ramp), 0xffffffffffffffffn);
  assert.equal(dHashFromPixels(ramp.map((v) => 255 - v)), 0n);
});

Deno.test("pHash/dHash: same scan re-encoded, resized or brightened stays close; other scans are far", async () => {
  const a = await syntheticScan(1);
  const base = await imageHashes(a);
  assert.equal(base.phash, await pHash(a));
  assert.equal(base.dhash, await dHash(a));
  const variants = [
    await sharp(a).jpeg({ quality: 40 }).toBuffer(),
    await sharp(a).resize(117, 117).jpeg({ quality: 90 }).toBuffer(),
    await sharp(a).linear(1.02, 0).jpeg({ quality: 90 }).toBuffer(),
    await sharp(a).png().toBuffer(),
  ];
  for (const v of variants) {
    const h = await imageHashes(v);
    assert.ok(hammingDistance(h.phash, base.phash) <= 4, "pHash near");
    assert.ok(hammingDistance(h.dhash!, base.dhash!) <= 12, "dHash near");
  }
  for (let seed = 2; seed < 8; seed++) {
    const other = await imageHashes(await syntheticScan(seed));
    const dp = hammingDistance(other.phash, base.phash);
    const dd = hammingDistance(other.dhash!, base.dhash!);
    assert.ok(dp > 10, `unrelated scan ${seed}: pHash distance ${dp}`);
    assert.ok(dd > 16, `unrelated scan ${seed}: dHash distance ${dd}`);
  }
});

Deno.test("pHash: an undecodable image throws naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "broken.jpg");
    await Deno.writeFile(path, new Uint8Array([0xff, 0xd8, 0xff, 1, 2, 3]));
    await assert.rejects(
      () => pHash(path),
      /cannot decode image .*broken\.jpg/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sha256File: streams a file to the same digest as sha256Bytes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "abc.txt");
    await Deno.writeTextFile(path, "abc");
    assert.equal(
      await sha256File(path),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    const big = new Uint8Array(300_000).map((_, i) => i * 31);
    await Deno.writeFile(join(dir, "big.bin"), big);
    assert.equal(await sha256File(join(dir, "big.bin")), sha256Bytes(big));
    await assert.rejects(
      () => sha256File(join(dir, "missing.jpg")),
      /cannot read .*missing\.jpg/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hashFiles: input order, corrupt and missing files reported, not fatal", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const paths: string[] = [];
    for (let i = 0; i < 7; i++) {
      const p = join(dir, `img${i}.jpg`);
      await Deno.writeFile(p, await syntheticScan(100 + i, 64));
      paths.push(p);
    }
    const corrupt = join(dir, "corrupt.jpg");
    const good = await Deno.readFile(paths[0]);
    await Deno.writeFile(corrupt, good.slice(0, 200)); // truncated JPEG
    const missing = join(dir, "missing.jpg");
    const all = [paths[0], corrupt, ...paths.slice(1), missing];
    let calls = 0;
    const { hashes, errors } = await hashFiles({
      paths: all,
      concurrency: 3,
      onProgress: () => calls++,
    });
    assert.equal(calls, all.length);
    assert.deepEqual(hashes.map((h) => h.path), all.slice(0, -1));
    assert.deepEqual(errors.map((e) => e.path), [corrupt, missing]);
    assert.match(errors[0].error, /cannot decode/);
    assert.match(errors[1].error, /cannot read/);
    const c = hashes.find((h) => h.path === corrupt)!;
    assert.equal(c.phash, undefined);
    assert.equal(c.sha256, sha256Bytes(good.slice(0, 200)));
    for (const h of hashes.filter((h) => h.path !== corrupt)) {
      assert.equal(h.sha256, await sha256File(h.path));
      assert.equal(h.phash, await pHash(h.path));
      assert.equal(typeof h.dhash, "bigint");
    }
    const noD = await hashFiles({ paths: paths.slice(0, 2), dhash: false });
    assert.equal(noD.hashes[0].dhash, undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hashFiles: truncated JPEGs decoded many at once each name the problem, never 'Unknown error'", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const paths: string[] = [];
    for (let i = 0; i < 24; i++) {
      const jpeg = await sharp(await syntheticScan(200 + i, 96))
        .jpeg({ progressive: i % 2 === 0 })
        .toBuffer();
      // The first half of a real JPEG: no end-of-image marker.
      const path = join(dir, `cut${i}.jpg`);
      await Deno.writeFile(path, jpeg.subarray(0, jpeg.length >> 1));
      paths.push(path);
    }
    for (let round = 0; round < 3; round++) {
      const { hashes, errors } = await hashFiles({ paths, concurrency: 16 });
      assert.equal(hashes.length, paths.length); // all read, none decoded
      assert.deepEqual(errors.map((e) => e.path), paths);
      for (const e of errors) {
        assert.match(
          e.error,
          /^cannot decode image: VipsJpeg: premature end of JPEG image$/,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hashFiles: FIFOs, devices and oversized files are refused at once, unread", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fifo = join(dir, "fifo.jpg");
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.ok(made.success);
    const zero = join(dir, "zero.jpg");
    await Deno.symlink("/dev/zero", zero);
    const huge = join(dir, "huge.jpg"); // sparse: 500 MB claimed, nothing written
    await Deno.writeFile(huge, await syntheticScan(1, 64));
    await Deno.truncate(huge, 500_000_000);
    const t0 = performance.now();
    const { hashes, errors } = await hashFiles({ paths: [fifo, zero, huge] });
    assert.ok(performance.now() - t0 < 1000);
    assert.deepEqual(hashes, []);
    assert.deepEqual(errors, [
      { path: fifo, error: "cannot read: not a regular file" },
      { path: zero, error: "cannot read: not a regular file" },
      {
        path: huge,
        error: "cannot read: 500000000 bytes, more than the 400000000 an " +
          "image file may have",
      },
    ]);
    await assert.rejects(
      () => pHash(fifo),
      /cannot read image .*fifo\.jpg: not a regular file/,
    );
    await assert.rejects(
      () => sha256File(zero),
      /cannot read .*zero\.jpg: not a regular file/,
    );
    await assert.rejects(() => readImageFile(fifo), /not a regular file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("imageHashes: an image over the pixel limit is refused from its header, without decoding it", async () => {
  const jpeg = new Uint8Array(await syntheticScan(3, 64));
  // The frame header's height and width (SOF0: FF C0, length, precision).
  const sof = jpeg.findIndex((v, i) => v === 0xff && jpeg[i + 1] === 0xc0);
  jpeg.set([0x27, 0x10, 0x27, 0x10], sof + 5); // 10,000 × 10,000 = 100 MP
  const t0 = performance.now();
  await assert.rejects(
    () => imageHashes(jpeg),
    /cannot decode image: image claims 10000 × 10000 pixels \(100 megapixels\), over the limit of 50 megapixels/,
  );
  assert.ok(performance.now() - t0 < 1000);
});
