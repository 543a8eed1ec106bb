/**
 * The exported HTML report, in a real browser: a notebook that displays two
 * Plotly figures through lib/core/plot.ts is run by the project's headless runner
 * (lib/tools/notebooks.ts, nbrun.py, the Deno kernel) and its HTML page is opened in
 * headless Chromium, which must draw both figures from the one copy of
 * plotly.js the runner embeds in the page.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type ChromiumSession, launchChromium } from "../lib/tools/browser.ts";
import { runNotebooks } from "../lib/tools/notebooks.ts";
import { plotlyJsPath } from "../lib/core/plot.ts";
import { notebookJson } from "./fixtures.ts";

const CLASSES = ["glioma", "meningioma", "notumor", "pituitary"];
const COUNTS = [1321, 1339, 1595, 1457];
const LOSS = [1.2, 0.8, 0.55, 0.47, 0.44];

/** What the page shows, read in the browser. */
interface PageState {
  plotlyVersion: string | null;
  plotlyScripts: number;
  plots: {
    id: string;
    plotly: boolean;
    svgs: number;
    text: string;
    bars: number[];
    lines: number;
    markers: number;
  }[];
}

// Runs in the page (as a string: the tests are type-checked without the DOM).
const READ_PAGE = (banner: string) =>
  `(() => {
  const plots = [...document.querySelectorAll(".brain-mri-plot")].map((el) => ({
    id: el.id,
    plotly: el.classList.contains("js-plotly-plot"),
    svgs: el.querySelectorAll("svg.main-svg").length,
    text: el.textContent.slice(0, 200),
    bars: [...el.querySelectorAll(".trace.bars .point path")]
      .map((p) => p.getBBox().height),
    lines: [...el.querySelectorAll(".scatterlayer .trace path.js-line")]
      .filter((p) => (p.getAttribute("d") || "").length > 0).length,
    markers: el.querySelectorAll(".scatterlayer .trace .points path.point").length,
  }));
  const plotlyScripts = [...document.scripts].filter((s) =>
    /plotly/i.test(s.src) || s.text.includes(${JSON.stringify(banner)})
  ).length;
  return {
    plotlyVersion: window.Plotly ? window.Plotly.version : null,
    plotlyScripts,
    plots,
  };
})()`;

/** Writes the notebook under test: a bar chart and a line chart. */
async function writeFiguresNotebook(path: string): Promise<void> {
  await Deno.writeTextFile(
    path,
    notebookJson([
      ["markdown", "# Two figures"],
      ["code", 'import { barChart, figure } from "@brain/core/plot.ts";'],
      [
        "code",
        `barChart({ x: ${JSON.stringify(CLASSES)}, y: ${
          JSON.stringify(COUNTS)
        }, title: "Images per class" })`,
      ],
      [
        "code",
        `figure({ data: [{ type: "scatter", mode: "lines+markers", x: [1, 2, 3, 4, 5], y: ${
          JSON.stringify(LOSS)
        }, name: "loss" }], layout: { title: { text: "Loss" } } })`,
      ],
    ]),
  );
}

/**
 * The banner plotly.js starts with (e.g. "plotly.js v4.1.1") and its
 * version, from the bundle the runner embeds.
 */
function plotlyBundle(): { banner: string; version: string } {
  const bundle = readFileSync(plotlyJsPath(), "utf8");
  const banner = bundle.slice(0, 200).match(/plotly\.js v[\d.]+/)?.[0];
  assert.ok(banner, "plotly.js starts with its version banner");
  const version = JSON.parse(
    readFileSync(join(plotlyJsPath(), "..", "package.json"), "utf8"),
  ).version;
  return { banner, version };
}

/**
 * Opens the exported page and waits until each figure has drawn or (without
 * plotly.js) given up, about ten seconds later, saying so in its div; returns
 * what the page shows and the errors it threw.
 */
async function openReport(
  browser: ChromiumSession,
  html: string,
  banner: string,
): Promise<{ state: PageState; errors: string[] }> {
  const { page } = browser;
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(pathToFileURL(html).href, {
    waitUntil: "load",
    timeout: 120_000,
  });
  await page.waitForFunction(
    `[...document.querySelectorAll(".brain-mri-plot")].length === 2 &&
     [...document.querySelectorAll(".brain-mri-plot")].every((el) =>
       el.querySelector("svg.main-svg") || /not loaded/.test(el.textContent))`,
    undefined,
    { timeout: 120_000 },
  );
  return { state: await page.evaluate(READ_PAGE(banner)) as PageState, errors };
}

/** Both figures are Plotly plots, drawn to scale: the bars and the line. */
function assertFiguresDrawn(state: PageState): void {
  assert.equal(state.plots.length, 2, "two figures in the page");
  assert.notEqual(state.plots[0].id, state.plots[1].id);
  for (const plot of state.plots) {
    assert.ok(plot.plotly, `${plot.id} is a Plotly plot: ${plot.text}`);
    assert.ok(plot.svgs >= 1, `${plot.id} has a rendered svg.main-svg`);
  }
  const [bars, line] = state.plots;
  assert.equal(bars.bars.length, COUNTS.length, "one bar per class");
  // The bars are drawn to scale: heights in proportion to the counts.
  const tallest = Math.max(...bars.bars);
  const top = Math.max(...COUNTS);
  for (const [i, height] of bars.bars.entries()) {
    assert.ok(
      Math.abs(height / tallest - COUNTS[i] / top) < 0.02,
      `bar ${CLASSES[i]}: height ${height} of ${tallest}`,
    );
  }
  assert.equal(line.bars.length, 0);
  assert.equal(line.lines, 1, "the line chart draws its line");
  assert.equal(line.markers, LOSS.length, "and one marker per point");
}

Deno.test("browser report: the exported HTML draws every Plotly figure from one embedded plotly.js", async () => {
  const dir = await Deno.makeTempDir({ prefix: "brain-mri-browser-report-" });
  let browser: ChromiumSession | undefined;
  try {
    const nb = join(dir, "figures.ipynb");
    await writeFiguresNotebook(nb);
    const [result] = await runNotebooks({
      notebooks: [nb],
      outDir: join(dir, "out"),
      progress: false,
      cellTimeout: 600,
    });
    assert.equal(result.ok, true);
    const { banner, version } = plotlyBundle();
    const html = await Deno.readTextFile(result.html);
    assert.equal(
      html.split(banner).length - 1,
      1,
      `the page holds plotly.js (${banner}) exactly once`,
    );

    browser = await launchChromium();
    const { state, errors } = await openReport(browser, result.html, banner);
    assert.deepEqual(errors, [], "no errors in the page");
    assert.equal(state.plotlyScripts, 1, "one plotly.js script in the page");
    assert.equal(state.plotlyVersion, version, "window.Plotly is the bundle");
    // Nothing is fetched from the network (plotly.js is in the page; the
    // report template drops require.js, and MathJax when there is no math):
    // the page reads the same offline.
    assert.deepEqual(browser.blocked, [], "no request left loopback");
    assertFiguresDrawn(state);
  } finally {
    await browser?.close();
    await Deno.remove(dir, { recursive: true });
  }
});
