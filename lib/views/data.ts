/**
 * Notebook views of the data pipeline: the source banner, class balance,
 * sample scans, image sizes, duplicate pairs, split sizes and augmentation.
 * Each returns a display object; nothing here touches `Deno.jupyter`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import sharp from "sharp";
import type { AuditReport } from "../data/audit.ts";
import { augmentationGrid } from "../data/augment.ts";
import { applyClahe, type Clahe } from "../core/clahe.ts";
import type { DataSource, PreparedData, SplitData } from "../data/prepare.ts";
import type { Dataset } from "../data/dataset.ts";
import {
  type Displayable,
  displayable,
  escapeHtml,
  htmlTable,
} from "../core/display.ts";
import { encodePng, type GridImage, imageGrid } from "../core/image_grid.ts";
import { figure } from "../core/plot.ts";
import { preprocessImage } from "../data/preprocess.ts";

/**
 * A banner saying where the images come from; loud (red) when the data is the
 * synthetic default.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { sourceBanner } from "./data.ts";
 * const banner = sourceBanner({
 *   root: "/data",
 *   synthetic: true,
 *   reason: "no dataset configured",
 * })[JUPYTER_DISPLAY]();
 * assert.match(banner["text/plain"] as string, /^\*\*\* SYNTHETIC DATA: /);
 * assert.match(banner["text/html"] as string, /border:2px solid #c0392b/);
 * ```
 */
export function sourceBanner(source: DataSource): Displayable {
  const text = source.synthetic
    ? `SYNTHETIC DATA: these are generated, MRI-like cartoons, not scans ` +
      `(${source.reason}). Results below say nothing about real MRI. ` +
      `Set BRAIN_MRI_DATA to the Kaggle dataset to use real scans.`
    : `Dataset: ${source.root} (${source.reason})`;
  const style = source.synthetic
    ? "background:#fde2e1;border:2px solid #c0392b;color:#7b1d14;font-weight:bold"
    : "background:#e8f4ea;border:1px solid #2e7d32";
  return displayable({
    "text/html": `<div style="${style};padding:8px 12px;border-radius:4px">${
      escapeHtml(text)
    }</div>`,
    "text/plain": source.synthetic ? `*** ${text} ***` : text,
  });
}

/**
 * Images per class and origin (Training/Testing) as a grouped bar chart.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { type Figure, PLOTLY_MIME } from "../core/plot.ts";
 * import type { Dataset } from "../data/dataset.ts";
 * import { classBalanceChart } from "./data.ts";
 * const dataset: Dataset = {
 *   root: "/data",
 *   layout: "kaggle",
 *   classes: ["glioma", "notumor"],
 *   files: [],
 *   skipped: [],
 *   counts: {
 *     Training: { glioma: 3, notumor: 5 },
 *     Testing: { glioma: 1, notumor: 2 },
 *   },
 * };
 * const chart = classBalanceChart(dataset)[JUPYTER_DISPLAY]();
 * const traces = (chart[PLOTLY_MIME] as Figure).data;
 * assert.deepEqual(traces.map((t) => [t.name, t.y]), [
 *   ["Training", [3, 5]],
 *   ["Testing", [1, 2]],
 * ]);
 * assert.equal(
 *   chart["text/plain"],
 *   "Images per class\nTraining: glioma 3, notumor 5\nTesting: glioma 1, notumor 2",
 * );
 * ```
 */
export function classBalanceChart(dataset: Dataset): Displayable {
  const origins = Object.keys(dataset.counts) as (keyof Dataset["counts"])[];
  const data = origins.map((origin) => ({
    type: "bar",
    name: origin,
    x: dataset.classes,
    y: dataset.classes.map((c) => dataset.counts[origin]?.[c] ?? 0),
    text: dataset.classes.map((c) => String(dataset.counts[origin]?.[c] ?? 0)),
    textposition: "auto",
  }));
  return figure({
    data,
    layout: {
      title: { text: "Images per class" },
      barmode: "group",
      xaxis: { title: { text: "class" } },
      yaxis: { title: { text: "images" } },
      height: 380,
    },
  }, {
    text: "Images per class\n" + origins.map((o) =>
      `${o}: ` +
      dataset.classes.map((c) => `${c} ${dataset.counts[o]?.[c] ?? 0}`).join(
        ", ",
      )
    ).join("\n"),
  });
}

/** Options for {@linkcode sampleGrid}. */
export interface SampleGridOptions {
  /** The split to draw from. */
  split: SplitData;
  /** Class names in label order. */
  classes: string[];
  /** Image side of the split's pixels. */
  size: number;
  /** Images per class; default 6. */
  perClass?: number;
}

/**
 * The first few preprocessed scans of each class, one row per class.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import type { ImageFile } from "../data/dataset.ts";
 * import { sampleGrid } from "./data.ts";
 * const files: ImageFile[] = [
 *   { path: "/d/Training/glioma/a.jpg", label: "glioma", origin: "Training" },
 *   { path: "/d/Training/glioma/b.jpg", label: "glioma", origin: "Training" },
 *   { path: "/d/Training/notumor/c.jpg", label: "notumor", origin: "Training" },
 * ];
 * const split = {
 *   files,
 *   pixels: new Uint8Array(3 * 8 * 8),
 *   labels: Int32Array.from([0, 0, 1]),
 * };
 * const grid = await sampleGrid({
 *   split,
 *   classes: ["glioma", "notumor"],
 *   size: 8,
 *   perClass: 1,
 * });
 * assert.equal(
 *   grid[JUPYTER_DISPLAY]()["text/plain"],
 *   "1 scans per class (8×8, grayscale)\n" +
 *     "[1] 8×8 glioma | a.jpg\n[2] 8×8 notumor | c.jpg",
 * );
 * ```
 */
export function sampleGrid(options: SampleGridOptions): Promise<Displayable> {
  const perClass = options.perClass ?? 6;
  const area = options.size * options.size;
  const images: GridImage[] = [];
  options.classes.forEach((label, c) => {
    let taken = 0;
    options.split.files.forEach((file, i) => {
      if (options.split.labels[i] !== c || taken >= perClass) return;
      taken++;
      images.push({
        pixels: options.split.pixels.subarray(i * area, (i + 1) * area),
        width: options.size,
        height: options.size,
        caption: `${label}\n${file.path.split("/").pop()}`,
      });
    });
  });
  return imageGrid({
    images,
    columns: perClass,
    title:
      `${perClass} scans per class (${options.size}×${options.size}, grayscale)`,
  });
}

/** Width and height of one image file. */
export interface ImageDimensions {
  /** The file. */
  path: string;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

/**
 * Reads the width and height of every image from its header (no decoding),
 * a few files at a time. Unreadable files are left out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { encodePng } from "../core/image_grid.ts";
 * import { imageDimensions } from "./data.ts";
 * const dir = await Deno.makeTempDir();
 * const scan = join(dir, "scan.png");
 * const png = await encodePng({ pixels: new Uint8Array(20 * 10), width: 20, height: 10 });
 * await Deno.writeFile(scan, png);
 * const dims = await imageDimensions({ paths: [scan, join(dir, "missing.png")] });
 * assert.deepEqual(dims, [{ path: scan, width: 20, height: 10 }]); // missing: left out
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function imageDimensions(
  options: { paths: string[]; concurrency?: number },
): Promise<ImageDimensions[]> {
  const out: (ImageDimensions | undefined)[] = new Array(options.paths.length);
  let next = 0;
  const worker = async () => {
    while (next < options.paths.length) {
      const i = next++;
      try {
        const meta = await sharp(options.paths[i]).metadata();
        if (meta.width && meta.height) {
          out[i] = {
            path: options.paths[i],
            width: meta.width,
            height: meta.height,
          };
        }
      } catch {
        // unreadable: reported by the preprocessing step, skipped here
      }
    }
  };
  await Promise.all(
    Array.from({ length: options.concurrency ?? 8 }, worker),
  );
  return out.filter((d): d is ImageDimensions => d !== undefined);
}

/**
 * The distribution of original image sizes: one marker per distinct
 * width×height, its area proportional to how many images have that size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { sizeDistributionChart } from "./data.ts";
 * const chart = sizeDistributionChart([
 *   { path: "a.jpg", width: 512, height: 512 },
 *   { path: "b.jpg", width: 512, height: 512 },
 *   { path: "c.jpg", width: 256, height: 300 },
 * ]);
 * assert.equal(
 *   chart[JUPYTER_DISPLAY]()["text/plain"],
 *   "2 distinct sizes in 3 images; most common: 512×512 (2), 256×300 (1)",
 * );
 * ```
 */
export function sizeDistributionChart(dims: ImageDimensions[]): Displayable {
  const counts = new Map<string, number>();
  for (const d of dims) {
    const key = `${d.width}×${d.height}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const entries = [...counts.entries()].sort((a, b) => b[1] - a[1]);
  const max = Math.max(1, ...entries.map(([, n]) => n));
  const top = entries.slice(0, 5).map(([k, n]) => `${k} (${n})`).join(", ");
  return figure({
    data: [{
      type: "scatter",
      mode: "markers",
      x: entries.map(([k]) => Number(k.split("×")[0])),
      y: entries.map(([k]) => Number(k.split("×")[1])),
      text: entries.map(([k, n]) => `${k}: ${n} images`),
      hoverinfo: "text",
      marker: {
        size: entries.map(([, n]) => 6 + 40 * Math.sqrt(n / max)),
        opacity: 0.6,
      },
    }],
    layout: {
      title: {
        text: `${counts.size} distinct sizes in ${dims.length} images`,
      },
      xaxis: { title: { text: "width (px)" } },
      yaxis: { title: { text: "height (px)" } },
      height: 420,
    },
  }, {
    text:
      `${counts.size} distinct sizes in ${dims.length} images; most common: ${top}`,
  });
}

/** Options for {@linkcode duplicatePairsGrid}. */
export interface DuplicatePairsOptions {
  /** The audit. */
  audit: AuditReport;
  /** `exact` or `near` groups; default near (exact pairs look identical). */
  kind?: "exact" | "near";
  /** How many pairs; default 4. */
  pairs?: number;
  /** Display side; default 128. */
  size?: number;
}

/** A pair of duplicates to show, with the pHash Hamming distance between them. */
interface ShownPair {
  a: string;
  b: string;
  distance: number;
}

/** The pairs to show: near pairs farthest first (the least obvious), exact groups' first two. */
function pairsToShow(
  options: DuplicatePairsOptions,
  kind: "exact" | "near",
): ShownPair[] {
  const groups = kind === "near"
    ? options.audit.nearGroups
    : options.audit.exactGroups;
  const candidates = kind === "near"
    ? groups.flatMap((g) => g.pairs ?? []).sort((x, y) =>
      y.distance - x.distance || x.a.localeCompare(y.a)
    )
    : groups.map((g) => ({
      a: g.members[0].path,
      b: g.members[1].path,
      distance: 0,
    }));
  return candidates.slice(0, options.pairs ?? 4);
}

/** One row: pair number and distance, then the two scans with class and file. */
async function pairRow(
  pair: ShownPair,
  index: number,
  options: { size: number; labelOf: Map<string, string> },
): Promise<{ html: string; text: string }> {
  const { size, labelOf } = options;
  const caption = (path: string) =>
    `${labelOf.get(path) ?? ""} · ${path.split("/").pop()}`;
  const figures = await Promise.all([pair.a, pair.b].map(async (path) => {
    const png = await encodePng({
      pixels: await preprocessImage(path, { size }),
      width: size,
      height: size,
    });
    return `<figure style="margin:0;text-align:center"><img alt="${
      escapeHtml(caption(path))
    }" style="width:${
      Math.max(size, 128)
    }px;height:auto" src="data:image/png;base64,${
      Buffer.from(png).toString("base64")
    }"/><figcaption style="font-size:11px">${
      escapeHtml(caption(path))
    }</figcaption></figure>`;
  }));
  const label = `pair ${index + 1}: Hamming distance ${pair.distance}`;
  return {
    html:
      `<div class="brain-mri-pair" style="display:flex;gap:8px;align-items:center;margin:6px 0;padding:4px;border-top:1px solid #ddd"><div style="min-width:130px;font-size:12px;white-space:nowrap"><b>pair ${
        index + 1
      }</b><br>Hamming distance ${pair.distance}</div>${
        figures.join("")
      }</div>`,
    text: `${label}: ${caption(pair.a)} | ${caption(pair.b)}`,
  };
}

/**
 * Example duplicate pairs, one row per pair: the pair's number and the
 * Hamming distance between the two scans' perceptual hashes (bits of 64
 * that differ; 0 for exact copies), then the two scans side by side with
 * their class and file. For near groups, the pairs with the largest
 * distance within the threshold come first (the least obvious ones).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { encodePng } from "../core/image_grid.ts";
 * import { auditDuplicates } from "../data/audit.ts";
 * import { duplicatePairsGrid } from "./data.ts";
 * // The same scan saved twice, under two classes.
 * const dir = await Deno.makeTempDir();
 * const pixels = new Uint8Array(32 * 32).map((_, i) => (i * 7) % 256);
 * const png = await encodePng({ pixels, width: 32, height: 32 });
 * const files = [
 *   { path: join(dir, "a.png"), label: "glioma" },
 *   { path: join(dir, "b.png"), label: "notumor" },
 * ];
 * for (const f of files) await Deno.writeFile(f.path, png);
 * const audit = await auditDuplicates({ files });
 * const grid = await duplicatePairsGrid({ audit, kind: "exact", size: 16 });
 * assert.equal(
 *   grid[JUPYTER_DISPLAY]()["text/plain"],
 *   "Exact-duplicate pairs (one row per pair; Hamming distance of the perceptual hashes)\n" +
 *     "pair 1: Hamming distance 0: glioma · a.png | notumor · b.png",
 * );
 * const none = await duplicatePairsGrid({ audit }); // near pairs: none
 * assert.equal(none[JUPYTER_DISPLAY]()["text/plain"], "no near-duplicate pairs");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function duplicatePairsGrid(
  options: DuplicatePairsOptions,
): Promise<Displayable> {
  const kind = options.kind ?? "near";
  const size = options.size ?? 128;
  const groups = kind === "near"
    ? options.audit.nearGroups
    : options.audit.exactGroups;
  const labelOf = new Map<string, string>();
  for (const g of groups) {
    for (const m of g.members) labelOf.set(m.path, m.label);
  }
  const chosen = pairsToShow(options, kind);
  if (chosen.length === 0) {
    return displayable({
      "text/plain": `no ${kind}-duplicate pairs`,
      "text/html": `<p>No ${kind}-duplicate pairs.</p>`,
    });
  }
  const rows = await Promise.all(
    chosen.map((pair, i) => pairRow(pair, i, { size, labelOf })),
  );
  const title = `${
    kind === "near" ? "Near" : "Exact"
  }-duplicate pairs (one row per pair; Hamming distance of the perceptual hashes)`;
  return displayable({
    "text/html":
      `<div class="brain-mri-pairs"><div style="font-weight:bold;margin-bottom:4px">${
        escapeHtml(title)
      }</div>${rows.map((r) => r.html).join("")}</div>`,
    "text/plain": [title, ...rows.map((r) => r.text)].join("\n"),
  });
}

/**
 * Images per class in each split, with totals.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { splitTable } from "./data.ts";
 * const split = (labels: number[]) => ({
 *   files: labels.map((l, i) => ({
 *     path: `${i}.jpg`,
 *     label: ["glioma", "notumor"][l],
 *     origin: "Training" as const,
 *   })),
 *   pixels: new Uint8Array(0),
 *   labels: Int32Array.from(labels),
 * });
 * const table = splitTable({
 *   classes: ["glioma", "notumor"],
 *   train: split([0, 0, 1, 1, 1]),
 *   validation: split([0, 1]),
 *   test: split([0, 1, 1]),
 *   testDeduplicated: split([1]),
 * });
 * assert.equal(
 *   table[JUPYTER_DISPLAY]()["text/plain"],
 *   [
 *     "Images per split",
 *     "class    train  validation  test  test (de-duplicated)",
 *     "-------  -----  ----------  ----  --------------------",
 *     "glioma   2      1           1     0",
 *     "notumor  3      1           2     1",
 *     "total    5      2           3     1",
 *   ].join("\n"),
 * );
 * ```
 */
export function splitTable(
  data: Pick<
    PreparedData,
    "classes" | "train" | "validation" | "test" | "testDeduplicated"
  >,
): Displayable {
  const parts = {
    train: data.train,
    validation: data.validation,
    test: data.test,
    "test (de-duplicated)": data.testDeduplicated,
  };
  const rows = data.classes.map((label, c) => ({
    class: label,
    ...Object.fromEntries(
      Object.entries(parts).map((
        [name, s],
      ) => [name, s.labels.filter((l) => l === c).length]),
    ),
  }));
  rows.push({
    class: "total",
    ...Object.fromEntries(
      Object.entries(parts).map(([name, s]) => [name, s.files.length]),
    ),
  });
  return htmlTable({ rows, caption: "Images per split" });
}

/** Options for {@linkcode augmentationView}. */
export interface AugmentationViewOptions {
  /** One image, `size*size` grayscale bytes. */
  pixels: Uint8Array;
  /** Its side. */
  size: number;
  /** Seed of the variants. */
  seed: number;
  /** How many images including the original; default 8. */
  count?: number;
}

/**
 * One scan and what training-time augmentation makes of it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { augmentationView } from "./data.ts";
 * const pixels = new Uint8Array(32 * 32).map((_, i) => i % 256);
 * const view = await augmentationView({ pixels, size: 32, seed: 1, count: 3 });
 * assert.equal(
 *   view[JUPYTER_DISPLAY]()["text/plain"],
 *   "Training-time augmentation of one scan\n" +
 *     "[1] 32×32 original\n[2] 32×32 augmented #1\n[3] 32×32 augmented #2",
 * );
 * ```
 */
export function augmentationView(
  options: AugmentationViewOptions,
): Promise<Displayable> {
  const variants = augmentationGrid({
    image: options.pixels,
    size: options.size,
    seed: options.seed,
    count: options.count ?? 8,
    includeOriginal: true,
  });
  return imageGrid({
    images: variants.map((pixels, i) => ({
      pixels,
      width: options.size,
      height: options.size,
      caption: i === 0 ? "original" : `augmented #${i}`,
    })),
    columns: 4,
    title: "Training-time augmentation of one scan",
  });
}

/** Options for {@linkcode claheView}. */
export interface ClaheViewOptions {
  /** The split to draw from (its first scans are shown). */
  split: SplitData;
  /** Image side of the split's pixels. */
  size: number;
  /** The CLAHE to show. */
  clahe: Clahe;
  /** How many scans; default 6. */
  count?: number;
}

/**
 * A few scans as decoded (top row) and after CLAHE (bottom row), to see what
 * contrast-limited adaptive histogram equalisation does before training with
 * it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { claheView } from "./data.ts";
 * const split = {
 *   files: [{ path: "/d/Training/glioma/a.jpg", label: "glioma", origin: "Training" as const }],
 *   pixels: new Uint8Array(16 * 16).map((_, i) => 100 + (i % 16)),
 *   labels: Int32Array.from([0]),
 * };
 * const view = await claheView({ split, size: 16, clahe: { clipLimit: 2, tiles: 4 } });
 * assert.equal(
 *   view[JUPYTER_DISPLAY]()["text/plain"],
 *   "1 scan as decoded (top) and after CLAHE, clip limit 2, 4×4 tiles (bottom)\n" +
 *     "[1] 16×16 a.jpg\n[2] 16×16 a.jpg, CLAHE",
 * );
 * ```
 */
export function claheView(options: ClaheViewOptions): Promise<Displayable> {
  const area = options.size * options.size;
  const count = Math.min(options.count ?? 6, options.split.files.length);
  const scans = options.split.files.slice(0, count).map((file, i) => ({
    name: file.path.split("/").pop() ?? file.path,
    pixels: options.split.pixels.subarray(i * area, (i + 1) * area),
  }));
  const cell = (pixels: Uint8Array, caption: string): GridImage => ({
    pixels,
    width: options.size,
    height: options.size,
    caption,
  });
  const { clipLimit, tiles } = options.clahe;
  return imageGrid({
    images: [
      ...scans.map((s) => cell(s.pixels, s.name)),
      ...scans.map((s) =>
        cell(
          applyClahe(s.pixels, options.size, options.clahe),
          `${s.name}, CLAHE`,
        )
      ),
    ],
    columns: Math.max(1, count),
    title: `${count} scan${count === 1 ? "" : "s"} as decoded (top) and ` +
      `after CLAHE, clip limit ${clipLimit}, ${tiles}×${tiles} tiles (bottom)`,
  });
}
