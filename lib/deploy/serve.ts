/**
 * Serving a saved model over HTTP (`Deno.serve`).
 *
 * `deno task serve -- [--model DIR] [--port 8000] [--hostname 127.0.0.1]
 * [--max-bytes N] [--workers N] [--tta none|hflip]`
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
 * | 400    | empty body, corrupt or undecodable image, malformed multipart, bad `Content-Length`    |
 * | 404    | unknown path                                                                           |
 * | 405    | wrong method (with `Allow`)                                                            |
 * | 413    | `Content-Length` or the streamed body over `--max-bytes` (default 10 MiB); reading stops there |
 * | 415    | unsupported `Content-Type`, or a body (or file part) that is not a JPEG or PNG          |
 * | 500    | anything unexpected                                                                    |
 *
 * Each request is logged as one line on stderr. SIGINT or SIGTERM stops
 * accepting connections, lets requests in flight finish, then exits 0 (a
 * second signal exits at once).
 *
 * @module
 */
import { parseCli, taskArgs } from "../core/cli.ts";
import {
  type ImageClassifier,
  localClassifier,
  startInferencePool,
  UndecodableImageError,
} from "./inference_pool.ts";
import { projectPaths } from "../core/paths.ts";
import { imageFormatProblem, modelName, toPrediction } from "./predict.ts";
import {
  isTta,
  loadSavedModel,
  type ModelMetadata,
  type Tta,
} from "../model/saved_model.ts";
import type { LayersModel } from "../core/tf.ts";

/** Default body limit: 10 MiB. */
export const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;

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
 * Reads a body up to `maxBytes`, stopping (and cancelling the stream) as soon
 * as it goes over: never buffers more than `maxBytes` plus one chunk.
 */
async function readBounded(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
): Promise<Uint8Array> {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
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
  } finally {
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
async function imageBytes(req: Request, maxBytes: number): Promise<Uint8Array> {
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
  const body = await readBounded(req.body, maxBytes);
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

/**
 * Makes the request handler of the prediction server (see the module
 * documentation for the routes and status codes), for `Deno.serve` or for
 * calling directly.
 *
 * @example
 * ```ts ignore
 * import { createPredictHandler } from "./serve.ts";
 * import { loadSavedModel } from "../model/saved_model.ts";
 * const { model, metadata } = await loadSavedModel("models/resnet-128-e1");
 * const server = Deno.serve({ port: 0 }, createPredictHandler({ model, metadata }));
 * ```
 */
export function createPredictHandler(
  options: PredictHandlerOptions,
): (req: Request) => Promise<Response> {
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
  const name = options.name ?? metadata.training?.run ?? metadata.arch;
  const log = options.log === false
    ? undefined
    : options.log ?? ((line: string) => console.error(line));
  const started = performance.now();
  let requests = 0;

  const predict = async (bytes: Uint8Array): Promise<PredictResponse> => {
    if (bytes.length === 0) {
      throw new HttpError(400, "empty body: send a JPEG or PNG image");
    }
    const problem = imageFormatProblem(bytes.subarray(0, 16));
    if (problem) throw new HttpError(415, `body is ${problem}`);
    let probs: Float32Array;
    try {
      probs = await classifier.classify(bytes);
    } catch (error) {
      if (error instanceof UndecodableImageError) {
        throw new HttpError(
          400,
          `corrupt or undecodable image: ${error.message}`,
        );
      }
      throw error;
    }
    return {
      ...toPrediction(probs, metadata.classes, metadata.inference ?? {}),
      model: name,
    };
  };

  const route = async (req: Request, path: string): Promise<Response> => {
    const allow = (methods: string) => {
      if (!methods.split(", ").includes(req.method)) {
        throw new HttpError(
          405,
          `${req.method} is not allowed on ${path} (allowed: ${methods})`,
          { allow: methods },
        );
      }
    };
    switch (path) {
      case "/predict":
        allow("POST");
        return json(await predict(await imageBytes(req, maxBytes)));
      case "/health":
        allow("GET, HEAD");
        return json({
          status: "ok",
          model: name,
          arch: metadata.arch,
          classes: metadata.classes,
          inputSize: metadata.inputSize,
          workers: classifier.workers,
          uptimeSeconds: (performance.now() - started) / 1000,
          requests,
        });
      case "/model":
        allow("GET, HEAD");
        return json(metadata);
      default:
        throw new HttpError(
          404,
          `no such path ${path} (routes: POST /predict, GET /health, GET /model)`,
        );
    }
  };

  return async (req: Request): Promise<Response> => {
    const t0 = performance.now();
    requests++;
    const path = new URL(req.url).pathname;
    let response: Response;
    let note = "";
    try {
      response = await route(req, path);
    } catch (error) {
      if (error instanceof HttpError) {
        response = json({ error: error.message }, error.status, error.headers);
        note = error.message;
      } else {
        response = json({ error: `internal error: ${error}` }, 500);
        note = String(error);
      }
      // A request body left unread (an early 413/415/405) is dropped.
      req.body?.cancel().catch(() => {});
    }
    log?.(
      `${new Date().toISOString()} ${req.method} ${path} ${response.status} ${
        (performance.now() - t0).toFixed(1)
      }ms${note ? ` ${note.slice(0, 200)}` : ""}`,
    );
    return response;
  };
}

/** Options for {@linkcode startServer}. */
export interface StartServerOptions {
  /** Saved model (or run) folder; default `projectPaths().defaultModel`. */
  modelDir?: string;
  /** Port (default 8000; 0 picks a free one). */
  port?: number;
  /** Interface to listen on (default 127.0.0.1). */
  hostname?: string;
  /** Body limit in bytes (default {@linkcode DEFAULT_MAX_BYTES}). */
  maxBytes?: number;
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
 * import { defaultWorkers } from "./serve.ts";
 * console.log(defaultWorkers() >= 1); // true
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
 * Loads a saved model and serves it (see the module documentation).
 *
 * @example
 * ```ts ignore
 * import { startServer } from "./serve.ts";
 * const running = await startServer({ port: 0 });
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
    const handler = createPredictHandler({
      classifier,
      metadata,
      name,
      maxBytes: options.maxBytes,
      log: options.log,
    });
    server = Deno.serve({
      port: options.port ?? 8000,
      hostname: options.hostname ?? "127.0.0.1",
      onListen: () => {},
    }, handler);
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

const USAGE =
  `usage: deno task serve -- [--model DIR] [--port 8000] [--hostname 127.0.0.1] [--max-bytes N]

  --model DIR     saved model (or run folder holding model/); default ${projectPaths().defaultModel}
  --port N        port (default 8000; 0 picks a free one)
  --hostname H    interface (default 127.0.0.1)
  --max-bytes N   largest request body (default ${DEFAULT_MAX_BYTES})
  --tta T         none|hflip: test-time augmentation (default: the model's own)
  --workers N     inference workers, each with a copy of the model (default
                  one per core: ${defaultWorkers()}); 0: in the server's thread

POST /predict (image body or multipart field "file"), GET /health, GET /model.`;

async function main(args: string[]): Promise<number> {
  const parsed = parseCli(USAGE, {
    args,
    options: {
      model: { type: "string" },
      port: { type: "string", default: "8000" },
      hostname: { type: "string", default: "127.0.0.1" },
      "max-bytes": { type: "string" },
      tta: { type: "string" },
      workers: { type: "string" },
    },
    strict: true,
  });
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port) || port > 65535) {
    console.error(
      `error: --port must be an integer from 0 to 65535 (got "${values.port}")\n${USAGE}`,
    );
    return 2;
  }
  const maxBytes = values["max-bytes"] === undefined
    ? DEFAULT_MAX_BYTES
    : Number(values["max-bytes"]);
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    console.error(
      `error: --max-bytes must be a positive integer (got "${
        values["max-bytes"]
      }")\n${USAGE}`,
    );
    return 2;
  }
  if (values.tta !== undefined && !isTta(values.tta)) {
    console.error(`error: --tta must be none or hflip\n${USAGE}`);
    return 2;
  }
  const workers = values.workers === undefined
    ? defaultWorkers()
    : Number(values.workers);
  if (!/^\d+$/.test(values.workers ?? "0") || workers > 64) {
    console.error(
      `error: --workers must be an integer from 0 to 64 (got "${values.workers}")\n${USAGE}`,
    );
    return 2;
  }
  let running: RunningServer;
  try {
    running = await startServer({
      workers,
      ...(values.tta ? { tta: values.tta } : {}),
      modelDir: values.model,
      port,
      hostname: values.hostname,
      maxBytes,
    });
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
  const m = running.metadata;
  console.error(
    `serving ${running.name} (${m.arch}, ${m.inputSize}×${m.inputSize}, ` +
      `classes ${m.classes.join(", ")}) on ${running.url} ` +
      `(${
        running.workers === 0
          ? "in this thread"
          : `${running.workers} inference worker${
            running.workers === 1 ? "" : "s"
          }`
      }, max body ${maxBytes} bytes); Ctrl-C stops`,
  );
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
  console.error("stopped");
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(taskArgs()));
}
