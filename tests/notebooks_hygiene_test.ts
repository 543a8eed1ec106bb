/**
 * Notebook hygiene: every notebook is committed without outputs, runs on the
 * project's Deno kernel, reads as a narrative (a title first, prose before
 * every code cell), and its code cells are `deno fmt`-clean.
 *
 * Cells are checked one by one through `deno fmt -` (see
 * lib/tools/notebook_fmt.ts for why notebooks are not left to `deno fmt --check`).
 */
import assert from "node:assert/strict";
import { basename } from "node:path";
import { formatCell } from "../lib/tools/notebook_fmt.ts";
import { seriesNotebooks } from "../lib/tools/notebooks.ts";

interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: unknown[];
  execution_count?: number | null;
}

const text = (c: Cell) =>
  Array.isArray(c.source) ? c.source.join("") : c.source;

for (const path of seriesNotebooks()) {
  const name = basename(path);
  const nb = JSON.parse(await Deno.readTextFile(path));
  const cells: Cell[] = nb.cells;

  Deno.test(`${name}: no outputs or execution counts, Deno kernel`, () => {
    assert.equal(nb.metadata.kernelspec.name, "deno");
    for (const [i, c] of cells.entries()) {
      if (c.cell_type !== "code") continue;
      assert.deepEqual(c.outputs, [], `cell ${i + 1} has outputs`);
      assert.equal(
        c.execution_count,
        null,
        `cell ${i + 1} has an execution count`,
      );
    }
  });

  Deno.test(`${name}: a title first, prose before every code cell`, () => {
    assert.equal(cells[0].cell_type, "markdown");
    assert.match(text(cells[0]), /^# /);
    for (const [i, c] of cells.entries()) {
      if (c.cell_type === "code") {
        assert.equal(
          cells[i - 1]?.cell_type,
          "markdown",
          `cell ${i + 1} has no prose before it`,
        );
      }
    }
  });

  Deno.test(`${name}: code cells are deno fmt-clean`, async () => {
    for (const [i, c] of cells.entries()) {
      if (c.cell_type !== "code") continue;
      assert.equal(
        await formatCell(text(c)),
        text(c).trimEnd(),
        `cell ${i + 1} is not formatted (deno task fmt:notebooks)`,
      );
    }
  });
}
