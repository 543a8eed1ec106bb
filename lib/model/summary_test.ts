import assert from "node:assert/strict";
import { tf } from "../core/tf.ts";
import { seedCnn } from "./models.ts";
import { formatShape, modelSummary } from "./summary.ts";

Deno.test("modelSummary of the seed CNN: Keras' layer table and parameter counts", () => {
  const start = tf.memory().numTensors;
  const model = seedCnn({
    inputSize: 128,
    channels: 1,
    numClasses: 4,
    seed: 1,
  });
  const summary = modelSummary(model);
  assert.deepEqual(
    summary.rows.map((r) => [r.layer, r.type, r.outputShape, r.params]),
    [
      ["conv1", "Conv2D", "(None, 126, 126, 32)", 320],
      ["pool1", "MaxPooling2D", "(None, 63, 63, 32)", 0],
      ["conv2", "Conv2D", "(None, 61, 61, 64)", 18_496],
      ["pool2", "MaxPooling2D", "(None, 30, 30, 64)", 0],
      ["conv3", "Conv2D", "(None, 28, 28, 128)", 73_856],
      ["pool3", "MaxPooling2D", "(None, 14, 14, 128)", 0],
      ["flatten", "Flatten", "(None, 25088)", 0],
      ["dense", "Dense", "(None, 128)", 3_211_392],
      ["dropout", "Dropout", "(None, 128)", 0],
      ["predictions", "Dense", "(None, 4)", 516],
    ],
  );
  assert.equal(summary.totalParams, 3_304_580);
  assert.equal(summary.trainableParams, 3_304_580);
  assert.equal(summary.nonTrainableParams, 0);
  model.dispose();
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("formatShape writes shapes as Keras prints them", () => {
  assert.equal(formatShape([null, 25088]), "(None, 25088)");
  assert.equal(formatShape([null]), "(None,)");
  assert.equal(
    formatShape([[null, 8, 8, 6], [null, 3]]),
    "(None, 8, 8, 6), (None, 3)",
  );
});
