/**
 * Executes notebooks headlessly with the Deno kernel through nbclient, writing
 * executed copies and HTML exports into `reports/<timestamp>/` with an index
 * page. A failing cell fails the run, naming the notebook and the cell.
 *
 * `deno task notebooks [NOTEBOOK...]` runs the given notebooks, or every
 * `notebooks/*.ipynb` in name order.
 *
 * @module
 */
import { existsSync, readdirSync } from "node:fs";
import { basename, join, relative } from "node:path";
import { writeTextAtomic } from "../core/atomic.ts";
import { projectPaths } from "../core/paths.ts";
import { plotlyJsPath } from "../core/plot.ts";
import { jupyterEnv, KERNEL_NAME } from "./python_env.ts";
import { type ParsedCli, runCli } from "../core/cli.ts";
import { trainParams } from "../core/params.ts";

/** The outcome of one notebook. */
export interface NotebookResult {
  /** The notebook that was run. */
  notebook: string;
  /** The executed copy (outputs kept). */
  executed: string;
  /** The HTML export. */
  html: string;
  /** Wall time in seconds. */
  seconds: number;
  /** Number of cells. */
  cells: number;
  /** Whether every cell ran without error. */
  ok: boolean;
  /** The failing cell (1-based) and its error, when not ok. */
  error: null | {
    cell: number | null;
    source: string;
    ename: string;
    evalue: string;
  };
}

/** A notebook had a failing cell. */
export class NotebookError extends Error {
  /** Every notebook that ran, the failing one last. */
  readonly results: NotebookResult[];
  /**
   * A failed notebook run with what ran before it stopped.
   *
   * @param message names the notebook and the cell
   * @param results what ran
   */
  constructor(message: string, results: NotebookResult[]) {
    super(message);
    this.name = "NotebookError";
    this.results = results;
  }
}

/** Options for {@linkcode runNotebooks}. */
export interface RunNotebooksOptions {
  /** Notebook files, run in this order. */
  notebooks: string[];
  /** Output folder; created if needed. */
  outDir: string;
  /** Extra environment for the kernel (parameters for the notebooks). */
  env?: Record<string, string>;
  /** Seconds a single cell may run. */
  cellTimeout?: number;
  /** Show nbclient's per-cell progress on stderr (default true). */
  progress?: boolean;
}

/**
 * Runs notebooks in order, stopping at the first failing one, which makes it
 * throw {@linkcode NotebookError} naming the notebook, cell and error.
 *
 * Starts Jupyter kernels, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { runNotebooks } from "./notebooks.ts";
 * const results = await runNotebooks({
 *   notebooks: ["notebooks/00_setup_check.ipynb"],
 *   outDir: "reports/example",
 * });
 * console.log(results[0].seconds);
 * ```
 */
export async function runNotebooks(
  options: RunNotebooksOptions,
): Promise<NotebookResult[]> {
  const paths = projectPaths();
  if (!existsSync(paths.python)) {
    throw new Error(
      `${paths.python} is missing: run \`deno task setup\` first`,
    );
  }
  for (const nb of options.notebooks) {
    if (!existsSync(nb)) throw new Error(`${nb}: no such notebook`);
  }
  const child = new Deno.Command(paths.python, {
    args: [
      join(paths.root, "lib", "tools", "nbrun.py"),
      "--out",
      options.outDir,
      "--kernel",
      KERNEL_NAME,
      "--timeout",
      String(options.cellTimeout ?? 3600),
      "--plotly-js",
      plotlyJsPath(),
      ...options.notebooks,
    ],
    env: { ...jupyterEnv(paths), ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: options.progress === false ? "piped" : "inherit",
  }).spawn();
  const output = await child.output();
  const text = new TextDecoder().decode(output.stdout);
  const results: NotebookResult[] = text.split("\n")
    .filter((line) => line.startsWith("@@result "))
    .map((line) => JSON.parse(line.slice("@@result ".length)));
  const failed = results.find((r) => !r.ok);
  if (failed) {
    const e = failed.error!;
    throw new NotebookError(
      `${relative(paths.root, failed.notebook) || failed.notebook}: cell ${
        e.cell ?? "?"
      } (${e.source}) failed: ${e.ename}: ${e.evalue}`,
      results,
    );
  }
  if (!output.success || results.length !== options.notebooks.length) {
    const stderr = output.stderr.length
      ? new TextDecoder().decode(output.stderr).trim().split("\n").slice(-10)
        .join("\n")
      : "see the output above";
    throw new NotebookError(
      `the notebook runner stopped (exit ${output.code}) after ${results.length} of ` +
        `${options.notebooks.length} notebooks: ${stderr}`,
      results,
    );
  }
  return results;
}

/**
 * The notebooks of the series, `notebooks/*.ipynb` in name order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { seriesNotebooks } from "./notebooks.ts";
 * const dir = await Deno.makeTempDir();
 * for (const name of ["02_b.ipynb", "notes.md", "01_a.ipynb"]) {
 *   await Deno.writeTextFile(join(dir, name), "{}");
 * }
 * assert.deepEqual(seriesNotebooks(dir), [
 *   join(dir, "01_a.ipynb"),
 *   join(dir, "02_b.ipynb"),
 * ]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function seriesNotebooks(dir = projectPaths().notebooks): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".ipynb"))
    .sort()
    .map((f) => join(dir, f));
}

/** What a report's run produced, for `summary.json` and the index page. */
export interface ReportSummary {
  /** When the report was made (ISO 8601). */
  createdAt: string;
  /** Every notebook that ran: name, status, seconds. */
  notebooks: { name: string; ok: boolean; seconds: number }[];
  /** Total notebook wall time in seconds. */
  seconds: number;
  /** The training run's folder (`BRAIN_MRI_MODELS`/`BRAIN_MRI_RUN`). */
  runDir: string;
  /** The trained model's metadata fields that matter, when it exists. */
  model: null | {
    arch: string;
    inputSize: number;
    seed: number;
    epochs: number;
    bestEpoch: number;
    datasetFingerprint: string;
    metrics: Record<string, number>;
    versions: Record<string, string>;
  };
  /** Where the data came from (from the run's manifest), when known. */
  data: null | { source: unknown; synthetic: unknown };
}

/**
 * Reads what a report's notebooks produced: the training run in `runDir`
 * (model metadata and manifest, read as JSON so that TensorFlow is not
 * loaded here) and the notebooks' results.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reportSummary } from "./notebooks.ts";
 * const result = {
 *   notebook: "notebooks/01_data.ipynb",
 *   executed: "reports/x/01_data.ipynb",
 *   html: "reports/x/01_data.html",
 *   seconds: 12.34,
 *   cells: 9,
 *   ok: true,
 *   error: null,
 * };
 * const s = await reportSummary({ results: [result], runDir: "/no/such/run" });
 * assert.deepEqual(s.notebooks, [{ name: "01_data.ipynb", ok: true, seconds: 12.3 }]);
 * assert.equal(s.model, null); // nothing trained there
 * assert.equal(s.data, null);
 * ```
 */
export async function reportSummary(
  options: { results: NotebookResult[]; runDir: string },
): Promise<ReportSummary> {
  const readJson = async (path: string) => {
    try {
      return JSON.parse(await Deno.readTextFile(path));
    } catch {
      return null;
    }
  };
  const meta = await readJson(join(options.runDir, "model", "metadata.json"));
  const manifest = await readJson(join(options.runDir, "manifest.json"));
  const extra = manifest?.extra ?? {};
  return {
    createdAt: new Date().toISOString(),
    notebooks: options.results.map((r) => ({
      name: basename(r.notebook),
      ok: r.ok,
      seconds: Math.round(r.seconds * 10) / 10,
    })),
    seconds: Math.round(
      options.results.reduce((sum, r) => sum + r.seconds, 0) * 10,
    ) / 10,
    runDir: options.runDir,
    model: meta
      ? {
        arch: meta.arch,
        inputSize: meta.inputSize,
        seed: meta.training?.seed,
        epochs: meta.training?.epochs,
        bestEpoch: meta.training?.bestEpoch,
        datasetFingerprint: meta.datasetFingerprint,
        metrics: meta.metrics ?? {},
        versions: meta.versions ?? {},
      }
      : null,
    data: "source" in extra
      ? { source: extra.source, synthetic: extra.synthetic }
      : null,
  };
}

/**
 * What the report index calls the metrics a run records, instead of their
 * keys (`acc`, `test_dedup_images`...). Keys not listed show with their
 * underscores as spaces.
 */
export const METRIC_LABELS: Readonly<Record<string, string>> = {
  loss: "training loss (best epoch)",
  acc: "training accuracy (best epoch)",
  val_loss: "validation loss (best epoch)",
  val_acc: "validation accuracy (best epoch)",
  test_loss: "test loss",
  test_acc: "test accuracy",
  test_images: "test images",
  test_dedup_loss: "test loss after de-duplication",
  test_dedup_acc: "test accuracy after de-duplication",
  test_dedup_images: "test images after de-duplication",
};

/**
 * The human label of a metric key (see {@linkcode METRIC_LABELS}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { metricLabel } from "./notebooks.ts";
 * assert.equal(metricLabel("acc"), "training accuracy (best epoch)");
 * assert.equal(metricLabel("test_dedup_images"), "test images after de-duplication");
 * assert.equal(metricLabel("macro_f1"), "macro f1");
 * ```
 */
export function metricLabel(key: string): string {
  return METRIC_LABELS[key] ?? key.replace(/_/g, " ");
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The warning the index opens with when the report ran on the synthetic default dataset. */
const SYNTHETIC_WARNING =
  "SYNTHETIC DATA: this report ran on the generated, MRI-like synthetic " +
  "default dataset, not on scans. Its numbers say nothing about real MRI. " +
  "Set BRAIN_MRI_DATA to the Kaggle dataset and run the report again.";

/** The summary's facts as label/value rows: data, run, model and metrics, time. */
function summaryFacts(summary: ReportSummary): [string, string][] {
  const m = summary.model;
  const data: [string, string] = [
    "data",
    summary.data
      ? `${summary.data.source}${
        summary.data.synthetic ? " (SYNTHETIC default dataset)" : ""
      }`
      : "unknown",
  ];
  const model: [string, string][] = m
    ? [
      ["model", `${m.arch} ${m.inputSize}×${m.inputSize}, seed ${m.seed}`],
      ["epochs", `${m.epochs} (best ${m.bestEpoch})`],
      ["dataset fingerprint", m.datasetFingerprint],
      ...Object.entries(m.metrics).map(([k, v]): [string, string] => [
        metricLabel(k),
        Number.isInteger(v) ? String(v) : v.toFixed(4),
      ]),
    ]
    : [["model", "none trained"]];
  return [
    data,
    ["run folder", summary.runDir],
    ...model,
    ["notebook time", `${summary.seconds.toFixed(1)} s`],
  ];
}

/** One table row per notebook: link, status, time, error. */
function notebookRows(results: NotebookResult[]): string {
  return results.map((r) =>
    `<tr><td><a href="${esc(basename(r.html))}">${
      esc(basename(r.notebook))
    }</a></td><td>${r.ok ? "ok" : "FAILED"}</td><td>${
      r.seconds.toFixed(1)
    } s</td><td>${
      r.error
        ? esc(`cell ${r.error.cell}: ${r.error.ename}: ${r.error.evalue}`)
        : ""
    }</td></tr>`
  ).join("\n");
}

/**
 * An index page linking every notebook's HTML report with its status and
 * time, and, given a summary, the data, the model and its metrics under
 * human labels ("training accuracy", "test images after de-duplication").
 * When the report ran on the synthetic default dataset, the page opens with
 * a red warning saying so, before anything else.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reportIndex } from "./notebooks.ts";
 * const failed = {
 *   notebook: "notebooks/03_train.ipynb",
 *   executed: "reports/x/03_train.ipynb",
 *   html: "reports/x/03_train.html",
 *   seconds: 4,
 *   cells: 12,
 *   ok: false,
 *   error: { cell: 5, source: "trainModel(...)", ename: "Error", evalue: "<boom>" },
 * };
 * const page = reportIndex([failed], "example run");
 * assert.match(page, /<title>example run<\/title>/);
 * assert.match(
 *   page,
 *   /<a href="03_train\.html">03_train\.ipynb<\/a><\/td><td>FAILED<\/td><td>4\.0 s<\/td>/,
 * );
 * assert.match(page, /cell 5: Error: &#60;boom&#62;/); // escaped
 * const synthetic = reportIndex([], "synthetic run", {
 *   createdAt: "2026-01-01T00:00:00.000Z",
 *   notebooks: [],
 *   seconds: 1,
 *   runDir: "models/seed",
 *   model: null,
 *   data: { source: "data/synthetic", synthetic: true },
 * });
 * // The warning is the body's first block.
 * assert.match(synthetic, /<body><div class="synthetic-warning"[^>]*>SYNTHETIC DATA: /);
 * ```
 */
export function reportIndex(
  results: NotebookResult[],
  title: string,
  summary?: ReportSummary,
): string {
  const factRows = (summary ? summaryFacts(summary) : []).map(([k, v]) =>
    `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`
  ).join("\n");
  const warning = summary?.data?.synthetic
    ? `<div class="synthetic-warning" role="alert" style="background:#fde2e1;border:2px solid #c0392b;color:#7b1d14;font-weight:bold;padding:8px 12px;border-radius:4px;margin-bottom:1em">${
      esc(SYNTHETIC_WARNING)
    }</div>`
    : "";
  return `<!doctype html><html><head><meta charset="utf-8"><title>${
    esc(title)
  }</title><style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 12px;text-align:left}</style></head><body>${warning}<h1>${
    esc(title)
  }</h1><table><tr><th>notebook</th><th>status</th><th>time</th><th>error</th></tr>\n${
    notebookRows(results)
  }\n</table>${
    factRows
      ? `<h2>Summary</h2><table>\n${factRows}\n</table><p>Also in <a href="summary.json">summary.json</a>.</p>`
      : ""
  }</body></html>\n`;
}

/**
 * Runs notebooks into a new `reports/<timestamp>/` folder and writes its index
 * page and `summary.json` (also when a notebook fails, before rethrowing).
 * Unless `BRAIN_MRI_MODELS` is set, the notebooks train into the report's own
 * `models/` folder, so every report trains afresh and holds its model.
 * Returns the folder, the results and the summary.
 *
 * Starts Jupyter kernels and may train a model, so it is not run by
 * `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { runReport } from "./notebooks.ts";
 * const { dir } = await runReport({ notebooks: ["notebooks/00_setup_check.ipynb"] });
 * console.log(dir);
 * ```
 */
export async function runReport(
  options: Omit<RunNotebooksOptions, "outDir"> & { reportsDir?: string },
): Promise<
  { dir: string; results: NotebookResult[]; summary: ReportSummary }
> {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const dir = join(options.reportsDir ?? projectPaths().reports, stamp);
  const env = { ...Deno.env.toObject(), ...options.env };
  const modelsDir = env.BRAIN_MRI_MODELS?.trim()
    ? projectPaths({ env }).models
    : join(dir, "models");
  const runDir = join(modelsDir, trainParams({ env }).run);
  let results: NotebookResult[] = [];
  let summary: ReportSummary | undefined;
  try {
    results = await runNotebooks({
      ...options,
      env: { ...options.env, BRAIN_MRI_MODELS: modelsDir },
      outDir: dir,
    });
    summary = await reportSummary({ results, runDir });
    return { dir, results, summary };
  } catch (error) {
    if (error instanceof NotebookError) results = error.results;
    throw error;
  } finally {
    if (results.length) {
      summary ??= await reportSummary({ results, runDir });
      await writeTextAtomic(
        join(dir, "summary.json"),
        JSON.stringify(summary, null, 2) + "\n",
      );
      await writeTextAtomic(
        join(dir, "index.html"),
        reportIndex(results, `brain-mri-cnn report ${stamp}`, summary),
      );
    }
  }
}

/** The command line of `deno task notebooks` (and `deno task report`). */
export const NOTEBOOKS_CLI = {
  command: "deno task notebooks",
  summary: "Executes notebooks headlessly with the Deno kernel into a new\n" +
    "reports/<timestamp>/ folder: executed copies, HTML exports, an index\n" +
    "page and summary.json. Without arguments, every notebooks/*.ipynb in\n" +
    "name order.",
  positionals: "[NOTEBOOK...]",
  flags: {},
} as const;

/** Runs the report from the command line: exit 0 when every notebook ran, else 1. */
async function notebooksMain(
  { positionals }: ParsedCli<typeof NOTEBOOKS_CLI>,
): Promise<number> {
  const notebooks = positionals.length ? positionals : seriesNotebooks();
  try {
    const { dir, results, summary } = await runReport({ notebooks });
    for (const r of results) {
      console.log(`ok  ${basename(r.notebook)}  ${r.seconds.toFixed(1)} s`);
    }
    const metrics = summary.model?.metrics ?? {};
    for (const key of ["val_acc", "test_acc", "test_dedup_acc"]) {
      if (key in metrics) console.log(`${key}: ${metrics[key].toFixed(4)}`);
    }
    console.log(`report: ${join(dir, "index.html")}`);
    return 0;
  } catch (error) {
    console.error(`FAILED: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await runCli(NOTEBOOKS_CLI, notebooksMain));
