import assert from "node:assert/strict";
import { join } from "node:path";
import { ellipseScanJpeg, saveTinyModel } from "../../tests/fixtures.ts";
import {
  comparePredictions,
  explainScan,
  gradcamGallery,
  predictionsTable,
  probabilityChart,
  scanPanels,
  serviceDemo,
  serviceTable,
} from "./deploy.ts";
import { gradCam } from "../evaluate/gradcam.ts";
import { preprocessImage } from "../data/preprocess.ts";
import { type Figure, PLOTLY_MIME } from "../core/plot.ts";
import { JUPYTER_DISPLAY } from "../core/display.ts";
import { predictFiles } from "../deploy/predict.ts";
import { loadSavedModel, saveModel } from "../model/saved_model.ts";
import { tf } from "../core/tf.ts";

async function withTemp(body: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "deploy_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("deploy: save → reload predicts identically; another model does not", async () => {
  await withTemp(async (dir) => {
    const start = tf.memory().numTensors;
    await saveTinyModel(join(dir, "a"), { seed: 1 });
    await saveTinyModel(join(dir, "other"), { seed: 2 });
    const a = await loadSavedModel(join(dir, "a"));
    await saveModel({
      model: a.model,
      dir: join(dir, "copy"),
      metadata: a.metadata,
    });
    const copy = await loadSavedModel(join(dir, "copy"));
    const other = await loadSavedModel(join(dir, "other"));
    const pixels = new Uint8Array(5 * 32 * 32).map((_, i) => (i * 37) % 256);
    const same = await comparePredictions({
      a: a.model,
      b: copy.model,
      pixels,
      size: 32,
    });
    assert.deepEqual(same, {
      images: 5,
      maxAbsDiff: 0,
      changedClass: 0,
      identical: true,
    });
    const differs = await comparePredictions({
      a: a.model,
      b: other.model,
      pixels,
      size: 32,
    });
    assert.equal(differs.identical, false);
    assert.ok(differs.maxAbsDiff > 0);
    for (const m of [a, copy, other]) m.model.dispose();
    assert.equal(tf.memory().numTensors, start);
  });
});

Deno.test("deploy: predictions table, Grad-CAM gallery and the service on loopback", async () => {
  await withTemp(async (dir) => {
    await saveTinyModel(join(dir, "model"), { seed: 3 });
    const files = [join(dir, "one.jpg"), join(dir, "two.jpg")];
    await Deno.writeFile(files[0], await ellipseScanJpeg(1, 64));
    await Deno.writeFile(files[1], await ellipseScanJpeg(2, 64));
    await Deno.writeTextFile(join(dir, "notes.txt"), "not a scan");
    const loaded = await loadSavedModel(join(dir, "model"));
    const start = tf.memory().numTensors;
    const result = await predictFiles({
      inputs: [...files, join(dir, "notes.txt")],
      model: loaded,
      modelDir: join(dir, "model"),
      gradcamDir: join(dir, "cam"),
    });
    const table = predictionsTable({
      result,
      truth: new Map([[files[0], "glioma"], [files[1], "notumor"]]),
    })[JUPYTER_DISPLAY]();
    const text = table["text/plain"] as string;
    assert.match(text, /one\.jpg/);
    assert.match(text, /P\(meningioma\)/);
    assert.match(text, /notes\.txt +.*skipped/);
    const gallery = (await gradcamGallery({ result }))[JUPYTER_DISPLAY]();
    assert.equal(
      ((gallery["text/html"] as string).match(/<img /g) ?? []).length,
      2,
    );

    const exchanges = await serviceDemo({ loaded, files });
    assert.deepEqual(
      exchanges.map((e) => [e.request, e.status]),
      [
        ["GET /health", 200],
        ["POST /predict", 200],
        ["POST /predict", 200],
        ["POST /predict", 415],
      ],
    );
    // The service answers what predictFiles found.
    const body = exchanges[1].body as { probabilities: Record<string, number> };
    assert.deepEqual(body.probabilities, result.predictions[0].probabilities);
    const shown = serviceTable(exchanges)[JUPYTER_DISPLAY]()[
      "text/plain"
    ] as string;
    assert.match(shown, /POST \/predict +415/);
    assert.match(shown, /GET \/health +200 +ok \(model tiny-test\)/);
    assert.equal(tf.memory().numTensors, start);
    loaded.model.dispose();
  });
});

Deno.test("deploy: a scan of one's own is predicted as predict does, with the Grad-CAM of its class, charted and shown", async () => {
  await withTemp(async (dir) => {
    await saveTinyModel(join(dir, "model"), { seed: 3 });
    const file = join(dir, "mine.jpg");
    await Deno.writeFile(file, await ellipseScanJpeg(4, 80));
    await Deno.writeTextFile(join(dir, "notes.txt"), "not a scan");
    const loaded = await loadSavedModel(join(dir, "model"));
    try {
      const start = tf.memory().numTensors;
      const scan = await explainScan({ loaded, file });
      assert.equal(tf.memory().numTensors, start, "no tensor left behind");
      const expected = await predictFiles({ inputs: [file], model: loaded });
      assert.deepEqual(scan.prediction, expected.predictions[0]);
      const size = loaded.metadata.preprocessing.size;
      const pixels = await preprocessImage(file, { size });
      assert.deepEqual(scan.pixels, pixels);
      const cam = gradCam({
        model: loaded.model,
        images: { pixels, size },
        classIndex: loaded.metadata.classes.indexOf(scan.prediction.class),
      });
      assert.deepEqual(scan.heatmap, cam.heatmaps[0]);

      const chart = probabilityChart(scan)[JUPYTER_DISPLAY]();
      const [bars] = (chart[PLOTLY_MIME] as Figure).data;
      assert.deepEqual(bars.x, loaded.metadata.classes);
      assert.deepEqual(
        bars.y,
        loaded.metadata.classes.map((c) => scan.prediction.probabilities[c]),
      );
      const panels = (await scanPanels(scan))[JUPYTER_DISPLAY]();
      assert.equal(
        ((panels["text/html"] as string).match(/<img /g) ?? []).length,
        3,
      );
      assert.match(panels["text/plain"] as string, /mine\.jpg/);

      await assert.rejects(
        explainScan({ loaded, file: join(dir, "notes.txt") }),
        /notes\.txt: not a JPEG or PNG/,
      );
    } finally {
      loaded.model.dispose();
    }
  });
});
