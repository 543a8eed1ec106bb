/**
 * Live training progress for {@linkcode trainModel}, in a terminal and in a
 * notebook. Both are {@linkcode TrainCallbacks} objects made here:
 *
 * - {@linkcode terminalProgress}: a `cli-progress` bar per epoch (epoch,
 *   batch, loss, accuracy, images/s, ETA) on a terminal, and one line per
 *   epoch with the validation metrics; without a terminal (CI, logs) a line
 *   every so often instead of the bar.
 * - {@linkcode notebookProgress}: in the Deno Jupyter kernel, ONE status
 *   display per run that is updated in place (at most every 0.5 s), and a
 *   Plotly loss/accuracy chart updated after every epoch. It looks
 *   `Deno.jupyter` up only when called and falls back to console lines
 *   outside a kernel.
 *
 * Updating in place uses the kernel's display ids: the first
 * `Deno.jupyter.display(obj, { display_id })` sends `display_data` with
 * `transient.display_id`; later calls with `update: true` send
 * `update_display_data`, which frontends (and nbclient, for executed
 * notebooks) apply to the existing output.
 *
 * The display objects themselves ({@linkcode progressDisplay},
 * {@linkcode historyChart}) are plain values with a `Jupyter.display` bundle,
 * usable and testable anywhere.
 *
 * In a notebook cell (it needs a Jupyter kernel and training data, so it is
 * not run by `deno test --doc`):
 *
 * ```ts ignore
 * import { notebookProgress } from "./progress.ts";
 * const result = await trainModel({ ...options, callbacks: notebookProgress() });
 * ```
 *
 * @module
 */
import cliProgress from "cli-progress";
import { type Displayable, displayable, escapeHtml } from "../core/display.ts";
import { figure } from "../core/plot.ts";
import type {
  BatchEndInfo,
  EpochEndInfo,
  EpochRecord,
  StopReason,
  TrainBeginInfo,
  TrainCallbacks,
  TrainEndInfo,
} from "./train.ts";

/** A snapshot of a run's progress, as the displays show it. */
export interface ProgressState {
  /** Run name, if any. */
  run?: string;
  /** `"running"`, or why training stopped. */
  status: "starting" | "running" | StopReason;
  /** Current epoch, 1-based (0 before the first). */
  epoch: number;
  /** Epochs in the run. */
  epochs: number;
  /** Batches done in the current epoch. */
  batch: number;
  /** Batches per epoch. */
  batches: number;
  /** Running loss of the current epoch. */
  loss?: number;
  /** Running accuracy of the current epoch. */
  acc?: number;
  /** Training images per second. */
  imagesPerSecond?: number;
  /**
   * Estimated seconds left: every epoch still to come, or, with a time
   * budget, the rest of the current epoch plus what is left of the budget
   * after it (whichever is less).
   */
  etaSeconds?: number;
  /** Current learning rate. */
  lr?: number;
  /** Finished epochs. */
  history: EpochRecord[];
  /** Best epoch so far. */
  best?: EpochRecord;
  /** Recent messages (resume, LR changes). */
  messages: string[];
}

/**
 * Seconds as `1h02m`, `3m05s` or `42s`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatDuration } from "./progress.ts";
 * assert.equal(formatDuration(185), "3m05s");
 * assert.equal(formatDuration(3720), "1h02m");
 * assert.equal(formatDuration(undefined), "–");
 * ```
 */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) {
    return "–";
  }
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

function num(value: number | null | undefined, digits = 4): string {
  return typeof value === "number" && Number.isFinite(value)
    ? value.toFixed(digits)
    : "–";
}

function lrText(lr: number | undefined): string {
  return lr === undefined ? "–" : lr.toExponential(1);
}

/**
 * One line for a finished epoch, as the terminal and console fallbacks print
 * it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { epochLine } from "./progress.ts";
 * const line = epochLine({ epoch: 1, loss: 1.2, acc: 0.5, val_loss: 1.1, val_acc: 0.55, lr: 0.001, seconds: 12, trainSeconds: 10, imagesPerSecond: 320 }, 10, { improved: true });
 * assert.equal(
 *   line,
 *   "epoch  1/10  loss 1.2000  acc 0.5000  val_loss 1.1000  val_acc 0.5500  lr 1.0e-3  12.0 s  320 img/s  *best*",
 * );
 * ```
 */
export function epochLine(
  record: EpochRecord,
  epochs: number,
  extra: { improved?: boolean; stopReason?: StopReason } = {},
): string {
  const w = String(epochs).length;
  return `epoch ${String(record.epoch).padStart(w)}/${epochs}  ` +
    `loss ${num(record.loss)}  acc ${num(record.acc)}  ` +
    `val_loss ${num(record.val_loss)}  val_acc ${num(record.val_acc)}  ` +
    `lr ${lrText(record.lr)}  ${record.seconds.toFixed(1)} s  ` +
    `${record.imagesPerSecond.toFixed(0)} img/s` +
    (extra.improved ? "  *best*" : "") +
    (extra.stopReason === "early-stopping" ? "  (early stopping)" : "") +
    (extra.stopReason === "time-budget" ? "  (time budget reached)" : "");
}

/**
 * The status of a run as one line of text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { progressText } from "./progress.ts";
 * const text = progressText({ status: "running", epoch: 2, epochs: 10, batch: 5, batches: 40, history: [], messages: [] });
 * assert.ok(text.startsWith("running · epoch 2/10 · batch 5/40 · loss –"));
 * ```
 */
export function progressText(state: ProgressState): string {
  const last = state.history.at(-1);
  const parts = [
    `${state.run ? `${state.run}: ` : ""}${state.status}`,
    `epoch ${state.epoch}/${state.epochs}`,
    `batch ${state.batch}/${state.batches}`,
    `loss ${num(state.loss)}`,
    `acc ${num(state.acc)}`,
    `val_loss ${num(last?.val_loss)}`,
    `val_acc ${num(last?.val_acc)}`,
    `${num(state.imagesPerSecond, 0)} img/s`,
    `ETA ${formatDuration(state.etaSeconds)}`,
  ];
  if (state.best) {
    parts.push(
      `best epoch ${state.best.epoch} (val_acc ${num(state.best.val_acc)})`,
    );
  }
  return parts.join(" · ");
}

/**
 * The live status display: a progress bar and the current numbers, as HTML
 * with a plain-text fallback.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { progressDisplay } from "./progress.ts";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * const d = progressDisplay({ status: "running", epoch: 1, epochs: 5, batch: 3, batches: 10, loss: 1.3, history: [], messages: [] });
 * assert.deepEqual(Object.keys(d[JUPYTER_DISPLAY]()), ["text/html", "text/plain"]);
 * ```
 */
export function progressDisplay(state: ProgressState): Displayable {
  const done = state.status !== "running" && state.status !== "starting";
  const fraction = state.epochs
    ? Math.min(
      1,
      done ? 1 : (Math.max(0, state.epoch - 1) +
        (state.batches ? state.batch / state.batches : 0)) / state.epochs,
    )
    : 0;
  const last = state.history.at(-1);
  const cells: [string, string][] = [
    ["epoch", `${state.epoch} / ${state.epochs}`],
    ["batch", `${state.batch} / ${state.batches}`],
    ["loss", num(state.loss)],
    ["accuracy", num(state.acc)],
    ["val loss", num(last?.val_loss)],
    ["val accuracy", num(last?.val_acc)],
    ["images/s", num(state.imagesPerSecond, 1)],
    ["learning rate", lrText(state.lr)],
    ["ETA", done ? "done" : formatDuration(state.etaSeconds)],
  ];
  if (state.best) {
    cells.push([
      "best",
      `epoch ${state.best.epoch}: val_loss ${num(state.best.val_loss)}, ` +
      `val_acc ${num(state.best.val_acc)}`,
    ]);
  }
  const title = `${
    state.run ? `Training ${state.run}` : "Training"
  } — ${state.status}`;
  const html = `<div class="brain-mri-progress">
<div><b>${escapeHtml(title)}</b></div>
<div style="background:#eee;width:100%;max-width:480px;height:10px;border-radius:3px;margin:4px 0">` +
    `<div style="background:${
      state.status === "aborted" ? "#c0392b" : "#2e86de"
    };width:${
      (100 * fraction).toFixed(1)
    }%;height:10px;border-radius:3px"></div></div>
<table class="brain-mri-table"><tbody>${
      cells.map(([k, v]) =>
        `<tr><th style="text-align:left">${escapeHtml(k)}</th><td>${
          escapeHtml(v)
        }</td></tr>`
      ).join("")
    }</tbody></table>${
      state.messages.length
        ? `<div style="color:#555">${
          state.messages.map((m) => escapeHtml(m)).join("<br>")
        }</div>`
        : ""
    }</div>`;
  const text = [progressText(state), ...state.messages].join("\n");
  return displayable({ "text/html": html, "text/plain": text });
}

/**
 * A Plotly chart of loss and accuracy per epoch (training and validation,
 * side by side).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { historyChart } from "./progress.ts";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * const chart = historyChart([{ epoch: 1, loss: 1.2, acc: 0.5, val_loss: 1.1, val_acc: 0.55, lr: 0.001, seconds: 12, trainSeconds: 10, imagesPerSecond: 320 }]);
 * assert.match(String(chart[JUPYTER_DISPLAY]()["text/plain"]), /^Training history: 1 epoch; last: loss 1\.2000/);
 * ```
 */
export function historyChart(
  history: readonly EpochRecord[],
  options: { title?: string } = {},
): Displayable {
  const x = history.map((r) => r.epoch);
  const series = (
    key: "loss" | "acc" | "val_loss" | "val_acc",
    name: string,
    axis: 1 | 2,
    dash: boolean,
  ) => ({
    type: "scatter",
    mode: "lines+markers",
    name,
    x,
    y: history.map((r) => r[key]),
    xaxis: axis === 1 ? "x" : "x2",
    yaxis: axis === 1 ? "y" : "y2",
    line: {
      dash: dash ? "dash" : "solid",
      color: dash ? "#e67e22" : "#2e86de",
    },
    legendgroup: dash ? "validation" : "training",
  });
  const last = history.at(-1);
  const text = `${options.title ?? "Training history"}: ${history.length} ` +
    `epoch${history.length === 1 ? "" : "s"}` +
    (last
      ? `; last: loss ${num(last.loss)}, acc ${num(last.acc)}, ` +
        `val_loss ${num(last.val_loss)}, val_acc ${num(last.val_acc)}`
      : "");
  return figure({
    data: [
      series("loss", "train loss", 1, false),
      series("val_loss", "val loss", 1, true),
      series("acc", "train accuracy", 2, false),
      series("val_acc", "val accuracy", 2, true),
    ],
    layout: {
      title: { text: options.title ?? "Training history" },
      grid: { rows: 1, columns: 2, pattern: "independent" },
      xaxis: { title: { text: "epoch" }, dtick: 1 },
      yaxis: { title: { text: "loss" } },
      xaxis2: { title: { text: "epoch" }, dtick: 1 },
      yaxis2: { title: { text: "accuracy" }, range: [0, 1] },
      height: 360,
      legend: { orientation: "h" },
    },
  }, { text });
}

/** Keeps a {@linkcode ProgressState} up to date from the training callbacks. */
class Tracker {
  state: ProgressState = {
    status: "starting",
    epoch: 0,
    epochs: 0,
    batch: 0,
    batches: 0,
    history: [],
    messages: [],
  };
  /** The run's time budget in seconds, if any. */
  budget: number | null = null;
  /** Seconds of the finished epochs (all sessions). */
  spent = 0;

  begin(info: TrainBeginInfo): void {
    this.budget = info.config.maxSeconds ?? null;
    this.spent = info.history.reduce((s, r) => s + r.seconds, 0);
    this.state = {
      ...this.state,
      ...(info.run ? { run: info.run } : {}),
      status: "running",
      epoch: info.startEpoch,
      epochs: info.config.epochs,
      batch: 0,
      batches: info.batchesPerEpoch,
      lr: info.learningRate,
      history: [...info.history],
    };
    this.state.best = this.bestOf(info.history);
  }

  bestOf(history: EpochRecord[]): EpochRecord | undefined {
    let best: EpochRecord | undefined;
    for (const r of history) {
      const v = r.val_loss ?? r.loss;
      if (!best || v < (best.val_loss ?? best.loss)) best = r;
    }
    return best;
  }

  /** Seconds of validation etc. per epoch, from the last finished epoch. */
  overhead(): number {
    const last = this.state.history.at(-1);
    return last ? Math.max(0, last.seconds - last.trainSeconds) : 0;
  }

  batch(info: BatchEndInfo): void {
    const perBatch = info.seconds / (info.batch + 1);
    const left = info.batches - info.batch - 1;
    const epochsLeft = info.epochs - info.epoch - 1;
    const restOfEpoch = left * perBatch + this.overhead();
    let later = epochsLeft * (info.batches * perBatch + this.overhead());
    if (this.budget !== null) {
      // The current epoch always ends; later ones only within the budget.
      const budgetLeft = this.budget - this.spent - info.seconds - restOfEpoch;
      later = Math.min(later, Math.max(0, budgetLeft));
    }
    Object.assign(this.state, {
      epoch: info.epoch + 1,
      epochs: info.epochs,
      batch: info.batch + 1,
      batches: info.batches,
      loss: info.loss,
      acc: info.acc,
      imagesPerSecond: info.imagesPerSecond,
      etaSeconds: restOfEpoch + later,
    });
  }

  epochEnd(info: EpochEndInfo): void {
    const history = info.history;
    const mean = history.slice(-3).reduce((s, r) => s + r.seconds, 0) /
      Math.min(3, history.length);
    this.spent = history.reduce((s, r) => s + r.seconds, 0);
    const later = (info.epochs - info.record.epoch) * mean;
    Object.assign(this.state, {
      epoch: info.record.epoch,
      epochs: info.epochs,
      batch: this.state.batches,
      loss: info.record.loss,
      acc: info.record.acc,
      imagesPerSecond: info.record.imagesPerSecond,
      lr: info.nextLearningRate,
      history: [...history],
      best: info.best,
      etaSeconds: info.stopReason
        ? 0
        : this.budget === null
        ? later
        : Math.min(later, Math.max(0, this.budget - this.spent)),
    });
  }

  end(info: TrainEndInfo): void {
    Object.assign(this.state, {
      status: info.stopReason,
      history: [...info.history],
      best: info.best,
      etaSeconds: 0,
    });
  }

  message(text: string): void {
    this.state.messages = [...this.state.messages, text].slice(-4);
  }
}

/** Options for {@linkcode terminalProgress}. */
export interface TerminalProgressOptions {
  /** Where lines go (default `console.log`). */
  log?: (line: string) => void;
  /** Draw a bar (default: when stderr is a terminal). */
  bar?: boolean;
  /** Without a bar, print a batch line at most this often (default 15 000 ms). */
  lineEveryMs?: number;
}

interface CliBar {
  start(total: number, value: number, payload?: Record<string, unknown>): void;
  update(value: number, payload?: Record<string, unknown>): void;
  stop(): void;
}

/** The numbers the bar shows, from the tracker's state. */
function barPayload(s: ProgressState): Record<string, unknown> {
  return {
    epochText: `${s.epoch}/${s.epochs}`,
    loss: num(s.loss),
    acc: num(s.acc),
    ips: num(s.imagesPerSecond, 0),
    eta: formatDuration(s.etaSeconds),
  };
}

/** A new `cli-progress` bar for one epoch. */
function epochBar(): CliBar {
  const { SingleBar, Presets } = cliProgress as unknown as {
    SingleBar: new (o: Record<string, unknown>, p?: unknown) => CliBar;
    Presets: Record<string, unknown>;
  };
  return new SingleBar({
    format:
      "epoch {epochText} [{bar}] {value}/{total} | loss {loss} | acc {acc} | {ips} img/s | ETA {eta}",
    hideCursor: true,
    clearOnComplete: true,
  }, Presets.shades_classic);
}

/** The line that opens a run. */
function beginLine(info: TrainBeginInfo): string {
  const c = info.config;
  return `training ${c.arch} ${c.inputSize}×${c.inputSize}` +
    ` on ${info.trainImages} images (validation ${info.validationImages}), ` +
    `batch ${c.batchSize}, ${info.batchesPerEpoch} batches/epoch, ` +
    `epochs ${info.startEpoch + 1}–${c.epochs}` +
    (info.run ? `, run ${info.run}` : "");
}

/** The line printed every so often during an epoch, without a bar. */
function batchLine(s: ProgressState): string {
  return `  epoch ${s.epoch}/${s.epochs} batch ${s.batch}/${s.batches}  ` +
    `loss ${num(s.loss)}  acc ${num(s.acc)}  ${
      num(s.imagesPerSecond, 0)
    } img/s  ` +
    `ETA ${formatDuration(s.etaSeconds)}`;
}

/** The line that closes a run. */
function endLine(info: TrainEndInfo): string {
  const best = info.best;
  return `training ${info.stopReason} after ${info.history.length} epochs in ` +
    `${formatDuration(info.seconds)}` +
    (best
      ? `; best epoch ${best.epoch}: val_loss ${num(best.val_loss)}, ` +
        `val_acc ${num(best.val_acc)}`
      : "");
}

/**
 * Progress for a terminal: a `cli-progress` bar per epoch and a line per
 * epoch (see the module documentation).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { terminalProgress } from "./progress.ts";
 * const lines: string[] = [];
 * const progress = terminalProgress({ bar: false, log: (line) => lines.push(line) });
 * progress.onLog?.("resuming after epoch 2");
 * assert.deepEqual(lines, ["resuming after epoch 2"]);
 * ```
 */
export function terminalProgress(
  options: TerminalProgressOptions = {},
): TrainCallbacks {
  const log = options.log ?? ((line: string) => console.log(line));
  const useBar = options.bar ?? Deno.stderr.isTerminal();
  const every = options.lineEveryMs ?? 15_000;
  const tracker = new Tracker();
  let bar: CliBar | undefined;
  let lastLine = 0;
  const stopBar = () => {
    bar?.stop();
    bar = undefined;
  };
  return {
    onTrainBegin(info) {
      tracker.begin(info);
      log(beginLine(info));
    },
    onEpochBegin(epoch) {
      lastLine = Date.now();
      if (!useBar) return;
      bar = epochBar();
      tracker.state.epoch = epoch + 1;
      bar.start(tracker.state.batches, 0, barPayload(tracker.state));
    },
    onBatchEnd(info) {
      tracker.batch(info);
      if (bar) {
        bar.update(info.batch + 1, barPayload(tracker.state));
      } else if (Date.now() - lastLine >= every) {
        lastLine = Date.now();
        log(batchLine(tracker.state));
      }
    },
    onEpochEnd(info) {
      stopBar();
      tracker.epochEnd(info);
      log(
        epochLine(info.record, info.epochs, {
          improved: info.improved,
          ...(info.stopReason ? { stopReason: info.stopReason } : {}),
        }) + `  ETA ${formatDuration(tracker.state.etaSeconds)}`,
      );
    },
    onTrainEnd(info) {
      stopBar();
      tracker.end(info);
      log(endLine(info));
    },
    onLog(message) {
      if (bar) bar.stop();
      bar = undefined;
      log(message);
    },
  };
}

/** The part of `Deno.jupyter` that {@linkcode notebookProgress} uses. */
export interface JupyterDisplay {
  /** `Deno.jupyter.display`. */
  display(
    obj: unknown,
    options?: { raw?: boolean; update?: boolean; display_id?: string },
  ): unknown;
}

/**
 * `Deno.jupyter` when running in the Deno Jupyter kernel, else undefined
 * (outside the kernel, reading `Deno.jupyter` throws).
 */
function kernelDisplay(): JupyterDisplay | undefined {
  try {
    return (Deno as unknown as { jupyter?: JupyterDisplay }).jupyter;
  } catch {
    return undefined;
  }
}

/** Options for {@linkcode notebookProgress}. */
export interface NotebookProgressOptions {
  /** The kernel's display API (default `Deno.jupyter`, looked up now). */
  jupyter?: JupyterDisplay;
  /** Least milliseconds between two status updates (default 500). */
  throttleMs?: number;
  /** Show the loss/accuracy chart (default true). */
  chart?: boolean;
  /** Outside a kernel, where lines go (default `console.log`). */
  log?: (line: string) => void;
  /** Prefix of the display ids (default a random one per call). */
  id?: string;
}

/**
 * Progress for a notebook: one live status display and one chart per run,
 * updated in place (see the module documentation). Outside a Jupyter kernel
 * it prints plain lines instead.
 *
 * @example Needs a Jupyter kernel and training data, so it is not run by `deno test --doc`.
 * ```ts ignore
 * import { notebookProgress } from "./progress.ts";
 * const result = await trainModel({ ...options, callbacks: notebookProgress() });
 * ```
 */
export function notebookProgress(
  options: NotebookProgressOptions = {},
): TrainCallbacks {
  const jupyter = options.jupyter ?? kernelDisplay();
  if (!jupyter) {
    return terminalProgress({
      bar: false,
      ...(options.log ? { log: options.log } : {}),
    });
  }
  const throttle = options.throttleMs ?? 500;
  const chart = options.chart ?? true;
  const id = options.id ?? `train-${crypto.randomUUID().slice(0, 8)}`;
  const statusId = `${id}-status`;
  const chartId = `${id}-chart`;
  const tracker = new Tracker();
  let shown = false;
  let chartShown = false;
  let last = 0;
  const show = async (force: boolean) => {
    const now = Date.now();
    if (!force && now - last < throttle) return;
    last = now;
    await jupyter.display(progressDisplay(tracker.state), {
      display_id: statusId,
      ...(shown ? { update: true } : {}),
    });
    shown = true;
  };
  const showChart = async () => {
    if (!chart) return;
    await jupyter.display(
      historyChart(tracker.state.history, {
        title: tracker.state.run ? `Training ${tracker.state.run}` : undefined,
      }),
      { display_id: chartId, ...(chartShown ? { update: true } : {}) },
    );
    chartShown = true;
  };
  return {
    async onTrainBegin(info) {
      tracker.begin(info);
      await show(true);
      await showChart();
    },
    async onBatchEnd(info) {
      tracker.batch(info);
      await show(false);
    },
    async onEpochEnd(info) {
      tracker.epochEnd(info);
      await show(true);
      await showChart();
    },
    async onTrainEnd(info) {
      tracker.end(info);
      await show(true);
      await showChart();
    },
    onLog(message) {
      tracker.message(message);
    },
  };
}
