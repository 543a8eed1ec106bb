import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../lib/tools/proc.ts";

const SCRIPT = join(
  dirname(fileURLToPath(import.meta.url)),
  "time_to_accuracy.ts",
);

function usage(...args: string[]) {
  return run(Deno.execPath(), { args: ["run", "-A", SCRIPT, ...args] });
}

Deno.test("time_to_accuracy: usage errors exit 2 before any data or training", async () => {
  // A saved model has one seed for its split and its training, which
  // `evaluate --split test` uses: --save with another seed would re-derive
  // the wrong test split.
  const save = await usage("--save", "/tmp/never-written", "--seed", "7");
  assert.equal(save.code, 2);
  assert.match(
    save.stderr,
    /--save needs --seed 42 \(the split's seed; got 7\)/,
  );
  const minutes = await usage("--minutes", "0");
  assert.equal(minutes.code, 2);
  assert.match(minutes.stderr, /--minutes must be a positive number/);
});
