/**
 * Serving a saved model over HTTP (`Deno.serve`, behind a connection guard).
 *
 * `deno task serve -- [--model DIR] [--port 8000] [--hostname 127.0.0.1]
 * [--max-bytes N] [--body-timeout S] [--header-timeout S] [--idle-timeout S]
 * [--max-connections N] [--max-queue N] [--max-pixels N] [--workers N]
 * [--tta none|hflip] [--engine tfjs|onnx]`
 *
 * | route           | what                                                                       |
 * | --------------- | -------------------------------------------------------------------------- |
 * | `POST /predict` | an image → `200 {class, confidence, probabilities: {class: p}, model}`      |
 * | `GET /health`   | `200 {status: "ok", model, arch, classes, inputSize, workers, engine, uptimeSeconds, requests}` |
 * | `GET /model`    | the model's `metadata.json`                                                 |
 *
 * `POST /predict` takes the image as the raw body (`Content-Type`
 * `image/jpeg`, `image/png`, `application/octet-stream`, or none) or as
 * `multipart/form-data` (the part named `file`, else the first file part).
 * The image is recognised by its content (JPEG or PNG), preprocessed exactly
 * as in training from the model's metadata (an image whose header claims
 * more than `--max-pixels`, default `DEFAULTS.maxPixels`, 50 megapixels, is
 * refused before it is decoded) and predicted alone (batch of
 * one), through the same functions as `deno task predict`, so the
 * probabilities are identical to its output for the same file. Requests are
 * classified by a pool of `--workers` Web Workers, each with its own copy of
 * the model (lib/deploy/inference_pool.ts; default one per core), so concurrent
 * requests use every core; `--workers 0` classifies in the server's thread.
 * The network runs on onnxruntime by default (`SERVE_ENGINE`; the model
 * exported to ONNX in memory at start-up, each worker's onnxruntime on its
 * share of the cores), which answers more requests per second than tfjs;
 * `--engine tfjs` (or `BRAIN_MRI_ENGINE=tfjs`) runs it with tfjs, which
 * gives the same probabilities within 1e-5 (lib/model/engine.ts).
 *
 * Errors are JSON `{error: "..."}`:
 *
 * | status | when                                                                                   |
 * | ------ | -------------------------------------------------------------------------------------- |
 * | 400    | empty body, malformed multipart, bad `Content-Length`, unreadable request target or head |
 * | 404    | unknown path                                                                           |
 * | 405    | wrong method (with `Allow`)                                                            |
 * | 408    | the head took longer than `--header-timeout` (default 10 s), or the body longer than `--body-timeout` (default 30 s) |
 * | 413    | `Content-Length` or the streamed body over `--max-bytes` (default 10 MiB; reading stops there), or an image over `--max-pixels` |
 * | 415    | unsupported `Content-Type`, or a body (or file part) that is not a JPEG or PNG          |
 * | 422    | a JPEG or PNG whose data is corrupt or cut short                                        |
 * | 431    | a request head over 16 KiB or 100 fields                                                |
 * | 500    | anything unexpected                                                                    |
 * | 503    | busy (with `Retry-After`): `--max-queue` images already waiting, or `--max-connections` open |
 *
 * Routes come from the path of the request target alone, never from the
 * `Host` header (a hostile `Host` such as `[` or `a/predict` neither breaks
 * the request nor changes its route). Every request, however malformed, is
 * answered inside the error handling: a JSON error, never a stack trace.
 *
 * What is bounded, so that slow, idle or many clients cannot hold the
 * service: the public socket belongs to a connection guard
 * (lib/deploy/conn_guard.ts) that passes whole request heads to the server
 * on a private Unix socket and closes a connection whose head does not
 * arrive within `--header-timeout` (408), that sits idle between requests
 * longer than `--idle-timeout`, or that is one over `--max-connections`
 * (503). Reading a body is bounded by `--body-timeout` (408) and
 * `--max-bytes` (413). Each inference worker takes two images at once (one
 * decoding, one in the network; one in all without workers) and at most
 * `--max-queue` more wait (default
 * {@linkcode defaultMaxQueue}); a `POST /predict` beyond that is answered 503
 * with `Retry-After` at once, its body unread, while `/health` still answers.
 *
 * Each request is logged as one JSON line on stderr (time, method, path,
 * status, ms, bytes, client, and the error of a 4xx or 5xx;
 * lib/deploy/request_log.ts), every control character escaped, so a client
 * can neither forge nor break log lines. SIGINT or SIGTERM stops
 * accepting connections, lets requests in flight finish, then exits 0 (a
 * second signal exits at once).
 *
 * @module
 */
import { join } from "node:path";
import { DEFAULTS } from "../core/defaults.ts";
import { MODEL_FLAG, type ParsedCli, runCli, UsageError } from "../core/cli.ts";
import { Admission } from "./admission.ts";
import {
  CLIENT_HEADER,
  type ConnGuard,
  DEFAULT_HEADER_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  startConnGuard,
} from "./conn_guard.ts";
import { type RequestLogEntry, requestLogger } from "./request_log.ts";
import {
  type ImageClassifier,
  ImageTooLargeError,
  localClassifier,
  startInferencePool,
  UndecodableImageError,
} from "./inference_pool.ts";
import { projectPaths } from "../core/paths.ts";
import {
  engineFlag,
  type EngineKind,
  openEngine,
  resolveEngineKind,
  SERVE_ENGINE,
} from "../model/engine.ts";
import { imageFormatProblem, modelName, toPrediction } from "./predict.ts";
import {
  loadSavedModel,
  type ModelMetadata,
  type Tta,
} from "../model/saved_model.ts";
import type { LayersModel } from "../core/tf.ts";

/** Default body limit: 10 MiB. */
export const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;

/** Default time a request body may take to arrive: 30 s. */
export const DEFAULT_BODY_TIMEOUT_MS = 30_000;

/** Seconds a client told 503 (busy) is asked to wait before retrying. */
export const RETRY_AFTER_SECONDS = 1;

/**
 * The default number of images that may wait for an inference worker beyond
 * those being classified: eight per worker, so that a burst of a few clients
 * each with a few requests queues rather than fails, while the bodies held
 * stay bounded (at most `(2 × workers + queue) × --max-bytes`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultMaxQueue } from "./serve.ts";
 * assert.equal(defaultMaxQueue(2), 16);
 * assert.equal(defaultMaxQueue(1), 8);
 * ```
 */
export function defaultMaxQueue(workers: number): number {
  return 8 * Math.max(1, workers);
}

/** Default port of {@linkcode startServer} and `deno task serve`. */
export const DEFAULT_PORT = 8000;

/** Default interface: loopback only. */
export const DEFAULT_HOSTNAME = "127.0.0.1";

/** Raw body types `POST /predict` accepts (besides none and multipart). */
export const RAW_IMAGE_TYPES: readonly string[] = [
  "image/jpeg",
  "image/png",
  "application/octet-stream",
];

/** Options for {@linkcode createPredictHandler}. */
export interface PredictHandlerOptions {
  /**
   * The network, run in this thread; or give `classifier` instead (e.g. a
   * worker pool from lib/deploy/inference_pool.ts).
   */
  model?: LayersModel;
  /** What classifies the images, when `model` is not given. */
  classifier?: ImageClassifier;
  /** Its metadata (drives preprocessing; served at `/model`). */
  metadata: ModelMetadata;
  /** The name reported in responses (default the training run's, else the arch). */
  name?: string;
  /** Largest accepted body in bytes (default {@linkcode DEFAULT_MAX_BYTES}). */
  maxBytes?: number;
  /**
   * Longest time in milliseconds the request body may take to arrive
   * (default {@linkcode DEFAULT_BODY_TIMEOUT_MS}); longer answers 408.
   */
  bodyTimeoutMs?: number;
  /**
   * Where the request log goes, one JSON line per request (default stderr);
   * `false`: nowhere.
   */
  log?: ((line: string) => void) | false;
  /**
   * Test-time augmentation (default: the model's `inference.tta`); with
   * `model` only (a `classifier` has its own).
   */
  tta?: Tta;
  /**
   * The largest image accepted, in pixels (default `DEFAULTS.maxPixels`);
   * with `model` only (a `classifier` has its own).
   */
  maxPixels?: number;
  /**
   * Images that may wait for the classifier beyond the one per worker being
   * classified (default {@linkcode defaultMaxQueue}); more answer 503.
   */
  maxQueue?: number;
  /**
   * Take the client's address from the connection guard's field
   * (`CLIENT_HEADER`) instead of the connection: only behind the guard,
   * which sets that field and drops a client's own.
   */
  behindGuard?: boolean;
}

/** An HTTP error answer. */
class HttpError extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(
    status: number,
    message: string,
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

function json(
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** Reads a stream's next chunk, or throws 408 once `deadline` passes. */
function readBefore(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  deadline: Promise<never>,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  return Promise.race([reader.read(), deadline]);
}

/**
 * Reads a body up to `maxBytes` within `timeoutMs`, stopping (and cancelling
 * the stream) as soon as it goes over either: never buffers more than
 * `maxBytes` plus one chunk, never waits longer than `timeoutMs`.
 */
async function readBounded(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
  timeoutMs: number,
): Promise<Uint8Array> {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() =>
      reject(
        new HttpError(
          408,
          `the body did not arrive within ${timeoutMs / 1000} s`,
        ),
      ), timeoutMs);
  });
  try {
    while (true) {
      const { done, value } = await readBefore(reader, deadline);
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new HttpError(
          413,
          `body is larger than the limit of ${maxBytes} bytes`,
        );
      }
      chunks.push(value);
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    if (error instanceof HttpError) throw error;
    // The client went away or broke the framing mid-body.
    throw new HttpError(
      400,
      `the body could not be read: ${(error as Error).message ?? error}`,
    );
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/** The image bytes of a `POST /predict` request (raw or multipart). */
async function imageBytes(
  req: Request,
  { maxBytes, bodyTimeoutMs }: HandlerState,
  exchange: Exchange,
): Promise<Uint8Array> {
  const type = (req.headers.get("content-type") ?? "").split(";")[0].trim()
    .toLowerCase();
  const multipart = type === "multipart/form-data";
  if (type !== "" && !multipart && !RAW_IMAGE_TYPES.includes(type)) {
    throw new HttpError(
      415,
      `unsupported Content-Type ${type}: send the image as ${
        RAW_IMAGE_TYPES.join(", ")
      } or multipart/form-data`,
    );
  }
  const length = req.headers.get("content-length");
  if (length !== null) {
    const n = Number(length);
    if (!/^\d+$/.test(length.trim()) || !Number.isSafeInteger(n)) {
      throw new HttpError(400, `invalid Content-Length ${length}`);
    }
    if (n > maxBytes) {
      throw new HttpError(
        413,
        `body of ${n} bytes is larger than the limit of ${maxBytes} bytes`,
      );
    }
  }
  const body = await readBounded(req.body, maxBytes, bodyTimeoutMs);
  exchange.bytes = body.length;
  if (!multipart) return body;
  let form: FormData;
  try {
    form = await new Response(body as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": req.headers.get("content-type")! },
    }).formData();
  } catch (error) {
    throw new HttpError(
      400,
      `malformed multipart/form-data body: ${(error as Error).message}`,
    );
  }
  const named = form.get("file");
  const file = named instanceof File
    ? named
    : [...form.values()].find((v): v is File => v instanceof File);
  if (!file) {
    throw new HttpError(
      400,
      'multipart/form-data body has no file part (send the image as field "file")',
    );
  }
  exchange.file = file.name;
  return new Uint8Array(await file.arrayBuffer());
}

/** What `POST /predict` answers. */
export interface PredictResponse {
  /** Predicted class. */
  class: string;
  /** Its probability. */
  confidence: number;
  /** Every class's probability, in the model's order. */
  probabilities: Record<string, number>;
  /** Present (true) when the model's operating point overruled argmax. */
  byOperatingPoint?: true;
  /** The model's name. */
  model: string;
}

/** What one request was: its path, body bytes read, file part's name. */
interface Exchange {
  path: string | null;
  bytes: number;
  file?: string;
}

/** What the handler needs for every request, and what it counts. */
interface HandlerState {
  classifier: ImageClassifier;
  admission: Admission;
  behindGuard: boolean;
  log?: (entry: RequestLogEntry) => void;
  metadata: ModelMetadata;
  name: string;
  maxBytes: number;
  bodyTimeoutMs: number;
  started: number;
  requests: number;
}

/** Checks the handler's options and fills in their defaults. */
function handlerState(options: PredictHandlerOptions): HandlerState {
  const { metadata } = options;
  if ((options.model === undefined) === (options.classifier === undefined)) {
    throw new Error("give createPredictHandler a model or a classifier");
  }
  const classifier = options.classifier ?? localClassifier({
    model: options.model!,
    metadata,
    ...(options.tta ? { tta: options.tta } : {}),
    ...(options.maxPixels ? { maxPixels: options.maxPixels } : {}),
  });
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new Error(`maxBytes must be a positive integer (got ${maxBytes})`);
  }
  const bodyTimeoutMs = options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS;
  if (!(bodyTimeoutMs > 0) || !Number.isFinite(bodyTimeoutMs)) {
    throw new Error(
      `bodyTimeoutMs must be a positive number (got ${bodyTimeoutMs})`,
    );
  }
  const maxQueue = options.maxQueue ?? defaultMaxQueue(classifier.workers);
  if (!Number.isSafeInteger(maxQueue) || maxQueue < 0) {
    throw new Error(
      `maxQueue must be a non-negative integer (got ${maxQueue})`,
    );
  }
  return {
    classifier,
    admission: new Admission({ active: classifier.capacity, queue: maxQueue }),
    behindGuard: options.behindGuard ?? false,
    log: requestLogger(options.log),
    metadata,
    name: options.name ?? metadata.training?.run ?? metadata.arch,
    maxBytes,
    bodyTimeoutMs,
    started: performance.now(),
    requests: 0,
  };
}

/** One image's `POST /predict` answer: sniffed, classified, decided. */
async function predictImage(
  state: HandlerState,
  bytes: Uint8Array,
  file: string | undefined,
): Promise<PredictResponse> {
  // A file part is named in its errors: the client may have sent several.
  const what = file === undefined
    ? "body"
    : `file part ${JSON.stringify(file)}`;
  if (bytes.length === 0) {
    throw new HttpError(400, `empty ${what}: send a JPEG or PNG image`);
  }
  const problem = imageFormatProblem(bytes.subarray(0, 16));
  if (problem) throw new HttpError(415, `${what} is ${problem}`);
  let probs: Float32Array;
  try {
    probs = await state.admission.run(() => state.classifier.classify(bytes));
  } catch (error) {
    if (error instanceof ImageTooLargeError) {
      throw new HttpError(
        413,
        `${error.message}${file === undefined ? "" : ` (${what})`}`,
      );
    }
    if (error instanceof UndecodableImageError) {
      throw new HttpError(
        422,
        `corrupt or undecodable image${
          file === undefined ? "" : ` (${what})`
        }: ${error.message}`,
      );
    }
    throw error;
  }
  const { classes, inference } = state.metadata;
  return {
    ...toPrediction(probs, classes, inference ?? {}),
    model: state.name,
  };
}

/** Throws 405 (with `Allow`) unless the request's method is one of `methods`. */
function allowOnly(req: Request, path: string, methods: string): void {
  if (!methods.split(", ").includes(req.method)) {
    throw new HttpError(
      405,
      `${req.method} is not allowed on ${path} (allowed: ${methods})`,
      { allow: methods },
    );
  }
}

/**
 * The path of a request's target, never taken from its `Host` header: the
 * runtime builds `req.url` as scheme, then authority (the `Host` header when
 * there is one), then target, so a `Host` holding `/`, `?` or `[` would
 * otherwise move or break the path. Dot segments are resolved as in a URL.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requestPath } from "./serve.ts";
 * const req = (url: string, host: string) =>
 *   new Request(url, { headers: { host } });
 * assert.equal(requestPath(req("http://a/predict/health?x=1", "a/predict")), "/health");
 * assert.equal(requestPath(req("http://localhost:8000/a/../model", "")), "/model");
 * ```
 */
export function requestPath(req: Request): string {
  const url = req.url;
  const afterScheme = url.indexOf("://") + 3;
  const host = req.headers.get("host") ?? "";
  let target = host && url.startsWith(host, afterScheme)
    ? url.slice(afterScheme + host.length)
    : "";
  if (!target.startsWith("/")) {
    const slash = url.indexOf("/", afterScheme);
    target = slash < 0 ? "/" : url.slice(slash);
  }
  const path = target.split(/[?#]/, 1)[0];
  try {
    return new URL(`http://localhost${path}`).pathname;
  } catch {
    throw new HttpError(400, "malformed request target");
  }
}

/**
 * `POST /predict`: a place among the images classified or waiting, else 503
 * at once (the body unread); then the body, then the classifier.
 */
async function predictRoute(
  state: HandlerState,
  req: Request,
  exchange: Exchange,
): Promise<Response> {
  const { admission } = state;
  if (!admission.enter()) {
    throw new HttpError(
      503,
      `busy: ${admission.running} images are being classified and ` +
        `${admission.queue} are waiting; retry in ${RETRY_AFTER_SECONDS} s`,
      { "retry-after": String(RETRY_AFTER_SECONDS) },
    );
  }
  try {
    const bytes = await imageBytes(req, state, exchange);
    return json(await predictImage(state, bytes, exchange.file));
  } finally {
    admission.leave();
  }
}

/** The answer to one request on one of the routes (or 404). */
async function route(
  state: HandlerState,
  req: Request,
  exchange: Exchange,
): Promise<Response> {
  const { metadata } = state;
  const path = exchange.path!;
  switch (path) {
    case "/predict":
      allowOnly(req, path, "POST");
      return await predictRoute(state, req, exchange);
    case "/health":
      allowOnly(req, path, "GET, HEAD");
      return json({
        status: "ok",
        model: state.name,
        arch: metadata.arch,
        classes: metadata.classes,
        inputSize: metadata.inputSize,
        workers: state.classifier.workers,
        engine: state.classifier.engine,
        uptimeSeconds: (performance.now() - state.started) / 1000,
        requests: state.requests,
      });
    case "/model":
      allowOnly(req, path, "GET, HEAD");
      return json(metadata);
    default:
      throw new HttpError(
        404,
        `no such path ${path} (routes: POST /predict, GET /health, GET /model)`,
      );
  }
}

/** The JSON error answer for what a route threw, and the note for the log. */
function errorResponse(error: unknown): { response: Response; note: string } {
  if (error instanceof HttpError) {
    return {
      response: json({ error: error.message }, error.status, error.headers),
      note: error.message,
    };
  }
  return {
    response: json({ error: `internal error: ${error}` }, 500),
    note: String(error),
  };
}

/** The client's address: from the guard's field, else the connection. */
function clientAddress(
  state: HandlerState,
  req: Request,
  info: Deno.ServeHandlerInfo<Deno.Addr> | undefined,
): string | null {
  if (state.behindGuard) return req.headers.get(CLIENT_HEADER);
  const addr = info?.remoteAddr;
  if (!addr || !("hostname" in addr)) return null;
  const host = addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  return `${host}:${addr.port}`;
}

/**
 * Makes the request handler of the prediction server (see the module
 * documentation for the routes and status codes), for `Deno.serve` or for
 * calling directly.
 *
 * @example Asking the shipped model's handler directly, without a server
 * ```ts
 * import assert from "node:assert/strict";
 * import { createPredictHandler } from "./serve.ts";
 * import { loadSavedModel } from "../model/saved_model.ts";
 * const { model, metadata } = await loadSavedModel("models/resnet-128-e11");
 * const handler = createPredictHandler({ model, metadata, log: false });
 * const health = await handler(new Request("http://localhost/health"));
 * assert.equal(health.status, 200);
 * assert.equal((await health.json()).model, "resnet-128-e11");
 * const text = await handler(new Request("http://localhost/predict", {
 *   method: "POST",
 *   body: new TextEncoder().encode("not an image"),
 * }));
 * assert.equal(text.status, 415);
 * assert.deepEqual(await text.json(), { error: "body is not a JPEG or PNG (text)" });
 * model.dispose();
 * ```
 */
export function createPredictHandler(
  options: PredictHandlerOptions,
): (
  req: Request,
  info?: Deno.ServeHandlerInfo<Deno.Addr>,
) => Promise<Response> {
  const state = handlerState(options);
  return async (req, info) => {
    const t0 = performance.now();
    state.requests++;
    const exchange: Exchange = { path: null, bytes: 0 };
    let response: Response;
    let note: string | undefined;
    try {
      exchange.path = requestPath(req);
      response = await route(state, req, exchange);
    } catch (error) {
      ({ response, note } = errorResponse(error));
      // A request body left unread (an early 413/415/405/408/503) is dropped.
      req.body?.cancel().catch(() => {});
    }
    state.log?.({
      time: new Date().toISOString(),
      method: req.method,
      path: exchange.path,
      status: response.status,
      ms: Math.round((performance.now() - t0) * 10) / 10,
      bytes: exchange.bytes,
      client: clientAddress(state, req, info),
      ...(note === undefined ? {} : { error: note.slice(0, 500) }),
    });
    return response;
  };
}

/** Options for {@linkcode startServer}. */
export interface StartServerOptions {
  /** Saved model (or run) folder; default `projectPaths().defaultModel`. */
  modelDir?: string;
  /** Port (default {@linkcode DEFAULT_PORT}, 8000; 0 picks a free one). */
  port?: number;
  /** Interface to listen on (default {@linkcode DEFAULT_HOSTNAME}, 127.0.0.1). */
  hostname?: string;
  /** Body limit in bytes (default {@linkcode DEFAULT_MAX_BYTES}). */
  maxBytes?: number;
  /** Body-read limit in ms (default {@linkcode DEFAULT_BODY_TIMEOUT_MS}). */
  bodyTimeoutMs?: number;
  /** Head-read limit in ms (default `DEFAULT_HEADER_TIMEOUT_MS`, 10 s). */
  headerTimeoutMs?: number;
  /** Idle limit between requests in ms (default `DEFAULT_IDLE_TIMEOUT_MS`, 60 s). */
  idleTimeoutMs?: number;
  /** Open connections at most (default `DEFAULT_MAX_CONNECTIONS`). */
  maxConnections?: number;
  /** Images waiting beyond those classified (default {@linkcode defaultMaxQueue}). */
  maxQueue?: number;
  /** The largest image accepted, in pixels (default `DEFAULTS.maxPixels`). */
  maxPixels?: number;
  /** Request log, one JSON line per request (default stderr); `false`: none. */
  log?: ((line: string) => void) | false;
  /** Test-time augmentation (default: the model's `inference.tta`). */
  tta?: Tta;
  /**
   * Inference workers, each with its own copy of the model (default
   * {@linkcode defaultWorkers}); 0 runs the model in this thread.
   */
  workers?: number;
  /**
   * The inference engine (default: `BRAIN_MRI_ENGINE`, else
   * `SERVE_ENGINE`, onnx).
   */
  engine?: EngineKind;
}

/**
 * The default number of inference workers: one per core (at least 1).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultWorkers } from "./serve.ts";
 * assert.equal(defaultWorkers(), Math.max(1, navigator.hardwareConcurrency ?? 1));
 * ```
 */
export function defaultWorkers(): number {
  return Math.max(1, navigator.hardwareConcurrency ?? 1);
}

/** A running server. */
export interface RunningServer {
  /** The `Deno.serve` server, on a private Unix socket behind the guard. */
  server: Deno.HttpServer<Deno.UnixAddr>;
  /** The connection guard holding the public address. */
  guard: ConnGuard;
  /** Its base URL, e.g. `http://127.0.0.1:8000/`. */
  url: string;
  /** The model's metadata. */
  metadata: ModelMetadata;
  /** The model's name, as responses report it. */
  name: string;
  /** Inference workers (0: the model runs in the server's thread). */
  workers: number;
  /** The inference engine that runs the network. */
  engine: EngineKind;
  /**
   * Stops accepting connections, waits for requests in flight, disposes the
   * model (or stops the workers).
   */
  shutdown(): Promise<void>;
}

/** An "address already in use" error naming host:port, else `error`. */
function listenError(error: unknown, hostname: string, port: number): unknown {
  if (!(error instanceof Deno.errors.AddrInUse)) return error;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return new Error(
    `address already in use: ${host}:${port} (another server is ` +
      "listening there; choose another --port or stop it)",
  );
}

/**
 * The service's two listeners: `Deno.serve` on a Unix socket in a private
 * temporary folder, with a JSON 500 (and a JSON log line, never a stack
 * trace) for anything the handler did not answer; and the connection guard
 * on the options' interface and port in front of it.
 */
async function listen(
  options: StartServerOptions,
  handler: ReturnType<typeof createPredictHandler>,
): Promise<{ server: Deno.HttpServer<Deno.UnixAddr>; guard: ConnGuard }> {
  const log = requestLogger(options.log);
  const dir = await Deno.makeTempDir({ prefix: "brain-mri-serve-" });
  const server = Deno.serve({
    path: join(dir, "http.sock"),
    onListen: () => {},
    onError: (error) => {
      log?.({
        time: new Date().toISOString(),
        method: null,
        path: null,
        status: 500,
        ms: 0,
        bytes: 0,
        client: null,
        error: String(error),
      });
      return json({ error: "internal error" }, 500);
    },
  }, handler);
  server.finished.then(() => Deno.remove(dir, { recursive: true }))
    .catch(() => {});
  const hostname = options.hostname ?? DEFAULT_HOSTNAME;
  const port = options.port ?? DEFAULT_PORT;
  try {
    const guard = startConnGuard({
      hostname,
      port,
      upstreamPath: server.addr.path,
      headerTimeoutMs: options.headerTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
      maxConnections: options.maxConnections,
      log,
    });
    return { server, guard };
  } catch (error) {
    await server.shutdown();
    throw listenError(error, hostname, port);
  }
}

/** The classifier `startServer` uses, and how to stop it. */
async function startClassifier(
  dir: string,
  options: StartServerOptions,
): Promise<{ classifier: ImageClassifier; stop: () => Promise<void> }> {
  const workers = options.workers ?? defaultWorkers();
  if (!Number.isSafeInteger(workers) || workers < 0) {
    throw new Error(
      `workers must be a non-negative integer (got ${options.workers})`,
    );
  }
  const maxPixels = options.maxPixels ?? DEFAULTS.maxPixels;
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) {
    throw new Error(`maxPixels must be a positive integer (got ${maxPixels})`);
  }
  const settings = { ...(options.tta ? { tta: options.tta } : {}), maxPixels };
  const kind = options.engine ??
    resolveEngineKind(undefined, undefined, SERVE_ENGINE);
  if (workers > 0) {
    const classifier = await startInferencePool({
      modelDir: dir,
      workers,
      engine: kind,
      ...settings,
    });
    return { classifier, stop: () => classifier.close() };
  }
  // The in-thread model is ours to dispose; a pool frees its own on close.
  const loaded = await loadSavedModel(dir);
  const engine = await openEngine({ model: loaded, kind });
  const classifier = localClassifier({ ...loaded, ...settings, engine });
  return {
    classifier,
    stop: async () => {
      await classifier.close();
      await engine.dispose();
      loaded.model.dispose();
    },
  };
}

/**
 * Loads a saved model and serves it (see the module documentation).
 *
 * Starts a server and its inference workers, so it is not run by
 * `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { startServer } from "./serve.ts";
 * const running = await startServer({ modelDir: "models/resnet-128-e11", port: 0 });
 * console.log(running.url);
 * await running.shutdown();
 * ```
 */
export async function startServer(
  options: StartServerOptions = {},
): Promise<RunningServer> {
  const dir = options.modelDir ?? projectPaths().defaultModel;
  const { classifier, stop } = await startClassifier(dir, options);
  const { metadata } = classifier;
  const name = modelName(dir, metadata);
  let listening: Awaited<ReturnType<typeof listen>>;
  try {
    listening = await listen(
      options,
      createPredictHandler({
        classifier,
        metadata,
        name,
        maxBytes: options.maxBytes,
        bodyTimeoutMs: options.bodyTimeoutMs,
        maxQueue: options.maxQueue,
        log: options.log,
        behindGuard: true,
      }),
    );
  } catch (error) {
    await stop();
    throw error;
  }
  const { server, guard } = listening;
  const { hostname, port } = guard.addr;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  let stopped: Promise<void> | undefined;
  return {
    server,
    guard,
    url: `http://${host}:${port}/`,
    metadata,
    name,
    workers: options.workers ?? defaultWorkers(),
    engine: classifier.engine,
    shutdown: () =>
      stopped ??= guard.shutdown().then(() => server.shutdown()).then(stop),
  };
}

const SERVE_CLI = {
  command: "deno task serve",
  summary: "Serves a saved model over HTTP: POST /predict (image body or\n" +
    'multipart field "file"), GET /health, GET /model.',
  flags: {
    model: MODEL_FLAG,
    port: {
      type: "string",
      value: "N",
      default: String(DEFAULT_PORT),
      help: "port; 0 picks a free one",
    },
    hostname: {
      type: "string",
      value: "H",
      default: DEFAULT_HOSTNAME,
      help: "interface",
    },
    "max-bytes": {
      type: "integer",
      default: DEFAULT_MAX_BYTES,
      help: "largest request body",
    },
    "body-timeout": {
      type: "integer",
      value: "S",
      default: DEFAULT_BODY_TIMEOUT_MS / 1000,
      help: "seconds a request body may take to arrive (else 408)",
    },
    "header-timeout": {
      type: "number",
      value: "S",
      default: DEFAULT_HEADER_TIMEOUT_MS / 1000,
      help: "seconds from a request's first byte to the end of its\n" +
        "head (else 408 and the connection closes)",
    },
    "idle-timeout": {
      type: "number",
      value: "S",
      default: DEFAULT_IDLE_TIMEOUT_MS / 1000,
      help: "seconds a keep-alive connection may idle between requests",
    },
    "max-connections": {
      type: "integer",
      default: DEFAULT_MAX_CONNECTIONS,
      help: "open connections at most (more: 503)",
    },
    "max-pixels": {
      type: "integer",
      default: DEFAULTS.maxPixels,
      help: "the largest image accepted (width × height); a bigger\n" +
        "one is refused (413) from its header, before it is decoded",
    },
    "max-queue": {
      type: "integer",
      defaultText: "8 per worker",
      help: "images that may wait for a worker beyond those being\n" +
        "classified (more: 503 with Retry-After)",
    },
    tta: {
      type: "string",
      choices: ["none", "hflip"],
      defaultText: "the model's own",
      help: "test-time augmentation",
    },
    workers: {
      type: "string",
      value: "N",
      defaultText: `one per core: ${defaultWorkers()}`,
      help: "inference workers, each with a copy of the model;\n" +
        "0: in the server's thread",
    },
    engine: engineFlag(SERVE_ENGINE),
  },
} as const;

/** A whole number from 0 to `max` written in decimal digits, else a usage error. */
function boundedInteger(flag: string, text: string, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > max) {
    throw new UsageError(
      `--${flag} must be an integer from 0 to ${max} (got "${text}")`,
    );
  }
  return n;
}

/** `value` if it is a number at least `min` (and whole, if `integer`), else a usage error. */
function atLeast(
  flag: string,
  value: number,
  { min, integer }: { min: number; integer: boolean },
): number {
  const ok = integer ? Number.isSafeInteger(value) : Number.isFinite(value);
  if (!ok || value < min) {
    const what = integer
      ? min > 0 ? "a positive integer" : "a non-negative integer"
      : "a positive number";
    throw new UsageError(`--${flag} must be ${what} (got "${value}")`);
  }
  return value;
}

/** The server's options from the command line; throws on a usage error. */
function serverOptions(
  values: ParsedCli<typeof SERVE_CLI>["values"],
): StartServerOptions & { maxBytes: number } {
  const integer = { min: 1, integer: true };
  const seconds = { min: Number.MIN_VALUE, integer: false };
  const workers = values.workers === undefined
    ? defaultWorkers()
    : boundedInteger("workers", values.workers, 64);
  return {
    workers,
    ...(values.tta ? { tta: values.tta } : {}),
    engine: resolveEngineKind(values.engine, undefined, SERVE_ENGINE),
    modelDir: values.model,
    port: boundedInteger("port", values.port, 65535),
    hostname: values.hostname,
    maxBytes: atLeast("max-bytes", values["max-bytes"], integer),
    bodyTimeoutMs: atLeast("body-timeout", values["body-timeout"], integer) *
      1000,
    headerTimeoutMs:
      atLeast("header-timeout", values["header-timeout"], seconds) * 1000,
    idleTimeoutMs: atLeast("idle-timeout", values["idle-timeout"], seconds) *
      1000,
    maxConnections: atLeast(
      "max-connections",
      values["max-connections"],
      integer,
    ),
    maxPixels: atLeast("max-pixels", values["max-pixels"], integer),
    ...(values["max-queue"] === undefined ? {} : {
      maxQueue: atLeast("max-queue", values["max-queue"], {
        min: 0,
        integer: true,
      }),
    }),
  };
}

/** The line saying what is served where. */
function servingLine(running: RunningServer, maxBytes: number): string {
  const m = running.metadata;
  const where = running.workers === 0
    ? "in this thread"
    : `${running.workers} inference worker${running.workers === 1 ? "" : "s"}`;
  return `serving ${running.name} (${m.arch}, ${m.inputSize}×${m.inputSize}, ` +
    `classes ${m.classes.join(", ")}) on ${running.url} ` +
    `(${where}, engine ${running.engine}, max body ${maxBytes} bytes); ` +
    "Ctrl-C stops";
}

/**
 * Serves until the server stops: SIGINT or SIGTERM lets the requests in
 * flight finish, a second signal exits at once.
 */
async function serveUntilStopped(running: RunningServer): Promise<void> {
  let signals = 0;
  const stop = (signal: string) => {
    if (++signals > 1) {
      console.error(`${signal} again: exiting now`);
      Deno.exit(130);
    }
    console.error(`${signal}: finishing requests in flight, then stopping`);
    running.shutdown();
  };
  const listeners: [Deno.Signal, () => void][] = [
    ["SIGINT", () => stop("SIGINT")],
    ["SIGTERM", () => stop("SIGTERM")],
  ];
  for (const [signal, listener] of listeners) {
    Deno.addSignalListener(signal, listener);
  }
  await running.server.finished;
  await running.shutdown();
  for (const [signal, listener] of listeners) {
    Deno.removeSignalListener(signal, listener);
  }
}

/** `deno task serve`: serves until a signal, then exits 0. */
async function serveMain(
  { values }: ParsedCli<typeof SERVE_CLI>,
): Promise<number> {
  const options = serverOptions(values);
  let running: RunningServer;
  try {
    running = await startServer(options);
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
  console.error(servingLine(running, options.maxBytes));
  await serveUntilStopped(running);
  console.error("stopped");
  return 0;
}

if (import.meta.main) Deno.exit(await runCli(SERVE_CLI, serveMain));
