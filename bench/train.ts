/**
 * Training speed of the project's seed CNN (tfjs-node, lib/model/models.ts) against
 * Keras (TensorFlow 2.21, bench/train_keras.py) on the same tensors.
 *
 * Both sides train the identical architecture at 128×128×1, batch 32, on the
 * same seeded random images (written once to `.cache/bench/train/`), each in
 * its own child process of this one, alternating ours and Keras so that
 * background load hits both alike. Each run trains one warm-up epoch and then
 * times the others; it reports ms per image per epoch (wall and CPU), the
 * peak RSS (`VmHWM`), and single-image and batch-32 inference.
 *
 * Configurations (`--ours`, `--keras`, comma-separated, or `all`):
 *
 * | ours                  | what                                                   |
 * | --------------------- | ------------------------------------------------------ |
 * | `tfjs`                | plain tfjs kernels and tfjs's Adam, glibc malloc        |
 * | `tfjs-tcmalloc`       | the same under tcmalloc (`LD_PRELOAD`)                  |
 * | `native`              | `compileModel` defaults: native kernels + NativeAdam   |
 * | `native-bfc`          | + `TF_CPU_ALLOCATOR_USE_BFC=true` (TensorFlow's pool)   |
 * | `native-tcmalloc`     | + tcmalloc instead                                      |
 * | `native-bfc-tcmalloc` | + both                                                  |
 * | `native-bfc-intra1`   | + `TF_NUM_INTRAOP_THREADS=1`                            |
 * | `native-bfc-inter1`   | + `TF_NUM_INTEROP_THREADS=1`                            |
 * | `native-bfc-omp1`     | + `OMP_NUM_THREADS=1`                                   |
 * | `native-bfc-batch`    | a `trainOnBatch` loop instead of `fit`                  |
 * | `native-bfc-dataset`  | `fitDataset` over a generator instead of `fit`          |
 * | `native-bfc-prod`     | + `tf.enableProdMode()`                                 |
 *
 * | keras          | what                                         |
 * | -------------- | -------------------------------------------- |
 * | `default`      | Keras 3 defaults (no XLA on CPU)             |
 * | `tcmalloc`     | under tcmalloc                               |
 * | `bfc`          | `TF_CPU_ALLOCATOR_USE_BFC=true`              |
 * | `bfc-spe10`    | + `steps_per_execution=10`                   |
 * | `xla`          | `jit_compile=True`                           |
 * | `xla-tcmalloc` | both                                         |
 *
 * Usage (every flag in {@linkcode TRAIN_BENCH_CLI}; `--help` prints them):
 *
 * ```sh
 * deno run -A bench/train.ts [--images 320] [--epochs 3] [--runs 3] \
 *   [--ours native-bfc,tfjs] [--keras default,tcmalloc] [--no-inference]
 * ```
 *
 * The first run installs `tensorflow-cpu==2.21.0` into `.cache/bench-venv`
 * from the project's pip index (bench/peer_env.ts; idempotent).
 *
 * @module
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { projectPaths } from "../lib/core/paths.ts";
import { rng } from "../lib/core/random.ts";
import { run } from "../lib/tools/proc.ts";
import { writeFileAtomic } from "../lib/core/atomic.ts";
import { ensurePeerEnv } from "./peer_env.ts";
import { loadAverage, median, positiveInt, wrapWords } from "./bench_util.ts";
import {
  type FlagValues,
  type ParsedCli,
  runCli,
  UsageError,
} from "../lib/core/cli.ts";
import { DEFAULTS } from "../lib/core/defaults.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";
const TF_WHEEL = "tensorflow-cpu==2.21.0";

interface OursConfig {
  env: Record<string, string>;
  native: boolean;
  feed: "fit" | "batch" | "dataset";
  prod?: boolean;
}

const BFC = { TF_CPU_ALLOCATOR_USE_BFC: "true" };
// Explicit, so these stay glibc-malloc baselines should lib/core/tf.ts turn the
// BFC allocator on by default.
const NO_BFC = { TF_CPU_ALLOCATOR_USE_BFC: "false" };
const TC = { ...NO_BFC, LD_PRELOAD: TCMALLOC };

const OURS: Record<string, OursConfig> = {
  "tfjs": { env: NO_BFC, native: false, feed: "fit" },
  "tfjs-tcmalloc": { env: TC, native: false, feed: "fit" },
  "native": { env: NO_BFC, native: true, feed: "fit" },
  "native-bfc": { env: BFC, native: true, feed: "fit" },
  "native-tcmalloc": { env: TC, native: true, feed: "fit" },
  "native-bfc-tcmalloc": {
    env: { ...TC, ...BFC },
    native: true,
    feed: "fit",
  },
  "native-bfc-intra1": {
    env: { ...BFC, TF_NUM_INTRAOP_THREADS: "1" },
    native: true,
    feed: "fit",
  },
  "native-bfc-inter1": {
    env: { ...BFC, TF_NUM_INTEROP_THREADS: "1" },
    native: true,
    feed: "fit",
  },
  "native-bfc-omp1": {
    env: { ...BFC, OMP_NUM_THREADS: "1" },
    native: true,
    feed: "fit",
  },
  "native-bfc-batch": { env: BFC, native: true, feed: "batch" },
  "native-bfc-dataset": { env: BFC, native: true, feed: "dataset" },
  "native-bfc-prod": { env: BFC, native: true, feed: "fit", prod: true },
};

interface KerasConfig {
  env: Record<string, string>;
  jit: boolean;
  stepsPerExecution?: number;
}

const KERAS: Record<string, KerasConfig> = {
  "default": { env: {}, jit: false },
  "tcmalloc": { env: TC, jit: false },
  "bfc": { env: BFC, jit: false },
  "bfc-spe10": { env: BFC, jit: false, stepsPerExecution: 10 },
  "xla": { env: {}, jit: true },
  "xla-tcmalloc": { env: TC, jit: true },
};

/** What one child run reports. */
interface RunReport {
  impl: "ours" | "keras";
  params: number;
  epochs: { wallMs: number; cpuMs: number }[];
  losses: number[];
  inferSingleMs: number;
  inferBatchMs: number;
  peakRssMb: number;
  [key: string]: unknown;
}

interface Shape {
  n: number;
  size: number;
  channels: number;
  classes: number;
  batch: number;
  epochs: number;
}

/** The benchmark's command line: every flag with its type, default and help. */
export const TRAIN_BENCH_CLI = {
  command: "deno run -A bench/train.ts",
  summary:
    "Training speed of the project's seed CNN against Keras on the same\n" +
    "seeded random tensors: ms per image per epoch (wall and CPU), peak\n" +
    "memory, and single-image and batch inference.",
  flags: {
    images: {
      type: "integer",
      default: 320,
      help: "images per epoch",
    },
    epochs: {
      type: "integer",
      default: 3,
      help: "epochs per run, the first is a warm-up",
    },
    runs: {
      type: "integer",
      default: 3,
      help: "alternating runs of every configuration",
    },
    batch: { type: "integer", default: DEFAULTS.batchSize, help: "batch size" },
    size: {
      type: "integer",
      default: DEFAULTS.imageSize,
      help: "image side, at least 22",
    },
    ours: {
      type: "string",
      value: "LIST",
      default: "native-bfc,tfjs",
      help: wrapWords(
        'our configurations, comma-separated, "all" or "none"; known: ' +
          Object.keys(OURS).join(", "),
      ),
    },
    keras: {
      type: "string",
      value: "LIST",
      default: "default,tcmalloc",
      help: wrapWords(
        'Keras configurations, comma-separated, "all" or "none"; known: ' +
          Object.keys(KERAS).join(", "),
      ),
    },
    "no-inference": { type: "boolean", help: "skip the inference timings" },
    json: {
      type: "string",
      value: "FILE",
      help: "also write every run's report to FILE",
    },
    worker: {
      type: "string",
      value: "CONFIG",
      help: "internal: one run of our configuration CONFIG,\n" +
        "in this process, reported as JSON",
    },
  },
} as const;

function pickConfigs<T>(
  text: string,
  known: Record<string, T>,
  flag: string,
): string[] {
  if (text === "none") return [];
  if (text === "all") return Object.keys(known);
  const names = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const name of names) {
    if (!(name in known)) {
      throw new UsageError(
        `--${flag}: unknown configuration "${name}" (known: ${
          Object.keys(known).join(", ")
        })`,
      );
    }
  }
  return names;
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

function vmHwmMb(pid: number | "self" = "self"): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = status.match(/^VmHWM:\s+(\d+)\s+kB/m);
  return match ? Number(match[1]) / 1024 : NaN;
}

function cpuMs(): number {
  // utime + stime of this process, in clock ticks (100 Hz on Linux).
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function dataFiles(shape: Shape) {
  const dir = join(projectPaths().cache, "bench", "train");
  const tag = `${shape.n}x${shape.size}x${shape.size}x${shape.channels}`;
  return {
    dir,
    x: join(dir, `x_${tag}_seed1.f32`),
    y: join(dir, `y_${shape.n}_${shape.classes}_seed1.i32`),
  };
}

/** Writes the seeded random images and labels both sides train on. */
async function writeData(shape: Shape): Promise<void> {
  const files = dataFiles(shape);
  const count = shape.n * shape.size * shape.size * shape.channels;
  if (
    existsSync(files.x) && Deno.statSync(files.x).size === count * 4 &&
    existsSync(files.y) && Deno.statSync(files.y).size === shape.n * 4
  ) {
    return;
  }
  await Deno.mkdir(files.dir, { recursive: true });
  const r = rng(1);
  const x = new Float32Array(count);
  for (let i = 0; i < count; i++) x[i] = r.next();
  const y = new Int32Array(shape.n);
  for (let i = 0; i < shape.n; i++) y[i] = r.int(0, shape.classes - 1);
  // Little-endian on every machine this runs on (x86-64, arm64).
  await writeFileAtomic(files.x, new Uint8Array(x.buffer));
  await writeFileAtomic(files.y, new Uint8Array(y.buffer));
}

// ---------------------------------------------------------------------------
// Child runs
// ---------------------------------------------------------------------------

function parseReport(stdout: string, what: string): RunReport {
  const line = stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  if (!line) throw new Error(`${what} printed no report`);
  const report = JSON.parse(line) as RunReport;
  // Skipped inference arrives as null (JSON has no NaN).
  report.inferSingleMs = report.inferSingleMs ?? NaN;
  report.inferBatchMs = report.inferBatchMs ?? NaN;
  return report;
}

/** Smallest finite value, NaN when there is none. */
function minFinite(values: number[]): number {
  const finite = values.filter(Number.isFinite);
  return finite.length ? Math.min(...finite) : NaN;
}

async function runOurs(
  name: string,
  shape: Shape,
  inference: boolean,
): Promise<RunReport> {
  const config = OURS[name];
  const deno = Deno.execPath();
  const result = await run(deno, {
    args: [
      "run",
      "-A",
      join(HERE, "train.ts"),
      "--worker",
      name,
      "--images",
      String(shape.n),
      "--epochs",
      String(shape.epochs),
      "--batch",
      String(shape.batch),
      "--size",
      String(shape.size),
      ...(inference ? [] : ["--no-inference"]),
    ],
    cwd: projectPaths().root,
    env: config.env,
    timeoutMs: 60 * 60_000,
  });
  if (result.code !== 0) {
    const tail = result.stderr.trim().split("\n").slice(-8).join("\n");
    throw new Error(`ours/${name} failed (exit ${result.code}):\n${tail}`);
  }
  return parseReport(result.stdout, `ours/${name}`);
}

async function runKeras(
  name: string,
  python: string,
  shape: Shape,
  inference: boolean,
): Promise<RunReport> {
  const config = KERAS[name];
  const files = dataFiles(shape);
  const result = await run(python, {
    args: [
      join(HERE, "train_keras.py"),
      "--x",
      files.x,
      "--y",
      files.y,
      "--n",
      String(shape.n),
      "--size",
      String(shape.size),
      "--channels",
      String(shape.channels),
      "--classes",
      String(shape.classes),
      "--batch",
      String(shape.batch),
      "--epochs",
      String(shape.epochs),
      ...(config.jit ? ["--jit"] : []),
      "--steps-per-execution",
      String(config.stepsPerExecution ?? 1),
      ...(inference ? [] : ["--no-inference"]),
    ],
    env: { TF_CPP_MIN_LOG_LEVEL: "2", ...config.env },
    timeoutMs: 60 * 60_000,
  });
  if (result.code !== 0) {
    const tail = result.stderr.trim().split("\n").slice(-8).join("\n");
    throw new Error(`keras/${name} failed (exit ${result.code}):\n${tail}`);
  }
  return parseReport(result.stdout, `keras/${name}`);
}

// ---------------------------------------------------------------------------
// Worker: one run of ours, in its own process (so that allocator and thread
// settings apply before TensorFlow loads)
// ---------------------------------------------------------------------------

type Tf = typeof import("../lib/core/tf.ts").tf;
type Tensor = import("../lib/core/tf.ts").Tensor;
type LayersModel = import("../lib/core/tf.ts").LayersModel;

/** The seeded random images and labels {@linkcode writeData} wrote. */
async function loadTensors(tf: Tf, shape: Shape) {
  const files = dataFiles(shape);
  const xData = new Float32Array((await Deno.readFile(files.x)).buffer);
  const yData = new Int32Array((await Deno.readFile(files.y)).buffer);
  const x = tf.tensor4d(xData, [
    shape.n,
    shape.size,
    shape.size,
    shape.channels,
  ]);
  const y = tf.tensor1d(yData, "int32").toFloat();
  return { x, y };
}

/** One epoch fed the configuration's way; returns its mean loss. */
async function trainEpoch(
  tf: Tf,
  model: LayersModel,
  data: { x: Tensor; y: Tensor },
  shape: Shape,
  feed: OursConfig["feed"],
): Promise<number> {
  const { x, y } = data;
  const batches = Math.ceil(shape.n / shape.batch);
  if (feed === "fit") {
    const h = await model.fit(x, y, {
      batchSize: shape.batch,
      epochs: 1,
      verbose: 0,
      shuffle: false,
    });
    return h.history.loss[0] as number;
  }
  if (feed === "batch") {
    let sum = 0;
    for (let b = 0; b < batches; b++) {
      const start = b * shape.batch;
      const len = Math.min(shape.batch, shape.n - start);
      const xb = x.slice(start, len);
      const yb = y.slice(start, len);
      const out = await model.trainOnBatch(xb, yb);
      sum += (Array.isArray(out) ? out[0] : out) * len;
      tf.dispose([xb, yb]);
    }
    return sum / shape.n;
  }
  const ds = tf.data.generator(function* () {
    for (let b = 0; b < batches; b++) {
      const start = b * shape.batch;
      const len = Math.min(shape.batch, shape.n - start);
      yield { xs: x.slice(start, len), ys: y.slice(start, len) };
    }
  });
  const h = await model.fitDataset(ds, { epochs: 1, verbose: 0 });
  return h.history.loss[0] as number;
}

/**
 * The fastest way to run the model on `input` (like the Keras side: the
 * result read back into JavaScript) and its median time in ms.
 */
function fastestInference(
  model: LayersModel,
  input: Tensor,
  reps: number,
): [string, number] {
  const ways: Record<string, (input: Tensor) => Tensor> = {
    predict: (i) => model.predict(i) as Tensor,
    execute: (i) => model.execute(i, model.outputs[0].name) as Tensor,
  };
  let best: [string, number] = ["", Infinity];
  for (const [way, f] of Object.entries(ways)) {
    const once = () => {
      const out = f(input);
      out.dataSync();
      out.dispose();
    };
    for (let i = 0; i < 3; i++) once();
    const times: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      once();
      times.push(performance.now() - t0);
    }
    const m = median(times);
    if (m < best[1]) best = [way, m];
  }
  return best;
}

/** Single-image and batch inference timings (NaN when skipped). */
function timeInference(
  tf: Tf,
  model: LayersModel,
  x: Tensor,
  shape: Shape,
) {
  const one = x.slice(0, 1);
  const batch = x.slice(0, shape.batch);
  const [inferSingleWay, inferSingleMs] = fastestInference(model, one, 30);
  const [inferBatchWay, inferBatchMs] = fastestInference(model, batch, 10);
  tf.dispose([one, batch]);
  return { inferSingleMs, inferSingleWay, inferBatchMs, inferBatchWay };
}

const NO_INFERENCE = {
  inferSingleMs: NaN,
  inferSingleWay: "",
  inferBatchMs: NaN,
  inferBatchWay: "",
};

/** One run of our configuration `name`; prints its report as JSON. */
async function worker(
  name: string,
  shape: Shape,
  inference: boolean,
): Promise<void> {
  const config = OURS[name];
  if (!config) throw new UsageError(`unknown configuration "${name}"`);
  const { tf } = await import("../lib/core/tf.ts");
  // The module index: these live in models.ts, compile.ts and native_kernels.ts.
  const models = await import("../lib/model/mod.ts");
  if (config.prod) tf.enableProdMode();
  const data = await loadTensors(tf, shape);
  const model = models.compileModel(
    models.seedCnn({
      inputSize: shape.size,
      channels: shape.channels,
      numClasses: shape.classes,
      seed: DEFAULTS.seed,
    }),
    { learningRate: DEFAULTS.learningRate, native: config.native },
  );
  const epochs: { wallMs: number; cpuMs: number }[] = [];
  const losses: number[] = [];
  for (let e = 0; e < shape.epochs; e++) {
    const t0 = performance.now();
    const c0 = cpuMs();
    losses.push(await trainEpoch(tf, model, data, shape, config.feed));
    epochs.push({ wallMs: performance.now() - t0, cpuMs: cpuMs() - c0 });
  }
  const timings = inference
    ? timeInference(tf, model, data.x, shape)
    : NO_INFERENCE;
  const report: RunReport = {
    impl: "ours",
    config: name,
    params: model.countParams(),
    native: models.nativeKernelsStatus(),
    epochs,
    losses,
    ...timings,
    peakRssMb: vmHwmMb(),
  };
  model.dispose();
  tf.dispose([data.x, data.y]);
  console.log(JSON.stringify(report));
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

interface Row {
  impl: "ours" | "keras";
  config: string;
  runs: { msPerImage: number; cpuMsPerImage: number; load: number }[];
  reports: RunReport[];
}

function timed(report: RunReport, n: number) {
  const rest = report.epochs.slice(1);
  const epochs = rest.length ? rest : report.epochs;
  const wall = epochs.reduce((s, e) => s + e.wallMs, 0) / epochs.length;
  const cpu = epochs.reduce((s, e) => s + e.cpuMs, 0) / epochs.length;
  return { msPerImage: wall / n, cpuMsPerImage: cpu / n };
}

function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "–";
}

function printTable(rows: Row[]): void {
  const header = [
    "impl",
    "config",
    "best ms/img/epoch",
    "spread",
    "cpu ms/img",
    "peak RSS MB",
    "infer 1 ms",
    "infer 32 ms",
    "final loss",
    "load",
  ];
  const body = rows.map((r) => {
    const ms = r.runs.map((x) => x.msPerImage);
    const best = Math.min(...ms);
    const bestRun = r.runs[ms.indexOf(best)];
    const rss = Math.max(...r.reports.map((x) => x.peakRssMb));
    return [
      r.impl,
      r.config,
      fmt(best, 2),
      `${fmt(Math.min(...ms), 2)}–${fmt(Math.max(...ms), 2)}`,
      fmt(bestRun.cpuMsPerImage, 2),
      fmt(rss, 0),
      fmt(minFinite(r.reports.map((x) => x.inferSingleMs)), 2),
      fmt(minFinite(r.reports.map((x) => x.inferBatchMs)), 1),
      fmt(r.reports.at(-1)!.losses.at(-1)!, 4),
      r.runs.map((x) => fmt(x.load, 1)).join("/"),
    ];
  });
  const widths = header.map((h, i) =>
    Math.max(h.length, ...body.map((b) => b[i].length))
  );
  const line = (cells: string[]) =>
    cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const b of body) console.log(line(b));
}

type TrainBenchFlags = FlagValues<typeof TRAIN_BENCH_CLI>;

/** The tensors' shape, from the command line. */
function benchShape(values: TrainBenchFlags): Shape {
  const shape: Shape = {
    n: positiveInt(values.images, "images"),
    epochs: positiveInt(values.epochs, "epochs"),
    batch: positiveInt(values.batch, "batch"),
    size: positiveInt(values.size, "size"),
    channels: 1,
    classes: 4,
  };
  if (shape.size < 22) throw new UsageError("--size must be at least 22");
  return shape;
}

/** Refuses tcmalloc configurations on a machine without tcmalloc. */
function checkTcmalloc(ours: string[], keras: string[]): void {
  const needed = [
    ...ours.map((n) => OURS[n].env),
    ...keras.map((n) => KERAS[n].env),
  ].some((env) => env.LD_PRELOAD);
  if (needed && !existsSync(TCMALLOC)) {
    throw new Error(
      `${TCMALLOC} is missing (Debian: apt-get install libtcmalloc-minimal4); ` +
        "drop the *tcmalloc configurations",
    );
  }
}

/** One row per configuration, and the order they run in: alternating. */
function benchRows(ours: string[], keras: string[]) {
  const row = (impl: Row["impl"], config: string): Row => ({
    impl,
    config,
    runs: [],
    reports: [],
  });
  const oursRows = ours.map((c) => row("ours", c));
  const kerasRows = keras.map((c) => row("keras", c));
  // Alternate: ours and Keras configurations interleaved within each round.
  const order: Row[] = [];
  for (let i = 0; i < Math.max(oursRows.length, kerasRows.length); i++) {
    if (oursRows[i]) order.push(oursRows[i]);
    if (kerasRows[i]) order.push(kerasRows[i]);
  }
  return { rows: [...oursRows, ...kerasRows], order };
}

/** Every round: each configuration once, the order reversed every other. */
async function runRounds(
  order: Row[],
  runs: number,
  child: { shape: Shape; inference: boolean; python: string },
): Promise<void> {
  const { shape, inference, python } = child;
  for (let round = 1; round <= runs; round++) {
    const sequence = round % 2 ? order : [...order].reverse();
    for (const row of sequence) {
      const load = loadAverage();
      const report = row.impl === "ours"
        ? await runOurs(row.config, shape, inference)
        : await runKeras(row.config, python, shape, inference);
      const t = timed(report, shape.n);
      row.runs.push({ ...t, load });
      row.reports.push(report);
      console.error(
        `  run ${round}: ${row.impl}/${row.config} ${fmt(t.msPerImage, 2)} ` +
          `ms/img/epoch (cpu ${fmt(t.cpuMsPerImage, 2)}), load ${fmt(load, 2)}`,
      );
    }
  }
}

/** The best training speed of one side: its fastest configuration. */
function bestOf(rows: Row[], impl: Row["impl"]) {
  return rows.filter((r) => r.impl === impl).map((r) => ({
    config: r.config,
    ms: Math.min(...r.runs.map((x) => x.msPerImage)),
    cpu: Math.min(...r.runs.map((x) => x.cpuMsPerImage)),
  })).sort((a, b) => a.ms - b.ms)[0];
}

/** The fastest inference time of one side, over all its runs. */
function inferenceOf(
  rows: Row[],
  impl: Row["impl"],
  key: "inferSingleMs" | "inferBatchMs",
): number {
  return minFinite(
    rows.filter((r) => r.impl === impl).flatMap((r) =>
      r.reports.map((x) => x[key])
    ),
  );
}

/** Ours against Keras, best against best: training, then inference. */
function printRatios(rows: Row[], shape: Shape): void {
  const o = bestOf(rows, "ours");
  const k = bestOf(rows, "keras");
  if (!o || !k) return;
  console.log(
    `ratio ours/keras (best vs best): ${fmt(o.ms / k.ms, 2)} ` +
      `(ours/${o.config} ${fmt(o.ms, 2)} vs keras/${k.config} ` +
      `${fmt(k.ms, 2)} ms/img/epoch); CPU time ${fmt(o.cpu / k.cpu, 2)} ` +
      `(${fmt(o.cpu, 2)} vs ${fmt(k.cpu, 2)} CPU-ms/img, less sensitive ` +
      "to other load)",
  );
  const oi = inferenceOf(rows, "ours", "inferSingleMs");
  const ki = inferenceOf(rows, "keras", "inferSingleMs");
  const ob = inferenceOf(rows, "ours", "inferBatchMs");
  const kb = inferenceOf(rows, "keras", "inferBatchMs");
  if (Number.isFinite(oi) && Number.isFinite(ki)) {
    console.log(
      `inference ours/keras: 1 image ${fmt(oi, 2)}/${fmt(ki, 2)} ms ` +
        `(${fmt(oi / ki, 2)}), batch ${shape.batch} ${fmt(ob, 1)}/${
          fmt(kb, 1)
        } ms ` +
        `(${fmt(ob / kb, 2)})`,
    );
  }
}

/** The benchmark: the data, every round, the table and the ratios. */
async function compare(values: TrainBenchFlags, shape: Shape): Promise<void> {
  const inference = !values["no-inference"];
  const runs = positiveInt(values.runs, "runs");
  const ours = pickConfigs(values.ours, OURS, "ours");
  const keras = pickConfigs(values.keras, KERAS, "keras");
  checkTcmalloc(ours, keras);
  await writeData(shape);
  const python = keras.length
    ? await ensurePeerEnv({ packages: [TF_WHEEL] })
    : "";
  console.log(
    `seed CNN ${shape.size}×${shape.size}×${shape.channels}, ${shape.classes} ` +
      `classes, batch ${shape.batch}, ${shape.n} images × ${shape.epochs} ` +
      `epochs (first = warm-up), ${runs} runs, ${navigator.hardwareConcurrency} ` +
      `CPUs, load ${fmt(loadAverage(), 2)}`,
  );
  const { rows, order } = benchRows(ours, keras);
  await runRounds(order, runs, { shape, inference, python });
  console.log();
  printTable(rows);
  const params = new Set(rows.flatMap((r) => r.reports.map((x) => x.params)));
  console.log(`\nparameters: ${[...params].join(" vs ")}`);
  printRatios(rows, shape);
  if (values.json) {
    await writeFileAtomic(
      values.json,
      new TextEncoder().encode(JSON.stringify(rows, null, 2)),
    );
  }
}

async function main(
  { values }: ParsedCli<typeof TRAIN_BENCH_CLI>,
): Promise<number> {
  const shape = benchShape(values);
  try {
    if (values.worker !== undefined) {
      await worker(values.worker, shape, !values["no-inference"]);
    } else {
      await compare(values, shape);
    }
    return 0;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    console.error(`bench/train.ts: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await runCli(TRAIN_BENCH_CLI, main));
