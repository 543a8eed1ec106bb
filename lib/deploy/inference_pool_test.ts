import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ellipseScanJpeg,
  ellipseScanPng,
  saveTinyModel,
} from "../../tests/fixtures.ts";
import {
  classifyImage,
  ImageTooLargeError,
  localClassifier,
  startInferencePool,
  UndecodableImageError,
} from "./inference_pool.ts";
import { predictFiles, toPrediction } from "./predict.ts";
import { loadSavedModel } from "../model/saved_model.ts";
import { tf } from "../core/tf.ts";

const SIZE = 32;

/** A tiny saved model and a few real JPEG/PNG scans on disk. */
async function withModel(
  body: (
    ctx: { modelDir: string; files: string[]; bytes: Uint8Array[] },
  ) => Promise<void>,
) {
  const root = await Deno.makeTempDir({ prefix: "inference_pool_test_" });
  try {
    const modelDir = join(root, "model");
    await saveTinyModel(modelDir, { size: SIZE, run: "tiny-pool" });
    const bytes = [
      ...await Promise.all([1, 2, 3, 4, 5].map((s) => ellipseScanJpeg(s, 64))),
      await ellipseScanPng(6, 48),
    ];
    const files = bytes.map((_, i) =>
      join(root, `scan${i}.${i < 5 ? "jpg" : "png"}`)
    );
    await Promise.all(files.map((f, i) => Deno.writeFile(f, bytes[i])));
    await body({ modelDir, files, bytes });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("inference pool: two workers answer concurrent images exactly as predict does", async () => {
  await withModel(async ({ modelDir, files, bytes }) => {
    const want = await predictFiles({ inputs: files, model: modelDir });
    assert.equal(want.errors.length, 0);
    const start = tf.memory().numTensors;
    const pool = await startInferencePool({ modelDir, workers: 2 });
    try {
      assert.equal(pool.workers, 2);
      assert.equal(pool.metadata.training?.run, "tiny-pool");
      // Every image twice, all at once: both workers busy, answers routed
      // back to the right caller.
      const answers = await Promise.all(
        [...bytes, ...bytes].map((b) => pool.classify(b)),
      );
      answers.forEach((probs, i) => {
        const got = toPrediction(probs, pool.metadata.classes);
        const ref = want.predictions[i % bytes.length];
        assert.equal(got.class, ref.class, files[i % bytes.length]);
        assert.deepEqual(got.probabilities, ref.probabilities);
      });
      // The caller keeps its bytes (the pool sends a copy).
      assert.ok(bytes.every((b) => b.length > 0));
    } finally {
      await pool.close();
    }
    // The models live in the workers, not in this thread.
    assert.equal(tf.memory().numTensors, start);
    await assert.rejects(
      pool.classify(bytes[0]),
      /the inference pool is closed/,
    );
  });
});

Deno.test("inference pool: a corrupt image is an UndecodableImageError and the pool keeps answering", async () => {
  await withModel(async ({ modelDir, bytes }) => {
    const pool = await startInferencePool({ modelDir, workers: 1 });
    try {
      const truncated = bytes[0].slice(0, 200);
      const error = await pool.classify(truncated).then(
        () => assert.fail("a truncated JPEG was classified"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof UndecodableImageError, String(error));
      const probs = await pool.classify(bytes[1]);
      assert.equal(probs.length, 4);
      assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    } finally {
      await pool.close();
    }
  });
});

Deno.test("inference pool: the local classifier gives the same answers and leaks no tensor", async () => {
  await withModel(async ({ modelDir, bytes }) => {
    const { model, metadata } = await loadSavedModel(modelDir);
    const pool = await startInferencePool({ modelDir, workers: 1 });
    try {
      const start = tf.memory().numTensors;
      const local = localClassifier({ model, metadata });
      assert.equal(local.workers, 1);
      const here = await Promise.all(bytes.map((b) => local.classify(b)));
      await local.close();
      assert.equal(tf.memory().numTensors, start);
      const there = await Promise.all(bytes.map((b) => pool.classify(b)));
      assert.deepEqual(here, there);
      await assert.rejects(
        classifyImage(new TextEncoder().encode("not an image"), {
          model,
          metadata,
        }),
        UndecodableImageError,
      );
      assert.equal(tf.memory().numTensors, start);
    } finally {
      await pool.close();
      model.dispose();
    }
  });
});

Deno.test("inference pool: a missing model or a bad worker count fails before serving", async () => {
  const missing = join(await Deno.makeTempDir(), "nothing-here");
  await assert.rejects(
    startInferencePool({ modelDir: missing, workers: 2 }),
    (error: Error) => error.message.includes(missing),
  );
  await assert.rejects(
    startInferencePool({ modelDir: missing, workers: 0 }),
    /workers must be a positive integer \(got 0\)/,
  );
  await Deno.remove(join(missing, ".."), { recursive: true });
});

Deno.test("inference pool: a worker that dies fails the requests it held, and a fresh worker takes its place", async () => {
  await withModel(async ({ modelDir, bytes }) => {
    // Keep a handle on every Worker the pool starts (real workers, recorded
    // while the pool starts or replaces one).
    const started: Worker[] = [];
    const RealWorker = globalThis.Worker;
    const Recording = class extends RealWorker {
      constructor(url: string | URL, options?: WorkerOptions) {
        super(url, options);
        started.push(this);
      }
    };
    const recording = async <T>(body: () => T | Promise<T>) => {
      globalThis.Worker = Recording;
      try {
        return await body();
      } finally {
        globalThis.Worker = RealWorker;
      }
    };
    const pool = await recording(() =>
      startInferencePool({ modelDir, workers: 1 })
    );
    try {
      assert.equal(started.length, 1);
      const before = await pool.classify(bytes[0]);
      // An uncaught error in the worker, as the pool sees it: the request in
      // flight fails with a message naming the cause…
      const held = pool.classify(bytes[1]);
      await recording(() =>
        started[0].dispatchEvent(
          new ErrorEvent("error", { message: "boom", cancelable: true }),
        )
      );
      await assert.rejects(held, /the inference worker died \(boom\)/);
      // …and a new worker, loading the same model, answers what comes next.
      assert.equal(started.length, 2);
      assert.deepEqual(await pool.classify(bytes[0]), before);
    } finally {
      await pool.close();
    }
  });
});

Deno.test("inference pool: an image over maxPixels is refused with ImageTooLargeError, in a worker too", async () => {
  await withModel(async ({ modelDir, bytes }) => {
    const pool = await startInferencePool({
      modelDir,
      workers: 1,
      maxPixels: 1000,
    });
    try {
      // 64 × 64 = 4,096 pixels, over the limit; still answers afterwards.
      await assert.rejects(pool.classify(bytes[0]), ImageTooLargeError);
      await assert.rejects(pool.classify(bytes[0]), /over the limit/);
    } finally {
      await pool.close();
    }
    const roomy = await startInferencePool({ modelDir, workers: 1 });
    try {
      assert.equal((await roomy.classify(bytes[0])).length, 4);
    } finally {
      await roomy.close();
    }
  });
});
