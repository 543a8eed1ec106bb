import assert from "node:assert/strict";
import { join } from "node:path";
import { PROJECT_ROOT } from "../lib/core/paths.ts";
import { run } from "../lib/tools/proc.ts";

// Every command-line entry point built on lib/core/cli.ts' parseCli answers
// --help with its usage (exit 0) and an unknown flag with an error naming it
// and the usage (exit 2), before doing any work.
const ENTRY_POINTS = [
  "lib/data/audit",
  "lib/evaluate/evaluate",
  "lib/deploy/model_card",
  "lib/deploy/predict",
  "scripts/select_run",
  "lib/deploy/select_threshold",
  "lib/deploy/select_tta",
  "lib/deploy/serve",
];

for (const name of ENTRY_POINTS) {
  Deno.test(`${name}.ts: --help exits 0 with the usage; an unknown flag exits 2`, async () => {
    const script = join(PROJECT_ROOT, `${name}.ts`);
    const help = await run(Deno.execPath(), {
      args: ["run", "-A", script, "--help"],
    });
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^usage: deno task /);
    const bad = await run(Deno.execPath(), {
      args: ["run", "-A", script, "--no-such-flag"],
    });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /error: Unknown option '--no-such-flag'/);
    assert.match(bad.stderr, /usage: deno task /);
    assert.equal(bad.stdout, "");
  });
}
