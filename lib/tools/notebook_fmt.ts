/**
 * Formats the code cells of notebooks with `deno fmt`, one cell at a time.
 *
 * Deno 2.9.6's `deno fmt --check` reports `.ipynb` files as unformatted even
 * when `deno fmt` leaves them unchanged (the same class of bug as
 * denoland/deno#25840), so deno.json excludes notebooks from `deno fmt` and
 * `deno task fmt:notebooks` formats their code cells through this module;
 * the notebook hygiene test checks them the same way.
 *
 * @module
 */
import { writeTextAtomic } from "../core/atomic.ts";
import { type ParsedCli, runCli } from "../core/cli.ts";
import { seriesNotebooks } from "./notebooks.ts";

/**
 * A TypeScript cell's source as `deno fmt` formats it (without the trailing
 * newline, as notebooks store it).
 *
 * Runs `deno fmt` in a subprocess, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { formatCell } from "./notebook_fmt.ts";
 * console.log(await formatCell("const  x=1")); // "const x = 1;"
 * ```
 */
export async function formatCell(source: string): Promise<string> {
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
  if (!out.success) {
    throw new Error(
      `deno fmt failed on a cell: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
  return new TextDecoder().decode(out.stdout).trimEnd();
}

interface Cell {
  cell_type: string;
  source: string | string[];
}

/**
 * Formats every code cell of a notebook in place (atomically); returns the
 * 1-based numbers of the cells it changed.
 *
 * Runs `deno fmt` in a subprocess for each cell, so it is not run by
 * `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { formatNotebook } from "./notebook_fmt.ts";
 * console.log(await formatNotebook("notebooks/00_setup_check.ipynb")); // []
 * ```
 */
export async function formatNotebook(path: string): Promise<number[]> {
  const nb = JSON.parse(await Deno.readTextFile(path));
  const changed: number[] = [];
  for (const [i, cell] of (nb.cells as Cell[]).entries()) {
    if (cell.cell_type !== "code") continue;
    const source = Array.isArray(cell.source)
      ? cell.source.join("")
      : cell.source;
    const formatted = await formatCell(source);
    if (formatted !== source.trimEnd()) {
      changed.push(i + 1);
      const lines = formatted.split("\n");
      cell.source = lines.map((l, k) => k < lines.length - 1 ? `${l}\n` : l);
    }
  }
  if (changed.length) {
    await writeTextAtomic(path, JSON.stringify(nb, null, 1) + "\n");
  }
  return changed;
}

/** The command line of `deno task fmt:notebooks`. */
export const NOTEBOOK_FMT_CLI = {
  command: "deno task fmt:notebooks",
  summary: "Formats the code cells of notebooks with `deno fmt`, in place.\n" +
    "Without arguments, every notebooks/*.ipynb.",
  positionals: "[NOTEBOOK...]",
  flags: {},
} as const;

/** Formats the notebooks named (or the series), one line per notebook. */
async function notebookFmtMain(
  { positionals }: ParsedCli<typeof NOTEBOOK_FMT_CLI>,
): Promise<number> {
  for (const path of positionals.length ? positionals : seriesNotebooks()) {
    const changed = await formatNotebook(path);
    console.log(
      changed.length
        ? `${path}: formatted cells ${changed.join(", ")}`
        : `${path}: ok`,
    );
  }
  return 0;
}

if (import.meta.main) {
  Deno.exit(await runCli(NOTEBOOK_FMT_CLI, notebookFmtMain));
}
