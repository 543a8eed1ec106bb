import assert from "node:assert/strict";
import { join } from "node:path";
import { reportFromProbabilities } from "../evaluate/evaluate.ts";
import type { EvaluationReport } from "../evaluate/metrics.ts";
import { modelCard, writeModelCard } from "./model_card.ts";
import { buildModel } from "../model/models.ts";
import {
  defaultPreprocessing,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  type ModelMetadata,
  saveModel,
} from "../model/saved_model.ts";
import { generateSyntheticDataset } from "../data/synthetic.ts";

const CLASSES = ["glioma", "meningioma", "notumor", "pituitary"];

function metadata(): ModelMetadata {
  return {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    classes: CLASSES,
    inputSize: 32,
    channels: 1,
    preprocessing: defaultPreprocessing(32),
    arch: "seedCnn",
    training: {
      run: "tiny",
      epochs: 3,
      bestEpoch: 2,
      batchSize: 8,
      learningRate: 1e-3,
      seed: 7,
      augmentation: false,
      classWeights: null,
      split: { validation: 0.2, test: 0.25 },
    },
    datasetFingerprint: "f".repeat(64),
    metrics: {},
    createdAt: "2026-01-01T00:00:00.000Z",
  };
}

/** 8 scans: two glioma taken for meningioma, the rest right. */
function eightScans(): EvaluationReport {
  const labels = Int32Array.from([0, 0, 0, 1, 1, 2, 2, 3]);
  const predicted = [1, 1, 0, 1, 1, 2, 2, 3];
  const probabilities = new Float32Array(8 * 4).fill(0.1);
  predicted.forEach((p, i) => (probabilities[i * 4 + p] = 0.7));
  return reportFromProbabilities({ probabilities, labels, classes: CLASSES });
}

/** The card of the eight scans, with a run config and metadata. */
function cardOf(
  runConfig?: Record<string, unknown>,
  meta: ModelMetadata = metadata(),
): string {
  const full = eightScans();
  return modelCard({
    name: "tiny",
    metadata: meta,
    dataset: "test split of <data> (seed 7)",
    full,
    deduplicated: full,
    command: "deno task evaluate -- --model models/tiny --data <data>",
    runConfig,
  });
}

Deno.test("modelCard: the schedule from the run's config; a refit says it has no validation", () => {
  const card = cardOf({
    epochs: 48,
    modelOptions: { filters: [8, 16] },
    cosineDecay: { minLr: 1e-5 },
    reduceLrOnPlateau: false,
    earlyStopping: false,
    maxSeconds: 3600,
  });
  assert.match(
    card,
    /- Schedule: architecture options \{"filters":\[8,16\]\}; cosine learning-rate decay to 0\.00001 over 48 epochs; no early stopping; training time budget 60 min\./,
  );
  const timed = cardOf({
    epochs: 200,
    modelOptions: {},
    cosineDecay: { minLr: 1e-5, over: "time" },
    reduceLrOnPlateau: false,
    earlyStopping: false,
    maxSeconds: 3600,
    ema: { decay: 0.998 },
    weightDecay: 0.05,
    labelSmoothing: 0.1,
    mixup: 0.2,
  });
  assert.match(
    timed,
    /- Schedule: cosine learning-rate decay to 0\.00001 over the 60-min time budget \(at most 200 epochs\); moving average of the weights \(decay 0\.998\) validated and saved; decoupled weight decay 0\.05; label smoothing 0\.1; mixup α 0\.2; no early stopping; training time budget 60 min\./,
  );
  assert.equal(card.includes("final refit"), false);
  assert.match(card, /the best on validation loss/);
  const refitMeta = metadata();
  refitMeta.training.split = {
    validation: 0.2,
    test: 0.25,
    validationTrained: true,
  };
  const refitCard = cardOf(undefined, refitMeta);
  assert.match(
    refitCard.replace(/\s+/g, " "),
    /This model is the final refit of those settings: it was trained on the training and validation splits together/,
  );
  assert.match(
    refitCard,
    /the lowest training loss: a refit has no validation/,
  );
  assert.equal(refitCard.includes("the best on validation loss"), false);
});

Deno.test("modelCard: metrics with intervals, per-class rows, confusions, uses and misuses", () => {
  const card = cardOf();
  assert.match(card, /^# tiny: brain MRI tumour classifier \(seedCnn, 32×32/);
  assert.match(card, /\| accuracy \| 75\.00% \(\d+\.\d%–\d+\.\d%\) \|/);
  assert.match(card, /validation 20%, test 25%/);
  assert.match(card, /\*\*Diagnosis, triage or any clinical decision\.\*\*/);
  assert.match(card, /- 2 of 8 test scans are misclassified/);
  assert.match(card, /glioma taken for meningioma: 2 \(66\.7% of glioma\)/);
  assert.match(card, /\| glioma \| 3 \| 100\.0% \| 33\.3% \(/);
  assert.match(card, /\| tumour sensitivity/);
  assert.ok(
    card.includes("deno task evaluate -- --model models/tiny --data <data>"),
  );
  assert.match(card, /^Decision: the most probable class \(argmax\)\.$/m);
  const screening = cardOf(undefined, {
    ...metadata(),
    inference: { tumourThreshold: 0.5 },
  }).replace(/\s+/g, " ");
  assert.match(
    screening,
    /Decision: an operating point chosen on the validation split \(`select-threshold`, the operating-point rule\): tumour when P\(tumour\) = 1 − P\(notumor\) ≥ 0\.5 \(its most probable tumour class\), else notumor\./,
  );
});

Deno.test("modelCard: a model that never calls notumor is flagged under the title; undefined ratios read —", () => {
  // 8 scans; both notumor scans are called pituitary, everything else right.
  const labels = Int32Array.from([0, 0, 1, 1, 2, 2, 3, 3]);
  const predicted = [0, 0, 1, 1, 3, 3, 3, 3];
  const probabilities = new Float32Array(8 * 4).fill(0.1);
  predicted.forEach((p, i) => (probabilities[i * 4 + p] = 0.7));
  const full = reportFromProbabilities({
    probabilities,
    labels,
    classes: CLASSES,
  });
  const card = modelCard({
    name: "tiny",
    metadata: metadata(),
    dataset: "test split of <data> (seed 7)",
    full,
    deduplicated: full,
    command: "deno task evaluate -- --model models/tiny --data <data>",
  });
  const lines = card.split("\n");
  assert.deepEqual(lines.slice(1, 6), [
    "",
    "> **Warning: this model is degenerate. Its metrics do not mean what they seem, and the clinical targets are not assessable:**",
    ">",
    "> - never predicts notumor, though 2 of the 8 scans are notumor",
    "",
  ]);
  // notumor is never predicted: its precision is not defined, not 0%.
  assert.match(card, /^\| notumor \| 2 \| — \| 0\.0% \(/m);
  // Its sensitivity is 100%, so the card does not claim it misses tumours.
  assert.match(
    card,
    /and it can miss tumours: a sensitivity measured on one public/,
  );
  assert.equal(card.includes("is not 100%"), false);
  // A card of a model that is fine has no warning.
  assert.equal(cardOf().includes("degenerate"), false);
  // A model that calls a glioma notumor does miss tumours, and says so.
  const missing = Float32Array.from(probabilities);
  missing.set([0.1, 0.1, 0.7, 0.1], 0);
  missing.set([0.1, 0.1, 0.7, 0.1], 4 * 4);
  const missed = reportFromProbabilities({
    probabilities: missing,
    labels,
    classes: CLASSES,
  });
  assert.equal(missed.binary?.sensitivity, 5 / 6);
  const honest = modelCard({
    name: "tiny",
    metadata: metadata(),
    dataset: "test split of <data> (seed 7)",
    full: missed,
    deduplicated: missed,
    command: "deno task evaluate -- --model models/tiny --data <data>",
  });
  assert.match(
    honest,
    /and its tumour sensitivity below is not 100%: it misses tumours\./,
  );
  assert.equal(honest.includes("degenerate"), false);
});

Deno.test("writeModelCard: evaluates the model's own test split and writes README.md next to it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "model_card_test_" });
  try {
    const data = join(dir, "ds");
    await generateSyntheticDataset({
      outDir: data,
      seed: 5,
      trainPerClass: 10,
      testPerClass: 1,
    });
    const model = buildModel("seedCnn", {
      inputSize: 32,
      channels: 1,
      numClasses: 4,
      seed: 1,
    });
    await saveModel({
      model,
      dir: join(dir, "tiny", "model"),
      metadata: metadata(),
    });
    model.dispose();
    const out = await writeModelCard({
      model: join(dir, "tiny"),
      data: join(data, "Training"),
      split: "test",
    });
    assert.equal(out, join(dir, "tiny", "README.md"));
    const card = await Deno.readTextFile(out);
    // 40 training scans; a quarter, stratified (2 per class), is the test
    // split — not the 4 scans of Testing/
    assert.match(
      card,
      /On the test split of `ds\/Training` \(seed 7\): 8 images/,
    );
    assert.match(
      card,
      /deno task evaluate -- --model models\/tiny --data <path to ds\/Training> --split test/,
    );
    assert.match(card, /computed by the tfjs inference engine/);
    // The onnx engine: named in the card and in its command, same numbers.
    const onnxOut = join(dir, "onnx.md");
    await writeModelCard({
      model: join(dir, "tiny"),
      data: join(data, "Training"),
      split: "test",
      out: onnxOut,
      engine: "onnx",
    });
    const onnxCard = await Deno.readTextFile(onnxOut);
    assert.match(onnxCard, /computed by the onnx inference engine/);
    assert.match(onnxCard, /--split test --engine onnx/);
    const accuracy = (text: string) => text.match(/\| accuracy \|[^\n]*/)?.[0];
    assert.ok(accuracy(card));
    assert.equal(accuracy(onnxCard), accuracy(card));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("modelCard: an ensemble names its members and what it averages", () => {
  const meta = metadata();
  meta.arch = "ensemble";
  meta.ensemble = {
    members: [
      { name: "run-a", arch: "resnet", epochs: 90, bestEpoch: 88 },
      { name: "run-b", arch: "resnet", epochs: 91, bestEpoch: 85 },
    ],
  };
  const card = cardOf(undefined, meta).replace(/\s+/g, " ");
  assert.match(
    card,
    /An ensemble of 2 convolutional networks \(their probabilities averaged\)/,
  );
  assert.match(
    card,
    /averaged: `run-a` \(resnet, weights of epoch 88 of 90\), `run-b` \(resnet, weights of epoch 85 of 91\)\. The first one's training: - resnet, Adam/,
  );
});
