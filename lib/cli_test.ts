import assert from "node:assert/strict";
import { taskArgs } from "./cli.ts";

Deno.test("cli: a leading -- is dropped, nothing else", () => {
  assert.deepEqual(taskArgs(["--", "--data", "d"]), ["--data", "d"]);
  assert.deepEqual(taskArgs(["--data", "d", "--", "x"]), [
    "--data",
    "d",
    "--",
    "x",
  ]);
  assert.deepEqual(taskArgs([]), []);
});
