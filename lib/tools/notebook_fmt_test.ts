import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import {
  formatCell,
  formatNotebook,
  NOTEBOOK_FMT_CLI,
} from "./notebook_fmt.ts";
import { checkUsage, notebookJson } from "../../tests/fixtures.ts";

Deno.test("notebook_fmt: formats code cells in place and reports which", async () => {
  assert.equal(await formatCell("const  x=1"), "const x = 1;");
  const dir = await Deno.makeTempDir({ prefix: "notebook_fmt_test_" });
  try {
    const path = join(dir, "nb.ipynb");
    await Deno.writeTextFile(
      path,
      notebookJson([
        ["markdown", "# Title\n\nProse  stays   as it is."],
        ["code", "const  x=1\nx"],
        ["code", "const y = 2;"],
      ]),
    );
    assert.deepEqual(await formatNotebook(path), [2]);
    const cells = JSON.parse(await Deno.readTextFile(path)).cells;
    assert.deepEqual(cells[1].source, ["const x = 1;\n", "x;"]);
    assert.equal(cells[0].source, "# Title\n\nProse  stays   as it is.");
    assert.equal(cells[2].source, "const y = 2;");
    // Formatted already: nothing changes, the file is not rewritten.
    const before = (await Deno.stat(path)).mtime;
    assert.deepEqual(await formatNotebook(path), []);
    assert.deepEqual((await Deno.stat(path)).mtime, before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("notebook_fmt: --help shows the usage; an unknown flag is a usage error", async () => {
  const usage = await checkUsage(
    fileURLToPath(new URL("./notebook_fmt.ts", import.meta.url)),
    NOTEBOOK_FMT_CLI,
  );
  assert.match(
    usage,
    /^usage: deno task fmt:notebooks -- \[options\] \[NOTEBOOK\.\.\.\]/,
  );
});
