/**
 * Serving a saved model over HTTP (`Deno.serve`).
 *
 * `deno task serve -- [--model DIR] [--port 8000] [--hostname 127.0.0.1]
 * [--max-bytes N] [--body-timeout S] [--workers N] [--tta none|hflip]`
 *
 * | route           | what                                                                       |
 * | --------------- | -------------------------------------------------------------------------- |
 * | `POST /predict` | an image → `200 {class, confidence, probabilities: {class: p}, model}`      |
 * | `GET /health`   | `200 {status: "ok", model, arch, classes, inputSize, workers, uptimeSeconds, requests}` |
 * | `GET /model`    | the model's `metadata.json`                                                 |
 *
 * `POST /predict` takes the image as the raw body (`Content-Type`
 * `image/jpeg`, `image/png`, `application/octet-stream`, or none) or as
 * `multipart/form-data` (the part named `file`, else the first file part).
 * The image is recognised by its content (JPEG or PNG), preprocessed exactly
 * as in training from the model's metadata and predicted alone (batch of
 * one), through the same functions as `deno task predict`, so the
 * probabilities are identical to its output for the same file. Requests are
 * classified by a pool of `--workers` Web Workers, each with its own copy of
 * the model (lib/deploy/inference_pool.ts; default one per core), so concurrent
 * requests use every core; `--workers 0` classifies in the server's thread.
 *
 * Errors are JSON `{error: "..."}`:
 *
 * | status | when                                                                                   |
 * | ------ | -------------------------------------------------------------------------------------- |
 * | 400    | empty body, corrupt or undecodable image, malformed multipart, bad `Content-Length`, unreadable request target |
 * | 404    | unknown path                                                                           |
 * | 405    | wrong method (with `Allow`)                                                            |
 * | 408    | the body took longer than `--body-timeout` (default 30 s) to arrive                    |
 * | 413    | `Content-Length` or the streamed body over `--max-bytes` (default 10 MiB); reading stops there |
 * | 415    | unsupported `Content-Type`, or a body (or file part) that is not a JPEG or PNG          |
 * | 500    | anything unexpected                                                                    |
 *
 * Routes come from the path of the request target alone, never from the
 * `Host` header (a hostile `Host` such as `[` or `a/predict` neither breaks
 * the request nor changes its route). Every request, however malformed, is
 * answered inside the error handling: a JSON error, never a stack trace.
 *
 * What is bounded in time: reading the request body (`--body-timeout`, 408),
 * so a slow body never holds a request, its memory or its log line. What is
 * not: `Deno.serve` has no option for a header-read or keep-alive idle
 * timeout and a handler cannot close its connection, so a client slow to
 * send its headers, idle between requests, or still holding the socket
 * after its 408, keeps that one connection open (costing a socket, not a
 * request) until it leaves or the server shuts down.
 *
 * Each request is logged as one line on stderr, with control characters
 * escaped ({@linkcode escapeControl}), so a client cannot forge or break log
 * lines. SIGINT or SIGTERM stops
 * accepting connections, lets requests in flight finish, then exits 0 (a
 * second signal exits at once).
 *
 * @module
 */
import { MODEL_FLAG, type ParsedCli, runCli, UsageError } from "../core/cli.ts";
import {
  type ImageClassifier,
  localClassifier,
  startInferencePool,
  UndecodableImageError,
} from "./inference_pool.ts";
import { projectPaths } from "../core/paths.ts";
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
  /** Where the one-line request log goes (default stderr); `false`: nowhere. */
  log?: ((line: string) => void) | false;
  /**
   * Test-time augmentation (default: the model's `inference.tta`); with
   * `model` only (a `classifier` has its own).
   */
  tta?: Tta;
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

/**
 * Escapes the control characters of `text` (C0, DEL, C1, and the Unicode
 * line and paragraph separators) as `\n`, `\r`, `\t` or `\xNN` / `\u{NNNN}`,
 * and a backslash as `\\`, so text from a client fits on one honest log line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeControl } from "./serve.ts";
 * assert.equal(escapeControl("scan\n2026 GET /x 200\u0000.jpg"), "scan\\n2026 GET /x 200\\x00.jpg");
 * assert.equal(escapeControl("a\\b\u2028"), "a\\\\b\\u{2028}");
 * assert.equal(escapeControl("glioma.png"), "glioma.png");
 * ```
 */
export function escapeControl(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex -- matching control characters is the point
    /[\\\x00-\x1f\x7f-\x9f\u2028\u2029]/g,
    (c) => {
      const named: Record<string, string> = {
        "\\": "\\\\",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
      };
      const code = c.charCodeAt(0);
      return named[c] ??
        (code < 0x100
          ? `\\x${code.toString(16).padStart(2, "0")}`
          : `\\u{${code.toString(16)}}`);
    },
  );
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
    throw error;
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

/** What the handler needs for every request, and what it counts. */
interface HandlerState {
  classifier: ImageClassifier;
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
  return {
    classifier,
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
): Promise<PredictResponse> {
  if (bytes.length === 0) {
    throw new HttpError(400, "empty body: send a JPEG or PNG image");
  }
  const problem = imageFormatProblem(bytes.subarray(0, 16));
  if (problem) throw new HttpError(415, `body is ${problem}`);
  let probs: Float32Array;
  try {
    probs = await state.classifier.classify(bytes);
  } catch (error) {
    if (error instanceof UndecodableImageError) {
      throw new HttpError(
        400,
        `corrupt or undecodable image: ${error.message}`,
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

/** The answer to one request on one of the routes (or 404). */
async function route(
  state: HandlerState,
  req: Request,
  path: string,
): Promise<Response> {
  const { metadata } = state;
  switch (path) {
    case "/predict":
      allowOnly(req, path, "POST");
      return json(
        await predictImage(state, await imageBytes(req, state)),
      );
    case "/health":
      allowOnly(req, path, "GET, HEAD");
      return json({
        status: "ok",
        model: state.name,
        arch: metadata.arch,
        classes: metadata.classes,
        inputSize: metadata.inputSize,
        workers: state.classifier.workers,
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

/** The one log line of a request, control characters escaped. */
function logLine(
  { method, path, status, ms, note }: {
    method: string;
    path: string;
    status: number;
    ms: number;
    note: string;
  },
): string {
  return escapeControl(
    `${new Date().toISOString()} ${method} ${path} ${status} ${
      ms.toFixed(1)
    }ms${note ? ` ${note.slice(0, 200)}` : ""}`,
  );
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
): (req: Request) => Promise<Response> {
  const state = handlerState(options);
  const log = options.log === false
    ? undefined
    : options.log ?? ((line: string) => console.error(line));
  return async (req: Request): Promise<Response> => {
    const t0 = performance.now();
    state.requests++;
    let path = "?";
    let response: Response;
    let note = "";
    try {
      path = requestPath(req);
      response = await route(state, req, path);
    } catch (error) {
      ({ response, note } = errorResponse(error));
      // A request body left unread (an early 413/415/405/408) is dropped.
      req.body?.cancel().catch(() => {});
    }
    log?.(logLine({
      method: req.method,
      path,
      status: response.status,
      ms: performance.now() - t0,
      note,
    }));
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
  /** Request log (default stderr); `false`: none. */
  log?: ((line: string) => void) | false;
  /** Test-time augmentation (default: the model's `inference.tta`). */
  tta?: Tta;
  /**
   * Inference workers, each with its own copy of the model (default
   * {@linkcode defaultWorkers}); 0 runs the model in this thread.
   */
  workers?: number;
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
  /** The `Deno.serve` server. */
  server: Deno.HttpServer<Deno.NetAddr>;
  /** Its base URL, e.g. `http://127.0.0.1:8000/`. */
  url: string;
  /** The model's metadata. */
  metadata: ModelMetadata;
  /** The model's name, as responses report it. */
  name: string;
  /** Inference workers (0: the model runs in the server's thread). */
  workers: number;
  /**
   * Stops accepting connections, waits for requests in flight, disposes the
   * model (or stops the workers).
   */
  shutdown(): Promise<void>;
}

/**
 * `Deno.serve` on the options' interface and port, with a JSON 500 (and an
 * escaped log line, never a stack trace) for anything the handler did not
 * answer, and an "address already in use" error that names host:port.
 */
function listen(
  options: StartServerOptions,
  handler: (req: Request) => Promise<Response>,
): Deno.HttpServer<Deno.NetAddr> {
  const hostname = options.hostname ?? DEFAULT_HOSTNAME;
  const port = options.port ?? DEFAULT_PORT;
  const log = options.log === false
    ? undefined
    : options.log ?? ((line: string) => console.error(line));
  try {
    return Deno.serve({
      port,
      hostname,
      onListen: () => {},
      onError: (error) => {
        log?.(escapeControl(`${new Date().toISOString()} 500 ${error}`));
        return json({ error: "internal error" }, 500);
      },
    }, handler);
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      const host = hostname.includes(":") ? `[${hostname}]` : hostname;
      throw new Error(
        `address already in use: ${host}:${port} (another server is ` +
          "listening there; choose another --port or stop it)",
      );
    }
    throw error;
  }
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
  const workers = options.workers ?? defaultWorkers();
  if (!Number.isSafeInteger(workers) || workers < 0) {
    throw new Error(
      `workers must be a non-negative integer (got ${options.workers})`,
    );
  }
  const tta = options.tta ? { tta: options.tta } : {};
  let classifier: ImageClassifier;
  // The in-thread model is ours to dispose; a pool frees its own on close.
  let dispose = () => {};
  if (workers === 0) {
    const { model, metadata } = await loadSavedModel(dir);
    classifier = localClassifier({ model, metadata, ...tta });
    dispose = () => model.dispose();
  } else {
    classifier = await startInferencePool({ modelDir: dir, workers, ...tta });
  }
  const stop = async () => {
    await classifier.close();
    dispose();
  };
  const { metadata } = classifier;
  const name = modelName(dir, metadata);
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = listen(
      options,
      createPredictHandler({
        classifier,
        metadata,
        name,
        maxBytes: options.maxBytes,
        bodyTimeoutMs: options.bodyTimeoutMs,
        log: options.log,
      }),
    );
  } catch (error) {
    await stop();
    throw error;
  }
  const { hostname, port } = server.addr;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  let stopped: Promise<void> | undefined;
  return {
    server,
    url: `http://${host}:${port}/`,
    metadata,
    name,
    workers,
    shutdown: () => stopped ??= server.shutdown().then(stop),
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

/** The server's options from the command line; throws on a usage error. */
function serverOptions(
  values: ParsedCli<typeof SERVE_CLI>["values"],
): StartServerOptions & { maxBytes: number } {
  const port = boundedInteger("port", values.port, 65535);
  const maxBytes = values["max-bytes"];
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new UsageError(
      `--max-bytes must be a positive integer (got "${maxBytes}")`,
    );
  }
  const bodyTimeout = values["body-timeout"];
  if (!Number.isSafeInteger(bodyTimeout) || bodyTimeout < 1) {
    throw new UsageError(
      `--body-timeout must be a positive integer (got "${bodyTimeout}")`,
    );
  }
  const workers = values.workers === undefined
    ? defaultWorkers()
    : boundedInteger("workers", values.workers, 64);
  return {
    workers,
    ...(values.tta ? { tta: values.tta } : {}),
    modelDir: values.model,
    port,
    hostname: values.hostname,
    maxBytes,
    bodyTimeoutMs: bodyTimeout * 1000,
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
    `(${where}, max body ${maxBytes} bytes); Ctrl-C stops`;
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
