/**
 * Notebook hygiene: every notebook is committed without outputs, runs on the
 * project's Deno kernel, reads as a narrative (a title first, prose before
 * every code cell), and its code cells are `deno fmt`-clean.
 *
 * Cells are formatted one by one through `deno fmt -`: Deno 2.9.6's
 * `deno fmt --check` reports `.ipynb` files as unformatted even when
 * `deno fmt` leaves them byte-for-byte unchanged (the same class of bug as
 * denoland/deno#25840), so deno.json excludes `*.ipynb` from `deno fmt` and
 * this test does the check instead.
 */
import assert from "node:assert/strict";
import { basename } from "node:path";
import { seriesNotebooks } from "../lib/notebooks.ts";

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
      const source = text(c);
      const child = new Deno.Command(Deno.execPath(), {
        args: ["fmt", "--ext", "ts", "-"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(source));
      await writer.close();
      const out = await child.output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.equal(
        new TextDecoder().decode(out.stdout).trimEnd(),
        source.trimEnd(),
        `cell ${i + 1} is not formatted (run its source through deno fmt)`,
      );
    }
  });
}
