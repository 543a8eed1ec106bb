/**
 * The pieces of notebook 05 (deploy): check that a saved and reloaded model
 * predicts exactly like the original, show predictions on new scans with
 * their Grad-CAM overlays, and call the HTTP service in-process.
 *
 * @module
 */
import { basename } from "node:path";
import sharp from "sharp";
import { type Displayable, htmlTable } from "../core/display.ts";
import { predictProbabilities } from "../model/inference.ts";
import { imageGrid } from "../core/image_grid.ts";
import type { PredictFilesResult } from "../deploy/predict.ts";
import type { LoadedModel } from "../model/saved_model.ts";
import { createPredictHandler, type PredictResponse } from "../deploy/serve.ts";
import type { LayersModel } from "../core/tf.ts";

/** Options for {@linkcode comparePredictions}. */
export interface ComparePredictionsOptions {
  /** The model before saving. */
  a: LayersModel;
  /** The model after reloading. */
  b: LayersModel;
  /** Packed `size*size` uint8 images. */
  pixels: Uint8Array;
  /** Image side. */
  size: number;
}

/** What {@linkcode comparePredictions} found. */
export interface PredictionComparison {
  /** Images compared. */
  images: number;
  /** Largest absolute difference of any class probability. */
  maxAbsDiff: number;
  /** Images whose predicted class differs. */
  changedClass: number;
  /** `maxAbsDiff === 0`: bit-identical probabilities. */
  identical: boolean;
}

/**
 * Predicts the same images with two models (in batches, no tensor left
 * behind) and compares the probabilities.
 *
 * @example
 * ```ts ignore
 * import { comparePredictions } from "./deploy.ts";
 * const c = await comparePredictions({ a: model, b: reloaded.model, pixels, size: 128 });
 * console.log(c.identical, c.maxAbsDiff);
 * ```
 */
export async function comparePredictions(
  options: ComparePredictionsOptions,
): Promise<PredictionComparison> {
  const { pixels, size } = options;
  const pa = await predictProbabilities(options.a, { pixels, size });
  const pb = await predictProbabilities(options.b, { pixels, size });
  const n = pixels.length / (size * size);
  const k = pa.length / n;
  let maxAbsDiff = 0;
  let changedClass = 0;
  for (let i = 0; i < n; i++) {
    let ia = 0;
    let ib = 0;
    for (let j = 0; j < k; j++) {
      const d = Math.abs(pa[i * k + j] - pb[i * k + j]);
      if (d > maxAbsDiff) maxAbsDiff = d;
      if (pa[i * k + j] > pa[i * k + ia]) ia = j;
      if (pb[i * k + j] > pb[i * k + ib]) ib = j;
    }
    if (ia !== ib) changedClass++;
  }
  return { images: n, maxAbsDiff, changedClass, identical: maxAbsDiff === 0 };
}

/** Options for {@linkcode predictionsTable}. */
export interface PredictionsTableOptions {
  /** What `predictFiles` returned. */
  result: PredictFilesResult;
  /** The true class of each file, when known (by file path). */
  truth?: Map<string, string>;
  /** Caption. */
  caption?: string;
}

/**
 * A table of predictions: file, true class (when known), predicted class,
 * confidence and every class's probability; skipped files listed below.
 *
 * @example
 * ```ts ignore
 * import { predictionsTable } from "./deploy.ts";
 * predictionsTable({ result: await predictFiles({ inputs: ["scan.jpg"] }) });
 * ```
 */
export function predictionsTable(
  options: PredictionsTableOptions,
): Displayable {
  const { result, truth } = options;
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const rows = [
    ...result.predictions.map((p) => ({
      file: basename(p.file),
      ...(truth ? { "true class": truth.get(p.file) ?? "?" } : {}),
      predicted: p.class,
      confidence: pct(p.confidence),
      ...(truth
        ? { correct: truth.get(p.file) === p.class ? "yes" : "NO" }
        : {}),
      ...Object.fromEntries(
        Object.entries(p.probabilities).map(([c, v]) => [`P(${c})`, pct(v)]),
      ),
    })),
    ...result.errors.map((e) => ({
      file: basename(e.file),
      predicted: "skipped",
      confidence: e.error,
    })),
  ];
  return htmlTable({
    rows,
    caption: options.caption ?? `Predictions of ${result.model.name}`,
  });
}

/**
 * The Grad-CAM overlays `predictFiles` wrote (`gradcamDir`), in a grid
 * captioned with the file and the predicted class.
 *
 * @example
 * ```ts ignore
 * import { gradcamGallery } from "./deploy.ts";
 * await gradcamGallery({ result: await predictFiles({ inputs: ["a.jpg"], gradcamDir: "/tmp/cam" }) });
 * ```
 */
export async function gradcamGallery(
  options: { result: PredictFilesResult; title?: string; columns?: number },
): Promise<Displayable> {
  const images = await Promise.all(
    options.result.predictions.filter((p) => p.gradcam).map(async (p) => {
      const { data, info } = await sharp(p.gradcam!)
        .removeAlpha()
        .raw()
        .toBuffer({ resolveWithObject: true });
      return {
        pixels: new Uint8Array(data),
        width: info.width,
        height: info.height,
        channels: 3 as const,
        caption: `${basename(p.file)}\n${p.class} ${
          (100 * p.confidence).toFixed(1)
        }%`,
      };
    }),
  );
  return await imageGrid({
    images,
    columns: options.columns ?? 6,
    title: options.title ?? "Grad-CAM of the predicted class",
  });
}

/** One exchange with the service. */
export interface ServiceExchange {
  /** Method and path, e.g. `POST /predict`. */
  request: string;
  /** HTTP status. */
  status: number;
  /** The JSON answer. */
  body: unknown;
}

/**
 * Starts the prediction service (`lib/deploy/serve.ts`'s handler) in this process on
 * a free loopback port with an already loaded model, calls `GET /health`,
 * `POST /predict` with each file, and `POST /predict` with a non-image (to
 * show the 415), then shuts it down. The model is not disposed.
 *
 * @example
 * ```ts ignore
 * import { serviceDemo } from "./deploy.ts";
 * const exchanges = await serviceDemo({ loaded, files: ["scan.jpg"] });
 * ```
 */
export async function serviceDemo(
  options: { loaded: LoadedModel; files: string[] },
): Promise<ServiceExchange[]> {
  const handler = createPredictHandler({
    model: options.loaded.model,
    metadata: options.loaded.metadata,
    log: false,
  });
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    handler,
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  const exchanges: ServiceExchange[] = [];
  const call = async (request: string, init?: RequestInit) => {
    const [method, path] = request.split(" ");
    const response = await fetch(`${base}${path}`, { method, ...init });
    exchanges.push({
      request,
      status: response.status,
      body: await response.json(),
    });
  };
  try {
    await call("GET /health");
    for (const file of options.files) {
      await call("POST /predict", {
        headers: { "content-type": "application/octet-stream" },
        body: await Deno.readFile(file),
      });
    }
    await call("POST /predict", {
      headers: { "content-type": "text/plain" },
      body: "not an image",
    });
  } finally {
    await server.shutdown();
  }
  return exchanges;
}

/**
 * The exchanges of {@linkcode serviceDemo} as a table.
 *
 * @example
 * ```ts ignore
 * import { serviceDemo, serviceTable } from "./deploy.ts";
 * serviceTable(await serviceDemo({ loaded, files: ["scan.jpg"] }));
 * ```
 */
export function serviceTable(exchanges: ServiceExchange[]): Displayable {
  return htmlTable({
    rows: exchanges.map((e) => {
      const body = e.body as
        & Partial<PredictResponse>
        & { error?: string; status?: string };
      return {
        request: e.request,
        status: e.status,
        answer: body.class
          ? `${body.class} (${(100 * (body.confidence ?? 0)).toFixed(1)}%)`
          : body.status
          ? `${body.status} (model ${body.model})`
          : body.error ?? JSON.stringify(e.body),
      };
    }),
    caption: "Calls to the service on loopback",
  });
}
