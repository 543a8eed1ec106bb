import assert from "node:assert/strict";
import { JUPYTER_DISPLAY } from "../core/display.ts";
import { seedCnn } from "../model/models.ts";
import { architectureTable, layerShapesChart, summaryTable } from "./model.ts";
import { PLOTLY_MIME } from "../core/plot.ts";
import { tf } from "../core/tf.ts";

Deno.test("model_views: summary, comparison and shapes chart, no tensor left", () => {
  const before = tf.memory().numTensors;
  const model = seedCnn({ inputSize: 64, channels: 1, numClasses: 4 });
  try {
    const summary = summaryTable(model)[JUPYTER_DISPLAY]();
    const total = model.countParams().toLocaleString("en-US");
    assert.match(
      String(summary["text/plain"]),
      new RegExp(`${total} parameters`),
    );
    assert.match(String(summary["text/html"]), /<td>Conv2D<\/td>/);

    const chart = layerShapesChart(model)[JUPYTER_DISPLAY]();
    const trace =
      (chart[PLOTLY_MIME] as { data: { x: number[]; y: string[] }[] }).data[0];
    assert.equal(trace.y.length, model.layers.length);
    assert.equal(trace.x.at(-1), 4, "the last layer has one value per class");
  } finally {
    model.dispose();
  }
  const table = String(
    architectureTable({
      architectures: ["seedCnn", "vgg", "resnet"],
      inputSize: 64,
      channels: 1,
      numClasses: 4,
    })[
      JUPYTER_DISPLAY
    ]()["text/plain"],
  );
  assert.match(table, /seedCnn/);
  assert.match(table, /resnet/);
  assert.equal(tf.memory().numTensors, before);
});
