/**
 * The network notebook 02 builds, handed to notebook 03: 02 saves its
 * untrained, seeded definition (topology and initial weights) into the
 * models folder with {@linkcode saveNotebookNetwork}, and 03 trains it after
 * {@linkcode loadNotebookNetwork}. A layer edited in 02 is therefore the
 * layer 03 trains. {@linkcode topologyOf} compares two networks layer by
 * layer (classes and configurations, initialisers included).
 *
 * @example Save, load, compare
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "./tf.ts";
 * import { loadNotebookNetwork, saveNotebookNetwork, topologyOf } from "./notebook_network.ts";
 * const modelsDir = await Deno.makeTempDir();
 * const model = tf.sequential({
 *   layers: [tf.layers.dense({ name: "d", units: 2, inputShape: [3] })],
 * });
 * await saveNotebookNetwork(model, { modelsDir });
 * const loaded = await loadNotebookNetwork({ modelsDir });
 * assert.equal(topologyOf(loaded!), topologyOf(model));
 * assert.equal(loaded!.countParams(), 8);
 * model.dispose();
 * loaded!.dispose();
 * await Deno.remove(modelsDir, { recursive: true });
 * ```
 *
 * @module
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { projectPaths } from "./paths.ts";
import { type LayersModel, tf } from "./tf.ts";

/** The folder under the models folder holding notebook 02's network. */
export const NOTEBOOK_NETWORK_DIR = "notebook_network";

/** Options of {@linkcode saveNotebookNetwork} and {@linkcode loadNotebookNetwork}. */
export interface NotebookNetworkOptions {
  /** The models folder (default `projectPaths().models`, `BRAIN_MRI_MODELS`). */
  modelsDir?: string;
}

function networkDir(options: NotebookNetworkOptions): string {
  return join(options.modelsDir ?? projectPaths().models, NOTEBOOK_NETWORK_DIR);
}

/**
 * Saves `model` (tfjs Layers format: `model.json` and `weights.bin`) as the
 * network notebook 03 trains, replacing the one saved before: it is written
 * to a sibling folder first and then renamed into place, so a reader never
 * sees half of it. Returns the folder. The model stays the caller's.
 */
export async function saveNotebookNetwork(
  model: LayersModel,
  options: NotebookNetworkOptions = {},
): Promise<string> {
  const dir = networkDir(options);
  const staging = `${dir}.tmp-${Deno.pid}`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  await Deno.mkdir(staging, { recursive: true });
  await model.save(`file://${staging}`);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.rename(staging, dir);
  return dir;
}

/**
 * Loads the network notebook 02 saved, or returns undefined when it has not
 * saved one (02 not run in this models folder). The caller disposes it.
 */
export async function loadNotebookNetwork(
  options: NotebookNetworkOptions = {},
): Promise<LayersModel | undefined> {
  const file = join(networkDir(options), "model.json");
  if (!existsSync(file)) return undefined;
  return await tf.loadLayersModel(`file://${file}`);
}

/**
 * A network's architecture as text: its Keras topology JSON (every layer's
 * class and configuration, initialisers and their seeds included, weights
 * not). Two networks with the same text have the same layers.
 *
 * @example The same factory call twice gives the same topology
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "./tf.ts";
 * import { topologyOf } from "./notebook_network.ts";
 * const build = (units: number) =>
 *   tf.sequential({
 *     name: "net",
 *     layers: [tf.layers.dense({ name: "d", units, inputShape: [3] })],
 *   });
 * const [a, b, c] = [build(2), build(2), build(5)];
 * assert.equal(topologyOf(a), topologyOf(b));
 * assert.notEqual(topologyOf(a), topologyOf(c));
 * [a, b, c].forEach((m) => m.dispose());
 * ```
 */
export function topologyOf(model: LayersModel): string {
  return JSON.stringify(model.toJSON(null, false));
}
