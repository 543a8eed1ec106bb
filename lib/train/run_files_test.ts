import assert from "node:assert/strict";
import { join } from "node:path";
import { PROJECT_ROOT } from "../core/paths.ts";
import { resolveConfig } from "./config.ts";
import {
  datasetName,
  datasetRecord,
  manifestDataset,
  modelMetadata,
  readRunManifest,
  type RunInfo,
  runManifest,
  runPaths,
  timingSummary,
  updateRunManifest,
  writeRunFiles,
} from "./run_files.ts";
import { type EpochRecord, initialState } from "./state.ts";

const TRAIN = {
  pixels: new Uint8Array(3 * 4),
  labels: new Int32Array([0, 1, 1]),
};
const VALIDATION = { pixels: new Uint8Array(4), labels: new Int32Array([0]) };

function epoch(n: number, val_loss: number | null): EpochRecord {
  return {
    epoch: n,
    loss: 1 / n,
    acc: 0.5,
    val_loss,
    val_acc: val_loss === null ? null : 0.75,
    lr: 1e-3,
    seconds: 12,
    trainSeconds: 10,
    imagesPerSecond: 0.3,
  };
}

/** A run after two epochs, the second the best. */
function info(extra: Partial<RunInfo> = {}): RunInfo {
  const config = resolveConfig({
    train: TRAIN,
    validation: VALIDATION,
    classes: ["a", "b"],
    size: 2,
  });
  const state = {
    ...initialState({
      config,
      datasetFingerprint: "fp",
      trainImages: 3,
      at: "t0",
    }),
    epochsCompleted: 2,
    history: [epoch(1, 0.9), epoch(2, 0.7)],
    best: { loss: 0.7, epoch: 2 },
    seconds: 24,
  };
  return {
    state,
    config,
    run: "demo",
    fingerprint: "fp",
    train: TRAIN,
    validation: VALIDATION,
    params: 123,
    versions: { deno: "2" },
    ...extra,
  };
}

async function withTemp(body: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "run_files_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("datasetName: relative to the project inside it, else the last two path parts", () => {
  assert.equal(
    datasetName(join(PROJECT_ROOT, "data", "Training")),
    "data/Training",
  );
  assert.equal(datasetName(PROJECT_ROOT), ".");
  const elsewhere = join(
    PROJECT_ROOT,
    "..",
    "shared",
    "brain-tumor-mri",
    "Training",
  );
  assert.equal(datasetName(elsewhere), "brain-tumor-mri/Training");
  // A sibling folder whose name starts like the project's is outside it.
  assert.equal(
    datasetName(`${PROJECT_ROOT}-data/set`),
    `${PROJECT_ROOT.split("/").at(-1)}-data/set`,
  );
  assert.equal(
    datasetName("/srv/x/.cache/synthetic/seed42", { projectRoot: "/srv/x" }),
    ".cache/synthetic/seed42",
  );
  assert.deepEqual(
    datasetRecord({ root: elsewhere, fingerprint: "ab", synthetic: false }),
    { name: "brain-tumor-mri/Training", fingerprint: "ab", synthetic: false },
  );
});

Deno.test("manifestDataset reads today's dataset record and the older source shapes", () => {
  const data = { fingerprint: "ab12" };
  const record = {
    name: "data/Training",
    fingerprint: "ab12",
    synthetic: false,
  };
  assert.deepEqual(
    manifestDataset({ data, extra: { dataset: record } }),
    record,
  );
  // deno task train, before: the absolute root.
  assert.deepEqual(
    manifestDataset({
      data,
      extra: {
        source: {
          root: "/home/someone/mri/brain-tumor-mri/Training",
          synthetic: false,
        },
      },
    }),
    { name: "brain-tumor-mri/Training", fingerprint: "ab12", synthetic: false },
  );
  // The notebooks: the root as a string beside `synthetic`.
  assert.deepEqual(
    manifestDataset({
      data,
      extra: {
        source: join(PROJECT_ROOT, ".cache", "synthetic", "seed42"),
        synthetic: true,
      },
    }),
    { name: ".cache/synthetic/seed42", fingerprint: "ab12", synthetic: true },
  );
  assert.equal(manifestDataset({ data, extra: {} }), undefined);
  assert.equal(manifestDataset({ data }), undefined);
});

Deno.test("runManifest and modelMetadata describe the run; writeRunFiles writes history and manifest", async () => {
  const run = info({
    extra: { note: "x" },
    split: { validation: 0.15, test: 0.2 },
  });
  const manifest = runManifest(run, "running", "t1");
  assert.equal(manifest.run, "demo");
  assert.equal(manifest.updatedAt, "t1");
  assert.deepEqual(manifest.data.trainCounts, { a: 1, b: 2 });
  assert.deepEqual(manifest.data.validationCounts, { a: 1, b: 0 });
  assert.equal(manifest.metrics.bestEpoch, 2);
  assert.equal(manifest.metrics.best, run.state.history[1]);
  assert.equal(manifest.metrics.final, run.state.history[1]);
  assert.equal(manifest.timings.trainingSeconds, 24);
  assert.deepEqual(manifest.extra, { note: "x" });
  assert.equal(
    runManifest(info({ run: undefined }), "completed", "t1").run,
    "",
  );

  const metadata = modelMetadata(run, "t2");
  assert.equal(metadata.training.run, "demo");
  assert.equal(metadata.training.bestEpoch, 2);
  assert.equal(metadata.training.stopReason, undefined);
  assert.deepEqual(metadata.training.split, { validation: 0.15, test: 0.2 });
  assert.deepEqual(metadata.metrics, {
    loss: 0.5,
    acc: 0.5,
    val_loss: 0.7,
    val_acc: 0.75,
  });
  assert.equal(metadata.datasetFingerprint, "fp");
  assert.equal(metadata.createdAt, "t2");
  // Without a validation split the best epoch has no validation metrics.
  const noVal = info();
  noVal.state.history = [epoch(1, null)];
  noVal.state.best = { loss: 1, epoch: 1 };
  assert.deepEqual(modelMetadata(noVal, "t").metrics, { loss: 1, acc: 0.5 });

  await withTemp(async (dir) => {
    const paths = runPaths(join(dir, "demo"));
    await Deno.mkdir(paths.root);
    await writeRunFiles(paths, run, "completed");
    const history = JSON.parse(await Deno.readTextFile(paths.history));
    assert.deepEqual(history, run.state.history);
    const written = await readRunManifest(paths.root);
    assert.equal(written.status, "completed");
    assert.ok(!JSON.stringify(written).includes(dir));
  });
});

Deno.test("readRunManifest reads an older manifest; updateRunManifest adds to its extra", async () => {
  await withTemp(async (dir) => {
    const old = {
      ...runManifest(info(), "completed", "t1"),
      extra: {
        source: { root: "/data/brain-tumor-mri/Training", synthetic: false },
      },
    };
    await Deno.writeTextFile(join(dir, "manifest.json"), JSON.stringify(old));
    const manifest = await readRunManifest(dir);
    assert.equal(manifestDataset(manifest)?.name, "brain-tumor-mri/Training");
    const updated = await updateRunManifest(dir, { test: { acc: 0.9 } });
    assert.deepEqual(Object.keys(updated.extra), ["source", "test"]);
    assert.deepEqual((await readRunManifest(dir)).extra.test, { acc: 0.9 });
    await assert.rejects(
      readRunManifest(join(dir, "nothing")),
      /no manifest.json \(not a run folder\?\)/,
    );
  });
});

Deno.test("timingSummary: means over the epochs, zeros for none", () => {
  assert.deepEqual(timingSummary([]), {
    epochs: 0,
    meanEpochSeconds: 0,
    msPerImagePerEpoch: 0,
    meanImagesPerSecond: 0,
  });
  const a = {
    ...epoch(1, 1),
    seconds: 10,
    trainSeconds: 8,
    imagesPerSecond: 100,
  };
  const b = {
    ...epoch(2, 1),
    seconds: 20,
    trainSeconds: 2,
    imagesPerSecond: 400,
  };
  // 800 + 800 images in 10 s of training.
  assert.deepEqual(timingSummary([a, b]), {
    epochs: 2,
    meanEpochSeconds: 15,
    msPerImagePerEpoch: 10000 / 1600,
    meanImagesPerSecond: 160,
  });
});
