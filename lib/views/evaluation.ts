/**
 * Notebook views of an evaluation: the confusion matrix, the per-class table,
 * ROC curves, the reliability diagram, the full-vs-de-duplicated comparison
 * and a gallery of the most confident mistakes with their Grad-CAM overlays.
 *
 * Every function returns a display object (`../core/display.ts`,
 * `../core/plot.ts`, `../core/image_grid.ts`) and computes nothing it could
 * take from `../evaluate/metrics.ts`, `../evaluate/roc.ts` or
 * `../evaluate/calibration.ts`.
 *
 * @module
 */
import { basename } from "node:path";
import { type Displayable, displayable, htmlTable } from "../core/display.ts";
import { figure, type Trace } from "../core/plot.ts";
import { imageGrid } from "../core/image_grid.ts";
import { type EvaluationReport, normalizeRows } from "../evaluate/metrics.ts";
import type {
  BinaryTumourRoc,
  OneVsRestRoc,
  RocCurve,
} from "../evaluate/roc.ts";

/** Finite numbers pass, everything else (NaN, ±Infinity, null) becomes null. */
function finite(v: number | null | undefined): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function fixed(v: number | null | undefined, digits = 3): string {
  const f = finite(v);
  return f === null ? "—" : f.toFixed(digits);
}

function percent(v: number | null | undefined, digits = 1): string {
  const f = finite(v);
  return f === null ? "—" : `${(100 * f).toFixed(digits)}%`;
}

/**
 * The confusion matrix's colour scale: white at 0 (none of the true class)
 * to dark blue at 1 (all of it). Plotly's named "Blues" runs the other way.
 */
export const CONFUSION_COLORSCALE: readonly (readonly [number, string])[] = [
  [0, "#f7fbff"],
  [0.125, "#deebf7"],
  [0.25, "#c6dbef"],
  [0.375, "#9ecae1"],
  [0.5, "#6baed6"],
  [0.625, "#4292c6"],
  [0.75, "#2171b5"],
  [0.875, "#08519c"],
  [1, "#08306b"],
];

/** Options for {@linkcode confusionMatrixFigure}. */
export interface ConfusionMatrixOptions {
  /** Counts, rows = true class, columns = predicted class. */
  matrix: readonly (readonly number[])[];
  /** Class names, in index order. */
  classes: readonly string[];
  /** Title; default "Confusion matrix". */
  title?: string;
}

/**
 * The confusion matrix as a heatmap: each cell annotated with its count and
 * its percentage of the row (of the true class), coloured by that fraction
 * from white (none) to dark blue (all), so each true class reads as its
 * recall on the diagonal whatever its size. True classes run down the left,
 * predictions along the bottom; the margins grow to fit the class names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { type Figure, PLOTLY_MIME } from "../core/plot.ts";
 * import { CONFUSION_COLORSCALE, confusionMatrixFigure } from "./evaluation.ts";
 * const fig = confusionMatrixFigure({
 *   matrix: [[3, 1], [0, 5]],
 *   classes: ["notumor", "tumour"],
 * })[JUPYTER_DISPLAY]();
 * const [heatmap] = (fig[PLOTLY_MIME] as Figure).data;
 * assert.deepEqual(heatmap.z, [[0.75, 0.25], [0, 1]]); // coloured by row
 * assert.deepEqual(heatmap.text, [["3", "1"], ["0", "5"]]); // labelled by count
 * assert.deepEqual(heatmap.customdata, [["75.0%", "25.0%"], ["0.0%", "100.0%"]]);
 * assert.equal(heatmap.texttemplate, "%{text}<br>%{z:.1%}"); // and row %
 * // Light for none of the row, dark for all of it.
 * assert.deepEqual(heatmap.colorscale, CONFUSION_COLORSCALE);
 * assert.equal(CONFUSION_COLORSCALE[0][1], "#f7fbff");
 * assert.equal(
 *   fig["text/plain"],
 *   "Confusion matrix (rows: true class, columns: predicted)\n" +
 *     "            notumor    tumour\n" +
 *     "  notumor         3         1\n" +
 *     "   tumour         0         5",
 * );
 * ```
 */
export function confusionMatrixFigure(
  options: ConfusionMatrixOptions,
): Displayable {
  const { matrix, classes } = options;
  if (
    matrix.length !== classes.length ||
    matrix.some((row) => row.length !== classes.length)
  ) {
    throw new Error(
      `confusionMatrixFigure: the matrix is not ${classes.length}×` +
        `${classes.length} (one row and column per class)`,
    );
  }
  const title = options.title ?? "Confusion matrix";
  const fractions = normalizeRows(matrix);
  const width = Math.max(...classes.map((c) => c.length), 9);
  const text = [
    `${title} (rows: true class, columns: predicted)`,
    ["", ...classes].map((c) => c.padStart(width)).join(" "),
    ...matrix.map((row, i) =>
      [classes[i], ...row.map(String)].map((c) => c.padStart(width)).join(" ")
    ),
  ].join("\n");
  return figure({
    data: [{
      type: "heatmap",
      z: fractions,
      x: [...classes],
      y: [...classes],
      text: matrix.map((row) => row.map(String)),
      // A heatmap's text template sees x, y, z and text (not customdata):
      // z is the row share.
      texttemplate: "%{text}<br>%{z:.1%}",
      customdata: fractions.map((row) => row.map((f) => percent(f))),
      hovertemplate:
        "true %{y}, predicted %{x}: %{text} (%{customdata} of the row)<extra></extra>",
      colorscale: CONFUSION_COLORSCALE,
      zmin: 0,
      zmax: 1,
      colorbar: {
        title: { text: "share of<br>the true class", side: "right" },
        tickformat: ".0%",
      },
    }],
    layout: {
      title: { text: title },
      xaxis: {
        title: { text: "Predicted class", standoff: 12 },
        side: "bottom",
        automargin: true,
      },
      yaxis: {
        title: { text: "True class", standoff: 12 },
        autorange: "reversed",
        automargin: true,
      },
      width: 640,
      height: 540,
    },
  }, { text });
}

/**
 * The per-class table of a report: precision, recall, F1, support and AUC
 * per class, then the macro and weighted averages.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { evaluationReport } from "../evaluate/metrics.ts";
 * import { perClassTable } from "./evaluation.ts";
 * const report = evaluationReport({
 *   yTrue: [0, 1], probs: [[0.8, 0.2], [0.3, 0.7]], classes: ["notumor", "glioma"],
 * });
 * const lines = (perClassTable(report)[JUPYTER_DISPLAY]()["text/plain"] as string)
 *   .split("\n");
 * assert.equal(lines[1], "class             precision  recall  f1     support  auc");
 * assert.equal(lines[3], "notumor           1.000      1.000   1.000  1        1.000");
 * assert.deepEqual(lines.slice(5).map((l) => l.split("  ")[0]), [
 *   "macro average",
 *   "weighted average",
 * ]);
 * ```
 */
export function perClassTable(report: EvaluationReport): Displayable {
  const rows = [
    ...report.perClass.map((c) => ({
      class: c.class,
      precision: fixed(c.precision),
      recall: fixed(c.recall),
      f1: fixed(c.f1),
      support: c.support,
      auc: fixed(c.auc),
    })),
    {
      class: "macro average",
      precision: fixed(report.macro.precision),
      recall: fixed(report.macro.recall),
      f1: fixed(report.macro.f1),
      support: report.n,
      auc: fixed(report.macro.auc),
    },
    {
      class: "weighted average",
      precision: fixed(report.weighted.precision),
      recall: fixed(report.weighted.recall),
      f1: fixed(report.weighted.f1),
      support: report.n,
      auc: "",
    },
  ];
  return htmlTable({
    rows,
    columns: ["class", "precision", "recall", "f1", "support", "auc"],
    caption: `Per-class metrics (${report.n} images; a class never ` +
      "predicted has no precision: —; the averages leave it out)",
  });
}

function curveTrace(curve: RocCurve, name: string, extra: Trace = {}): Trace {
  return {
    type: "scatter",
    mode: "lines",
    name: `${name} (AUC ${fixed(curve.auc)})`,
    x: curve.fpr.map(finite),
    y: curve.tpr.map(finite),
    customdata: curve.thresholds.map((t) =>
      Number.isFinite(t) ? t.toFixed(3) : "∞"
    ),
    hovertemplate:
      `${name}<br>FPR %{x:.3f}, TPR %{y:.3f}<br>threshold %{customdata}<extra></extra>`,
    ...extra,
  };
}

/** Options for {@linkcode rocFigure}. */
export interface RocFigureOptions {
  /** One-vs-rest curves (from `oneVsRestRoc`). */
  roc: OneVsRestRoc;
  /** The tumour-vs-no-tumour curve (from `binaryTumourRoc`), drawn thicker and dashed. */
  binary?: BinaryTumourRoc;
  /** Title; default "ROC curves (one class vs the rest)". */
  title?: string;
  /**
   * Operating points to mark, e.g. argmax and a tumour threshold on the
   * binary curve: false-positive rate (1 − specificity) and true-positive
   * rate (sensitivity) of each.
   */
  markers?: readonly { name: string; fpr: number; tpr: number }[];
}

/**
 * ROC curves: one per class (one vs the rest), the binary tumour curve if
 * given, operating points marked if given, and the chance diagonal, with each
 * AUC in the legend (`—` when a class has no positive or no negative
 * example).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { type Figure, PLOTLY_MIME } from "../core/plot.ts";
 * import { binaryTumourRoc, oneVsRestRoc } from "../evaluate/roc.ts";
 * import { rocFigure } from "./evaluation.ts";
 * const input = {
 *   yTrue: [0, 1, 2],
 *   probs: [[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.2, 0.2, 0.6]],
 *   classes: ["glioma", "notumor", "pituitary"],
 * };
 * const fig = rocFigure({
 *   roc: oneVsRestRoc(input),
 *   binary: binaryTumourRoc(input),
 *   markers: [{ name: "argmax", fpr: 0, tpr: 1 }],
 * })[JUPYTER_DISPLAY]();
 * const names = (fig[PLOTLY_MIME] as Figure).data.map((t) => t.name);
 * assert.deepEqual(names, [
 *   "glioma (AUC 1.000)",
 *   "notumor (AUC 1.000)",
 *   "pituitary (AUC 1.000)",
 *   "tumour vs notumor (AUC 1.000)",
 *   "argmax",
 *   "chance",
 * ]);
 * assert.match(fig["text/plain"] as string, /^ROC curves \(one class vs the rest\); macro AUC 1\.000\n/);
 * ```
 */
export function rocFigure(options: RocFigureOptions): Displayable {
  const { roc, binary } = options;
  const title = options.title ?? "ROC curves (one class vs the rest)";
  const data: Trace[] = roc.curves.map((curve, c) =>
    curveTrace(curve, roc.classes[c])
  );
  if (binary) {
    data.push(
      curveTrace(binary, `tumour vs ${binary.negativeClass}`, {
        line: { width: 4, dash: "dash", color: "black" },
      }),
    );
  }
  for (const m of options.markers ?? []) {
    data.push({
      type: "scatter",
      mode: "markers",
      name: m.name,
      x: [m.fpr],
      y: [m.tpr],
      marker: { size: 12, symbol: "x", line: { width: 2 } },
      hovertemplate: `${m.name}<br>FPR %{x:.3f}, TPR %{y:.3f}<extra></extra>`,
    });
  }
  data.push({
    type: "scatter",
    mode: "lines",
    name: "chance",
    x: [0, 1],
    y: [0, 1],
    line: { dash: "dot", color: "gray", width: 1 },
    hoverinfo: "skip",
  });
  const text = [
    `${title}; macro AUC ${fixed(roc.macroAuc)}`,
    ...roc.curves.map((c, i) => `${roc.classes[i]}: AUC ${fixed(c.auc)}`),
    ...(binary
      ? [`tumour vs ${binary.negativeClass}: AUC ${fixed(binary.auc)}`]
      : []),
  ].join("\n");
  return figure({
    data,
    layout: {
      title: { text: `${title} — macro AUC ${fixed(roc.macroAuc)}` },
      xaxis: { title: { text: "False-positive rate" }, range: [0, 1] },
      yaxis: {
        title: { text: "True-positive rate" },
        range: [0, 1.02],
        scaleanchor: "x",
      },
      width: 620,
      height: 560,
      legend: { x: 0.45, y: 0.05 },
    },
  }, { text });
}

/** Calibration data as `calibration()` or `evaluationReport().calibration` give it. */
export interface ReliabilityData {
  /** Number of bins. */
  bins: number;
  /** Expected calibration error (`NaN`/`null` when undefined). */
  ece: number | null;
  /** Maximum calibration error. */
  mce: number | null;
  /** One entry per bin. */
  reliability: readonly {
    lower: number;
    upper: number;
    count: number;
    meanConfidence: number | null;
    accuracy: number | null;
  }[];
}

/** Height (in accuracy units) of the strip of bin counts above the bars. */
const COUNT_STRIP_Y = 1.09;

/** Options for {@linkcode reliabilityDiagram}. */
export interface ReliabilityOptions {
  /** The calibration data. */
  calibration: ReliabilityData;
  /** Title prefix; default "Reliability diagram". */
  title?: string;
}

/** The accuracy bars, the diagonal and the strip of bin counts. */
function reliabilityTraces(bins: ReliabilityData["reliability"]): Trace[] {
  const centres = bins.map((b) => (b.lower + b.upper) / 2);
  return [
    {
      type: "bar",
      name: "accuracy",
      x: centres,
      y: bins.map((b) => (b.count ? finite(b.accuracy) : null)),
      width: bins.map((b) => b.upper - b.lower),
      customdata: bins.map((b) => [
        `(${b.lower.toFixed(3)}, ${b.upper.toFixed(3)}]`,
        fixed(b.meanConfidence),
        b.count,
      ]),
      hovertemplate:
        "confidence %{customdata[0]}: %{customdata[2]} predictions<br>mean confidence %{customdata[1]}, accuracy %{y:.3f}<extra></extra>",
      marker: { color: "steelblue", line: { color: "white", width: 1 } },
    },
    {
      type: "scatter",
      mode: "lines",
      name: "perfect calibration",
      x: [0, 1],
      y: [0, 1],
      line: { dash: "dash", color: "gray" },
      hoverinfo: "skip",
    },
    {
      type: "scatter",
      mode: "text",
      name: "predictions per bin",
      x: centres,
      y: centres.map(() => COUNT_STRIP_Y),
      text: bins.map((b) => (b.count ? String(b.count) : "")),
      textfont: { size: 10, color: "#444" },
      cliponaxis: false,
      showlegend: false,
      hoverinfo: "skip",
    },
  ];
}

/** Axes, the legend right of the plot and the label of the counts' strip. */
function reliabilityLayout(title: string): Record<string, unknown> {
  return {
    title: { text: title },
    xaxis: {
      title: { text: "Confidence (top class probability)" },
      range: [0, 1],
    },
    yaxis: {
      title: { text: "Accuracy" },
      range: [0, 1.16],
      tickvals: [0, 0.2, 0.4, 0.6, 0.8, 1],
    },
    bargap: 0,
    width: 720,
    height: 480,
    showlegend: true,
    legend: { x: 1.02, xanchor: "left", y: 0.8, yanchor: "top" },
    annotations: [{
      text: "predictions per bin",
      xref: "paper",
      yref: "y",
      x: 1.02,
      xanchor: "left",
      y: COUNT_STRIP_Y,
      yanchor: "middle",
      showarrow: false,
      font: { size: 10, color: "#444" },
    }],
  };
}

/**
 * The reliability diagram: per confidence bin a bar of the accuracy (empty
 * bins have no bar), against the diagonal of perfect calibration; ECE and MCE
 * in the title. Bars below the diagonal mean over-confidence. Each bin's
 * count of predictions is written in a strip above the bars (clear of them
 * and of the diagonal), and the legend sits to the right of the plot.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { type Figure, PLOTLY_MIME } from "../core/plot.ts";
 * import { calibration } from "../evaluate/calibration.ts";
 * import { reliabilityDiagram } from "./evaluation.ts";
 * const cal = calibration({ yTrue: [0, 1, 1], probs: [[0.9, 0.1], [0.4, 0.6], [0.8, 0.2]] });
 * const fig = reliabilityDiagram({ calibration: cal })[JUPYTER_DISPLAY]();
 * assert.equal(
 *   fig["text/plain"],
 *   "Reliability diagram — ECE 43.3%, MCE 80.0%\n" +
 *     "(0.53, 0.60]: 1 predictions, confidence 0.600, accuracy 1.000\n" +
 *     "(0.73, 0.80]: 1 predictions, confidence 0.800, accuracy 0.000\n" +
 *     "(0.87, 0.93]: 1 predictions, confidence 0.900, accuracy 1.000",
 * );
 * const [bars, diagonal, counts] = (fig[PLOTLY_MIME] as Figure).data;
 * assert.equal(diagonal.name, "perfect calibration");
 * assert.equal(bars.text, undefined); // no labels on the bars
 * assert.equal(counts.name, "predictions per bin");
 * assert.deepEqual((counts.text as string[]).filter(Boolean), ["1", "1", "1"]);
 * assert.ok((counts.y as number[]).every((y) => y > 1)); // above every bar
 * ```
 */
export function reliabilityDiagram(options: ReliabilityOptions): Displayable {
  const cal = options.calibration;
  const title = `${options.title ?? "Reliability diagram"} — ECE ${
    percent(cal.ece)
  }, MCE ${percent(cal.mce)}`;
  const bins = cal.reliability;
  const text = [
    title,
    ...bins.filter((b) => b.count > 0).map((b) =>
      `(${b.lower.toFixed(2)}, ${
        b.upper.toFixed(2)
      }]: ${b.count} predictions, ` +
      `confidence ${fixed(b.meanConfidence)}, accuracy ${fixed(b.accuracy)}`
    ),
  ].join("\n");
  return figure({
    data: reliabilityTraces(bins),
    layout: reliabilityLayout(title),
  }, { text });
}

/** One row of {@linkcode comparisonRows}. */
export interface ComparisonRow {
  /** Metric name. */
  metric: string;
  /** Value on the full test set (formatted). */
  full: string;
  /** Value on the de-duplicated test set (formatted). */
  deduplicated: string;
  /** De-duplicated minus full (formatted, signed), or "" for counts. */
  difference: string;
}

/** Options for {@linkcode comparisonTable}. */
export interface ComparisonOptions {
  /** Report on the full test set. */
  full: EvaluationReport;
  /** Report on the test set without its exact and near duplicates. */
  deduplicated: EvaluationReport;
  /** Caption; default explains the comparison. */
  caption?: string;
}

/**
 * The rows of {@linkcode comparisonTable}: images, accuracy (with its
 * interval), macro and weighted F1, Cohen's kappa, macro AUC, loss, ECE and,
 * when both reports have it, the binary view's sensitivity, specificity and
 * AUC.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { evaluationReport } from "../evaluate/metrics.ts";
 * import { comparisonRows } from "./evaluation.ts";
 * const classes = ["glioma", "notumor"];
 * const full = evaluationReport({ yTrue: [0, 1, 1], probs: [[0.9, 0.1], [0.2, 0.8], [0.2, 0.8]], classes });
 * const dedup = evaluationReport({ yTrue: [0, 1], probs: [[0.9, 0.1], [0.2, 0.8]], classes });
 * const [images, accuracy] = comparisonRows({ full, deduplicated: dedup });
 * assert.deepEqual(images, {
 *   metric: "images",
 *   full: "3",
 *   deduplicated: "2",
 *   difference: "-1",
 * });
 * assert.deepEqual(accuracy, {
 *   metric: "accuracy",
 *   full: "1.000 [0.439, 1.000]", // with its Wilson interval
 *   deduplicated: "1.000 [0.342, 1.000]",
 *   difference: "+0.000",
 * });
 * ```
 */
export function comparisonRows(options: ComparisonOptions): ComparisonRow[] {
  const { full, deduplicated: dedup } = options;
  const rows: ComparisonRow[] = [{
    metric: "images",
    full: String(full.n),
    deduplicated: String(dedup.n),
    difference: `${dedup.n - full.n >= 0 ? "+" : ""}${dedup.n - full.n}`,
  }];
  const add = (
    metric: string,
    a: number | null | undefined,
    b: number | null | undefined,
  ) => {
    const fa = finite(a);
    const fb = finite(b);
    const d = fa === null || fb === null ? null : fb - fa;
    rows.push({
      metric,
      full: fixed(a),
      deduplicated: fixed(b),
      difference: d === null ? "—" : `${d >= 0 ? "+" : ""}${d.toFixed(3)}`,
    });
  };
  const withCi = (r: EvaluationReport) =>
    `${fixed(r.accuracy)} [${fixed(r.accuracyCi.lower)}, ${
      fixed(r.accuracyCi.upper)
    }]`;
  add("accuracy", full.accuracy, dedup.accuracy);
  rows[rows.length - 1].full = withCi(full);
  rows[rows.length - 1].deduplicated = withCi(dedup);
  add("macro F1", full.macro.f1, dedup.macro.f1);
  add("weighted F1", full.weighted.f1, dedup.weighted.f1);
  add("Cohen's kappa", full.cohenKappa, dedup.cohenKappa);
  add("macro AUC", full.macro.auc, dedup.macro.auc);
  add("loss", full.loss, dedup.loss);
  add("ECE", full.calibration.ece, dedup.calibration.ece);
  if (full.binary && dedup.binary) {
    add("sensitivity", full.binary.sensitivity, dedup.binary.sensitivity);
    add("specificity", full.binary.specificity, dedup.binary.specificity);
    add("tumour AUC", full.binary.auc, dedup.binary.auc);
  }
  return rows;
}

/**
 * A side-by-side table of the full test set's metrics and the de-duplicated
 * test set's (the same model on the test images minus their exact and near
 * duplicates), with the difference: a large drop means the duplicates
 * flattered the score.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { evaluationReport } from "../evaluate/metrics.ts";
 * import { comparisonTable } from "./evaluation.ts";
 * const classes = ["glioma", "notumor"];
 * const full = evaluationReport({ yTrue: [0, 1, 1], probs: [[0.9, 0.1], [0.2, 0.8], [0.2, 0.8]], classes });
 * const dedup = evaluationReport({ yTrue: [0, 1], probs: [[0.9, 0.1], [0.2, 0.8]], classes });
 * const table = comparisonTable({ full, deduplicated: dedup })[JUPYTER_DISPLAY]();
 * const lines = (table["text/plain"] as string).split("\n");
 * assert.equal(lines[1], "metric         full test set         de-duplicated         difference");
 * assert.equal(lines[4], "accuracy       1.000 [0.439, 1.000]  1.000 [0.342, 1.000]  +0.000");
 * ```
 */
export function comparisonTable(options: ComparisonOptions): Displayable {
  const rows = comparisonRows(options).map((r) => ({
    metric: r.metric,
    "full test set": r.full,
    "de-duplicated": r.deduplicated,
    difference: r.difference,
  }));
  return htmlTable({
    rows,
    caption: options.caption ??
      "Full vs de-duplicated test set (accuracy with its 95% Wilson interval)",
  });
}

/** Options for {@linkcode selectMisclassified}. */
export interface SelectMisclassifiedOptions {
  /** True class of each image. */
  yTrue: ArrayLike<number>;
  /** Predicted class of each image. */
  yPred: ArrayLike<number>;
  /** Confidence of each prediction (the predicted class's probability). */
  confidences: ArrayLike<number>;
  /** At most this many; default all. */
  limit?: number;
}

/**
 * Indices of the misclassified images, most confident mistake first (ties
 * by index), so only those need a Grad-CAM overlay.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { selectMisclassified } from "./evaluation.ts";
 * const mistakes = selectMisclassified({
 *   yTrue: [0, 1, 1],
 *   yPred: [1, 1, 0],
 *   confidences: [0.6, 0.9, 0.8],
 * });
 * assert.deepEqual(mistakes, [2, 0]);
 * ```
 */
export function selectMisclassified(
  options: SelectMisclassifiedOptions,
): number[] {
  const { yTrue, yPred, confidences } = options;
  if (yTrue.length !== yPred.length || yTrue.length !== confidences.length) {
    throw new Error(
      `selectMisclassified: ${yTrue.length} labels, ${yPred.length} ` +
        `predictions and ${confidences.length} confidences`,
    );
  }
  const wrong: number[] = [];
  for (let i = 0; i < yTrue.length; i++) {
    if (yTrue[i] !== yPred[i]) wrong.push(i);
  }
  wrong.sort((a, b) => confidences[b] - confidences[a] || a - b);
  return wrong.slice(0, options.limit ?? wrong.length);
}

/** Options for {@linkcode misclassifiedGallery}. */
export interface MisclassifiedGalleryOptions
  extends SelectMisclassifiedOptions {
  /** Path (or name) of each image. */
  files: readonly string[];
  /** Class names, in index order. */
  classes: readonly string[];
  /** Side of the (square) overlays. */
  size: number;
  /**
   * RGB overlays (`size * size * 3` bytes, e.g. from `overlayHeatmap`): one
   * per image (entries for correctly classified images may be `undefined`),
   * or a function giving the overlay of image `i`, called only for the
   * mistakes shown.
   */
  overlays:
    | ReadonlyArray<Uint8Array | undefined>
    | ((index: number) => Uint8Array | Promise<Uint8Array>);
  /** Images per row; default 6. */
  columns?: number;
  /** Displayed size of each image in CSS pixels; default 160. */
  cellSize?: number;
  /** Title; default "Most confident mistakes". */
  title?: string;
}

/**
 * A grid of the misclassified images, most confident mistake first, each
 * captioned "true → predicted (confidence)" and its file name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { misclassifiedGallery } from "./evaluation.ts";
 * const grid = await misclassifiedGallery({
 *   files: ["a.jpg", "b.jpg"],
 *   yTrue: [0, 1],
 *   yPred: [1, 1],
 *   confidences: [0.93, 0.8],
 *   classes: ["glioma", "notumor"],
 *   size: 8,
 *   overlays: (i) => new Uint8Array(8 * 8 * 3).fill(40 * i),
 * });
 * assert.equal(
 *   grid[JUPYTER_DISPLAY]()["text/plain"],
 *   "Most confident mistakes (1 shown)\n[1] 8×8 glioma → notumor (93.0%) | a.jpg",
 * );
 * ```
 */
export async function misclassifiedGallery(
  options: MisclassifiedGalleryOptions,
): Promise<Displayable> {
  const { files, classes, size, overlays } = options;
  if (files.length !== options.yTrue.length) {
    throw new Error(
      `misclassifiedGallery: ${files.length} files for ` +
        `${options.yTrue.length} labels`,
    );
  }
  const title = options.title ?? "Most confident mistakes";
  const picked = selectMisclassified(options);
  if (!picked.length) {
    return displayable({
      "text/html": `<p><b>${title}</b>: no misclassified images.</p>`,
      "text/plain": `${title}: no misclassified images.`,
    });
  }
  const images = await Promise.all(picked.map(async (i) => {
    const pixels = typeof overlays === "function"
      ? await overlays(i)
      : overlays[i];
    if (!pixels || pixels.length !== size * size * 3) {
      throw new Error(
        `misclassifiedGallery: the overlay of ${files[i]} is ${
          pixels ? `${pixels.length} bytes` : "missing"
        }, expected ${size}×${size}×3 RGB bytes`,
      );
    }
    const name = (c: number) => classes[c] ?? `class ${c}`;
    return {
      pixels,
      width: size,
      height: size,
      channels: 3 as const,
      caption: `${name(options.yTrue[i])} → ${name(options.yPred[i])} (${
        percent(options.confidences[i])
      })\n${basename(files[i])}`,
    };
  }));
  return await imageGrid({
    images,
    columns: options.columns,
    cellSize: options.cellSize ?? 160,
    title: `${title} (${picked.length} shown)`,
  });
}
