import assert from "node:assert/strict";
import { runParams } from "./params.ts";

Deno.test("params: defaults", () => {
  assert.deepEqual(runParams({ env: {} }), {
    seed: 42,
    size: 128,
    validation: 0.15,
    test: 0.15,
  });
});

Deno.test("params: environment overrides", () => {
  assert.deepEqual(
    runParams({
      env: {
        BRAIN_MRI_SEED: "7",
        BRAIN_MRI_IMAGE_SIZE: "96",
        BRAIN_MRI_VAL: "0.1",
        BRAIN_MRI_TEST: "0.2",
      },
    }),
    { seed: 7, size: 96, validation: 0.1, test: 0.2 },
  );
});

Deno.test("params: a malformed value names the variable", () => {
  assert.throws(
    () => runParams({ env: { BRAIN_MRI_SEED: "x" } }),
    /BRAIN_MRI_SEED=x is not a valid value/,
  );
  assert.throws(
    () => runParams({ env: { BRAIN_MRI_IMAGE_SIZE: "8" } }),
    /BRAIN_MRI_IMAGE_SIZE=8/,
  );
  assert.throws(
    () => runParams({ env: { BRAIN_MRI_VAL: "1.5" } }),
    /BRAIN_MRI_VAL=1\.5/,
  );
});
