/**
 * Where one training step of the ResNet goes, op by op, in tfjs and in Keras.
 *
 * Both sides train the project's ResNet (the shipped model's filters,
 * 128×128×1, batch 32) with the shipped recipe's step: the forward and
 * backward passes, Adam, decoupled weight decay 1 on the kernels and the
 * weights' moving average (decay 0.998); or (`--arch seedCnn`) the seed CNN
 * with plain Adam, as `bench/train.ts` trains it. Every step trains on the same
 * seeded random batch, without augmentation or a data pipeline, so that the
 * step alone is measured.
 *
 * - **ours**: `createTrainStep` (lib/train/step.ts) with the native kernels
 *   and `NativeAdam`, as `deno task train` runs it, then `WeightAverage.update`,
 *   each step timed (median), then the same steps under `tf.profile`, every
 *   kernel's time summed by kernel name.
 * - **Keras**: bench/train_profile_keras.py, `train_on_batch` on the same
 *   network with AdamW and its moving average, timed, then the same steps
 *   under TensorFlow's profiler, every op's time on the compute threads
 *   summed by op type.
 *
 * The two sides name their ops differently (tfjs kernels against TensorFlow
 * ops), so the report groups both into the same stages (convolutions, their
 * gradients, batch normalisation, the optimizer, …; {@linkcode stageOf}).
 * TensorFlow runs independent ops of a step on two threads at once, so
 * Keras' op times can add up to more than its wall time; tfjs dispatches one
 * kernel at a time.
 *
 * ```sh
 * deno run -A bench/train_profile.ts [--arch resnet|seedCnn] [--steps 10] [--warmup 5] [--json bench/results/train_profile.json]
 * ```
 *
 * The first run installs `tensorflow-cpu==2.21.0` into `.cache/bench-venv`
 * from the project's pip index (bench/peer_env.ts; idempotent).
 *
 * @module
 */
import { join } from "node:path";
import { tmpdir } from "node:os";
import { readFileSync } from "node:fs";
import { runCli } from "../lib/core/cli.ts";
import { projectPaths } from "../lib/core/paths.ts";
import { writeTextAtomic } from "../lib/core/atomic.ts";
import { run } from "../lib/tools/proc.ts";
import { ensurePeerEnv } from "./peer_env.ts";
import { loadAverage, median, positiveInt } from "./bench_util.ts";

const TF_WHEEL = "tensorflow-cpu==2.21.0";
const ROOT = projectPaths().root;

/** The command line. */
export const TRAIN_PROFILE_CLI = {
  command: "deno run -A bench/train_profile.ts",
  summary:
    "One ResNet training step, op by op: ours (tfjs) against Keras on the\n" +
    "same network, batch and recipe.",
  flags: {
    steps: {
      type: "integer",
      default: 10,
      help: "steps timed, then steps profiled, per side",
    },
    warmup: { type: "integer", default: 5, help: "steps before timing" },
    arch: {
      type: "string",
      choices: ["resnet", "seedCnn"],
      default: "resnet",
      help: "the network: the ResNet with the shipped recipe, or\n" +
        "the seed CNN with plain Adam (as bench/train.ts)",
    },
    filters: {
      type: "string",
      default: "32,64,128,256",
      help: "the ResNet's stage widths",
    },
    json: {
      type: "string",
      value: "FILE",
      default: "bench/results/train_profile.json",
      help: "results file",
    },
    "worker-out": {
      type: "string",
      value: "FILE",
      help: "internal: profile our side in this process, report to FILE",
    },
  },
} as const;

/** One op (or kernel) of a side's profile, per step. */
export interface OpTime {
  /** tfjs kernel name, or TensorFlow op type. */
  op: string;
  /** Milliseconds per step. */
  msPerStep: number;
  /** Calls per step. */
  callsPerStep: number;
}

/** What one side reports. */
export interface SideProfile {
  side: "ours" | "keras";
  wallMsPerStep: number;
  opMsPerStep: number;
  ops: OpTime[];
  [key: string]: unknown;
}

const STAGES: [string, RegExp][] = [
  ["convolutions and matrix products, forward and gradients", /Conv2D|MatMul/],
  ["batch normalisation, fused kernels", /BatchNorm/],
  ["ReLU and max pooling, forward and gradients", /Relu|MaxPool/],
];

/**
 * The stage an op belongs to, by its tfjs kernel or TensorFlow op name.
 * Everything else is "element-wise ops and reductions": the loss, Adam, the
 * weight decay and the moving average on both sides, and Keras' batch
 * normalisation, which Keras 3 builds from such ops rather than a fused
 * kernel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stageOf } from "./train_profile.ts";
 * assert.equal(stageOf("_MklNativeConv2DBackpropFilter"), stageOf("FusedConv2D"));
 * assert.equal(stageOf("NativeBatchNormTrainingGrad"), "batch normalisation, fused kernels");
 * assert.equal(stageOf("Add"), "element-wise ops and reductions");
 * ```
 */
export function stageOf(op: string): string {
  for (const [stage, pattern] of STAGES) if (pattern.test(op)) return stage;
  return OTHER;
}

const OTHER = "element-wise ops and reductions";

/** Milliseconds per step of each stage. */
export function byStage(ops: OpTime[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of ops) {
    const stage = stageOf(o.op);
    out[stage] = (out[stage] ?? 0) + o.msPerStep;
  }
  return out;
}

/** Each kernel's time per step over `steps` steps under `tf.profile`. */
async function kernelTimes(
  tf: typeof import("../lib/core/tf.ts").tf,
  once: () => Promise<void>,
  steps: number,
): Promise<OpTime[]> {
  const totals = new Map<string, { ms: number; calls: number }>();
  for (let i = 0; i < steps; i++) {
    const info = await tf.profile(once);
    // tfjs lists an op (`name__op`) and the kernels it ran: keep the kernels.
    for (const k of info.kernels.filter((k) => !k.name.endsWith("__op"))) {
      const t = totals.get(k.name) ?? { ms: 0, calls: 0 };
      t.ms += Number(k.kernelTimeMs) || 0;
      t.calls += 1;
      totals.set(k.name, t);
    }
  }
  return [...totals].map(([op, t]) => ({
    op,
    msPerStep: t.ms / steps,
    callsPerStep: t.calls / steps,
  })).sort((a, b) => b.msPerStep - a.msPerStep);
}

/** What a profile run takes. */
interface ProfileOptions {
  steps: number;
  warmup: number;
  arch: "resnet" | "seedCnn";
  filters: number[];
}

/**
 * Our training step as `deno task train` runs it: the native kernels and
 * NativeAdam; for the ResNet the shipped recipe's weight decay and moving
 * average too. Returns one step and the model.
 */
async function ourStep(options: ProfileOptions) {
  const { tf } = await import("../lib/core/tf.ts");
  const { useNativeKernels } = await import("../lib/model/native_kernels.ts");
  const { NativeAdam } = await import("../lib/model/native_adam.ts");
  const { buildModel } = await import("../lib/model/models.ts");
  const { createTrainStep } = await import("../lib/train/step.ts");
  const { WeightAverage } = await import("../lib/train/ema.ts");
  const { rng } = await import("../lib/core/random.ts");
  useNativeKernels();
  const size = 128, batch = 32, resnet = options.arch === "resnet";
  const model = buildModel(options.arch, {
    inputSize: size,
    channels: 1,
    numClasses: 4,
    seed: 42,
    ...(resnet ? { filters: options.filters } : {}),
  });
  const optimizer = new NativeAdam({ learningRate: 1e-3, epsilon: 1e-7 });
  model.compile({ optimizer, loss: "sparseCategoricalCrossentropy" });
  const step = createTrainStep({
    model,
    optimizer,
    config: {
      seed: 42,
      augmentation: false,
      classWeights: null,
      classes: ["glioma", "meningioma", "notumor", "pituitary"],
      labelSmoothing: 0,
      mixup: 0,
      weightDecay: resnet ? 1 : 0,
      inputSize: size,
    },
  });
  const average = resnet
    ? new WeightAverage(model, { decay: 0.998 })
    : undefined;
  const r = rng(42);
  const images = {
    pixels: Uint8Array.from(
      { length: batch * size * size },
      () => r.int(0, 255),
    ),
    labels: Int32Array.from({ length: batch }, (_, i) => i % 4),
  };
  const indices = Array.from({ length: batch }, (_, i) => i);
  let n = 0;
  const once = async () => {
    await step({ images, indices, epoch: 0, batch: n, learningRate: 1e-3 });
    average?.update(n);
    n++;
  };
  return { tf, model, once, dispose: () => average?.dispose() };
}

/** Profiles our side in this process (see the module documentation). */
async function profileOurs(options: ProfileOptions): Promise<SideProfile> {
  const { tf, model, once, dispose } = await ourStep(options);
  for (let i = 0; i < options.warmup; i++) await once();
  const walls: number[] = [];
  for (let i = 0; i < options.steps; i++) {
    const t = performance.now();
    await once();
    walls.push(performance.now() - t);
  }
  const ops = await kernelTimes(tf, once, options.steps);
  const params = model.countParams();
  dispose();
  model.dispose();
  return {
    side: "ours",
    arch: options.arch,
    versions: { tfjs: tf.version.tfjs },
    params,
    wallMsPerStep: median(walls),
    opMsPerStep: ops.reduce((s, o) => s + o.msPerStep, 0),
    ops,
  };
}

/** Runs one side as a child process and reads its report. */
async function sideInChild(
  side: "ours" | "keras",
  options: { steps: number; warmup: number; arch: string; filters: string },
): Promise<SideProfile> {
  const out = join(tmpdir(), `train-profile-${side}-${Deno.pid}.json`);
  const common = [
    "--steps",
    String(options.steps),
    "--warmup",
    String(options.warmup),
    "--arch",
    options.arch,
    "--filters",
    options.filters,
  ];
  const python = side === "keras"
    ? await ensurePeerEnv({ packages: [TF_WHEEL] })
    : "";
  const cmd = side === "keras"
    ? [python, join(ROOT, "bench", "train_profile_keras.py"), "--out", out]
    : [Deno.execPath(), "run", "-A", join(ROOT, "bench", "train_profile.ts")];
  const args = side === "ours"
    ? [...cmd, "--worker-out", out, ...common]
    : [...cmd, ...common];
  const result = await run(args[0], {
    args: args.slice(1),
    env: { TF_CPP_MIN_LOG_LEVEL: "2" },
  });
  if (result.code !== 0) {
    throw new Error(
      `${side} side failed (exit ${result.code}):\n${result.stderr}`,
    );
  }
  const report = JSON.parse(readFileSync(out, "utf8")) as SideProfile;
  await Deno.remove(out);
  return report;
}

/** Wall time of a step not spent in any op (0 when ops overlap more). */
function gap(side: SideProfile): number {
  return Math.max(0, side.wallMsPerStep - side.opMsPerStep);
}

/** The comparison table, stage by stage, in Markdown. */
export function stageTable(ours: SideProfile, keras: SideProfile): string {
  const a = byStage(ours.ops), b = byStage(keras.ops);
  const stages = [...STAGES.map(([s]) => s), OTHER];
  const rows = stages.map((s) =>
    `| ${s} | ${(a[s] ?? 0).toFixed(1)} | ${(b[s] ?? 0).toFixed(1)} |`
  );
  return [
    "| stage | ours, ms per step | Keras, ms per step |",
    "| --- | ---: | ---: |",
    ...rows,
    `| all ops | ${ours.opMsPerStep.toFixed(1)} | ${
      keras.opMsPerStep.toFixed(1)
    } |`,
    `| wall time of a step | ${ours.wallMsPerStep.toFixed(1)} | ${
      keras.wallMsPerStep.toFixed(1)
    } |`,
    `| wall time outside any op | ${gap(ours).toFixed(1)} | ${
      gap(keras).toFixed(1)
    } |`,
  ].join("\n");
}

if (import.meta.main) {
  Deno.exit(
    await runCli(TRAIN_PROFILE_CLI, async ({ values }) => {
      const options = {
        steps: positiveInt(values.steps, "steps"),
        warmup: positiveInt(values.warmup, "warmup"),
        arch: values.arch,
        filters: values.filters,
      };
      if (values["worker-out"]) {
        const report = await profileOurs({
          ...options,
          filters: options.filters.split(",").map(Number),
        });
        await writeTextAtomic(values["worker-out"], JSON.stringify(report));
        return 0;
      }
      const before = loadAverage();
      const ours = await sideInChild("ours", options);
      const keras = await sideInChild("keras", options);
      const report = {
        date: new Date().toISOString(),
        cores: navigator.hardwareConcurrency,
        loadAverage: { before, after: loadAverage() },
        batch: 32,
        size: 128,
        ...options,
        byStage: { ours: byStage(ours.ops), keras: byStage(keras.ops) },
        ours,
        keras,
      };
      await writeTextAtomic(
        values.json,
        JSON.stringify(report, null, 2) + "\n",
      );
      console.log(stageTable(ours, keras));
      return 0;
    }),
  );
}
