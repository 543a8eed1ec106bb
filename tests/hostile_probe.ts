/**
 * Probes for the hostile-input suite: the project's commands started as
 * child processes from a checkout (its `deno.json` tasks), their memory
 * read from `/proc` while they work, and raw HTTP over TCP for requests
 * `fetch` will not send (a hostile `Host`, a client that trickles or goes
 * quiet).
 *
 * Reads `/proc`, so memory figures are Linux only.
 *
 * @module
 */
import { join } from "node:path";

/**
 * The command line a checkout's `deno task NAME` runs, read from its
 * `deno.json` (`deno run -A lib/...`), with `deno` replaced by this Deno.
 * Only plain commands (no shell operators) are supported.
 *
 * Reads a checkout's `deno.json`, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { taskCommand } from "./hostile_probe.ts";
 * console.log(taskCommand(".", "serve")); // [".../deno", "run", "-A", "lib/deploy/serve.ts"]
 * ```
 */
export function taskCommand(root: string, task: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(join(root, "deno.json")));
  const entry = config.tasks?.[task];
  const command: string | undefined = typeof entry === "string"
    ? entry
    : entry?.command;
  if (command === undefined) throw new Error(`${root}: no task "${task}"`);
  if (/[&|;<>$`]/.test(command)) {
    throw new Error(`task "${task}" is not a plain command: ${command}`);
  }
  const argv = command.trim().split(/\s+/);
  if (argv[0] === "deno") argv[0] = Deno.execPath();
  return argv;
}

/** A process's resident memory now and at its peak, in MB (from `/proc`). */
export interface ProcMemory {
  /** Resident set size now (`VmRSS`). */
  rssMb: number;
  /** The highest resident set size so far (`VmHWM`). */
  peakMb: number;
}

/**
 * The memory of process `pid` from `/proc/<pid>/status`, or `undefined`
 * once it has exited.
 *
 * Reads `/proc`, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { procMemory } from "./hostile_probe.ts";
 * console.log(procMemory(Deno.pid)?.rssMb);
 * ```
 */
export function procMemory(pid: number): ProcMemory | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return undefined;
  }
  const kb = (field: string) =>
    Number(text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
  return { rssMb: kb("VmRSS") / 1024, peakMb: kb("VmHWM") / 1024 };
}

/** What {@linkcode sampleMemory} saw. */
export interface MemorySample {
  /** Resident memory when sampling started, MB. */
  startMb: number;
  /** The highest resident memory seen while sampling, MB. */
  peakMb: number;
}

/**
 * Samples the resident memory of `pid` every `everyMs` (default 50 ms)
 * until `stop` is called; `stop` returns the start and the peak. The peak
 * also takes the kernel's own high-water mark (`VmHWM`) when that rose
 * while sampling, so a spike between two samples is not missed.
 *
 * Reads `/proc`, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { sampleMemory } from "./hostile_probe.ts";
 * const stop = sampleMemory(Deno.pid);
 * new Uint8Array(50 << 20).fill(1);
 * console.log(stop().peakMb);
 * ```
 */
export function sampleMemory(pid: number, everyMs = 50): () => MemorySample {
  const first = procMemory(pid);
  const startMb = first?.rssMb ?? 0;
  const startHwm = first?.peakMb ?? 0;
  let peakMb = startMb;
  let lastHwm = startHwm;
  const take = () => {
    const now = procMemory(pid);
    if (now === undefined || Number.isNaN(now.rssMb)) return;
    peakMb = Math.max(peakMb, now.rssMb);
    lastHwm = now.peakMb;
  };
  const timer = setInterval(take, everyMs);
  return () => {
    take();
    clearInterval(timer);
    if (lastHwm > startHwm) peakMb = Math.max(peakMb, lastHwm);
    return { startMb, peakMb };
  };
}

/** What a finished command did. */
export interface TaskRun {
  /** Exit code (`undefined` when it was killed at the time limit). */
  code?: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
  /** Wall time, ms. */
  ms: number;
  /** Its peak resident memory, MB (the last `VmHWM` read before it exited). */
  peakRssMb: number;
}

/** Options for {@linkcode runTask}. */
export interface RunTaskOptions {
  /** The checkout whose task runs (its folder is the working directory). */
  root: string;
  /** The task's name in `deno.json` (`predict`, `audit`, ...). */
  task: string;
  /** Arguments after the task. */
  args?: string[];
  /** Kill it after this many ms (default 120 000). */
  timeoutMs?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** Reads a stream to its end as text (invalid UTF-8 replaced). */
async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return new TextDecoder().decode(
    chunks.length === 1 ? chunks[0] : new Uint8Array(
      await new Blob(chunks.map((c) => c.slice())).arrayBuffer(),
    ),
  );
}

/**
 * Runs a checkout's task to completion (or to the time limit, then kills
 * it), recording its output, wall time and peak memory.
 *
 * Runs a subprocess, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { runTask } from "./hostile_probe.ts";
 * const run = await runTask({ root: ".", task: "predict", args: ["scan.jpg"] });
 * console.log(run.code, run.peakRssMb);
 * ```
 */
export async function runTask(options: RunTaskOptions): Promise<TaskRun> {
  const [command, ...args] = taskCommand(options.root, options.task);
  const started = performance.now();
  const child = new Deno.Command(command, {
    args: [...args, ...options.args ?? []],
    cwd: options.root,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let peakRssMb = 0;
  const sampler = setInterval(() => {
    // An exited process not yet reaped has no memory fields (NaN): skip.
    const peak = procMemory(child.pid)?.peakMb;
    if (peak !== undefined && !Number.isNaN(peak)) {
      peakRssMb = Math.max(peakRssMb, peak);
    }
  }, 50);
  let killed = false;
  const limit = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, options.timeoutMs ?? 120_000);
  const [stdout, stderr, status] = await Promise.all([
    readAll(child.stdout),
    readAll(child.stderr),
    child.status,
  ]);
  clearInterval(sampler);
  clearTimeout(limit);
  const ms = performance.now() - started;
  return {
    code: killed ? undefined : status.code,
    stdout,
    stderr,
    ms,
    peakRssMb,
  };
}

/** A server started by {@linkcode startServe}. */
export interface ServeProcess {
  /** Its process id (the one doing the work: workers are its threads). */
  pid: number;
  /** Its base URL, e.g. `http://127.0.0.1:43210/`. */
  url: string;
  /** Host name and port, for raw TCP. */
  hostname: string;
  /** The port. */
  port: number;
  /** Everything it wrote to standard error so far (its log). */
  log: () => string;
  /** Stops it (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. */
  stop: () => Promise<void>;
}

/** Options for {@linkcode startServe}. */
export interface StartServeOptions {
  /** The checkout whose `deno task serve` runs. */
  root: string;
  /** The `--model` folder. */
  model: string;
  /** More flags (`--port 0` is added unless `--port` is among them). */
  args?: string[];
  /** Give up when it has not said where it serves within this many ms (default 60 000). */
  timeoutMs?: number;
}

/** Collects a child's standard error as text, line by line as it arrives. */
function collect(stream: ReadableStream<Uint8Array>): {
  text: () => string;
  done: Promise<void>;
} {
  let text = "";
  const decoder = new TextDecoder();
  const done = (async () => {
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
    }
  })();
  return { text: () => text, done };
}

/**
 * Starts a checkout's `deno task serve` on a free port and waits for the
 * line that says where it serves.
 *
 * Starts a server, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { startServe } from "./hostile_probe.ts";
 * const server = await startServe({ root: ".", model: "models/seedcnn-128-r2" });
 * console.log((await fetch(`${server.url}health`)).status);
 * await server.stop();
 * ```
 */
export async function startServe(
  options: StartServeOptions,
): Promise<ServeProcess> {
  const [command, ...args] = taskCommand(options.root, "serve");
  const extra = options.args ?? [];
  const child = new Deno.Command(command, {
    args: [
      ...args,
      "--model",
      options.model,
      ...extra.includes("--port") ? [] : ["--port", "0"],
      ...extra,
    ],
    cwd: options.root,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = collect(child.stderr);
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, 5000);
    await child.status;
    clearTimeout(timer);
    await log.done;
  };
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    const match = log.text().match(/ on (http:\/\/([^\s/]+):(\d+)\/)/);
    if (match) {
      const [, url, hostname, port] = match;
      return {
        pid: child.pid,
        url,
        hostname,
        port: Number(port),
        log: log.text,
        stop,
      };
    }
    await new Promise((done) => setTimeout(done, 100));
  }
  await stop();
  throw new Error(
    `serve did not start within the time limit; it said:\n${log.text()}`,
  );
}

/** What {@linkcode rawRequest} got back. */
export interface RawResponse {
  /** The HTTP status, or `undefined` when the server closed without answering. */
  status?: number;
  /** The response's head and body as text. */
  text: string;
  /** The body alone. */
  body: string;
  /**
   * Wall time until a whole response arrived, else until the server closed
   * the connection or the limit passed, ms.
   */
  ms: number;
  /**
   * Whether the server closed the connection or sent a whole response
   * (else the time limit came first).
   */
  closed: boolean;
}

/** Options for {@linkcode rawRequest}. */
export interface RawRequestOptions {
  /** Server host name. */
  hostname: string;
  /** Server port. */
  port: number;
  /** Bytes to send at once (a request, or its start). */
  send: Uint8Array | string;
  /** Then send this one byte at a time, one every `dripMs`. */
  drip?: string;
  /** Pause between dripped bytes, ms (default 1000). */
  dripMs?: number;
  /** Give up after this many ms (default 10 000). */
  timeoutMs?: number;
}

/** The status and body of a raw HTTP response (`undefined` status when none). */
function parseResponse(text: string): { status?: number; body: string } {
  const status = text.match(/^HTTP\/1\.[01] (\d{3})/)?.[1];
  const split = text.indexOf("\r\n\r\n");
  return {
    status: status === undefined ? undefined : Number(status),
    body: split < 0 ? "" : text.slice(split + 4),
  };
}

/**
 * Whether `text` holds a whole HTTP response: its head and as many body
 * bytes as its `Content-Length` says (ASCII bodies, as the server's JSON).
 */
function complete(text: string): boolean {
  const split = text.indexOf("\r\n\r\n");
  if (split < 0) return false;
  const length = text.slice(0, split).match(/\r\ncontent-length:\s*(\d+)/i)
    ?.[1];
  if (length === undefined) return false;
  return new TextEncoder().encode(text.slice(split + 4)).length >=
    Number(length);
}

/** Writes all of `data` to `conn`; `false` when the peer has closed. */
async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<boolean> {
  try {
    for (let done = 0; done < data.length;) {
      done += await conn.write(data.subarray(done));
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Sends bytes over a plain TCP connection and reads until the server closes
 * it or the time limit passes: for requests `fetch` will not make (a
 * hostile `Host`) and for clients that are slow (`drip`) or silent (send
 * nothing). Send `Connection: close` for a single answer.
 *
 * Opens a connection, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { rawRequest } from "./hostile_probe.ts";
 * const res = await rawRequest({ hostname: "127.0.0.1", port: 8000, send: "GET /health HTTP/1.1\r\nHost: [\r\nConnection: close\r\n\r\n" });
 * console.log(res.status, res.body);
 * ```
 */
export async function rawRequest(
  options: RawRequestOptions,
): Promise<RawResponse> {
  const started = performance.now();
  const conn = await Deno.connect({
    hostname: options.hostname,
    port: options.port,
  });
  const timeoutMs = options.timeoutMs ?? 10_000;
  let closed = false;
  let text = "";
  const reading = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of conn.readable) {
        text += decoder.decode(chunk, { stream: true });
        if (complete(text)) break;
      }
    } catch { /* reset by the peer counts as closed */ }
    closed = true;
  })();
  const sending = (async () => {
    const encode = (s: Uint8Array | string) =>
      typeof s === "string" ? new TextEncoder().encode(s) : s;
    if (!await writeAll(conn, encode(options.send))) return;
    for (const ch of options.drip ?? "") {
      await new Promise((done) => setTimeout(done, options.dripMs ?? 1000));
      if (closed || !await writeAll(conn, encode(ch))) return;
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    reading,
    new Promise((done) => timer = setTimeout(done, timeoutMs)),
  ]);
  clearTimeout(timer);
  const ms = performance.now() - started;
  const closedByServer = closed;
  try {
    conn.close();
  } catch { /* closed already */ }
  await Promise.allSettled([reading, sending]);
  return { ...parseResponse(text), text, ms, closed: closedByServer };
}

/** Options for {@linkcode burst}. */
export interface BurstOptions {
  /** The server's base URL (ending in `/`). */
  url: string;
  /** The heavy image every request of the burst POSTs to `/predict`. */
  heavy: Uint8Array;
  /** Its content type. */
  type: string;
  /** How many heavy requests at once. */
  count: number;
  /** The normal image sent 300 ms into the burst (as `image/jpeg`). */
  normal: Uint8Array;
}

/** A request's status (`undefined` when it got none) and time to its answer, ms. */
export interface Timed {
  status?: number;
  ms: number;
  /** The `Retry-After` header, when the answer had one. */
  retryAfter?: string;
}

/** What {@linkcode burst} saw. */
export interface BurstResult {
  /** Each heavy request's status and time. */
  heavy: Timed[];
  /** The normal image's. */
  normal: Timed;
  /** `GET /health`'s, sent beside the normal image. */
  health: Timed;
}

/** A request's status and time (no status when it failed or passed 120 s). */
async function timed(url: string, init: RequestInit = {}): Promise<Timed> {
  const started = performance.now();
  try {
    const res = await fetch(url, {
      ...init,
      signal: AbortSignal.timeout(120_000),
    });
    await res.arrayBuffer();
    const retryAfter = res.headers.get("retry-after") ?? undefined;
    return {
      status: res.status,
      ms: performance.now() - started,
      ...retryAfter === undefined ? {} : { retryAfter },
    };
  } catch {
    return { ms: performance.now() - started };
  }
}

/**
 * `count` heavy `POST /predict` requests at once and, 300 ms later, a
 * normal image and a health check beside them: what each got and how long
 * the normal ones waited.
 *
 * Needs a running server, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { burst } from "./hostile_probe.ts";
 * const seen = await burst({ url: "http://127.0.0.1:8000/", heavy, type: "image/png", count: 40, normal });
 * console.log(seen.health.ms);
 * ```
 */
export async function burst(options: BurstOptions): Promise<BurstResult> {
  const post = (body: Uint8Array, type: string) =>
    timed(`${options.url}predict`, {
      method: "POST",
      headers: { "content-type": type },
      body: body.slice(),
    });
  const heavy = Array.from(
    { length: options.count },
    () => post(options.heavy, options.type),
  );
  await new Promise((done) => setTimeout(done, 300));
  const [normal, health] = await Promise.all([
    post(options.normal, "image/jpeg"),
    timed(`${options.url}health`),
  ]);
  return { heavy: await Promise.all(heavy), normal, health };
}
