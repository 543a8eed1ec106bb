/**
 * Classifying one encoded image at a time, in this thread or on a pool of
 * Web Workers that each hold their own copy of a saved model: the serving
 * path's way to use every core.
 *
 * tfjs runs a model op by op on the JavaScript thread that called it, so one
 * thread answers one request at a time however many cores there are. A pool
 * of `n` workers answers up to `n` at once. Every image goes through
 * {@linkcode classifyImage} — the preprocessing recorded in the model's
 * metadata, then the model alone on a batch of one — wherever it runs, so
 * the probabilities are the same bit for bit as `deno task predict`'s.
 *
 * | function                        | where the model runs                       |
 * | ------------------------------- | ------------------------------------------ |
 * | {@linkcode localClassifier}     | this thread (a model already loaded)       |
 * | {@linkcode startInferencePool}  | `workers` Web Workers, each loading `modelDir` |
 *
 * An image over the pixel limit (`maxPixels`, default `DEFAULTS.maxPixels`)
 * is refused from its header with an {@linkcode ImageTooLargeError}, before
 * anything is decoded; one that does not decode (corrupt, cut short) with an
 * {@linkcode UndecodableImageError}. A worker decodes one image at a time
 * and runs the network on one at a time, the next image's decode beside the
 * network's run on the one before.
 * A worker that dies fails the requests it held (with an error naming it)
 * and is replaced; the pool keeps serving.
 *
 * @module
 */
import { predictProbabilities } from "../model/inference.ts";
import {
  type EngineKind,
  type InferenceEngine,
  openEngine,
} from "../model/engine.ts";
import { modelSettings } from "./predict.ts";
import { preprocessJobs } from "../data/preprocess.ts";
import { checkImageHeader, readImageHeader } from "../data/image_header.ts";
import { DEFAULTS } from "../core/defaults.ts";
import {
  loadSavedModel,
  type ModelMetadata,
  readModelMetadata,
  resolveModelDir,
  type Tta,
} from "../model/saved_model.ts";
import type { LayersModel } from "../core/tf.ts";

const WORKER_NAME = "brain-mri-cnn:inference";

/** The image could not be decoded (corrupt, truncated, not an image). */
export class UndecodableImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UndecodableImageError";
  }
}

/** The image claims more pixels (width × height) than the limit allows. */
export class ImageTooLargeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageTooLargeError";
  }
}

/** Something that turns an encoded image into class probabilities. */
export interface ImageClassifier {
  /** The model's metadata. */
  readonly metadata: ModelMetadata;
  /** Threads that classify at the same time (1 for {@linkcode localClassifier}). */
  readonly workers: number;
  /**
   * Images it works on at once: two per pool worker (one decoding, one in
   * the network), one for {@linkcode localClassifier}.
   */
  readonly capacity: number;
  /** The inference engine that runs the network. */
  readonly engine: EngineKind;
  /**
   * Probabilities (in `metadata.classes` order) for one JPEG or PNG.
   * Rejects with {@linkcode UndecodableImageError} for an image that does
   * not decode, {@linkcode ImageTooLargeError} for one over the pixel limit.
   */
  classify(bytes: Uint8Array): Promise<Float32Array>;
  /** Waits for the images in flight, then frees the model(s). */
  close(): Promise<void>;
}

/** Options for {@linkcode classifyImage}. */
export interface ClassifyImageOptions {
  /** The network. */
  model: LayersModel;
  /** Its metadata (preprocessing, default test-time augmentation). */
  metadata: ModelMetadata;
  /** Test-time augmentation (default: the model's `inference.tta`). */
  tta?: Tta;
  /**
   * The largest image accepted, in pixels (default `DEFAULTS.maxPixels`);
   * a bigger one is refused from its header.
   */
  maxPixels?: number;
  /**
   * The engine that runs the network (`openEngine` of `../model/engine.ts`);
   * default: tfjs on `model`.
   */
  engine?: InferenceEngine;
}

/**
 * Throws {@linkcode ImageTooLargeError} if the image's header claims more
 * than `maxPixels`. An inconsistent header is left to the decoder, which
 * refuses it with its reason.
 */
function checkPixelLimit(bytes: Uint8Array, maxPixels: number): void {
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) {
    throw new Error(`maxPixels must be a positive integer (got ${maxPixels})`);
  }
  try {
    checkImageHeader(bytes, maxPixels);
  } catch (error) {
    let pixels = 0;
    try {
      const { width = 0, height = 0 } = readImageHeader(bytes);
      pixels = width * height;
    } catch {
      // inconsistent: the decoder says why
    }
    if (pixels > maxPixels) {
      throw new ImageTooLargeError((error as Error).message);
    }
  }
}

/**
 * One encoded image → class probabilities: decoded and resized as the
 * model's metadata says, predicted alone (batch of one, so the answer never
 * depends on other images), with the model's test-time augmentation unless
 * `tta` overrides it. An image over `maxPixels` is refused before it is
 * decoded.
 *
 * @example The shipped model on a plain grey JPEG, and on a cut one
 * ```ts
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * import {
 *   classifyImage,
 *   ImageTooLargeError,
 *   UndecodableImageError,
 * } from "./inference_pool.ts";
 * import { loadSavedModel } from "../model/saved_model.ts";
 * const { model, metadata } = await loadSavedModel("models/resnet-128-e11");
 * const grey = { width: 64, height: 64, channels: 3, background: "#404040" } as const;
 * const jpeg = new Uint8Array(await sharp({ create: grey }).jpeg().toBuffer());
 * const probs = await classifyImage(jpeg, { model, metadata });
 * assert.equal(probs.length, metadata.classes.length);
 * assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-5);
 * await assert.rejects(
 *   classifyImage(jpeg.subarray(0, 40), { model, metadata }),
 *   UndecodableImageError,
 * );
 * await assert.rejects(
 *   classifyImage(jpeg, { model, metadata, maxPixels: 1000 }),
 *   ImageTooLargeError, // 64 × 64 pixels is over a limit of 1,000
 * );
 * model.dispose();
 * ```
 */
export async function classifyImage(
  bytes: Uint8Array,
  options: ClassifyImageOptions,
): Promise<Float32Array> {
  return probabilitiesOf(await decodeForModel(bytes, options), options);
}

/**
 * The first stage of {@linkcode classifyImage}: the pixel limit, then the
 * decode and resize the model's metadata asks for. The only stage that
 * holds a full-size image.
 */
async function decodeForModel(
  bytes: Uint8Array,
  options: ClassifyImageOptions,
): Promise<Uint8Array> {
  const maxPixels = options.maxPixels ?? DEFAULTS.maxPixels;
  checkPixelLimit(bytes, maxPixels);
  const [outcome] = await preprocessJobs(
    [{ bytes }],
    { ...modelSettings(options.metadata), maxPixels },
  );
  if (!outcome.pixels) {
    throw new UndecodableImageError(outcome.error ?? "unknown error");
  }
  return outcome.pixels;
}

/** The second stage of {@linkcode classifyImage}: the network on a batch of one. */
function probabilitiesOf(
  pixels: Uint8Array,
  options: ClassifyImageOptions,
): Promise<Float32Array> {
  const { metadata } = options;
  const input = {
    pixels,
    size: metadata.preprocessing.size,
    scale: metadata.preprocessing.scale,
    batchSize: 1,
    tta: options.tta ?? metadata.inference?.tta,
  };
  return options.engine
    ? options.engine.probabilities(input)
    : predictProbabilities(options.model, input);
}

/**
 * A classifier that runs a loaded model in this thread, one image at a time.
 * `close()` does not dispose the model (the caller owns it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * import { classifyImage, localClassifier } from "./inference_pool.ts";
 * import { loadSavedModel } from "../model/saved_model.ts";
 * const { model, metadata } = await loadSavedModel("models/resnet-128-e11");
 * const grey = { width: 64, height: 64, channels: 3, background: "#404040" } as const;
 * const png = new Uint8Array(await sharp({ create: grey }).png().toBuffer());
 * const classifier = localClassifier({ model, metadata });
 * assert.equal(classifier.workers, 1);
 * const probs = await classifier.classify(png);
 * await classifier.close();
 * // the same answer as classifyImage, and the model is still the caller's
 * assert.deepEqual(probs, await classifyImage(png, { model, metadata }));
 * model.dispose();
 * ```
 */
export function localClassifier(
  options: ClassifyImageOptions,
): ImageClassifier {
  const inFlight = new InFlight();
  return {
    metadata: options.metadata,
    workers: 1,
    capacity: 1,
    engine: options.engine?.kind ?? "tfjs",
    classify: (bytes) => inFlight.track(classifyImage(bytes, options)),
    close: () => inFlight.settled(),
  };
}

/** The answers not given yet, so that closing can wait for them. */
class InFlight {
  #promises = new Set<Promise<unknown>>();
  track<T>(promise: Promise<T>): Promise<T> {
    const settled = promise.then(() => {}, () => {});
    this.#promises.add(settled);
    settled.then(() => this.#promises.delete(settled));
    return promise;
  }
  async settled(): Promise<void> {
    await Promise.all(this.#promises);
  }
}

/** Options for {@linkcode startInferencePool}. */
export interface InferencePoolOptions {
  /** Saved model (or run) folder. */
  modelDir: string;
  /** How many workers (each loads the model; at least 1). */
  workers: number;
  /** Test-time augmentation (default: the model's `inference.tta`). */
  tta?: Tta;
  /** The largest image accepted, in pixels (default `DEFAULTS.maxPixels`). */
  maxPixels?: number;
  /**
   * The engine each worker runs the network with (default tfjs). With onnx,
   * each worker's onnxruntime gets an equal share of the cores, so the
   * workers side by side never ask for more threads than there are cores.
   */
  engine?: EngineKind;
}

type ToWorker =
  | {
    type: "init";
    modelDir: string;
    tta?: Tta;
    maxPixels?: number;
    engine?: EngineKind;
    threads?: number;
  }
  | { type: "classify"; id: number; bytes: Uint8Array };

type FromWorker =
  | { type: "ready"; metadata: ModelMetadata }
  | { type: "failed"; message: string }
  | { type: "result"; id: number; probabilities: Float32Array }
  | { type: "undecodable"; id: number; message: string }
  | { type: "tooLarge"; id: number; message: string }
  | { type: "error"; id: number; message: string };

interface Pending {
  resolve(probabilities: Float32Array): void;
  reject(error: Error): void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

function spawn(options: InferencePoolOptions): Worker {
  const worker = new Worker(import.meta.url, {
    type: "module",
    name: WORKER_NAME,
  });
  const init: ToWorker = {
    type: "init",
    modelDir: options.modelDir,
    ...(options.tta ? { tta: options.tta } : {}),
    ...(options.maxPixels ? { maxPixels: options.maxPixels } : {}),
    ...(options.engine ? { engine: options.engine } : {}),
    threads: threadsPerWorker(options.workers),
  };
  worker.postMessage(init);
  return worker;
}

/** Each worker's share of the cores (at least one thread). */
function threadsPerWorker(workers: number): number {
  const cores = navigator.hardwareConcurrency ?? 1;
  return Math.max(1, Math.floor(cores / Math.max(1, workers)));
}

/** Resolves with the worker's metadata once it has loaded the model. */
function whenReady(worker: Worker): Promise<ModelMetadata> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const reply = event.data;
      if (reply.type === "ready") resolve(reply.metadata);
      else if (reply.type === "failed") reject(new Error(reply.message));
      else reject(new Error(`unexpected "${reply.type}" before "ready"`));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(event.message || "the worker failed to start"));
    };
  });
}

/**
 * Starts `workers` Web Workers that each load the saved model, and resolves
 * once all of them are ready. Images go to the worker with the fewest in
 * flight. Throws (and stops every worker) if the model cannot be loaded.
 *
 * Starts Web Workers that each load the model and needs scans on disk, so
 * it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { startInferencePool } from "./inference_pool.ts";
 * const pool = await startInferencePool({ modelDir: "models/resnet-128-e11", workers: 2 });
 * const scans = ["a.jpg", "b.jpg"].map((f) => Deno.readFileSync(f));
 * console.log(await Promise.all(scans.map((b) => pool.classify(b))));
 * await pool.close();
 * ```
 */
export async function startInferencePool(
  options: InferencePoolOptions,
): Promise<ImageClassifier> {
  const count = options.workers;
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new Error(`workers must be a positive integer (got ${count})`);
  }
  // A missing or invalid model fails here, with the loader's own message,
  // rather than once per worker.
  const modelDir = resolveModelDir(options.modelDir);
  await readModelMetadata(modelDir);
  const pool: PoolState = {
    settings: { ...options, modelDir },
    closing: false,
  };
  const { workers, metadata } = await startWorkers(pool.settings, count);
  const slots = workers.map((worker): Slot => {
    const slot = { worker, pending: new Map<number, Pending>() };
    watch(slot, pool);
    return slot;
  });
  const inFlight = new InFlight();
  let nextId = 0;
  return {
    metadata,
    workers: count,
    capacity: 2 * count,
    engine: options.engine ?? "tfjs",
    classify(bytes) {
      if (pool.closing) {
        return Promise.reject(new Error("the inference pool is closed"));
      }
      return inFlight.track(send(leastBusy(slots), nextId++, bytes));
    },
    async close() {
      pool.closing = true;
      await inFlight.settled();
      for (const s of slots) s.worker.terminate();
    },
  };
}

/** What every slot of a pool shares: how to start a worker, and whether the pool is closing. */
interface PoolState {
  settings: InferencePoolOptions;
  closing: boolean;
}

/**
 * Starts `count` workers and waits until every one has loaded the model;
 * if any cannot, stops them all and throws.
 */
async function startWorkers(
  settings: InferencePoolOptions,
  count: number,
): Promise<{ workers: Worker[]; metadata: ModelMetadata }> {
  const workers = Array.from({ length: count }, () => spawn(settings));
  try {
    const [metadata] = await Promise.all(workers.map(whenReady));
    return { workers, metadata };
  } catch (error) {
    for (const w of workers) w.terminate();
    throw new Error(
      `inference workers could not load ${settings.modelDir}: ${
        (error as Error).message
      }`,
      { cause: error },
    );
  }
}

/** The slot with the fewest images in flight (the first on a tie). */
function leastBusy(slots: readonly Slot[]): Slot {
  let slot = slots[0];
  for (const s of slots) {
    if (s.pending.size < slot.pending.size) slot = s;
  }
  return slot;
}

/** Sends one image to a slot's worker; resolves with its answer. */
function send(
  slot: Slot,
  id: number,
  bytes: Uint8Array,
): Promise<Float32Array> {
  // A copy: its buffer moves to the worker, the caller keeps its bytes.
  const copy = bytes.slice();
  return new Promise<Float32Array>((resolve, reject) => {
    slot.pending.set(id, { resolve, reject });
    const message: ToWorker = { type: "classify", id, bytes: copy };
    slot.worker.postMessage(message, [copy.buffer]);
  });
}

/** Settles the request a worker's reply answers (replies to none are ignored). */
function settleReply(slot: Slot, reply: FromWorker): void {
  if (reply.type === "ready" || reply.type === "failed") return;
  const p = slot.pending.get(reply.id);
  if (!p) return;
  slot.pending.delete(reply.id);
  if (reply.type === "result") p.resolve(reply.probabilities);
  else if (reply.type === "undecodable") {
    p.reject(new UndecodableImageError(reply.message));
  } else if (reply.type === "tooLarge") {
    p.reject(new ImageTooLargeError(reply.message));
  } else p.reject(new Error(reply.message));
}

/**
 * Listens to a slot's worker: its replies settle their requests; if it dies,
 * the requests it held fail (naming why) and, unless the pool is closing, a
 * replacement takes the slot.
 */
function watch(slot: Slot, pool: PoolState): void {
  slot.worker.onmessage = (event: MessageEvent<FromWorker>) =>
    settleReply(slot, event.data);
  const die = (reason: string) => {
    slot.worker.terminate();
    const lost = [...slot.pending.values()];
    slot.pending.clear();
    for (const p of lost) {
      p.reject(new Error(`the inference worker died (${reason})`));
    }
    if (pool.closing) return;
    // A replacement takes the slot; requests arriving meanwhile queue in
    // its message port until it has loaded the model.
    slot.worker = spawn(pool.settings);
    watch(slot, pool);
  };
  slot.worker.onerror = (event) => {
    event.preventDefault();
    die(event.message || "uncaught error");
  };
  slot.worker.onmessageerror = () => die("unreadable message");
}

// ---------------------------------------------------------------------------
// Worker side: this same module, started by startInferencePool().

/** The worker's global scope, as the worker side uses it. */
interface WorkerScope {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
}

/**
 * The worker side: each image passes two stages, each handling one image at
 * a time in order: the decode (the only stage holding a full-size image, so
 * a worker never holds two) and the network. The next image decodes while
 * the network runs on the one before, as sharp decodes on its own threads.
 */
function startWorker(): void {
  const scope = globalThis as unknown as WorkerScope;
  let loaded: Promise<ClassifyImageOptions> | undefined;
  let decodeTurn: Promise<unknown> = Promise.resolve();
  let networkTurn: Promise<unknown> = Promise.resolve();
  /** Runs `stage` after the previous image's turn at it ends, either way. */
  const inTurn = <T>(turn: Promise<unknown>, stage: () => Promise<T>) =>
    turn.then(stage, stage);
  scope.onmessage = async (event) => {
    const message = event.data;
    if (message.type === "init") {
      loaded = loadWorkerModel(message);
      try {
        const { metadata } = await loaded;
        scope.postMessage({ type: "ready", metadata });
      } catch (error) {
        scope.postMessage({ type: "failed", message: String(error) });
      }
      return;
    }
    const { id, bytes } = message;
    const options = loaded;
    const decoded = inTurn(decodeTurn, async () => {
      if (!options) throw new Error("no model: init was not sent");
      return decodeForModel(bytes, await options);
    });
    decodeTurn = decoded;
    const answered = inTurn(
      networkTurn,
      async () => probabilitiesOf(await decoded, await options!),
    );
    networkTurn = answered;
    try {
      const probabilities = await answered;
      scope.postMessage({ type: "result", id, probabilities }, [
        probabilities.buffer as ArrayBuffer,
      ]);
    } catch (error) {
      scope.postMessage(
        error instanceof UndecodableImageError
          ? { type: "undecodable", id, message: error.message }
          : error instanceof ImageTooLargeError
          ? { type: "tooLarge", id, message: error.message }
          : { type: "error", id, message: String(error) },
      );
    }
  };
}

/** A worker's model, its settings and its engine, from the init message. */
async function loadWorkerModel(
  message: Extract<ToWorker, { type: "init" }>,
): Promise<ClassifyImageOptions> {
  const loadedModel = await loadSavedModel(message.modelDir);
  const engine = await openEngine({
    model: loadedModel,
    kind: message.engine ?? "tfjs",
    ...(message.threads ? { threads: message.threads } : {}),
  });
  return {
    ...loadedModel,
    ...(message.tta ? { tta: message.tta } : {}),
    ...(message.maxPixels ? { maxPixels: message.maxPixels } : {}),
    engine,
  };
}

if ((globalThis as { name?: unknown }).name === WORKER_NAME) startWorker();
