import assert from "node:assert/strict";
import { JUPYTER_DISPLAY } from "../core/display.ts";
import { confusionsTable, gradCamPanels, mistakesGallery } from "./explain.ts";
import { evaluationReport } from "../evaluate/metrics.ts";
import { buildModel } from "../model/models.ts";
import { tf } from "../core/tf.ts";

Deno.test("explain: confusions are listed most frequent first", () => {
  const report = evaluationReport({
    yTrue: [0, 0, 0, 1, 1, 2],
    probs: [
      [0.1, 0.8, 0.1],
      [0.1, 0.8, 0.1],
      [0.8, 0.1, 0.1],
      [0.1, 0.1, 0.8],
      [0.1, 0.8, 0.1],
      [0.1, 0.1, 0.8],
    ],
    classes: ["glioma", "meningioma", "notumor"],
  });
  const text = String(confusionsTable(report)[JUPYTER_DISPLAY]()["text/plain"]);
  const lines = text.split("\n");
  assert.match(lines[0], /The 3 errors by kind/);
  assert.match(lines[3], /^glioma\s+meningioma\s+2\s+66\.7%/);
  assert.match(lines[4], /^meningioma\s+notumor\s+1\s+33\.3%/);
});

Deno.test("explain: the mistakes gallery shows scan, Grad-CAM map and overlay, no tensor left", async () => {
  const before = tf.memory().numTensors;
  const model = buildModel("resnet", {
    inputSize: 32,
    channels: 1,
    numClasses: 2,
    seed: 3,
  });
  try {
    const size = 32;
    const pixels = Uint8Array.from(
      { length: 3 * size * size },
      (_, i) => (i * 37) % 256,
    );
    const probabilities = new Float32Array([0.9, 0.1, 0.3, 0.7, 0.2, 0.8]);
    const gallery = await mistakesGallery({
      model,
      pixels,
      size,
      labels: [1, 1, 0],
      probabilities,
      files: ["a.jpg", "b.jpg", "c.jpg"],
      classes: ["notumor", "tumour"],
    });
    const bundle = gallery[JUPYTER_DISPLAY]();
    // Mistakes: a (tumour → notumor, 0.9) and c (notumor → tumour, 0.8),
    // each as scan, heat map and overlay, with a colour bar.
    const html = String(bundle["text/html"]);
    assert.equal(html.match(/<img /g)?.length, 6);
    assert.equal(html.match(/class="brain-mri-gradcam-row"/g)?.length, 2);
    assert.equal(html.match(/class="brain-mri-colourbar"/g)?.length, 2);
    const text = String(bundle["text/plain"]);
    assert.ok(
      text.indexOf("a.jpg") < text.indexOf("c.jpg"),
      "most confident first",
    );
    assert.match(text, /tumour → notumor \(90\.0%\)/);
  } finally {
    model.dispose();
  }
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("explain: a flat Grad-CAM map is named as such, a map with a peak is not", async () => {
  const size = 4;
  const scan = new Uint8Array(size * size).fill(120);
  const peak = new Float32Array(size * size);
  peak[5] = 1;
  const view = await gradCamPanels({
    panels: [
      { pixels: scan, heatmap: peak, caption: "peak" },
      { pixels: scan, heatmap: new Float32Array(size * size), caption: "flat" },
    ],
    size,
    title: "maps",
  });
  const bundle = view[JUPYTER_DISPLAY]();
  const [, peakLine, flatLine] = String(bundle["text/plain"]).split("\n");
  assert.doesNotMatch(peakLine, /flat map/);
  assert.match(flatLine, /flat map: .*max − min below 1e-6/);
  const html = String(bundle["text/html"]);
  assert.equal(html.match(/class="brain-mri-flat-note"/g)?.length, 1);
  await assert.rejects(
    () =>
      gradCamPanels({
        panels: [{ pixels: scan, heatmap: [0, 1], caption: "short" }],
        size,
        title: "maps",
      }),
    /"short" has 16 pixels and 2 map values, expected 4×4 of each/,
  );
});
