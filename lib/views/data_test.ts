import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { prepareData } from "../data/prepare.ts";
import {
  augmentationView,
  classBalanceChart,
  duplicatePairsGrid,
  imageDimensions,
  sampleGrid,
  sizeDistributionChart,
  sourceBanner,
  splitTable,
} from "./data.ts";
import { JUPYTER_DISPLAY } from "../core/display.ts";
import { PLOTLY_MIME } from "../core/plot.ts";
import { generateSyntheticDataset } from "../data/synthetic.ts";

const bundle = (d: { [JUPYTER_DISPLAY](): Record<string, unknown> }) =>
  d[JUPYTER_DISPLAY]();

Deno.test("data_views: the synthetic banner is loud, the real one plain", () => {
  const syn = bundle(
    sourceBanner({ root: "/x", synthetic: true, reason: "no dataset" }),
  );
  assert.match(String(syn["text/plain"]), /^\*\*\* SYNTHETIC DATA/);
  assert.match(String(syn["text/html"]), /#c0392b/);
  const real = bundle(
    sourceBanner({ root: "/d", synthetic: false, reason: "BRAIN_MRI_DATA" }),
  );
  assert.equal(real["text/plain"], "Dataset: /d (BRAIN_MRI_DATA)");
});

/** The near pair of the pipeline run: one row, two scans, its Hamming distance. */
function assertOnePairRow(pairs: Record<string, unknown>): void {
  assert.equal(String(pairs["text/html"]).match(/<img /g)?.length, 2);
  assert.match(String(pairs["text/plain"]), /near-copy\.jpg/);
  // One row per pair, with the two scans and their Hamming distance.
  assert.equal(
    String(pairs["text/html"]).match(/class="brain-mri-pair"/g)?.length,
    1,
  );
  assert.match(
    String(pairs["text/plain"]).split("\n")[1],
    /^pair 1: Hamming distance \d+: .+ \| .+near-copy\.jpg$|^pair 1: Hamming distance \d+: .+near-copy\.jpg \| .+$/,
  );
}

Deno.test("data_views: every view renders from a real pipeline run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "views-test-" });
  try {
    const root = join(dir, "ds");
    await generateSyntheticDataset({
      outDir: root,
      seed: 9,
      trainPerClass: 8,
      testPerClass: 3,
    });
    // A near duplicate: one scan re-encoded at lower quality and 90% size.
    const src = join(root, "Training", "pituitary", "Tr-pi_0000.jpg");
    const meta = await sharp(src).metadata();
    await sharp(src).resize(Math.round(meta.width! * 0.9)).jpeg({ quality: 60 })
      .toFile(join(root, "Training", "pituitary", "near-copy.jpg"));
    const data = await prepareData({
      source: root,
      size: 32,
      seed: 1,
      cacheDir: join(dir, "cache"),
    });

    const balance = bundle(classBalanceChart(data.dataset));
    const traces =
      (balance[PLOTLY_MIME] as { data: { name: string; y: number[] }[] }).data;
    assert.deepEqual(traces.map((t) => t.name), ["Training", "Testing"]);
    assert.deepEqual(traces[0].y, [8, 8, 8, 9]);

    const grid = bundle(
      await sampleGrid({
        split: data.train,
        classes: data.classes,
        size: 32,
        perClass: 2,
      }),
    );
    assert.equal(String(grid["text/html"]).match(/<img /g)?.length, 8);

    const dims = await imageDimensions({
      paths: data.dataset.files.map((f) => f.path),
    });
    assert.equal(dims.length, data.dataset.files.length);
    const sizes = bundle(sizeDistributionChart(dims));
    assert.match(String(sizes["text/plain"]), /distinct sizes in 45 images/);

    assert.equal(data.audit.summary.near.groups, 1);
    const pairs = bundle(
      await duplicatePairsGrid({ audit: data.audit, size: 32 }),
    );
    assertOnePairRow(pairs);
    const none = bundle(
      await duplicatePairsGrid({ audit: data.audit, kind: "exact" }),
    );
    assert.equal(none["text/plain"], "no exact-duplicate pairs");

    const table = String(bundle(splitTable(data))["text/plain"]);
    const total = table.split("\n").find((l) => l.startsWith("total"))!;
    assert.deepEqual(
      total.split(/\s+/).slice(1).map(Number),
      [data.train.files.length, data.validation.files.length, 12, 12],
    );

    const aug = bundle(
      await augmentationView({
        pixels: data.train.pixels.subarray(0, 32 * 32),
        size: 32,
        seed: 2,
        count: 4,
      }),
    );
    assert.match(String(aug["text/plain"]), /original/);
    assert.equal(String(aug["text/html"]).match(/<img /g)?.length, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
