import assert from "node:assert/strict";
import { parseCli, taskArgs } from "./cli.ts";

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

Deno.test("parseCli: values and positionals; --help prints the usage (0); a usage error names it (2)", () => {
  const logged: string[] = [];
  const errors: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => logged.push(a.join(" "));
  console.error = (...a: unknown[]) => errors.push(a.join(" "));
  try {
    const config = {
      options: { data: { type: "string" }, json: { type: "boolean" } },
      allowPositionals: true,
      strict: true,
    } as const;
    const ok = parseCli("usage: x", {
      ...config,
      args: ["--data", "d", "a", "--json"],
    });
    assert.ok(typeof ok !== "number");
    assert.equal(ok.values.data, "d");
    assert.equal(ok.values.json, true);
    assert.deepEqual(ok.positionals, ["a"]);
    assert.equal(parseCli("usage: x", { ...config, args: ["-h"] }), 0);
    assert.equal(
      parseCli("usage: x", { ...config, args: ["--data", "d", "--help"] }),
      0,
    );
    assert.deepEqual(logged, ["usage: x", "usage: x"]);
    assert.equal(parseCli("usage: x", { ...config, args: ["--nope"] }), 2);
    assert.match(errors[0], /^error: Unknown option '--nope'.*\nusage: x$/s);
    // after "--", --help is an argument, not a request for help
    const after = parseCli("usage: x", { ...config, args: ["--", "--help"] });
    assert.ok(typeof after !== "number");
    assert.deepEqual(after.positionals, ["--help"]);
  } finally {
    console.log = log;
    console.error = error;
  }
});
