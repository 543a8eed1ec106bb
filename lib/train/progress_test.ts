import assert from "node:assert/strict";
import { JUPYTER_DISPLAY } from "../core/display.ts";
import { PLOTLY_MIME } from "../core/plot.ts";
import {
  epochLine,
  formatDuration,
  historyChart,
  type JupyterDisplay,
  notebookProgress,
  progressDisplay,
  type ProgressState,
  terminalProgress,
} from "./progress.ts";
import { tf } from "../core/tf.ts";
import {
  type EpochRecord,
  type TrainBeginInfo,
  trainModel,
  type TrainSplit,
} from "./train.ts";

const RECORDS: EpochRecord[] = [1, 2, 3].map((epoch) => ({
  epoch,
  loss: 1.4 - 0.3 * epoch,
  acc: 0.3 + 0.2 * epoch,
  val_loss: 1.3 - 0.25 * epoch,
  val_acc: 0.35 + 0.15 * epoch,
  lr: 1e-3,
  seconds: 10,
  trainSeconds: 9,
  imagesPerSecond: 100,
}));

/** Tiny learnable 32×32 images: a bright square in one of four quadrants. */
function quadrants(n: number, seed: number): TrainSplit {
  const size = 32;
  const pixels = new Uint8Array(n * size * size);
  const labels = new Int32Array(n);
  let s = seed;
  const rand = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < n; i++) {
    const label = i % 4;
    labels[i] = label;
    const ox = (label % 2) * 16;
    const oy = Math.floor(label / 2) * 16;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const inside = x >= ox + 3 && x < ox + 13 && y >= oy + 3 && y < oy + 13;
        pixels[i * size * size + y * size + x] = Math.min(
          255,
          Math.floor((inside ? 180 : 20) + 60 * rand()),
        );
      }
    }
  }
  return { pixels, labels };
}

Deno.test("formatDuration and epochLine", () => {
  assert.equal(formatDuration(42.4), "42s");
  assert.equal(formatDuration(185), "3m05s");
  assert.equal(formatDuration(3723), "1h02m");
  assert.equal(formatDuration(undefined), "–");
  assert.equal(
    epochLine(RECORDS[0], 12, { improved: true }),
    "epoch  1/12  loss 1.1000  acc 0.5000  val_loss 1.0500  val_acc 0.5000  " +
      "lr 1.0e-3  10.0 s  100 img/s  *best*",
  );
});

Deno.test("progressDisplay renders text/plain and text/html with the current numbers", () => {
  const state: ProgressState = {
    run: "demo<1>",
    status: "running",
    epoch: 4,
    epochs: 10,
    batch: 25,
    batches: 100,
    loss: 0.4321,
    acc: 0.8765,
    imagesPerSecond: 88.5,
    etaSeconds: 125,
    lr: 5e-4,
    history: RECORDS,
    best: RECORDS[2],
    messages: ["resuming after epoch 3"],
  };
  const bundle = progressDisplay(state)[JUPYTER_DISPLAY]();
  const text = bundle["text/plain"] as string;
  const html = bundle["text/html"] as string;
  for (
    const part of [
      "epoch 4/10",
      "batch 25/100",
      "loss 0.4321",
      "acc 0.8765",
      "val_acc 0.8000",
      "89 img/s",
      "ETA 2m05s",
      "resuming after epoch 3",
    ]
  ) {
    assert.ok(text.includes(part), `text lacks "${part}": ${text}`);
  }
  assert.match(html, /Training demo&lt;1&gt; — running/);
  assert.match(html, /width:32\.5%/); // 3 epochs + 25 % of the 4th, of 10
  assert.match(html, /<th[^>]*>ETA<\/th><td>2m05s<\/td>/);
  assert.match(html, /<th[^>]*>val accuracy<\/th><td>0\.8000<\/td>/);
});

Deno.test("historyChart is a Plotly bundle with loss and accuracy traces", () => {
  const bundle = historyChart(RECORDS, { title: "demo" })[JUPYTER_DISPLAY]();
  const spec = bundle[PLOTLY_MIME] as {
    data: { name: string; y: number[]; yaxis: string }[];
    layout: Record<string, unknown>;
  };
  assert.deepEqual(spec.data.map((t) => t.name), [
    "train loss",
    "val loss",
    "train accuracy",
    "val accuracy",
    "learning rate",
  ]);
  assert.deepEqual(spec.data[3].y, RECORDS.map((r) => r.val_acc));
  assert.equal(spec.data[2].yaxis, "y2");
  assert.deepEqual(spec.data[4].y, RECORDS.map((r) => r.lr));
  assert.equal(spec.data[4].yaxis, "y3");
  assert.ok(typeof bundle["text/html"] === "string");
  assert.match(bundle["text/plain"] as string, /demo: 3 epochs; last: loss/);
  // The legend stands right of the plots, clear of their axes.
  const legend = spec.layout.legend as { x: number; xanchor: string };
  assert.ok(legend.x > 1 && legend.xanchor === "left");
});

Deno.test("historyChart draws the chance lines given the number of classes", () => {
  const spec = historyChart(RECORDS, { numClasses: 4 })[JUPYTER_DISPLAY]()[
    PLOTLY_MIME
  ] as { data: { name: string; x: number[]; y: number[]; yaxis: string }[] };
  const accuracy = spec.data.find((t) => t.name === "chance accuracy (1/4)");
  const loss = spec.data.find((t) => t.name === "chance loss (ln 4)");
  assert.deepEqual(accuracy?.y, [0.25, 0.25]);
  assert.equal(accuracy?.yaxis, "y2");
  assert.deepEqual(loss?.y, [Math.log(4), Math.log(4)]);
  assert.equal(loss?.yaxis, "y");
  const epochs = RECORDS.map((r) => r.epoch);
  assert.deepEqual(accuracy?.x, [Math.min(...epochs), Math.max(...epochs)]);
  const without = historyChart(RECORDS)[JUPYTER_DISPLAY]()[PLOTLY_MIME] as {
    data: { name: string }[];
  };
  assert.ok(!without.data.some((t) => t.name.startsWith("chance")));
});

Deno.test("notebookProgress keeps one status display and one chart per run, updated in place and throttled", async () => {
  const calls: {
    bundle: Record<string, unknown>;
    options: { update?: boolean; display_id?: string };
  }[] = [];
  const jupyter: JupyterDisplay = {
    display(obj, options = {}) {
      const bundle = (obj as { [JUPYTER_DISPLAY](): Record<string, unknown> })[
        JUPYTER_DISPLAY
      ]();
      calls.push({ bundle, options });
      return Promise.resolve();
    },
  };
  const start = tf.memory().numTensors;
  const result = await trainModel({
    train: quadrants(48, 1),
    validation: quadrants(16, 2),
    classes: ["a", "b", "c", "d"],
    size: 32,
    epochs: 2,
    batchSize: 4,
    seed: 3,
    augment: false,
    callbacks: notebookProgress({ jupyter, id: "run1", throttleMs: 60_000 }),
  });
  result.model.dispose();
  assert.equal(tf.memory().numTensors, start);

  const ids = new Set(calls.map((c) => c.options.display_id));
  assert.deepEqual([...ids].sort(), ["run1-chart", "run1-status"]);
  for (const id of ids) {
    const mine = calls.filter((c) => c.options.display_id === id);
    assert.equal(
      mine[0].options.update,
      undefined,
      `${id}: first is a new display`,
    );
    assert.ok(mine.slice(1).every((c) => c.options.update === true));
  }
  const status = calls.filter((c) => c.options.display_id === "run1-status");
  // 12 batches per epoch; with a long throttle only begin, 2 epoch ends and
  // the end are shown
  assert.equal(status.length, 4);
  assert.match(
    status.at(-1)!.bundle["text/plain"] as string,
    /completed · epoch 2\/2/,
  );
  assert.ok(typeof status.at(-1)!.bundle["text/html"] === "string");
  const charts = calls.filter((c) => c.options.display_id === "run1-chart");
  assert.equal(charts.length, 4); // begin, 2 epochs, end
  const spec = charts.at(-1)!.bundle[PLOTLY_MIME] as {
    data: { x: number[]; name: string; y: number[] }[];
  };
  assert.deepEqual(spec.data[0].x, [1, 2]);
  // The run's four classes give the chance accuracy line.
  const chance = spec.data.find((t) => t.name === "chance accuracy (1/4)");
  assert.deepEqual(chance?.y, [0.25, 0.25]);
});

Deno.test("notebookProgress without throttling shows batches; without a kernel it prints lines", async () => {
  let shown = 0;
  const jupyter: JupyterDisplay = {
    display() {
      shown++;
    },
  };
  const callbacks = notebookProgress({ jupyter, throttleMs: 0, chart: false });
  const lines: string[] = [];
  const fallback = notebookProgress({ log: (l) => lines.push(l) });
  const result = await trainModel({
    train: quadrants(16, 1),
    validation: quadrants(8, 2),
    classes: ["a", "b", "c", "d"],
    size: 32,
    epochs: 1,
    batchSize: 4,
    augment: false,
    callbacks: [callbacks, fallback],
  });
  result.model.dispose();
  assert.equal(shown, 1 + 4 + 1 + 1); // begin, 4 batches, epoch end, end
  assert.match(lines[0], /^training seedCnn 32×32 on 16 images/);
  assert.match(lines[1], /^epoch 1\/1 {2}loss \d\.\d{4} {2}acc /);
  assert.match(lines[2], /^training completed after 1 epochs/);
});

Deno.test("terminalProgress prints a line per epoch and batch lines without a terminal", async () => {
  const lines: string[] = [];
  const result = await trainModel({
    train: quadrants(16, 1),
    validation: quadrants(8, 2),
    classes: ["a", "b", "c", "d"],
    size: 32,
    epochs: 2,
    batchSize: 8,
    augment: false,
    callbacks: terminalProgress({
      bar: false,
      lineEveryMs: 0,
      log: (l) => lines.push(l),
    }),
  });
  result.model.dispose();
  const batchLines = lines.filter((l) => l.startsWith("  epoch"));
  assert.equal(batchLines.length, 4);
  assert.match(
    batchLines[0],
    /epoch 1\/2 batch 1\/2 {2}loss .* img\/s {2}ETA /,
  );
  assert.equal(lines.filter((l) => /^epoch [12]\/2 {2}loss/.test(l)).length, 2);
});

Deno.test("the ETA of a run with a time budget ends with the budget, not after every epoch", () => {
  const lines: string[] = [];
  const progress = terminalProgress({
    bar: false,
    lineEveryMs: 0,
    log: (l) => lines.push(l),
  });
  const begin = (maxSeconds: number | null) =>
    progress.onTrainBegin!({
      config: { epochs: 200, maxSeconds } as TrainBeginInfo["config"],
      startEpoch: 0,
      batchesPerEpoch: 100,
      trainImages: 3200,
      validationImages: 0,
      history: [],
      learningRate: 1e-3,
    });
  // 10 batches in 10 s: 90 s left in this epoch, 100 s per later epoch.
  const batch = {
    epoch: 0,
    batch: 9,
    batches: 100,
    epochs: 200,
    loss: 1,
    acc: 0.5,
    seen: 320,
    seconds: 10,
    imagesPerSecond: 32,
  };
  begin(null);
  progress.onBatchEnd!(batch);
  assert.match(lines.at(-1)!, /ETA 5h33m$/); // 90 s + 199 · 100 s
  begin(600);
  progress.onBatchEnd!(batch);
  assert.match(lines.at(-1)!, /ETA 9m50s$/); // 600 s − the 10 s spent
  begin(50);
  progress.onBatchEnd!(batch);
  assert.match(lines.at(-1)!, /ETA 1m30s$/); // the epoch ends regardless
});
