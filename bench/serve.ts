/**
 * HTTP serving benchmark: `lib/deploy/serve.ts` (the project's server, serving the
 * shipped seed CNN `models/seedcnn-128-r2` with test-time augmentation off,
 * once per `--workers` setting: by default with one inference worker per
 * core, and with the model in the server's own thread)
 * against a Keras/TensorFlow 2.21 peer (`bench/serve_peer.py`: the same seed
 * CNN architecture, random weights, PIL preprocessing, the same HTTP API), on
 * loopback.
 *
 * Both servers run at once as child processes of this one (so background
 * load hits both alike); for each concurrency C (default 1, 4 and 8) each is
 * warmed up, then C concurrent keep-alive clients in this process POST real
 * JPEG scans (round robin over `--files` of them) for `--duration` seconds
 * (or `--requests` requests), the two servers taking turns (the order flips
 * with each C). Reported per C and server: requests/s, p50/p90/p99 latency,
 * the server's CPU time per request (from `/proc`, less sensitive to other
 * load), its peak resident memory, and the ratios.
 *
 * ```sh
 * deno run -A bench/serve.ts [--data DIR] [--files 64] [--duration 10] \
 *   [--requests N] [--concurrency 1,4,8] [--warmup 20] [--model DIR] \
 *   [--workers 2,0] [--no-peer] [--json FILE]
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
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeTextAtomic } from "../lib/core/atomic.ts";
import { resolveDataSource } from "../lib/data/prepare.ts";
import { projectPaths } from "../lib/core/paths.ts";
import { ensurePeerEnv } from "./peer_env.ts";
import { evenlySpaced, loadAverage, recordedPath } from "./bench_util.ts";
import { type FlagValues, runCli, UsageError } from "../lib/core/cli.ts";

/** Our model for the comparison: the same architecture as the peer's. */
const SAME_AS_PEER = "seedcnn-128-r2";

const HERE = dirname(fileURLToPath(import.meta.url));
const TF_WHEEL = "tensorflow-cpu==2.21.0";

/** The benchmark's command line: every flag with its type, default and help. */
export const SERVE_BENCH_CLI = {
  command: "deno run -A bench/serve.ts",
  summary:
    "HTTP serving speed: the project's server against a Keras/TensorFlow\n" +
    "peer with the same API, on loopback, at several client concurrencies.",
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
      help: "seconds per server and concurrency",
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
    warmup: {
      type: "integer",
      default: 20,
      help: "untimed requests before each measurement",
    },
    model: {
      type: "string",
      value: "DIR",
      defaultText: `models/${SAME_AS_PEER}:\nthe seed CNN the peer also runs`,
      help: "our model (test-time augmentation off, as\nthe peer's)",
    },
    workers: {
      type: "string",
      value: "LIST",
      defaultText: "<CPUs>,0: a worker per\ncore, and none",
      help: "our server's --workers settings, one server\neach",
    },
    "no-peer": { type: "boolean", help: "only our server" },
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
  warmup: number;
  model?: string;
  workers: number[];
  peer: boolean;
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
  return {
    workers,
    data: values.data,
    files: positive(values.files, "files"),
    duration: positive(values.duration, "duration"),
    requests: positive(values.requests, "requests"),
    concurrency,
    warmup: positive(values.warmup, "warmup"),
    model: values.model,
    peer: !values["no-peer"],
    json: values.json,
  };
}

// ---------------------------------------------------------------------------
// Scans

async function jpegFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    const names = (await readdir(dir)).filter((n) => !n.startsWith("."))
      .sort();
    for (const name of names) {
      const path = join(dir, name);
      const info = await stat(path);
      if (info.isDirectory()) await walk(path);
      else if (info.isFile() && info.size > 3) {
        const file = await Deno.open(path);
        const head = new Uint8Array(3);
        await file.read(head);
        file.close();
        if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) {
          out.push(path);
        }
      }
    }
  };
  await walk(root);
  return out;
}

// ---------------------------------------------------------------------------
// Servers

/** Our server's label for a `--workers` setting. */
function ourLabel(workers: number): string {
  return workers === 0 ? "ours/thread" : `ours/${workers}w`;
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

/** Starts a server and waits until it prints its URL; keeps draining stderr. */
async function startServer(
  label: string,
  command: string,
  args: string[],
  pattern: RegExp,
  env: Record<string, string> = {},
): Promise<Server> {
  const child = new Deno.Command(command, {
    args,
    cwd: projectPaths().root,
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const server: Server = {
    label,
    child,
    url: "",
    logLines: 0,
    startLines: [],
    drained: Promise.resolve(),
  };
  let ready!: (url: string) => void;
  let failed!: (error: Error) => void;
  const started = new Promise<string>((res, rej) => {
    ready = res;
    failed = rej;
  });
  server.drained = (async () => {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of child.stderr) {
      const parts = (rest + decoder.decode(chunk, { stream: true })).split(
        "\n",
      );
      rest = parts.pop()!;
      for (const line of parts) {
        server.logLines++;
        if (!server.url) {
          server.startLines.push(line);
          const m = line.match(pattern);
          if (m) {
            server.url = m[1].replace(/\/$/, "");
            ready(server.url);
          }
        }
      }
    }
    if (!server.url) {
      failed(
        new Error(
          `${label} exited before listening:\n${
            server.startLines.slice(-10).join("\n")
          }`,
        ),
      );
    }
  })();
  const timer = setTimeout(
    () => failed(new Error(`${label} did not start within 180 s`)),
    180_000,
  );
  try {
    await started;
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    throw error;
  } finally {
    clearTimeout(timer);
  }
  const health = await fetch(`${server.url}/health`);
  if (health.status !== 200) {
    throw new Error(`${label}: GET /health answered ${health.status}`);
  }
  await health.body?.cancel();
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
  const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Peak resident memory of a process so far, in MB (Linux `/proc`). */
function peakRssMb(pid: number): number {
  const text = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(text.match(/^VmHWM:\s+(\d+) kB/m)?.[1] ?? NaN) / 1024;
}

// ---------------------------------------------------------------------------
// Load

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
}

function percentile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  const rank = Math.ceil(q * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

async function load(
  server: Server,
  scans: Uint8Array[],
  concurrency: number,
  until: { seconds?: number; requests?: number },
): Promise<LoadResult> {
  const latencies: number[] = [];
  let failures = 0;
  let firstFailure: string | undefined;
  let next = 0;
  const loadBefore = loadAverage();
  const cpu0 = cpuMs(server.child.pid);
  const t0 = performance.now();
  const deadline = until.seconds === undefined
    ? Infinity
    : t0 + until.seconds * 1000;
  const client = async () => {
    while (true) {
      if (performance.now() >= deadline) return;
      const i = next++;
      if (until.requests !== undefined && i >= until.requests) return;
      const body = scans[i % scans.length];
      const start = performance.now();
      try {
        const res = await fetch(`${server.url}/predict`, {
          method: "POST",
          body: body as Uint8Array<ArrayBuffer>,
          headers: { "content-type": "image/jpeg" },
        });
        const answer = await res.json();
        if (res.status !== 200 || typeof answer.class !== "string") {
          failures++;
          firstFailure ??= `${res.status} ${JSON.stringify(answer)}`;
          continue;
        }
      } catch (error) {
        failures++;
        firstFailure ??= String(error);
        continue;
      }
      latencies.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuMs(server.child.pid) - cpu0;
  latencies.sort((a, b) => a - b);
  const n = latencies.length;
  return {
    requests: n,
    failures,
    seconds,
    rps: n / seconds,
    p50: percentile(latencies, 0.5),
    p90: percentile(latencies, 0.9),
    p99: percentile(latencies, 0.99),
    mean: latencies.reduce((a, b) => a + b, 0) / Math.max(1, n),
    cpuMsPerRequest: cpu / Math.max(1, n + failures),
    peakRssMb: peakRssMb(server.child.pid),
    load: loadBefore,
    firstFailure,
  };
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
  const kb = scans.reduce((s, b) => s + b.length, 0) / scans.length / 1024;
  console.log(
    `${scans.length} JPEG scans (of ${all.length}), mean ${fmt(kb)} KB`,
  );
  return { root, scans };
}

/** Ours (one per `--workers` setting) and the peer, started together. */
async function startServers(flags: Flags, python: string): Promise<Server[]> {
  const root = projectPaths().root;
  const starting = [
    ...flags.workers.map((workers) =>
      startServer(
        ourLabel(workers),
        Deno.execPath(),
        [
          ...["run", "-A", join(root, "lib", "deploy", "serve.ts")],
          ...["--port", "0"],
          "--model",
          flags.model ?? join(root, "models", SAME_AS_PEER),
          // The peer predicts each image once: so do we.
          ...["--tta", "none", "--workers", String(workers)],
        ],
        / on (http:\/\/[^ ]+\/)/,
      )
    ),
    ...(flags.peer
      ? [startServer(
        "keras",
        python,
        [join(HERE, "serve_peer.py"), "--port", "0", "--size", "128"],
        /listening on (http:\/\/\S+)/,
        { TF_CPP_MIN_LOG_LEVEL: "2" },
      )]
      : []),
  ];
  const started = await Promise.allSettled(starting);
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
    } (shared with other work: both servers run under the same load)\n` +
      (flags.requests ? `${flags.requests} requests` : `${flags.duration} s`) +
      ` per server and concurrency, after ${flags.warmup} warm-up requests`,
  );
}

type Results = Record<string, Record<number, LoadResult>>;

/** Each concurrency in turn: every server warmed up, then measured. */
async function measure(
  servers: Server[],
  scans: Uint8Array[],
  flags: Flags,
): Promise<Results> {
  const results: Results = {};
  for (const s of servers) results[s.label] = {};
  for (const [k, c] of flags.concurrency.entries()) {
    const order = k % 2 ? [...servers].reverse() : servers;
    for (const s of order) {
      await load(s, scans, c, { requests: Math.max(flags.warmup, c) });
      const r = await load(
        s,
        scans,
        c,
        flags.requests
          ? { requests: flags.requests }
          : { seconds: flags.duration },
      );
      results[s.label][c] = r;
      console.error(
        `  C=${c} ${s.label}: ${fmt(r.rps)} req/s, p50 ${fmt(r.p50)} ms, ` +
          `p99 ${fmt(r.p99)} ms, ${r.requests} ok, ${r.failures} failed` +
          (r.firstFailure ? ` (${r.firstFailure.slice(0, 200)})` : "") +
          `, load ${fmt(r.load, 2)}`,
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

/** Ours over Keras per concurrency and `--workers` setting. */
function ratioTable(results: Results, flags: Flags): string {
  const rows: string[][] = [["C", "ours", "req/s", "p50", "p99", "CPU/req"]];
  for (const c of flags.concurrency) {
    for (const w of flags.workers) {
      const o = results[ourLabel(w)][c];
      const q = results.keras[c];
      rows.push([
        String(c),
        ourLabel(w),
        fmt(o.rps / q.rps, 2),
        fmt(o.p50 / q.p50, 2),
        fmt(o.p99 / q.p99, 2),
        fmt(o.cpuMsPerRequest / q.cpuMsPerRequest, 2),
      ]);
    }
  }
  return table(rows);
}

/** The benchmark: scans, servers, measurements, tables, JSON. */
async function benchmark(flags: Flags): Promise<void> {
  const { root, scans } = await chooseScans(flags);
  const python = flags.peer
    ? await ensurePeerEnv({ packages: [TF_WHEEL, "pillow", "numpy"] })
    : "";
  const servers = await startServers(flags, python);
  try {
    describe(servers, flags);
    const results = await measure(servers, scans, flags);
    console.log("\n" + resultTable(results, servers, flags));
    if (results.keras) {
      console.log(
        "\nratios ours/keras (req/s: >1 is ours faster; latency and CPU: <1 is ours faster)",
      );
      console.log(ratioTable(results, flags));
    }
    if (flags.json) {
      // The dataset by a name that says nothing about this machine.
      const data = recordedPath(root);
      const json = { data, files: scans.length, results };
      await writeTextAtomic(flags.json, JSON.stringify(json, null, 2));
    }
  } finally {
    for (const s of servers) {
      const code = await stopServer(s);
      console.log(
        `${s.label}: stopped with exit code ${code} (${s.logLines} log lines)`,
      );
    }
  }
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
