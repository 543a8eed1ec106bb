/**
 * Notebook and run parameters. Each notebook opens with a cell of plain
 * constants a reader edits (`const EPOCHS = 10;` …, their values from
 * {@linkcode DEFAULTS}), followed by one line that applies environment
 * overrides, so that headless runs (`deno task report`) can change them
 * without editing cells:
 *
 * ```ts ignore
 * const params = withEnvOverrides({ epochs: EPOCHS, batchSize: BATCH_SIZE });
 * ```
 *
 * A variable that is unset or blank leaves the notebook's value; the three
 * training refinements and CLAHE are off (0) unless set.
 *
 * | variable                    | setting          | what                                  |
 * | --------------------------- | ---------------- | ------------------------------------- |
 * | `BRAIN_MRI_SEED`            | `seed`           | seed of every random choice           |
 * | `BRAIN_MRI_IMAGE_SIZE`      | `imageSize`      | side of the square input images       |
 * | `BRAIN_MRI_VAL`             | `validation`     | validation fraction                   |
 * | `BRAIN_MRI_TEST`            | `test`           | test fraction (carved from Training)  |
 * | `BRAIN_MRI_ARCH`            | `arch`           | architecture to train                 |
 * | `BRAIN_MRI_EPOCHS`          | `epochs`         | most epochs to train                  |
 * | `BRAIN_MRI_BATCH`           | `batchSize`      | batch size                            |
 * | `BRAIN_MRI_LR`              | `learningRate`   | Adam's initial learning rate          |
 * | `BRAIN_MRI_RUN`             | `run`            | run folder name under `models/`       |
 * | `BRAIN_MRI_EMA`             | `ema`            | decay of the weights' moving average  |
 * | `BRAIN_MRI_WEIGHT_DECAY`    | `weightDecay`    | decoupled weight decay                |
 * | `BRAIN_MRI_LABEL_SMOOTHING` | `labelSmoothing` | label smoothing of the training loss  |
 * | `BRAIN_MRI_CLAHE`           | `clahe`          | CLAHE's clip limit (8×8 tiles); 0 = off |
 *
 * A run folder's default name is {@linkcode runName}: the architecture, the
 * image size and a short hash of every setting that must stay the same to
 * resume, so that a changed setting trains into a folder of its own instead
 * of refusing to resume. Notebook 03 records the run it trained
 * ({@linkcode recordNotebookRun}) so that 04 and 05 find it
 * ({@linkcode notebookRun}).
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeTextAtomic } from "./atomic.ts";
import type { Clahe } from "./clahe.ts";
import { DEFAULTS } from "./defaults.ts";
import { projectPaths } from "./paths.ts";

/** The value of a training refinement (EMA, weight decay, label smoothing) that is off. */
const OFF = 0;

/** The architectures a notebook may name. */
const ARCHITECTURES = ["seedCnn", "vgg", "resnet"] as const;

/** Every parameter a notebook may set. */
export interface NotebookSettings {
  /** Seed of every random choice. */
  seed: number;
  /** Side of the square input images. */
  imageSize: number;
  /** Validation fraction. */
  validation: number;
  /** Test fraction (when carved from Training). */
  test: number;
  /** Architecture. */
  arch: "seedCnn" | "vgg" | "resnet";
  /** Most epochs. */
  epochs: number;
  /** Batch size. */
  batchSize: number;
  /** Initial learning rate. */
  learningRate: number;
  /** Run folder name under `models/` ("" = the default, {@linkcode runName}). */
  run: string;
  /** Decay of the weights' moving average; 0 = off. */
  ema: number;
  /** Decoupled weight decay; 0 = off. */
  weightDecay: number;
  /** Label smoothing of the training loss; 0 = off. */
  labelSmoothing: number;
  /** CLAHE's clip limit (on {@linkcode NOTEBOOK_CLAHE_TILES} tiles); 0 = off. */
  clahe: number;
}

/** The tiles per side of the CLAHE a notebook asks for with `clahe`. */
export const NOTEBOOK_CLAHE_TILES = 8;

/**
 * The CLAHE a notebook's clip limit asks for: `null` for 0 (off), else that
 * clip limit on {@linkcode NOTEBOOK_CLAHE_TILES}×{@linkcode NOTEBOOK_CLAHE_TILES} tiles.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { notebookClahe } from "./params.ts";
 * assert.equal(notebookClahe(0), null);
 * assert.deepEqual(notebookClahe(2), { clipLimit: 2, tiles: 8 });
 * ```
 */
export function notebookClahe(clipLimit: number): Clahe | null {
  return clipLimit > 0 ? { clipLimit, tiles: NOTEBOOK_CLAHE_TILES } : null;
}

interface Setting {
  variable: string;
  valid: (value: unknown) => boolean;
  parse: (raw: string) => unknown;
}

const integer = (min: number, max = Infinity) => (v: unknown) =>
  Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
const between = (min: number, max: number) => (v: unknown) =>
  typeof v === "number" && v >= min && v < max;

function numeric(
  variable: string,
  valid: (v: unknown) => boolean,
): Setting {
  return { variable, valid, parse: Number };
}

const SETTINGS: Record<keyof NotebookSettings, Setting> = {
  seed: numeric("BRAIN_MRI_SEED", integer(-Infinity)),
  imageSize: numeric("BRAIN_MRI_IMAGE_SIZE", integer(16, 1024)),
  validation: numeric("BRAIN_MRI_VAL", between(0, 1)),
  test: numeric("BRAIN_MRI_TEST", between(0, 1)),
  arch: {
    variable: "BRAIN_MRI_ARCH",
    valid: (v) => (ARCHITECTURES as readonly unknown[]).includes(v),
    parse: (raw) => raw,
  },
  epochs: numeric("BRAIN_MRI_EPOCHS", integer(1)),
  batchSize: numeric("BRAIN_MRI_BATCH", integer(1)),
  learningRate: numeric("BRAIN_MRI_LR", (v) => between(0, 1)(v) && v !== 0),
  run: {
    variable: "BRAIN_MRI_RUN",
    valid: (v) => typeof v === "string" && !/[\\/]|^\.\.?$/.test(v),
    parse: (raw) => raw,
  },
  ema: numeric("BRAIN_MRI_EMA", between(0, 1)),
  weightDecay: numeric("BRAIN_MRI_WEIGHT_DECAY", between(0, Infinity)),
  labelSmoothing: numeric("BRAIN_MRI_LABEL_SMOOTHING", between(0, 1)),
  clahe: numeric("BRAIN_MRI_CLAHE", between(0, 256)),
};

function invalid(key: keyof NotebookSettings, shown: string): Error {
  if (key === "arch") {
    return new Error(`${shown} is not one of ${ARCHITECTURES.join(", ")}`);
  }
  return new Error(`${shown} is not a valid value`);
}

/** One setting: the environment's value when set, else the notebook's. */
function resolveSetting(
  key: keyof NotebookSettings,
  value: unknown,
  env: Record<string, string | undefined>,
): unknown {
  const setting = SETTINGS[key];
  if (!setting) throw new Error(`unknown notebook setting ${key}`);
  const raw = env[setting.variable]?.trim();
  if (raw) {
    const parsed = setting.parse(raw);
    if (!setting.valid(parsed)) {
      throw invalid(key, `${setting.variable}=${raw}`);
    }
    return parsed;
  }
  if (!setting.valid(value)) {
    throw invalid(key, `${key} = ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Returns the notebook's settings with each one replaced by its environment
 * variable (see the module documentation) when that is set. Every value is
 * checked: a malformed one is an error naming the variable or the setting.
 *
 * @example A headless run trains 3 epochs whatever the cell says
 * ```ts
 * import assert from "node:assert/strict";
 * import { withEnvOverrides } from "./params.ts";
 * const EPOCHS = 10;
 * const BATCH_SIZE = 32;
 * const params = withEnvOverrides(
 *   { epochs: EPOCHS, batchSize: BATCH_SIZE },
 *   { env: { BRAIN_MRI_EPOCHS: "3" } },
 * );
 * assert.deepEqual(params, { epochs: 3, batchSize: 32 });
 * assert.throws(
 *   () => withEnvOverrides({ epochs: 0 }, { env: {} }),
 *   /epochs = 0 is not a valid value/,
 * );
 * assert.throws(
 *   () => withEnvOverrides({ validation: 0.15 }, { env: { BRAIN_MRI_VAL: "1.5" } }),
 *   /BRAIN_MRI_VAL=1\.5 is not a valid value/,
 * );
 * ```
 */
export function withEnvOverrides<T extends Partial<NotebookSettings>>(
  settings: T,
  options: { env?: Record<string, string | undefined> } = {},
): T {
  const env = options.env ?? Deno.env.toObject();
  return Object.fromEntries(
    Object.entries(settings).map(([key, value]) => [
      key,
      resolveSetting(key as keyof NotebookSettings, value, env),
    ]),
  ) as T;
}

/** The settings that name a run folder: every one that must stay the same to resume. */
export interface RunNameSettings {
  /** Architecture. */
  arch: string;
  /** Side of the square input images. */
  imageSize: number;
  /** Seed of every random choice. */
  seed: number;
  /** Validation fraction. */
  validation: number;
  /** Test fraction. */
  test: number;
  /** Batch size. */
  batchSize: number;
  /** Initial learning rate. */
  learningRate: number;
  /** Decay of the weights' moving average; 0 = off. */
  ema: number;
  /** Decoupled weight decay; 0 = off. */
  weightDecay: number;
  /** Label smoothing; 0 = off. */
  labelSmoothing: number;
  /** CLAHE's clip limit; 0 = off. */
  clahe: number;
  /**
   * The network's topology when it is not the library architecture `arch`
   * builds (a network edited in notebook 02); absent otherwise.
   */
  network?: string;
}

/** FNV-1a, 32 bits, as 8 hex digits: a short, stable fingerprint of a text. */
function shortHash(text: string): string {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

/**
 * The default run folder name: `<arch>-<imageSize>-<hash>`, the hash over
 * every setting that must stay the same to resume a run (all but `epochs`,
 * which may grow). Changing any of them names a new folder, so a notebook
 * re-run with new settings trains afresh instead of refusing to resume; the
 * same settings name the same folder, so a re-run resumes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runName } from "./params.ts";
 * const settings = {
 *   arch: "seedCnn", imageSize: 128, seed: 42, validation: 0.15, test: 0.15,
 *   batchSize: 32, learningRate: 0.001, ema: 0, weightDecay: 0, labelSmoothing: 0,
 *   clahe: 0,
 * };
 * assert.match(runName(settings), /^seedCnn-128-[0-9a-f]{8}$/);
 * assert.equal(runName({ ...settings }), runName(settings));
 * assert.notEqual(runName({ ...settings, learningRate: 0.01 }), runName(settings));
 * assert.notEqual(runName({ ...settings, clahe: 2 }), runName(settings));
 * // epochs may grow when resuming, so they do not name the folder
 * assert.equal(runName({ ...settings, epochs: 20 } as typeof settings), runName(settings));
 * ```
 */
export function runName(settings: RunNameSettings): string {
  const named = RUN_NAME_KEYS.flatMap((k) =>
    settings[k] === undefined ? [] : [[k, settings[k]]]
  );
  const canonical = JSON.stringify(named);
  return `${settings.arch}-${settings.imageSize}-${shortHash(canonical)}`;
}

/** The settings {@linkcode runName} hashes, in a fixed order (others are ignored). */
const RUN_NAME_KEYS: readonly (keyof RunNameSettings)[] = [
  "arch",
  "batchSize",
  "clahe",
  "ema",
  "imageSize",
  "labelSmoothing",
  "learningRate",
  "network",
  "seed",
  "test",
  "validation",
  "weightDecay",
];

/** The parameters every notebook shares. */
export interface RunParams {
  /** Seed of every random choice. */
  seed: number;
  /** Side of the square input images. */
  size: number;
  /** Validation fraction. */
  validation: number;
  /** Test fraction (when carved from Training). */
  test: number;
  /** The CLAHE of every scan, or `null` for none. */
  clahe: Clahe | null;
}

/**
 * Reads the run parameters from the environment, with defaults from
 * {@linkcode DEFAULTS}; a malformed value is an error naming the variable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULTS } from "./defaults.ts";
 * import { runParams } from "./params.ts";
 * assert.deepEqual(runParams({ env: { BRAIN_MRI_SEED: "7" } }), {
 *   seed: 7,
 *   size: DEFAULTS.imageSize,
 *   validation: DEFAULTS.validationFraction,
 *   test: DEFAULTS.testFraction,
 *   clahe: null,
 * });
 * assert.throws(
 *   () => runParams({ env: { BRAIN_MRI_VAL: "1.5" } }),
 *   /BRAIN_MRI_VAL=1\.5 is not a valid value/,
 * );
 * ```
 */
export function runParams(
  options: { env?: Record<string, string | undefined> } = {},
): RunParams {
  const p = withEnvOverrides({
    seed: DEFAULTS.seed,
    imageSize: DEFAULTS.imageSize,
    validation: DEFAULTS.validationFraction,
    test: DEFAULTS.testFraction,
    clahe: OFF,
  }, options);
  return {
    seed: p.seed,
    size: p.imageSize,
    validation: p.validation,
    test: p.test,
    clahe: notebookClahe(p.clahe),
  };
}

/** Training parameters (notebook 03's defaults, `deno task report`). */
export interface TrainParams {
  /** Architecture. */
  arch: "seedCnn" | "vgg" | "resnet";
  /** Most epochs. */
  epochs: number;
  /** Batch size. */
  batchSize: number;
  /** Initial learning rate. */
  learningRate: number;
  /** Run folder name under `models/`. */
  run: string;
  /** Decay of the weights' moving average (`trainModel`'s `ema`); 0 = off. */
  ema: number;
  /** Decoupled weight decay (`trainModel`'s `weightDecay`); 0 = off. */
  weightDecay: number;
  /** Label smoothing of the training loss; 0 = off. */
  labelSmoothing: number;
}

/**
 * Reads the training parameters from the environment, with defaults (see
 * the module documentation); the run folder defaults to {@linkcode runName}
 * of these settings, the name notebook 03 gives a run of its default
 * network. A malformed value is an error naming the variable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULTS } from "./defaults.ts";
 * import { trainParams } from "./params.ts";
 * const train = trainParams({
 *   env: { BRAIN_MRI_EPOCHS: "3", BRAIN_MRI_ARCH: "resnet" },
 * });
 * assert.equal(train.epochs, 3);
 * assert.equal(train.batchSize, DEFAULTS.batchSize);
 * assert.match(train.run, new RegExp(`^resnet-${DEFAULTS.imageSize}-`));
 * assert.equal(train.ema, 0); // off
 * ```
 */
export function trainParams(
  options: { env?: Record<string, string | undefined> } = {},
): TrainParams {
  const train = withEnvOverrides({
    arch: DEFAULTS.arch,
    epochs: DEFAULTS.epochs,
    batchSize: DEFAULTS.batchSize,
    learningRate: DEFAULTS.learningRate,
    run: "",
    ema: OFF,
    weightDecay: OFF,
    labelSmoothing: OFF,
  }, options);
  const { size, clahe, ...data } = runParams(options);
  const { run, epochs: _, ...recipe } = train;
  const clipLimit = clahe?.clipLimit ?? OFF;
  return {
    ...train,
    run: run ||
      runName({ ...recipe, ...data, imageSize: size, clahe: clipLimit }),
  };
}

/** The file in the models folder naming the run notebook 03 trained last. */
export const NOTEBOOK_RUN_FILE = "notebook_run.json";

/** What {@linkcode recordNotebookRun} records and {@linkcode notebookRun} returns. */
export interface NotebookRun {
  /** Run folder name under the models folder. */
  run: string;
  /** The data settings the run was trained with. */
  settings: RunParams;
}

/**
 * Records `run` as the run notebook 03 trained last, with its data
 * settings, in {@linkcode NOTEBOOK_RUN_FILE} of the models folder (written
 * atomically).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { notebookRun, recordNotebookRun, runParams } from "./params.ts";
 * const modelsDir = await Deno.makeTempDir();
 * const settings = { ...runParams({ env: {} }), seed: 7 };
 * await recordNotebookRun({ run: "seedCnn-128-0badcafe", settings, modelsDir });
 * assert.deepEqual(notebookRun({ modelsDir, env: {} }), {
 *   run: "seedCnn-128-0badcafe",
 *   settings,
 * });
 * await Deno.remove(modelsDir, { recursive: true });
 * ```
 */
export async function recordNotebookRun(
  options: NotebookRun & { modelsDir?: string },
): Promise<void> {
  const dir = options.modelsDir ?? projectPaths().models;
  await Deno.mkdir(dir, { recursive: true });
  await writeTextAtomic(
    join(dir, NOTEBOOK_RUN_FILE),
    JSON.stringify({ run: options.run, settings: options.settings }, null, 2) +
      "\n",
  );
}

/**
 * The run notebooks 04 and 05 open: `run` when given (or `BRAIN_MRI_RUN`),
 * else the run notebook 03 recorded last, else the run 03 trains with the
 * default settings ({@linkcode trainParams}). Its data settings are the
 * recorded ones when it is the recorded run, else {@linkcode runParams}.
 *
 * @example With nothing recorded, the default run
 * ```ts
 * import assert from "node:assert/strict";
 * import { notebookRun, runParams, trainParams } from "./params.ts";
 * const modelsDir = await Deno.makeTempDir();
 * assert.deepEqual(notebookRun({ modelsDir, env: {} }), {
 *   run: trainParams({ env: {} }).run,
 *   settings: runParams({ env: {} }),
 * });
 * assert.equal(notebookRun({ run: "mine", modelsDir, env: {} }).run, "mine");
 * await Deno.remove(modelsDir, { recursive: true });
 * ```
 */
export function notebookRun(
  options: {
    run?: string;
    modelsDir?: string;
    env?: Record<string, string | undefined>;
  } = {},
): NotebookRun {
  const env = options.env ?? Deno.env.toObject();
  const { run } = withEnvOverrides({ run: options.run ?? "" }, { env });
  const dir = options.modelsDir ?? projectPaths({ env }).models;
  const file = join(dir, NOTEBOOK_RUN_FILE);
  const recorded: NotebookRun | undefined = existsSync(file)
    ? JSON.parse(readFileSync(file, "utf8"))
    : undefined;
  if (recorded && (!run || run === recorded.run)) {
    return {
      run: recorded.run,
      settings: {
        ...recorded.settings,
        clahe: recorded.settings.clahe ?? null,
      },
    };
  }
  return {
    run: run || trainParams({ env }).run,
    settings: runParams({ env }),
  };
}
