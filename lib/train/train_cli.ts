/**
 * `deno task train`: prepares the data, trains a model into a run folder with
 * live progress, evaluates the best model on the held-out test split (full
 * and de-duplicated) and prints a summary.
 *
 * ```sh
 * deno task train -- --data DIR --arch seedCnn --size 128 --epochs 20 --out models/NAME \
 *   [--batch-size 32] [--lr 0.001] [--seed 42] [--val 0.15] [--test 0.15] \
 *   [--no-augment] [--class-weights balanced] [--patience 5] [--lr-patience 2] [--resume]
 * ```
 *
 * An `--out` folder that already holds a run is refused unless `--resume` is
 * given; then training continues from its last completed epoch (`--epochs`
 * may be raised; other settings must match). Ctrl-C stops after the current
 * batch; the last checkpoint stays, and `--resume` continues.
 *
 * @module
 */
import { existsSync, readdirSync } from "node:fs";
import { relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  type AugmentOptions,
  DEFAULT_AUGMENT_OPTIONS,
  resolveAugmentOptions,
} from "../data/augment.ts";
import { taskArgs } from "../core/cli.ts";
import { hasCheckpoint, readCheckpointState } from "./checkpoint.ts";
import { prepareData, resolveDataSource } from "../data/prepare.ts";
import { type Architecture, ARCHITECTURES } from "../model/models.ts";
import { projectPaths } from "../core/paths.ts";
import { formatDuration, terminalProgress } from "./progress.ts";
import { updateModelMetadata } from "../model/saved_model.ts";
import { DEFAULTS } from "../core/defaults.ts";
import {
  evaluateSplit,
  runPaths,
  trainModel,
  type TrainSplit,
  type TrainState,
  updateRunManifest,
} from "./train.ts";

/** The usage text. */
export const USAGE =
  `usage: deno task train -- [--data DIR] [--arch seedCnn|vgg|resnet] [--size N]
                          [--epochs N] [--out DIR] [options]

  --data DIR            dataset root (Kaggle layout or class folders);
                        default: BRAIN_MRI_DATA, data/, else the synthetic set
  --arch NAME           seedCnn (default), vgg or resnet
  --size N              image side in pixels (default 128)
  --epochs N            epochs (default 20)
  --out DIR             run folder (default models/<arch>-<size>)
  --batch-size N        batch size (default 32)
  --lr X                Adam's learning rate (default 0.001)
  --seed N              seed of the split and of training (default 42)
  --val X               validation fraction (default ${DEFAULTS.validationFraction})
  --test X              test fraction carved from Training (default ${DEFAULTS.testFraction})
  --no-augment          train without augmentation
  --augment JSON        augmentation ranges instead of the defaults, e.g.
                        '{"rotation":15,"zoom":0.15}' (keys flip, rotation,
                        zoom, shift, brightness, contrast)
  --class-weights W     "balanced", or weights "glioma=1.2,notumor=0.8"
  --patience N          early-stopping patience in epochs (default 5; 0 = off)
  --lr-patience N       epochs without improvement before halving the
                        learning rate (default 2; 0 = off)
  --cosine              cosine learning-rate decay over --epochs instead
                        of halving on plateaus
  --cosine-over UNIT    "epochs" (default) or "time": the cosine decay runs
                        over the --max-minutes budget instead, reaching its
                        floor as the budget runs out (implies --cosine)
  --ema DECAY           validate, select and save an exponential moving
                        average of the weights (e.g. 0.998), updated after
                        every batch
  --weight-decay X      decoupled weight decay of the kernels (AdamW style:
                        each step scales them by 1 - lr·X; default 0 = off)
  --label-smoothing E   train against targets 1 - E + E/k and E/k instead
                        of one-hot (e.g. 0.1; default 0 = off); validation
                        loss stays plain cross-entropy
  --max-minutes M       training time budget: stop after the epoch past
                        which one more would exceed it
  --refit               final fit of settings already chosen on validation:
                        train on the training and validation splits
                        together (same test split), no validation, no early
                        stopping; needs --cosine; the epoch with the lowest
                        training loss is kept
  --model-options JSON  extra options for the architecture, e.g.
                        '{"filters":[32,64,128,256]}'
  --no-test             do not evaluate the test split (for experiments:
                        select on validation, test only the final choice)
  --resume              continue the run in --out from its checkpoint
  --help                this text`;

/** A mistake in the command line. */
export class UsageError extends Error {}

/** Parsed command line. */
export interface TrainCliOptions {
  /** Dataset root, or undefined for the resolved default. */
  data?: string;
  /** Architecture. */
  arch: Architecture;
  /** Image side. */
  size: number;
  /** Epochs. */
  epochs: number;
  /** Run folder, absolute. */
  out: string;
  /** Batch size. */
  batchSize: number;
  /** Learning rate. */
  lr: number;
  /** Seed. */
  seed: number;
  /** Validation fraction. */
  val: number;
  /** Test fraction. */
  test: number;
  /** Augmentation: on with the default ranges, off, or these ranges. */
  augment: boolean | AugmentOptions;
  /** Class weights spec. */
  classWeights?: "balanced" | Record<string, number>;
  /** Early-stopping patience (0 = off). */
  patience: number;
  /** Reduce-on-plateau patience (0 = off). */
  lrPatience: number;
  /** Cosine learning-rate decay instead of reduce-on-plateau. */
  cosine: boolean;
  /** What the cosine decay runs over: epochs or the time budget. */
  cosineOver: "epochs" | "time";
  /** Training time budget in minutes, if any. */
  maxMinutes?: number;
  /** Decay of the weights' moving average, if one is kept. */
  ema?: number;
  /** Decoupled weight decay (0 = off). */
  weightDecay: number;
  /** Label smoothing of the training loss (0 = off). */
  labelSmoothing: number;
  /** Train on training + validation, without validation (a final refit). */
  refit: boolean;
  /** Extra options for the architecture's factory. */
  modelOptions: Record<string, unknown>;
  /** Evaluate the held-out test split at the end (off for experiments). */
  evalTest: boolean;
  /** Resume. */
  resume: boolean;
  /** Print usage and stop. */
  help: boolean;
}

function int(
  value: string | undefined,
  flag: string,
  fallback: number,
  min = 1,
) {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(
      `--${flag} must be an integer >= ${min} (got "${value}")`,
    );
  }
  return n;
}

function fraction(value: string | undefined, flag: string, fallback: number) {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n >= 1) {
    throw new UsageError(
      `--${flag} must be a number in [0, 1) (got "${value}")`,
    );
  }
  return n;
}

/** The augmentation options there are: the keys of the defaults. */
const AUGMENT_KEYS = Object.keys(DEFAULT_AUGMENT_OPTIONS);

function augmentArg(text: string): AugmentOptions {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UsageError(`--augment must be a JSON object (got "${text}")`);
  }
  const unknown = Object.keys(value).filter((k) => !AUGMENT_KEYS.includes(k));
  if (unknown.length) {
    throw new UsageError(
      `--augment: unknown key ${unknown.map((k) => `"${k}"`).join(", ")} ` +
        `(known: ${AUGMENT_KEYS.join(", ")})`,
    );
  }
  try {
    resolveAugmentOptions(value as AugmentOptions);
  } catch (error) {
    throw new UsageError(
      `--augment: ${error instanceof Error ? error.message : error}`,
    );
  }
  return value as AugmentOptions;
}

/**
 * Parses the command line (a leading `--` is dropped).
 *
 * @example
 * ```ts
 * import { parseTrainArgs } from "./train_cli.ts";
 * const o = parseTrainArgs(["--", "--arch", "vgg", "--epochs", "3", "--out", "/tmp/run"]);
 * console.log(o.arch, o.epochs, o.out); // vgg 3 /tmp/run
 * ```
 */
export function parseTrainArgs(args: readonly string[]): TrainCliOptions {
  const { values, positionals } = parseArgs({
    args: taskArgs(args),
    options: {
      data: { type: "string" },
      arch: { type: "string" },
      size: { type: "string" },
      epochs: { type: "string" },
      out: { type: "string" },
      "batch-size": { type: "string" },
      lr: { type: "string" },
      seed: { type: "string" },
      val: { type: "string" },
      test: { type: "string" },
      "no-augment": { type: "boolean" },
      augment: { type: "string" },
      "class-weights": { type: "string" },
      patience: { type: "string" },
      "lr-patience": { type: "string" },
      cosine: { type: "boolean" },
      "cosine-over": { type: "string" },
      ema: { type: "string" },
      "weight-decay": { type: "string" },
      "label-smoothing": { type: "string" },
      "max-minutes": { type: "string" },
      "model-options": { type: "string" },
      "no-test": { type: "boolean" },
      refit: { type: "boolean" },
      resume: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length) {
    throw new UsageError(`unexpected argument "${positionals[0]}"`);
  }
  const arch = (values.arch ?? "seedCnn") as Architecture;
  if (!(arch in ARCHITECTURES)) {
    throw new UsageError(
      `--arch must be one of ${
        Object.keys(ARCHITECTURES).join(", ")
      } (got "${arch}")`,
    );
  }
  const size = int(values.size, "size", 128);
  const lr = values.lr === undefined ? 1e-3 : Number(values.lr);
  if (!(lr > 0 && Number.isFinite(lr))) {
    throw new UsageError(`--lr must be a positive number (got "${values.lr}")`);
  }
  const seed = values.seed === undefined ? 42 : Number(values.seed);
  if (!Number.isSafeInteger(seed)) {
    throw new UsageError(`--seed must be an integer (got "${values.seed}")`);
  }
  let classWeights: TrainCliOptions["classWeights"];
  const cw = values["class-weights"];
  if (cw !== undefined) {
    if (cw === "balanced") classWeights = "balanced";
    else {
      classWeights = {};
      for (const part of cw.split(",")) {
        const [name, w] = part.split("=");
        const weight = Number(w);
        if (!name || !(weight > 0)) {
          throw new UsageError(
            `--class-weights must be "balanced" or "class=weight,..." (got "${cw}")`,
          );
        }
        classWeights[name.trim()] = weight;
      }
    }
  }
  let augment: boolean | AugmentOptions = !values["no-augment"];
  if (values.augment !== undefined) {
    if (values["no-augment"]) {
      throw new UsageError("--augment and --no-augment cannot be combined");
    }
    augment = augmentArg(values.augment);
  }
  let modelOptions: unknown = {};
  if (values["model-options"] !== undefined) {
    try {
      modelOptions = JSON.parse(values["model-options"]);
    } catch {
      modelOptions = null;
    }
    if (
      typeof modelOptions !== "object" || modelOptions === null ||
      Array.isArray(modelOptions)
    ) {
      throw new UsageError(
        `--model-options must be a JSON object (got "${
          values["model-options"]
        }")`,
      );
    }
  }
  const maxMinutes = values["max-minutes"] === undefined
    ? undefined
    : Number(values["max-minutes"]);
  if (maxMinutes !== undefined && !(maxMinutes > 0)) {
    throw new UsageError(
      `--max-minutes must be a positive number (got "${
        values["max-minutes"]
      }")`,
    );
  }
  const ema = values.ema === undefined ? undefined : Number(values.ema);
  if (ema !== undefined && !(ema > 0 && ema < 1)) {
    throw new UsageError(
      `--ema must be a decay in (0, 1) (got "${values.ema}")`,
    );
  }
  const weightDecay = values["weight-decay"] === undefined
    ? 0
    : Number(values["weight-decay"]);
  if (!(weightDecay >= 0 && Number.isFinite(weightDecay))) {
    throw new UsageError(
      `--weight-decay must be a number >= 0 (got "${values["weight-decay"]}")`,
    );
  }
  const labelSmoothing = values["label-smoothing"] === undefined
    ? 0
    : Number(values["label-smoothing"]);
  if (!(labelSmoothing >= 0 && labelSmoothing < 1)) {
    throw new UsageError(
      `--label-smoothing must be in [0, 1) (got "${
        values["label-smoothing"]
      }")`,
    );
  }
  const cosineOver = values["cosine-over"] ?? "epochs";
  if (cosineOver !== "epochs" && cosineOver !== "time") {
    throw new UsageError(
      `--cosine-over must be "epochs" or "time" (got "${cosineOver}")`,
    );
  }
  if (cosineOver === "time" && maxMinutes === undefined) {
    throw new UsageError("--cosine-over time needs --max-minutes");
  }
  const cosine = (values.cosine ?? false) ||
    values["cosine-over"] !== undefined;
  if (cosine && values["lr-patience"] !== undefined) {
    throw new UsageError("--cosine and --lr-patience cannot be combined");
  }
  const refit = values.refit ?? false;
  if (refit && !cosine) {
    throw new UsageError(
      "--refit needs --cosine (or --cosine-over): without validation there " +
        "is no loss for reduce-on-plateau to watch",
    );
  }
  if (refit && values.patience !== undefined && values.patience !== "0") {
    throw new UsageError(
      "--refit trains without validation: early stopping is off (drop --patience)",
    );
  }
  const val = fraction(values.val, "val", DEFAULTS.validationFraction);
  if (refit && val === 0) {
    throw new UsageError(
      "--refit needs a validation split to merge (--val > 0)",
    );
  }
  const test = fraction(values.test, "test", DEFAULTS.testFraction);
  if (val + test >= 1) {
    throw new UsageError("--val plus --test must be below 1");
  }
  return {
    ...(values.data !== undefined ? { data: resolve(values.data) } : {}),
    arch,
    size,
    epochs: int(values.epochs, "epochs", 20),
    out: resolve(values.out ?? `${projectPaths().models}/${arch}-${size}`),
    batchSize: int(values["batch-size"], "batch-size", 32),
    lr,
    seed,
    val,
    test,
    augment,
    ...(classWeights ? { classWeights } : {}),
    patience: refit ? 0 : int(values.patience, "patience", 5, 0),
    lrPatience: cosine ? 0 : int(values["lr-patience"], "lr-patience", 2, 0),
    cosine,
    cosineOver,
    ...(maxMinutes !== undefined ? { maxMinutes } : {}),
    ...(ema !== undefined ? { ema } : {}),
    weightDecay,
    labelSmoothing,
    refit,
    modelOptions: modelOptions as Record<string, unknown>,
    evalTest: !values["no-test"],
    resume: values.resume ?? false,
    help: values.help ?? false,
  };
}

function pct(x: number): string {
  return Number.isFinite(x) ? `${(100 * x).toFixed(2)} %` : "–";
}

function shown(path: string): string {
  const rel = relative(Deno.cwd(), path);
  return rel && !rel.startsWith("..") ? rel : path;
}

/**
 * Runs the command. Returns the exit code (0 ok, 1 failure, 2 usage,
 * 130 interrupted).
 *
 * @example
 * ```ts ignore
 * import { main } from "./train_cli.ts";
 * Deno.exit(await main(["--size", "64", "--epochs", "2", "--out", "/tmp/run"]));
 * ```
 */
export async function main(
  args: readonly string[] = Deno.args,
): Promise<number> {
  const wall0 = performance.now();
  let o: TrainCliOptions;
  try {
    o = parseTrainArgs(args);
  } catch (error) {
    console.error(`train: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  const paths = runPaths(o.out);
  if (await hasCheckpoint(paths.checkpoint)) {
    const state = await readCheckpointState<TrainState>(paths.checkpoint);
    if (!o.resume) {
      console.error(
        `train: ${shown(paths.root)} already holds a training run ` +
          `(${state.config.arch} ${state.config.inputSize}px, checkpoint after ` +
          `epoch ${state.epochsCompleted} of ${state.config.epochs}). ` +
          "Pass --resume to continue it, or choose another --out.",
      );
      return 1;
    }
  } else if (
    existsSync(paths.root) && readdirSync(paths.root).length > 0
  ) {
    console.error(
      `train: ${shown(paths.root)} exists and holds no checkpoint to resume; ` +
        "choose another --out or remove it.",
    );
    return 1;
  } else if (o.resume) {
    console.log(
      `nothing to resume in ${shown(paths.root)}: starting a new run`,
    );
  }

  const source = o.data ?? await resolveDataSource();
  const data = await prepareData({
    source,
    size: o.size,
    seed: o.seed,
    validation: o.val,
    test: o.test,
    log: (m) => console.log(m),
  });
  if (data.source.synthetic) console.log(`data: ${data.source.reason}`);
  for (const e of data.errors) console.warn(`skipped ${e.path}: ${e.reason}`);
  console.log(
    `data: ${data.source.root} — ${data.classes.length} classes, ` +
      `train ${data.train.labels.length}, validation ${data.validation.labels.length}, ` +
      `test ${data.test.labels.length} (${data.testDeduplicated.labels.length} after de-duplication)`,
  );

  // A refit trains on training + validation and validates nothing.
  const train = o.refit ? mergeSplits(data.train, data.validation) : data.train;
  const validation = o.refit
    ? { pixels: new Uint8Array(0), labels: new Int32Array(0) }
    : data.validation;
  if (o.refit) {
    console.log(
      `refit: training on train + validation (${train.labels.length} images), ` +
        "no validation; the test split is unchanged",
    );
  }

  const controller = new AbortController();
  const onInterrupt = () => {
    if (controller.signal.aborted) Deno.exit(130);
    console.error(
      "\ninterrupted: stopping after this batch (Ctrl-C again to quit now); " +
        "continue later with --resume",
    );
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  let result;
  try {
    result = await trainModel({
      train,
      validation,
      classes: data.classes,
      size: o.size,
      arch: o.arch,
      modelOptions: o.modelOptions,
      epochs: o.epochs,
      batchSize: o.batchSize,
      learningRate: o.lr,
      seed: o.seed,
      augment: o.augment,
      ...(o.classWeights ? { classWeights: o.classWeights } : {}),
      earlyStopping: o.patience > 0 ? { patience: o.patience } : false,
      reduceLrOnPlateau: o.lrPatience > 0 ? { patience: o.lrPatience } : false,
      cosineDecay: o.cosine ? { over: o.cosineOver } : false,
      ...(o.ema !== undefined ? { ema: { decay: o.ema } } : {}),
      weightDecay: o.weightDecay,
      labelSmoothing: o.labelSmoothing,
      ...(o.maxMinutes !== undefined ? { maxSeconds: o.maxMinutes * 60 } : {}),
      runDir: paths.root,
      resume: o.resume,
      datasetFingerprint: data.fingerprint,
      split: {
        validation: o.val,
        test: o.test,
        ...(o.refit ? { validationTrained: true } : {}),
      },
      manifestExtra: {
        source: { root: data.source.root, synthetic: data.source.synthetic },
        split: {
          seed: o.seed,
          validation: o.val,
          test: o.test,
          ...(o.refit ? { validationTrained: true } : {}),
          testImages: data.test.labels.length,
          testDeduplicatedImages: data.testDeduplicated.labels.length,
        },
      },
      callbacks: terminalProgress(),
      signal: controller.signal,
    });
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
  try {
    let testLine = "not evaluated (--no-test)";
    let finite: Record<string, number> | null = null;
    if (o.evalTest) {
      const test = await evaluateSplit(result.model, data.test, {
        size: o.size,
      });
      const dedup = await evaluateSplit(result.model, data.testDeduplicated, {
        size: o.size,
      });
      const testMetrics = {
        test_acc: test.acc,
        test_loss: test.loss,
        test_images: test.count,
        test_dedup_acc: dedup.acc,
        test_dedup_loss: dedup.loss,
        test_dedup_images: dedup.count,
      };
      finite = Object.fromEntries(
        Object.entries(testMetrics).filter(([, v]) => Number.isFinite(v)),
      );
      testLine = `${pct(test.acc)} on ${test.count} images; ` +
        `${pct(dedup.acc)} on ${dedup.count} de-duplicated`;
    }
    if (finite && existsSync(paths.model)) {
      await updateModelMetadata(paths.model, { metrics: finite });
    }
    const wall = (performance.now() - wall0) / 1000;
    const history = result.history;
    const trainSeconds = history.reduce((s, r) => s + r.trainSeconds, 0);
    const images = history.reduce(
      (s, r) => s + r.imagesPerSecond * r.trainSeconds,
      0,
    );
    const msPerImage = images ? (1000 * trainSeconds) / images : NaN;
    await updateRunManifest(paths.root, {
      test: finite,
      testEvaluated: o.evalTest,
      cli: { wallSeconds: wall, args: taskArgs(args) },
    });
    const best = result.best;
    console.log(
      [
        "",
        `run:            ${
          shown(paths.root)
        } (${result.stopReason}, ${history.length} epochs` +
        (result.resumedFrom
          ? `, resumed after epoch ${result.resumedFrom}`
          : "") +
        ")",
        o.refit
          ? `kept epoch:     ${best?.epoch ?? "–"} (lowest training loss ${
            best?.loss.toFixed(4) ?? "–"
          }; refit, no validation)`
          : `best epoch:     ${best?.epoch ?? "–"} (val_loss ${
            best?.val_loss?.toFixed(4) ?? "–"
          }, val acc ${pct(best?.val_acc ?? NaN)})`,
        `test accuracy:  ${testLine}`,
        `wall time:      ${formatDuration(wall)} (training ${
          formatDuration(result.seconds)
        })`,
        `speed:          ${msPerImage.toFixed(2)} ms/image/epoch`,
        `model:          ${shown(paths.model)}`,
      ].join("\n"),
    );
    return result.stopReason === "aborted" ? 130 : 0;
  } finally {
    result.model.dispose();
  }
}

/** One split holding the images of `a` then those of `b`. */
function mergeSplits(a: TrainSplit, b: TrainSplit): TrainSplit {
  const pixels = new Uint8Array(a.pixels.length + b.pixels.length);
  pixels.set(a.pixels);
  pixels.set(b.pixels, a.pixels.length);
  const labels = new Int32Array(a.labels.length + b.labels.length);
  labels.set(a.labels);
  labels.set(b.labels, a.labels.length);
  return { pixels, labels };
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`train: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
