/**
 * A student's edit, in a real browser: JupyterLab (the server of `deno task
 * lab`, lib/tools/lab.ts) on loopback with the project's Deno kernel opens a
 * temporary copy of notebooks 02 and 03; the test types a new filter count
 * for the seed CNN's first convolution into 02's network cell (CodeMirror,
 * through the keyboard), runs all of 02, then all of 03 with one epoch, and
 * checks that 02 shows the new parameter count and 03 trained exactly that
 * network into a run folder of its own. The committed notebooks and the
 * project's models folder are not touched: the copies and the models live in
 * temporary folders (`BRAIN_MRI_MODELS`).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { type ChromiumSession, launchChromium } from "../lib/tools/browser.ts";
import { PROJECT_ROOT } from "../lib/core/paths.ts";
import { NOTEBOOK_RUN_FILE, trainParams } from "../lib/core/params.ts";
import { seedCnn } from "../lib/model/models.ts";
import {
  KNOWN_LAB_ERRORS,
  type LabServer,
  startLab,
  waitUntilUp,
  writeLabSettings,
} from "./lab_server.ts";

/** The first convolution's filters: the library's, and the student's. */
const LIBRARY_FILTERS = 32;
const EDITED_FILTERS = 16;

/** The whole test's time budget. */
const BUDGET_MS = 180_000;

/** The parameter count of the seed CNN with the edited first convolution. */
function editedParameterCount(): number {
  const model = seedCnn({ inputSize: 128, channels: 1, numClasses: 4 });
  const count = model.countParams();
  model.dispose();
  const removed = LIBRARY_FILTERS - EDITED_FILTERS;
  // conv1 loses `removed` filters of 3·3·1 weights and a bias; conv2 loses
  // their 3·3 inputs for each of its 64 filters.
  return count - removed * (3 * 3 + 1) - removed * 3 * 3 * 64;
}

/** The notebook panel in front (the others are hidden tabs). */
const PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)";

/** What the notebook in front shows, read in the page. */
interface NotebookState {
  prompts: string[];
  errors: string[];
  text: string;
}

// Runs in the page (as a string: the tests are type-checked without the DOM).
const READ_NOTEBOOK = `(() => {
  const panel = document.querySelector(${JSON.stringify(PANEL)});
  return {
    prompts: [...panel.querySelectorAll(".jp-CodeCell .jp-InputPrompt")]
      .map((p) => p.textContent.trim()),
    errors: [...panel.querySelectorAll(
      ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
    )].map((e) => e.textContent.slice(0, 500)),
    text: [...panel.querySelectorAll(".jp-OutputArea-output")]
      .map((o) => o.textContent).join("\\n"),
  };
})()`;

/** Waits until the server has a session for `name` whose kernel is idle. */
async function waitForIdleKernel(
  lab: LabServer,
  name: string,
  deadline: number,
): Promise<void> {
  const headers = { Authorization: `token ${lab.token}` };
  while (Date.now() < deadline) {
    const res = await fetch(`${lab.base}/api/sessions`, { headers });
    const sessions: { path: string; kernel?: { execution_state?: string } }[] =
      res.ok ? await res.json() : [];
    if (!res.ok) await res.body?.cancel();
    const session = sessions.find((s) => s.path.endsWith(name));
    if (session?.kernel?.execution_state === "idle") return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`no idle kernel for ${name}:\n${lab.logTail()}`);
}

/**
 * Opens a notebook of the lab's root (the first by its address, the next by
 * a double click in the file browser, as a student would) and waits until
 * it is in front and its kernel is idle.
 */
async function openNotebook(
  page: Page,
  lab: LabServer,
  name: string,
  deadline: number,
): Promise<void> {
  if (!page.url().startsWith(lab.base)) {
    await page.goto(`${lab.base}/lab/tree/${name}?token=${lab.token}`);
  } else {
    await page.locator(".jp-DirListing-item", { hasText: name }).dblclick();
  }
  await page.locator(`.lm-TabBar-tab.lm-mod-current`, { hasText: name })
    .first().waitFor();
  await page.locator(`${PANEL} .jp-CodeCell`).first().waitFor();
  await waitForIdleKernel(lab, name, deadline);
  await page.getByText("Deno (brain-mri-cnn) | Idle").waitFor();
}

/**
 * In the cell that builds the network, puts the cursor at the end of the
 * first `filters: 32,` line (conv1's) and retypes the number, as a student
 * would.
 */
async function editFirstConvolution(page: Page): Promise<void> {
  const cell = page.locator(`${PANEL} .jp-CodeCell`).filter({
    hasText: "tf.sequential(",
  });
  const line = cell.locator(".cm-line", {
    hasText: `filters: ${LIBRARY_FILTERS},`,
  }).first();
  await line.click();
  await page.keyboard.press("End");
  for (const _ of `${LIBRARY_FILTERS},`) {
    await page.keyboard.press("Backspace");
  }
  await page.keyboard.type(`${EDITED_FILTERS},`);
  await page.keyboard.press("Escape");
  const edited = await cell.locator(".cm-content").innerText();
  assert.match(
    edited,
    new RegExp(`name: "conv1",\\s*filters: ${EDITED_FILTERS},`),
    "the network cell now gives conv1 the new filter count",
  );
}

/** Run › Run All Cells, then waits until every cell has run or one failed. */
async function runAllCells(
  page: Page,
  timeout: number,
): Promise<NotebookState> {
  await page.getByRole("menuitem", { name: "Run", exact: true }).click();
  await page.getByRole("menuitem", { name: "Run All Cells", exact: true })
    .click();
  await page.waitForFunction(
    `(() => {
       const panel = document.querySelector(${JSON.stringify(PANEL)});
       return [...panel.querySelectorAll(".jp-CodeCell .jp-InputPrompt")]
         .every((p) => /^\\[\\d+\\]:$/.test(p.textContent.trim())) ||
         panel.querySelector(
           ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']");
     })()`,
    undefined,
    { timeout },
  );
  return await page.evaluate(READ_NOTEBOOK) as NotebookState;
}

/** Every cell ran, none failed. */
function assertAllRan(shown: NotebookState, name: string): void {
  assert.deepEqual(shown.errors, [], `no cell of ${name} failed`);
  assert.ok(
    shown.prompts.every((p) => /^\[\d+\]:$/.test(p)),
    `every cell of ${name} ran: ${shown.prompts.join(" ")}`,
  );
}

/** 03 trained the edited network into its own run folder, with a saved model. */
function assertTrainedEdited(
  shown: NotebookState,
  models: string,
  parameters: string,
): void {
  assert.ok(shown.text.includes(parameters), "03 trains the edited network");
  assert.match(shown.text, /edited from seedCnn/);
  assert.match(shown.text, /Held-out test split/);
  const recorded = JSON.parse(
    Deno.readTextFileSync(join(models, NOTEBOOK_RUN_FILE)),
  );
  const libraryRun = trainParams({ env: { BRAIN_MRI_EPOCHS: "1" } }).run;
  assert.notEqual(recorded.run, libraryRun, "a run folder of its own");
  assert.match(recorded.run, /^seedCnn-128-[0-9a-f]{8}$/);
  for (const file of ["model.json", "weights.bin", "metadata.json"]) {
    assert.ok(
      existsSync(join(models, recorded.run, "model", file)),
      `${recorded.run}/model/${file} exists`,
    );
  }
  const metadata = JSON.parse(
    Deno.readTextFileSync(join(models, recorded.run, "model", "metadata.json")),
  );
  assert.equal(metadata.training.epochs, 1);
  assert.ok(Number.isFinite(metadata.metrics.test_acc), "test accuracy");
}

/** Copies notebooks 02 and 03 into `root`. */
async function copyNotebooks(root: string): Promise<void> {
  for (const name of ["02_model.ipynb", "03_train.ipynb"]) {
    await Deno.copyFile(
      join(PROJECT_ROOT, "notebooks", name),
      join(root, name),
    );
  }
}

/** Drives the edit and both notebooks; returns 02's and 03's outputs. */
async function editAndRun(
  page: Page,
  lab: LabServer,
  deadline: number,
): Promise<{ model: NotebookState; train: NotebookState }> {
  await openNotebook(page, lab, "02_model.ipynb", deadline);
  await editFirstConvolution(page);
  const model = await runAllCells(page, deadline - Date.now());
  assertAllRan(model, "02_model");
  await openNotebook(page, lab, "03_train.ipynb", deadline);
  await page.locator(`${PANEL} .jp-MarkdownCell`).first().click();
  const train = await runAllCells(page, deadline - Date.now());
  assertAllRan(train, "03_train");
  return { model, train };
}

Deno.test("browser notebooks: a filter count edited in 02's network cell is the network 03 trains", async () => {
  const deadline = Date.now() + BUDGET_MS;
  const root = await Deno.makeTempDir({ prefix: "brain-mri-edit-root-" });
  const state = await Deno.makeTempDir({ prefix: "brain-mri-edit-state-" });
  const models = join(state, "models");
  await copyNotebooks(root);
  const lab = startLab({
    root,
    state,
    settings: await writeLabSettings(state),
    env: { BRAIN_MRI_MODELS: models, BRAIN_MRI_EPOCHS: "1" },
  });
  let browser: ChromiumSession | undefined;
  try {
    await waitUntilUp(lab, deadline);
    browser = await launchChromium();
    const { page } = browser;
    page.setDefaultTimeout(60_000);
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    const parameters = editedParameterCount().toLocaleString("en-US");
    try {
      const shown = await editAndRun(page, lab, deadline);
      assert.ok(
        shown.model.text.includes(`seed CNN: ${parameters} parameters`),
        `02 shows the new parameter count ${parameters}`,
      );
      assert.match(shown.model.text, /your own variant of the seed CNN/);
      assertTrainedEdited(shown.train, models, parameters);
      assert.deepEqual(
        pageErrors.filter((m) => !KNOWN_LAB_ERRORS.some((k) => k.test(m))),
        [],
        "no unexpected errors in the page",
      );
    } catch (error) {
      const shot = await Deno.makeTempFile({
        prefix: "browser_notebook_edit_failure-",
        suffix: ".png",
      });
      await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
      console.error(`screenshot of the failing page: ${shot}`);
      console.error(`JupyterLab's log ends:\n${lab.logTail()}`);
      throw error;
    }
  } finally {
    await browser?.close();
    await lab.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
    await Deno.remove(state, { recursive: true }).catch(() => {});
  }
  assert.ok(Date.now() < deadline + 30_000, "within the time budget");
});
