/**
 * Unpacking a zip archive onto disk without trusting it: every entry is
 * streamed to its file in small pieces, so memory stays bounded whatever an
 * entry's size, and the archive is refused — naming it, the entry and the
 * cap — as soon as it breaks one of the {@linkcode UnzipLimits}:
 *
 * - the bytes written in all (`maxUnpackedBytes`, default
 *   {@linkcode DEFAULTS}`.maxUnpackedBytes`, 4 GiB);
 * - the number of entries (`maxEntries`);
 * - an entry's compression ratio (`maxRatio` once it passes
 *   `ratioMinBytes`): JPEGs barely compress, a 1,000:1 entry is a zip bomb.
 *
 * The caps are checked twice: first against the sizes the zip's headers
 * claim (so an archive that says it is too big is refused before anything is
 * written), then against the bytes actually inflated (so headers that lie do
 * not help). Before anything is written, every name is checked as well:
 * absolute paths, `..`, symbolic links, encrypted entries, duplicate names
 * and a file where a folder should be are all refused. Each entry's CRC-32
 * and size are verified as it is written.
 *
 * `@zip.js/zip.js` reads the central directory (names, sizes, CRC-32s,
 * offsets, Zip64). Each entry's compressed bytes are then read from its
 * offset in 64 KiB chunks and inflated with
 * `DecompressionStream("deflate-raw")`, fed a few kilobytes at a time so
 * that no single step can expand into more than a few megabytes. (zip.js's
 * own inflating pipeline holds a whole bomb's output in memory — 1.2 GB for
 * a 1 GiB entry — and its pass-through reading costs twice the time per
 * entry, so it is used for the directory only.)
 *
 * @module
 */
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { type Entry, type FileEntry, Reader, ZipReader } from "@zip.js/zip.js";
import { DEFAULTS } from "../core/defaults.ts";

const MiB = 1024 ** 2;

/** Compressed bytes read from the archive at a time. */
const READ_CHUNK_BYTES = 64 * 1024;

/** The signature of a local file header, which precedes each entry's data. */
const LOCAL_HEADER_SIGNATURE = 0x04034b50;

/**
 * Compressed bytes handed to the inflater at a time: deflate expands at most
 * about 1,032:1, so one step yields at most about 4 MiB.
 */
const INFLATE_PIECE_BYTES = 4096;

/** The zip compression methods that can be unpacked: stored and deflate. */
const STORED = 0;
const DEFLATE = 8;

/** What unpacking an archive may produce. */
export interface UnzipLimits {
  /** The most bytes written, all entries together. */
  maxUnpackedBytes: number;
  /** The most entries (files and folders) in the archive. */
  maxEntries: number;
  /** The highest uncompressed : compressed ratio of an entry… */
  maxRatio: number;
  /** …once it has unpacked to more than this many bytes. */
  ratioMinBytes: number;
}

/**
 * The default {@linkcode UnzipLimits}: 4 GiB in all, 100,000 entries, and no
 * entry over 4 MiB expanding more than 100:1. The Kaggle dataset (about
 * 7,000 JPEGs, 150 MB unpacked) is far inside all of them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UNZIP_LIMITS } from "./unzip.ts";
 * assert.equal(UNZIP_LIMITS.maxUnpackedBytes, 4 * 1024 ** 3);
 * assert.equal(UNZIP_LIMITS.maxRatio, 100);
 * ```
 */
export const UNZIP_LIMITS: Readonly<UnzipLimits> = Object.freeze({
  maxUnpackedBytes: DEFAULTS.maxUnpackedBytes,
  maxEntries: 100_000,
  maxRatio: 100,
  ratioMinBytes: 4 * MiB,
});

/** Which of the {@linkcode UnzipLimits} an archive broke. */
export type UnzipCap = keyof UnzipLimits;

/** Where an {@linkcode UnzipError} happened. */
export interface UnzipErrorDetails {
  /** The archive. */
  archive: string;
  /** The entry, when one is to blame. */
  entry?: string;
  /** The cap it broke, when it broke one. */
  cap?: UnzipCap;
}

/**
 * The archive cannot be unpacked: it is corrupt, unsafe (names that escape,
 * links, a file where a folder should be) or breaks a cap. The message is
 * one line naming the archive and, when one is to blame, the entry.
 */
export class UnzipError extends Error {
  /** The archive. */
  readonly archive: string;
  /** The entry to blame, if any. */
  readonly entry?: string;
  /** The cap the archive broke, if any. */
  readonly cap?: UnzipCap;

  /**
   * Makes the error.
   *
   * @param message what is wrong, naming the archive and the entry
   * @param details the archive, the entry and the cap
   */
  constructor(message: string, details: UnzipErrorDetails) {
    super(message);
    this.name = "UnzipError";
    this.archive = details.archive;
    this.entry = details.entry;
    this.cap = details.cap;
  }
}

/** Options for {@linkcode unzipFile}. */
export interface UnzipOptions {
  /** The zip file. */
  archive: string;
  /** The folder to unpack into; it should be new and empty. */
  into: string;
  /** Caps to change; the rest come from {@linkcode UNZIP_LIMITS}. */
  limits?: Partial<UnzipLimits>;
}

/** What {@linkcode unzipFile} wrote. */
export interface UnzipResult {
  /** Files written. */
  files: number;
  /** Bytes written, all files together. */
  bytes: number;
}

/**
 * Unpacks a zip file into a folder, streaming each entry, checking every
 * name before writing anything and enforcing the {@linkcode UnzipLimits}
 * (see the module doc). Throws {@linkcode UnzipError} for anything wrong
 * with the archive; what was written by then stays in `into` (unpack into a
 * temporary folder and delete it on failure).
 *
 * @example Unpack a small archive made on the spot
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { TextReader, Uint8ArrayWriter, ZipWriter } from "@zip.js/zip.js";
 * import { unzipFile } from "./unzip.ts";
 * const dir = await Deno.makeTempDir();
 * const writer = new ZipWriter(new Uint8ArrayWriter(), { useWebWorkers: false });
 * await writer.add("notes/hello.txt", new TextReader("hello ".repeat(100)));
 * await Deno.writeFile(join(dir, "a.zip"), await writer.close());
 * const result = await unzipFile({ archive: join(dir, "a.zip"), into: join(dir, "out") });
 * assert.deepEqual(result, { files: 1, bytes: 600 });
 * assert.equal(await Deno.readTextFile(join(dir, "out", "notes", "hello.txt")), "hello ".repeat(100));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function unzipFile(options: UnzipOptions): Promise<UnzipResult> {
  const { archive, into } = options;
  const limits = { ...UNZIP_LIMITS, ...options.limits };
  const size = await archiveSize(archive);
  using file = await Deno.open(archive);
  await refuseClaimedEntryCount({ archive, file, size, limits });
  const source = new FsFileReader(file, size);
  const reader = new ZipReader(source, { useWebWorkers: false });
  try {
    const plan = await planEntries(reader, { archive, into, limits });
    await Deno.mkdir(into, { recursive: true });
    const run: UnpackRun = { archive, source, limits, written: 0 };
    let files = 0;
    for (const item of plan) {
      if (item.entry.directory) {
        await Deno.mkdir(item.target, { recursive: true });
      } else {
        await unpackEntry(run, item as PlannedFile);
        files++;
      }
    }
    return { files, bytes: run.written };
  } finally {
    await reader.close();
  }
}

/** The archive's size; a missing or unreadable file is an {@linkcode UnzipError}. */
async function archiveSize(archive: string): Promise<number> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(archive);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound
      ? "no such file"
      : (error as Error).message;
    throw new UnzipError(`${archive}: cannot read it (${why})`, { archive });
  }
  if (!info.isFile) {
    throw new UnzipError(`${archive} is not a file`, { archive });
  }
  return info.size;
}

// ---------------------------------------------------------------------------
// Reading the archive

/** Random-access reads of a file for zip.js, serialised (seek + read). */
class FsFileReader extends Reader<Deno.FsFile> {
  #file: Deno.FsFile;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(file: Deno.FsFile, size: number) {
    super(file);
    this.#file = file;
    this.size = size;
  }

  override readUint8Array(offset: number, length: number): Promise<Uint8Array> {
    // Never more than the file holds, whatever a header claims.
    const wanted = Math.max(0, Math.min(length, this.size - offset));
    const result = this.#queue.then(() => readAt(this.#file, offset, wanted));
    this.#queue = result.catch(() => undefined);
    return result;
  }
}

async function readAt(
  file: Deno.FsFile,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  await file.seek(offset, Deno.SeekMode.Start);
  const data = new Uint8Array(length);
  let read = 0;
  while (read < length) {
    const count = await file.read(data.subarray(read));
    if (count === null) return data.subarray(0, read);
    read += count;
  }
  return data;
}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;

/**
 * Refuses an archive whose end-of-central-directory record already claims
 * more entries than `maxEntries`, before the central directory is read.
 * Archives without a readable record are left to zip.js to diagnose.
 */
async function refuseClaimedEntryCount(
  { archive, file, size, limits }: {
    archive: string;
    file: Deno.FsFile;
    size: number;
    limits: UnzipLimits;
  },
): Promise<void> {
  const claimed = await claimedEntryCount(file, size);
  if (claimed !== undefined && claimed > limits.maxEntries) {
    throw tooManyEntries(archive, claimed, limits);
  }
}

/** The entry count the end-of-central-directory record claims (Zip64 too). */
async function claimedEntryCount(
  file: Deno.FsFile,
  size: number,
): Promise<number | undefined> {
  const tailStart = Math.max(0, size - (65_535 + 22));
  const tail = await readAt(file, tailStart, size - tailStart);
  const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let at = tail.length - 22;
  while (at >= 0 && view.getUint32(at, true) !== EOCD_SIGNATURE) at--;
  if (at < 0) return undefined;
  const count = view.getUint16(at + 10, true);
  if (count !== 0xffff) return count;
  if (at < 20 || view.getUint32(at - 20, true) !== ZIP64_LOCATOR_SIGNATURE) {
    return undefined;
  }
  const recordOffset = Number(view.getBigUint64(at - 20 + 8, true));
  const record = await readAt(file, recordOffset, 56);
  const recordView = new DataView(record.buffer, 0, record.byteLength);
  if (
    record.length < 56 || recordView.getUint32(0, true) !== ZIP64_EOCD_SIGNATURE
  ) {
    return undefined;
  }
  return Number(recordView.getBigUint64(32, true));
}

function tooManyEntries(
  archive: string,
  count: number,
  limits: UnzipLimits,
): UnzipError {
  return new UnzipError(
    `${archive} holds ${count} entries, more than the cap of ` +
      `${limits.maxEntries}; refusing to unpack it`,
    { archive, cap: "maxEntries" },
  );
}

// ---------------------------------------------------------------------------
// Checking every entry before anything is written

/** One entry and where it goes. */
interface PlannedEntry {
  entry: Entry;
  /** Its path below the target folder, as segments. */
  segments: string[];
  target: string;
}

/** A file entry and where it goes. */
interface PlannedFile extends PlannedEntry {
  entry: FileEntry;
}

interface PlanContext {
  archive: string;
  into: string;
  limits: UnzipLimits;
}

/**
 * Reads the central directory and checks every entry — count, name, type,
 * compression, claimed sizes — and the tree they make, before anything is
 * written. Returns the entries to unpack, in archive order.
 */
async function planEntries(
  reader: ZipReader<unknown>,
  context: PlanContext,
): Promise<PlannedEntry[]> {
  const { archive, into, limits } = context;
  const plan: PlannedEntry[] = [];
  let claimedBytes = 0;
  try {
    for await (const entry of reader.getEntriesGenerator()) {
      if (plan.length >= limits.maxEntries) {
        throw tooManyEntries(archive, plan.length + 1, limits);
      }
      const segments = checkEntry(context, entry);
      claimedBytes += entry.directory ? 0 : entry.uncompressedSize;
      if (claimedBytes > limits.maxUnpackedBytes) {
        throw overTotal(archive, entry.filename, limits, "claims to unpack");
      }
      if (segments.length > 0) {
        plan.push({ entry, segments, target: join(into, ...segments) });
      }
    }
  } catch (error) {
    throw describeZipError(archive, error);
  }
  if (plan.length === 0) {
    throw new UnzipError(`${archive} is an empty zip archive`, { archive });
  }
  checkTree(archive, plan);
  return plan;
}

/** An entry's name, quoted and escaped so that a message stays on one line. */
function quoted(name: string): string {
  return JSON.stringify(name);
}

/**
 * Checks one entry: a safe relative name, no link, no encryption, a known
 * compression method and a plausible claimed ratio. Returns its segments.
 */
function checkEntry(context: PlanContext, entry: Entry): string[] {
  const { archive, limits } = context;
  const name = entry.filename;
  const segments = safeEntrySegments(archive, name);
  const refuse = (why: string, cap?: UnzipCap) =>
    new UnzipError(
      `${archive}: entry ${quoted(name)} ${why}; refusing to unpack it`,
      { archive, entry: name, cap },
    );
  if (entry.symlink) throw refuse("is a symbolic link");
  if (entry.directory) return segments;
  if (entry.encrypted) throw refuse("is encrypted");
  if (
    entry.compressionMethod !== STORED && entry.compressionMethod !== DEFLATE
  ) {
    throw refuse(
      `uses compression method ${entry.compressionMethod} (only stored and ` +
        `deflate are supported)`,
    );
  }
  const { uncompressedSize: claimed, compressedSize } = entry;
  if (isBomb(claimed, compressedSize, limits)) {
    throw refuse(
      `claims to expand ${ratio(claimed, compressedSize)} ` +
        `(${formatBytes(compressedSize)} → ${
          formatBytes(claimed)
        }), past the ` +
        `compression-ratio cap of ${limits.maxRatio}:1: a zip bomb`,
      "maxRatio",
    );
  }
  return segments;
}

/** The path segments of an entry, refusing anything that could escape. */
function safeEntrySegments(archive: string, name: string): string[] {
  const unified = name.replaceAll("\\", "/");
  const segments = unified.split("/").filter((s) => s !== "" && s !== ".");
  if (
    unified.startsWith("/") || /^[A-Za-z]:/.test(unified) ||
    unified.includes("\0") || segments.includes("..")
  ) {
    throw unsafePath(archive, name);
  }
  return segments;
}

function unsafePath(archive: string, name: string): UnzipError {
  return new UnzipError(
    `${archive} holds an entry with an unsafe path ${quoted(name)} ` +
      `(absolute or with ".."); refusing to unpack it`,
    { archive, entry: name },
  );
}

/**
 * Refuses duplicate names and a file where a folder should be (an entry
 * `Training` that is a file next to `Training/glioma/x.jpg`).
 */
function checkTree(archive: string, plan: PlannedEntry[]): void {
  const files = new Map<string, string>();
  const folders = new Map<string, string>();
  for (const { entry, segments } of plan) {
    const key = segments.join("/");
    for (let depth = 1; depth < segments.length; depth++) {
      const folder = segments.slice(0, depth).join("/");
      if (!folders.has(folder)) folders.set(folder, entry.filename);
    }
    if (entry.directory) {
      if (!folders.has(key)) folders.set(key, entry.filename);
    } else if (files.has(key)) {
      throw new UnzipError(
        `${archive}: entry ${quoted(entry.filename)} appears twice; ` +
          `refusing to unpack it`,
        { archive, entry: entry.filename },
      );
    } else files.set(key, entry.filename);
  }
  for (const [key, name] of files) {
    const inside = folders.get(key);
    if (inside === undefined) continue;
    throw new UnzipError(
      `${archive}: entry ${quoted(name)} is a file where a folder should be ` +
        `(${quoted(inside)} is inside it); refusing to unpack it`,
      { archive, entry: name },
    );
  }
}

// ---------------------------------------------------------------------------
// Streaming one entry to disk

/** The caps and the running total of one {@linkcode unzipFile} call. */
interface UnpackRun {
  archive: string;
  /** Reads the archive. */
  source: FsFileReader;
  limits: UnzipLimits;
  /** Bytes written so far, all entries together. */
  written: number;
}

/** One entry's running counts while it streams. */
interface EntryMeter {
  /** Compressed bytes handed over so far. */
  consumed: number;
  /** Bytes this entry has written so far. */
  written: number;
  /** CRC-32 of what it has written. */
  crc: number;
  /** The cap or corruption that stopped it, once one did. */
  failure?: UnzipError;
}

/**
 * Streams one file entry into a new file: compressed bytes read from the
 * archive, inflated in small pieces, each piece counted against the caps
 * before it is written, then the size and CRC-32 checked.
 */
async function unpackEntry(run: UnpackRun, item: PlannedFile): Promise<void> {
  const { entry, target } = item;
  await Deno.mkdir(join(target, ".."), { recursive: true });
  using out = await Deno.open(target, { write: true, createNew: true });
  const meter: EntryMeter = { consumed: 0, written: 0, crc: 0 };
  const write = async (chunk: Uint8Array) => {
    countChunk(run, entry, meter, chunk);
    await writeAll(out, chunk);
  };
  const fed = (bytes: number) => meter.consumed += bytes;
  const decoder: Decoder = entry.compressionMethod === DEFLATE
    ? inflater(write, fed)
    : { write: (chunk) => (fed(chunk.length), write(chunk)) };
  try {
    for await (const chunk of compressedBytes(run, entry)) {
      await decoder.write(chunk);
    }
    await decoder.close?.();
  } catch (error) {
    throw meter.failure ?? describeZipError(run.archive, error, entry.filename);
  }
  checkWhole(run.archive, entry, meter);
}

/**
 * An entry's compressed bytes, read from the archive in
 * {@linkcode READ_CHUNK_BYTES} chunks after its local header; an entry whose
 * header is missing or whose data runs past the end is corrupt.
 */
async function* compressedBytes(
  { archive, source }: UnpackRun,
  entry: FileEntry,
): AsyncGenerator<Uint8Array> {
  const header = await source.readUint8Array(entry.offset, 30);
  const view = new DataView(header.buffer, header.byteOffset, header.length);
  if (
    header.length < 30 || view.getUint32(0, true) !== LOCAL_HEADER_SIGNATURE
  ) {
    throw corruptEntry(archive, entry.filename, "has no local header");
  }
  let at = entry.offset + 30 + view.getUint16(26, true) +
    view.getUint16(28, true);
  const end = at + entry.compressedSize;
  if (end > source.size) {
    throw corruptEntry(
      archive,
      entry.filename,
      "runs past the end of the archive",
    );
  }
  while (at < end) {
    const chunk = await source.readUint8Array(
      at,
      Math.min(READ_CHUNK_BYTES, end - at),
    );
    if (chunk.length === 0) {
      throw corruptEntry(archive, entry.filename, "was cut short");
    }
    yield chunk;
    at += chunk.length;
  }
}

/**
 * Counts a chunk about to be written against the caps: the claimed size, the
 * total and the ratio to the compressed bytes read so far. Throws (and
 * remembers) the {@linkcode UnzipError} of the first cap it breaks.
 */
function countChunk(
  run: UnpackRun,
  entry: FileEntry,
  meter: EntryMeter,
  chunk: Uint8Array,
): void {
  const { archive, limits } = run;
  meter.written += chunk.length;
  run.written += chunk.length;
  meter.crc = crc32(chunk, meter.crc);
  const name = entry.filename;
  if (run.written > limits.maxUnpackedBytes) {
    meter.failure = overTotal(archive, name, limits, "unpacks");
  } else if (isBomb(meter.written, meter.consumed, limits)) {
    meter.failure = new UnzipError(
      `${archive}: entry ${quoted(name)} expands ` +
        `${ratio(meter.written, meter.consumed)} (${
          formatBytes(meter.consumed)
        } → ${
          formatBytes(meter.written)
        } so far), past the compression-ratio ` +
        `cap of ${limits.maxRatio}:1: a zip bomb; refusing to unpack it`,
      { archive, entry: name, cap: "maxRatio" },
    );
  } else if (meter.written > entry.uncompressedSize) {
    meter.failure = corruptEntry(
      archive,
      name,
      `unpacks to more than the ${entry.uncompressedSize} bytes its header says`,
    );
  }
  if (meter.failure) throw meter.failure;
}

/** After the last chunk: the size and CRC-32 the header gives. */
function checkWhole(archive: string, entry: FileEntry, meter: EntryMeter) {
  if (meter.written !== entry.uncompressedSize) {
    throw corruptEntry(
      archive,
      entry.filename,
      `unpacks to ${meter.written} bytes but its header says ` +
        `${entry.uncompressedSize}`,
    );
  }
  const expected = entry.signature;
  if (expected === undefined || meter.crc >>> 0 !== expected >>> 0) {
    throw crcFailure(archive, entry.filename);
  }
}

/** Whether `written` bytes from `consumed` compressed ones is a bomb. */
function isBomb(
  written: number,
  consumed: number,
  limits: UnzipLimits,
): boolean {
  return written > limits.ratioMinBytes &&
    written > limits.maxRatio * Math.max(consumed, 1);
}

function overTotal(
  archive: string,
  name: string,
  limits: UnzipLimits,
  verb: string,
): UnzipError {
  return new UnzipError(
    `${archive} ${verb} to more than the cap of ` +
      `${formatBytes(limits.maxUnpackedBytes)} in all (at entry ` +
      `${quoted(name)}); refusing to unpack it`,
    { archive, entry: name, cap: "maxUnpackedBytes" },
  );
}

/** What a decoder does with compressed bytes, and when they end. */
interface Decoder {
  write(chunk: Uint8Array): Promise<void>;
  close?(): Promise<void>;
}

/**
 * Inflates raw deflate data into `sink` with bounded memory: the compressed
 * bytes go in {@linkcode INFLATE_PIECE_BYTES} at a time (each reported to
 * `fed` as it goes in), and the next piece waits until the output of the
 * last one has been written.
 */
function inflater(
  sink: (chunk: Uint8Array) => Promise<void>,
  fed: (bytes: number) => void,
): Decoder {
  const stream = new DecompressionStream("deflate-raw");
  const writer = stream.writable.getWriter();
  const drained = (async () => {
    for await (const chunk of stream.readable) await sink(chunk);
  })();
  // Seen by write/close; a failure before then must not go unhandled.
  drained.catch(() => {});
  return {
    async write(chunk) {
      for (let at = 0; at < chunk.length; at += INFLATE_PIECE_BYTES) {
        await Promise.race([writer.ready, drained]);
        const piece = chunk.subarray(at, at + INFLATE_PIECE_BYTES);
        fed(piece.length);
        writer.write(piece as Uint8Array<ArrayBuffer>).catch(() => {});
      }
    },
    async close() {
      await Promise.race([writer.ready, drained]);
      await Promise.all([writer.close(), drained]);
    },
  };
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) {
    written += await file.write(data.subarray(written));
  }
}

// ---------------------------------------------------------------------------
// Messages

function corruptEntry(archive: string, name: string, why: string): UnzipError {
  return new UnzipError(`${archive} is corrupt: entry ${quoted(name)} ${why}`, {
    archive,
    entry: name,
  });
}

function crcFailure(archive: string, name: string): UnzipError {
  return corruptEntry(archive, name, "failed its CRC-32 check");
}

/** An {@linkcode UnzipError} for whatever zip.js or the inflater threw. */
function describeZipError(
  archive: string,
  error: unknown,
  current?: string,
): UnzipError {
  if (error instanceof UnzipError) return error;
  const message = (error as Error)?.message ?? String(error);
  const entry = (error as { filename?: string })?.filename ?? current;
  if (/unsafe filename/i.test(message)) {
    return unsafePath(archive, entry ?? "?");
  }
  if (/crc/i.test(message) && entry) return crcFailure(archive, entry);
  if (entry !== undefined) {
    return corruptEntry(archive, entry, `cannot be unpacked (${message})`);
  }
  return new UnzipError(
    `${archive} is not a valid zip archive (${message})`,
    { archive },
  );
}

function ratio(written: number, consumed: number): string {
  return `${Math.round(written / Math.max(consumed, 1))}:1`;
}

/** A byte count for people, in powers of 1024: `512 B`, `1.1 MiB`, `4.0 GiB`. */
function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}
