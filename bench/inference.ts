/**
 * Inference speed of the project's two engines (lib/model/engine.ts: tfjs
 * and onnxruntime) against Keras (TensorFlow 2.21, bench/inference_keras.py)
 * running the same saved models with the same weights, side by side in one
 * run, on the shipped ResNet and on the seed CNN:
 *
 * - **batch**: class probabilities of every scan of a dataset's test split
 *   (packed uint8 pixels in, scaled by 1/255 in float32, batches of
 *   `DEFAULTS.evalBatchSize`), images per second over the median pass. Each
 *   side runs in its own child process, `--repeats` timed passes after a
 *   warm-up pass; the sides take turns for `--rounds` rounds (order reversed
 *   every other round), so load from elsewhere on the machine falls on all of
 *   them alike. Keras is timed both with `model.predict` and with the model
 *   called on each batch; the ratio is against the faster of the two.
 * - **cold**: one scan predicted by a fresh process, from process start to
 *   answer: `deno task predict -- --engine E --json FILE` and the Keras
 *   script's `predict` (import TensorFlow, load the model, decode, resize,
 *   predict), `--cold-runs` times each, interleaved, median.
 * - **profile**: where a cold `predict`'s time goes, phase by phase, in a
 *   fresh process for each engine (start-up and imports, loading the model,
 *   opening the engine, decoding, the forward pass).
 *
 * The Keras model is built from the saved model's own `model.json` and
 * weights (bench/inference_keras.py `convert`), saved in Keras' format, and
 * checked against our probabilities on the test split before anything is
 * timed (`kerasCheck.maxAbsDiff`).
 *
 * ```sh
 * BRAIN_MRI_DATA=path/to/brain-tumor-mri deno run -A bench/inference.ts
 * deno run -A bench/inference.ts [--data DIR] [--model DIR]... [--repeats 2] [--rounds 3] [--cold-runs 5]
 * ```
 *
 * The first run installs `tensorflow-cpu==2.21.0` into `.cache/bench-venv`
 * from the project's pip index (bench/peer_env.ts; idempotent). Writes
 * `bench/results/inference.json` (no machine paths).
 *
 * @module
 */
import { join } from "node:path";
import { runCli } from "../lib/core/cli.ts";
import { writeFileAtomic, writeTextAtomic } from "../lib/core/atomic.ts";
import { DEFAULTS } from "../lib/core/defaults.ts";
import { PROJECT_ROOT, projectPaths } from "../lib/core/paths.ts";
import { prepareData, type PreparedData } from "../lib/data/prepare.ts";
import { ENGINE_KINDS, type EngineKind } from "../lib/model/engine.ts";
import { run } from "../lib/tools/proc.ts";
import {
  loadAverage,
  median,
  positiveInt,
  recordedPath,
} from "./bench_util.ts";
import { EQUALITY_MODELS, MODELS_FLAG } from "./engine_equality.ts";
import { ensurePeerEnv } from "./peer_env.ts";

const TF_WHEEL = "tensorflow-cpu==2.21.0";
const PEER = join(PROJECT_ROOT, "bench", "inference_keras.py");
const HERE = join(PROJECT_ROOT, "bench", "inference.ts");

/** The command line. */
export const INFERENCE_BENCH_CLI = {
  command: "deno run -A bench/inference.ts",
  summary:
    "Batch and cold single-scan inference: ours (tfjs, onnx) against Keras\n" +
    "on the same saved models and weights.",
  flags: {
    data: {
      type: "string",
      value: "DIR",
      defaultText: "BRAIN_MRI_DATA, else data/, else the synthetic default",
      help: "dataset root (its test split is inferred)",
    },
    model: MODELS_FLAG,
    repeats: {
      type: "integer",
      default: 2,
      help: "timed batch passes per process (after a warm-up)",
    },
    rounds: {
      type: "integer",
      default: 3,
      help: "batch rounds, the sides taking turns",
    },
    "cold-runs": {
      type: "integer",
      default: 5,
      help: "cold single predictions per side",
    },
    "batch-size": {
      type: "integer",
      default: DEFAULTS.evalBatchSize,
      help: "images per forward pass in the batch test",
    },
    out: {
      type: "string",
      value: "FILE",
      default: "bench/results/inference.json",
      help: "results file",
    },
    worker: {
      type: "string",
      choices: ["batch"],
      help: "internal: run one side in this process",
    },
    engine: {
      type: "string",
      choices: ENGINE_KINDS,
      default: "tfjs",
      help: "internal (--worker): the engine",
    },
    pixels: {
      type: "string",
      value: "FILE",
      help: "internal (--worker batch): packed test pixels",
    },
  },
} as const;

/** Peak resident memory of this process (`VmHWM`), MB. */
function peakRssMb(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(status.match(/^VmHWM:\s+(\d+) kB/m)?.[1] ?? NaN) / 1024;
}

/** A child's JSON answer (its last stdout line), or an error with its stderr. */
function lastJson<T>(
  what: string,
  r: { code: number; stdout: string; stderr: string },
): T {
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  if (r.code !== 0 || !line.startsWith("{")) {
    const tail = r.stderr.trim().split("\n").slice(-6).join("\n");
    throw new Error(`${what} failed (exit ${r.code}):\n${tail}`);
  }
  return JSON.parse(line) as T;
}

// ---------------------------------------------------------------------------
// Workers: one side, in a child process
// ---------------------------------------------------------------------------

/** One timed side of the batch test. */
interface BatchTiming {
  seconds: number[];
  imagesPerSecond: number;
}

/** `--worker batch`: our engine over the packed test split. */
async function batchWorker(
  modelDir: string,
  engine: EngineKind,
  options: { pixels: string; batchSize: number; repeats: number },
): Promise<void> {
  const start = performance.now();
  const { loadSavedModel } = await import("../lib/model/saved_model.ts");
  const { openEngine } = await import("../lib/model/engine.ts");
  const loaded = await loadSavedModel(join(PROJECT_ROOT, modelDir));
  const opened = performance.now();
  const session = await openEngine({ model: loaded, kind: engine });
  const openSeconds = (performance.now() - opened) / 1000;
  const pixels = await Deno.readFile(options.pixels);
  const { size, scale } = loaded.metadata.preprocessing;
  const input = { pixels, size, scale, batchSize: options.batchSize };
  const images = pixels.length / (size * size);
  await session.probabilities(input); // warm-up
  const seconds: number[] = [];
  for (let i = 0; i < options.repeats; i++) {
    const t = performance.now();
    await session.probabilities(input);
    seconds.push((performance.now() - t) / 1000);
  }
  await session.dispose();
  loaded.model.dispose();
  const timing: BatchTiming = {
    seconds,
    imagesPerSecond: images / median(seconds),
  };
  console.log(JSON.stringify({
    images,
    loadSeconds: (opened - start) / 1000,
    openSeconds,
    timing,
    peakRssMb: peakRssMb(),
  }));
}

// ---------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------

/** The three sides compared. */
const SIDES = ["tfjs", "onnx", "keras"] as const;
type Side = typeof SIDES[number];

/** What every stage reads: the split, its pixels on disk, the peer. */
interface Workspace {
  data: PreparedData;
  /** The test split's packed pixels, `.cache/bench/inference/`. */
  pixelsFile: string;
  /** The scan each cold prediction classifies. */
  scan: string;
  /** The bench venv's Python. */
  python: string;
  /** Work folder. */
  dir: string;
  batchSize: number;
  repeats: number;
  rounds: number;
}

/** The dataset's test split, its pixels written for the workers. */
async function prepareWorkspace(
  given: string | undefined,
  options: { batchSize: number; repeats: number; rounds: number },
): Promise<Workspace> {
  const data = await prepareData({
    ...(given ? { source: given } : {}),
    log: (m) => console.error(m),
  });
  const dir = join(projectPaths().cache, "bench", "inference");
  await Deno.mkdir(dir, { recursive: true });
  const pixelsFile = join(dir, `test-${data.size}.u8`);
  await writeFileAtomic(pixelsFile, data.test.pixels);
  const python = await ensurePeerEnv({ packages: [TF_WHEEL] });
  return {
    data,
    pixelsFile,
    scan: data.test.files[0].path,
    python,
    dir,
    ...options,
  };
}

/** What the Keras side's `convert` found: the same network? */
interface KerasCheck {
  params: number;
  layers: number;
  maxAbsDiff: number;
  classesDiffering: number;
}

/**
 * The Keras peer of a saved model, in Keras' format, checked against our
 * tfjs probabilities on the whole test split.
 */
async function kerasPeer(
  ws: Workspace,
  modelDir: string,
): Promise<{ file: string; check: KerasCheck }> {
  const { loadSavedModel } = await import("../lib/model/saved_model.ts");
  const { predictProbabilities } = await import("../lib/model/inference.ts");
  const loaded = await loadSavedModel(join(PROJECT_ROOT, modelDir));
  const probs = await predictProbabilities(loaded.model, {
    pixels: ws.data.test.pixels,
    size: loaded.metadata.preprocessing.size,
    scale: loaded.metadata.preprocessing.scale,
  });
  loaded.model.dispose();
  const stem = modelDir.replaceAll(/[\\/]/g, "_");
  const probsFile = join(ws.dir, `${stem}.probs.f32`);
  await writeFileAtomic(probsFile, new Uint8Array(probs.buffer));
  const file = join(ws.dir, `${stem}.keras`);
  const r = await run(ws.python, {
    args: [
      PEER,
      "convert",
      "--model",
      join(PROJECT_ROOT, modelDir, "model"),
      "--out",
      file,
      "--pixels",
      ws.pixelsFile,
      "--probs",
      probsFile,
      "--count",
      String(ws.data.test.files.length),
    ],
    timeoutMs: 10 * 60_000,
  });
  return { file, check: lastJson<KerasCheck>(`keras convert ${modelDir}`, r) };
}

/** One side's batch result. */
interface BatchResult {
  imagesPerSecond: number;
  seconds: number[];
  /** Keras: both ways of running it. */
  keras?: Record<string, BatchTiming>;
  peakRssMb: number;
}

/** One side of the batch test, in a child process. */
async function batchSide(
  ws: Workspace,
  modelDir: string,
  side: Side,
  kerasFile: string,
): Promise<BatchResult> {
  const common = [
    "--batch-size",
    String(ws.batchSize),
    "--repeats",
    String(ws.repeats),
  ];
  if (side !== "keras") {
    const r = await run(Deno.execPath(), {
      args: [
        "run",
        "-A",
        HERE,
        "--worker",
        "batch",
        "--model",
        modelDir,
        "--engine",
        side,
        "--pixels",
        ws.pixelsFile,
        ...common,
      ],
      timeoutMs: 20 * 60_000,
    });
    const out = lastJson<{ timing: BatchTiming; peakRssMb: number }>(
      `${side} batch`,
      r,
    );
    return { ...out.timing, peakRssMb: out.peakRssMb };
  }
  const r = await run(ws.python, {
    args: [
      PEER,
      "batch",
      "--model",
      kerasFile,
      "--pixels",
      ws.pixelsFile,
      "--count",
      String(ws.data.test.files.length),
      "--size",
      String(ws.data.size),
      ...common,
    ],
    timeoutMs: 20 * 60_000,
  });
  const out = lastJson<
    { timings: Record<string, BatchTiming>; peakRssMb: number }
  >("keras batch", r);
  const best = Object.values(out.timings).reduce((a, b) =>
    b.imagesPerSecond > a.imagesPerSecond ? b : a
  );
  return { ...best, keras: out.timings, peakRssMb: out.peakRssMb };
}

/** One cold prediction: seconds from spawn to exit, and the class answered. */
async function coldOnce(
  ws: Workspace,
  modelDir: string,
  side: Side,
  kerasFile: string,
): Promise<{ seconds: number; class: string }> {
  const start = performance.now();
  const r = side === "keras"
    ? await run(ws.python, {
      args: [
        PEER,
        "predict",
        "--model",
        kerasFile,
        "--classes",
        JSON.stringify(ws.data.classes),
        ws.scan,
      ],
      timeoutMs: 5 * 60_000,
    })
    : await run(Deno.execPath(), {
      args: [
        "task",
        "-q",
        "predict",
        "--model",
        modelDir,
        "--engine",
        side,
        "--json",
        ws.scan,
      ],
      cwd: PROJECT_ROOT,
      timeoutMs: 5 * 60_000,
    });
  const seconds = (performance.now() - start) / 1000;
  const out = lastJson<{ class?: string; predictions?: { class: string }[] }>(
    `${side} predict`,
    r,
  );
  return { seconds, class: out.class ?? out.predictions?.[0]?.class ?? "?" };
}

/** Where a cold predict's time goes, per engine (bench/inference_profile.ts). */
async function profiles(
  ws: Workspace,
  modelDir: string,
): Promise<Record<EngineKind, Record<string, number>>> {
  const out = {} as Record<EngineKind, Record<string, number>>;
  for (const engine of ENGINE_KINDS) {
    const r = await run(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(PROJECT_ROOT, "bench", "inference_profile.ts"),
        modelDir,
        engine,
        ws.scan,
      ],
      timeoutMs: 5 * 60_000,
    });
    out[engine] = lastJson(`${engine} profile`, r);
  }
  return out;
}

/** The sides' batch results over every round, merged. */
async function batchRounds(
  ws: Workspace,
  modelDir: string,
  kerasFile: string,
): Promise<Record<Side, BatchResult>> {
  const all = { tfjs: [], onnx: [], keras: [] } as Record<Side, BatchResult[]>;
  for (let round = 0; round < ws.rounds; round++) {
    for (const side of round % 2 ? [...SIDES].reverse() : SIDES) {
      const r = await batchSide(ws, modelDir, side, kerasFile);
      all[side].push(r);
      console.error(
        `${modelDir} batch round ${round + 1} ${side}: ` +
          `${r.imagesPerSecond.toFixed(1)} images/s (load ${loadAverage()})`,
      );
    }
  }
  const images = ws.data.test.files.length;
  const merge = (seconds: number[]): BatchTiming => ({
    seconds,
    imagesPerSecond: images / median(seconds),
  });
  const out = {} as Record<Side, BatchResult>;
  for (const side of SIDES) {
    const peakRssMb = Math.max(...all[side].map((r) => r.peakRssMb));
    const modes = Object.keys(all[side][0].keras ?? {});
    if (!modes.length) {
      out[side] = { ...merge(all[side].flatMap((r) => r.seconds)), peakRssMb };
      continue;
    }
    const keras = Object.fromEntries(modes.map((m) => [
      m,
      merge(all[side].flatMap((r) => r.keras![m].seconds)),
    ]));
    const best = Object.values(keras).reduce((a, b) =>
      b.imagesPerSecond > a.imagesPerSecond ? b : a
    );
    out[side] = { ...best, keras, peakRssMb };
  }
  return out;
}

/** Everything measured on one model. */
interface ModelResult {
  model: string;
  arch: string;
  kerasCheck: KerasCheck;
  batch: Record<Side, BatchResult>;
  cold: Record<
    Side,
    { medianSeconds: number; seconds: number[]; classes: string[] }
  >;
  /** Batch images/s of ours over Keras' (target ≥ 1.5). */
  batchRatio: Record<EngineKind, number>;
  /** Cold predict seconds of ours over Keras' (target ≤ 1). */
  coldRatio: Record<EngineKind, number>;
  profile: Record<EngineKind, Record<string, number>>;
}

/** Batch, cold and profile for one model, the three sides interleaved. */
async function benchModel(
  ws: Workspace,
  modelDir: string,
  coldRuns: number,
): Promise<ModelResult> {
  const peer = await kerasPeer(ws, modelDir);
  console.error(`${modelDir}: Keras peer max |Δp| ${peer.check.maxAbsDiff}`);
  const batch = await batchRounds(ws, modelDir, peer.file);
  const runs = { tfjs: [], onnx: [], keras: [] } as Record<
    Side,
    { seconds: number; class: string }[]
  >;
  for (let i = 0; i < coldRuns; i++) {
    for (const side of SIDES) {
      runs[side].push(await coldOnce(ws, modelDir, side, peer.file));
    }
  }
  const cold = {} as ModelResult["cold"];
  for (const side of SIDES) {
    const seconds = runs[side].map((r) => r.seconds);
    cold[side] = {
      medianSeconds: median(seconds),
      seconds,
      classes: [...new Set(runs[side].map((r) => r.class))],
    };
    console.error(
      `${modelDir} cold ${side}: ${cold[side].medianSeconds.toFixed(2)} s`,
    );
  }
  const metadata = JSON.parse(
    await Deno.readTextFile(
      join(PROJECT_ROOT, modelDir, "model", "metadata.json"),
    ),
  );
  const ratio = (f: (side: Side) => number) =>
    Object.fromEntries(
      ENGINE_KINDS.map((e) => [e, f(e) / f("keras")]),
    ) as Record<EngineKind, number>;
  return {
    model: modelDir,
    arch: metadata.arch,
    kerasCheck: peer.check,
    batch,
    cold,
    batchRatio: ratio((s) => batch[s].imagesPerSecond),
    coldRatio: ratio((s) => cold[s].medianSeconds),
    profile: await profiles(ws, modelDir),
  };
}

/** The results as the Markdown table docs/benchmarks.md shows. */
function inferenceTable(results: ModelResult[]): string {
  const lines = [
    "| model | side | batch images/s | ours/Keras | cold predict, median s | ours/Keras |",
    "| --- | --- | ---: | ---: | ---: | ---: |",
  ];
  for (const r of results) {
    for (const side of SIDES) {
      const ours = side !== "keras";
      lines.push(
        `| ${r.model.split("/").at(-1)} | ${
          side === "keras" ? "Keras" : `ours, ${side}`
        } | ` +
          `${r.batch[side].imagesPerSecond.toFixed(1)} | ${
            ours ? `${r.batchRatio[side].toFixed(2)}×` : ""
          } | ` +
          `${r.cold[side].medianSeconds.toFixed(2)} | ${
            ours ? `${r.coldRatio[side].toFixed(2)}×` : ""
          } |`,
      );
    }
  }
  return lines.join("\n");
}

if (import.meta.main) {
  Deno.exit(
    await runCli(INFERENCE_BENCH_CLI, async ({ values }) => {
      const repeats = positiveInt(values.repeats, "repeats");
      const batchSize = positiveInt(values["batch-size"], "batch-size");
      if (values.worker === "batch") {
        const modelDir = values.model[0];
        if (!modelDir || !values.pixels) {
          throw new Error("--worker batch needs --model and --pixels");
        }
        await batchWorker(modelDir, values.engine, {
          pixels: values.pixels,
          batchSize,
          repeats,
        });
        return 0;
      }
      const coldRuns = positiveInt(values["cold-runs"], "cold-runs");
      const rounds = positiveInt(values.rounds, "rounds");
      const ws = await prepareWorkspace(values.data, {
        batchSize,
        repeats,
        rounds,
      });
      const models = values.model.length ? values.model : EQUALITY_MODELS;
      const loadBefore = loadAverage();
      const results: ModelResult[] = [];
      for (const model of models) {
        results.push(await benchModel(ws, model, coldRuns));
      }
      const { versions } = await import("../lib/core/versions.ts");
      const ort = await import("onnxruntime-node");
      const report = {
        date: new Date().toISOString(),
        dataset: ws.data.source.synthetic
          ? "synthetic default"
          : recordedPath(ws.data.source.root),
        testImages: ws.data.test.files.length,
        coldScan: recordedPath(ws.scan),
        batchSize,
        repeats,
        rounds,
        coldRuns,
        cores: navigator.hardwareConcurrency,
        loadAverage: { before: loadBefore, after: loadAverage() },
        targets: { batchRatioAtLeast: 1.5, coldRatioAtMost: 1 },
        results,
        versions: { ...versions(), "onnxruntime-node": ort.env.versions.node },
      };
      await writeTextAtomic(values.out, `${JSON.stringify(report, null, 2)}\n`);
      console.log(inferenceTable(results));
      return 0;
    }),
  );
}
