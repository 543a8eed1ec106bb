import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  loadNotebookNetwork,
  NOTEBOOK_NETWORK_DIR,
  saveNotebookNetwork,
  topologyOf,
} from "./notebook_network.ts";
import { tf } from "./tf.ts";

function network(filters: number) {
  return tf.sequential({
    name: "net",
    layers: [
      tf.layers.conv2d({
        name: "conv1",
        filters,
        kernelSize: 3,
        inputShape: [8, 8, 1],
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      tf.layers.flatten({ name: "flatten" }),
      tf.layers.dense({ name: "out", units: 2, activation: "softmax" }),
    ],
  });
}

Deno.test("notebook network: nothing saved, nothing loaded", async () => {
  const modelsDir = await Deno.makeTempDir();
  try {
    assert.equal(await loadNotebookNetwork({ modelsDir }), undefined);
  } finally {
    await Deno.remove(modelsDir, { recursive: true });
  }
});

Deno.test("notebook network: the saved network loads with its layers and initial weights, and a new save replaces it", async () => {
  const modelsDir = await Deno.makeTempDir();
  const first = network(4);
  const edited = network(6);
  try {
    const dir = await saveNotebookNetwork(first, { modelsDir });
    assert.equal(dir, join(modelsDir, NOTEBOOK_NETWORK_DIR));
    const loaded = (await loadNotebookNetwork({ modelsDir }))!;
    assert.equal(topologyOf(loaded), topologyOf(first));
    for (const [i, w] of first.getWeights().entries()) {
      assert.deepEqual(loaded.getWeights()[i].dataSync(), w.dataSync());
    }
    loaded.dispose();

    await saveNotebookNetwork(edited, { modelsDir });
    const reloaded = (await loadNotebookNetwork({ modelsDir }))!;
    assert.equal(reloaded.countParams(), edited.countParams());
    assert.notEqual(reloaded.countParams(), first.countParams());
    assert.equal(topologyOf(reloaded), topologyOf(edited));
    reloaded.dispose();
    assert.deepEqual([...Deno.readDirSync(modelsDir)].map((e) => e.name), [
      NOTEBOOK_NETWORK_DIR,
    ]);
    assert.ok(existsSync(join(modelsDir, NOTEBOOK_NETWORK_DIR, "weights.bin")));
  } finally {
    first.dispose();
    edited.dispose();
    await Deno.remove(modelsDir, { recursive: true });
  }
});
