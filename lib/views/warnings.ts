/**
 * Warnings a notebook shows above the numbers they qualify: today, that the
 * evaluated model is degenerate (it never predicts a class, or is within a
 * few points of chance; see `../evaluate/degenerate.ts`), so its metrics do
 * not mean what they seem and the clinical targets are not assessable.
 *
 * @module
 */
import { type Displayable, displayable, escapeHtml } from "../core/display.ts";
import {
  DEGENERATE_HEADLINE,
  type DegenerateInput,
  type DegenerateOptions,
  degenerateReasons,
  degenerateWarning,
} from "../evaluate/degenerate.ts";

/** The warning box's inline style: visible in light and dark themes. */
const BOX_STYLE = "border:2px solid #b45309;border-left-width:8px;" +
  "background:#fef3c7;color:#78350f;padding:0.6em 1em;margin:0.5em 0;" +
  "border-radius:4px";

/** Options for {@linkcode degenerateModelBanner}. */
export type DegenerateBannerOptions = DegenerateOptions;

/**
 * A warning box saying why the evaluated model is degenerate, for the top of
 * an evaluation in a notebook; the same words as the evaluation's text
 * output and the model card. When the model is not degenerate it displays
 * nothing (an empty MIME bundle), so a notebook can always show it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { evaluationReport } from "../evaluate/metrics.ts";
 * import { degenerateModelBanner } from "./warnings.ts";
 * const classes = ["glioma", "notumor"];
 * // Calls every scan a glioma.
 * const always = evaluationReport({
 *   yTrue: [0, 0, 1],
 *   probs: [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]],
 *   classes,
 * });
 * const bundle = degenerateModelBanner(always)[JUPYTER_DISPLAY]();
 * assert.match(bundle["text/plain"] as string, /^Warning: this model is degenerate/);
 * assert.match(bundle["text/html"] as string, /<li>never predicts notumor, though 1 of the 3 scans are notumor<\/li>/);
 * // A model that is right: nothing to show.
 * const good = evaluationReport({
 *   yTrue: [0, 1],
 *   probs: [[0.9, 0.1], [0.2, 0.8]],
 *   classes,
 * });
 * assert.deepEqual(degenerateModelBanner(good)[JUPYTER_DISPLAY](), {});
 * ```
 */
export function degenerateModelBanner(
  report: DegenerateInput,
  options: DegenerateBannerOptions = {},
): Displayable {
  const reasons = degenerateReasons(report, options);
  if (!reasons.length) return displayable({});
  const items = reasons.map((r) => `<li>${escapeHtml(r)}</li>`).join("");
  const html = `<div class="brain-mri-warning" role="alert" ` +
    `style="${BOX_STYLE}"><strong>⚠ ${escapeHtml(DEGENERATE_HEADLINE)}` +
    `</strong><ul style="margin:0.4em 0 0 0">${items}</ul></div>`;
  return displayable({
    "text/html": html,
    "text/plain": degenerateWarning(report, options),
  });
}
