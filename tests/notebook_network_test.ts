/**
 * Notebook 02 writes the seed CNN out as plain `tf.layers` code; the library
 * builds it with `seedCnn` (lib/model/models.ts). This test runs the
 * notebook's network cell in Deno and checks that it builds exactly the
 * library's network — the same layers, configurations, seeded initialisers,
 * parameter count and initial weights — so the two cannot drift apart.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { PROJECT_ROOT } from "../lib/core/paths.ts";
import { topologyOf } from "../lib/core/notebook_network.ts";
import type { LayersModel } from "../lib/core/tf.ts";
import { seedCnn } from "../lib/model/models.ts";

const NOTEBOOK = join(PROJECT_ROOT, "notebooks", "02_model.ipynb");

/** The code of the notebook's network cell: the one that calls `tf.sequential(`. */
export async function networkCell(path = NOTEBOOK): Promise<string> {
  const nb = JSON.parse(await Deno.readTextFile(path));
  const cells = (nb.cells as { cell_type: string; source: string[] }[])
    .filter((c) => c.cell_type === "code")
    .map((c) => c.source.join(""))
    .filter((code) => code.includes("tf.sequential("));
  assert.equal(cells.length, 1, "02_model has one cell building the network");
  return cells[0];
}

/**
 * Runs the cell as a module with the names the notebook defines before it
 * (`tf`, `seededInitializers`, `params`, `CHANNELS`, `NUM_CLASSES`) and
 * returns the `model` it builds.
 */
async function runNetworkCell(
  code: string,
  params: { imageSize: number; seed: number },
): Promise<LayersModel> {
  const lib = (path: string) =>
    pathToFileURL(join(PROJECT_ROOT, "lib", path)).href;
  const module = [
    `import { tf } from "${lib("core/tf.ts")}";`,
    `import { seededInitializers } from "${lib("model/models.ts")}";`,
    `const params = ${JSON.stringify(params)};`,
    "const CHANNELS = 1;",
    "const NUM_CLASSES = 4;",
    code,
    "export { model };",
  ].join("\n");
  const dir = await Deno.makeTempDir({ prefix: "network-cell-" });
  try {
    const file = join(dir, "cell.ts");
    await Deno.writeTextFile(file, module);
    return (await import(pathToFileURL(file).href)).model;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("02_model's network cell builds the library's seed CNN", async () => {
  const params = { imageSize: 32, seed: 42 };
  const notebook = await runNetworkCell(await networkCell(), params);
  const library = seedCnn({
    inputSize: params.imageSize,
    channels: 1,
    numClasses: 4,
    seed: params.seed,
  });
  try {
    assert.deepEqual(
      notebook.layers.map((l) => [l.name, l.getClassName()]),
      library.layers.map((l) => [l.name, l.getClassName()]),
    );
    assert.deepEqual(
      JSON.parse(topologyOf(notebook)),
      JSON.parse(topologyOf(library)),
    );
    assert.equal(notebook.countParams(), library.countParams());
    const [a, b] = [notebook.getWeights(), library.getWeights()];
    assert.equal(a.length, b.length);
    for (const [i, w] of a.entries()) {
      assert.deepEqual(w.dataSync(), b[i].dataSync(), `weight ${i}`);
    }
  } finally {
    notebook.dispose();
    library.dispose();
  }
});

Deno.test("an edited network cell is a different network", async () => {
  const code = (await networkCell()).replace(
    /name: "conv1",\n(\s*)filters: 32,/,
    'name: "conv1",\n$1filters: 16,',
  );
  const edited = await runNetworkCell(code, { imageSize: 32, seed: 42 });
  const library = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
  try {
    assert.notEqual(topologyOf(edited), topologyOf(library));
    // conv1 loses 16·(3·3·1 + 1) weights, conv2 16·3·3·64 of its kernel
    assert.equal(
      library.countParams() - edited.countParams(),
      16 * 10 + 16 * 9 * 64,
    );
  } finally {
    edited.dispose();
    library.dispose();
  }
});
