/**
 * Notebook hygiene: every notebook is committed without outputs, runs on the
 * project's Deno kernel, reads as a narrative (a title first, prose before
 * every code cell), its code cells are `deno fmt`-clean, and (the setup check
 * aside) it opens with one cell of parameters: plain constants starting from
 * `DEFAULTS`, with environment overrides applied in that cell.
 *
 * Cells are checked one by one through `deno fmt -` (see
 * lib/tools/notebook_fmt.ts for why notebooks are not left to `deno fmt --check`).
 */
import assert from "node:assert/strict";
import { basename } from "node:path";
import { formatCell } from "../lib/tools/notebook_fmt.ts";
import { seriesNotebooks } from "../lib/tools/notebooks.ts";
import { DEFAULTS } from "../lib/core/defaults.ts";

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

/** A notebook constant and the default it must start from. */
const CONSTANT_DEFAULTS: Record<string, unknown> = {
  SEED: DEFAULTS.seed,
  IMAGE_SIZE: DEFAULTS.imageSize,
  VALIDATION: DEFAULTS.validationFraction,
  TEST: DEFAULTS.testFraction,
  ARCH: DEFAULTS.arch,
  EPOCHS: DEFAULTS.epochs,
  BATCH_SIZE: DEFAULTS.batchSize,
  LEARNING_RATE: DEFAULTS.learningRate,
};

/** `const NAME = value;` or `const NAME: type = value;` at the start of a line. */
const CONSTANT = /^const ([A-Z][A-Z_]*)(?::[^=]+)? = ([^;]+);/gm;

for (const path of seriesNotebooks()) {
  const name = basename(path);
  if (name.startsWith("00_")) continue; // the setup check has no parameters
  const cells: Cell[] = JSON.parse(Deno.readTextFileSync(path)).cells;

  Deno.test(`${name}: opens with one parameters cell of plain constants from DEFAULTS, overridable by the environment`, () => {
    const first = cells.findIndex((c) => c.cell_type === "code");
    assert.equal(first, 1, "the parameters cell follows the title");
    const code = text(cells[first]);
    assert.match(code, /withEnvOverrides\(/);
    const constants = [...code.matchAll(CONSTANT)];
    assert.ok(constants.length > 0, "plain constants");
    for (const [, constant, value] of constants) {
      if (!(constant in CONSTANT_DEFAULTS)) continue;
      assert.deepEqual(
        JSON.parse(value),
        CONSTANT_DEFAULTS[constant],
        `${constant} starts from its default`,
      );
    }
    const elsewhere = cells.slice(first + 1).map(text).join("\n");
    assert.doesNotMatch(
      elsewhere,
      /withEnvOverrides\(|runParams\(|trainParams\(/,
      "parameters are read in the parameters cell only",
    );
  });
}
