/**
 * What the mixed run of `bench/serve.ts` (`--mixed SECONDS`) sends besides
 * the normal load: hostile and clumsy clients, each kind its own loop, and
 * a sampler of the server's resident memory.
 *
 * | kind           | what it does                                                                       |
 * | -------------- | ---------------------------------------------------------------------------------- |
 * | `forged-size`  | `POST /predict` of a real scan whose frame header claims 65,500 × 65,500 pixels     |
 * | `truncated`    | `POST /predict` of the first half of a real scan, closed by an end-of-image marker  |
 * | `large-png`    | `POST /predict` of a PNG just under the pixel limit (`DEFAULTS.maxPixels`)          |
 * | `slow-headers` | opens a connection and trickles header bytes (one every half second), never ending |
 * | `idle`         | opens a connection and sends nothing                                               |
 * | `bad-host`     | `POST /predict` of a real scan with the header `Host: [`, over raw TCP             |
 *
 * The request kinds send one request at a time, {@linkcode HOSTILE_PAUSE_MS}
 * apart, and tally the answers by status; the connection kinds hold one
 * connection at a time, open the next when the server closes one, and tally
 * how each ended: `closed` (by the server, with no answer), an HTTP status
 * (the server answered, e.g. 408), or `open at end` (still open when the
 * run ended).
 *
 * @module
 */
import sharp from "sharp";
import { DEFAULTS } from "../lib/core/defaults.ts";

/** The hostile clients, by kind (see the module documentation). */
export const HOSTILE_KINDS = [
  "forged-size",
  "truncated",
  "large-png",
  "slow-headers",
  "idle",
  "bad-host",
] as const;

/** One kind of hostile client. */
export type HostileKind = typeof HOSTILE_KINDS[number];

/** The connection kinds: they hold sockets rather than send requests. */
export const SOCKET_KINDS: readonly HostileKind[] = ["slow-headers", "idle"];

/** Milliseconds a hostile client waits between two requests or connections. */
export const HOSTILE_PAUSE_MS = 100;

/** Milliseconds between two header bytes of a `slow-headers` client. */
export const TRICKLE_MS = 500;

/** The longest a hostile request may take before it counts as `timeout`. */
export const HOSTILE_TIMEOUT_MS = 120_000;

/** The size a `forged-size` scan claims: the largest a JPEG header can hold but a few. */
export const FORGED_SIDE = 65_500;

/** Start-of-frame markers: 0xC0–0xCF but DHT (C4), JPG (C8) and DAC (CC). */
function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 &&
    marker !== 0xc8 && marker !== 0xcc;
}

/**
 * A copy of a JPEG whose frame header (its first start-of-frame segment)
 * claims `width` × `height` pixels; the image data is left as it is.
 * Throws when the bytes have no frame header before the image data.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { forgeJpegSize } from "./serve_hostile.ts";
 * const jpeg = new Uint8Array([
 *   0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x00, 0x00, // SOI, APP0
 *   0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x20, 0x00, 0x10, 0x01, 0x01, 0x11, 0x00, // SOF0 32×16
 *   0xff, 0xd9,
 * ]);
 * const forged = forgeJpegSize(jpeg, 65500, 300);
 * assert.deepEqual([...forged.subarray(13, 17)], [0x01, 0x2c, 0xff, 0xdc]);
 * assert.equal(jpeg[13], 0x00); // the original is untouched
 * assert.throws(() => forgeJpegSize(new Uint8Array([0xff, 0xd8, 0xff, 0xd9]), 1, 1), /no frame header/);
 * ```
 */
export function forgeJpegSize(
  jpeg: Uint8Array,
  width: number,
  height: number,
): Uint8Array {
  const out = jpeg.slice();
  let at = 2;
  while (at + 4 <= out.length && out[at] === 0xff) {
    const marker = out[at + 1];
    if (marker === 0xda || marker === 0xd9) break; // image data or the end
    if (isStartOfFrame(marker) && at + 9 <= out.length) {
      out[at + 5] = height >> 8;
      out[at + 6] = height & 0xff;
      out[at + 7] = width >> 8;
      out[at + 8] = width & 0xff;
      return out;
    }
    at += 2 + ((out[at + 2] << 8) | out[at + 3]);
  }
  throw new Error("not a JPEG with a frame header: no frame header found");
}

/**
 * The first half of a JPEG followed by an end-of-image marker (`FF D9`): a
 * scan cut off mid-transfer that still looks complete.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { truncateJpeg } from "./serve_hostile.ts";
 * const cut = truncateJpeg(new Uint8Array([0xff, 0xd8, 1, 2, 3, 4, 0xff, 0xd9]));
 * assert.deepEqual([...cut], [0xff, 0xd8, 1, 2, 0xff, 0xd9]);
 * ```
 */
export function truncateJpeg(jpeg: Uint8Array): Uint8Array {
  const half = jpeg.subarray(0, Math.floor(jpeg.length / 2));
  const out = new Uint8Array(half.length + 2);
  out.set(half);
  out.set([0xff, 0xd9], half.length);
  return out;
}

/**
 * The side of the largest square, in whole hundreds of pixels, within the
 * pixel limit (7,000 for 50 megapixels).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sideUnderLimit } from "./serve_hostile.ts";
 * assert.equal(sideUnderLimit(50_000_000), 7000);
 * assert.equal(sideUnderLimit(1_000_000), 1000);
 * ```
 */
export function sideUnderLimit(maxPixels: number): number {
  return Math.floor(Math.sqrt(maxPixels) / 100) * 100;
}

/** The bodies the request kinds send, made once from a real scan. */
export interface HostileBodies {
  /** The scan with a forged 65,500 × 65,500 frame header. */
  forged: Uint8Array;
  /** Half the scan and an end-of-image marker. */
  truncated: Uint8Array;
  /** A grey PNG of {@linkcode sideUnderLimit} pixels a side. */
  largePng: Uint8Array;
  /** The scan itself (sent with `Host: [`). */
  scan: Uint8Array;
}

/**
 * The hostile bodies from one real JPEG scan; the PNG is `side` pixels a
 * side (default: just under `DEFAULTS.maxPixels`).
 *
 * Encodes a 49-megapixel PNG (about a second), so it is not run by
 * `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { hostileBodies } from "./serve_hostile.ts";
 * const bodies = await hostileBodies(await Deno.readFile("scan.jpg"));
 * console.log(bodies.largePng.length);
 * ```
 */
export async function hostileBodies(
  scan: Uint8Array,
  side = sideUnderLimit(DEFAULTS.maxPixels),
): Promise<HostileBodies> {
  // A gradient rather than one flat colour: a little work for the encoder
  // and decoder per row, as a real picture would be.
  const row = Uint8Array.from({ length: side }, (_, x) => (x * 255) / side);
  const raw = new Uint8Array(side * side);
  for (let y = 0; y < side; y++) raw.set(row, y * side);
  const largePng = await sharp(raw, {
    raw: { width: side, height: side, channels: 1 },
    limitInputPixels: false,
  }).png({ compressionLevel: 9 }).toBuffer();
  return {
    forged: forgeJpegSize(scan, FORGED_SIDE, FORGED_SIDE),
    truncated: truncateJpeg(scan),
    largePng: new Uint8Array(largePng),
    scan,
  };
}

/** How one hostile client fared: its attempts, tallied by how each ended. */
export interface HostileTally {
  /** Requests sent or connections opened. */
  attempts: number;
  /** Counts by outcome: an HTTP status, `closed`, `open at end`, `timeout`, `refused`, `error: …`. */
  outcomes: Record<string, number>;
  /** Seconds each connection stayed open before the server closed or answered it. */
  secondsToClose: number[];
}

/** Where the server listens. */
export interface HostileTarget {
  /** Base URL, e.g. `http://127.0.0.1:8000` (no trailing slash). */
  url: string;
  /** Its host name and port, for the raw-TCP clients. */
  hostname: string;
  port: number;
}

/** Options for {@linkcode runHostileClient}. */
export interface HostileClientOptions {
  /** The kind of client. */
  kind: HostileKind;
  /** The server. */
  target: HostileTarget;
  /** The bodies to send. */
  bodies: HostileBodies;
  /** `performance.now()` after which no new attempt starts (and sockets are let go). */
  until: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An outcome's name for a failed fetch or socket. */
function errorOutcome(error: unknown): string {
  const e = error as Error;
  if (e?.name === "TimeoutError" || e?.name === "AbortError") return "timeout";
  if (e instanceof Deno.errors.ConnectionRefused) return "refused";
  const text = String(e?.message ?? e);
  if (/connection (closed|reset)|reset by peer|broken pipe/i.test(text)) {
    return "closed";
  }
  return `error: ${e?.name ?? "unknown"}`;
}

/** One `POST /predict`: the answer's status, or how it failed. */
async function postOnce(
  target: HostileTarget,
  client: Deno.HttpClient,
  body: Uint8Array,
  type: string,
): Promise<string> {
  try {
    const res = await fetch(`${target.url}/predict`, {
      client,
      method: "POST",
      body: body as Uint8Array<ArrayBuffer>,
      headers: { "content-type": type },
      signal: AbortSignal.timeout(HOSTILE_TIMEOUT_MS),
    });
    await res.arrayBuffer();
    return String(res.status);
  } catch (error) {
    return errorOutcome(error);
  }
}

/** The status of an HTTP response's head, if `text` holds one. */
function statusOf(text: string): string | undefined {
  return text.match(/^HTTP\/1\.[01] (\d{3})/)?.[1];
}

/**
 * One request written as raw bytes over TCP (so its headers can be what no
 * `fetch` sends), answered on a `Connection: close` socket: the status, or
 * `closed` when the server closed it without one.
 */
async function rawRequest(
  target: HostileTarget,
  head: string,
  body: Uint8Array,
): Promise<string> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: target.hostname, port: target.port });
  } catch (error) {
    return errorOutcome(error);
  }
  const timer = setTimeout(() => conn.close(), HOSTILE_TIMEOUT_MS);
  let text = "";
  try {
    const request = new TextEncoder().encode(head);
    await conn.write(request);
    for (let at = 0; at < body.length;) {
      at += await conn.write(body.subarray(at));
    }
    const decoder = new TextDecoder();
    const buf = new Uint8Array(4096);
    while (statusOf(text) === undefined) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n), { stream: true });
    }
    return statusOf(text) ?? "closed";
  } catch (error) {
    return statusOf(text) ?? errorOutcome(error);
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

/** A `POST /predict` of a real scan with the header `Host: [`. */
function badHostRequest(
  target: HostileTarget,
  scan: Uint8Array,
): Promise<string> {
  const head = "POST /predict HTTP/1.1\r\nHost: [\r\n" +
    "Content-Type: image/jpeg\r\n" +
    `Content-Length: ${scan.length}\r\nConnection: close\r\n\r\n`;
  return rawRequest(target, head, scan);
}

/** What a request kind sends each time. */
function requestFor(
  kind: HostileKind,
  target: HostileTarget,
  bodies: HostileBodies,
  client: Deno.HttpClient,
): () => Promise<string> {
  switch (kind) {
    case "forged-size":
      return () => postOnce(target, client, bodies.forged, "image/jpeg");
    case "truncated":
      return () => postOnce(target, client, bodies.truncated, "image/jpeg");
    case "large-png":
      return () => postOnce(target, client, bodies.largePng, "image/png");
    case "bad-host":
      return () => badHostRequest(target, bodies.scan);
    default:
      throw new Error(`${kind} is not a request kind`);
  }
}

const ASCII_A = new Uint8Array([0x61]);

/** How a held connection ended, and after how many seconds. */
interface Held {
  outcome: string;
  seconds: number;
}

/** Reads a socket until the server answers (a status) or closes it. */
async function serverVerdict(conn: Deno.TcpConn): Promise<string> {
  const decoder = new TextDecoder();
  const buf = new Uint8Array(4096);
  let text = "";
  try {
    while (true) {
      const n = await conn.read(buf);
      if (n === null) return statusOf(text) ?? "closed";
      text += decoder.decode(buf.subarray(0, n), { stream: true });
      const status = statusOf(text);
      if (status) return status;
    }
  } catch (error) {
    return statusOf(text) ?? errorOutcome(error);
  }
}

/**
 * Holds one connection until the server answers or closes it, or `until`
 * passes (`open at end`); a `slow-headers` client trickles header bytes
 * meanwhile, never finishing the head.
 */
async function holdConnection(
  target: HostileTarget,
  trickle: boolean,
  until: number,
): Promise<Held> {
  const t0 = performance.now();
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: target.hostname, port: target.port });
  } catch (error) {
    return { outcome: errorOutcome(error), seconds: 0 };
  }
  let settled: string | undefined;
  const verdict = serverVerdict(conn).then((v) => settled ??= v);
  // The head of a request, then header bytes that never end it.
  const head = new TextEncoder().encode(
    "POST /predict HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
  );
  for (let i = 0; settled === undefined && performance.now() < until; i++) {
    if (trickle) {
      const byte = i < head.length ? head.subarray(i, i + 1) : ASCII_A;
      await conn.write(byte).catch(() => {}); // a closed socket: see verdict
    }
    await Promise.race([verdict, sleep(trickle ? TRICKLE_MS : 250)]);
  }
  settled ??= "open at end";
  try {
    conn.close();
  } catch { /* already closed */ }
  await verdict;
  return { outcome: settled, seconds: (performance.now() - t0) / 1000 };
}

/**
 * One hostile client of `kind`, run until `until`: a request kind sends its
 * request again and again, a connection kind holds one connection after
 * another, {@linkcode HOSTILE_PAUSE_MS} apart; resolves with its tally once
 * its last attempt has ended.
 *
 * Needs a server to attack, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { hostileBodies, runHostileClient } from "./serve_hostile.ts";
 * const bodies = await hostileBodies(await Deno.readFile("scan.jpg"));
 * const target = { url: "http://127.0.0.1:8000", hostname: "127.0.0.1", port: 8000 };
 * const tally = await runHostileClient({
 *   kind: "slow-headers", target, bodies, until: performance.now() + 60_000,
 * });
 * console.log(tally.outcomes); // e.g. { closed: 6, "open at end": 1 }
 * ```
 */
export async function runHostileClient(
  options: HostileClientOptions,
): Promise<HostileTally> {
  const { kind, target, bodies, until } = options;
  const tally: HostileTally = { attempts: 0, outcomes: {}, secondsToClose: [] };
  // Connections of its own: none the server closes after a hostile request
  // is ever reused by the normal clients.
  using client = Deno.createHttpClient({});
  const socket = SOCKET_KINDS.includes(kind);
  const send = socket ? undefined : requestFor(kind, target, bodies, client);
  while (performance.now() < until) {
    tally.attempts++;
    let outcome: string;
    if (send) outcome = await send();
    else {
      const held = await holdConnection(target, kind === "slow-headers", until);
      outcome = held.outcome;
      if (outcome !== "open at end") tally.secondsToClose.push(held.seconds);
    }
    tally.outcomes[outcome] = (tally.outcomes[outcome] ?? 0) + 1;
    await sleep(HOSTILE_PAUSE_MS);
  }
  return tally;
}

/** The process ids of `pid` and all its descendants (Linux `/proc`). */
function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tasks: string[] = [];
    try {
      tasks = [...Deno.readDirSync(`/proc/${out[i]}/task`)].map((e) => e.name);
    } catch { /* gone */ }
    for (const tid of tasks) {
      try {
        const children = Deno.readTextFileSync(
          `/proc/${out[i]}/task/${tid}/children`,
        );
        for (const c of children.split(" ")) if (c.trim()) out.push(Number(c));
      } catch { /* gone */ }
    }
  }
  return out;
}

/**
 * The resident memory of a process and its descendants, in MB (the sum of
 * their `VmRSS`, Linux `/proc`).
 *
 * Reads `/proc` (Linux only), so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { treeRssMb } from "./serve_hostile.ts";
 * console.log(treeRssMb(Deno.pid) > 0); // true
 * ```
 */
export function treeRssMb(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) {
    try {
      const status = Deno.readTextFileSync(`/proc/${p}/status`);
      kb += Number(status.match(/^VmRSS:\s+(\d+) kB/m)?.[1] ?? 0);
    } catch { /* gone */ }
  }
  return kb / 1024;
}

/** A running memory sampler (see {@linkcode sampleRss}). */
export interface RssSampler {
  /** Stops sampling; the highest and the last sample, in MB. */
  stop(): { peakMb: number; lastMb: number; samples: number };
}

/**
 * Samples {@linkcode treeRssMb} of `pid` every `everyMs` milliseconds
 * (default 100) until stopped.
 *
 * Reads `/proc` (Linux only), so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { sampleRss } from "./serve_hostile.ts";
 * const sampler = sampleRss(Deno.pid);
 * await new Promise((r) => setTimeout(r, 500));
 * console.log(sampler.stop().peakMb);
 * ```
 */
export function sampleRss(pid: number, everyMs = 100): RssSampler {
  let peakMb = treeRssMb(pid);
  let lastMb = peakMb;
  let samples = 1;
  const timer = setInterval(() => {
    lastMb = treeRssMb(pid);
    if (lastMb > 0) peakMb = Math.max(peakMb, lastMb);
    samples++;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return { peakMb, lastMb, samples };
    },
  };
}
