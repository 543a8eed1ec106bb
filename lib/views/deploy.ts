/**
 * The pieces of notebook 05 (deploy): check that a saved and reloaded model
 * predicts exactly like the original, show predictions on new scans with
 * their Grad-CAM overlays, explain one scan of the reader's own (its class
 * probabilities as a chart, and scan | Grad-CAM | overlay), and call the
 * HTTP service in-process.
 *
 * @module
 */
import { basename } from "node:path";
import sharp from "sharp";
import { type Displayable, htmlTable } from "../core/display.ts";
import { predictProbabilities } from "../model/inference.ts";
import { imageGrid } from "../core/image_grid.ts";
import {
  type FilePrediction,
  modelSettings,
  predictFiles,
  type PredictFilesResult,
} from "../deploy/predict.ts";
import type { LoadedModel } from "../model/saved_model.ts";
import { preprocessImage } from "../data/preprocess.ts";
import { gradCam } from "../evaluate/gradcam.ts";
import { figure } from "../core/plot.ts";
import { gradCamPanels } from "./explain.ts";
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
 * @example Two seed CNNs built with the same seed predict alike
 * ```ts
 * import assert from "node:assert/strict";
 * import { seedCnn } from "../model/models.ts";
 * import { comparePredictions } from "./deploy.ts";
 * const options = { inputSize: 32, channels: 1, numClasses: 4, seed: 3 };
 * const a = seedCnn(options);
 * const b = seedCnn(options);
 * const pixels = new Uint8Array(3 * 32 * 32).map((_, i) => (i * 29) % 256);
 * const c = await comparePredictions({ a, b, pixels, size: 32 });
 * assert.deepEqual(c, { images: 3, maxAbsDiff: 0, changedClass: 0, identical: true });
 * a.dispose();
 * b.dispose();
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
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import type { PredictFilesResult, PredictModelInfo } from "../deploy/predict.ts";
 * import { predictionsTable } from "./deploy.ts";
 * const result: PredictFilesResult = {
 *   model: { name: "resnet-128-e11" } as PredictModelInfo,
 *   predictions: [{
 *     file: "scans/a.jpg",
 *     class: "glioma",
 *     confidence: 0.9,
 *     probabilities: { glioma: 0.9, notumor: 0.1 },
 *   }],
 *   errors: [{ file: "scans/notes.txt", error: "not a JPEG or PNG (text)" }],
 * };
 * const table = predictionsTable({
 *   result,
 *   truth: new Map([["scans/a.jpg", "glioma"]]),
 * })[JUPYTER_DISPLAY]();
 * assert.equal(
 *   table["text/plain"],
 *   [
 *     "Predictions of resnet-128-e11",
 *     "file       true class  predicted  confidence                correct  P(glioma)  P(notumor)",
 *     "---------  ----------  ---------  ------------------------  -------  ---------  ----------",
 *     "a.jpg      glioma      glioma     90.0%                     yes      90.0%      10.0%",
 *     "notes.txt              skipped    not a JPEG or PNG (text)",
 *   ].join("\n"),
 * );
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
 * @example With an overlay written to a temporary folder
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { encodePng } from "../core/image_grid.ts";
 * import type { PredictFilesResult, PredictModelInfo } from "../deploy/predict.ts";
 * import { gradcamGallery } from "./deploy.ts";
 * const dir = await Deno.makeTempDir();
 * const gradcam = join(dir, "a.gradcam.png");
 * const rgb = new Uint8Array(16 * 16 * 3).fill(200);
 * await Deno.writeFile(gradcam, await encodePng({ pixels: rgb, width: 16, height: 16, channels: 3 }));
 * const result: PredictFilesResult = {
 *   model: { name: "resnet-128-e11" } as PredictModelInfo,
 *   predictions: [
 *     { file: "a.jpg", class: "glioma", confidence: 0.9, probabilities: {}, gradcam },
 *     { file: "b.jpg", class: "notumor", confidence: 0.8, probabilities: {} },
 *   ],
 *   errors: [],
 * };
 * const gallery = await gradcamGallery({ result });
 * assert.equal(
 *   gallery[JUPYTER_DISPLAY]()["text/plain"],
 *   "Grad-CAM of the predicted class\n[1] 16×16 a.jpg | glioma 90.0%",
 * );
 * await Deno.remove(dir, { recursive: true });
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
 * Starts an HTTP server and needs a loaded model and scans, so it is not run
 * by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { loadSavedModel } from "../model/saved_model.ts";
 * import { serviceDemo } from "./deploy.ts";
 * const loaded = await loadSavedModel("models/resnet-128-e11");
 * const exchanges = await serviceDemo({ loaded, files: ["scan.jpg"] });
 * console.log(exchanges.map((e) => `${e.request}: ${e.status}`));
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
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { serviceTable } from "./deploy.ts";
 * const table = serviceTable([
 *   { request: "GET /health", status: 200, body: { status: "ok", model: "m" } },
 *   {
 *     request: "POST /predict",
 *     status: 200,
 *     body: { class: "glioma", confidence: 0.97, probabilities: {}, model: "m" },
 *   },
 *   { request: "POST /predict", status: 415, body: { error: "not an image" } },
 * ])[JUPYTER_DISPLAY]();
 * assert.equal(
 *   table["text/plain"],
 *   [
 *     "Calls to the service on loopback",
 *     "request        status  answer",
 *     "-------------  ------  --------------",
 *     "GET /health    200     ok (model m)",
 *     "POST /predict  200     glioma (97.0%)",
 *     "POST /predict  415     not an image",
 *   ].join("\n"),
 * );
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

/** One scan predicted and explained: what {@linkcode explainScan} returns. */
export interface ScanExplanation {
  /** The file. */
  file: string;
  /** The model's answer: class, confidence, every class's probability. */
  prediction: FilePrediction;
  /** Side of the scan as the model sees it. */
  size: number;
  /** The scan as the model sees it: `size * size` grayscale bytes. */
  pixels: Uint8Array;
  /** Grad-CAM of the predicted class, `size * size` values in [0, 1]. */
  heatmap: Float32Array;
}

/**
 * Predicts one image file exactly as `deno task predict` does (the model's
 * preprocessing, test-time augmentation and operating point, from its
 * metadata) and computes the Grad-CAM map of the predicted class. A file
 * that is not a readable JPEG or PNG is an error naming it. The model stays
 * the caller's.
 *
 * @example The shipped model on a grey square
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import sharp from "sharp";
 * import { projectPaths } from "../core/paths.ts";
 * import { loadSavedModel } from "../model/saved_model.ts";
 * import { explainScan } from "./deploy.ts";
 * const dir = await Deno.makeTempDir();
 * const file = join(dir, "scan.png");
 * await sharp({ create: { width: 64, height: 64, channels: 3, background: "#707070" } })
 *   .png().toFile(file);
 * const loaded = await loadSavedModel(projectPaths().defaultModel);
 * const scan = await explainScan({ loaded, file });
 * assert.equal(scan.pixels.length, scan.size * scan.size);
 * assert.equal(scan.heatmap.length, scan.size * scan.size);
 * assert.deepEqual(Object.keys(scan.prediction.probabilities), loaded.metadata.classes);
 * await assert.rejects(explainScan({ loaded, file: join(dir, "none.png") }), /none\.png/);
 * loaded.model.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function explainScan(
  options: { loaded: LoadedModel; file: string },
): Promise<ScanExplanation> {
  const { loaded, file } = options;
  const { metadata } = loaded;
  const result = await predictFiles({ inputs: [file], model: loaded });
  const [prediction] = result.predictions;
  if (!prediction) {
    throw new Error(
      `${file}: ${result.errors[0]?.error ?? "not a JPEG or PNG image"}`,
    );
  }
  const size = metadata.preprocessing.size;
  const pixels = await preprocessImage(file, modelSettings(metadata));
  const cam = gradCam({
    model: loaded.model,
    images: { pixels, size },
    classIndex: metadata.classes.indexOf(prediction.class),
  });
  return { file, prediction, size, pixels, heatmap: cam.heatmaps[0] };
}

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;

/**
 * The class probabilities of one explained scan as a Plotly bar chart (the
 * predicted class's bar highlighted, each bar labelled with its percentage).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { type Figure, PLOTLY_MIME } from "../core/plot.ts";
 * import { probabilityChart, type ScanExplanation } from "./deploy.ts";
 * const scan = {
 *   file: "/scans/mine.jpg",
 *   prediction: {
 *     file: "/scans/mine.jpg", class: "glioma", confidence: 0.75,
 *     probabilities: { glioma: 0.75, notumor: 0.25 },
 *   },
 *   size: 1,
 *   pixels: new Uint8Array(1),
 *   heatmap: new Float32Array(1),
 * } as ScanExplanation;
 * const shown = probabilityChart(scan)[JUPYTER_DISPLAY]();
 * const [bars] = (shown[PLOTLY_MIME] as Figure).data;
 * assert.deepEqual(bars.x, ["glioma", "notumor"]);
 * assert.deepEqual(bars.y, [0.75, 0.25]);
 * assert.deepEqual(bars.text, ["75.0%", "25.0%"]);
 * assert.equal(
 *   shown["text/plain"],
 *   "mine.jpg: glioma (75.0%)\nglioma: 75.0%\nnotumor: 25.0%",
 * );
 * ```
 */
export function probabilityChart(scan: ScanExplanation): Displayable {
  const { prediction } = scan;
  const classes = Object.keys(prediction.probabilities);
  const y = classes.map((c) => prediction.probabilities[c]);
  const title = `${basename(scan.file)}: ${prediction.class} (${
    percent(prediction.confidence)
  })`;
  return figure({
    data: [{
      type: "bar",
      x: classes,
      y,
      text: y.map(percent),
      textposition: "auto",
      marker: {
        color: classes.map((c) =>
          c === prediction.class ? "#d62728" : "#1f77b4"
        ),
      },
    }],
    layout: {
      title: { text: title },
      xaxis: { title: { text: "class" } },
      yaxis: { title: { text: "probability" }, range: [0, 1] },
      height: 340,
    },
  }, {
    text: [title, ...classes.map((c, i) => `${c}: ${percent(y[i])}`)]
      .join("\n"),
  });
}

/**
 * One explained scan as scan | Grad-CAM heat map | overlay, with the colour
 * bar (`gradCamPanels` of `./explain.ts`), captioned with the predicted
 * class, its probability and the file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { scanPanels, type ScanExplanation } from "./deploy.ts";
 * const scan = {
 *   file: "/scans/mine.jpg",
 *   prediction: { file: "/scans/mine.jpg", class: "glioma", confidence: 0.75, probabilities: {} },
 *   size: 8,
 *   pixels: new Uint8Array(64).fill(90),
 *   heatmap: new Float32Array(64).map((_, i) => i / 63),
 * } as ScanExplanation;
 * const shown = (await scanPanels(scan))[JUPYTER_DISPLAY]();
 * assert.equal((shown["text/html"] as string).match(/<img /g)?.length, 3);
 * assert.equal(
 *   shown["text/plain"],
 *   "Grad-CAM of glioma (1 shown; scan | heat map | overlay)\n" +
 *     "[1] 8×8 glioma (75.0%) | mine.jpg",
 * );
 * ```
 */
export function scanPanels(scan: ScanExplanation): Promise<Displayable> {
  const { prediction } = scan;
  return gradCamPanels({
    panels: [{
      pixels: scan.pixels,
      heatmap: scan.heatmap,
      caption: `${prediction.class} (${percent(prediction.confidence)})\n${
        basename(scan.file)
      }`,
    }],
    size: scan.size,
    title: `Grad-CAM of ${prediction.class}`,
  });
}
