/**
 * The notebook views' figures, drawn by plotly.js in headless Chromium and
 * checked by their geometry, not their pixels: the confusion matrix is light
 * where a row has few images and dark where it has many; no tick label is
 * clipped and no axis title runs into one; legends stay clear of the axis
 * titles and the plots; the training curves draw their chance lines; the
 * layer chart of a 50-layer ResNet has one readable, non-overlapping label
 * per layer; the reliability diagram's counts stay off its bars; the Grad-CAM
 * view shows scan, heat map and overlay with a colour bar and names a flat
 * map; duplicate pairs stand one row per pair with their Hamming distance;
 * the report index opens with the synthetic-data warning.
 *
 * The figures are built by the view functions on small made-up data and put
 * in one standalone page that embeds plotly.js from `node_modules` the way
 * the report runner (lib/tools/nbrun.py) does. Screenshots of each figure
 * are taken; set `BRAIN_MRI_SCREENSHOTS` to a folder to keep them there.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type Displayable, JUPYTER_DISPLAY } from "../lib/core/display.ts";
import { plotlyJsPath } from "../lib/core/plot.ts";
import { encodePng } from "../lib/core/image_grid.ts";
import { auditDuplicates } from "../lib/data/audit.ts";
import { calibration } from "../lib/evaluate/calibration.ts";
import { buildModel } from "../lib/model/models.ts";
import { type ChromiumSession, launchChromium } from "../lib/tools/browser.ts";
import { reportIndex } from "../lib/tools/notebooks.ts";
import { historyChart } from "../lib/train/progress.ts";
import type { EpochRecord } from "../lib/train/state.ts";
import {
  confusionMatrixFigure,
  reliabilityDiagram,
} from "../lib/views/evaluation.ts";
import { duplicatePairsGrid } from "../lib/views/data.ts";
import { gradCamPanels } from "../lib/views/explain.ts";
import { layerShapesChart } from "../lib/views/model.ts";

const CLASSES = ["glioma", "meningioma", "notumor", "pituitary"];
const MATRIX = [[50, 3, 0, 1], [4, 40, 2, 0], [0, 1, 60, 2], [1, 0, 3, 45]];

/** A box on the page, in CSS pixels. */
interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
  text: string;
}

/** What the page shows of one Plotly figure. */
interface PlotGeometry {
  id: string;
  svg: Box;
  ticks: Box[];
  yTicks: Box[];
  titles: Box[];
  legend: Box | null;
  plotAreas: Box[];
  traces: { name: string; drawn: boolean }[];
  bars: Box[];
  traceTexts: Box[];
}

/** The confusion matrix's cells: count and the colour drawn at the label. */
interface CellColour {
  count: number;
  percent: string;
  rgb: [number, number, number];
}

/** The Grad-CAM view and the duplicate pairs, read in the page. */
interface HtmlViewsGeometry {
  pairs: { images: number; text: string; oneLine: boolean }[];
  rows: {
    images: { cls: string; w: number; h: number }[];
    colourBar: Box | null;
    flatNote: boolean;
  }[];
}

/** Made-up training history: eight epochs, loss falling, the rate halving. */
function madeUpHistory(): EpochRecord[] {
  return Array.from({ length: 8 }, (_, i) => ({
    epoch: i + 1,
    loss: 1.3 * Math.exp(-0.3 * i) + 0.1,
    acc: Math.min(0.97, 0.35 + 0.09 * i),
    val_loss: 1.25 * Math.exp(-0.25 * i) + 0.15,
    val_acc: Math.min(0.93, 0.33 + 0.08 * i),
    lr: 1e-3 * 0.5 ** Math.floor(i / 3),
    seconds: 10,
    trainSeconds: 9,
    imagesPerSecond: 300,
  }));
}

/** Made-up predictions, confident ones mostly right: a calibration to draw. */
function madeUpCalibration() {
  let seed = 7;
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const yTrue: number[] = [];
  const probs: number[][] = [];
  for (let i = 0; i < 400; i++) {
    const top = 0.3 + 0.7 * random();
    const label = i % 4;
    const right = random() < top + 0.05;
    const predicted = right ? label : (label + 1) % 4;
    const rest = (1 - top) / 3;
    probs.push(CLASSES.map((_, c) => (c === predicted ? top : rest)));
    yTrue.push(label);
  }
  return calibration({ yTrue, probs, bins: 10 });
}

/** A made-up scan (a bright disc) and a Gaussian blob of attention. */
function madeUpPanels(size: number) {
  const disc = new Uint8Array(size * size).map((_, i) => {
    const x = i % size - size / 2;
    const y = Math.floor(i / size) - size / 2;
    return x * x + y * y < (size / 2.5) ** 2 ? 170 : 20;
  });
  const blob = new Float32Array(size * size).map((_, i) => {
    const x = i % size - size * 0.6;
    const y = Math.floor(i / size) - size * 0.4;
    return Math.exp(-(x * x + y * y) / (2 * (size / 6) ** 2));
  });
  return [
    { pixels: disc, heatmap: blob, caption: "glioma → meningioma (91.0%)" },
    {
      pixels: disc,
      heatmap: new Float32Array(size * size),
      caption: "notumor → glioma (64.0%)",
    },
  ];
}

/** The same made-up scan saved twice, under two classes: an exact-duplicate pair. */
async function duplicatePair(dir: string): Promise<Displayable> {
  const pixels = new Uint8Array(64 * 64).map((_, i) => (i * 7) % 256);
  const png = await encodePng({ pixels, width: 64, height: 64 });
  const files = [
    { path: join(dir, "scan-a.png"), label: "glioma" },
    { path: join(dir, "scan-b.png"), label: "notumor" },
  ];
  for (const f of files) await Deno.writeFile(f.path, png);
  const audit = await auditDuplicates({ files });
  return await duplicatePairsGrid({ audit, kind: "exact", size: 64 });
}

/** The figures under test, by id: built with the view functions. */
async function buildFigures(
  dir: string,
): Promise<Record<string, Displayable>> {
  const resnet = buildModel("resnet", {
    inputSize: 32,
    channels: 1,
    numClasses: 4,
    seed: 1,
  });
  let layers: Displayable;
  try {
    assert.ok(resnet.layers.length >= 50, "a network of 50 layers or more");
    layers = layerShapesChart(resnet);
  } finally {
    resnet.dispose();
  }
  return {
    confusion: confusionMatrixFigure({ matrix: MATRIX, classes: CLASSES }),
    history: historyChart(madeUpHistory(), { numClasses: 4 }),
    layers,
    reliability: reliabilityDiagram({ calibration: madeUpCalibration() }),
    gradcam: await gradCamPanels({
      panels: madeUpPanels(32),
      size: 32,
      title: "Grad-CAM",
    }),
    pairs: await duplicatePair(dir),
  };
}

/** One standalone page with plotly.js embedded once, as the report runner embeds it. */
function figuresPage(figures: Record<string, Displayable>): string {
  const plotly = Deno.readTextFileSync(plotlyJsPath()).replace(
    /<\/script/g,
    "<\\/script",
  );
  const sections = Object.entries(figures).map(([id, fig]) =>
    `<section id="${id}" style="margin:16px 0">${
      fig[JUPYTER_DISPLAY]()["text/html"]
    }</section>`
  ).join("\n");
  return `<!doctype html><html><head><meta charset="utf-8">` +
    `<script type="text/javascript">(function (define, module, exports) {\n${plotly}\n}).call(window);</script>` +
    `</head><body style="font-family:sans-serif">${sections}</body></html>\n`;
}

// Runs in the page (as a string: the tests are type-checked without the DOM).
const BOX_JS = `const box = (e) => {
  const r = e.getBoundingClientRect();
  return { x: r.left, y: r.top, w: r.width, h: r.height, text: e.textContent };
};`;

const READ_PLOTS = `(() => {
  ${BOX_JS}
  return [...document.querySelectorAll("section")].filter((s) =>
    s.querySelector(".js-plotly-plot")
  ).map((section) => {
    const el = section.querySelector(".js-plotly-plot");
    const all = (sel) => [...el.querySelectorAll(sel)].map(box);
    const legend = el.querySelector(".infolayer .legend rect.bg");
    const traces = [...el.querySelectorAll(".scatterlayer .trace")];
    return {
      id: section.id,
      svg: box(el.querySelector("svg.main-svg")),
      ticks: all(".xaxislayer-above text, .yaxislayer-above text")
        .filter((b) => b.text !== ""),
      yTicks: all(".yaxislayer-above text").filter((b) => b.text !== ""),
      titles: all('.infolayer [class^="g-x"] text, .infolayer [class^="g-y"] text'),
      legend: legend ? box(legend) : null,
      plotAreas: all(".draglayer rect.nsewdrag"),
      traces: el.data.filter((t) => !t.type || t.type === "scatter").map((t, i) => ({
        name: t.name,
        drawn: !!traces[i] && (
          [...traces[i].querySelectorAll("path.js-line")]
            .some((p) => (p.getAttribute("d") || "").length > 0) ||
          traces[i].querySelectorAll(".textpoint text").length > 0
        ),
      })),
      bars: all(".trace.bars .point path").filter((b) => b.h > 0),
      traceTexts: all(".scatterlayer .textpoint text").filter((b) => b.text !== ""),
    };
  });
})()`;

// Samples the heatmap's image under each cell's label.
const READ_CELLS = `(async () => {
  const el = document.querySelector("#confusion .js-plotly-plot");
  const image = el.querySelector(".hm image");
  const href = image.getAttribute("href") || image.getAttribute("xlink:href");
  const img = new Image();
  img.src = href;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const frame = image.getBoundingClientRect();
  return [...el.querySelectorAll(".heatmap-label text")].map((t) => {
    const lines = [...t.querySelectorAll("tspan")].map((s) => s.textContent);
    const r = t.getBoundingClientRect();
    // A point in the cell just left of the label, clear of the text.
    const px = Math.floor((r.left - 4 - frame.left) / frame.width * img.naturalWidth);
    const py = Math.floor((r.top + r.height / 2 - frame.top) / frame.height * img.naturalHeight);
    const [red, green, blue] = ctx.getImageData(px, py, 1, 1).data;
    return { count: Number(lines[0]), percent: lines[1], rgb: [red, green, blue] };
  });
})()`;

const READ_HTML_VIEWS = `(() => {
  ${BOX_JS}
  return {
    rows: [...document.querySelectorAll("#gradcam .brain-mri-gradcam-row")].map((row) => ({
      images: [...row.querySelectorAll("img")].map((i) => ({
        cls: i.className,
        w: i.getBoundingClientRect().width,
        h: i.getBoundingClientRect().height,
      })),
      colourBar: row.querySelector(".brain-mri-colourbar-ramp")
        ? box(row.querySelector(".brain-mri-colourbar-ramp"))
        : null,
      flatNote: !!row.querySelector(".brain-mri-flat-note"),
    })),
    pairs: [...document.querySelectorAll("#pairs .brain-mri-pair")].map((row) => ({
      images: row.querySelectorAll("img").length,
      text: row.textContent,
      oneLine: new Set([...row.querySelectorAll("img")]
        .map((i) => Math.round(i.getBoundingClientRect().top))).size === 1,
    })),
  };
})()`;

function intersects(a: Box, b: Box): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h &&
    b.y < a.y + a.h;
}

function inside(inner: Box, outer: Box, slack = 1): boolean {
  return inner.x >= outer.x - slack && inner.y >= outer.y - slack &&
    inner.x + inner.w <= outer.x + outer.w + slack &&
    inner.y + inner.h <= outer.y + outer.h + slack;
}

/** Opens the page and waits until every figure has drawn. */
async function openFigures(
  browser: ChromiumSession,
  path: string,
): Promise<string[]> {
  const errors: string[] = [];
  browser.page.on("pageerror", (e) => errors.push(e.message));
  await browser.page.goto(pathToFileURL(path).href, {
    waitUntil: "load",
    timeout: 60_000,
  });
  await browser.page.waitForFunction(
    `[...document.querySelectorAll(".brain-mri-plot")].length === 4 &&
     [...document.querySelectorAll(".brain-mri-plot")].every((el) =>
       el.querySelector("svg.main-svg"))`,
    undefined,
    { timeout: 60_000 },
  );
  return errors;
}

/** Every figure: tick labels inside the SVG, axis titles clear of them, the legend clear of titles and plots. */
function assertLayoutClear(plots: PlotGeometry[]): void {
  for (const plot of plots) {
    assert.ok(plot.ticks.length > 0, `${plot.id}: tick labels drawn`);
    for (const tick of plot.ticks) {
      assert.ok(
        inside(tick, plot.svg),
        `${plot.id}: tick label "${tick.text}" is clipped: ${
          JSON.stringify(tick)
        } outside ${JSON.stringify(plot.svg)}`,
      );
    }
    for (const title of plot.titles) {
      const hit = plot.ticks.find((t) => intersects(title, t));
      assert.equal(
        hit,
        undefined,
        `${plot.id}: axis title "${title.text}" runs into "${hit?.text}"`,
      );
    }
    if (!plot.legend) continue;
    const legend = plot.legend;
    for (const title of plot.titles) {
      assert.ok(
        !intersects(legend, title),
        `${plot.id}: legend covers "${title.text}"`,
      );
    }
    for (const area of plot.plotAreas) {
      assert.ok(!intersects(legend, area), `${plot.id}: legend on a plot`);
    }
  }
}

/** The training curves draw the chance lines and the learning rate. */
function assertHistory(history: PlotGeometry): void {
  const drawn = (name: string) =>
    history.traces.find((t) => t.name === name)?.drawn;
  assert.equal(drawn("chance accuracy (1/4)"), true, "chance accuracy line");
  assert.equal(drawn("chance loss (ln 4)"), true, "chance loss line");
  assert.equal(drawn("learning rate"), true, "learning rate line");
  assert.equal(history.plotAreas.length, 3, "loss, accuracy, learning rate");
  assert.ok(history.legend, "a legend");
}

/** One readable label per layer, none overlapping the next. */
function assertLayerLabels(layers: PlotGeometry): void {
  const labels = [...layers.yTicks].sort((a, b) => a.y - b.y);
  assert.ok(labels.length >= 50, `${labels.length} layer labels`);
  for (let i = 1; i < labels.length; i++) {
    assert.ok(
      labels[i - 1].y + labels[i - 1].h <= labels[i].y + 0.5,
      `layer labels "${labels[i - 1].text}" and "${labels[i].text}" overlap`,
    );
  }
  assert.ok(labels.every((l) => l.h >= 9), "labels at a readable size");
}

/** The reliability diagram's counts are drawn, and none on a bar. */
function assertReliabilityCounts(reliability: PlotGeometry): void {
  assert.ok(reliability.bars.length >= 5, "accuracy bars drawn");
  assert.ok(reliability.traceTexts.length >= 5, "bin counts drawn");
  for (const label of reliability.traceTexts) {
    const bar = reliability.bars.find((b) => intersects(label, b));
    assert.equal(bar, undefined, `count "${label.text}" sits on a bar`);
  }
}

/** Lighter where the row has fewest images, darker where it has most. */
function assertConfusionColours(cells: CellColour[]): void {
  assert.equal(cells.length, 16, "a label per cell");
  assert.ok(cells.every((c) => /^\d+\.\d%$/.test(c.percent)), "row %");
  const luminance = ([r, g, b]: [number, number, number]) =>
    0.2126 * r + 0.7152 * g + 0.0722 * b;
  const sorted = [...cells].sort((a, b) => a.count - b.count);
  const fewest = sorted[0];
  const most = sorted.at(-1)!;
  assert.ok(
    luminance(fewest.rgb) > luminance(most.rgb) + 100,
    `count ${fewest.count} is drawn ${fewest.rgb}, count ${most.count} ${most.rgb}`,
  );
}

/** Three images and a colour bar per row; the flat map named. */
function assertGradCam(view: HtmlViewsGeometry): void {
  assert.equal(view.rows.length, 2);
  for (const row of view.rows) {
    assert.deepEqual(row.images.map((i) => i.cls), [
      "scan",
      "heatmap",
      "overlay",
    ]);
    assert.ok(row.images.every((i) => i.w > 50 && i.h > 50), "images shown");
    assert.ok(row.colourBar && row.colourBar.h > 50, "a colour bar");
  }
  assert.deepEqual(view.rows.map((r) => r.flatNote), [false, true]);
}

/** One row per duplicate pair: its two scans side by side and its distance. */
function assertPairs(view: HtmlViewsGeometry): void {
  assert.equal(view.pairs.length, 1);
  const [pair] = view.pairs;
  assert.equal(pair.images, 2);
  assert.ok(pair.oneLine, "the two scans side by side");
  assert.match(pair.text, /Hamming distance 0/);
  assert.match(pair.text, /glioma · scan-a\.png/);
  assert.match(pair.text, /notumor · scan-b\.png/);
}

/** The report index of a synthetic run: the warning is the first block seen. */
async function assertIndexWarnsFirst(
  browser: ChromiumSession,
  dir: string,
): Promise<void> {
  const path = join(dir, "index.html");
  await Deno.writeTextFile(
    path,
    reportIndex([], "brain-mri-cnn report", {
      createdAt: "2026-01-01T00:00:00.000Z",
      notebooks: [],
      seconds: 12,
      runDir: "models/seed",
      model: {
        arch: "seedCnn",
        inputSize: 128,
        seed: 42,
        epochs: 3,
        bestEpoch: 3,
        datasetFingerprint: "0123abcd",
        metrics: { acc: 0.91, val_acc: 0.88, test_dedup_images: 120 },
        versions: {},
      },
      data: { source: "data/synthetic", synthetic: true },
    }),
  );
  await browser.page.goto(pathToFileURL(path).href);
  const first = await browser.page.evaluate(`(() => {
    const blocks = [...document.body.querySelectorAll("*")].filter((e) => {
      const r = e.getBoundingClientRect();
      return r.width > 0 && r.height > 0;
    });
    blocks.sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top);
    return { cls: blocks[0].className, text: blocks[0].textContent };
  })()`) as { cls: string; text: string };
  assert.equal(first.cls, "synthetic-warning");
  assert.match(first.text, /^SYNTHETIC DATA: /);
  await browser.page.screenshot({ path: join(dir, "index.png") });
}

/** Screenshots of each figure, into `dir` (and `BRAIN_MRI_SCREENSHOTS`, if set). */
async function screenshots(
  browser: ChromiumSession,
  dir: string,
  ids: string[],
): Promise<void> {
  const keep = Deno.env.get("BRAIN_MRI_SCREENSHOTS");
  if (keep) await Deno.mkdir(keep, { recursive: true });
  for (const id of ids) {
    const png = await browser.page.locator(`#${id}`).screenshot();
    assert.ok(png.length > 1000, `a screenshot of ${id}`);
    await Deno.writeFile(join(dir, `${id}.png`), png);
    if (keep) await Deno.writeFile(join(keep, `${id}.png`), png);
  }
}

Deno.test("browser plots: the views' figures read right in Chromium", async () => {
  const dir = await Deno.makeTempDir({ prefix: "brain-mri-browser-plots-" });
  let browser: ChromiumSession | undefined;
  try {
    const figures = await buildFigures(dir);
    const page = join(dir, "figures.html");
    await Deno.writeTextFile(page, figuresPage(figures));
    browser = await launchChromium({ viewport: { width: 1280, height: 900 } });
    const errors = await openFigures(browser, page);
    assert.deepEqual(errors, [], "no errors in the page");
    const plots = await browser.page.evaluate(READ_PLOTS) as PlotGeometry[];
    const byId = (id: string) => plots.find((p) => p.id === id)!;
    assert.deepEqual(plots.map((p) => p.id), [
      "confusion",
      "history",
      "layers",
      "reliability",
    ]);
    assertLayoutClear(plots);
    assertHistory(byId("history"));
    assertLayerLabels(byId("layers"));
    assertReliabilityCounts(byId("reliability"));
    assertConfusionColours(
      await browser.page.evaluate(READ_CELLS) as CellColour[],
    );
    const html = await browser.page.evaluate(
      READ_HTML_VIEWS,
    ) as HtmlViewsGeometry;
    assertGradCam(html);
    assertPairs(html);
    await screenshots(browser, dir, Object.keys(figures));
    await assertIndexWarnsFirst(browser, dir);
    const keep = Deno.env.get("BRAIN_MRI_SCREENSHOTS");
    if (keep) {
      await Deno.copyFile(join(dir, "index.png"), join(keep, "index.png"));
    }
  } finally {
    await browser?.close();
    await Deno.remove(dir, { recursive: true });
  }
});
