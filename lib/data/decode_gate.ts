/**
 * Decoding images side by side without losing the decoder's words.
 *
 * libvips, inside sharp, keeps one error buffer for the whole process. When
 * two decodes fail at the same moment, one can take the other's message, or
 * find it already cleared, and sharp then reports "Unknown error" (or both
 * messages run together). {@linkcode decodeGated} lets decodes run together
 * and, when one fails, runs it again alone (no other gated decode in flight),
 * so the error it throws carries that image's own reason;
 * {@linkcode decoderReason} puts the reason on one line and never leaves it
 * as "Unknown error". Failures are rare, so the retry costs almost nothing.
 *
 * @module
 */

/** The gate every sharp decode of this process shares. */
class DecodeGate {
  /** Gated decodes in flight. */
  #running = 0;
  /** Settles when the decode running alone ends. */
  #alone: Promise<void> | undefined;
  /** Waiting for the decodes in flight to end. */
  #idle: (() => void)[] = [];

  /** Runs `decode` beside other gated decodes. */
  async shared<T>(decode: () => Promise<T>): Promise<T> {
    while (this.#alone) await this.#alone;
    this.#running++;
    try {
      return await decode();
    } finally {
      this.#running--;
      if (this.#running === 0) {
        for (const wake of this.#idle.splice(0)) wake();
      }
    }
  }

  /** Runs `decode` with no other gated decode in flight. */
  async alone<T>(decode: () => Promise<T>): Promise<T> {
    while (this.#alone) await this.#alone;
    let release = () => {};
    this.#alone = new Promise((resolve) => release = resolve);
    try {
      while (this.#running > 0) {
        await new Promise<void>((resolve) => this.#idle.push(resolve));
      }
      return await decode();
    } finally {
      this.#alone = undefined;
      release();
    }
  }
}

const GATE = new DecodeGate();

/** What sharp says when the reason was lost. */
const NO_REASON = /^(Unknown error)?$/;

/**
 * The reason a decode failed, on one line: the decoder's lines without
 * repeats (nor lines another line contains), joined by "; ". When the decoder gave none ("Unknown error", or
 * nothing) it says so instead of passing that on.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decoderReason } from "./decode_gate.ts";
 * assert.equal(
 *   decoderReason(new Error("VipsJpeg: premature end of JPEG image\nVipsJpeg: premature end of JPEG image\n")),
 *   "VipsJpeg: premature end of JPEG image",
 * );
 * assert.equal(
 *   decoderReason(new Error("bad marker\ncorrupt header: bad marker\nno SOS\nno SOS")),
 *   "corrupt header: bad marker; no SOS",
 * );
 * assert.equal(
 *   decoderReason(new Error("Unknown error")),
 *   "the decoder gave no reason (corrupt or unsupported image data)",
 * );
 * ```
 */
export function decoderReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const lines = message.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  // Drop repeats, and lines another line already says.
  const said = (line: string, i: number) =>
    lines.some((other, j) =>
      j !== i && other.includes(line) && (other !== line || j < i)
    );
  const reason = lines.filter((line, i) => !said(line, i)).join("; ");
  return NO_REASON.test(reason)
    ? "the decoder gave no reason (corrupt or unsupported image data)"
    : reason;
}

/**
 * Runs a sharp decode beside the other gated decodes of this process; when it
 * fails, runs it once more alone and throws that attempt's error, its
 * message made one line by {@linkcode decoderReason} (the original error as
 * its cause). A decode that only failed because another one failed beside it
 * succeeds on the retry.
 *
 * @example A truncated JPEG, decoded eight at a time, always says why it failed
 * ```ts
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * import { decodeGated } from "./decode_gate.ts";
 * const jpeg = await sharp({
 *   create: { width: 64, height: 64, channels: 3, background: "#888" },
 * }).jpeg({ progressive: true }).toBuffer();
 * const cut = jpeg.subarray(0, jpeg.length >> 1);
 * const results = await Promise.allSettled(
 *   Array.from({ length: 8 }, () =>
 *     decodeGated(() => sharp(cut, { failOn: "error" }).raw().toBuffer())),
 * );
 * for (const r of results) {
 *   assert.equal(r.status, "rejected");
 *   assert.match((r as PromiseRejectedResult).reason.message, /premature end of JPEG/);
 * }
 * ```
 */
export async function decodeGated<T>(decode: () => Promise<T>): Promise<T> {
  try {
    return await GATE.shared(decode);
  } catch {
    try {
      return await GATE.alone(decode);
    } catch (error) {
      throw new Error(decoderReason(error), { cause: error });
    }
  }
}
