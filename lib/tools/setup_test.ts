import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { checkUsage } from "../../tests/fixtures.ts";
import { SETUP_CLI } from "./setup.ts";

Deno.test("setup: --help lists its flags; an unknown flag is a usage error", async () => {
  const usage = await checkUsage(
    fileURLToPath(new URL("./setup.ts", import.meta.url)),
    SETUP_CLI,
  );
  assert.match(usage, /^usage: deno task setup -- \[options\]\n/);
  for (
    const flag of [
      "--force-libtensorflow",
      "--skip-official-download",
      "--browser",
    ]
  ) {
    assert.match(usage, new RegExp(`\\n  ${flag} +\\S`));
  }
});
