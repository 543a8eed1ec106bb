/**
 * Training checkpoints: the model's weights, the optimizer's state and the
 * training loop's own state (a JSON object), written atomically so that a
 * run killed at any moment can continue from its last completed epoch.
 *
 * ```text
 * checkpoint/
 *   state.json       { format, version, savedAt, state } — the loop's state
 *   model.json       weight specs (name, shape, dtype), in model.weights order
 *   model.bin        the model's weights, trainable and not (batch-norm statistics)
 *   optimizer.json   weight specs of the optimizer's state + its extra numbers
 *   optimizer.bin    optimizer.getWeights(): iteration count, Adam's moments
 * ```
 *
 * The folder is replaced with {@linkcode writeDirAtomic}: the new checkpoint
 * is written beside the old one and renamed into place only when complete,
 * so the previous checkpoint survives a crash in the middle of a save.
 *
 * Weights are matched by position (and checked by shape), not by name:
 * tfjs renames variables (`conv1/kernel_1`) when the same model is built
 * twice in one process.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { recoverDirAtomic, writeDirAtomic } from "../model/saved_model.ts";
import { type LayersModel, type Tensor, tf } from "../core/tf.ts";

type Optimizer = import("@tensorflow/tfjs-node").Optimizer;
type NamedTensor = { name: string; tensor: Tensor };
type WeightsManifestEntry = Parameters<typeof tf.io.decodeWeights>[1][number];

/** The `format` field of a checkpoint's `state.json`. */
export const CHECKPOINT_FORMAT = "brain-mri-cnn/checkpoint";

/** The current checkpoint format version. */
export const CHECKPOINT_VERSION = 1;

/** File names inside a checkpoint folder. */
export const CHECKPOINT_FILES = {
  /** The loop's state. */
  state: "state.json",
  /** Model weight specs. */
  modelSpecs: "model.json",
  /** Model weights. */
  modelWeights: "model.bin",
  /** Optimizer weight specs and extras. */
  optimizerSpecs: "optimizer.json",
  /** Optimizer weights. */
  optimizerWeights: "optimizer.bin",
} as const;

/** A checkpoint could not be read or does not fit; the message names the folder. */
export class CheckpointError extends Error {
  /** The checkpoint folder. */
  readonly dir: string;
  /**
   * Makes the error.
   *
   * @param dir the checkpoint folder
   * @param problem what is wrong
   * @param options the cause, if any
   */
  constructor(dir: string, problem: string, options?: ErrorOptions) {
    super(`checkpoint ${dir}: ${problem}`, options);
    this.name = "CheckpointError";
    this.dir = dir;
  }
}

/**
 * Numbers some optimizers keep outside `getWeights()` and that an exact
 * resume needs. tfjs's Adam keeps β₁ᵗ and β₂ᵗ as running products; its
 * `setWeights` recomputes them with `pow`, which can differ in the last bit.
 */
interface AdamInternals {
  accBeta1?: Tensor;
  accBeta2?: Tensor;
}

function optimizerExtras(optimizer: Optimizer): Record<string, number> {
  const o = optimizer as unknown as AdamInternals;
  const extras: Record<string, number> = {};
  for (const key of ["accBeta1", "accBeta2"] as const) {
    const t = o[key];
    if (t && !t.isDisposed && t.size === 1) extras[key] = t.dataSync()[0];
  }
  return extras;
}

function restoreOptimizerExtras(
  optimizer: Optimizer,
  extras: Record<string, number>,
): void {
  const o = optimizer as unknown as AdamInternals;
  for (const key of ["accBeta1", "accBeta2"] as const) {
    const t = o[key] as unknown as { assign?(v: Tensor): void } | undefined;
    if (t?.assign && typeof extras[key] === "number") {
      const value = tf.scalar(extras[key]);
      t.assign(value);
      value.dispose();
    }
  }
}

async function encode(
  tensors: NamedTensor[],
): Promise<{ data: Uint8Array; specs: WeightsManifestEntry[] }> {
  // Prefix the position so names are unique and order survives decoding.
  const { data, specs } = await tf.io.encodeWeights(
    tensors.map((t, i) => ({ name: `${i}:${t.name}`, tensor: t.tensor })),
  );
  return { data: new Uint8Array(data), specs };
}

function decode(
  data: Uint8Array,
  specs: WeightsManifestEntry[],
): NamedTensor[] {
  const copy = data.slice().buffer;
  const map = tf.io.decodeWeights(copy, specs);
  return specs.map((s) => {
    const colon = s.name.indexOf(":");
    return { name: s.name.slice(colon + 1), tensor: map[s.name] };
  });
}

/** Options for {@linkcode saveCheckpoint}. */
export interface SaveCheckpointOptions<S> {
  /** The checkpoint folder (replaced atomically). */
  dir: string;
  /** The model whose weights to save. */
  model: LayersModel;
  /** The optimizer whose state to save (`getWeights()`). */
  optimizer: Optimizer;
  /** The training loop's state; must survive `JSON.stringify`. */
  state: S;
  /**
   * Called after each file is written into the temporary folder, before the
   * checkpoint is renamed into place (progress reporting; tests use it to
   * simulate a crash in the middle of a save).
   */
  afterWrite?: (file: string) => void | Promise<void>;
  /**
   * More files to keep in the checkpoint, by name (e.g. a snapshot of the
   * best weights); read them back with {@linkcode readCheckpointFile}.
   */
  extraFiles?: Record<string, Uint8Array>;
}

/**
 * Writes a checkpoint atomically: the previous one stays until the new one is
 * complete.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { saveCheckpoint, loadCheckpoint } from "./checkpoint.ts";
 * import { tf } from "../core/tf.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * const optimizer = tf.train.adam(0.01);
 * const dir = await Deno.makeTempDir();
 * await saveCheckpoint({ dir: `${dir}/checkpoint`, model, optimizer, state: { epoch: 1 } });
 * const state = await loadCheckpoint<{ epoch: number }>({ dir: `${dir}/checkpoint`, model, optimizer });
 * assert.equal(state.epoch, 1);
 * model.dispose();
 * optimizer.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveCheckpoint<S>(
  options: SaveCheckpointOptions<S>,
): Promise<void> {
  const { model, optimizer } = options;
  const values = model.getWeights();
  const modelWeights = await encode(
    model.weights.map((w, i) => ({
      name: w.originalName ?? w.name,
      tensor: values[i],
    })),
  );
  const extraFiles = Object.entries(options.extraFiles ?? {});
  for (const [name] of extraFiles) {
    if (
      !/^[\w.-]+$/.test(name) || name === CHECKPOINT_FILES.state ||
      Object.values(CHECKPOINT_FILES).includes(name as never)
    ) {
      throw new Error(`saveCheckpoint: invalid extra file name "${name}"`);
    }
  }
  const optimizerList = await optimizer.getWeights();
  let optimizerWeights;
  try {
    optimizerWeights = await encode(optimizerList);
  } finally {
    // getWeights() returns the live moment variables plus a fresh
    // iteration-count scalar; only the latter is ours to free.
    for (const w of optimizerList) {
      if (w.name === "iter") w.tensor.dispose();
    }
  }
  const stateText = JSON.stringify(
    {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      savedAt: new Date().toISOString(),
      state: options.state,
    },
    null,
    2,
  ) + "\n";
  const optimizerText = JSON.stringify({
    className: optimizer.getClassName(),
    iterations: optimizer.iterations,
    extras: optimizerExtras(optimizer),
    specs: optimizerWeights.specs,
  });
  const after = options.afterWrite ?? (() => {});
  await writeDirAtomic(options.dir, async (out) => {
    await out.write(CHECKPOINT_FILES.modelWeights, modelWeights.data);
    await after(CHECKPOINT_FILES.modelWeights);
    await out.write(
      CHECKPOINT_FILES.modelSpecs,
      JSON.stringify({ specs: modelWeights.specs }),
    );
    await after(CHECKPOINT_FILES.modelSpecs);
    await out.write(CHECKPOINT_FILES.optimizerWeights, optimizerWeights.data);
    await after(CHECKPOINT_FILES.optimizerWeights);
    await out.write(CHECKPOINT_FILES.optimizerSpecs, optimizerText);
    await after(CHECKPOINT_FILES.optimizerSpecs);
    for (const [name, data] of extraFiles) {
      await out.write(name, data);
      await after(name);
    }
    // state.json last: a folder with it is a complete checkpoint.
    await out.write(CHECKPOINT_FILES.state, stateText);
    await after(CHECKPOINT_FILES.state);
  });
}

/**
 * True when `dir` holds a checkpoint (possibly after repairing an interrupted
 * replacement).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hasCheckpoint } from "./checkpoint.ts";
 * const dir = await Deno.makeTempDir();
 * assert.equal(await hasCheckpoint(`${dir}/checkpoint`), false);
 * await Deno.remove(dir);
 * ```
 */
export async function hasCheckpoint(dir: string): Promise<boolean> {
  const abs = resolve(dir);
  await recoverDirAtomic(abs);
  return existsSync(join(abs, CHECKPOINT_FILES.state));
}

async function readJson(dir: string, file: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(dir, file));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new CheckpointError(dir, `${file} is missing`);
    }
    throw new CheckpointError(dir, `cannot read ${file}: ${error}`, {
      cause: error,
    });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new CheckpointError(dir, `${file} is not valid JSON`, {
      cause: error,
    });
  }
}

/**
 * Reads only the loop state of a checkpoint (no tensors).
 *
 * @example Needs a checkpoint on disk, so it is not run by `deno test --doc`.
 * ```ts ignore
 * import { readCheckpointState } from "./checkpoint.ts";
 * const state = await readCheckpointState<{ epochsCompleted: number }>("models/run/checkpoint");
 * console.log(state.epochsCompleted);
 * ```
 */
export async function readCheckpointState<S>(dir: string): Promise<S> {
  const abs = resolve(dir);
  await recoverDirAtomic(abs);
  const doc = await readJson(abs, CHECKPOINT_FILES.state) as {
    format?: string;
    version?: number;
    state?: S;
  };
  if (doc?.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(abs, "state.json is not a checkpoint");
  }
  if (doc.version !== CHECKPOINT_VERSION) {
    throw new CheckpointError(
      abs,
      `unknown checkpoint version ${doc.version} (this code reads ${CHECKPOINT_VERSION})`,
    );
  }
  return doc.state as S;
}

/**
 * Reads one of the `extraFiles` a checkpoint was saved with; undefined when
 * the checkpoint has no such file.
 *
 * @example Needs a checkpoint on disk, so it is not run by `deno test --doc`.
 * ```ts ignore
 * import { readCheckpointFile } from "./checkpoint.ts";
 * const best = await readCheckpointFile("models/run/checkpoint", "best.bin");
 * ```
 */
export async function readCheckpointFile(
  dir: string,
  name: string,
): Promise<Uint8Array | undefined> {
  const abs = resolve(dir);
  await recoverDirAtomic(abs);
  try {
    return await Deno.readFile(join(abs, name));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new CheckpointError(abs, `cannot read ${name}: ${error}`, {
      cause: error,
    });
  }
}

/** Options for {@linkcode loadCheckpoint}. */
export interface LoadCheckpointOptions {
  /** The checkpoint folder. */
  dir: string;
  /** The model to restore into (same architecture as when saved). */
  model: LayersModel;
  /** A fresh optimizer of the same kind, to restore into. */
  optimizer: Optimizer;
}

/** The specs a checkpoint's weights are read with. */
interface CheckpointSpecs {
  model: WeightsManifestEntry[];
  optimizer: {
    className: string;
    extras: Record<string, number>;
    specs: WeightsManifestEntry[];
  };
}

/** Reads the weight specs and checks the optimizer's kind. */
async function readSpecs(
  abs: string,
  optimizer: Optimizer,
): Promise<CheckpointSpecs> {
  const model = (await readJson(abs, CHECKPOINT_FILES.modelSpecs) as {
    specs: WeightsManifestEntry[];
  }).specs;
  const doc = await readJson(
    abs,
    CHECKPOINT_FILES.optimizerSpecs,
  ) as CheckpointSpecs["optimizer"];
  if (doc.className !== optimizer.getClassName()) {
    throw new CheckpointError(
      abs,
      `saved with a ${doc.className} optimizer, ` +
        `cannot restore into ${optimizer.getClassName()}`,
    );
  }
  return { model, optimizer: doc };
}

/** Bytes of float32 weights with these specs. */
function bytesOf(specs: WeightsManifestEntry[]): number {
  return specs.reduce(
    (s, w) => s + 4 * w.shape.reduce((a: number, b: number) => a * b, 1),
    0,
  );
}

/** Reads a weights file of the checkpoint. */
async function readWeights(abs: string, file: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(join(abs, file));
  } catch (error) {
    throw new CheckpointError(abs, `${file} is missing`, { cause: error });
  }
}

/** Checks that a weights file holds all that its specs describe. */
function checkWhole(
  abs: string,
  file: string,
  bytes: Uint8Array,
  specs: WeightsManifestEntry[],
): void {
  if (bytes.byteLength !== bytesOf(specs)) {
    throw new CheckpointError(abs, `${file} is truncated`);
  }
}

/** Checks that the saved weights fit the model, by count and shape. */
function checkModelFits(
  abs: string,
  specs: WeightsManifestEntry[],
  model: LayersModel,
): void {
  const weights = model.weights;
  if (specs.length !== weights.length) {
    throw new CheckpointError(
      abs,
      `holds ${specs.length} model weights, the model has ${weights.length} (different architecture?)`,
    );
  }
  specs.forEach((spec, i) => {
    const shape = weights[i].shape;
    if (spec.shape.join() !== shape.join()) {
      throw new CheckpointError(
        abs,
        `weight ${i} (${spec.name}) has shape [${spec.shape}], ` +
          `the model's ${
            weights[i].name
          } has [${shape}] (different architecture?)`,
      );
    }
  });
}

/** Sets the model's weights and the optimizer's state from their bytes. */
async function restoreWeights(
  options: LoadCheckpointOptions,
  specs: CheckpointSpecs,
  bytes: { model: Uint8Array; optimizer: Uint8Array },
): Promise<void> {
  const { model, optimizer } = options;
  const modelTensors = decode(bytes.model, specs.model);
  try {
    model.setWeights(modelTensors.map((t) => t.tensor));
  } finally {
    tf.dispose(modelTensors.map((t) => t.tensor));
  }
  const optimizerTensors = decode(bytes.optimizer, specs.optimizer.specs);
  try {
    await optimizer.setWeights(optimizerTensors);
    restoreOptimizerExtras(optimizer, specs.optimizer.extras ?? {});
  } finally {
    // setWeights keeps its own references (variables share the data).
    tf.dispose(optimizerTensors.map((t) => t.tensor));
  }
}

/**
 * Restores model weights and optimizer state from a checkpoint and returns
 * the loop state. The model must have the same weights (count and shapes) as
 * when saved; the optimizer should be fresh (not yet stepped). Nothing is
 * changed unless every file is there, whole, and fits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * import { tf } from "../core/tf.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * const optimizer = tf.train.adam(0.01);
 * const dir = await Deno.makeTempDir();
 * await saveCheckpoint({ dir: `${dir}/checkpoint`, model, optimizer, state: { epoch: 3 } });
 * const other = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [2] })] });
 * await assert.rejects(
 *   loadCheckpoint({ dir: `${dir}/checkpoint`, model: other, optimizer }),
 *   /has shape \[2,1\], the model's .* has \[2,2\]/,
 * );
 * for (const m of [model, other]) m.dispose();
 * optimizer.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadCheckpoint<S>(
  options: LoadCheckpointOptions,
): Promise<S> {
  const abs = resolve(options.dir);
  const state = await readCheckpointState<S>(abs);
  const specs = await readSpecs(abs, options.optimizer);
  const { modelWeights, optimizerWeights } = CHECKPOINT_FILES;
  const bytes = {
    model: await readWeights(abs, modelWeights),
    optimizer: await readWeights(abs, optimizerWeights),
  };
  checkWhole(abs, modelWeights, bytes.model, specs.model);
  checkWhole(abs, optimizerWeights, bytes.optimizer, specs.optimizer.specs);
  checkModelFits(abs, specs.model, options.model);
  await restoreWeights(options, specs, bytes);
  return state;
}
