/**
 * Training checkpoints: the model's weights, the optimizer's state and the
 * training loop's own state (a JSON object), written atomically so that a
 * run killed at any moment can continue from its last completed epoch.
 *
 * ```text
 * checkpoint/
 *   state.json       { format, version, savedAt, files, state } — the loop's
 *                    state and the sizes of the extra files
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
 * Loading reads a checkpoint folder as the saved-model loader reads a model
 * folder: only regular files inside it (a symbolic link, a FIFO or a device
 * is refused without being opened, and so is a checkpoint folder that is a
 * symbolic link), each file's size checked before it is read (the JSON files
 * bounded, every weights file exactly what its manifest describes: the
 * specs in `model.json` and `optimizer.json`, the extra files' sizes in
 * `state.json`), and the manifests' fields validated. Every error is a
 * {@linkcode CheckpointError} naming the folder and the file.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { isRecord, shownValue } from "../core/text.ts";
import { join, resolve } from "node:path";
import {
  type FolderErrors,
  lstatInside,
  MAX_JSON_BYTES,
  MAX_WEIGHTS_BYTES,
  readFileInside,
  recoverDirAtomic,
  specBytes,
  writeDirAtomic,
} from "../model/saved_model.ts";
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

/** The optimizer's state (`getWeights()`), encoded. */
async function encodeOptimizer(
  optimizer: Optimizer,
): Promise<{ data: Uint8Array; specs: WeightsManifestEntry[] }> {
  const list = await optimizer.getWeights();
  try {
    return await encode(list);
  } finally {
    // tfjs's Adam returns its live moment variables plus a fresh
    // iteration-count scalar, NativeAdam fresh tensors only: free what is
    // not a variable.
    for (const w of list) {
      if (!(w.tensor instanceof tf.Variable)) w.tensor.dispose();
    }
  }
}

/** True when `name` may be an extra file of a checkpoint. */
function isExtraFileName(name: string): boolean {
  return /^[\w.-]+$/.test(name) && name !== "." && name !== ".." &&
    !Object.values(CHECKPOINT_FILES).includes(name as never);
}

/** The text of `state.json`: the loop's state and the extra files' sizes. */
function stateFileText<S>(
  state: S,
  extraFiles: [string, Uint8Array][],
): string {
  const doc: StateFile = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    savedAt: new Date().toISOString(),
    files: Object.fromEntries(
      extraFiles.map(([name, data]) => [name, data.byteLength]),
    ),
    state,
  };
  return JSON.stringify(doc, null, 2) + "\n";
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
    if (!isExtraFileName(name)) {
      throw new Error(`saveCheckpoint: invalid extra file name "${name}"`);
    }
  }
  const optimizerWeights = await encodeOptimizer(optimizer);
  const stateText = stateFileText(options.state, extraFiles);
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

/** The content of `state.json`. */
interface StateFile {
  format: string;
  version: number;
  savedAt: string;
  /** Sizes in bytes of the extra files (absent in older checkpoints). */
  files?: Record<string, number>;
  state: unknown;
}

/** The problems of a checkpoint's files are {@linkcode CheckpointError}s. */
function checkpointErrors(dir: string): FolderErrors {
  return {
    kind: "checkpoint",
    namedBy: "the checkpoint reader",
    error: (problem, options) => new CheckpointError(dir, problem, options),
  };
}

/**
 * Throws unless `abs` is a real folder (not a symbolic link to one, which
 * would let a checkpoint read files from elsewhere).
 */
async function checkCheckpointFolder(abs: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(abs);
  } catch (error) {
    throw new CheckpointError(abs, "no such folder", { cause: error });
  }
  if (info.isSymlink) {
    throw new CheckpointError(
      abs,
      "the checkpoint folder is a symbolic link; a checkpoint is read only " +
        "from a real folder",
    );
  }
  if (!info.isDirectory) throw new CheckpointError(abs, "not a folder");
}

/** A JSON file of the checkpoint: a regular file of at most 16 MiB. */
async function readJson(dir: string, file: string): Promise<unknown> {
  const bytes = await readFileInside(
    dir,
    file,
    { atMost: MAX_JSON_BYTES },
    checkpointErrors(dir),
  );
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new CheckpointError(dir, `${file} is not valid JSON: ${error}`, {
      cause: error,
    });
  }
}

/** Problems of the `files` record of `state.json` (name → size). */
function filesProblems(files: unknown): string[] {
  if (files === undefined) return [];
  if (!isRecord(files)) {
    return [`files is ${shownValue(files, 60)}, not an object`];
  }
  return Object.entries(files).flatMap(([name, size]) => {
    if (!isExtraFileName(name)) return [`files names ${shownValue(name, 60)}`];
    return Number.isSafeInteger(size) && (size as number) >= 0 &&
        (size as number) <= MAX_WEIGHTS_BYTES
      ? []
      : [`files gives ${name} the size ${shownValue(size, 60)}`];
  });
}

/** Throws unless `doc` is a `state.json` of this format and version. */
function checkStateFile(abs: string, doc: unknown): asserts doc is StateFile {
  const file = CHECKPOINT_FILES.state;
  if (!isRecord(doc) || doc.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(abs, `${file} is not a checkpoint`);
  }
  if (doc.version !== CHECKPOINT_VERSION) {
    throw new CheckpointError(
      abs,
      `unknown checkpoint version ${
        shownValue(doc.version, 60)
      } (this code reads ${CHECKPOINT_VERSION})`,
    );
  }
  const problems = filesProblems(doc.files);
  if (typeof doc.savedAt !== "string") problems.push("savedAt is no date");
  if (!("state" in doc)) problems.push("it holds no state");
  if (problems.length) {
    throw new CheckpointError(abs, `${file}: ${problems.join("; ")}`);
  }
}

/** `state.json`, checked (see {@linkcode checkStateFile}). */
async function readStateFile(abs: string): Promise<StateFile> {
  await recoverDirAtomic(abs);
  await checkCheckpointFolder(abs);
  const doc = await readJson(abs, CHECKPOINT_FILES.state);
  checkStateFile(abs, doc);
  return doc;
}

/** Options for {@linkcode readCheckpointState}. */
export interface ReadCheckpointStateOptions {
  /**
   * The problems of the saved state, one sentence each (none: it is
   * usable); a state with problems is refused, naming them.
   */
  check?: (state: unknown) => string[];
}

/**
 * Reads only the loop state of a checkpoint (no tensors), after checking
 * `state.json` (a regular file inside a real folder, bounded, of this format
 * and version) and, with `check`, the state itself.
 *
 * @example A state whose epoch count is not a count is refused
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCheckpointState, saveCheckpoint } from "./checkpoint.ts";
 * import { tf } from "../core/tf.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * const optimizer = tf.train.adam(0.01);
 * const dir = await Deno.makeTempDir();
 * await saveCheckpoint({ dir: `${dir}/checkpoint`, model, optimizer, state: { epoch: -1 } });
 * const check = (state: unknown) =>
 *   Number.isInteger((state as { epoch: number }).epoch) && (state as { epoch: number }).epoch >= 0
 *     ? []
 *     : ["epoch is not a count"];
 * await assert.rejects(
 *   readCheckpointState(`${dir}/checkpoint`, { check }),
 *   /checkpoint .*: state.json: epoch is not a count/,
 * );
 * assert.deepEqual(await readCheckpointState(`${dir}/checkpoint`), { epoch: -1 });
 * model.dispose();
 * optimizer.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readCheckpointState<S>(
  dir: string,
  options: ReadCheckpointStateOptions = {},
): Promise<S> {
  const abs = resolve(dir);
  const { state } = await readStateFile(abs);
  const problems = options.check?.(state) ?? [];
  if (problems.length) {
    throw new CheckpointError(
      abs,
      `${CHECKPOINT_FILES.state}: ${problems.join("; ")}`,
    );
  }
  return state as S;
}

/**
 * Reads one of the `extraFiles` a checkpoint was saved with; undefined when
 * the checkpoint has no such file. The file must be a regular file inside
 * the folder, of the size `state.json` records (a checkpoint saved before
 * sizes were recorded: at most 2 GiB).
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
  if (!isExtraFileName(name)) {
    throw new CheckpointError(
      abs,
      `invalid extra file name ${shownValue(name, 60)}`,
    );
  }
  const { files } = await readStateFile(abs);
  if (files && !Object.hasOwn(files, name)) return undefined;
  const errors = checkpointErrors(abs);
  try {
    await lstatInside(abs, name, errors);
  } catch (error) {
    if (error instanceof CheckpointError) {
      if (error.cause instanceof Deno.errors.NotFound) return undefined;
    }
    throw error;
  }
  const rule = files
    ? { exactly: files[name], describedBy: CHECKPOINT_FILES.state }
    : { atMost: MAX_WEIGHTS_BYTES };
  return await readFileInside(abs, name, rule, errors);
}

/** Options for {@linkcode loadCheckpoint}. */
export interface LoadCheckpointOptions extends ReadCheckpointStateOptions {
  /** The checkpoint folder. */
  dir: string;
  /** The model to restore into (same architecture as when saved). */
  model: LayersModel;
  /** A fresh optimizer of the same kind, to restore into. */
  optimizer: Optimizer;
}

/** The weight specs of one weights file and the bytes they describe. */
interface WeightSpecs {
  specs: WeightsManifestEntry[];
  bytes: number;
}

/** The specs a checkpoint's weights are read with. */
interface CheckpointSpecs {
  model: WeightSpecs;
  optimizer: WeightSpecs & { extras: Record<string, number> };
}

/**
 * The specs of `file` (`model.json` or `optimizer.json`) and their bytes;
 * throws naming the file when they are malformed or describe too much.
 */
function weightSpecs(abs: string, file: string, specs: unknown): WeightSpecs {
  if (!Array.isArray(specs)) {
    throw new CheckpointError(abs, `${file} has no list of weight specs`);
  }
  let bytes = 0;
  for (const spec of specs) {
    const size = specBytes(spec);
    if (typeof size === "string") {
      throw new CheckpointError(abs, `${file}: ${size}`);
    }
    bytes += size;
  }
  if (bytes > MAX_WEIGHTS_BYTES) {
    throw new CheckpointError(
      abs,
      `${file} describes ${bytes} bytes of weights, more than the ` +
        `${MAX_WEIGHTS_BYTES} allowed`,
    );
  }
  return { specs: specs as WeightsManifestEntry[], bytes };
}

/** The optimizer's extra numbers (β-powers), checked to be numbers. */
function optimizerExtrasOf(abs: string, extras: unknown) {
  if (extras === undefined) return {};
  if (
    !isRecord(extras) ||
    !Object.values(extras).every((v) =>
      typeof v === "number" && Number.isFinite(v)
    )
  ) {
    throw new CheckpointError(
      abs,
      `${CHECKPOINT_FILES.optimizerSpecs}: extras are not numbers`,
    );
  }
  return extras as Record<string, number>;
}

/** Reads the weight specs and checks the optimizer's kind. */
async function readSpecs(
  abs: string,
  optimizer: Optimizer,
): Promise<CheckpointSpecs> {
  const { modelSpecs, optimizerSpecs } = CHECKPOINT_FILES;
  const modelDoc = await readJson(abs, modelSpecs);
  const model = weightSpecs(
    abs,
    modelSpecs,
    isRecord(modelDoc) ? modelDoc.specs : undefined,
  );
  const doc = await readJson(abs, optimizerSpecs);
  if (!isRecord(doc) || typeof doc.className !== "string") {
    throw new CheckpointError(abs, `${optimizerSpecs} names no optimizer`);
  }
  if (doc.className !== optimizer.getClassName()) {
    throw new CheckpointError(
      abs,
      `saved with a ${shownValue(doc.className, 60).slice(1, -1)} optimizer, ` +
        `cannot restore into ${optimizer.getClassName()}`,
    );
  }
  return {
    model,
    optimizer: {
      ...weightSpecs(abs, optimizerSpecs, doc.specs),
      extras: optimizerExtrasOf(abs, doc.extras),
    },
  };
}

/**
 * Reads a weights file of the checkpoint: a regular file inside the folder
 * of exactly the bytes its specs (in `describedBy`) describe, checked before
 * it is read.
 */
function readWeights(
  abs: string,
  file: string,
  expected: { bytes: number; describedBy: string },
): Promise<Uint8Array> {
  return readFileInside(
    abs,
    file,
    { exactly: expected.bytes, describedBy: expected.describedBy },
    checkpointErrors(abs),
  );
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
        `weight ${i} (${
          shownValue(spec.name, 60)
        }) has shape [${spec.shape}], ` +
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
  const modelTensors = decode(bytes.model, specs.model.specs);
  try {
    model.setWeights(modelTensors.map((t) => t.tensor));
  } finally {
    tf.dispose(modelTensors.map((t) => t.tensor));
  }
  const optimizerTensors = decode(bytes.optimizer, specs.optimizer.specs);
  try {
    await optimizer.setWeights(optimizerTensors);
    restoreOptimizerExtras(optimizer, specs.optimizer.extras);
  } finally {
    // setWeights keeps its own references (variables share the data).
    tf.dispose(optimizerTensors.map((t) => t.tensor));
  }
}

/**
 * Restores model weights and optimizer state from a checkpoint and returns
 * the loop state. The model must have the same weights (count and shapes) as
 * when saved; the optimizer should be fresh (not yet stepped). Nothing is
 * changed unless every file is there, a regular file inside the folder,
 * whole, and fits; with `check`, the state must also pass it.
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
  const state = await readCheckpointState<S>(abs, options);
  const specs = await readSpecs(abs, options.optimizer);
  checkModelFits(abs, specs.model.specs, options.model);
  const { modelWeights, modelSpecs, optimizerWeights, optimizerSpecs } =
    CHECKPOINT_FILES;
  const bytes = {
    model: await readWeights(abs, modelWeights, {
      bytes: specs.model.bytes,
      describedBy: modelSpecs,
    }),
    optimizer: await readWeights(abs, optimizerWeights, {
      bytes: specs.optimizer.bytes,
      describedBy: optimizerSpecs,
    }),
  };
  await restoreWeights(options, specs, bytes);
  return state;
}
