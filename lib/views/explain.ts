/**
 * Explaining a model's mistakes in a notebook: the most confident
 * misclassified scans with their Grad-CAM overlays, and what the errors have
 * in common.
 *
 * @module
 */
import { decider } from "../model/decision.ts";
import { type Displayable, htmlTable } from "../core/display.ts";
import { misclassifiedGallery } from "./evaluation.ts";
import { gradCam, overlayHeatmap } from "../evaluate/gradcam.ts";
import type { EvaluationReport } from "../evaluate/metrics.ts";
import type { LayersModel } from "../core/tf.ts";

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

/**
 * The most confident mistakes first, each with its Grad-CAM overlay for the
 * predicted class (what made the model say so; predicted by argmax, or by the
 * operating point when `tumourThreshold` is given). Grad-CAM runs only on the
 * images shown.
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
 *   /\(1 shown\)\n\[1\] 32×32 glioma → meningioma \(70\.0%\) \| a\.jpg$/,
 * );
 * model.dispose();
 * ```
 */
export function mistakesGallery(
  options: MistakesGalleryOptions,
): Promise<Displayable> {
  const k = options.classes.length;
  const n = options.labels.length;
  const area = options.size * options.size;
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
  return misclassifiedGallery({
    yTrue: options.labels,
    yPred,
    confidences,
    limit: options.limit ?? 12,
    files: options.files,
    classes: options.classes,
    size: options.size,
    title: "Most confident mistakes, with Grad-CAM for the predicted class",
    overlays: (i) => {
      const pixels = options.pixels.subarray(i * area, (i + 1) * area);
      const { heatmaps } = gradCam({
        model: options.model,
        images: { pixels, size: options.size },
        classIndex: yPred[i],
        layerName: options.layerName,
      });
      return overlayHeatmap({
        pixels,
        size: options.size,
        heatmap: heatmaps[0],
      });
    },
  });
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
