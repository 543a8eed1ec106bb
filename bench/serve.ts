/**
 * HTTP serving benchmark: `lib/deploy/serve.ts` (the project's server, serving the
 * shipped seed CNN `models/seedcnn-128-r2` with test-time augmentation off,
 * once per `--workers` setting: by default with one inference worker per
 * core, and with the model in the server's own thread; and per `--engines`
 * engine) against a Keras/TensorFlow 2.21 peer (`bench/serve_peer.py`: the
 * same seed CNN architecture, random weights, PIL preprocessing, the same
 * HTTP API; with another `--model`, that model converted to Keras with its
 * own weights by bench/inference_keras.py), on
 * loopback; with `--root DIR`, also against the server of another checkout
 * of this project (its `lib/deploy/serve.ts`, serving the same model), to
 * compare two versions of the code.
 *
 * All servers run at once as child processes of this one (so background
 * load hits them alike); for each concurrency C (default 1, 4 and 8) each is
 * warmed up, then C concurrent keep-alive clients in this process POST real
 * JPEG scans (round robin over `--files` of them) for `--duration` seconds
 * (or `--requests` requests), the servers taking turns (the order flips
 * with each C), `--rounds` times over (A B A B …), the rounds pooled.
 * Reported per C and server: requests/s, p50/p90/p99 latency, the server's
 * CPU time per request (from `/proc`, less sensitive to other load), its
 * peak resident memory, and the ratios (ours over the peer, ours over the
 * other checkout). "Ours" is this checkout as it is on disk, uncommitted
 * changes included (the start-up line counts them).
 *
 * `--mixed SECONDS` measures instead how the servers bear hostile input: for
 * each concurrency C and server in turn, a fresh server is started and
 * warmed up, then for SECONDS the C normal clients post real scans while
 * hostile clients run beside them (bench/serve_hostile.ts: forged frame
 * sizes, truncated scans, a PNG just under the pixel limit, `Host: [`, slow
 * headers, idle connections). Reported: the normal requests (count, p50,
 * p99, errors by status), the hostile ones by outcome, the server's peak
 * resident memory (sampled every 100 ms, the server and its child
 * processes), whether it still answers `GET /health` afterwards and how it
 * exits.
 *
 * ```sh
 * deno run -A bench/serve.ts [--data DIR] [--files 64] [--duration 10] \
 *   [--requests N] [--concurrency 1,4,8] [--rounds 1] [--warmup 20] \
 *   [--model DIR] [--workers 2,0] [--engines tfjs,onnx] [--no-peer] [--root DIR] \
 *   [--mixed S [--hostile 1] [--sockets 8]] [--json FILE]
 * ```
 *
 * Every flag is declared in {@linkcode SERVE_BENCH_CLI} (`--help` prints
 * them). Scans: `--data DIR`, else the project's data source (`BRAIN_MRI_DATA`,
 * `data/`, or the synthetic default, generated on first use). The Python side
 * installs itself into `.cache/bench-venv` from the project's pip index
 * (`tensorflow-cpu==2.21.0`, pillow, numpy; bench/peer_env.ts) when missing.
 *
 * @module
 */
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { writeTextAtomic } from "../lib/core/atomic.ts";
import { resolveDataSource } from "../lib/data/prepare.ts";
import { projectPaths } from "../lib/core/paths.ts";
import { ensurePeerEnv } from "./peer_env.ts";
import {
  evenlySpaced,
  loadAverage,
  median,
  recordedPath,
} from "./bench_util.ts";
import { type FlagValues, runCli, UsageError } from "../lib/core/cli.ts";
import { DEFAULTS } from "../lib/core/defaults.ts";
import {
  FORGED_SIDE,
  HOSTILE_KINDS,
  HOSTILE_PAUSE_MS,
  type HostileBodies,
  hostileBodies,
  type HostileKind,
  type HostileTally,
  runHostileClient,
  sampleRss,
  sideUnderLimit,
  SOCKET_KINDS,
  treeRssMb,
  TRICKLE_MS,
} from "./serve_hostile.ts";

/** Our model for the comparison: the same architecture as the peer's. */
const SAME_AS_PEER = "seedcnn-128-r2";

const HERE = dirname(fileURLToPath(import.meta.url));
const TF_WHEEL = "tensorflow-cpu==2.21.0";

/** The benchmark's command line: every flag with its type, default and help. */
export const SERVE_BENCH_CLI = {
  command: "deno run -A bench/serve.ts",
  summary:
    "HTTP serving speed: the project's server against a Keras/TensorFlow\n" +
    "peer with the same API (and against another checkout's server), on\n" +
    "loopback, at several client concurrencies; or, with --mixed, under\n" +
    "normal load and hostile clients at once.",
  flags: {
    data: {
      type: "string",
      value: "DIR",
      defaultText: "the project's data source",
      help: "scans to post",
    },
    files: {
      type: "integer",
      default: 64,
      help: "distinct JPEG scans used, evenly spaced",
    },
    duration: {
      type: "number",
      value: "S",
      default: 10,
      help: "seconds per server, concurrency and round",
    },
    requests: {
      type: "integer",
      help: "a fixed number of requests instead of a duration",
    },
    concurrency: {
      type: "string",
      value: "LIST",
      default: "1,4,8",
      help: "comma-separated client counts",
    },
    rounds: {
      type: "integer",
      default: 1,
      help: "measurements per server and concurrency, the\n" +
        "servers taking turns; pooled",
    },
    warmup: {
      type: "integer",
      default: 20,
      help: "untimed requests before each measurement",
    },
    model: {
      type: "string",
      value: "DIR",
      defaultText: `models/${SAME_AS_PEER}:\nthe seed CNN the peer also runs`,
      help:
        "our model (test-time augmentation off, as\nthe peer's); any other " +
        "model is converted to\nKeras with its weights for the peer",
    },
    workers: {
      type: "string",
      value: "LIST",
      defaultText: "<CPUs>,0: a worker per\ncore, and none",
      help: "our server's --workers settings, one server\neach",
    },
    engines: {
      type: "string",
      value: "LIST",
      defaultText: "the default engine (or\nBRAIN_MRI_ENGINE)",
      help: "our server's inference engines (tfjs, onnx),\none server each",
    },
    "no-peer": { type: "boolean", help: "only our server(s)" },
    root: {
      type: "string",
      value: "DIR",
      help: "another checkout of this project: its\n" +
        "lib/deploy/serve.ts is measured beside ours\n" +
        "(same model, same --workers), labelled by its\ncommit",
    },
    mixed: {
      type: "number",
      value: "S",
      help: "instead: S seconds of normal load with\n" +
        "hostile clients beside it, per server and\nconcurrency",
    },
    hostile: {
      type: "integer",
      default: 1,
      help: "--mixed: clients of each hostile request kind",
    },
    sockets: {
      type: "integer",
      default: 8,
      help: "--mixed: slow-header and idle connections, each",
    },
    json: {
      type: "string",
      value: "FILE",
      help: "also write the results to FILE",
    },
  },
} as const;

interface Flags {
  data?: string;
  files: number;
  duration: number;
  requests?: number;
  concurrency: number[];
  rounds: number;
  warmup: number;
  model?: string;
  workers: number[];
  /** Our engines; empty: the server's default (no `--engine`). */
  engines: string[];
  peer: boolean;
  root?: string;
  mixed?: number;
  hostile: number;
  sockets: number;
  json?: string;
}

function positive<T extends number | undefined>(value: T, flag: string): T {
  if (value !== undefined && !(value > 0)) {
    throw new UsageError(
      `--${flag} must be a positive number (got "${value}")`,
    );
  }
  return value;
}

/** Comma-separated whole numbers, at least `min` each. */
function integers(text: string, min: number): number[] | undefined {
  const values = text.split(",").map((s) => Number(s.trim()));
  return values.some((v) => !Number.isInteger(v) || v < min)
    ? undefined
    : values;
}

/** `--root`: a folder holding `lib/deploy/serve.ts`, and not this checkout. */
function checkRoot(root: string | undefined): string | undefined {
  if (root === undefined) return undefined;
  const dir = resolve(root);
  try {
    Deno.statSync(join(dir, "lib", "deploy", "serve.ts"));
  } catch {
    throw new UsageError(
      `--root ${root}: no lib/deploy/serve.ts there (give the folder of ` +
        "another checkout of this project)",
    );
  }
  if (dir === resolve(projectPaths().root)) {
    throw new UsageError(`--root ${root} is this checkout`);
  }
  return dir;
}

function checkFlags(values: FlagValues<typeof SERVE_BENCH_CLI>): Flags {
  const concurrency = integers(values.concurrency, 1);
  if (!concurrency) {
    throw new UsageError(
      `--concurrency must be positive integers (got "${values.concurrency}")`,
    );
  }
  const workersText = values.workers ?? `${navigator.hardwareConcurrency},0`;
  const workers = integers(workersText, 0);
  if (!workers || new Set(workers).size !== workers.length) {
    throw new UsageError(
      `--workers must be distinct non-negative integers (got "${values.workers}")`,
    );
  }
  const engines = values.engines?.split(",").map((e) => e.trim()) ?? [];
  const unknown = engines.find((e) => e !== "tfjs" && e !== "onnx");
  if (unknown !== undefined || new Set(engines).size !== engines.length) {
    throw new UsageError(
      `--engines must be distinct engines of tfjs, onnx (got "${values.engines}")`,
    );
  }
  return {
    workers,
    engines,
    data: values.data,
    files: positive(values.files, "files"),
    duration: positive(values.duration, "duration"),
    requests: positive(values.requests, "requests"),
    concurrency,
    rounds: positive(values.rounds, "rounds"),
    warmup: positive(values.warmup, "warmup"),
    model: values.model,
    peer: !values["no-peer"],
    root: checkRoot(values.root),
    mixed: positive(values.mixed, "mixed"),
    hostile: positive(values.hostile, "hostile"),
    sockets: positive(values.sockets, "sockets"),
    json: values.json,
  };
}

// ---------------------------------------------------------------------------
// Scans

/** Whether a file starts as a JPEG does (`FF D8 FF`). */
async function isJpeg(path: string): Promise<boolean> {
  const file = await Deno.open(path);
  try {
    const head = new Uint8Array(3);
    await file.read(head);
    return head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff;
  } finally {
    file.close();
  }
}

async function jpegFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    const names = (await readdir(dir)).filter((n) => !n.startsWith("."))
      .sort();
    for (const name of names) {
      const path = join(dir, name);
      const info = await stat(path);
      if (info.isDirectory()) await walk(path);
      else if (info.isFile() && info.size > 3 && await isJpeg(path)) {
        out.push(path);
      }
    }
  };
  await walk(root);
  return out;
}

// ---------------------------------------------------------------------------
// Checkouts

/** The code a server runs: a checkout of this project, at a commit. */
interface Checkout {
  /** Its label in the results: `ours`, or the other checkout's short commit. */
  name: string;
  /** Its folder. */
  dir: string;
  /** Its commit (short hash), when it is a git checkout. */
  commit?: string;
  /** Files under `lib/` changed since that commit. */
  uncommitted: string[];
}

/** Output of a git command in `dir`, or undefined when it fails. */
async function git(
  dir: string,
  ...args: string[]
): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("git", {
      args: ["-C", dir, ...args],
      stdout: "piped",
      stderr: "null",
    }).output();
    // Only the end trimmed: `git status --porcelain` lines open with a space.
    return out.success
      ? new TextDecoder().decode(out.stdout).trimEnd()
      : undefined;
  } catch {
    return undefined;
  }
}

/** This checkout (`ours`) and the other one's commit, for labels and the record. */
async function describeCheckout(dir: string, ours: boolean): Promise<Checkout> {
  const commit = await git(dir, "rev-parse", "--short", "HEAD");
  const status = await git(dir, "status", "--porcelain", "--", "lib");
  const uncommitted = (status ?? "").split("\n").filter(Boolean)
    .map((line) => line.slice(3));
  return {
    name: ours ? "ours" : commit ?? basename(dir),
    dir,
    commit,
    uncommitted,
  };
}

// ---------------------------------------------------------------------------
// Servers

/**
 * Our server's label for a checkout, a `--workers` setting and, when more
 * than one is measured, an engine.
 */
function ourLabel(checkout: string, workers: number, engine?: string): string {
  return (workers === 0 ? `${checkout}/thread` : `${checkout}/${workers}w`) +
    (engine ? `/${engine}` : "");
}

/** A checkout's servers with one `--workers` setting: one per engine. */
function ourServers(
  checkout: string,
  workers: number,
  flags: Flags,
): { label: string; engine?: string }[] {
  const engines = flags.engines.length > 0 ? flags.engines : [undefined];
  return engines.map((engine) => ({
    label: ourLabel(
      checkout,
      workers,
      flags.engines.length > 1 ? engine : undefined,
    ),
    engine,
  }));
}

/** The labels of a checkout's servers, every `--workers` setting in turn. */
function ourLabels(checkout: string, flags: Flags): string[] {
  return flags.workers.flatMap((w) =>
    ourServers(checkout, w, flags).map((s) => s.label)
  );
}

/** How to start one server, and how it says where it listens. */
interface ServerSpec {
  label: string;
  command: string;
  args: string[];
  /** Its working folder. */
  cwd: string;
  /** Matches the start-up line that holds its URL (group 1). */
  pattern: RegExp;
  env?: Record<string, string>;
}

interface Server {
  label: string;
  child: Deno.ChildProcess;
  url: string;
  /** Lines the server wrote to stderr (its start-up and the request log). */
  logLines: number;
  startLines: string[];
  drained: Promise<void>;
}

/**
 * Reads a server's stderr to the end, counting lines; resolves `ready` with
 * its URL once a start-up line matches `pattern`, calls `failed` if the
 * stream ends before.
 */
async function drainStderr(
  server: Server,
  pattern: RegExp,
  ready: (url: string) => void,
  failed: (error: Error) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of server.child.stderr) {
    const parts = (rest + decoder.decode(chunk, { stream: true })).split("\n");
    rest = parts.pop()!;
    for (const line of parts) {
      server.logLines++;
      if (server.url) continue;
      server.startLines.push(line);
      const m = line.match(pattern);
      if (m) {
        server.url = m[1].replace(/\/$/, "");
        ready(server.url);
      }
    }
  }
  if (!server.url) {
    failed(
      new Error(
        `${server.label} exited before listening:\n${
          server.startLines.slice(-10).join("\n")
        }`,
      ),
    );
  }
}

/** Starts a server and waits until it prints its URL; keeps draining stderr. */
async function startServer(spec: ServerSpec): Promise<Server> {
  const child = new Deno.Command(spec.command, {
    args: spec.args,
    cwd: spec.cwd,
    env: spec.env ?? {},
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const server: Server = {
    label: spec.label,
    child,
    url: "",
    logLines: 0,
    startLines: [],
    drained: Promise.resolve(),
  };
  const started = Promise.withResolvers<string>();
  server.drained = drainStderr(
    server,
    spec.pattern,
    started.resolve,
    started.reject,
  );
  const timer = setTimeout(
    () => started.reject(new Error(`${spec.label} did not start within 180 s`)),
    180_000,
  );
  try {
    await started.promise;
    const health = await fetch(`${server.url}/health`);
    await health.body?.cancel();
    if (health.status !== 200) {
      throw new Error(`${spec.label}: GET /health answered ${health.status}`);
    }
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return server;
}

async function stopServer(server: Server): Promise<number> {
  try {
    server.child.kill("SIGTERM");
  } catch { /* already gone */ }
  const timer = setTimeout(() => {
    try {
      server.child.kill("SIGKILL");
    } catch { /* gone */ }
  }, 20_000);
  const status = await server.child.status;
  clearTimeout(timer);
  await server.drained;
  return status.code;
}

/** User + system CPU time of a process, in ms (Linux `/proc`). */
function cpuMs(pid: number): number {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN; // the process is gone
  }
}

/** Peak resident memory of a process so far, in MB (Linux `/proc`). */
function peakRssMb(pid: number): number {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(text.match(/^VmHWM:\s+(\d+) kB/m)?.[1] ?? NaN) / 1024;
  } catch {
    return NaN; // the process is gone
  }
}

// ---------------------------------------------------------------------------
// Load

/** One measurement of one server: what the clients saw. */
interface Sample {
  /** Latencies of the answered requests (200 with a class), ms. */
  latencies: number[];
  /** The rest, counted by status (or `closed`, `error: …`). */
  errors: Record<string, number>;
  firstFailure?: string;
  seconds: number;
  /** The server's CPU time over the measurement, ms. */
  cpuMs: number;
  load: number;
}

interface LoadResult {
  requests: number;
  failures: number;
  seconds: number;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  cpuMsPerRequest: number;
  /** The server's peak resident memory so far (MB). */
  peakRssMb: number;
  load: number;
  firstFailure?: string;
  /** Each round's requests/s, p50 and p99, when there were several. */
  rounds?: { rps: number; p50: number; p99: number }[];
}

function percentile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  const rank = Math.ceil(q * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/** What one failed request counts as: its status, or how the fetch failed. */
function failureKey(status: number | undefined, error?: unknown): string {
  if (status !== undefined) return String(status);
  const text = String((error as Error)?.message ?? error);
  return /connection (closed|reset)|reset by peer/i.test(text)
    ? "closed"
    : `error: ${(error as Error)?.name ?? "unknown"}`;
}

/** C keep-alive clients posting scans round robin until `until` is met. */
async function load(
  server: Server,
  scans: Uint8Array[],
  concurrency: number,
  until: { seconds?: number; requests?: number },
): Promise<Sample> {
  const sample: Sample = {
    latencies: [],
    errors: {},
    seconds: 0,
    cpuMs: 0,
    load: loadAverage(),
  };
  const fail = (key: string, detail: string) => {
    sample.errors[key] = (sample.errors[key] ?? 0) + 1;
    sample.firstFailure ??= detail;
  };
  let next = 0;
  const cpu0 = cpuMs(server.child.pid);
  const t0 = performance.now();
  const deadline = until.seconds === undefined
    ? Infinity
    : t0 + until.seconds * 1000;
  const client = async () => {
    while (performance.now() < deadline) {
      const i = next++;
      if (until.requests !== undefined && i >= until.requests) return;
      const start = performance.now();
      try {
        const res = await fetch(`${server.url}/predict`, {
          method: "POST",
          body: scans[i % scans.length] as Uint8Array<ArrayBuffer>,
          headers: { "content-type": "image/jpeg" },
        });
        const text = await res.text();
        if (res.status !== 200 || !/"class":\s*"/.test(text)) {
          fail(failureKey(res.status), `${res.status} ${text}`);
          continue;
        }
      } catch (error) {
        fail(failureKey(undefined, error), String(error));
        // A server that is gone refuses at once: count, do not spin.
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      sample.latencies.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  sample.seconds = (performance.now() - t0) / 1000;
  sample.cpuMs = cpuMs(server.child.pid) - cpu0;
  return sample;
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** The rounds of one server at one concurrency, pooled. */
function summarise(samples: Sample[], peakMb: number): LoadResult {
  const latencies = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const n = latencies.length;
  const failures = sum(samples.flatMap((s) => Object.values(s.errors)));
  const seconds = sum(samples.map((s) => s.seconds));
  const result: LoadResult = {
    requests: n,
    failures,
    seconds,
    rps: n / seconds,
    p50: percentile(latencies, 0.5),
    p90: percentile(latencies, 0.9),
    p99: percentile(latencies, 0.99),
    mean: sum(latencies) / Math.max(1, n),
    cpuMsPerRequest: sum(samples.map((s) => s.cpuMs)) /
      Math.max(1, n + failures),
    peakRssMb: peakMb,
    load: median(samples.map((s) => s.load)),
    firstFailure: samples.find((s) => s.firstFailure)?.firstFailure,
  };
  if (samples.length > 1) {
    result.rounds = samples.map((s) => {
      const sorted = [...s.latencies].sort((a, b) => a - b);
      return {
        rps: sorted.length / s.seconds,
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99),
      };
    });
  }
  return result;
}

const fmt = (x: number, digits = 1) =>
  Number.isFinite(x) ? x.toFixed(digits) : "–";

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) =>
    Math.max(...rows.map((r) => r[i].length))
  );
  return rows.map((r, k) =>
    r.map((c, i) => c.padStart(widths[i])).join("  ") +
    (k === 0 ? "\n" + widths.map((w) => "-".repeat(w)).join("  ") : "")
  ).join("\n");
}

/** The scans to post: `--files` JPEGs spread over the dataset. */
async function chooseScans(flags: Flags) {
  let root = flags.data;
  if (!root) {
    const source = await resolveDataSource();
    root = source.root;
    console.log(
      `data: ${root}${
        source.synthetic
          ? " (SYNTHETIC default; --data DIR for real scans)"
          : ""
      }`,
    );
  } else {
    console.log(`data: ${root}`);
  }
  const all = await jpegFiles(root);
  if (!all.length) throw new Error(`${root}: no JPEG files`);
  const chosen = evenlySpaced(all, flags.files);
  const scans = await Promise.all(chosen.map((p) => Deno.readFile(p)));
  const kb = sum(scans.map((b) => b.length)) / scans.length / 1024;
  console.log(
    `${scans.length} JPEG scans (of ${all.length}), mean ${fmt(kb)} KB`,
  );
  return { root, scans };
}

/** Ours (and the other checkout's) per `--workers` setting and engine, then the peer. */
function serverSpecs(
  flags: Flags,
  checkouts: Checkout[],
  peer: { python: string; kerasModel?: string },
): ServerSpec[] {
  const model = resolve(
    flags.model ?? join(projectPaths().root, "models", SAME_AS_PEER),
  );
  const ours = flags.workers.flatMap((workers) =>
    checkouts.flatMap((checkout) =>
      ourServers(checkout.name, workers, flags).map(({ label, engine }) => ({
        label,
        command: Deno.execPath(),
        args: [
          ...["run", "-A", join(checkout.dir, "lib", "deploy", "serve.ts")],
          ...["--port", "0", "--model", model],
          // The peer predicts each image once: so do we.
          ...["--tta", "none", "--workers", String(workers)],
          ...(engine ? ["--engine", engine] : []),
        ],
        cwd: checkout.dir,
        // The first URL it prints (its "serving … on URL" line, plain or JSON).
        pattern: /(http:\/\/[\w.:[\]-]+)/,
      }))
    )
  );
  const spec: ServerSpec = {
    label: "keras",
    command: peer.python,
    args: [
      join(HERE, "serve_peer.py"),
      ...["--port", "0", "--size", "128"],
      ...(peer.kerasModel ? ["--keras-model", peer.kerasModel] : []),
    ],
    cwd: projectPaths().root,
    pattern: /listening on (http:\/\/\S+)/,
    env: { TF_CPP_MIN_LOG_LEVEL: "2" },
  };
  return flags.peer ? [...ours, spec] : ours;
}

/**
 * `--model` other than the seed CNN: that model converted to Keras with its
 * own weights (bench/inference_keras.py `convert`), for the peer to serve.
 */
async function kerasCopy(
  python: string,
  modelDir: string,
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "serve-bench-keras-" });
  const out = join(dir, `${basename(resolve(modelDir))}.keras`);
  const r = await new Deno.Command(python, {
    args: [
      join(HERE, "inference_keras.py"),
      ...["convert", "--model", join(resolve(modelDir), "model")],
      ...["--out", out],
    ],
    env: { TF_CPP_MIN_LOG_LEVEL: "2" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(
      `converting ${modelDir} to Keras failed:\n` +
        new TextDecoder().decode(r.stderr).slice(-2000),
    );
  }
  return out;
}

/** Every server of `specs`, started together. */
async function startServers(specs: ServerSpec[]): Promise<Server[]> {
  const started = await Promise.allSettled(specs.map(startServer));
  const servers = started.flatMap((s) =>
    s.status === "fulfilled" ? [s.value] : []
  );
  const failed = started.find((s) => s.status === "rejected");
  if (failed) {
    await Promise.all(servers.map(stopServer));
    throw (failed as PromiseRejectedResult).reason;
  }
  return servers;
}

/** Where each server listens, and the conditions of the measurement. */
function describe(servers: Server[], flags: Flags): void {
  for (const s of servers) {
    console.log(`${s.label}: ${s.url}  ${s.startLines.at(-1)}`);
    if (s.label === "keras") {
      console.log(`       ${s.startLines.at(-2) ?? ""}`);
    }
  }
  console.log(
    `${navigator.hardwareConcurrency} CPUs, load ${
      fmt(loadAverage(), 2)
    } (shared with other work: all servers run under the same load)\n` +
      (flags.requests ? `${flags.requests} requests` : `${flags.duration} s`) +
      ` per server, concurrency and round (${flags.rounds} round${
        flags.rounds === 1 ? "" : "s"
      }), after ${flags.warmup} warm-up requests`,
  );
}

type Results = Record<string, Record<number, LoadResult>>;

/** One server warmed up, then measured once. */
async function measureOnce(
  server: Server,
  scans: Uint8Array[],
  concurrency: number,
  flags: Flags,
): Promise<Sample> {
  await load(server, scans, concurrency, {
    requests: Math.max(flags.warmup, concurrency),
  });
  const sample = await load(
    server,
    scans,
    concurrency,
    flags.requests ? { requests: flags.requests } : { seconds: flags.duration },
  );
  const r = summarise([sample], NaN);
  console.error(
    `  C=${concurrency} ${server.label}: ${fmt(r.rps)} req/s, ` +
      `p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms, ${r.requests} ok, ` +
      `${r.failures} failed` +
      (r.firstFailure ? ` (${r.firstFailure.slice(0, 200)})` : "") +
      `, load ${fmt(r.load, 2)}`,
  );
  return sample;
}

/**
 * Each concurrency in turn: every server warmed up and measured, the
 * servers taking turns `--rounds` times (the order flips with each C).
 */
async function measure(
  servers: Server[],
  scans: Uint8Array[],
  flags: Flags,
): Promise<Results> {
  const results: Results = {};
  for (const s of servers) results[s.label] = {};
  for (const [k, c] of flags.concurrency.entries()) {
    const order = k % 2 ? [...servers].reverse() : servers;
    const samples = new Map<Server, Sample[]>(servers.map((s) => [s, []]));
    for (let round = 0; round < flags.rounds; round++) {
      for (const s of order) {
        samples.get(s)!.push(await measureOnce(s, scans, c, flags));
      }
    }
    for (const s of servers) {
      results[s.label][c] = summarise(
        samples.get(s)!,
        peakRssMb(s.child.pid),
      );
    }
  }
  return results;
}

/** One row per concurrency and server. */
function resultTable(results: Results, servers: Server[], flags: Flags) {
  const rows: string[][] = [[
    ...["C", "server", "req/s", "p50 ms", "p90 ms", "p99 ms"],
    ...["CPU ms/req", "peak RSS MB", "requests", "failed", "load"],
  ]];
  for (const c of flags.concurrency) {
    for (const s of servers) {
      const r = results[s.label][c];
      rows.push([
        ...[String(c), s.label, fmt(r.rps), fmt(r.p50), fmt(r.p90)],
        ...[fmt(r.p99), fmt(r.cpuMsPerRequest, 2), fmt(r.peakRssMb, 0)],
        ...[String(r.requests), String(r.failures), fmt(r.load, 2)],
      ]);
    }
  }
  return table(rows);
}

/** Each server `a` over its `b`, per concurrency. */
function ratioTable(
  results: Results,
  flags: Flags,
  pairs: { a: string; b: string }[],
): string {
  const rows: string[][] = [["C", "server", "req/s", "p50", "p99", "CPU/req"]];
  for (const c of flags.concurrency) {
    for (const { a, b } of pairs) {
      const o = results[a][c];
      const q = results[b][c];
      rows.push([
        String(c),
        a,
        fmt(o.rps / q.rps, 2),
        fmt(o.p50 / q.p50, 2),
        fmt(o.p99 / q.p99, 2),
        fmt(o.cpuMsPerRequest / q.cpuMsPerRequest, 2),
      ]);
    }
  }
  return table(rows);
}

/** The tables of a normal-load comparison: results, then the ratios. */
function printNormal(
  results: Results,
  servers: Server[],
  flags: Flags,
  checkouts: Checkout[],
): void {
  console.log("\n" + resultTable(results, servers, flags));
  const ours = ourLabels("ours", flags);
  if (results.keras) {
    console.log(
      "\nratios ours/keras (req/s: >1 is ours faster; latency and CPU: <1 is ours faster)",
    );
    console.log(
      ratioTable(results, flags, ours.map((a) => ({ a, b: "keras" }))),
    );
  }
  const other = checkouts.find((c) => c.name !== "ours");
  if (other) {
    console.log(
      `\nratios ours/${other.name} (req/s: >1 is ours faster; latency and CPU: <1 is ours faster)`,
    );
    const theirs = ourLabels(other.name, flags);
    console.log(
      ratioTable(results, flags, ours.map((a, i) => ({ a, b: theirs[i] }))),
    );
  }
}

/** The normal-load comparison: all servers at once, taking turns. */
async function normalBenchmark(
  specs: ServerSpec[],
  scans: Uint8Array[],
  flags: Flags,
  checkouts: Checkout[],
): Promise<Results> {
  const servers = await startServers(specs);
  try {
    describe(servers, flags);
    const results = await measure(servers, scans, flags);
    printNormal(results, servers, flags, checkouts);
    return results;
  } finally {
    for (const s of servers) {
      const code = await stopServer(s);
      console.log(
        `${s.label}: stopped with exit code ${code} (${s.logLines} log lines)`,
      );
    }
  }
}

// ---------------------------------------------------------------------------
// Mixed run: normal load and hostile clients at once

/** How one kind of hostile client fared over a mixed run. */
interface HostileResult {
  clients: number;
  attempts: number;
  /** Counts by outcome: an HTTP status, `closed`, `open at end`, `timeout`, … */
  outcomes: Record<string, number>;
  /** Median seconds until the server closed or answered a connection. */
  medianSecondsToClose?: number;
}

/** One server's mixed run at one concurrency. */
interface MixedResult {
  /** The run's length (`--mixed`), s. */
  seconds: number;
  /** How long after it the last hostile attempt ended, s. */
  drainSeconds: number;
  normal: {
    clients: number;
    /** Requests answered 200 with a class. */
    requests: number;
    rps: number;
    p50: number;
    p99: number;
    /** The rest, by status (or `closed`, `error: …`). */
    errors: Record<string, number>;
    firstFailure?: string;
  };
  hostile: Partial<Record<HostileKind, HostileResult>>;
  /** Resident memory of the server and its child processes, MB: after the warm-up, the highest sample (every 100 ms) over the run, the last. */
  rssMb: { before: number; peak: number; last: number; samples: number };
  /** The server process's own peak resident memory since it started (`VmHWM`), MB. */
  vmHwmMb: number;
  /** The server's CPU time over the run, s. */
  cpuSeconds: number;
  /** `GET /health` answered 200 within 10 s after the run. */
  healthyAfter: boolean;
  /** The server's exit code when stopped (SIGTERM) after the run. */
  exitCode?: number;
  load: number;
}

type MixedResults = Record<string, Record<number, MixedResult>>;

/** The host and port a server's base URL names. */
function targetOf(url: string) {
  const u = new URL(url);
  return {
    url,
    hostname: u.hostname.replace(/^\[|\]$/g, ""),
    port: Number(u.port),
  };
}

/** Every hostile client of the run, until `until`; their tallies by kind. */
async function attack(
  server: Server,
  bodies: HostileBodies,
  until: number,
  flags: Flags,
): Promise<Partial<Record<HostileKind, HostileResult>>> {
  const target = targetOf(server.url);
  const runs = HOSTILE_KINDS.map(async (kind) => {
    const clients = SOCKET_KINDS.includes(kind) ? flags.sockets : flags.hostile;
    const tallies: HostileTally[] = await Promise.all(
      Array.from(
        { length: clients },
        () => runHostileClient({ kind, target, bodies, until }),
      ),
    );
    const outcomes: Record<string, number> = {};
    for (const t of tallies) {
      for (const [k, n] of Object.entries(t.outcomes)) {
        outcomes[k] = (outcomes[k] ?? 0) + n;
      }
    }
    const closes = tallies.flatMap((t) => t.secondsToClose);
    const result: HostileResult = {
      clients,
      attempts: sum(tallies.map((t) => t.attempts)),
      outcomes,
      ...(closes.length ? { medianSecondsToClose: median(closes) } : {}),
    };
    return [kind, result] as const;
  });
  return Object.fromEntries(await Promise.all(runs));
}

/** Whether the server still answers `GET /health` (200 within 10 s). */
async function answersHealth(server: Server): Promise<boolean> {
  try {
    const res = await fetch(`${server.url}/health`, {
      signal: AbortSignal.timeout(10_000),
    });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** The normal load and the hostile clients for `--mixed` seconds, measured. */
async function underAttack(
  server: Server,
  scans: Uint8Array[],
  bodies: HostileBodies,
  concurrency: number,
  flags: Flags,
): Promise<MixedResult> {
  const pid = server.child.pid;
  const before = treeRssMb(pid);
  const cpu0 = cpuMs(pid);
  const sampler = sampleRss(pid);
  const t0 = performance.now();
  const hostile = attack(server, bodies, t0 + flags.mixed! * 1000, flags);
  const normal = await load(server, scans, concurrency, {
    seconds: flags.mixed,
  });
  const tallies = await hostile;
  const drainSeconds = (performance.now() - t0) / 1000 - flags.mixed!;
  const rss = sampler.stop();
  const r = summarise([normal], NaN);
  return {
    seconds: flags.mixed!,
    drainSeconds,
    normal: {
      clients: concurrency,
      requests: r.requests,
      rps: r.rps,
      p50: r.p50,
      p99: r.p99,
      errors: normal.errors,
      firstFailure: r.firstFailure?.slice(0, 300),
    },
    hostile: tallies,
    rssMb: { before, peak: rss.peakMb, last: rss.lastMb, samples: rss.samples },
    vmHwmMb: peakRssMb(pid),
    cpuSeconds: (cpuMs(pid) - cpu0) / 1000,
    healthyAfter: await answersHealth(server),
    load: normal.load,
  };
}

/** Counts by outcome as one short cell: `400×12 closed×3`. */
function outcomesText(outcomes: Record<string, number> | undefined): string {
  const entries = Object.entries(outcomes ?? {});
  return entries.length
    ? entries.sort().map(([k, n]) => `${k}×${n}`).join(" ")
    : "none";
}

/** A fresh server, warmed up, then the mixed run; stopped after it. */
async function mixedOnce(
  spec: ServerSpec,
  scans: Uint8Array[],
  bodies: HostileBodies,
  concurrency: number,
  flags: Flags,
): Promise<MixedResult> {
  const server = await startServer(spec);
  let result: MixedResult;
  try {
    await load(server, scans, concurrency, {
      requests: Math.max(flags.warmup, concurrency),
    });
    result = await underAttack(server, scans, bodies, concurrency, flags);
  } catch (error) {
    await stopServer(server);
    throw error;
  }
  result.exitCode = await stopServer(server);
  const n = result.normal;
  console.error(
    `  C=${concurrency} ${spec.label}: normal ${n.requests} ok ` +
      `(${fmt(n.rps)} req/s, p50 ${fmt(n.p50)} ms, p99 ${fmt(n.p99)} ms), ` +
      `errors ${outcomesText(n.errors)}; peak RSS ${
        fmt(result.rssMb.peak, 0)
      } MB; ` +
      `healthy after: ${result.healthyAfter}; exit ${result.exitCode}`,
  );
  return result;
}

/** The normal clients' side of the mixed runs: one row per C and server. */
function mixedNormalTable(results: MixedResults, flags: Flags): string {
  const rows: string[][] = [[
    ...["C", "server", "ok", "req/s", "p50 ms", "p99 ms", "errors"],
    ...["RSS before MB", "peak RSS MB", "CPU s", "healthy after", "exit"],
  ]];
  for (const c of flags.concurrency) {
    for (const [label, byC] of Object.entries(results)) {
      const r = byC[c];
      rows.push([
        ...[String(c), label, String(r.normal.requests), fmt(r.normal.rps)],
        ...[fmt(r.normal.p50), fmt(r.normal.p99)],
        outcomesText(r.normal.errors),
        ...[fmt(r.rssMb.before, 0), fmt(r.rssMb.peak, 0), fmt(r.cpuSeconds)],
        ...[r.healthyAfter ? "yes" : "NO", String(r.exitCode ?? "–")],
      ]);
    }
  }
  return table(rows);
}

/** The hostile clients' side: one row per kind, one column per run. */
function mixedHostileTable(results: MixedResults, flags: Flags): string {
  const runs = flags.concurrency.flatMap((c) =>
    Object.keys(results).map((label) => ({ c, label }))
  );
  const rows: string[][] = [[
    "hostile client",
    ...runs.map(({ c, label }) => `C=${c} ${label}`),
  ]];
  for (const kind of HOSTILE_KINDS) {
    rows.push([
      kind,
      ...runs.map(({ c, label }) => {
        const h = results[label][c].hostile[kind];
        const close = h?.medianSecondsToClose;
        return outcomesText(h?.outcomes) +
          (close !== undefined ? ` (closed after ${fmt(close)} s)` : "");
      }),
    ]);
  }
  return table(rows);
}

/** The hostile bodies, from the first scan that has a JPEG frame header. */
async function bodiesFrom(scans: Uint8Array[]): Promise<HostileBodies> {
  for (const scan of scans) {
    try {
      return await hostileBodies(scan);
    } catch { /* no frame header: try the next scan */ }
  }
  throw new Error("no scan with a JPEG frame header to forge");
}

/** Each concurrency in turn, each server in turn (the order flips with C). */
async function mixedBenchmark(
  specs: ServerSpec[],
  scans: Uint8Array[],
  flags: Flags,
): Promise<MixedResults> {
  const bodies = await bodiesFrom(scans);
  console.log(
    `mixed run: ${flags.mixed} s per server and concurrency; hostile: ` +
      `${flags.hostile} client(s) of each request kind, ${flags.sockets} ` +
      `slow-header and ${flags.sockets} idle connections; large PNG ` +
      `${(bodies.largePng.length / 1024).toFixed(0)} KB`,
  );
  const results: MixedResults = {};
  for (const s of specs) results[s.label] = {};
  for (const [k, c] of flags.concurrency.entries()) {
    const order = k % 2 ? [...specs].reverse() : specs;
    for (const spec of order) {
      results[spec.label][c] = await mixedOnce(spec, scans, bodies, c, flags);
    }
  }
  console.log("\nnormal requests under hostile load\n");
  console.log(mixedNormalTable(results, flags));
  console.log("\nhostile requests and connections, by outcome\n");
  console.log(mixedHostileTable(results, flags));
  return results;
}

// ---------------------------------------------------------------------------
// The benchmark

/** This checkout, and the other one when `--root` names it. */
async function checkoutsOf(flags: Flags): Promise<Checkout[]> {
  const ours = await describeCheckout(projectPaths().root, true);
  if (!flags.root) return [ours];
  const other = await describeCheckout(flags.root, false);
  console.log(
    `checkouts: ours at ${ours.commit ?? "?"}` +
      (ours.uncommitted.length
        ? ` (+${ours.uncommitted.length} changed in lib/)`
        : "") +
      `, ${other.name} at ${other.dir}`,
  );
  return [other, ours];
}

/** The benchmark: scans, servers, measurements, tables, JSON. */
async function benchmark(flags: Flags): Promise<void> {
  const { root, scans } = await chooseScans(flags);
  const checkouts = await checkoutsOf(flags);
  const python = flags.peer
    ? await ensurePeerEnv({ packages: [TF_WHEEL, "pillow", "numpy"] })
    : "";
  const kerasModel = flags.peer && flags.model &&
      basename(resolve(flags.model)) !== SAME_AS_PEER
    ? await kerasCopy(python, flags.model)
    : undefined;
  const specs = serverSpecs(flags, checkouts, { python, kerasModel });
  let results;
  try {
    results = flags.mixed
      ? await mixedBenchmark(specs, scans, flags)
      : await normalBenchmark(specs, scans, flags, checkouts);
  } finally {
    if (kerasModel) await Deno.remove(dirname(kerasModel), { recursive: true });
  }
  if (flags.json) {
    const json = {
      // The dataset by a name that says nothing about this machine.
      data: recordedPath(root),
      files: scans.length,
      ...(flags.mixed
        ? { mixed: mixedConditions(flags) }
        : { rounds: flags.rounds, duration: flags.duration }),
      checkouts: checkouts.map(({ name, commit, uncommitted }) => ({
        name,
        commit,
        uncommitted,
      })),
      results,
    };
    await writeTextAtomic(flags.json, JSON.stringify(json, null, 2) + "\n");
  }
}

/** The conditions of a mixed run, as its results record them. */
function mixedConditions(flags: Flags) {
  return {
    seconds: flags.mixed,
    hostileClientsPerKind: flags.hostile,
    slowHeaderConnections: flags.sockets,
    idleConnections: flags.sockets,
    pauseMs: HOSTILE_PAUSE_MS,
    trickleMs: TRICKLE_MS,
    largePngSide: sideUnderLimit(DEFAULTS.maxPixels),
    forgedSide: FORGED_SIDE,
  };
}

if (import.meta.main) {
  Deno.exit(
    await runCli(SERVE_BENCH_CLI, async ({ values }) => {
      const flags = checkFlags(values);
      try {
        await benchmark(flags);
        return 0;
      } catch (error) {
        console.error(`bench/serve.ts: ${(error as Error).message}`);
        return 1;
      }
    }),
  );
}
