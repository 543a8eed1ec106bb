import assert from "node:assert/strict";
import {
  evenlySpaced,
  loadAverage,
  median,
  positiveInt,
  UsageError,
} from "./bench_util.ts";

Deno.test("bench_util: flags, medians, even samples, load", () => {
  assert.equal(positiveInt("7", "runs", 1), 7);
  assert.equal(positiveInt(undefined, "runs", 3), 3);
  assert.throws(
    () => positiveInt("0", "runs", 1),
    (e: Error) =>
      e instanceof UsageError &&
      e.message === '--runs must be a positive integer (got "0")',
  );
  assert.throws(() => positiveInt("2.5", "runs", 1), UsageError);
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.deepEqual(evenlySpaced([0, 1, 2, 3, 4, 5, 6, 7], 4), [0, 2, 4, 6]);
  assert.deepEqual(evenlySpaced([1, 2], 5), [1, 2]);
  assert.deepEqual(evenlySpaced([1, 2, 3]), [1, 2, 3]);
  assert.ok(Number.isFinite(loadAverage()));
});
