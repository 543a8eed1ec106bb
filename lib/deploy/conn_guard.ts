/**
 * A connection guard in front of an HTTP server: the public TCP listener,
 * which pipes each connection to the real server on a private Unix socket
 * and bounds, per connection, what `Deno.serve` leaves unbounded.
 *
 * `Deno.serve` closes nothing on its own: a client that sends half a request
 * line, or nothing, or idles after a keep-alive answer holds its connection
 * for as long as it likes. The guard reads each request head itself (so the
 * server only ever sees whole heads) and follows the request and response
 * framing (`Content-Length`, `Transfer-Encoding: chunked`) to know where the
 * next request starts on a keep-alive connection. It enforces:
 *
 * | bound | default | when it is over |
 * | --- | --- | --- |
 * | header timeout: a request's first byte to the end of its head | {@linkcode DEFAULT_HEADER_TIMEOUT_MS} (10 s) | `408` (JSON, `Connection: close`), then close |
 * | a new connection's first byte | the header timeout | close |
 * | idle timeout: no byte either way while the server owes no answer | {@linkcode DEFAULT_IDLE_TIMEOUT_MS} (60 s) | close |
 * | head size | 16 KiB (`MAX_HEAD_BYTES`), 100 fields | `431`, then close |
 * | open connections | {@linkcode DEFAULT_MAX_CONNECTIONS} | `503` with `Retry-After`, then close |
 *
 * A head whose framing could be read two ways, or that is malformed, is
 * answered `400` by the guard (lib/deploy/http_framing.ts), so the guard and
 * the server never disagree on where a request starts. While the server is
 * working on an answer (reading a body is bounded by the server's own body
 * timeout) no timeout runs. The guard's own answers are logged like the
 * server's, one JSON line each (lib/deploy/request_log.ts).
 *
 * Each request reaches the server with one extra field, {@linkcode CLIENT_HEADER},
 * holding the client's address (a client's own field of that name is
 * dropped), so the server can log who asked.
 *
 * @module
 */
import {
  BodyReader,
  FramingError,
  headEnd,
  MAX_HEAD_BYTES,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
} from "./http_framing.ts";
import type { RequestLogEntry } from "./request_log.ts";

/** Default header timeout: 10 s from a request's first byte to its head's end. */
export const DEFAULT_HEADER_TIMEOUT_MS = 10_000;

/** Default idle timeout: 60 s without a byte either way between requests. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** Default cap on open connections (each holds two sockets). */
export const DEFAULT_MAX_CONNECTIONS = 256;

/** The field carrying the client's address to the server behind the guard. */
export const CLIENT_HEADER = "x-brain-mri-client";

/** How long a closing connection may take to read what the client still sends. */
const LINGER_MS = 1000;

const READ_SIZE = 64 * 1024;

/** Options for {@linkcode startConnGuard}. */
export interface ConnGuardOptions {
  /** Interface to listen on. */
  hostname: string;
  /** Port (0 picks a free one). */
  port: number;
  /** The Unix socket the server behind the guard listens on. */
  upstreamPath: string;
  /** Header timeout in ms (default {@linkcode DEFAULT_HEADER_TIMEOUT_MS}). */
  headerTimeoutMs?: number;
  /** Idle timeout in ms (default {@linkcode DEFAULT_IDLE_TIMEOUT_MS}). */
  idleTimeoutMs?: number;
  /** Open connections at most (default {@linkcode DEFAULT_MAX_CONNECTIONS}). */
  maxConnections?: number;
  /** Where the guard's own answers (408, 431, 400, 503) are logged. */
  log?: (entry: RequestLogEntry) => void;
}

/** A running guard. */
export interface ConnGuard {
  /** The public address it listens on. */
  readonly addr: Deno.NetAddr;
  /** Connections open now. */
  readonly connections: number;
  /**
   * Stops accepting, closes the connections with nothing in flight, and
   * resolves once the others have had their answers and closed.
   */
  shutdown(): Promise<void>;
}

/** The settings every connection of a guard shares. */
interface GuardSettings {
  upstreamPath: string;
  headerTimeoutMs: number;
  idleTimeoutMs: number;
  log?: (entry: RequestLogEntry) => void;
}

/** A byte buffer that grows by doubling (for heads arriving in pieces). */
class Bytes {
  #buf = new Uint8Array(0);
  length = 0;
  append(bytes: Uint8Array): void {
    if (this.length + bytes.length > this.#buf.length) {
      const grown = new Uint8Array(
        Math.max(1024, 2 * (this.length + bytes.length)),
      );
      grown.set(this.#buf.subarray(0, this.length));
      this.#buf = grown;
    }
    this.#buf.set(bytes, this.length);
    this.length += bytes.length;
  }
  /** The bytes so far (a view: valid until the next `take`). */
  view(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
  /** Empties the buffer, handing its memory over to the last `view()`. */
  take(): void {
    this.#buf = new Uint8Array(0);
    this.length = 0;
  }
}

/** A JSON error answer the guard writes itself, closing the connection. */
function refusalBytes(
  status: number,
  message: string,
  headers: Record<string, string> = {},
): Uint8Array {
  const reasons: Record<number, string> = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
  };
  const body = new TextEncoder().encode(JSON.stringify({ error: message }));
  const fields = {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(body.length),
    connection: "close",
    ...headers,
  };
  const head = `HTTP/1.1 ${status} ${reasons[status] ?? "Error"}\r\n` +
    Object.entries(fields).map(([k, v]) => `${k}: ${v}\r\n`).join("") + "\r\n";
  const out = new Uint8Array(head.length + body.length);
  out.set(new TextEncoder().encode(head));
  out.set(body, head.length);
  return out;
}

/** Writes all of `bytes`; false if the connection failed. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<boolean> {
  try {
    for (let at = 0; at < bytes.length;) {
      at += await conn.write(bytes.subarray(at));
    }
    return true;
  } catch {
    return false;
  }
}

/** Bytes of a latin1 string (a head as the client sent it, byte for byte). */
function latin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/** The method and path of a request line, as far as it arrived. */
function requestLineParts(
  head: Uint8Array,
): { method: string | null; path: string | null } {
  const lf = head.indexOf(10);
  if (lf < 0) return { method: null, path: null };
  const [method, target] = new TextDecoder("latin1").decode(
    head.subarray(0, lf),
  ).replace(/\r$/, "").split(" ");
  return {
    method: method || null,
    path: target === undefined ? null : target.split(/[?#]/, 1)[0],
  };
}

/** What the guard answers a request with itself, once nothing else is owed. */
interface Refusal {
  status: number;
  message: string;
  method: string | null;
  path: string | null;
  bytes: number;
  started: number;
}

/**
 * One client connection and its connection to the server: two pumps (client
 * → server, server → client) that follow the framing, and a clock that the
 * guard's sweep checks.
 */
class GuardedConn {
  readonly client: Deno.TcpConn;
  readonly address: string;
  readonly closed: Promise<void>;
  #settings: GuardSettings;
  #upstream?: Deno.Conn;
  #onClosed!: () => void;
  #isClosed = false;
  #lastActivity = performance.now();
  #requests = 0;
  // The client's side: a head arriving, or a body being passed on.
  #head = new Bytes();
  #headStart?: number;
  #body?: BodyReader;
  #clientEnded = false;
  // The server's side: the methods of requests not fully answered yet.
  #owed: string[] = [];
  #resHead = new Bytes();
  #resBody?: BodyReader;
  #resStarted = false;
  #tunnel = false;
  // Closing: an answer of the guard's own to send, or a graceful close.
  #refusal?: Refusal;
  #finishing = false;
  #draining = false;

  constructor(client: Deno.TcpConn, settings: GuardSettings) {
    this.client = client;
    const { hostname, port } = client.remoteAddr as Deno.NetAddr;
    this.address = `${
      hostname.includes(":") ? `[${hostname}]` : hostname
    }:${port}`;
    this.#settings = settings;
    this.closed = new Promise((resolve) => this.#onClosed = resolve);
    try {
      client.setNoDelay(true);
    } catch {
      // closed already: the pump below ends at once
    }
  }

  /** Pumps the client's bytes until it closes. */
  async run(): Promise<void> {
    const buf = new Uint8Array(READ_SIZE);
    while (!this.#isClosed) {
      let n: number | null;
      try {
        n = await this.client.read(buf);
      } catch {
        n = null;
      }
      if (n === null) return this.#clientEnd();
      if (this.#refusal || this.#finishing) continue; // read and dropped
      this.#lastActivity = performance.now();
      try {
        await this.#fromClient(buf.subarray(0, n));
      } catch (error) {
        if (!(error instanceof FramingError)) return this.close();
        this.#refuse(error.status, error.message);
      }
    }
  }

  /** Passes client bytes on: bodies as they come, heads once whole. */
  async #fromClient(bytes: Uint8Array): Promise<void> {
    let rest = bytes;
    while (rest.length > 0 && !this.#refusal && !this.#isClosed) {
      if (this.#body) {
        const { used, done } = this.#body.feed(rest);
        if (done) this.#body = undefined;
        if (!(await this.#toUpstream(rest.subarray(0, used)))) return;
        rest = rest.subarray(used);
      } else {
        rest = await this.#headBytes(rest);
      }
    }
  }

  /** Adds bytes to the head arriving; sends it on once whole; the rest. */
  async #headBytes(bytes: Uint8Array): Promise<Uint8Array> {
    let skip = 0;
    // Blank lines between requests are ignored, as RFC 9112 allows.
    if (this.#head.length === 0) {
      while (
        skip < bytes.length && (bytes[skip] === 10 || bytes[skip] === 13)
      ) {
        skip++;
      }
      if (skip === bytes.length) return bytes.subarray(skip);
    }
    this.#headStart ??= performance.now();
    const from = Math.max(0, this.#head.length - 2);
    this.#head.append(bytes.subarray(skip));
    const all = this.#head.view();
    const end = headEnd(all, from);
    if (end < 0 ? all.length > MAX_HEAD_BYTES : end > MAX_HEAD_BYTES) {
      throw new FramingError(
        431,
        `the request head is larger than ${MAX_HEAD_BYTES} bytes`,
      );
    }
    if (end < 0) return all.subarray(all.length);
    const head = parseRequestHead(all.subarray(0, end));
    this.#head.take();
    this.#headStart = undefined;
    this.#requests++;
    this.#owed.push(head.method);
    if (head.body.kind !== "none") this.#body = new BodyReader(head.body);
    await this.#toUpstream(this.#forwardedHead(head));
    return all.subarray(end);
  }

  /** The head as the server gets it: the client's address field added. */
  #forwardedHead(head: RequestHead): Uint8Array {
    const fields = head.lines.slice(1).filter((line) =>
      line.slice(0, line.indexOf(":")).toLowerCase() !== CLIENT_HEADER
    );
    return latin1(
      [head.lines[0], `${CLIENT_HEADER}: ${this.address}`, ...fields, "", ""]
        .join("\r\n"),
    );
  }

  /** Writes to the server, connecting first if need be; false if it failed. */
  async #toUpstream(bytes: Uint8Array): Promise<boolean> {
    if (!this.#upstream) {
      try {
        this.#upstream = await Deno.connect({
          transport: "unix",
          path: this.#settings.upstreamPath,
        });
      } catch (error) {
        this.#owed = [];
        this.#refuse(502, `the server is not reachable: ${error}`);
        return false;
      }
      this.#pumpUpstream(this.#upstream);
    }
    if (await writeAll(this.#upstream, bytes)) return true;
    this.close();
    return false;
  }

  /** Pumps the server's bytes to the client until the server closes. */
  async #pumpUpstream(upstream: Deno.Conn): Promise<void> {
    const buf = new Uint8Array(READ_SIZE);
    while (!this.#isClosed) {
      let n: number | null;
      try {
        n = await upstream.read(buf);
      } catch {
        n = null;
      }
      if (n === null) break;
      const chunk = buf.subarray(0, n);
      try {
        this.#fromUpstream(chunk);
      } catch {
        break;
      }
      if (!(await writeAll(this.client, chunk))) return this.close();
      this.#lastActivity = performance.now();
      this.#afterAnswers();
    }
    // The server ended the connection (e.g. after `Connection: close`).
    this.#finish();
  }

  /** Follows the answers in the server's bytes: which request is answered. */
  #fromUpstream(bytes: Uint8Array): void {
    let rest = bytes;
    while (rest.length > 0 && !this.#tunnel) {
      if (this.#resBody) {
        const { used, done } = this.#resBody.feed(rest);
        rest = rest.subarray(used);
        if (done) this.#answered();
        continue;
      }
      this.#resStarted = true;
      const from = Math.max(0, this.#resHead.length - 2);
      this.#resHead.append(rest);
      const all = this.#resHead.view();
      const end = headEnd(all, from);
      if (end < 0) return;
      const head = parseResponseHead(
        all.subarray(0, end),
        this.#owed[0] ?? "GET",
      );
      this.#resHead.take();
      rest = all.subarray(end);
      if (head.status === 101) this.#tunnel = true;
      else if (head.status < 200) this.#resStarted = false;
      else if (head.body.kind === "none") this.#answered();
      else this.#resBody = new BodyReader(head.body);
    }
  }

  /** The oldest request owed an answer has had all of it. */
  #answered(): void {
    this.#owed.shift();
    this.#resBody = undefined;
    this.#resStarted = false;
  }

  /** Once every answer owed is sent: the guard's own answer, or a close. */
  #afterAnswers(): void {
    if (this.#owed.length > 0 || this.#isClosed) return;
    if (this.#refusal) this.#sendRefusal();
    else if (this.#clientEnded || this.#draining) this.#finish();
  }

  /**
   * The client closed its side: close once every answer owed is sent, or at
   * once if it left mid-body (that request can never be whole: the server
   * sees its body cut short and stops waiting for it).
   */
  #clientEnd(): void {
    this.#clientEnded = true;
    if (this.#finishing || this.#owed.length === 0 || this.#body) this.close();
  }

  /**
   * Answers the request arriving with the guard's own error (now, or once
   * the server's answers owed before it are sent) and closes; logs it.
   */
  #refuse(status: number, message: string): void {
    if (this.#refusal || this.#isClosed) return;
    const head = this.#head.view();
    this.#refusal = {
      status,
      message,
      ...requestLineParts(head),
      bytes: head.length,
      started: this.#headStart ?? performance.now(),
    };
    this.#headStart = undefined;
    if (this.#owed.length === 0) this.#sendRefusal();
  }

  async #sendRefusal(): Promise<void> {
    const r = this.#refusal!;
    this.#settings.log?.({
      time: new Date().toISOString(),
      method: r.method,
      path: r.path,
      status: r.status,
      ms: Math.round((performance.now() - r.started) * 10) / 10,
      bytes: r.bytes,
      client: this.address,
      error: r.message,
    });
    const written = writeAll(this.client, refusalBytes(r.status, r.message));
    const late = new Promise((resolve) => setTimeout(resolve, LINGER_MS));
    await Promise.race([written, late]);
    this.#finish();
  }

  /**
   * Closes gracefully: no more writes, then whatever the client still sends
   * is read and dropped for up to a second (closing a socket with unread
   * bytes would reset it and could lose the answer just sent).
   */
  #finish(): void {
    if (this.#finishing || this.#isClosed) return;
    this.#finishing = true;
    this.#upstream?.close();
    this.#upstream = undefined;
    if (this.#clientEnded) return this.close();
    this.client.closeWrite().catch(() => this.close());
    setTimeout(() => this.close(), LINGER_MS);
  }

  /** Closes both connections at once. */
  close(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    for (const conn of [this.client, this.#upstream]) {
      try {
        conn?.close();
      } catch {
        // closed already
      }
    }
    this.#onClosed();
  }

  /** For a graceful shutdown: close now if idle, else after the answers owed. */
  drain(): void {
    this.#draining = true;
    if (this.#owed.length === 0 && !this.#body) this.#finish();
  }

  /** Applies the timeouts at `now` (called by the guard's sweep). */
  check(now: number): void {
    if (this.#isClosed || this.#finishing) return;
    const { headerTimeoutMs, idleTimeoutMs } = this.#settings;
    if (
      this.#headStart !== undefined && now - this.#headStart > headerTimeoutMs
    ) {
      return this.#refuse(
        408,
        `the request head did not arrive within ${headerTimeoutMs / 1000} s`,
      );
    }
    // The server is working on an answer (its body timeout bounds a body).
    if (this.#owed.length > 0 && !this.#resStarted) return;
    const limit = this.#requests === 0 ? headerTimeoutMs : idleTimeoutMs;
    if (now - this.#lastActivity > limit) this.close();
  }
}

/**
 * Listens on `hostname:port` and guards every connection on its way to the
 * server on `upstreamPath` (see the module documentation). Throws
 * `Deno.errors.AddrInUse` if the address is taken.
 *
 * Needs a server listening on a Unix socket, so it is not run by
 * `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { startConnGuard } from "./conn_guard.ts";
 * const dir = await Deno.makeTempDir();
 * const server = Deno.serve({ path: `${dir}/http.sock` }, () => new Response("hi"));
 * const guard = startConnGuard({ hostname: "127.0.0.1", port: 8000, upstreamPath: `${dir}/http.sock` });
 * console.log(await (await fetch("http://127.0.0.1:8000/")).text());
 * await guard.shutdown();
 * await server.shutdown();
 * ```
 */
export function startConnGuard(options: ConnGuardOptions): ConnGuard {
  const settings: GuardSettings = {
    upstreamPath: options.upstreamPath,
    headerTimeoutMs: options.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    log: options.log,
  };
  for (const key of ["headerTimeoutMs", "idleTimeoutMs"] as const) {
    if (!(settings[key] > 0) || !Number.isFinite(settings[key])) {
      throw new Error(
        `${key} must be a positive number (got ${settings[key]})`,
      );
    }
  }
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  if (!Number.isSafeInteger(maxConnections) || maxConnections < 1) {
    throw new Error(
      `maxConnections must be a positive integer (got ${maxConnections})`,
    );
  }
  const listener = Deno.listen({
    hostname: options.hostname,
    port: options.port,
  });
  const conns = new Set<GuardedConn>();
  const tick = Math.min(
    500,
    Math.max(
      20,
      Math.min(settings.headerTimeoutMs, settings.idleTimeoutMs) / 5,
    ),
  );
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const c of conns) c.check(now);
  }, tick);
  const state = { listening: true };
  const accepting = acceptLoop(listener, state, conns, {
    settings,
    maxConnections,
  });
  return {
    addr: listener.addr,
    get connections() {
      return conns.size;
    },
    async shutdown() {
      state.listening = false;
      listener.close();
      await accepting;
      for (const c of conns) c.drain();
      await Promise.all([...conns].map((c) => c.closed));
      clearInterval(sweep);
    },
  };
}

/** Accepts connections until the listener closes; refuses those over the cap. */
async function acceptLoop(
  listener: Deno.TcpListener,
  state: { listening: boolean },
  conns: Set<GuardedConn>,
  { settings, maxConnections }: {
    settings: GuardSettings;
    maxConnections: number;
  },
): Promise<void> {
  while (state.listening) {
    let client: Deno.TcpConn;
    try {
      client = await listener.accept();
    } catch {
      if (!state.listening) return;
      // Out of file descriptors, say: wait a moment rather than spin.
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    if (conns.size >= maxConnections) {
      refuseConnection(client, settings, maxConnections);
      continue;
    }
    const conn = new GuardedConn(client, settings);
    conns.add(conn);
    conn.closed.then(() => conns.delete(conn));
    conn.run().catch(() => conn.close());
  }
}

/** Answers a connection over the cap with 503 and `Retry-After`, and closes it. */
function refuseConnection(
  client: Deno.TcpConn,
  settings: GuardSettings,
  maxConnections: number,
): void {
  const { hostname, port } = client.remoteAddr as Deno.NetAddr;
  const message =
    `too many open connections (the limit is ${maxConnections}): retry later`;
  settings.log?.({
    time: new Date().toISOString(),
    method: null,
    path: null,
    status: 503,
    ms: 0,
    bytes: 0,
    client: `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`,
    error: message,
  });
  const bytes = refusalBytes(503, message, { "retry-after": "1" });
  const late = new Promise((resolve) => setTimeout(resolve, LINGER_MS));
  Promise.race([writeAll(client, bytes), late]).finally(() => {
    try {
      client.close();
    } catch {
      // closed already
    }
  });
}
