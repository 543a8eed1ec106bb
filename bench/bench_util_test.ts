import assert from "node:assert/strict";
import { join } from "node:path";
import { UsageError } from "../lib/core/cli.ts";
import { PROJECT_ROOT } from "../lib/core/paths.ts";
import {
  benchDataset,
  evenlySpaced,
  loadAverage,
  median,
  positiveInt,
  recordedPath,
} from "./bench_util.ts";

Deno.test("bench_util: flags, medians, even samples, load", () => {
  assert.equal(positiveInt(7, "runs"), 7);
  assert.throws(
    () => positiveInt(0, "runs"),
    (e: Error) =>
      e instanceof UsageError &&
      e.message === '--runs must be a positive integer (got "0")',
  );
  assert.throws(() => positiveInt(2.5, "runs"), UsageError);
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.deepEqual(evenlySpaced([0, 1, 2, 3, 4, 5, 6, 7], 4), [0, 2, 4, 6]);
  assert.deepEqual(evenlySpaced([1, 2], 5), [1, 2]);
  assert.deepEqual(evenlySpaced([1, 2, 3]), [1, 2, 3]);
  assert.ok(Number.isFinite(loadAverage()));
});

Deno.test("bench_util: the default dataset is the project's, paths are recorded relative", async () => {
  const root = await Deno.makeTempDir({ prefix: "bench_util_test_" });
  try {
    const missing = join(root, "nothing");
    assert.throws(
      () => benchDataset({ root: missing }),
      (e: Error) =>
        !(e instanceof UsageError) && /no dataset at .*nothing: pass --data DIR/
          .test(e.message),
    );
    assert.throws(
      () => benchDataset({ given: missing }),
      (e: Error) =>
        e instanceof UsageError && /--data .*nothing: no such folder/
          .test(e.message),
    );
    assert.equal(benchDataset({ root }), root, "a root of class folders");
    await Deno.mkdir(join(root, "Training"));
    assert.equal(benchDataset({ root }), join(root, "Training"));
    assert.equal(benchDataset({ given: root, root: missing }), root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  assert.equal(
    recordedPath(join(PROJECT_ROOT, ".cache", "bench", "x")),
    ".cache/bench/x",
  );
  assert.equal(
    recordedPath("/srv/shared/data/brain-tumor-mri/Training"),
    "brain-tumor-mri/Training",
    "outside the project: no absolute path, no climb out of the project",
  );
});
