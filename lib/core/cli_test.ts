import assert from "node:assert/strict";
import { type ParsedCli, runCli, taskArgs, usage } from "./cli.ts";

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

Deno.test("runCli: values and positionals; --help prints the usage (0); a usage error names it (2)", async () => {
  const logged: string[] = [];
  const errors: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => logged.push(a.join(" "));
  console.error = (...a: unknown[]) => errors.push(a.join(" "));
  try {
    const spec = {
      command: "x",
      summary: "X.",
      positionals: "ARG...",
      flags: {
        data: { type: "string", help: "data" },
        json: { type: "boolean", help: "json" },
      },
    } as const;
    const seen: ParsedCli<typeof spec>[] = [];
    const cli = (args: string[]) =>
      runCli(spec, (parsed) => {
        seen.push(parsed);
        return 0;
      }, { args });
    assert.equal(await cli(["--data", "d", "a", "--json"]), 0);
    const ok = seen[0];
    assert.equal(ok.values.data, "d");
    assert.equal(ok.values.json, true);
    assert.deepEqual(ok.positionals, ["a"]);
    assert.equal(await cli(["-h"]), 0);
    assert.equal(await cli(["--data", "d", "--help"]), 0);
    assert.deepEqual(logged, [usage(spec), usage(spec)]);
    assert.equal(seen.length, 1, "--help runs nothing");
    assert.equal(await cli(["--nope"]), 2);
    assert.match(errors[0], /^error: Unknown option '--nope'.*\nusage: x/s);
    // after "--", --help is an argument, not a request for help
    assert.equal(await cli(["a", "--", "--help"]), 0);
    assert.deepEqual(seen[1].positionals, ["a", "--help"]);
  } finally {
    console.log = log;
    console.error = error;
  }
});
