/**
 * Hostile and clumsy inputs, generated at run time in a temporary folder
 * (nothing binary is committed): JPEGs with a forged frame header, half a
 * scan or a cut-off end; PNG decompression bombs streamed through
 * `node:zlib` so they never sit in memory whole; a zip bomb streamed through
 * `@zip.js/zip.js`; zips with a bad checksum or a file where a folder should
 * be; copies of a shipped model whose weights are symbolic links or whose
 * class names hold terminal escapes; file names with control characters; a
 * dataset with an empty class folder and a truncated scan.
 *
 * `tests/hostile_test.ts` asserts what the hardened code does with them and
 * `bench/hostile.ts` measures before and after.
 *
 * @module
 */
import { createDeflate } from "node:zlib";
import zlib from "node:zlib";
import { join } from "node:path";
import { ZipWriter } from "@zip.js/zip.js";
import { ellipseScanJpeg } from "./fixtures.ts";

/** Where a JPEG's frame header sits: the offset of its SOF marker (0xFF). */
function sofOffset(jpeg: Uint8Array): number {
  let i = 2;
  while (i + 4 <= jpeg.length) {
    if (jpeg[i] !== 0xff) throw new Error(`no JPEG marker at byte ${i}`);
    const marker = jpeg[i + 1];
    if (
      marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)
    ) {
      return i;
    }
    i += 2 + ((jpeg[i + 2] << 8) | jpeg[i + 3]);
  }
  throw new Error("no frame header (SOF) in the JPEG");
}

/** The offset just past a JPEG's start-of-scan header (where the entropy-coded data starts). */
function scanDataOffset(jpeg: Uint8Array): number {
  let i = 2;
  while (i + 4 <= jpeg.length) {
    const length = (jpeg[i + 2] << 8) | jpeg[i + 3];
    if (jpeg[i + 1] === 0xda) return i + 2 + length;
    i += 2 + length;
  }
  throw new Error("no start of scan (SOS) in the JPEG");
}

/**
 * The width and height a JPEG's frame header claims.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ellipseScanJpeg } from "./fixtures.ts";
 * import { forgeJpegSize, jpegSize } from "./hostile_cases.ts";
 * const jpeg = await ellipseScanJpeg(1, 64);
 * assert.deepEqual(jpegSize(jpeg), { width: 64, height: 64 });
 * const forged = forgeJpegSize(jpeg, { width: 65500, height: 65500 });
 * assert.deepEqual(jpegSize(forged), { width: 65500, height: 65500 });
 * assert.equal(forged.length, jpeg.length);
 * ```
 */
export function jpegSize(jpeg: Uint8Array): { width: number; height: number } {
  const sof = sofOffset(jpeg);
  return {
    height: (jpeg[sof + 5] << 8) | jpeg[sof + 6],
    width: (jpeg[sof + 7] << 8) | jpeg[sof + 8],
  };
}

/**
 * A copy of `jpeg` whose frame header (SOF) claims another size; the scan
 * data is left as it is, so a decoder that trusts the header allocates for
 * the claimed size and fills it with grey.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ellipseScanJpeg } from "./fixtures.ts";
 * import { forgeJpegSize, jpegSize } from "./hostile_cases.ts";
 * const forged = forgeJpegSize(await ellipseScanJpeg(2, 32), { width: 9000, height: 7 });
 * assert.deepEqual(jpegSize(forged), { width: 9000, height: 7 });
 * ```
 */
export function forgeJpegSize(
  jpeg: Uint8Array,
  size: { width: number; height: number },
): Uint8Array {
  const out = jpeg.slice();
  const sof = sofOffset(out);
  out[sof + 5] = size.height >> 8;
  out[sof + 6] = size.height & 0xff;
  out[sof + 7] = size.width >> 8;
  out[sof + 8] = size.width & 0xff;
  return out;
}

/**
 * A JPEG cut in the middle of its scan and closed with an end-of-image
 * marker (FFD9), so it looks complete to a check of its last two bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ellipseScanJpeg } from "./fixtures.ts";
 * import { halfScanJpeg } from "./hostile_cases.ts";
 * const jpeg = await ellipseScanJpeg(3, 64);
 * const half = halfScanJpeg(jpeg);
 * assert.ok(half.length < jpeg.length);
 * assert.deepEqual([...half.subarray(-2)], [0xff, 0xd9]);
 * ```
 */
export function halfScanJpeg(jpeg: Uint8Array): Uint8Array {
  const start = scanDataOffset(jpeg);
  const cut = start + Math.floor((jpeg.length - 2 - start) / 2);
  const out = new Uint8Array(cut + 2);
  out.set(jpeg.subarray(0, cut));
  out.set([0xff, 0xd9], cut);
  return out;
}

/**
 * A JPEG cut off at 60% of its bytes, with no end-of-image marker (a
 * download or a copy that stopped).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ellipseScanJpeg } from "./fixtures.ts";
 * import { truncatedJpeg } from "./hostile_cases.ts";
 * const jpeg = await ellipseScanJpeg(4, 64);
 * assert.equal(truncatedJpeg(jpeg).length, Math.floor(jpeg.length * 0.6));
 * ```
 */
export function truncatedJpeg(jpeg: Uint8Array): Uint8Array {
  return jpeg.slice(0, Math.floor(jpeg.length * 0.6));
}

/** A PNG chunk: length, type, data, CRC-32 of type and data. */
function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, zlib.crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** Options for {@linkcode writePngBomb}. */
export interface PngBombOptions {
  /** The PNG file to write. */
  path: string;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

/** The IHDR chunk of an 8-bit greyscale PNG. */
function greyIhdr(width: number, height: number): Uint8Array {
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([8, 0, 0, 0, 0], 8); // 8 bits, greyscale, deflate, no filter, no interlace
  return pngChunk("IHDR", ihdr);
}

/**
 * Writes a valid 8-bit greyscale PNG of `width` × `height` black pixels:
 * the rows (one filter byte and `width` zeros each) go through a streaming
 * deflate into IDAT chunks as they are compressed, so a 30000 × 30000 PNG
 * (900 MB of pixels, under a megabyte of file) never sits in memory whole.
 * Returns the file's size in bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writePngBomb } from "./hostile_cases.ts";
 * const path = Deno.makeTempFileSync({ suffix: ".png" });
 * const bytes = await writePngBomb({ path, width: 300, height: 200 });
 * const png = Deno.readFileSync(path);
 * assert.equal(png.length, bytes);
 * assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
 * assert.equal(new DataView(png.buffer).getUint32(16), 300);
 * Deno.removeSync(path);
 * ```
 */
export async function writePngBomb(options: PngBombOptions): Promise<number> {
  const { path, width, height } = options;
  const file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  let bytes = 0;
  const write = async (data: Uint8Array) => {
    for (let done = 0; done < data.length;) {
      done += await file.write(data.subarray(done));
    }
    bytes += data.length;
  };
  try {
    await write(
      new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    );
    await write(greyIhdr(width, height));
    const deflate = createDeflate({ level: 9 });
    const row = new Uint8Array(width + 1);
    const feed = (async () => {
      for (let y = 0; y < height; y++) {
        if (!deflate.write(row)) {
          await new Promise((done) => deflate.once("drain", done));
        }
      }
      deflate.end();
    })();
    for await (const chunk of deflate) {
      await write(pngChunk("IDAT", new Uint8Array(chunk as Uint8Array)));
    }
    await feed;
    await write(pngChunk("IEND", new Uint8Array(0)));
  } finally {
    file.close();
  }
  return bytes;
}

/** Options for {@linkcode writeZipBomb}. */
export interface ZipBombOptions {
  /** The zip file to write. */
  path: string;
  /** Uncompressed size of the one large entry, in bytes. */
  entryBytes: number;
  /** Its name inside the zip (default `Training/glioma/Tr-gl-bomb.jpg`). */
  name?: string;
}

/** A stream of `total` zero bytes in 1 MiB pieces. */
function zeros(total: number): ReadableStream<Uint8Array> {
  const piece = new Uint8Array(1 << 20);
  let left = total;
  return new ReadableStream({
    pull(controller) {
      if (left <= 0) return controller.close();
      const n = Math.min(left, piece.length);
      controller.enqueue(
        n === piece.length ? piece.slice() : piece.slice(0, n),
      );
      left -= n;
    },
  });
}

/**
 * Writes a zip in the dataset's layout (`Training/`, `Testing/`) whose one
 * large entry is `entryBytes` zeros: deflated, 1 GiB becomes about a
 * megabyte. The entry is streamed through `@zip.js/zip.js`, never held
 * whole. Returns the zip's size in bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeZipBomb } from "./hostile_cases.ts";
 * const path = Deno.makeTempFileSync({ suffix: ".zip" });
 * const bytes = await writeZipBomb({ path, entryBytes: 4 << 20 });
 * assert.ok(bytes < 64 << 10, `${bytes}`);
 * Deno.removeSync(path);
 * ```
 */
export async function writeZipBomb(options: ZipBombOptions): Promise<number> {
  const name = options.name ?? "Training/glioma/Tr-gl-bomb.jpg";
  await writeZip(options.path, [
    {
      name: "Testing/glioma/Te-gl-0001.jpg",
      data: await ellipseScanJpeg(5, 64),
    },
    { name, data: zeros(options.entryBytes) },
  ]);
  return (await Deno.stat(options.path)).size;
}

/** One entry of a zip to write: bytes, a stream, or a folder (`data` absent). */
interface ZipEntrySource {
  name: string;
  data?: Uint8Array | ReadableStream<Uint8Array>;
}

/** Writes `entries` to a new zip at `path` (deflated, level 6). */
async function writeZip(
  path: string,
  entries: ZipEntrySource[],
): Promise<void> {
  const file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  const writer = new ZipWriter(file.writable, { useWebWorkers: false });
  for (const { name, data } of entries) {
    if (data === undefined) {
      await writer.add(name, undefined, { directory: true });
    } else {
      const readable = data instanceof Uint8Array
        ? new Blob([data.slice()]).stream()
        : data;
      await writer.add(name, { readable });
    }
  }
  await writer.close();
}

/**
 * Writes a small zip in the dataset's layout in which the entry `Training`
 * is a file, while later entries need it to be a folder
 * (`Training/glioma/...`).
 *
 * Writes a file, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { writeFileWhereFolderZip } from "./hostile_cases.ts";
 * await writeFileWhereFolderZip(await Deno.makeTempFile({ suffix: ".zip" }));
 * ```
 */
export async function writeFileWhereFolderZip(path: string): Promise<void> {
  const jpeg = await ellipseScanJpeg(6, 64);
  await writeZip(path, [
    { name: "Training", data: new TextEncoder().encode("not a folder\n") },
    { name: "Training/glioma/Tr-gl-0001.jpg", data: jpeg },
    { name: "Testing/glioma/Te-gl-0001.jpg", data: jpeg },
  ]);
}

/**
 * Writes a small zip in the dataset's layout whose entries are stored (not
 * deflated) and then flips one byte of an image's data, so only the entry's
 * CRC-32 can tell.
 *
 * Writes a file, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { writeBadChecksumZip } from "./hostile_cases.ts";
 * await writeBadChecksumZip(await Deno.makeTempFile({ suffix: ".zip" }));
 * ```
 */
export async function writeBadChecksumZip(path: string): Promise<void> {
  const jpeg = await ellipseScanJpeg(7, 64);
  const file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  const writer = new ZipWriter(file.writable, {
    useWebWorkers: false,
    level: 0,
  });
  for (
    const name of [
      "Training/glioma/Tr-gl-0001.jpg",
      "Testing/glioma/Te-gl-0001.jpg",
    ]
  ) {
    await writer.add(name, new Blob([jpeg.slice()]).stream());
  }
  await writer.close();
  const zip = await Deno.readFile(path);
  // The first entry's data starts after its 30-byte local header, name and extra field.
  const view = new DataView(zip.buffer);
  const start = 30 + view.getUint16(26, true) + view.getUint16(28, true);
  zip[start + Math.floor(jpeg.length / 2)] ^= 0x55;
  await Deno.writeFile(path, zip);
}

/** Copies the folder `from` to `to` (regular files and folders). */
async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const [src, dst] = [join(from, entry.name), join(to, entry.name)];
    if (entry.isDirectory) await copyDir(src, dst);
    else await Deno.copyFile(src, dst);
  }
}

/** The hostile copies of a model that {@linkcode writeHostileModels} makes. */
export interface HostileModels {
  /** An untouched copy (for normal requests). */
  good: string;
  /** `model/weights.bin` is a symbolic link to `/dev/zero`. */
  devZero: string;
  /** `model/` is a symbolic link to a folder outside the model. */
  linkedFolder: string;
  /** `metadata.json`'s class names hold ANSI escapes and a newline. */
  escapes: string;
}

/**
 * Copies the run folder `model` (e.g. `models/seedcnn-128-r2`) four times
 * into `dir`: as it is, with `model/weights.bin` linked to `/dev/zero`,
 * with its `model/` folder a symbolic link to a copy elsewhere, and with
 * terminal escapes in its class names.
 *
 * Copies a model on disk, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { writeHostileModels } from "./hostile_cases.ts";
 * const models = await writeHostileModels(await Deno.makeTempDir(), "models/seedcnn-128-r2");
 * console.log(models.devZero);
 * ```
 */
export async function writeHostileModels(
  dir: string,
  model: string,
): Promise<HostileModels> {
  const names = ["good", "dev-zero", "linked-folder", "escapes"];
  const [good, devZero, linkedFolder, escapes] = names.map((n) => join(dir, n));
  for (const to of [good, devZero, linkedFolder, escapes]) {
    await copyDir(model, to);
  }
  await Deno.remove(join(devZero, "model", "weights.bin"));
  await Deno.symlink("/dev/zero", join(devZero, "model", "weights.bin"));
  const outside = join(dir, "outside-model");
  await Deno.rename(join(linkedFolder, "model"), outside);
  await Deno.symlink(outside, join(linkedFolder, "model"));
  const metaPath = join(escapes, "model", "metadata.json");
  const meta = JSON.parse(await Deno.readTextFile(metaPath));
  meta.classes = (meta.classes as string[]).map((c, i) =>
    i === 0 ? `\x1b[2J\x1b[31m${c}\x1b[0m` : i === 1 ? `${c}\nFAKE LINE` : c
  );
  await Deno.writeTextFile(metaPath, JSON.stringify(meta, null, 2));
  return { good, devZero, linkedFolder, escapes };
}

/** A file name with a newline, a carriage return and an ANSI escape in it. */
export const CONTROL_NAME = "scan\nglioma 1.000\r\x1b[31mred.jpg";

/** Class folders of the dataset {@linkcode writeHostileDataset} writes. */
export const HOSTILE_CLASSES = ["glioma", "meningioma", "notumor", "pituitary"];

/**
 * Writes a small dataset into `dir`: four images in each class folder but
 * `pituitary`, which is empty, plus one truncated JPEG (`glioma/cut.jpg`)
 * and one whose name holds control characters ({@linkcode CONTROL_NAME}).
 *
 * Writes files, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { writeHostileDataset } from "./hostile_cases.ts";
 * await writeHostileDataset(await Deno.makeTempDir());
 * ```
 */
export async function writeHostileDataset(dir: string): Promise<void> {
  let seed = 100;
  for (const name of HOSTILE_CLASSES) {
    await Deno.mkdir(join(dir, name), { recursive: true });
    if (name === "pituitary") continue;
    for (let i = 0; i < 4; i++) {
      await Deno.writeFile(
        join(dir, name, `${name}-${i}.jpg`),
        await ellipseScanJpeg(seed++, 96),
      );
    }
  }
  const jpeg = await ellipseScanJpeg(seed++, 96);
  await Deno.writeFile(join(dir, "glioma", "cut.jpg"), truncatedJpeg(jpeg));
  await Deno.writeFile(
    join(dir, "notumor", CONTROL_NAME),
    await ellipseScanJpeg(seed++, 96),
  );
}

/**
 * Writes a tiny, well-formed dataset into `dir` (ten 64-pixel scans in each
 * of the four class folders): enough for `deno task train --size 32
 * --epochs 1` to finish in seconds and leave a checkpoint to tamper with.
 *
 * Writes files, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { writeTinyDataset } from "./hostile_cases.ts";
 * await writeTinyDataset(await Deno.makeTempDir());
 * ```
 */
export async function writeTinyDataset(dir: string): Promise<void> {
  let seed = 1000;
  for (const name of HOSTILE_CLASSES) {
    await Deno.mkdir(join(dir, name), { recursive: true });
    for (let i = 0; i < 10; i++) {
      await Deno.writeFile(
        join(dir, name, `${name}-${i}.jpg`),
        await ellipseScanJpeg(seed++, 64),
      );
    }
  }
}

/** How {@linkcode tamperCheckpoint} spoils a checkpoint. */
export type CheckpointTamper = "dev-zero" | "truncated";

/**
 * Spoils the checkpoint of the run folder `runDir`: its `model.bin`
 * becomes a symbolic link to `/dev/zero`, or is cut to its first 1000
 * bytes.
 *
 * Changes files on disk, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { tamperCheckpoint } from "./hostile_cases.ts";
 * await tamperCheckpoint("models/my-run", "truncated");
 * ```
 */
export async function tamperCheckpoint(
  runDir: string,
  how: CheckpointTamper,
): Promise<void> {
  const weights = join(runDir, "checkpoint", "model.bin");
  if (how === "dev-zero") {
    await Deno.remove(weights);
    await Deno.symlink("/dev/zero", weights);
  } else {
    const bytes = await Deno.readFile(weights);
    await Deno.writeFile(weights, bytes.subarray(0, 1000));
  }
}

/**
 * Writes a zip bomb ({@linkcode writeZipBomb}) whose large entry lies about
 * its size: its central directory record and its data descriptor say it
 * expands to `claimBytes` (default 1 MiB), while its data still inflates to
 * `entryBytes`. An unpacker that trusts the claim must stop the stream
 * itself. Returns the zip's size in bytes.
 *
 * Writes a file, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { writeLyingZipBomb } from "./hostile_cases.ts";
 * await writeLyingZipBomb({ path: "lying.zip", entryBytes: 1 << 30 });
 * ```
 */
export async function writeLyingZipBomb(
  options: ZipBombOptions & { claimBytes?: number },
): Promise<number> {
  const name = options.name ?? "Training/glioma/Tr-gl-bomb.jpg";
  const bytes = await writeZipBomb({ ...options, name });
  const zip = await Deno.readFile(options.path);
  const view = new DataView(zip.buffer);
  const claim = options.claimBytes ?? 1 << 20;
  const nameBytes = new TextEncoder().encode(name);
  const named = (at: number) =>
    nameBytes.every((b, i) => zip[at + 46 + i] === b) &&
    view.getUint16(at + 28, true) === nameBytes.length;
  for (let at = zip.length - 22; at >= 0; at--) {
    if (view.getUint32(at, true) !== 0x02014b50 || !named(at)) continue;
    const compressed = view.getUint32(at + 20, true);
    view.setUint32(at + 24, claim, true);
    // The data descriptor after the entry's data: [signature] crc, sizes.
    const local = view.getUint32(at + 42, true);
    const data = local + 30 + view.getUint16(local + 26, true) +
      view.getUint16(local + 28, true);
    const descriptor = data + compressed;
    const skip = view.getUint32(descriptor, true) === 0x08074b50 ? 4 : 0;
    view.setUint32(descriptor + skip + 8, claim, true);
    await Deno.writeFile(options.path, zip);
    return bytes;
  }
  throw new Error(`${options.path}: no central directory record for ${name}`);
}

/**
 * Overwrites every image-cache pack (`*.bin` under `cacheDir/images`) with
 * zeros in place, keeping its size, as a disk fault or a stray `dd` would;
 * returns how many packs it zeroed.
 *
 * Changes files on disk, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { zeroCachePacks } from "./hostile_cases.ts";
 * console.log(await zeroCachePacks(".cache"));
 * ```
 */
export async function zeroCachePacks(cacheDir: string): Promise<number> {
  let zeroed = 0;
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && entry.name.endsWith(".bin")) {
        const { size } = await Deno.stat(path);
        const file = await Deno.open(path, { write: true });
        try {
          const zeros = new Uint8Array(size);
          for (let done = 0; done < size;) {
            done += await file.write(zeros.subarray(done));
          }
        } finally {
          file.close();
        }
        zeroed++;
      }
    }
  };
  await walk(join(cacheDir, "images"));
  return zeroed;
}

/**
 * Beside every image-cache pack (`*.bin` under `cacheDir/images`) leaves
 * what a write of it killed before its rename leaves: a temporary file
 * `.<pack>.<pid>.<random>.tmp` of the pack's size, whose writer (pid
 * 4294967295, never a running process) is gone. Returns their paths.
 *
 * Writes files, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { plantKilledWrites } from "./hostile_cases.ts";
 * console.log(await plantKilledWrites(".cache"));
 * ```
 */
export async function plantKilledWrites(cacheDir: string): Promise<string[]> {
  const planted: string[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && entry.name.endsWith(".bin")) {
        const temp = join(dir, `.${entry.name}.4294967295.0badcafe.tmp`);
        await Deno.writeFile(
          temp,
          new Uint8Array((await Deno.stat(path)).size),
        );
        planted.push(temp);
      }
    }
  };
  await walk(join(cacheDir, "images"));
  return planted;
}
