import assert from "node:assert/strict";
import { JUPYTER_DISPLAY } from "../core/display.ts";
import { PLOTLY_MIME } from "../core/plot.ts";
import { evaluationReport } from "../evaluate/metrics.ts";
import { binaryTumourRoc, oneVsRestRoc } from "../evaluate/roc.ts";
import { calibration } from "../evaluate/calibration.ts";
import {
  comparisonRows,
  comparisonTable,
  confusionMatrixFigure,
  misclassifiedGallery,
  perClassTable,
  reliabilityDiagram,
  rocFigure,
  selectMisclassified,
} from "./evaluation.ts";
import { TEN_PREDICTIONS } from "../../tests/fixtures.ts";

type Spec = {
  data: Record<string, unknown>[];
  layout: { title: { text: string } } & Record<string, unknown>;
};

function bundleOf(d: { [JUPYTER_DISPLAY](): Record<string, unknown> }) {
  return d[JUPYTER_DISPLAY]();
}

function specOf(d: { [JUPYTER_DISPLAY](): Record<string, unknown> }): Spec {
  const spec = bundleOf(d)[PLOTLY_MIME] as Spec;
  assert.ok(spec, "a Plotly figure");
  return spec;
}

// The fixture of metrics_test.ts: 7 of 10 right, meningioma never predicted.
const { classes: CLASSES, probs: P, yTrue: Y } = TEN_PREDICTIONS;
const REPORT = evaluationReport({ yTrue: Y, probs: P, classes: CLASSES });

Deno.test("eval_plots: confusion matrix heatmap, counts annotated, rows normalised", () => {
  const matrix = [[2, 0, 1, 0], [1, 0, 0, 1], [0, 0, 3, 0], [0, 0, 0, 0]];
  const fig = confusionMatrixFigure({ matrix, classes: CLASSES });
  const spec = specOf(fig);
  assert.equal(spec.data.length, 1);
  const trace = spec.data[0];
  assert.equal(trace.type, "heatmap");
  assert.deepEqual(trace.z, [
    [2 / 3, 0, 1 / 3, 0],
    [0.5, 0, 0, 0.5],
    [0, 0, 1, 0],
    [0, 0, 0, 0], // no samples: zeros, not NaN
  ]);
  assert.deepEqual(trace.text, [
    ["2", "0", "1", "0"],
    ["1", "0", "0", "1"],
    ["0", "0", "3", "0"],
    ["0", "0", "0", "0"],
  ]);
  // Each cell shows its count and its share of the true class.
  assert.equal(trace.texttemplate, "%{text}<br>%{z:.1%}");
  assert.deepEqual((trace.customdata as string[][])[0], [
    "66.7%",
    "0.0%",
    "33.3%",
    "0.0%",
  ]);
  // Light where the row has none, dark where it has all.
  const scale = trace.colorscale as [number, string][];
  assert.deepEqual(scale[0], [0, "#f7fbff"]);
  assert.deepEqual(scale.at(-1), [1, "#08306b"]);
  assert.deepEqual(trace.x, CLASSES);
  assert.deepEqual(trace.y, CLASSES);
  assert.equal(
    (spec.layout.yaxis as { autorange: string }).autorange,
    "reversed",
  );
  assert.equal(spec.layout.title.text, "Confusion matrix");
  const text = bundleOf(fig)["text/plain"] as string;
  assert.match(text, /rows: true class/);
  assert.match(text, /\s+notumor\s+0\s+0\s+3\s+0/);
  assert.throws(
    () => confusionMatrixFigure({ matrix: [[1]], classes: CLASSES }),
    /not 4×4/,
  );
});

Deno.test("eval_plots: per-class table with averages", () => {
  const table = bundleOf(perClassTable(REPORT));
  const html = table["text/html"] as string;
  const text = table["text/plain"] as string;
  assert.match(html, /<th>precision<\/th>/);
  assert.equal((html.match(/<tr>/g) ?? []).length, 1 + 4 + 2);
  const lines = text.split("\n");
  const row = (name: string) =>
    lines.find((l) => l.startsWith(name))!.split(/\s{2,}/);
  // class, precision, recall, f1, support, auc
  assert.deepEqual(row("glioma"), [
    "glioma",
    "0.667",
    "0.667",
    "0.667",
    "3",
    "0.833",
  ]);
  // meningioma is never predicted: its precision is not defined (null).
  assert.deepEqual(row("meningioma"), [
    "meningioma",
    "—",
    "0.000",
    "0.000",
    "2",
    "1.000",
  ]);
  assert.deepEqual(row("macro average"), [
    "macro average",
    "0.694",
    "0.667",
    "0.581",
    "10",
    "0.939",
  ]);
  assert.deepEqual(row("weighted average").slice(0, 5), [
    "weighted average",
    "0.698",
    "0.700",
    "0.617",
    "10",
  ]);
  // An undefined AUC shows as —.
  const single = evaluationReport({
    yTrue: [2, 2],
    probs: [[0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.7, 0.1]],
    classes: CLASSES,
  });
  assert.match(bundleOf(perClassTable(single))["text/plain"] as string, /—/);
});

Deno.test("eval_plots: ROC curves, one per class plus the binary one, AUC in the legend", () => {
  const input = { yTrue: Y, probs: P, classes: CLASSES };
  const roc = oneVsRestRoc(input);
  const binary = binaryTumourRoc(input);
  const spec = specOf(rocFigure({ roc, binary }));
  assert.equal(spec.data.length, 4 + 1 + 1);
  assert.deepEqual(spec.data.map((t) => t.name), [
    "glioma (AUC 0.833)",
    "meningioma (AUC 1.000)",
    "notumor (AUC 0.952)",
    "pituitary (AUC 0.969)",
    "tumour vs notumor (AUC 0.952)",
    "chance",
  ]);
  assert.deepEqual(spec.data[0].x, roc.curves[0].fpr);
  assert.deepEqual(spec.data[0].y, roc.curves[0].tpr);
  assert.equal((spec.data[0].customdata as string[])[0], "∞");
  assert.deepEqual(spec.data[4].x, binary.fpr);
  assert.match(spec.layout.title.text, /macro AUC 0\.939/);
  // operating points as markers, between the curves and the diagonal
  const marked = specOf(rocFigure({
    roc,
    binary,
    markers: [{ name: "argmax", fpr: 0.25, tpr: 0.8 }],
  }));
  assert.equal(marked.data.length, 4 + 1 + 1 + 1);
  assert.deepEqual(
    [
      marked.data[5].name,
      marked.data[5].mode,
      marked.data[5].x,
      marked.data[5].y,
    ],
    ["argmax", "markers", [0.25], [0.8]],
  );
  assert.equal(marked.data[6].name, "chance");
  // Without the binary curve; a class with no examples: —, no NaN in the spec.
  const partial = oneVsRestRoc({
    yTrue: [0, 0, 1],
    probs: [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1]],
  });
  const spec2 = specOf(rocFigure({ roc: partial }));
  assert.equal(spec2.data.length, 3 + 1);
  assert.equal(spec2.data[2].name, "class 2 (AUC —)");
  assert.ok((spec2.data[2].y as unknown[]).every((v) => v === null));
  assert.ok(!JSON.stringify(spec2).includes("NaN"));
});

Deno.test("eval_plots: reliability diagram, accuracy bars, diagonal, ECE in the title", () => {
  const cal = calibration({ yTrue: Y, probs: P, bins: 10 });
  const spec = specOf(reliabilityDiagram({ calibration: cal }));
  assert.equal(spec.data.length, 3);
  const [bars, diagonal, counts] = spec.data;
  assert.equal(bars.type, "bar");
  assert.deepEqual(bars.y, [null, null, null, 2 / 3, 1, 0, 1, 1, 1, null]);
  // The counts stand in a strip above the bars, not on them.
  assert.equal(bars.text, undefined);
  assert.deepEqual(counts.text, ["", "", "", "3", "1", "2", "2", "1", "1", ""]);
  assert.deepEqual(counts.x, bars.x);
  assert.ok((counts.y as number[]).every((y) => y > 1));
  assert.equal((bars.x as number[])[3], 0.35);
  assert.deepEqual(diagonal.x, [0, 1]);
  assert.deepEqual(diagonal.y, [0, 1]);
  assert.equal(
    spec.layout.title.text,
    "Reliability diagram — ECE 34.0%, MCE 60.0%",
  );
  // The report's calibration (nulls for empty bins) draws the same.
  const fromReport = specOf(
    reliabilityDiagram({ calibration: REPORT.calibration }),
  );
  const direct = specOf(
    reliabilityDiagram({ calibration: calibration({ yTrue: Y, probs: P }) }),
  );
  assert.deepEqual(fromReport.data, direct.data);
  assert.equal((fromReport.data[0].y as unknown[]).length, 15);
});

Deno.test("eval_plots: full vs de-duplicated table", () => {
  // De-duplicated: drop scans 5 and 6 (two easy notumor scans).
  const keep = [0, 1, 2, 3, 4, 7, 8, 9];
  const dedup = evaluationReport({
    yTrue: keep.map((i) => Y[i]),
    probs: keep.map((i) => P[i]),
    classes: CLASSES,
  });
  const rows = comparisonRows({ full: REPORT, deduplicated: dedup });
  assert.deepEqual(rows.map((r) => r.metric), [
    "images",
    "accuracy",
    "macro F1",
    "weighted F1",
    "Cohen's kappa",
    "macro AUC",
    "loss",
    "ECE",
    "sensitivity",
    "specificity",
    "tumour AUC",
  ]);
  assert.deepEqual(rows[0], {
    metric: "images",
    full: "10",
    deduplicated: "8",
    difference: "-2",
  });
  // accuracy 7/10 = 0.700 [0.397, 0.892] → 5/8 = 0.625 [0.306, 0.863]
  assert.deepEqual(rows[1], {
    metric: "accuracy",
    full: "0.700 [0.397, 0.892]",
    deduplicated: "0.625 [0.306, 0.863]",
    difference: "-0.075",
  });
  assert.equal(rows[8].full, "0.857"); // sensitivity 6/7, unchanged
  assert.equal(rows[8].difference, "+0.000");
  const table = bundleOf(
    comparisonTable({ full: REPORT, deduplicated: dedup }),
  );
  assert.match(table["text/html"] as string, /<th>de-duplicated<\/th>/);
  assert.match(table["text/plain"] as string, /Full vs de-duplicated/);
});

// Five predictions over three classes: three mistakes (images 2, 3, 0, most
// confident first) and two right.
const MISTAKES = {
  yTrue: [0, 1, 2, 1, 0],
  yPred: [1, 1, 0, 2, 0],
  confidences: [0.6, 0.99, 0.95, 0.75, 0.9],
  classes: ["glioma", "notumor", "pituitary"],
  size: 8,
};

Deno.test("eval_plots: selectMisclassified, most confident mistake first", () => {
  const { yTrue, yPred, confidences } = MISTAKES;
  assert.deepEqual(selectMisclassified({ yTrue, yPred, confidences }), [
    2,
    3,
    0,
  ]);
  assert.deepEqual(
    selectMisclassified({ yTrue, yPred, confidences, limit: 2 }),
    [2, 3],
  );
  assert.deepEqual(
    selectMisclassified({
      yTrue: [0, 0],
      yPred: [1, 1],
      confidences: [0.5, 0.5],
    }),
    [0, 1],
  );
});

Deno.test("eval_plots: misclassified gallery, most confident mistake first", async () => {
  const { size } = MISTAKES;
  const asked: number[] = [];
  const grid = await misclassifiedGallery({
    ...MISTAKES,
    files: ["/x/a.jpg", "/x/b.jpg", "/x/c.jpg", "/x/d.jpg", "/x/e.jpg"],
    overlays: (i) => {
      asked.push(i);
      return new Uint8Array(size * size * 3).fill(50 * i);
    },
  });
  assert.deepEqual(asked.sort(), [0, 2, 3]); // only the mistakes
  const bundle = bundleOf(grid);
  const html = bundle["text/html"] as string;
  assert.equal((html.match(/<img /g) ?? []).length, 3);
  assert.match(html, /Most confident mistakes \(3 shown\)/);
  const text = bundle["text/plain"] as string;
  assert.deepEqual(text.split("\n").slice(1), [
    "[1] 8×8 pituitary → glioma (95.0%) | c.jpg",
    "[2] 8×8 notumor → pituitary (75.0%) | d.jpg",
    "[3] 8×8 glioma → notumor (60.0%) | a.jpg",
  ]);
});

Deno.test("eval_plots: misclassified gallery from an array of overlays; a wrong-sized one is named; no mistakes, a message", async () => {
  const { size } = MISTAKES;
  const files = ["a", "b", "c", "d", "e"];
  const overlays = MISTAKES.yTrue.map(() => new Uint8Array(size * size * 3));
  const again = await misclassifiedGallery({
    ...MISTAKES,
    files,
    overlays,
    limit: 1,
  });
  assert.equal(
    ((bundleOf(again)["text/html"] as string).match(/<img /g) ?? []).length,
    1,
  );
  overlays[2] = new Uint8Array(5);
  await assert.rejects(
    () => misclassifiedGallery({ ...MISTAKES, files, overlays }),
    /overlay of c is 5 bytes, expected 8×8×3/,
  );
  // No mistakes: a message, not an empty grid.
  const none = await misclassifiedGallery({
    files: ["a"],
    yTrue: [0],
    yPred: [0],
    confidences: [0.9],
    classes: ["glioma"],
    size,
    overlays: [],
  });
  assert.match(
    bundleOf(none)["text/plain"] as string,
    /no misclassified images/,
  );
});
