import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { readCheckpointState } from "./checkpoint.ts";
import { buildModel } from "../model/models.ts";
import { useNativeKernels } from "../model/native_kernels.ts";
import { projectPaths } from "../core/paths.ts";
import { loadSavedModel } from "../model/saved_model.ts";
import { type LayersModel, type Tensor, tf } from "../core/tf.ts";
import {
  batchTensor,
  cosineLearningRate,
  crossEntropy,
  type EpochRecord,
  evaluateSplit,
  readRunManifest,
  resolveClassWeights,
  runPaths,
  seedDropoutLayers,
  trainModel,
  type TrainOptions,
  type TrainResult,
  type TrainSplit,
  type TrainState,
} from "./train.ts";

const SIZE = 32;
const CLASSES = ["a", "b", "c", "d"];

/**
 * A tiny learnable problem: 32×32 noisy images with a bright square in the
 * quadrant of the class. `jitter` moves the square by up to that many pixels.
 */
function quadrants(n: number, seed: number, jitter = 2): TrainSplit {
  const pixels = new Uint8Array(n * SIZE * SIZE);
  const labels = new Int32Array(n);
  let s = seed;
  const rand = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < n; i++) {
    const label = i % 4;
    labels[i] = label;
    const ox = (label % 2) * 16 + Math.floor(rand() * (2 * jitter + 1)) -
      jitter;
    const oy = Math.floor(label / 2) * 16 +
      Math.floor(rand() * (2 * jitter + 1)) - jitter;
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const inside = x >= ox + 4 && x < ox + 12 && y >= oy + 4 && y < oy + 12;
        pixels[i * SIZE * SIZE + y * SIZE + x] = Math.floor(
          (inside ? 170 : 20) + 80 * rand(),
        );
      }
    }
  }
  return { pixels, labels };
}

const TRAIN = quadrants(64, 1);
const VALIDATION = quadrants(24, 2);

function base(extra: Partial<TrainOptions> = {}): TrainOptions {
  return {
    train: TRAIN,
    validation: VALIDATION,
    classes: CLASSES,
    size: SIZE,
    epochs: 3,
    batchSize: 8,
    seed: 5,
    ...extra,
  };
}

function weightsOf(model: LayersModel): Float32Array[] {
  return model.getWeights().map((t) => t.dataSync() as Float32Array);
}

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  assert.equal(a.length, b.length);
  let max = 0;
  a.forEach((x, i) => {
    assert.equal(x.length, b[i].length);
    for (let j = 0; j < x.length; j++) {
      max = Math.max(max, Math.abs(x[j] - b[i][j]));
    }
  });
  return max;
}

/** A run aborted during its second epoch (model disposed). */
async function abortedRun(
  extra: Partial<TrainOptions>,
): Promise<TrainResult> {
  const controller = new AbortController();
  const aborted = await trainModel(base({
    ...extra,
    callbacks: {
      onBatchEnd: (info) => {
        if (info.epoch === 1 && info.batch === 3) controller.abort();
      },
    },
    signal: controller.signal,
  }));
  aborted.model.dispose();
  return aborted;
}

/**
 * Trains one epoch into `runDir`, then rewrites the checkpoint's config with
 * `edit`, as a version of the run format before a setting existed wrote it.
 */
async function olderRun(
  runDir: string,
  extra: Partial<TrainOptions>,
  edit: (config: Record<string, unknown>) => void,
) {
  const first = await trainModel(base({
    epochs: 1,
    runDir,
    earlyStopping: false,
    ...extra,
  }));
  first.model.dispose();
  const file = join(runPaths(runDir).checkpoint, "state.json");
  const saved = JSON.parse(await Deno.readTextFile(file));
  edit(saved.state.config);
  await Deno.writeTextFile(file, JSON.stringify(saved));
}

/** Resumes the run in `runDir` up to `epochs`, without early stopping. */
function resumeRun(
  runDir: string,
  epochs: number,
  extra: Partial<TrainOptions> = {},
): Promise<TrainResult> {
  return trainModel(base({
    epochs,
    runDir,
    resume: true,
    earlyStopping: false,
    ...extra,
  }));
}

async function withTemp(body: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "train_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// Kernels are swapped once per process; take tensor counts after that.
useNativeKernels();

Deno.test("trainModel learns a tiny problem, without leaking tensors across epochs", async () => {
  const start = tf.memory().numTensors;
  const counts: number[] = [];
  const result = await trainModel(base({
    epochs: 6,
    augment: false,
    learningRate: 2e-3,
    callbacks: {
      onEpochEnd: () => {
        counts.push(tf.memory().numTensors);
      },
    },
  }));
  const h = result.history;
  assert.equal(h.length, 6);
  assert.ok(
    h[5].loss < 0.6 * h[0].loss,
    `loss ${h.map((r) => r.loss.toFixed(3))}`,
  );
  assert.ok(result.best!.val_acc! >= 0.9, `val_acc ${result.best!.val_acc}`);
  // Adam's moments appear at the first step; after that the count is flat
  assert.equal(new Set(counts).size, 1, `numTensors per epoch ${counts}`);
  const evaluated = await evaluateSplit(result.model, VALIDATION, {
    size: SIZE,
  });
  assert.equal(evaluated.acc, result.best!.val_acc);
  assert.ok(Math.abs(evaluated.loss - result.best!.val_loss!) < 1e-6);
  assert.equal(tf.memory().numTensors, counts[0]);
  result.model.dispose();
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("two runs with the same seed give identical weights; another seed does not", async () => {
  // augmentation and dropout (seedCnn has Dropout(0.5)) both on
  const run = async (seed: number) => {
    const r = await trainModel(
      base({ epochs: 2, seed, restoreBestWeights: false }),
    );
    const w = weightsOf(r.model);
    const history = r.history.map(({ loss, acc, val_loss, val_acc }) => ({
      loss,
      acc,
      val_loss,
      val_acc,
    }));
    r.model.dispose();
    return { w, history };
  };
  const a = await run(5);
  const b = await run(5);
  const c = await run(6);
  const same = maxAbsDiff(a.w, b.w);
  console.log(`same seed: max |Δw| = ${same}`);
  assert.ok(same <= 1e-6, `same seed, max |Δw| = ${same}`);
  assert.deepEqual(a.history, b.history);
  assert.ok(maxAbsDiff(a.w, c.w) > 1e-3);
});

Deno.test("seedDropoutLayers: the same (seed, epoch, batch) gives the same mask, another batch another", () => {
  const model = buildModel("seedCnn", {
    inputSize: SIZE,
    channels: 1,
    numClasses: 4,
    seed: 1,
  });
  const x = batchTensor(TRAIN.pixels, [0, 1, 2, 3], SIZE);
  const out = (epoch: number, batch: number) => {
    assert.equal(seedDropoutLayers(model, { seed: 9, epoch, batch }), 1);
    const y = model.apply(x, { training: true }) as Tensor;
    const v = Array.from(y.dataSync());
    y.dispose();
    return v;
  };
  const first = out(0, 0);
  assert.deepEqual(out(0, 0), first);
  assert.notDeepEqual(out(0, 1), first);
  assert.notDeepEqual(out(1, 0), first);
  // dropout really is active in training mode and off in inference
  const inference = model.predict(x) as Tensor;
  assert.notDeepEqual(Array.from(inference.dataSync()), first);
  tf.dispose([x, inference]);
  model.dispose();
});

Deno.test("early stopping fires and reduce-on-plateau lowers the learning rate", async () => {
  // A learning rate too small to move the loss by minDelta: no improvement
  // ever counts after the first epoch.
  const lr = 1e-8;
  const result = await trainModel(base({
    epochs: 20,
    learningRate: lr,
    augment: false,
    earlyStopping: { patience: 3, minDelta: 0.01 },
    reduceLrOnPlateau: {
      patience: 1,
      factor: 0.5,
      minLr: 1e-12,
      minDelta: 0.01,
    },
  }));
  result.model.dispose();
  assert.equal(result.stopReason, "early-stopping");
  assert.equal(result.history.length, 4); // best at 1, then 3 without improvement
  assert.deepEqual(
    result.history.map((r: EpochRecord) => r.lr),
    [lr, lr, lr / 2, lr / 4],
  );
});

Deno.test("cosine decay sets each epoch's learning rate; a time budget stops the run", async () => {
  assert.equal(
    cosineLearningRate({ learningRate: 1e-3, minLr: 0, epoch: 0, epochs: 4 }),
    1e-3,
  );
  assert.ok(
    Math.abs(
      cosineLearningRate({
        learningRate: 1e-3,
        minLr: 1e-5,
        epoch: 2,
        epochs: 4,
      }) -
        (1e-5 + (1e-3 - 1e-5) / 2),
    ) < 1e-12,
  );
  const cosine = await trainModel(base({
    epochs: 4,
    learningRate: 1e-3,
    augment: false,
    earlyStopping: false,
    cosineDecay: { minLr: 0 },
  }));
  cosine.model.dispose();
  assert.equal(cosine.config.reduceLrOnPlateau, false);
  const expected = [0, 1, 2, 3].map((epoch) =>
    cosineLearningRate({ learningRate: 1e-3, minLr: 0, epoch, epochs: 4 })
  );
  cosine.history.forEach((r: EpochRecord, i: number) =>
    assert.ok(Math.abs(r.lr - expected[i]) < 1e-12, `epoch ${i + 1}: ${r.lr}`)
  );
  await assert.rejects(
    trainModel(base({ cosineDecay: true, reduceLrOnPlateau: { patience: 2 } })),
    /cosineDecay and reduceLrOnPlateau cannot both be on/,
  );
  // Any real epoch is longer than half a millisecond: one epoch, then stop.
  const budget = await trainModel(base({ epochs: 5, maxSeconds: 0.001 }));
  budget.model.dispose();
  assert.equal(budget.stopReason, "time-budget");
  assert.equal(budget.history.length, 1);
});

Deno.test("cosine decay over a time budget: each epoch's rate follows the seconds spent before it", async () => {
  const maxSeconds = 600;
  const result = await trainModel(base({
    epochs: 3,
    learningRate: 1e-3,
    augment: false,
    earlyStopping: false,
    cosineDecay: { minLr: 1e-5, over: "time" },
    maxSeconds,
  }));
  result.model.dispose();
  assert.deepEqual(result.config.cosineDecay, { minLr: 1e-5, over: "time" });
  assert.equal(result.history.length, 3);
  let spent = 0;
  for (const r of result.history) {
    const expected = cosineLearningRate({
      learningRate: 1e-3,
      minLr: 1e-5,
      epoch: spent,
      epochs: maxSeconds,
    });
    assert.ok(Math.abs(r.lr - expected) < 1e-15, `epoch ${r.epoch}: ${r.lr}`);
    spent += r.seconds;
  }
  // Real epochs take time: the rate has left its start, unlike an epoch
  // decay over 3 epochs it is not a third of the way down.
  assert.equal(result.history[0].lr, 1e-3);
  assert.ok(result.history[2].lr < 1e-3 && result.history[2].lr > 9e-4);
  // Past the budget the decay stays at its floor.
  assert.equal(
    cosineLearningRate({
      learningRate: 1e-3,
      minLr: 1e-5,
      epoch: 2 * maxSeconds,
      epochs: maxSeconds,
    }),
    1e-5,
  );
  await assert.rejects(
    trainModel(base({ cosineDecay: { over: "time" } })),
    /cosineDecay over "time" needs a time budget \(maxSeconds\)/,
  );
  await assert.rejects(
    trainModel(base({
      cosineDecay: { over: "steps" as "time" },
      maxSeconds: 60,
    })),
    /cosineDecay.over must be "epochs" or "time" \(got "steps"\)/,
  );
});

Deno.test("a run saved before cosineDecay.over existed resumes as a decay over epochs", async () => {
  await withTemp(async (dir) => {
    const runDir = join(dir, "run");
    await olderRun(runDir, { cosineDecay: { minLr: 0 } }, (config) => {
      assert.deepEqual(config.cosineDecay, { minLr: 0, over: "epochs" });
      config.cosineDecay = { minLr: 0 };
    });
    const resumed = await resumeRun(runDir, 2, { cosineDecay: { minLr: 0 } });
    resumed.model.dispose();
    assert.equal(resumed.history.length, 2);
    assert.equal(
      resumed.history[1].lr,
      cosineLearningRate({ learningRate: 1e-3, minLr: 0, epoch: 1, epochs: 2 }),
    );
    // A decay over time is a different schedule: refused.
    await assert.rejects(
      resumeRun(runDir, 3, {
        cosineDecay: { minLr: 0, over: "time" },
        maxSeconds: 600,
      }),
      /the settings differ \(cosineDecay: \{"minLr":0,"over":"epochs"\} in the run/,
    );
  });
});

Deno.test("ema: the saved and validated weights are the moving average of the live ones; nothing leaks", async () => {
  const start = tf.memory().numTensors;
  const model = buildModel("seedCnn", {
    inputSize: SIZE,
    channels: 1,
    numClasses: 4,
    seed: 5,
  });
  const decay = 0.9;
  let average: Float64Array[] = [];
  let last: Float32Array[] = [];
  let updates = 0;
  const result = await trainModel(base({
    model,
    epochs: 2,
    restoreBestWeights: false,
    ema: { decay },
    callbacks: {
      onTrainBegin: () => {
        average = weightsOf(model).map((w) => Float64Array.from(w));
      },
      onBatchEnd: () => {
        // The live weights after this batch's step.
        last = weightsOf(model);
        const d = Math.min(decay, (1 + updates) / (10 + updates));
        updates++;
        average.forEach((a, i) => {
          for (let j = 0; j < a.length; j++) {
            a[j] = d * a[j] + (1 - d) * last[i][j];
          }
        });
      },
    },
  }));
  assert.deepEqual(result.config.ema, { decay });
  assert.equal(updates, 16);
  const final = weightsOf(result.model);
  const expected = average.map((a) => Float32Array.from(a));
  assert.ok(
    maxAbsDiff(final, expected) < 1e-5,
    `${maxAbsDiff(final, expected)}`,
  );
  // The average is not the live weights...
  assert.ok(maxAbsDiff(final, last) > 1e-3, `${maxAbsDiff(final, last)}`);
  // ...and validation measured the average.
  const evaluated = await evaluateSplit(result.model, VALIDATION, {
    size: SIZE,
  });
  assert.ok(
    Math.abs(evaluated.loss - result.history[1].val_loss!) < 1e-6,
    `${evaluated.loss} vs ${result.history[1].val_loss}`,
  );
  model.dispose();
  assert.equal(tf.memory().numTensors, start);
  await assert.rejects(
    trainModel(base({ ema: { decay: 1 } })),
    /ema.decay must be in \(0, 1\) \(got 1\)/,
  );
});

Deno.test("ema: an aborted run resumes its moving average and ends where an uninterrupted run does", async () => {
  await withTemp(async (dir) => {
    const options = { epochs: 3, ema: { decay: 0.95 } };
    const straight = await trainModel(
      base({ ...options, runDir: join(dir, "straight") }),
    );
    const aborted = await abortedRun({
      ...options,
      runDir: join(dir, "resumed"),
    });
    assert.equal(aborted.stopReason, "aborted");
    const resumed = await trainModel(
      base({ ...options, runDir: join(dir, "resumed"), resume: true }),
    );
    assert.equal(resumed.resumedFrom, 1);
    assert.deepEqual(
      resumed.history.map((r) => r.val_loss),
      straight.history.map((r) => r.val_loss),
    );
    assert.equal(
      maxAbsDiff(weightsOf(resumed.model), weightsOf(straight.model)),
      0,
    );
    straight.model.dispose();
    resumed.model.dispose();
    // A checkpoint without its average cannot be resumed with ema.
    await Deno.remove(
      join(runPaths(join(dir, "straight")).checkpoint, "ema.bin"),
    );
    await assert.rejects(
      trainModel(base({
        ...options,
        epochs: 4,
        runDir: join(dir, "straight"),
        resume: true,
      })),
      /its checkpoint has no ema.bin/,
    );
  });
});

Deno.test("weight decay: after a step the kernels are scaled by 1 - lr · decay, biases untouched", async () => {
  // One batch: both runs take the same first gradient step from the same
  // initial weights; the decay is applied after it.
  const one = (weightDecay: number) =>
    trainModel(base({
      epochs: 1,
      batchSize: 64,
      augment: false,
      earlyStopping: false,
      restoreBestWeights: false,
      learningRate: 1e-3,
      weightDecay,
    }));
  const plain = await one(0);
  const decayed = await one(100); // lr · decay = 0.1
  assert.equal(decayed.config.weightDecay, 100);
  const p = weightsOf(plain.model);
  const d = weightsOf(decayed.model);
  let kernels = 0;
  plain.model.weights.forEach((w, i) => {
    const expected = w.shape.length >= 2
      ? Float32Array.from(p[i], (x) => x * 0.9)
      : p[i];
    if (w.shape.length >= 2) kernels++;
    const max = maxAbsDiff([d[i]], [expected]);
    assert.ok(max < 1e-6, `${w.name}: max |Δ| ${max}`);
  });
  assert.equal(kernels, 5); // seedCnn: 3 convolutions, 2 dense layers
  plain.model.dispose();
  decayed.model.dispose();
  await assert.rejects(
    trainModel(base({ weightDecay: -1 })),
    /weightDecay must be a number >= 0 \(got -1\)/,
  );
});

Deno.test("crossEntropy: label smoothing targets 1 - ε + ε/k and ε/k", () => {
  const start = tf.memory().numTensors;
  const probs = [[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]];
  const [plain, smooth] = tf.tidy(() => {
    const p = tf.tensor2d(probs);
    const y = tf.tensor1d([0, 2], "int32");
    return [
      crossEntropy(p, y).arraySync() as number[],
      crossEntropy(p, y, { labelSmoothing: 0.2 }).arraySync() as number[],
    ];
  });
  assert.equal(tf.memory().numTensors, start);
  const close = (a: number, b: number) =>
    assert.ok(Math.abs(a - b) < 1e-6, `${a} vs ${b}`);
  close(plain[0], -Math.log(0.7));
  close(smooth[0], -(0.85 * Math.log(0.7) + 0.15 * Math.log(0.1)));
  // A uniform guess costs ln 4 whatever the target.
  close(plain[1], Math.log(4));
  close(smooth[1], Math.log(4));
});

Deno.test("label smoothing: the training loss stays above the target's entropy; validation loss is plain", async () => {
  const run = (labelSmoothing: number) =>
    trainModel(base({
      epochs: 6,
      augment: false,
      learningRate: 2e-3,
      earlyStopping: false,
      labelSmoothing,
    }));
  const plain = await run(0);
  const smoothed = await run(0.2);
  // Entropy of the target (0.85, 0.05, 0.05, 0.05): no model can go below it.
  const floor = -(0.85 * Math.log(0.85) + 3 * 0.05 * Math.log(0.05));
  assert.ok(
    plain.history[5].loss < floor,
    `plain loss ${plain.history[5].loss} should fall below ${floor}`,
  );
  for (const r of smoothed.history) {
    assert.ok(r.loss >= floor, `epoch ${r.epoch}: loss ${r.loss} < ${floor}`);
  }
  assert.equal(smoothed.config.labelSmoothing, 0.2);
  // The validation loss is the plain cross-entropy of the model's output.
  const evaluated = await evaluateSplit(smoothed.model, VALIDATION, {
    size: SIZE,
  });
  assert.ok(
    Math.abs(evaluated.loss - smoothed.best!.val_loss!) < 1e-6,
    `${evaluated.loss} vs ${smoothed.best!.val_loss}`,
  );
  plain.model.dispose();
  smoothed.model.dispose();
  await assert.rejects(
    trainModel(base({ labelSmoothing: 1 })),
    /labelSmoothing must be in \[0, 1\) \(got 1\)/,
  );
});

Deno.test("a run saved before weightDecay and labelSmoothing existed resumes with both off, and refuses them on", async () => {
  await withTemp(async (dir) => {
    const runDir = join(dir, "run");
    await olderRun(runDir, {}, (config) => {
      assert.equal(config.weightDecay, 0);
      assert.equal(config.labelSmoothing, 0);
      delete config.weightDecay;
      delete config.labelSmoothing;
    });
    const resumed = await resumeRun(runDir, 2);
    resumed.model.dispose();
    assert.equal(resumed.history.length, 2);
    for (
      const [extra, message] of [
        [{ weightDecay: 0.05 }, /weightDecay: 0 in the run, 0\.05 now/],
        [{ labelSmoothing: 0.1 }, /labelSmoothing: 0 in the run, 0\.1 now/],
      ] as const
    ) {
      await assert.rejects(
        resumeRun(runDir, 3, extra),
        message,
      );
    }
  });
});

Deno.test("class weights change the loss; balanced weights follow n / (k · n_c)", async () => {
  assert.deepEqual(
    resolveClassWeights("balanced", ["x", "y"], new Int32Array([0, 0, 0, 1])),
    { x: 4 / 6, y: 2 },
  );
  assert.deepEqual(
    resolveClassWeights({ y: 3 }, ["x", "y"], new Int32Array([0, 1])),
    { x: 1, y: 3 },
  );
  assert.throws(
    () => resolveClassWeights({ z: 3 }, ["x", "y"], new Int32Array([0, 1])),
    /unknown class "z"/,
  );
  const lossWith = async (classWeights?: TrainOptions["classWeights"]) => {
    const r = await trainModel(base({
      epochs: 1,
      augment: false,
      ...(classWeights ? { classWeights } : {}),
    }));
    r.model.dispose();
    return r.history[0];
  };
  const plain = await lossWith();
  const balanced = await lossWith("balanced"); // balanced data: all weights 1
  const weighted = await lossWith({ a: 4, b: 0.25 });
  assert.equal(balanced.loss, plain.loss);
  assert.notEqual(weighted.loss, plain.loss);
  assert.ok(Math.abs(weighted.loss - plain.loss) > 0.05);
  // validation loss is never weighted
  assert.ok(Number.isFinite(weighted.val_loss));
});

/** The files of a finished two-epoch run in `runDir` and what they say. */
async function assertRunFolder(runDir: string, result: TrainResult) {
  const paths = runPaths(runDir);
  assert.deepEqual(readdirSync(runDir).sort(), [
    "checkpoint",
    "history.json",
    "manifest.json",
    "model",
  ]);
  const history = JSON.parse(await Deno.readTextFile(paths.history));
  assert.deepEqual(
    Object.keys(history[0]).sort(),
    [
      "acc",
      "epoch",
      "imagesPerSecond",
      "loss",
      "lr",
      "seconds",
      "trainSeconds",
      "val_acc",
      "val_loss",
    ],
  );
  const manifest = await readRunManifest(runDir);
  assert.equal(manifest.status, "completed");
  assert.equal(manifest.config.arch, "seedCnn");
  assert.equal(manifest.config.seed, 5);
  assert.deepEqual(manifest.config.classWeights, { a: 1, b: 1, c: 1, d: 1 });
  assert.equal(manifest.data.fingerprint, "fp-1");
  assert.deepEqual(manifest.data.classes, CLASSES);
  assert.equal(manifest.versions["tfjs-node"], "4.22.0");
  assert.equal(manifest.metrics.bestEpoch, result.best!.epoch);
  assert.equal(manifest.extra.note, "test");
  assert.ok(manifest.timings.msPerImagePerEpoch > 0);

  // the saved model is the best epoch's, and it predicts like result.model
  const loaded = await loadSavedModel(paths.model);
  assert.deepEqual(loaded.metadata.classes, CLASSES);
  assert.equal(loaded.metadata.training.bestEpoch, result.best!.epoch);
  assert.equal(loaded.metadata.metrics.val_acc, result.best!.val_acc);
  const again = await evaluateSplit(loaded.model, VALIDATION, { size: SIZE });
  assert.equal(again.acc, result.best!.val_acc);
  loaded.model.dispose();

  const state = await readCheckpointState<TrainState>(paths.checkpoint);
  assert.equal(state.epochsCompleted, 2);
}

/** What trainModel refuses around the two-epoch run in `runDir`. */
async function assertRunRefusals(dir: string, runDir: string) {
  await assert.rejects(
    trainModel(base({ epochs: 2, runDir, datasetFingerprint: "fp-1" })),
    /already holds a training run \(checkpoint after epoch 2 of 2\)/,
  );
  await assert.rejects(
    trainModel(base({
      epochs: 3,
      runDir,
      resume: true,
      datasetFingerprint: "fp-1",
      classWeights: "balanced",
      batchSize: 4,
    })),
    /cannot resume .*: the settings differ \(batchSize: 8 in the run, 4 now/,
  );
  await assert.rejects(
    trainModel(base({
      epochs: 3,
      runDir,
      resume: true,
      classWeights: "balanced",
      datasetFingerprint: "fp-2",
    })),
    /cannot resume .*: the dataset differs/,
  );
  await Deno.mkdir(join(dir, "other"));
  await Deno.writeTextFile(join(dir, "other", "x"), "");
  await assert.rejects(
    trainModel(base({ runDir: join(dir, "other") })),
    /exists and is not empty \(but holds no checkpoint to resume\)/,
  );
}

Deno.test("a run folder holds the best model, history, manifest and checkpoint; it is not overwritten", async () => {
  await withTemp(async (dir) => {
    const runDir = join(dir, "run");
    const result = await trainModel(base({
      epochs: 2,
      runDir,
      datasetFingerprint: "fp-1",
      classWeights: "balanced",
      manifestExtra: { note: "test" },
    }));
    await assertRunFolder(runDir, result);
    result.model.dispose();
    await assertRunRefusals(dir, runDir);
  });
});

Deno.test("an aborted run keeps its last checkpoint and resumes from it", async () => {
  await withTemp(async (dir) => {
    const runDir = join(dir, "run");
    const aborted = await abortedRun({ epochs: 3, runDir });
    assert.equal(aborted.stopReason, "aborted");
    assert.equal(aborted.history.length, 1);
    assert.equal((await readRunManifest(runDir)).status, "aborted");
    const resumed = await trainModel(base({ epochs: 3, runDir, resume: true }));
    resumed.model.dispose();
    assert.equal(resumed.resumedFrom, 1);
    assert.equal(resumed.history.length, 3);
    assert.equal(resumed.stopReason, "completed");
    assert.equal((await readRunManifest(runDir)).resumes.length, 1);
  });
});

/** Writes the tiny problem's splits into `dir`, for a child process. */
async function writeSplits(dir: string) {
  const write = (name: string, data: Uint8Array | Int32Array) =>
    Deno.writeFile(
      join(dir, name),
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
  await write("train.pixels", TRAIN.pixels);
  await write("train.labels", TRAIN.labels);
  await write("val.pixels", VALIDATION.pixels);
  await write("val.labels", VALIDATION.labels);
}

/**
 * Writes a child script that trains on the splits of `dir` into a run
 * folder (augmentation and dropout on; 8 batches per epoch). With "kill" it
 * stops in the middle of epoch 2 (after the checkpoint of epoch 1),
 * announces it, and waits to be killed.
 */
async function writeTrainingChild(dir: string): Promise<string> {
  const child = join(dir, "child.ts");
  await Deno.writeTextFile(
    child,
    `import { trainModel } from ${
      JSON.stringify(new URL("./train.ts", import.meta.url).href)
    };
const [dir, runDir, kill] = Deno.args;
const bytes = (n: string) => Deno.readFileSync(dir + "/" + n);
const split = (p: string) => ({
  pixels: bytes(p + ".pixels"),
  labels: new Int32Array(bytes(p + ".labels").buffer),
});
const result = await trainModel({
  train: split("train"), validation: split("val"), classes: ["a", "b", "c", "d"],
  size: 32, epochs: 3, batchSize: 8, seed: 21, runDir, resume: true,
  datasetFingerprint: "fp",
  callbacks: {
    onBatchEnd: async (info) => {
      if (kill === "kill" && info.epoch === 1 && info.batch === 4) {
        console.log("KILLME");
        await new Promise((r) => setTimeout(r, 120_000));
      }
    },
  },
});
console.log("DONE resumedFrom=" + result.resumedFrom);
`,
  );
  return child;
}

/** Starts the training child on `runDir`. */
function spawnTraining(
  child: string,
  dir: string,
  runDir: string,
  kill: boolean,
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      join(projectPaths().root, "deno.json"),
      child,
      dir,
      runDir,
      kill ? "kill" : "",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Waits for a child to end well; returns what it printed. */
async function finishChild(proc: Deno.ChildProcess): Promise<string> {
  const out = await proc.output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return text;
}

/** Kills (SIGKILL) a child once it says "KILLME", mid-way through epoch 2. */
async function killMidEpoch(proc: Deno.ChildProcess, runDir: string) {
  let seen = "";
  for await (const chunk of proc.stdout) {
    seen += new TextDecoder().decode(chunk);
    if (seen.includes("KILLME")) break;
  }
  const state = await readCheckpointState<TrainState>(
    runPaths(runDir).checkpoint,
  );
  assert.equal(state.epochsCompleted, 1); // mid-way through epoch 2
  proc.kill("SIGKILL");
  assert.equal((await proc.status).signal, "SIGKILL");
  await proc.stderr.cancel();
}

/** The last epoch's weights, the best model, Adam's state and the history agree. */
async function assertSameRuns(straight: string, killed: string) {
  const floats = async (path: string) => {
    const b = await Deno.readFile(path);
    return [new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4)];
  };
  const tolerance = 1e-5;
  const last = maxAbsDiff(
    await floats(join(runPaths(straight).checkpoint, "model.bin")),
    await floats(join(runPaths(killed).checkpoint, "model.bin")),
  );
  const best = maxAbsDiff(
    await floats(join(runPaths(straight).model, "weights.bin")),
    await floats(join(runPaths(killed).model, "weights.bin")),
  );
  const moments = maxAbsDiff(
    await floats(join(runPaths(straight).checkpoint, "optimizer.bin")),
    await floats(join(runPaths(killed).checkpoint, "optimizer.bin")),
  );
  console.log(
    `resume after SIGKILL: max |Δw| last epoch ${last}, best model ${best}, ` +
      `Adam state ${moments} (tolerance ${tolerance})`,
  );
  assert.ok(last <= tolerance, `last-epoch weights differ by ${last}`);
  assert.ok(best <= tolerance, `best weights differ by ${best}`);
  assert.ok(moments <= tolerance, `optimizer state differs by ${moments}`);
  const strip = (h: EpochRecord[]) =>
    h.map(({ epoch, loss, acc, val_loss, val_acc, lr }) => ({
      epoch,
      loss,
      acc,
      val_loss,
      val_acc,
      lr,
    }));
  const historyOf = async (run: string) =>
    strip(JSON.parse(await Deno.readTextFile(runPaths(run).history)));
  assert.deepEqual(await historyOf(killed), await historyOf(straight));
}

Deno.test("a run killed (SIGKILL) mid-epoch resumes to the same weights as an uninterrupted run", async () => {
  await withTemp(async (dir) => {
    await writeSplits(dir);
    const child = await writeTrainingChild(dir);
    const straight = join(dir, "straight");
    assert.match(
      await finishChild(spawnTraining(child, dir, straight, false)),
      /DONE resumedFrom=0/,
    );
    const killed = join(dir, "killed");
    await killMidEpoch(spawnTraining(child, dir, killed, true), killed);
    assert.match(
      await finishChild(spawnTraining(child, dir, killed, false)),
      /DONE resumedFrom=1/,
    );
    await assertSameRuns(straight, killed);
    assert.equal(existsSync(join(killed, "checkpoint")), true);
  });
});
