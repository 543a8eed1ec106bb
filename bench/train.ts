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
 * Usage:
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
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { projectPaths } from "../lib/core/paths.ts";
import { rng } from "../lib/core/random.ts";
import { run } from "../lib/tools/proc.ts";
import { writeFileAtomic } from "../lib/core/atomic.ts";
import { ensurePeerEnv } from "./peer_env.ts";
import { loadAverage, median, positiveInt, UsageError } from "./bench_util.ts";

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

const USAGE = `usage: deno run -A bench/train.ts [options]

  --images N     images per epoch (default 320, 10 batches)
  --epochs N     epochs per run, the first is a warm-up (default 3)
  --runs N       alternating runs of every configuration (default 3)
  --batch N      batch size (default 32)
  --size N       image size (default 128)
  --ours LIST    our configurations, comma-separated, or "all", or "none"
                 (default native-bfc,tfjs; known: ${
  Object.keys(OURS).join(", ")
})
  --keras LIST   Keras configurations, or "all", or "none"
                 (default default,tcmalloc; known: ${
  Object.keys(KERAS).join(", ")
})
  --no-inference skip the inference timings
  --json FILE    also write every run's report to FILE
  --help         this text`;

function pickConfigs<T>(
  value: string | undefined,
  fallback: string,
  known: Record<string, T>,
  flag: string,
): string[] {
  const text = value ?? fallback;
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

async function worker(
  name: string,
  shape: Shape,
  inference: boolean,
): Promise<void> {
  const config = OURS[name];
  if (!config) throw new UsageError(`unknown configuration "${name}"`);
  const { tf } = await import("../lib/core/tf.ts");
  const models = await import("../lib/model/mod.ts");
  if (config.prod) tf.enableProdMode();
  const files = dataFiles(shape);
  const xData = new Float32Array(
    (await Deno.readFile(files.x)).buffer,
  );
  const yData = new Int32Array((await Deno.readFile(files.y)).buffer);
  const x = tf.tensor4d(xData, [
    shape.n,
    shape.size,
    shape.size,
    shape.channels,
  ]);
  const y = tf.tensor1d(yData, "int32").toFloat();
  const model = models.compileModel(
    models.seedCnn({
      inputSize: shape.size,
      channels: shape.channels,
      numClasses: shape.classes,
      seed: 42,
    }),
    { learningRate: 1e-3, native: config.native },
  );

  const epochs: { wallMs: number; cpuMs: number }[] = [];
  const losses: number[] = [];
  const batches = Math.ceil(shape.n / shape.batch);
  for (let e = 0; e < shape.epochs; e++) {
    const t0 = performance.now();
    const c0 = cpuMs();
    if (config.feed === "fit") {
      const h = await model.fit(x, y, {
        batchSize: shape.batch,
        epochs: 1,
        verbose: 0,
        shuffle: false,
      });
      losses.push(h.history.loss[0] as number);
    } else if (config.feed === "batch") {
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
      losses.push(sum / shape.n);
    } else {
      const ds = tf.data.generator(function* () {
        for (let b = 0; b < batches; b++) {
          const start = b * shape.batch;
          const len = Math.min(shape.batch, shape.n - start);
          yield { xs: x.slice(start, len), ys: y.slice(start, len) };
        }
      });
      const h = await model.fitDataset(ds, { epochs: 1, verbose: 0 });
      losses.push(h.history.loss[0] as number);
    }
    epochs.push({ wallMs: performance.now() - t0, cpuMs: cpuMs() - c0 });
  }

  let inferSingleMs = NaN;
  let inferBatchMs = NaN;
  let inferSingleWay = "";
  let inferBatchWay = "";
  if (inference) {
    // Like the Keras side: the fastest of the ways to run the model, with
    // the result read back into JavaScript.
    const ways: Record<string, (input: typeof x) => typeof x> = {
      predict: (input) => model.predict(input) as typeof x,
      execute: (input) =>
        model.execute(input, model.outputs[0].name) as typeof x,
    };
    const fastest = (input: typeof x, reps: number): [string, number] => {
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
    };
    const one = x.slice(0, 1);
    const batch = x.slice(0, shape.batch);
    [inferSingleWay, inferSingleMs] = fastest(one, 30);
    [inferBatchWay, inferBatchMs] = fastest(batch, 10);
    tf.dispose([one, batch]);
  }
  const report: RunReport = {
    impl: "ours",
    config: name,
    params: model.countParams(),
    native: models.nativeKernelsStatus(),
    epochs,
    losses,
    inferSingleMs,
    inferSingleWay,
    inferBatchMs,
    inferBatchWay,
    peakRssMb: vmHwmMb(),
  };
  model.dispose();
  tf.dispose([x, y]);
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      images: { type: "string" },
      epochs: { type: "string" },
      runs: { type: "string" },
      batch: { type: "string" },
      size: { type: "string" },
      ours: { type: "string" },
      keras: { type: "string" },
      worker: { type: "string" },
      "no-inference": { type: "boolean" },
      json: { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const shape: Shape = {
    n: positiveInt(values.images, "images", 320),
    epochs: positiveInt(values.epochs, "epochs", 3),
    batch: positiveInt(values.batch, "batch", 32),
    size: positiveInt(values.size, "size", 128),
    channels: 1,
    classes: 4,
  };
  if (shape.size < 22) throw new UsageError("--size must be at least 22");
  const inference = !values["no-inference"];
  if (values.worker !== undefined) {
    await worker(values.worker, shape, inference);
    return;
  }
  const runs = positiveInt(values.runs, "runs", 3);
  const ours = pickConfigs(values.ours, "native-bfc,tfjs", OURS, "ours");
  const keras = pickConfigs(values.keras, "default,tcmalloc", KERAS, "keras");
  const needsTcmalloc = [
    ...ours.map((n) => OURS[n].env),
    ...keras.map((n) => KERAS[n].env),
  ]
    .some((env) => env.LD_PRELOAD);
  if (needsTcmalloc && !existsSync(TCMALLOC)) {
    throw new Error(
      `${TCMALLOC} is missing (Debian: apt-get install libtcmalloc-minimal4); ` +
        "drop the *tcmalloc configurations",
    );
  }

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

  const rows: Row[] = [
    ...ours.map((config) => ({
      impl: "ours" as const,
      config,
      runs: [],
      reports: [],
    })),
    ...keras.map((config) => ({
      impl: "keras" as const,
      config,
      runs: [],
      reports: [],
    })),
  ];
  // Alternate: ours and Keras configurations interleaved within each round.
  const order: Row[] = [];
  const oursRows = rows.filter((r) => r.impl === "ours");
  const kerasRows = rows.filter((r) => r.impl === "keras");
  for (let i = 0; i < Math.max(oursRows.length, kerasRows.length); i++) {
    if (oursRows[i]) order.push(oursRows[i]);
    if (kerasRows[i]) order.push(kerasRows[i]);
  }
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
  console.log();
  printTable(rows);
  const params = new Set(rows.flatMap((r) => r.reports.map((x) => x.params)));
  console.log(`\nparameters: ${[...params].join(" vs ")}`);
  const best = (impl: "ours" | "keras") =>
    rows.filter((r) => r.impl === impl).map((r) => ({
      config: r.config,
      ms: Math.min(...r.runs.map((x) => x.msPerImage)),
      cpu: Math.min(...r.runs.map((x) => x.cpuMsPerImage)),
    })).sort((a, b) => a.ms - b.ms)[0];
  const o = best("ours");
  const k = best("keras");
  if (o && k) {
    console.log(
      `ratio ours/keras (best vs best): ${fmt(o.ms / k.ms, 2)} ` +
        `(ours/${o.config} ${fmt(o.ms, 2)} vs keras/${k.config} ` +
        `${fmt(k.ms, 2)} ms/img/epoch); CPU time ${fmt(o.cpu / k.cpu, 2)} ` +
        `(${fmt(o.cpu, 2)} vs ${fmt(k.cpu, 2)} CPU-ms/img, less sensitive ` +
        "to other load)",
    );
    const oi = minFinite(
      rows.filter((r) => r.impl === "ours").flatMap((r) =>
        r.reports.map((x) => x.inferSingleMs)
      ),
    );
    const ki = minFinite(
      rows.filter((r) => r.impl === "keras").flatMap((r) =>
        r.reports.map((x) => x.inferSingleMs)
      ),
    );
    const ob = minFinite(
      rows.filter((r) => r.impl === "ours").flatMap((r) =>
        r.reports.map((x) => x.inferBatchMs)
      ),
    );
    const kb = minFinite(
      rows.filter((r) => r.impl === "keras").flatMap((r) =>
        r.reports.map((x) => x.inferBatchMs)
      ),
    );
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
  if (values.json) {
    await writeFileAtomic(
      values.json,
      new TextEncoder().encode(JSON.stringify(rows, null, 2)),
    );
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    if (
      error instanceof UsageError || (error instanceof TypeError &&
        (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS"))
    ) {
      console.error(`bench/train.ts: ${(error as Error).message}\n\n${USAGE}`);
      Deno.exit(2);
    }
    console.error(`bench/train.ts: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
