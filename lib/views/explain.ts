/**
 * Explaining a model's mistakes in a notebook: the most confident
 * misclassified scans beside their Grad-CAM heat maps and overlays (with a
 * colour bar, and a note where a map is flat), and what the errors have in
 * common.
 *
 * @module
 */
import { basename } from "node:path";
import { Buffer } from "node:buffer";
import { decider } from "../model/decision.ts";
import {
  type Displayable,
  displayable,
  escapeHtml,
  htmlTable,
} from "../core/display.ts";
import { encodePng } from "../core/image_grid.ts";
import { selectMisclassified } from "./evaluation.ts";
import { gradCam, overlayHeatmap, turbo } from "../evaluate/gradcam.ts";
import type { EvaluationReport } from "../evaluate/metrics.ts";
import type { LayersModel } from "../core/tf.ts";

/** Spread (max − min) of a [0, 1] map below which it counts as flat. */
export const FLAT_MAP_EPSILON = 1e-6;

/**
 * Whether a Grad-CAM map is flat: its max − min is below `epsilon`, so it
 * points at nothing (Grad-CAM scales a constant map to zeros, which would
 * otherwise show as a blank overlay without a word).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isFlatHeatmap } from "./explain.ts";
 * assert.equal(isFlatHeatmap(new Float32Array(16)), true);
 * assert.equal(isFlatHeatmap([0, 0.2, 1, 0.5]), false);
 * assert.equal(isFlatHeatmap([0.3, 0.3 + 1e-9]), true);
 * ```
 */
export function isFlatHeatmap(
  heatmap: ArrayLike<number>,
  epsilon = FLAT_MAP_EPSILON,
): boolean {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < heatmap.length; i++) {
    if (heatmap[i] < lo) lo = heatmap[i];
    if (heatmap[i] > hi) hi = heatmap[i];
  }
  return !(hi - lo >= epsilon);
}

/**
 * A [0, 1] map coloured with the turbo colour map (dark blue low, dark red
 * high), as RGB bytes (`3 * heatmap.length`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { turbo } from "../evaluate/gradcam.ts";
 * import { heatmapColours } from "./explain.ts";
 * const rgb = heatmapColours([0, 1]);
 * assert.deepEqual([...rgb], [...turbo(0), ...turbo(1)]);
 * ```
 */
export function heatmapColours(heatmap: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(heatmap.length * 3);
  for (let i = 0; i < heatmap.length; i++) out.set(turbo(heatmap[i]), i * 3);
  return out;
}

/**
 * A vertical colour bar of the turbo map as HTML: high (1) at the top, low
 * (0) at the bottom, `height` CSS pixels tall.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { turbo } from "../evaluate/gradcam.ts";
 * import { colourBarHtml } from "./explain.ts";
 * const html = colourBarHtml(120);
 * assert.match(html, /class="brain-mri-colourbar"/);
 * const [r, g, b] = turbo(0); // low at the bottom
 * assert.ok(html.includes(`linear-gradient(to top, rgb(${r}, ${g}, ${b}) 0%`));
 * assert.match(html, /height:120px/);
 * ```
 */
export function colourBarHtml(height: number): string {
  const stops = Array.from({ length: 11 }, (_, i) => {
    const [r, g, b] = turbo(i / 10);
    return `rgb(${r}, ${g}, ${b}) ${i * 10}%`;
  }).join(", ");
  const label = (text: string) =>
    `<span style="font-size:10px;line-height:1">${text}</span>`;
  return `<div class="brain-mri-colourbar" title="Grad-CAM, scaled to [0, 1] per image" style="display:flex;flex-direction:column;align-items:center;gap:2px">${
    label("high")
  }<div class="brain-mri-colourbar-ramp" style="width:14px;height:${height}px;border:1px solid #888;background:linear-gradient(to top, ${stops})"></div>${
    label("low")
  }</div>`;
}

/** One scan and its Grad-CAM map, for {@linkcode gradCamPanels}. */
export interface GradCamPanel {
  /** The grayscale scan, `size * size` bytes. */
  pixels: Uint8Array;
  /** Its Grad-CAM map, `size * size` values in [0, 1]. */
  heatmap: ArrayLike<number>;
  /** What the row shows, e.g. "glioma → meningioma (93.0%)\na.jpg". */
  caption: string;
}

/** Options for {@linkcode gradCamPanels}. */
export interface GradCamPanelsOptions {
  /** The scans with their maps, one row each. */
  panels: readonly GradCamPanel[];
  /** Side of the (square) scans and maps. */
  size: number;
  /** Title above the rows. */
  title: string;
  /** Displayed side of each image in CSS pixels; default 140. */
  cellSize?: number;
}

const FLAT_NOTE =
  "flat map: Grad-CAM found nothing that raises this class's score here " +
  "(max − min below 1e-6), so the heat map and overlay are blank";

function pngImg(png: Uint8Array, alt: string, cls: string, cell: number) {
  return `<figure style="margin:0;text-align:center"><img class="${cls}" alt="${
    escapeHtml(alt)
  }" style="width:${cell}px;height:${cell}px" src="data:image/png;base64,${
    Buffer.from(png).toString("base64")
  }"/><figcaption style="font-size:11px">${
    escapeHtml(alt)
  }</figcaption></figure>`;
}

/** One row: the caption, scan | heat map | overlay, the colour bar, a flat note. */
async function panelRow(
  panel: GradCamPanel,
  size: number,
  cell: number,
): Promise<{ html: string; flat: boolean }> {
  const flat = isFlatHeatmap(panel.heatmap);
  const image = (pixels: Uint8Array, channels: 1 | 3) =>
    encodePng({ pixels, width: size, height: size, channels });
  const [scan, heat, overlay] = await Promise.all([
    image(panel.pixels, 1),
    image(heatmapColours(panel.heatmap), 3),
    image(
      overlayHeatmap({ pixels: panel.pixels, size, heatmap: panel.heatmap }),
      3,
    ),
  ]);
  const note = flat
    ? `<div class="brain-mri-flat-note" style="font-size:12px;color:#7b1d14;max-width:180px">${
      escapeHtml(FLAT_NOTE)
    }</div>`
    : "";
  const html =
    `<div class="brain-mri-gradcam-row" style="display:flex;gap:8px;align-items:center;margin:6px 0"><div style="width:170px;font-size:12px;white-space:pre-line">${
      escapeHtml(panel.caption)
    }</div>${pngImg(scan, "scan", "scan", cell)}${
      pngImg(heat, "Grad-CAM heat map", "heatmap", cell)
    }${pngImg(overlay, "overlay", "overlay", cell)}${
      colourBarHtml(cell)
    }${note}</div>`;
  return { html, flat };
}

/**
 * Grad-CAM maps beside their scans, one row per scan: the scan, its heat
 * map, the heat map over the scan, and a colour bar (low to high); a row
 * whose map is flat (see {@linkcode isFlatHeatmap}) says so instead of
 * showing a blank map without a word.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { gradCamPanels } from "./explain.ts";
 * const view = await gradCamPanels({
 *   panels: [
 *     { pixels: new Uint8Array(64).fill(90), heatmap: new Float32Array(64).map((_, i) => i / 63), caption: "a" },
 *     { pixels: new Uint8Array(64).fill(90), heatmap: new Float32Array(64), caption: "b" },
 *   ],
 *   size: 8,
 *   title: "Grad-CAM",
 * });
 * const bundle = view[JUPYTER_DISPLAY]();
 * assert.equal((bundle["text/html"] as string).match(/<img /g)?.length, 6);
 * assert.equal((bundle["text/html"] as string).match(/brain-mri-colourbar"/g)?.length, 2);
 * assert.equal(
 *   bundle["text/plain"],
 *   "Grad-CAM (2 shown; scan | heat map | overlay)\n[1] 8×8 a\n" +
 *     "[2] 8×8 b | flat map: Grad-CAM found nothing that raises this class's " +
 *     "score here (max − min below 1e-6), so the heat map and overlay are blank",
 * );
 * ```
 */
export async function gradCamPanels(
  options: GradCamPanelsOptions,
): Promise<Displayable> {
  const { size } = options;
  const cell = options.cellSize ?? 140;
  const area = size * size;
  for (const p of options.panels) {
    if (p.pixels.length !== area || p.heatmap.length !== area) {
      throw new Error(
        `gradCamPanels: "${p.caption}" has ${p.pixels.length} pixels and ` +
          `${p.heatmap.length} map values, expected ${size}×${size} of each`,
      );
    }
  }
  const rows = await Promise.all(
    options.panels.map((p) => panelRow(p, size, cell)),
  );
  const title =
    `${options.title} (${rows.length} shown; scan | heat map | overlay)`;
  const html =
    `<div class="brain-mri-gradcam"><div style="font-weight:bold;margin-bottom:4px">${
      escapeHtml(title)
    }</div>${rows.map((r) => r.html).join("")}</div>`;
  const text = [
    title,
    ...options.panels.map((p, i) =>
      `[${i + 1}] ${size}×${size} ${p.caption.replace(/\n/g, " | ")}${
        rows[i].flat ? ` | ${FLAT_NOTE}` : ""
      }`
    ),
  ].join("\n");
  return displayable({ "text/html": html, "text/plain": text });
}

/** Options for {@linkcode mistakesGallery}. */
export interface MistakesGalleryOptions {
  /** The model. */
  model: LayersModel;
  /** The images, packed grayscale, `labels.length * size * size` bytes. */
  pixels: Uint8Array;
  /** Image side. */
  size: number;
  /** True class per image. */
  labels: ArrayLike<number>;
  /** Class probabilities, row-major. */
  probabilities: Float32Array;
  /** File of each image. */
  files: readonly string[];
  /** Class names. */
  classes: string[];
  /** How many mistakes to show; default 12. */
  limit?: number;
  /** Layer Grad-CAM explains; default the last Conv2D. */
  layerName?: string;
  /** The operating point (lib/model/decision.ts); default argmax. */
  tumourThreshold?: number;
}

/** The predicted class of each image and its probability. */
function predictions(
  options: MistakesGalleryOptions,
): { yPred: Int32Array; confidences: Float32Array } {
  const k = options.classes.length;
  const n = options.labels.length;
  const yPred = new Int32Array(n);
  const confidences = new Float32Array(n);
  const decide = decider(options.classes, {
    tumourThreshold: options.tumourThreshold,
  });
  for (let i = 0; i < n; i++) {
    const row = options.probabilities.subarray(i * k, (i + 1) * k);
    const best = decide(row);
    yPred[i] = best;
    confidences[i] = row[best];
  }
  return { yPred, confidences };
}

/**
 * The most confident mistakes first, each as the scan, its Grad-CAM heat
 * map for the predicted class (what made the model say so; predicted by
 * argmax, or by the operating point when `tumourThreshold` is given), the
 * overlay and a colour bar, with a note where the map is flat (see
 * {@linkcode gradCamPanels}). Grad-CAM runs only on the images shown.
 *
 * @example With a small untrained seed CNN
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { tf } from "../core/tf.ts";
 * import { seedCnn } from "../model/models.ts";
 * import { mistakesGallery } from "./explain.ts";
 * const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
 * const before = tf.memory().numTensors;
 * const gallery = await mistakesGallery({
 *   model,
 *   pixels: new Uint8Array(2 * 32 * 32).map((_, i) => (i * 13) % 256),
 *   size: 32,
 *   labels: [0, 2],
 *   probabilities: new Float32Array([
 *     0.1, 0.7, 0.1, 0.1, // a glioma called meningioma: a mistake
 *     0.1, 0.1, 0.7, 0.1, // a scan without tumour, right
 *   ]),
 *   files: ["a.jpg", "b.jpg"],
 *   classes: ["glioma", "meningioma", "notumor", "pituitary"],
 * });
 * assert.equal(tf.memory().numTensors, before);
 * assert.match(
 *   gallery[JUPYTER_DISPLAY]()["text/plain"] as string,
 *   /\(1 shown; scan \| heat map \| overlay\)\n\[1\] 32×32 glioma → meningioma \(70\.0%\) \| a\.jpg/,
 * );
 * model.dispose();
 * ```
 */
export async function mistakesGallery(
  options: MistakesGalleryOptions,
): Promise<Displayable> {
  const { yPred, confidences } = predictions(options);
  const title =
    "Most confident mistakes, with Grad-CAM for the predicted class";
  const picked = selectMisclassified({
    yTrue: options.labels,
    yPred,
    confidences,
    limit: options.limit ?? 12,
  });
  if (!picked.length) {
    return displayable({
      "text/html": `<p><b>${title}</b>: no misclassified images.</p>`,
      "text/plain": `${title}: no misclassified images.`,
    });
  }
  const area = options.size * options.size;
  const name = (c: number) => options.classes[c] ?? `class ${c}`;
  const panels = picked.map((i): GradCamPanel => {
    const pixels = options.pixels.subarray(i * area, (i + 1) * area);
    const { heatmaps } = gradCam({
      model: options.model,
      images: { pixels, size: options.size },
      classIndex: yPred[i],
      layerName: options.layerName,
    });
    return {
      pixels,
      heatmap: heatmaps[0],
      caption: `${name(options.labels[i])} → ${name(yPred[i])} (${
        (100 * confidences[i]).toFixed(1)
      }%)\n${basename(options.files[i])}`,
    };
  });
  return await gradCamPanels({ panels, size: options.size, title });
}

/**
 * What the errors have in common: every off-diagonal cell of the confusion
 * matrix, most frequent first, with its share of all errors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { evaluationReport } from "../evaluate/metrics.ts";
 * import { confusionsTable } from "./explain.ts";
 * const report = evaluationReport({
 *   yTrue: [0, 1, 1],
 *   probs: [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]],
 *   classes: ["glioma", "notumor"],
 * });
 * assert.equal(
 *   confusionsTable(report)[JUPYTER_DISPLAY]()["text/plain"],
 *   "The 1 errors by kind, most frequent first\n" +
 *     "true class  predicted  images  share of errors\n" +
 *     "----------  ---------  ------  ---------------\n" +
 *     "notumor     glioma     1       100.0%",
 * );
 * ```
 */
export function confusionsTable(report: EvaluationReport): Displayable {
  const rows: { "true class": string; predicted: string; images: number }[] =
    [];
  report.confusionMatrix.forEach((row, t) =>
    row.forEach((count, p) => {
      if (t !== p && count > 0) {
        rows.push({
          "true class": report.classes[t],
          predicted: report.classes[p],
          images: count,
        });
      }
    })
  );
  rows.sort((a, b) => b.images - a.images);
  const errors = rows.reduce((a, r) => a + r.images, 0);
  return htmlTable({
    rows: rows.length
      ? rows.map((r) => ({
        ...r,
        "share of errors": `${(100 * r.images / errors).toFixed(1)}%`,
      }))
      : [{ "true class": "(no errors)", predicted: "", images: 0 }],
    caption: `The ${errors} errors by kind, most frequent first`,
  });
}
