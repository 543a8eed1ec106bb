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
import { figure, type Trace } from "../core/plot.ts";
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

/** Options for {@linkcode historyChart}. */
export interface HistoryChartOptions {
  /** Title; default "Training history". */
  title?: string;
  /**
   * Number of classes: draws the chance lines, accuracy 1/k (always guessing
   * one class of k balanced ones) and loss ln k (a uniform guess). Without
   * it, no chance lines.
   */
  numClasses?: number;
}

type HistoryKey = "loss" | "acc" | "val_loss" | "val_acc" | "lr";

/** One line of the history chart, on subplot `axis` (1 loss, 2 accuracy, 3 learning rate). */
function historySeries(
  history: readonly EpochRecord[],
  options: { key: HistoryKey; name: string; axis: 1 | 2 | 3; dash: boolean },
): Trace {
  const suffix = options.axis === 1 ? "" : String(options.axis);
  const validation = options.key.startsWith("val_");
  return {
    type: "scatter",
    mode: "lines+markers",
    name: options.name,
    x: history.map((r) => r.epoch),
    y: history.map((r) => r[options.key]),
    xaxis: `x${suffix}`,
    yaxis: `y${suffix}`,
    line: {
      dash: options.dash ? "dash" : "solid",
      color: options.key === "lr"
        ? "#7f8c8d"
        : validation
        ? "#e67e22"
        : "#2e86de",
    },
    legendgroup: options.key === "lr"
      ? "lr"
      : validation
      ? "validation"
      : "training",
  };
}

/** The chance lines (loss ln k, accuracy 1/k) across the epochs shown. */
function chanceLines(
  history: readonly EpochRecord[],
  numClasses: number,
): Trace[] {
  const epochs = history.map((r) => r.epoch);
  const first = epochs.length ? Math.min(...epochs) : 1;
  const last = epochs.length ? Math.max(...epochs) : 1;
  const x = first === last ? [first - 0.5, last + 0.5] : [first, last];
  const line = (name: string, y: number, axis: "" | "2"): Trace => ({
    type: "scatter",
    mode: "lines",
    name,
    x,
    y: [y, y],
    xaxis: `x${axis}`,
    yaxis: `y${axis}`,
    line: { dash: "dot", color: "gray", width: 1.5 },
    legendgroup: "chance",
    hovertemplate: `${name}: %{y:.3f}<extra></extra>`,
  });
  return [
    line(`chance loss (ln ${numClasses})`, Math.log(numClasses), ""),
    line(`chance accuracy (1/${numClasses})`, 1 / numClasses, "2"),
  ];
}

/**
 * A Plotly chart of a run's history per epoch, three plots side by side:
 * loss and accuracy (training solid, validation dashed) and the learning
 * rate each epoch used. Given the number of classes, dotted
 * chance lines: accuracy 1/k and loss ln k. The legend stands to the right
 * of the plots, clear of the axes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { historyChart } from "./progress.ts";
 * import { JUPYTER_DISPLAY } from "../core/display.ts";
 * import { type Figure, PLOTLY_MIME } from "../core/plot.ts";
 * const record = { epoch: 1, loss: 1.2, acc: 0.5, val_loss: 1.1, val_acc: 0.55, lr: 0.001, seconds: 12, trainSeconds: 10, imagesPerSecond: 320 };
 * const chart = historyChart([record, { ...record, epoch: 2, lr: 0.0005 }], { numClasses: 4 });
 * const bundle = chart[JUPYTER_DISPLAY]();
 * assert.match(String(bundle["text/plain"]), /^Training history: 2 epochs; last: loss 1\.2000/);
 * const traces = (bundle[PLOTLY_MIME] as Figure).data;
 * const byName = (name: string) => traces.find((t) => t.name === name);
 * assert.deepEqual(byName("learning rate")?.y, [0.001, 0.0005]);
 * assert.deepEqual(byName("chance accuracy (1/4)")?.y, [0.25, 0.25]);
 * assert.deepEqual(byName("chance loss (ln 4)")?.y, [Math.log(4), Math.log(4)]);
 * ```
 */
export function historyChart(
  history: readonly EpochRecord[],
  options: HistoryChartOptions = {},
): Displayable {
  const series = (
    key: HistoryKey,
    name: string,
    axis: 1 | 2 | 3,
    dash = false,
  ) => historySeries(history, { key, name, axis, dash });
  const last = history.at(-1);
  const text = `${options.title ?? "Training history"}: ${history.length} ` +
    `epoch${history.length === 1 ? "" : "s"}` +
    (last
      ? `; last: loss ${num(last.loss)}, acc ${num(last.acc)}, ` +
        `val_loss ${num(last.val_loss)}, val_acc ${num(last.val_acc)}, ` +
        `lr ${lrText(last.lr)}`
      : "");
  const k = options.numClasses;
  return figure({
    data: [
      series("loss", "train loss", 1),
      series("val_loss", "val loss", 1, true),
      series("acc", "train accuracy", 2),
      series("val_acc", "val accuracy", 2, true),
      series("lr", "learning rate", 3),
      ...(k && k > 1 ? chanceLines(history, k) : []),
    ],
    layout: historyLayout(options.title ?? "Training history"),
  }, { text });
}

/** Three plots in a row with room between them for tick labels and titles, the legend to their right. */
function historyLayout(title: string): Record<string, unknown> {
  const epochAxis = (domain: [number, number], anchor: string) => ({
    title: { text: "epoch" },
    dtick: 1,
    automargin: true,
    domain,
    anchor,
  });
  return {
    title: { text: title },
    xaxis: epochAxis([0, 0.26], "y"),
    yaxis: { title: { text: "loss" }, automargin: true, rangemode: "tozero" },
    xaxis2: epochAxis([0.37, 0.63], "y2"),
    yaxis2: {
      title: { text: "accuracy" },
      range: [0, 1],
      automargin: true,
      anchor: "x2",
    },
    xaxis3: epochAxis([0.74, 1], "y3"),
    yaxis3: {
      title: { text: "learning rate" },
      rangemode: "tozero",
      tickformat: ".0e",
      nticks: 5,
      automargin: true,
      anchor: "x3",
    },
    height: 380,
    legend: {
      orientation: "v",
      x: 1.02,
      xanchor: "left",
      y: 1,
      yanchor: "top",
    },
  };
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
  let numClasses: number | undefined;
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
        numClasses,
      }),
      { display_id: chartId, ...(chartShown ? { update: true } : {}) },
    );
    chartShown = true;
  };
  return {
    async onTrainBegin(info) {
      tracker.begin(info);
      numClasses = info.config.classes.length;
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
