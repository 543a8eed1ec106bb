import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  NotebookError,
  NOTEBOOKS_CLI,
  reportIndex,
  reportSummary,
  runNotebooks,
  runReport,
  seriesNotebooks,
} from "./notebooks.ts";
import {
  checkUsage,
  type NotebookCell,
  notebookJson,
} from "../../tests/fixtures.ts";

Deno.test("notebooks: --help shows the usage; an unknown flag is a usage error", async () => {
  const usage = await checkUsage(
    fileURLToPath(new URL("./notebooks.ts", import.meta.url)),
    NOTEBOOKS_CLI,
  );
  assert.match(
    usage,
    /^usage: deno task notebooks -- \[options\] \[NOTEBOOK\.\.\.\]\n/,
  );
});

Deno.test("notebooks: a good notebook runs in the Deno kernel and is exported", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const nb = join(dir, "good.ipynb");
    await Deno.writeTextFile(
      nb,
      notebookJson([
        ["markdown", "# Good"],
        [
          "code",
          'import { backendName } from "@brain/core/tf.ts";\nbackendName()',
        ],
        ["code", "Deno.env.get('NB_PARAM')"],
      ]),
    );
    const math = join(dir, "math.ipynb");
    await Deno.writeTextFile(
      math,
      notebookJson([
        ["markdown", "The loss is $L = -\\log p_y$."],
        ["code", "1 + 1"],
      ]),
    );
    const [result, mathResult] = await runNotebooks({
      notebooks: [nb, math],
      outDir: join(dir, "out"),
      env: { NB_PARAM: "from-env" },
      progress: false,
    });
    assert.equal(result.ok, true);
    assert.equal(result.cells, 3);
    const executed = JSON.parse(await Deno.readTextFile(result.executed));
    const text = (i: number) => executed.cells[i].outputs[0].data["text/plain"];
    assert.match(
      String(text(1)),
      /tensorflow/,
      "the kernel resolves @brain/ and loads native TF",
    );
    assert.match(
      String(text(2)),
      /from-env/,
      "parameters reach the kernel by environment",
    );
    const html = await Deno.readTextFile(result.html);
    assert.match(html, /<html/);
    // Readable offline: nothing loaded from a CDN (require.js is dropped,
    // MathJax only comes with math).
    assert.doesNotMatch(html, /require(\.min)?\.js/);
    assert.doesNotMatch(html, /mathjax/i);
    assert.equal(mathResult.ok, true);
    assert.match(await Deno.readTextFile(mathResult.html), /mathjax/i);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("notebooks: a failing cell fails the run and is named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = join(dir, "a_good.ipynb");
    const bad = join(dir, "b_bad.ipynb");
    const never = join(dir, "c_never.ipynb");
    await Deno.writeTextFile(good, notebookJson([["code", "1 + 1"]]));
    await Deno.writeTextFile(
      bad,
      notebookJson([
        ["markdown", "# Bad"],
        ["code", "const x = 1;"],
        ["code", 'throw new Error("boom in cell three");'],
        ["code", "2"],
      ]),
    );
    await Deno.writeTextFile(never, notebookJson([["code", "3"]]));
    const error = await runReport({
      notebooks: [good, bad, never],
      reportsDir: join(dir, "reports"),
      progress: false,
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof NotebookError, String(error));
    assert.match(error.message, /b_bad\.ipynb: cell 3 /);
    assert.match(error.message, /boom in cell three/);
    assert.equal(
      error.results.length,
      2,
      "the series stops at the failing notebook",
    );
    assert.equal(error.results[0].ok, true);
    // The executed copy of the failing notebook and the index are still written.
    assert.ok(existsSync(error.results[1].executed));
    const [stamp] = [...Deno.readDirSync(join(dir, "reports"))].map((e) =>
      e.name
    );
    const index = await Deno.readTextFile(
      join(dir, "reports", stamp, "index.html"),
    );
    assert.match(index, /FAILED/);
    assert.match(index, /<th>model<\/th><td>none trained<\/td>/);
    const summary = JSON.parse(
      await Deno.readTextFile(join(dir, "reports", stamp, "summary.json")),
    );
    assert.deepEqual(
      summary.notebooks.map((
        n: { name: string; ok: boolean },
      ) => [n.name, n.ok]),
      [["a_good.ipynb", true], ["b_bad.ipynb", false]],
    );
    assert.equal(summary.model, null);
    assert.equal(
      summary.runDir.startsWith(join(dir, "reports", stamp, "models")),
      true,
      "a report trains into its own models/ folder",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("notebooks: no cell loses its result (the kernel can answer after idle)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const nb = join(dir, "many.ipynb");
    const cells: NotebookCell[] = Array.from(
      { length: 40 },
      (_, i) => ["code", `"r${i}"`],
    );
    await Deno.writeTextFile(nb, notebookJson(cells));
    const [result] = await runNotebooks({
      notebooks: [nb],
      outDir: join(dir, "out"),
      progress: false,
    });
    const executed = JSON.parse(await Deno.readTextFile(result.executed));
    const missing = executed.cells.flatMap((
      c: { outputs: unknown[] },
      i: number,
    ) => c.outputs.length === 1 ? [] : [i + 1]);
    assert.deepEqual(missing, [], "cells without their result");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("notebooks: a missing notebook is a clear error", async () => {
  await assert.rejects(
    runNotebooks({
      notebooks: ["/no/such.ipynb"],
      outDir: "/tmp/x",
      progress: false,
    }),
    /\/no\/such\.ipynb: no such notebook/,
  );
});

Deno.test("notebooks: the series is notebooks/*.ipynb in name order", () => {
  const series = seriesNotebooks();
  assert.ok(series.length >= 1);
  assert.ok(series[0].endsWith("00_setup_check.ipynb"));
  assert.deepEqual([...series].sort(), series);
});

Deno.test("notebooks: reportSummary reads the trained run's metadata and manifest", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "model"));
    await Deno.writeTextFile(
      join(dir, "model", "metadata.json"),
      JSON.stringify({
        arch: "seedCnn",
        inputSize: 64,
        training: { seed: 42, epochs: 3, bestEpoch: 2 },
        datasetFingerprint: "abc",
        metrics: { val_acc: 0.5, test_acc: 0.625 },
        versions: { deno: "2.9.6" },
      }),
    );
    await Deno.writeTextFile(
      join(dir, "manifest.json"),
      JSON.stringify({ extra: { source: "/data/x", synthetic: true } }),
    );
    const summary = await reportSummary({ results: [], runDir: dir });
    assert.equal(summary.model?.metrics.test_acc, 0.625);
    assert.equal(summary.model?.bestEpoch, 2);
    assert.deepEqual(summary.data, { source: "/data/x", synthetic: true });
    const html = reportIndex([], "t", summary);
    assert.match(html, /<th>test accuracy<\/th><td>0\.6250<\/td>/);
    assert.doesNotMatch(html, /<th>test_acc<\/th>/); // labels, not keys
    assert.match(html, /\/data\/x \(SYNTHETIC default dataset\)/);
    // The synthetic warning comes first, before the title.
    const body = html.slice(html.indexOf("<body>") + "<body>".length);
    assert.match(body, /^<div class="synthetic-warning"[^>]*>SYNTHETIC DATA: /);
    const real = reportIndex([], "t", {
      ...summary,
      data: { source: "/data/x", synthetic: false },
    });
    assert.doesNotMatch(real, /synthetic-warning/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("notebooks: reportIndex lists each notebook with its status", () => {
  const html = reportIndex([
    {
      notebook: "/p/notebooks/00_x.ipynb",
      executed: "/r/00_x.ipynb",
      html: "/r/00_x.html",
      seconds: 1.25,
      cells: 3,
      ok: true,
      error: null,
    },
    {
      notebook: "/p/notebooks/01_y.ipynb",
      executed: "/r/01_y.ipynb",
      html: "/r/01_y.html",
      seconds: 2,
      cells: 3,
      ok: false,
      error: { cell: 2, source: "x", ename: "Error", evalue: "<bad>" },
    },
  ], "t");
  assert.match(
    html,
    /<a href="00_x\.html">00_x\.ipynb<\/a><\/td><td>ok<\/td><td>1\.3 s/,
  );
  assert.match(
    html,
    /FAILED<\/td><td>2\.0 s<\/td><td>cell 2: Error: &#60;bad&#62;/,
  );
});
