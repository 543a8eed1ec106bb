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
 * Scans: `--data DIR`, else the project's data source (`BRAIN_MRI_DATA`,
 * `data/`, or the synthetic default, generated on first use). The Python side
 * installs itself into `.cache/bench-venv` from the project's pip index
 * (`tensorflow-cpu==2.21.0`, pillow, numpy; bench/peer_env.ts) when missing.
 *
 * @module
 */
import { readdir, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { writeTextAtomic } from "../lib/core/atomic.ts";
import { resolveDataSource } from "../lib/data/prepare.ts";
import { projectPaths } from "../lib/core/paths.ts";
import { ensurePeerEnv } from "./peer_env.ts";
import { evenlySpaced, loadAverage, UsageError } from "./bench_util.ts";

/** Our model for the comparison: the same architecture as the peer's. */
const SAME_AS_PEER = "seedcnn-128-r2";

const HERE = dirname(fileURLToPath(import.meta.url));
const TF_WHEEL = "tensorflow-cpu==2.21.0";

const USAGE = `usage: deno run -A bench/serve.ts [options]

  --data DIR         scans to post (default: the project's data source)
  --files N          distinct JPEG scans used, evenly spaced (default 64)
  --duration S       seconds per server and concurrency (default 10)
  --requests N       a fixed number of requests instead of a duration
  --concurrency L    comma-separated client counts (default 1,4,8)
  --warmup N         untimed requests before each measurement (default 20)
  --model DIR        our model (default: models/seedcnn-128-r2, the seed CNN
                     the peer also runs; test-time augmentation off on both)
  --workers L        our server's --workers settings, one server each
                     (default: ${navigator.hardwareConcurrency},0 — a worker per core, and none)
  --no-peer          only our server
  --json FILE        also write the results to FILE
  --help             this text`;

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

function positive(value: string | undefined, flag: string, fallback: number) {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    throw new UsageError(
      `--${flag} must be a positive number (got "${value}")`,
    );
  }
  return n;
}

function parseFlags(args: string[]): Flags | undefined {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: "string" },
      files: { type: "string" },
      duration: { type: "string" },
      requests: { type: "string" },
      concurrency: { type: "string" },
      warmup: { type: "string" },
      model: { type: "string" },
      workers: { type: "string" },
      "no-peer": { type: "boolean", default: false },
      json: { type: "string" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) return undefined;
  const concurrency = (values.concurrency ?? "1,4,8").split(",").map((s) =>
    Number(s.trim())
  );
  if (concurrency.some((c) => !Number.isInteger(c) || c < 1)) {
    throw new UsageError(
      `--concurrency must be positive integers (got "${values.concurrency}")`,
    );
  }
  const workers = (values.workers ?? `${navigator.hardwareConcurrency},0`)
    .split(",").map((s) => Number(s.trim()));
  if (
    workers.some((w) => !Number.isInteger(w) || w < 0) ||
    new Set(workers).size !== workers.length
  ) {
    throw new UsageError(
      `--workers must be distinct non-negative integers (got "${values.workers}")`,
    );
  }
  return {
    workers,
    data: values.data,
    files: Math.round(positive(values.files, "files", 64)),
    duration: positive(values.duration, "duration", 10),
    requests: values.requests === undefined
      ? undefined
      : Math.round(positive(values.requests, "requests", 1)),
    concurrency,
    warmup: Math.round(positive(values.warmup, "warmup", 20)),
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

async function main(): Promise<number> {
  let flags: Flags | undefined;
  try {
    flags = parseFlags(Deno.args);
  } catch (error) {
    console.error(`bench/serve.ts: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (!flags) {
    console.log(USAGE);
    return 0;
  }
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

  const python = flags.peer
    ? await ensurePeerEnv({ packages: [TF_WHEEL, "pillow", "numpy"] })
    : "";
  const servers: Server[] = [];
  try {
    const starting = [
      ...flags.workers.map((workers) =>
        startServer(
          ourLabel(workers),
          Deno.execPath(),
          [
            "run",
            "-A",
            join(projectPaths().root, "lib", "deploy", "serve.ts"),
            "--port",
            "0",
            "--model",
            flags.model ?? join(projectPaths().root, "models", SAME_AS_PEER),
            // The peer predicts each image once: so do we.
            "--tta",
            "none",
            "--workers",
            String(workers),
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
    for (const s of started) {
      if (s.status === "fulfilled") servers.push(s.value);
    }
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
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
        (flags.requests
          ? `${flags.requests} requests`
          : `${flags.duration} s`) +
        ` per server and concurrency, after ${flags.warmup} warm-up requests`,
    );
    const results: Record<string, Record<number, LoadResult>> = {};
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
    const rows: string[][] = [[
      "C",
      "server",
      "req/s",
      "p50 ms",
      "p90 ms",
      "p99 ms",
      "CPU ms/req",
      "peak RSS MB",
      "requests",
      "failed",
      "load",
    ]];
    for (const c of flags.concurrency) {
      for (const s of servers) {
        const r = results[s.label][c];
        rows.push([
          String(c),
          s.label,
          fmt(r.rps),
          fmt(r.p50),
          fmt(r.p90),
          fmt(r.p99),
          fmt(r.cpuMsPerRequest, 2),
          fmt(r.peakRssMb, 0),
          String(r.requests),
          String(r.failures),
          fmt(r.load, 2),
        ]);
      }
    }
    console.log("\n" + table(rows));
    if (results.keras) {
      console.log(
        "\nratios ours/keras (req/s: >1 is ours faster; latency and CPU: <1 is ours faster)",
      );
      const ratioRows: string[][] = [[
        "C",
        "req/s",
        "p50",
        "p99",
        "CPU/req",
      ]];
      ratioRows[0].splice(1, 0, "ours");
      for (const c of flags.concurrency) {
        for (const w of flags.workers) {
          const o = results[ourLabel(w)][c];
          const q = results.keras[c];
          ratioRows.push([
            String(c),
            ourLabel(w),
            fmt(o.rps / q.rps, 2),
            fmt(o.p50 / q.p50, 2),
            fmt(o.p99 / q.p99, 2),
            fmt(o.cpuMsPerRequest / q.cpuMsPerRequest, 2),
          ]);
        }
      }
      console.log(table(ratioRows));
    }
    if (flags.json) {
      await writeTextAtomic(
        flags.json,
        JSON.stringify({ data: root, files: scans.length, results }, null, 2),
      );
    }
  } finally {
    for (const s of servers) {
      const code = await stopServer(s);
      console.log(
        `${s.label}: stopped with exit code ${code} (${s.logLines} log lines)`,
      );
    }
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (error) {
    console.error(`bench/serve.ts: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
