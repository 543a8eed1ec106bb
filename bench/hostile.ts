/**
 * Hostile-input benchmark: every hostile or clumsy input of
 * `tests/hostile_cases.ts` against one checkout of the project (`--root`),
 * through its own commands started as child processes from that folder
 * (`deno task serve`, `predict`, `train`, `audit`, `data:download`), with the model
 * `models/seedcnn-128-r2`. Run it on a checkout from before the hardening
 * and on the current one to get the before → after table in
 * `docs/benchmarks.md`.
 *
 * ```sh
 * git worktree add ../before e552f1d   # + symlinks of node_modules and .tools
 * deno run -A bench/hostile.ts --root ../before --label before --json bench/results/hostile.json
 * deno run -A bench/hostile.ts --root . --label after --json bench/results/hostile.json
 * deno run -A bench/hostile.ts --table --json bench/results/hostile.json   # the table again
 * ```
 *
 * For each case it records the outcome (HTTP status, or exit code, and the
 * first line of the answer or error), the wall time, the peak resident
 * memory of the process doing the work (the server: sampled from `/proc`
 * every 50 ms during the case; a command: its high-water mark), and for
 * server cases whether `GET /health` answers 200 right after. One server
 * serves all server cases (it is restarted only if it died). `--json`
 * merges this run into the file under `--label`; with both a `before` and
 * an `after` there it prints the Markdown table of the two.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { runCli, UsageError } from "../lib/core/cli.ts";
import { writeTextAtomic } from "../lib/core/atomic.ts";
import { loadAverage } from "./bench_util.ts";
import {
  burst,
  rawRequest,
  type RawResponse,
  runTask,
  sampleMemory,
  type ServeProcess,
  startServe,
  type TaskRun,
} from "../tests/hostile_probe.ts";
import {
  type CheckpointTamper,
  CONTROL_NAME,
  forgeJpegSize,
  halfScanJpeg,
  type HostileModels,
  plantKilledWrites,
  tamperCheckpoint,
  truncatedJpeg,
  writeBadChecksumZip,
  writeFileWhereFolderZip,
  writeHostileDataset,
  writeHostileModels,
  writeLyingZipBomb,
  writePngBomb,
  writeTinyDataset,
  writeZipBomb,
  zeroCachePacks,
} from "../tests/hostile_cases.ts";
import { ellipseScanJpeg } from "../tests/fixtures.ts";

/** The model every case serves or loads (relative to the checkout). */
export const HOSTILE_MODEL = "models/seedcnn-128-r2";

/** What one case did on one checkout. */
export interface CaseResult {
  /** The case's name. */
  case: string;
  /** What the input is. */
  input: string;
  /** HTTP status (server cases), when the server answered. */
  status?: number;
  /** Exit code (command cases); `null` when it was killed at the time limit. */
  exit?: number | null;
  /** The first line of the answer or error, control characters escaped. */
  message: string;
  /** Wall time, ms. */
  ms: number;
  /** Peak resident memory of the process doing the work, MB. */
  peakRssMb: number;
  /** Server cases: its resident memory when the case began, MB. */
  startRssMb?: number;
  /** Server cases: whether `GET /health` answered 200 right after. */
  healthAfter?: boolean;
  /** Anything else seen (a stack trace, raw control characters, how the old code was driven). */
  notes?: string[];
}

/**
 * `text` with every control character but newline written as `\uXXXX`
 * (and newlines as `\n`), so it is safe in a terminal, a log or a table.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shownControl } from "./hostile.ts";
 * assert.equal(shownControl("a\x1b[31mb\nc\0"), "a\\u001b[31mb\\nc\\u0000");
 * ```
 */
export function shownControl(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f]/g,
    (c) =>
      c === "\n"
        ? "\\n"
        : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Whether `text` holds a control character a terminal acts on (anything
 * below 0x20 but tab and newline, or DEL): raw escapes, carriage returns,
 * NULs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hasRawControl } from "./hostile.ts";
 * assert.equal(hasRawControl("ok\tfine\n"), false);
 * assert.equal(hasRawControl("red \x1b[31m"), true);
 * assert.equal(hasRawControl("nul \0"), true);
 * ```
 */
export function hasRawControl(text: string): boolean {
  // deno-lint-ignore no-control-regex
  return /[\x00-\x08\x0b-\x1f\x7f]/.test(text);
}

/**
 * The first non-empty line of `text`, control characters escaped and cut
 * to `width` characters (default 120).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { firstLine } from "./hostile.ts";
 * assert.equal(firstLine("\n  error: bad \x1b[1mthing\nmore"), "error: bad \\u001b[1mthing");
 * assert.equal(firstLine("abcdef", 4), "abc…");
 * assert.equal(firstLine(""), "");
 * ```
 */
export function firstLine(text: string, width = 120): string {
  const line = text.split("\n").map((l) => l.trim()).find((l) => l) ?? "";
  const shown = shownControl(line);
  return shown.length > width ? `${shown.slice(0, width - 1)}…` : shown;
}

/**
 * What a server's answer says in one line: the `error` of a JSON error,
 * `class confidence` of a prediction, `status` of a health answer, else the
 * body's first line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { answerLine } from "./hostile.ts";
 * assert.equal(answerLine('{"class":"glioma","confidence":0.8421}'), "glioma 0.842");
 * assert.equal(answerLine('{"error":"image too large"}'), "image too large");
 * assert.equal(answerLine("Internal Server Error"), "Internal Server Error");
 * ```
 */
export function answerLine(body: string): string {
  try {
    const json = JSON.parse(body);
    if (typeof json?.error === "string") return firstLine(json.error);
    if (typeof json?.class === "string") {
      return `${firstLine(json.class)} ${Number(json.confidence).toFixed(3)}`;
    }
    if (typeof json?.status === "string") {
      return `status ${firstLine(json.status)}`;
    }
  } catch { /* not JSON */ }
  return firstLine(body);
}

/** The generated inputs, in one temporary folder. */
interface Inputs {
  dir: string;
  /** A normal 256-pixel scan. */
  scan: Uint8Array;
  /** Its frame header forged to claim 65500 × 65500. */
  forged: Uint8Array;
  /** Half its scan, then an end-of-image marker. */
  halfScan: Uint8Array;
  /** Its first 60%. */
  truncated: Uint8Array;
  /** PNG files by name: `png-30000`, `png-16000`, `png-7000` (square, black). */
  png: Record<string, string>;
  /** Zip files: `bomb` (one 1 GiB entry), `badChecksum`, `fileWhereFolder`. */
  zip: {
    bomb: string;
    lyingBomb: string;
    badChecksum: string;
    fileWhereFolder: string;
  };
  /** Hostile copies of the model. */
  models: HostileModels;
  /** A folder holding one scan whose name has control characters. */
  controlDir: string;
  /** A dataset with an empty class folder and a truncated scan. */
  dataset: string;
  /** A tiny well-formed dataset to train a checkpoint on. */
  tiny: string;
  /** The forged JPEG and the normal scan as files. */
  files: { scan: string; forged: string };
}

/** Generates every input into a new temporary folder (a few seconds). */
async function makeInputs(root: string): Promise<Inputs> {
  const dir = await Deno.makeTempDir({ prefix: "hostile-" });
  const scan = await ellipseScanJpeg(42, 256);
  const forged = forgeJpegSize(scan, { width: 65500, height: 65500 });
  const png: Record<string, string> = {};
  for (const side of [30000, 16000, 7000]) {
    png[`png-${side}`] = join(dir, `black-${side}.png`);
    await writePngBomb({ path: png[`png-${side}`], width: side, height: side });
  }
  const zip = {
    bomb: join(dir, "bomb.zip"),
    lyingBomb: join(dir, "lying-bomb.zip"),
    badChecksum: join(dir, "bad-checksum.zip"),
    fileWhereFolder: join(dir, "file-where-folder.zip"),
  };
  await writeZipBomb({ path: zip.bomb, entryBytes: 1 << 30 });
  await writeLyingZipBomb({ path: zip.lyingBomb, entryBytes: 1 << 30 });
  await writeBadChecksumZip(zip.badChecksum);
  await writeFileWhereFolderZip(zip.fileWhereFolder);
  const models = await writeHostileModels(
    join(dir, "models"),
    join(root, HOSTILE_MODEL),
  );
  const controlDir = join(dir, "control-names");
  await Deno.mkdir(controlDir);
  await Deno.writeFile(join(controlDir, CONTROL_NAME), scan);
  const dataset = join(dir, "dataset");
  await writeHostileDataset(dataset);
  const tiny = join(dir, "tiny");
  await writeTinyDataset(tiny);
  const files = {
    scan: join(dir, "scan.jpg"),
    forged: join(dir, "forged.jpg"),
  };
  await Deno.writeFile(files.scan, scan);
  await Deno.writeFile(files.forged, forged);
  return {
    dir,
    scan,
    forged,
    halfScan: halfScanJpeg(scan),
    truncated: truncatedJpeg(scan),
    png,
    zip,
    models,
    controlDir,
    dataset,
    tiny,
    files,
  };
}

/** One run's state: the checkout, the inputs and the shared server. */
interface Context {
  root: string;
  inputs: Inputs;
  server?: ServeProcess;
  /** How long a held connection is watched before giving up, ms. */
  holdMs: number;
}

/** The shared server, started (again) when there is none or it died. */
async function ensureServer(
  ctx: Context,
): Promise<{ server: ServeProcess; restarted: boolean }> {
  const alive = ctx.server && existsSync(`/proc/${ctx.server.pid}/status`);
  if (ctx.server && alive) return { server: ctx.server, restarted: false };
  const restarted = ctx.server !== undefined;
  if (ctx.server) await ctx.server.stop();
  ctx.server = await startServe({
    root: ctx.root,
    model: ctx.inputs.models.good,
  });
  return { server: ctx.server, restarted };
}

/** Whether `GET /health` answers 200 within 5 s. */
async function healthy(server: ServeProcess): Promise<boolean> {
  try {
    const res = await fetch(`${server.url}health`, {
      signal: AbortSignal.timeout(5000),
    });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** What a server case's action reports. */
interface Answer {
  status?: number;
  message: string;
  notes?: string[];
}

/** POSTs `body` to `/predict`; the status and the answer's line. */
async function post(
  server: ServeProcess,
  body: Uint8Array,
  contentType = "image/jpeg",
): Promise<Answer> {
  const res = await fetch(`${server.url}predict`, {
    method: "POST",
    headers: { "content-type": contentType },
    body: body.slice(),
    signal: AbortSignal.timeout(120_000),
  });
  return { status: res.status, message: answerLine(await res.text()) };
}

/** Notes about what a server wrote to its log during a case. */
function logNotes(log: string): string[] {
  const notes: string[] = [];
  if (/^\s+at .*[:(]/m.test(log)) notes.push("stack trace in the server log");
  if (hasRawControl(log)) {
    notes.push("raw control characters in the server log");
  }
  return notes;
}

/** Runs one server case against the shared server, measuring it. */
async function serverCase(
  ctx: Context,
  meta: { case: string; input: string },
  act: (server: ServeProcess) => Promise<Answer>,
): Promise<CaseResult> {
  const { server, restarted } = await ensureServer(ctx);
  const logStart = server.log().length;
  const stop = sampleMemory(server.pid);
  const started = performance.now();
  let answer: Answer;
  try {
    answer = await act(server);
  } catch (error) {
    answer = { message: `no answer: ${firstLine((error as Error).message)}` };
  }
  const ms = performance.now() - started;
  const memory = stop();
  const healthAfter = await healthy(server);
  const notes = [
    ...restarted ? ["server had died; restarted for this case"] : [],
    ...answer.notes ?? [],
    ...logNotes(server.log().slice(logStart)),
  ];
  return {
    ...meta,
    status: answer.status,
    message: answer.message,
    ms,
    peakRssMb: memory.peakMb,
    startRssMb: memory.startMb,
    healthAfter,
    ...notes.length ? { notes } : {},
  };
}

/** A raw request's answer as a case reports it. */
function rawAnswer(res: RawResponse, limitMs: number): Answer {
  if (res.status !== undefined) {
    return { status: res.status, message: answerLine(res.body) };
  }
  return {
    message: res.closed
      ? `closed after ${(res.ms / 1000).toFixed(1)} s without an answer`
      : `still open after ${(limitMs / 1000).toFixed(0)} s (the watch's limit)`,
  };
}

/** A multipart body whose file part's headers hold a NUL and an ANSI escape. */
function multipartWithNul(
  scan: Uint8Array,
): { body: Uint8Array; type: string } {
  const boundary = "hostile-boundary";
  const head = `--${boundary}\r\n` +
    `Content-Disposition: form-data; name="file"; filename="scan\0\x1b[2J.jpg"\r\n` +
    `Content-Type: image/jpeg\0\x1b[31m\r\n\r\n`;
  const tail = `\r\n--${boundary}--\r\n`;
  const enc = new TextEncoder();
  const body = new Uint8Array([
    ...enc.encode(head),
    ...scan,
    ...enc.encode(tail),
  ]);
  return { body, type: `multipart/form-data; boundary=${boundary}` };
}

/** A raw request to the server (`Connection: close`), as an answer. */
async function raw(server: ServeProcess, request: string): Promise<Answer> {
  const res = await rawRequest({
    hostname: server.hostname,
    port: server.port,
    send: request,
  });
  return rawAnswer(res, 10_000);
}

/** Server cases that send one request each. */
function requestCases(
  ctx: Context,
): [string, string, (s: ServeProcess) => Promise<Answer>][] {
  const { inputs } = ctx;
  const png = (name: string) => (s: ServeProcess) =>
    Deno.readFile(inputs.png[name]).then((b) => post(s, b, "image/png"));
  return [
    ["normal-scan", "a normal 256 px JPEG scan", (s) => post(s, inputs.scan)],
    [
      "host-bracket",
      "GET /health with `Host: [`",
      (s) =>
        raw(s, "GET /health HTTP/1.1\r\nHost: [\r\nConnection: close\r\n\r\n"),
    ],
    [
      "host-path",
      "GET /health with `Host: a/predict`",
      (s) =>
        raw(
          s,
          "GET /health HTTP/1.1\r\nHost: a/predict\r\nConnection: close\r\n\r\n",
        ),
    ],
    [
      "multipart-nul",
      "multipart part headers with a NUL and an ANSI escape",
      (s) => {
        const { body, type } = multipartWithNul(inputs.scan);
        return post(s, body, type);
      },
    ],
    [
      "jpeg-half-scan",
      "half a JPEG scan + end-of-image marker",
      (s) => post(s, inputs.halfScan),
    ],
    [
      "jpeg-truncated",
      "a JPEG cut at 60%, no end marker",
      (s) => post(s, inputs.truncated),
    ],
    [
      "jpeg-forged-header",
      `${
        (inputs.forged.length / 1024).toFixed(0)
      } KB JPEG whose header claims 65500×65500`,
      (s) => post(s, inputs.forged),
    ],
    ["png-30000", "PNG bomb: 30000×30000 black (900 MP)", png("png-30000")],
    ["png-16000", "PNG bomb: 16000×16000 black (256 MP)", png("png-16000")],
    [
      "png-7000",
      "PNG 7000×7000 black (49 MP, under the limit)",
      png("png-7000"),
    ],
  ];
}

/**
 * A burst of `count` heavy requests (`heavy`: the forged-header JPEG or
 * the 49-megapixel PNG) with a normal scan and a health check 300 ms in:
 * the burst's statuses and how long the normal ones waited.
 */
async function burstCase(
  ctx: Context,
  server: ServeProcess,
  heavy: "forged" | "png-7000",
  count: number,
): Promise<Answer> {
  const seen = await burst({
    url: server.url,
    heavy: heavy === "forged"
      ? ctx.inputs.forged
      : await Deno.readFile(ctx.inputs.png["png-7000"]),
    type: heavy === "forged" ? "image/jpeg" : "image/png",
    count,
    normal: ctx.inputs.scan,
  });
  const counts = new Map<string, number>();
  for (const { status } of seen.heavy) {
    const key = String(status ?? "none");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const heavyText = [...counts].map(([s, n]) => `${n}×${s}`).join(" ");
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  return {
    status: seen.normal.status,
    message: `burst ${heavyText}; normal scan ${seen.normal.status} in ` +
      `${secs(seen.normal.ms)}; /health ${seen.health.status} in ${
        secs(seen.health.ms)
      }`,
  };
}

/** Server cases that hold a connection: slow headers, silence, a slow body. */
function holdCases(
  ctx: Context,
): [string, string, (s: ServeProcess) => Promise<Answer>][] {
  const hold =
    (send: string, drip?: string, dripMs?: number) => async (s: ServeProcess) =>
      rawAnswer(
        await rawRequest({
          hostname: s.hostname,
          port: s.port,
          send,
          drip,
          dripMs,
          timeoutMs: ctx.holdMs,
        }),
        ctx.holdMs,
      );
  return [
    [
      "slow-headers",
      "request headers trickled one byte a second",
      hold(
        "GET /health HTTP/1.1\r\nHost: x\r\n",
        "X-Slow: " + "a".repeat(200),
        1000,
      ),
    ],
    ["idle-connection", "a connection that sends nothing", hold("")],
    [
      "slow-body",
      "POST /predict body of 100 kB trickled one byte every 2 s",
      hold(
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n" +
          "Content-Length: 100000\r\n\r\n",
        "x".repeat(200),
        2000,
      ),
    ],
  ];
}

/** Every server case, in order, against the shared server. */
async function serverCases(
  ctx: Context,
  only: (name: string) => boolean,
): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  const cases = [
    ...requestCases(ctx),
    [
      "burst",
      "6 forged-header JPEGs at once, then a normal scan and /health",
      (s: ServeProcess) => burstCase(ctx, s, "forged", 6),
    ] as const,
    [
      "burst-49mp",
      "40 PNGs of 49 MP at once, then a normal scan and /health",
      (s: ServeProcess) => burstCase(ctx, s, "png-7000", 40),
    ] as const,
    ...holdCases(ctx),
  ];
  for (const [name, input, act] of cases) {
    if (!only(name)) continue;
    const result = await serverCase(ctx, { case: name, input }, act);
    console.error(summary(result));
    results.push(result);
  }
  return results;
}

/** One result as a progress line. */
function summary(r: CaseResult): string {
  const outcome = r.status ?? (r.exit === undefined ? "" : `exit ${r.exit}`);
  return `${r.case}: ${outcome} ${r.message} (${(r.ms / 1000).toFixed(2)} s, ` +
    `${r.peakRssMb.toFixed(0)} MB${
      r.healthAfter === false ? ", /health FAILED after" : ""
    })` +
    (r.notes ? ` [${r.notes.join("; ")}]` : "");
}

/**
 * `text` without TensorFlow's own start-up log lines (absl's `WARNING: All
 * log messages before absl::InitializeLog()` and `I0000 00:00:…` lines),
 * which come before anything the command says.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { withoutTfLog } from "./hostile.ts";
 * const text = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n" +
 *   "I0000 00:00:1796320696.323888   18521 port.cc:153] oneDNN custom operations are on.\n" +
 *   "error: bad model";
 * assert.equal(withoutTfLog(text), "error: bad model");
 * ```
 */
export function withoutTfLog(text: string): string {
  return text.split("\n").filter((line) =>
    !line.startsWith(
      "WARNING: All log messages before absl::InitializeLog()",
    ) &&
    !/^[IWEF]\d{4} \d\d:\d\d:\d\d/.test(line)
  ).join("\n");
}

/** A command case's result from its run. */
function taskResult(
  meta: { case: string; input: string },
  run: TaskRun,
  notes: string[] = [],
): CaseResult {
  const stderr = withoutTfLog(run.stderr);
  const output = run.stdout + stderr;
  const seen = [...notes];
  if (/^\s+at .*[:(]/m.test(run.stderr)) seen.push("stack trace on stderr");
  if (hasRawControl(output)) seen.push("raw control characters in the output");
  return {
    ...meta,
    exit: run.code ?? null,
    message: firstLine(
      run.code === 0 ? run.stdout || stderr : stderr || run.stdout,
    ),
    ms: run.ms,
    peakRssMb: run.peakRssMb,
    ...seen.length ? { notes: seen } : {},
  };
}

/** Total bytes of the files under `dir` (0 when it does not exist). */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  try {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) total += await treeBytes(path);
      else if (entry.isFile) total += (await Deno.lstat(path)).size;
    }
  } catch { /* not there */ }
  return total;
}

/** What each zip case's input is. */
const UNPACK_INPUTS: Record<string, string> = {
  bomb: "1.1 MB zip holding one 1 GiB entry of zeros",
  "lying-bomb": "the same, its headers claiming the entry is 1 MiB",
  "bad-checksum": "zip whose image data has one byte flipped (CRC mismatch)",
  "file-where-folder":
    "zip with a file `Training` and entries under `Training/`",
};

/** Runs `deno task data:download` on a zip the nearest way the checkout allows. */
async function unpack(
  ctx: Context,
  zip: string,
  name: string,
): Promise<CaseResult> {
  const help = await runTask({
    root: ctx.root,
    task: "data:download",
    args: ["--help"],
  });
  const dest = join(ctx.inputs.dir, `unpacked-${name}`);
  const input = UNPACK_INPUTS[name];
  let run: TaskRun;
  const notes: string[] = [];
  if (help.stdout.includes("--zip")) {
    run = await runTask({
      root: ctx.root,
      task: "data:download",
      args: ["--zip", zip, "--dest", dest],
    });
  } else {
    // No --zip: place it where an earlier download keeps its verified zip.
    await Deno.mkdir(join(dest, ".download"), { recursive: true });
    await Deno.copyFile(
      zip,
      join(dest, ".download", "brain-tumor-mri-dataset.zip"),
    );
    run = await runTask({
      root: ctx.root,
      task: "data:download",
      args: ["--dest", dest],
    });
    notes.push("no --zip flag: run as an earlier download's kept zip");
  }
  const left = (await treeBytes(dest)) -
    (await treeBytes(join(dest, ".download")));
  if (left > 0) notes.push(`${(left / 2 ** 20).toFixed(0)} MB left unpacked`);
  await Deno.remove(dest, { recursive: true }).catch(() => {});
  return taskResult({ case: `unpack-${name}`, input }, run, notes);
}

/** `deno task serve` on a port another process holds. */
async function portInUse(ctx: Context): Promise<CaseResult> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  try {
    const run = await runTask({
      root: ctx.root,
      task: "serve",
      args: ["--model", ctx.inputs.models.good, "--port", String(port)],
      timeoutMs: 60_000,
    });
    const named = run.stderr.includes(String(port))
      ? "names the port"
      : "does not name the port";
    return taskResult(
      { case: "serve-port-in-use", input: "serve on a port already taken" },
      run,
      [
        named,
      ],
    );
  } finally {
    listener.close();
  }
}

/**
 * `deno task train --resume` from a checkpoint spoiled by `how`, after one
 * epoch of a tiny run (32 px) made it.
 */
async function resume(
  ctx: Context,
  how: CheckpointTamper,
): Promise<CaseResult> {
  const runDir = join(ctx.inputs.dir, `run-${how}`);
  const args = ["--data", ctx.inputs.tiny, "--size", "32", "--out", runDir];
  // The image cache goes to the temporary folder, not the checkout's.
  const env = { BRAIN_MRI_CACHE: join(ctx.inputs.dir, "cache") };
  const first = await runTask({
    root: ctx.root,
    task: "train",
    args: [...args, "--epochs", "1"],
    env,
  });
  if (first.code !== 0) {
    throw new Error(`training the checkpoint failed:\n${first.stderr}`);
  }
  await tamperCheckpoint(runDir, how);
  const run = await runTask({
    root: ctx.root,
    task: "train",
    args: [...args, "--epochs", "2", "--resume"],
    timeoutMs: 60_000,
    env,
  });
  const input = how === "dev-zero"
    ? "train --resume, checkpoint model.bin → /dev/zero"
    : "train --resume, checkpoint model.bin cut to 1000 bytes";
  return taskResult({ case: `resume-checkpoint-${how}`, input }, run);
}

/**
 * `deno task train` on the tiny dataset twice with one image cache, every
 * cache pack zeroed in place between the two: what the second run says
 * about the cache.
 */
async function zeroedCache(ctx: Context): Promise<CaseResult> {
  const env = { BRAIN_MRI_CACHE: join(ctx.inputs.dir, "cache-zeroed") };
  const train = (n: number) =>
    runTask({
      root: ctx.root,
      task: "train",
      args: ["--data", ctx.inputs.tiny, "--size", "32", "--epochs", "1"]
        .concat(["--out", join(ctx.inputs.dir, `cache-run-${n}`)]),
      env,
      timeoutMs: 60_000,
    });
  const first = await train(1);
  if (first.code !== 0) {
    throw new Error(`the first training failed:\n${first.stderr}`);
  }
  const packs = await zeroCachePacks(env.BRAIN_MRI_CACHE);
  const temps = await plantKilledWrites(env.BRAIN_MRI_CACHE);
  const run = await train(2);
  const left = temps.filter((temp) => existsSync(temp)).length;
  const result = taskResult(
    {
      case: "cache-pack-zeroed",
      input: "train again after its image-cache pack was zeroed in place, " +
        "beside the temp file of a killed write",
    },
    run,
    [
      `${packs} pack zeroed`,
      `${left} of ${temps.length} killed-write temp files left`,
    ],
  );
  const said = withoutTfLog(run.stderr + "\n" + run.stdout).split("\n")
    .filter((line) => /^image cache:|from cache\)/.test(line)).map((line) =>
      firstLine(line)
    );
  return { ...result, message: said.join(" / ") || result.message };
}

/** `deno task predict` cases: hostile images, names and models. */
function predictCases(
  ctx: Context,
): [string, string, string[], (r: TaskRun) => string[]][] {
  const { inputs } = ctx;
  const none = () => [];
  const forgedLine = (r: TaskRun) =>
    r.stdout.split("\n").some((l) => l.startsWith("glioma 1.000"))
      ? ["a forged line in the table"]
      : [];
  return [
    ["predict-forged-header", "forged 65500×65500 JPEG header", [
      "--model",
      inputs.models.good,
      inputs.files.forged,
    ], none],
    ["predict-control-name", "a scan whose file name holds \\n, \\r and ESC", [
      "--model",
      inputs.models.good,
      inputs.controlDir,
    ], forgedLine],
    ["model-weights-dev-zero", "model whose weights.bin → /dev/zero", [
      "--model",
      inputs.models.devZero,
      inputs.files.scan,
    ], none],
    [
      "model-linked-folder",
      "model whose model/ is a symlink to a folder outside it",
      [
        "--model",
        inputs.models.linkedFolder,
        inputs.files.scan,
      ],
      none,
    ],
    [
      "model-class-escapes",
      "model whose class names hold ANSI escapes and a newline",
      [
        "--model",
        inputs.models.escapes,
        inputs.files.scan,
      ],
      none,
    ],
  ];
}

/** Every command case, in order. */
async function commandCases(
  ctx: Context,
  only: (name: string) => boolean,
): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  const record = (r: CaseResult) => {
    console.error(summary(r));
    results.push(r);
  };
  for (const [name, input, args, notes] of predictCases(ctx)) {
    if (!only(name)) continue;
    const run = await runTask({
      root: ctx.root,
      task: "predict",
      args,
      timeoutMs: 90_000,
    });
    record(taskResult({ case: name, input }, run, notes(run)));
  }
  if (only("audit-hostile-dataset")) {
    const run = await runTask({
      root: ctx.root,
      task: "audit",
      args: ["--data", ctx.inputs.dataset],
    });
    const output = run.stdout + run.stderr;
    const notes = [
      /unknown error/i.test(output) ? 'says "Unknown error"' : "",
      run.code === 0
        ? `${
          /cut\.jpg/.test(output) ? "names" : "does not name"
        } the truncated cut.jpg`
        : "",
    ].filter((n) => n);
    record(taskResult(
      {
        case: "audit-hostile-dataset",
        input: "dataset with an empty class folder and a truncated JPEG",
      },
      run,
      notes,
    ));
  }
  if (only("serve-port-in-use")) record(await portInUse(ctx));
  if (only("cache-pack-zeroed")) record(await zeroedCache(ctx));
  for (const how of ["dev-zero", "truncated"] as const) {
    if (only(`resume-checkpoint-${how}`)) record(await resume(ctx, how));
  }
  const zips = ctx.inputs.zip;
  const unpackCases = [
    ["bomb", zips.bomb],
    ["lying-bomb", zips.lyingBomb],
    ["bad-checksum", zips.badChecksum],
    ["file-where-folder", zips.fileWhereFolder],
  ];
  for (const [name, zip] of unpackCases) {
    if (only(`unpack-${name}`)) record(await unpack(ctx, zip, name));
  }
  return results;
}

/** One checkout's run as the results file records it. */
export interface HostileRun {
  /** The checkout's commit (short hash). */
  commit: string;
  /** When it was measured (ISO date). */
  measured: string;
  /** The one-minute load average when it started. */
  load: number;
  /** Every case's result. */
  cases: CaseResult[];
}

/**
 * One result as a table cell: outcome, first line (cut to 70 characters),
 * time, peak memory, a cross when `/health` failed after it, and its notes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resultCell } from "./hostile.ts";
 * assert.equal(
 *   resultCell({ case: "x", input: "", status: 400, message: "bad", ms: 1234, peakRssMb: 310.4, healthAfter: true }),
 *   "**400** bad · 1.2 s · 310 MB",
 * );
 * assert.equal(
 *   resultCell({ case: "x", input: "", exit: null, message: "", ms: 60000, peakRssMb: 2048, healthAfter: false, notes: ["stack trace on stderr"] }),
 *   "**killed** · 60.0 s · 2048 MB · /health ✗ · _stack trace on stderr_",
 * );
 * ```
 */
export function resultCell(r: CaseResult): string {
  const outcome = r.status !== undefined
    ? String(r.status)
    : r.exit === null
    ? "killed"
    : r.exit !== undefined
    ? `exit ${r.exit}`
    : "no status";
  const message = r.message.length > 70
    ? `${r.message.slice(0, 69)}…`
    : r.message;
  const text = [
    `**${outcome}**${message ? ` ${message}` : ""}`,
    `${(r.ms / 1000).toFixed(1)} s`,
    `${r.peakRssMb.toFixed(0)} MB`,
    ...r.healthAfter === false ? ["/health ✗"] : [],
    ...(r.notes ?? []).map((note) => `_${note}_`),
  ].join(" · ");
  return text.replaceAll("|", "\\|");
}

/**
 * The Markdown table case → before → after of two runs (cases in the
 * order of `after`, then any only `before` has).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { beforeAfterTable } from "./hostile.ts";
 * const r = (status: number) => ({ case: "c", input: "in", status, message: "", ms: 500, peakRssMb: 100 });
 * const run = (status: number) => ({ commit: "abc", measured: "", load: 0, cases: [r(status)] });
 * const table = beforeAfterTable(run(200), run(400));
 * assert.match(table, /^\| Case \| Input \| Before \(abc\) \| After \(abc\) \|/);
 * assert.match(table, /\| c \| in \| \*\*200\*\* · 0\.5 s · 100 MB \| \*\*400\*\* · 0\.5 s · 100 MB \|$/);
 * ```
 */
export function beforeAfterTable(
  before: HostileRun,
  after: HostileRun,
): string {
  const names = [
    ...new Set([...after.cases, ...before.cases].map((c) => c.case)),
  ];
  const find = (run: HostileRun, name: string) =>
    run.cases.find((c) => c.case === name);
  const rows = names.map((name) => {
    const [b, a] = [find(before, name), find(after, name)];
    const input = (a ?? b)!.input.replaceAll("|", "\\|");
    const cell = (r?: CaseResult) => r ? resultCell(r) : "not run";
    return `| ${name} | ${input} | ${cell(b)} | ${cell(a)} |`;
  });
  return [
    `| Case | Input | Before (${before.commit}) | After (${after.commit}) |`,
    "| --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}

/**
 * A result with the machine's folders in its message and notes replaced by
 * names (`{ "/tmp/hostile-x": "$TMP" }`), so the results file says nothing
 * about the machine it was measured on.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { withoutPaths } from "./hostile.ts";
 * const r = { case: "c", input: "i", message: "/tmp/h1/scan.jpg: bad", ms: 1, peakRssMb: 1, notes: ["in /tmp/h1"] };
 * const clean = withoutPaths(r, { "/tmp/h1": "$TMP" });
 * assert.equal(clean.message, "$TMP/scan.jpg: bad");
 * assert.deepEqual(clean.notes, ["in $TMP"]);
 * ```
 */
export function withoutPaths(
  r: CaseResult,
  names: Record<string, string>,
): CaseResult {
  const scrub = (text: string) =>
    Object.entries(names).reduce(
      (t, [path, name]) => t.replaceAll(path, name),
      text,
    );
  return {
    ...r,
    message: scrub(r.message),
    ...r.notes ? { notes: r.notes.map(scrub) } : {},
  };
}

/** The benchmark's command line. */
export const HOSTILE_BENCH_CLI = {
  command: "deno run -A bench/hostile.ts",
  summary:
    "Hostile and clumsy inputs against one checkout's serve, predict,\n" +
    "train, audit and data:download: outcome, time and peak memory per case.",
  flags: {
    root: {
      type: "string",
      value: "DIR",
      default: ".",
      help: "the checkout to run",
    },
    label: {
      type: "string",
      value: "NAME",
      default: "after",
      help: "this run's name in the --json file (before, after)",
    },
    json: {
      type: "string",
      value: "FILE",
      help: "merge the results into this file",
    },
    only: {
      type: "string",
      value: "CASE,...",
      help: "run only these cases (names as printed)",
    },
    table: {
      type: "boolean",
      help: "run nothing: print the before → after table of the --json file",
    },
    hold: {
      type: "integer",
      value: "S",
      default: 45,
      help: "seconds a held connection is watched",
    },
  },
} as const;

/** The checkout's short commit hash. */
async function commitOf(root: string): Promise<string> {
  const out = await new Deno.Command("git", {
    args: ["-C", root, "rev-parse", "--short", "HEAD"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const hash = new TextDecoder().decode(out.stdout).trim();
  return hash || "unknown";
}

/**
 * Merges `run` into the results file under `label` (with `partial`, only
 * its cases replace those of the same name already there); returns the
 * file's runs.
 */
async function saveRun(
  path: string,
  label: string,
  run: HostileRun,
  partial: boolean,
): Promise<Record<string, HostileRun>> {
  const file = existsSync(path)
    ? JSON.parse(await Deno.readTextFile(path))
    : {};
  const old: HostileRun | undefined = file.runs?.[label];
  if (partial && old) {
    const fresh = new Map(run.cases.map((c) => [c.case, c]));
    const kept = old.cases.map((c) => fresh.get(c.case) ?? c);
    const added = run.cases.filter((c) =>
      !old.cases.some((o) => o.case === c.case)
    );
    run = { ...run, cases: [...kept, ...added] };
  }
  const runs: Record<string, HostileRun> = { ...file.runs, [label]: run };
  const json = {
    model: HOSTILE_MODEL,
    command:
      "deno run -A bench/hostile.ts --root DIR --label LABEL --json FILE",
    runs,
  };
  await writeTextAtomic(path, JSON.stringify(json, null, 2) + "\n");
  return runs;
}

/** Runs every case on one checkout. */
async function benchmark(values: {
  root: string;
  label: string;
  json?: string;
  only?: string;
  hold: number;
}): Promise<void> {
  const root = resolve(values.root);
  if (!existsSync(join(root, "deno.json"))) {
    throw new UsageError(
      `--root ${values.root}: no deno.json there (not a checkout)`,
    );
  }
  const wanted = values.only?.split(",").map((s) => s.trim());
  const only = (name: string) => !wanted || wanted.includes(name);
  const load = loadAverage();
  const inputs = await makeInputs(root);
  const ctx: Context = { root, inputs, holdMs: values.hold * 1000 };
  const cases: CaseResult[] = [];
  try {
    cases.push(...await serverCases(ctx, only));
    await ctx.server?.stop();
    ctx.server = undefined;
    cases.push(...await commandCases(ctx, only));
  } finally {
    await ctx.server?.stop();
    await Deno.remove(inputs.dir, { recursive: true }).catch(() => {});
  }
  const run: HostileRun = {
    commit: await commitOf(root),
    measured: new Date().toISOString().slice(0, 10),
    load,
    cases: cases.map((c) =>
      withoutPaths(c, { [inputs.dir]: "$TMP", [root]: "." })
    ),
  };
  if (!values.json) return;
  const runs = await saveRun(
    values.json,
    values.label,
    run,
    wanted !== undefined,
  );
  if (runs.before && runs.after) {
    console.log(beforeAfterTable(runs.before, runs.after));
  }
}

if (import.meta.main) {
  Deno.exit(
    await runCli(HOSTILE_BENCH_CLI, async ({ values }) => {
      try {
        if (values.table) {
          if (!values.json) throw new UsageError("--table needs --json FILE");
          const { runs } = JSON.parse(await Deno.readTextFile(values.json));
          if (!runs?.before || !runs?.after) {
            throw new Error(`${values.json} lacks a before or an after run`);
          }
          console.log(beforeAfterTable(runs.before, runs.after));
          return 0;
        }
        await benchmark(values);
        return 0;
      } catch (error) {
        if (error instanceof UsageError) throw error;
        console.error(`bench/hostile.ts: ${(error as Error).message}`);
        return 1;
      }
    }),
  );
}
