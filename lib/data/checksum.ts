/**
 * SHA-256 checksums of archives, verified before they are unpacked.
 *
 * An archive's expected checksum comes from a sidecar file `<archive>.sha256`
 * (the format `sha256sum` writes and `sha256sum -c` reads: the hex digest,
 * two spaces, the file name) or from the command line. The dataset download
 * writes the sidecar once a download is verified, so a zip kept on disk is
 * checked again before every later unpack; a user can put one next to a zip
 * of their own.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename } from "node:path";
import { writeTextAtomic } from "../core/atomic.ts";

/** Bytes read at a time while hashing (1 MiB: three times faster than 64 KiB). */
const HASH_READ_BYTES = 1024 ** 2;

/** An archive's bytes do not match its checksum, or the checksum is unreadable. */
export class ChecksumError extends Error {
  /**
   * Makes the error.
   *
   * @param message the file, the expected and the actual checksum
   */
  constructor(message: string) {
    super(message);
    this.name = "ChecksumError";
  }
}

/** A SHA-256 an archive should have, and where it was read from. */
export interface ExpectedSha256 {
  /** The digest, 64 lowercase hex digits. */
  hex: string;
  /** Where it came from, for messages: a sidecar's path or `--sha256`. */
  source: string;
}

/**
 * The digest in a SHA-256 text — bare hex, or a `sha256sum` line — as
 * lowercase hex, or `undefined` when there is none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSha256 } from "./checksum.ts";
 * const hex = "AB".repeat(32);
 * assert.equal(parseSha256(hex), "ab".repeat(32));
 * assert.equal(parseSha256(`${hex}  data.zip\n`), "ab".repeat(32));
 * assert.equal(parseSha256("not a checksum"), undefined);
 * assert.equal(parseSha256("ab".repeat(31)), undefined);
 * ```
 */
export function parseSha256(text: string): string | undefined {
  const match = /^\s*([0-9a-fA-F]{64})(?:\s|$)/.exec(text);
  return match ? match[1].toLowerCase() : undefined;
}

/**
 * The sidecar file holding an archive's SHA-256: `<archive>.sha256`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256SidecarPath } from "./checksum.ts";
 * assert.equal(sha256SidecarPath("data/mri.zip"), "data/mri.zip.sha256");
 * ```
 */
export function sha256SidecarPath(archive: string): string {
  return `${archive}.sha256`;
}

/**
 * The SHA-256 recorded in an archive's sidecar, or `undefined` when there is
 * no sidecar. Throws {@linkcode ChecksumError}, naming the sidecar, when it
 * exists but holds no SHA-256.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { readSha256Sidecar, writeSha256Sidecar } from "./checksum.ts";
 * const dir = await Deno.makeTempDir();
 * const archive = join(dir, "a.zip");
 * assert.equal(await readSha256Sidecar(archive), undefined);
 * await writeSha256Sidecar(archive, "0f".repeat(32));
 * assert.deepEqual(await readSha256Sidecar(archive), {
 *   hex: "0f".repeat(32),
 *   source: `${archive}.sha256`,
 * });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readSha256Sidecar(
  archive: string,
): Promise<ExpectedSha256 | undefined> {
  const source = sha256SidecarPath(archive);
  let text: string;
  try {
    text = await Deno.readTextFile(source);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new ChecksumError(
      `${source}: cannot read it (${(error as Error).message})`,
    );
  }
  const hex = parseSha256(text);
  if (hex === undefined) {
    throw new ChecksumError(
      `${source} holds no SHA-256 (expected 64 hex digits, as sha256sum ` +
        `writes them); fix or delete it`,
    );
  }
  return { hex, source };
}

/**
 * Writes an archive's sidecar (atomically), in `sha256sum` format.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { writeSha256Sidecar } from "./checksum.ts";
 * const dir = await Deno.makeTempDir();
 * await writeSha256Sidecar(join(dir, "a.zip"), "0f".repeat(32));
 * assert.equal(
 *   await Deno.readTextFile(join(dir, "a.zip.sha256")),
 *   `${"0f".repeat(32)}  a.zip\n`,
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSha256Sidecar(
  archive: string,
  hex: string,
): Promise<void> {
  await writeTextAtomic(
    sha256SidecarPath(archive),
    `${hex}  ${basename(archive)}\n`,
  );
}

/**
 * Hashes a file and checks it against every expected SHA-256; returns the
 * actual digest (hex). Throws {@linkcode ChecksumError} naming the file, the
 * expected digest and where it came from, and the actual digest on a
 * mismatch.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { verifySha256 } from "./checksum.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "abc");
 * const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
 * assert.equal(await verifySha256(path, [{ hex: abc, source: "--sha256" }]), abc);
 * await assert.rejects(
 *   verifySha256(path, [{ hex: "0".repeat(64), source: "--sha256" }]),
 *   /SHA-256 mismatch/,
 * );
 * await Deno.remove(path);
 * ```
 */
export async function verifySha256(
  file: string,
  expected: readonly ExpectedSha256[],
): Promise<string> {
  const actual = await sha256OfFile(file);
  for (const { hex, source } of expected) {
    if (hex.toLowerCase() === actual) continue;
    throw new ChecksumError(
      `${file}: SHA-256 mismatch: expected ${hex.toLowerCase()} (from ` +
        `${source}), actual ${actual}`,
    );
  }
  return actual;
}

/** SHA-256 (hex) of a file, read 1 MiB at a time into one reused buffer. */
async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  const buffer = new Uint8Array(HASH_READ_BYTES);
  try {
    using file = await Deno.open(path);
    for (;;) {
      const count = await file.read(buffer);
      if (count === null) break;
      hash.update(buffer.subarray(0, count));
    }
  } catch (error) {
    throw new ChecksumError(
      `${path}: cannot read it (${(error as Error).message})`,
    );
  }
  return hash.digest("hex");
}
