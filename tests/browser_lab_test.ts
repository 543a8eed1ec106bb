/**
 * JupyterLab, in a real browser: `deno task lab`'s server (lib/tools/lab.ts) on
 * loopback with the project's Deno kernel, a notebook that shows a bar chart
 * from lib/core/plot.ts, "Run All Cells" from JupyterLab's Run menu in headless
 * Chromium, and the chart must appear drawn by the Plotly MIME renderer
 * (jupyterlab-plotly, which set-up installs into `.venv/`) from the figure's
 * `application/vnd.plotly.v1+json` data, one bar per data point.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { type ChromiumSession, launchChromium } from "../lib/tools/browser.ts";
import { notebookJson } from "./fixtures.ts";
import {
  KNOWN_LAB_ERRORS,
  type LabServer,
  startLab,
  waitUntilUp,
  writeLabSettings,
} from "./lab_server.ts";

const CLASSES = ["glioma", "meningioma", "notumor", "pituitary"];
const COUNTS = [1321, 1339, 1595, 1457];

/** What the executed notebook shows, read in the page. */
interface OutputState {
  prompts: string[];
  errors: string[];
  plotly: {
    classes: string[];
    svgs: number;
    bars: number[];
    fallbackDivs: number;
    title: string;
  }[];
}

// Runs in the page (as a string: the tests are type-checked without the DOM).
const READ_OUTPUTS = `(() => ({
  prompts: [...document.querySelectorAll(".jp-CodeCell .jp-InputPrompt")]
    .map((p) => p.textContent.trim()),
  errors: [...document.querySelectorAll(
    ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
  )].map((e) => e.textContent.slice(0, 300)),
  plotly: [...document.querySelectorAll(".jp-OutputArea-output")]
    .filter((o) => o.querySelector("svg.main-svg"))
    .map((o) => ({
      classes: [...o.classList],
      svgs: o.querySelectorAll("svg.main-svg").length,
      bars: [...o.querySelectorAll(".trace.bars .point path")]
        .map((p) => p.getBBox().height),
      fallbackDivs: o.querySelectorAll(".brain-mri-plot").length,
      title: o.querySelector(".gtitle")?.textContent ?? "",
    })),
}))()`;

/** Writes the notebook under test: a title, an import, a bar chart. */
async function writeChartNotebook(root: string): Promise<void> {
  await Deno.writeTextFile(
    join(root, "chart.ipynb"),
    notebookJson([
      ["markdown", "# Chart"],
      ["code", 'import { barChart } from "@brain/core/plot.ts";'],
      [
        "code",
        `barChart({ x: ${JSON.stringify(CLASSES)}, y: ${
          JSON.stringify(COUNTS)
        }, title: "Images per class" })`,
      ],
    ]),
  );
}

/**
 * Opens the notebook, checks it is on the project's kernel, chooses Run ›
 * Run All Cells and waits until the cells have run and the chart is drawn;
 * returns what the page then shows.
 */
async function runAllCells(page: Page, lab: LabServer): Promise<OutputState> {
  await page.goto(`${lab.base}/lab/tree/chart.ipynb?token=${lab.token}`);
  // The notebook is open on the project's kernel, and the kernel is up.
  await page.getByText("Deno (brain-mri-cnn) | Idle").waitFor();
  await page.getByRole("menuitem", { name: "Run", exact: true }).click();
  await page.getByRole("menuitem", { name: "Run All Cells", exact: true })
    .click();
  // Until both cells have run (or one failed), then until the chart is
  // drawn (the renderer loads its plotly.js on first use).
  await page.waitForFunction(
    `[...document.querySelectorAll(".jp-CodeCell .jp-InputPrompt")]
       .every((p) => /^\\[\\d+\\]:$/.test(p.textContent.trim())) ||
     document.querySelector(
       ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")`,
    undefined,
    { timeout: 300_000 },
  );
  await page.waitForSelector(".jp-OutputArea-output svg.main-svg", {
    timeout: 60_000,
  }).catch(() => {}); // what is there is checked by the caller
  return await page.evaluate(READ_OUTPUTS) as OutputState;
}

/** Both cells ran, and the chart was drawn by jupyterlab-plotly to scale. */
function assertChartDrawn(shown: OutputState, pageErrors: string[]): void {
  assert.deepEqual(shown.errors, [], "no cell failed");
  assert.deepEqual(shown.prompts, ["[1]:", "[2]:"], "both cells ran");
  assert.equal(shown.plotly.length, 1, "one chart");
  const [chart] = shown.plotly;
  // Drawn by jupyterlab-plotly from the Plotly JSON, not by the
  // figure's text/html fallback.
  assert.ok(
    chart.classes.includes("jp-RenderedPlotly"),
    `rendered by jupyterlab-plotly: ${chart.classes}`,
  );
  assert.equal(chart.fallbackDivs, 0, "the HTML fallback is not used");
  assert.ok(chart.svgs >= 1);
  assert.equal(chart.title, "Images per class");
  assert.equal(chart.bars.length, COUNTS.length, "one bar per class");
  const tallest = Math.max(...chart.bars);
  const top = Math.max(...COUNTS);
  for (const [i, height] of chart.bars.entries()) {
    assert.ok(
      Math.abs(height / tallest - COUNTS[i] / top) < 0.02,
      `bar ${CLASSES[i]}: height ${height} of ${tallest}`,
    );
  }
  const unexpected = pageErrors.filter((m) =>
    !KNOWN_LAB_ERRORS.some((known) => known.test(m))
  );
  assert.deepEqual(unexpected, [], "no unexpected errors in the page");
}

/** Keeps a picture of the failing page and the server's log for the reader. */
async function reportFailure(page: Page, lab: LabServer): Promise<void> {
  const shot = await Deno.makeTempFile({
    prefix: "browser_lab_failure-",
    suffix: ".png",
  });
  await page.screenshot({ path: shot }).catch(() => {});
  console.error(`screenshot of the failing page: ${shot}`);
  console.error(`JupyterLab's log ends:\n${lab.logTail()}`);
}

Deno.test("browser lab: Run All Cells in JupyterLab draws a lib/core/plot.ts chart with the Plotly renderer", async () => {
  const root = await Deno.makeTempDir({ prefix: "brain-mri-lab-root-" });
  const state = await Deno.makeTempDir({ prefix: "brain-mri-lab-state-" });
  await writeChartNotebook(root);
  const lab = startLab({
    root,
    state,
    settings: await writeLabSettings(state),
  });
  let browser: ChromiumSession | undefined;
  try {
    await waitUntilUp(lab);
    browser = await launchChromium();
    const { page } = browser;
    page.setDefaultTimeout(180_000);
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    try {
      assertChartDrawn(await runAllCells(page, lab), pageErrors);
    } catch (error) {
      await reportFailure(page, lab);
      throw error;
    }
  } finally {
    await browser?.close();
    await lab.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
    await Deno.remove(state, { recursive: true }).catch(() => {});
  }
});
