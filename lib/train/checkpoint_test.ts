import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import {
  CHECKPOINT_FILES,
  hasCheckpoint,
  loadCheckpoint,
  readCheckpointFile,
  readCheckpointState,
  saveCheckpoint,
} from "./checkpoint.ts";
import { projectPaths } from "../core/paths.ts";
import { type LayersModel, type Tensor, tf } from "../core/tf.ts";

type Optimizer = import("@tensorflow/tfjs-node").Optimizer;

function tinyModel(seed: number): LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({
        units: 8,
        inputShape: [4],
        activation: "relu",
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
      }),
      tf.layers.batchNormalization(),
      tf.layers.dense({
        units: 3,
        activation: "softmax",
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
      }),
    ],
  });
}

/** One Adam step on fixed data; returns nothing, changes weights and state. */
function step(model: LayersModel, optimizer: Optimizer, k: number): void {
  tf.tidy(() => {
    const x = tf.randomUniform([6, 4], -1, 1, "float32", 100 + k);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2], "int32"), 3);
    optimizer.minimize(() => {
      const p = model.apply(x, { training: true }) as Tensor;
      return tf.losses.softmaxCrossEntropy(y, tf.log(p)) as never;
    });
  });
}

function weightsOf(model: LayersModel): number[][] {
  return model.getWeights().map((t) => Array.from(t.dataSync()));
}

async function withTemp(body: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "checkpoint_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a restored checkpoint continues exactly like the uninterrupted run (Adam state included)", async () => {
  await withTemp(async (dir) => {
    const start = tf.memory().numTensors;
    const a = tinyModel(1);
    const optA = tf.train.adam(0.05);
    for (let k = 0; k < 3; k++) step(a, optA, k);
    await saveCheckpoint({
      dir: join(dir, "ckpt"),
      model: a,
      optimizer: optA,
      state: { epochsCompleted: 3, note: "after three steps" },
      extraFiles: { "best.bin": new Uint8Array([1, 2, 3]) },
    });
    for (let k = 3; k < 6; k++) step(a, optA, k);

    const b = tinyModel(99); // different initial weights: all must come from the file
    const optB = tf.train.adam(0.05);
    const state = await loadCheckpoint<{ epochsCompleted: number }>({
      dir: join(dir, "ckpt"),
      model: b,
      optimizer: optB,
    });
    assert.deepEqual(state, { epochsCompleted: 3, note: "after three steps" });
    assert.equal(optB.iterations, 3);
    for (let k = 3; k < 6; k++) step(b, optB, k);
    // bit-for-bit: same weights, same moments, same iteration count and β-powers
    assert.deepEqual(weightsOf(b), weightsOf(a));
    assert.deepEqual(
      await readCheckpointFile(join(dir, "ckpt"), "best.bin"),
      new Uint8Array([1, 2, 3]),
    );
    assert.equal(
      await readCheckpointFile(join(dir, "ckpt"), "nope.bin"),
      undefined,
    );

    for (const m of [a, b]) m.dispose();
    for (const o of [optA, optB]) o.dispose();
    assert.equal(tf.memory().numTensors, start);
  });
});

Deno.test("a crash in the middle of a save leaves the previous checkpoint loadable", async () => {
  await withTemp(async (dir) => {
    const ckpt = join(dir, "checkpoint");
    const model = tinyModel(1);
    const optimizer = tf.train.adam(0.05);
    step(model, optimizer, 0);
    await saveCheckpoint({ dir: ckpt, model, optimizer, state: { epoch: 1 } });
    const saved = weightsOf(model);

    step(model, optimizer, 1);
    const written: string[] = [];
    await assert.rejects(
      saveCheckpoint({
        dir: ckpt,
        model,
        optimizer,
        state: { epoch: 2 },
        afterWrite: (file) => {
          written.push(file);
          if (file === CHECKPOINT_FILES.optimizerWeights) {
            throw new Error("simulated crash after 3 files");
          }
        },
      }),
      /simulated crash/,
    );
    assert.deepEqual(written, [
      CHECKPOINT_FILES.modelWeights,
      CHECKPOINT_FILES.modelSpecs,
      CHECKPOINT_FILES.optimizerWeights,
    ]);
    assert.deepEqual(readdirSync(dir), ["checkpoint"]);

    const fresh = tinyModel(7);
    const freshOpt = tf.train.adam(0.05);
    const state = await loadCheckpoint<{ epoch: number }>({
      dir: ckpt,
      model: fresh,
      optimizer: freshOpt,
    });
    assert.deepEqual(state, { epoch: 1 });
    assert.deepEqual(weightsOf(fresh), saved);
    assert.equal(freshOpt.iterations, 1);
    for (const m of [model, fresh]) m.dispose();
    for (const o of [optimizer, freshOpt]) o.dispose();
  });
});

/**
 * Writes a child script that saves checkpoints 1, 2, 3 of a model whose
 * weights all equal the step number into `ckpt`; in save 3, after model.bin
 * is on disk, it says so ("MIDSAVE") and waits to be killed.
 */
async function writeSavingChild(dir: string, ckpt: string): Promise<string> {
  const child = join(dir, "child.ts");
  await Deno.writeTextFile(
    child,
    `import { saveCheckpoint } from ${
      JSON.stringify(new URL("./checkpoint.ts", import.meta.url).href)
    };
import { tf } from ${
      JSON.stringify(new URL("../core/tf.ts", import.meta.url).href)
    };
const model = tf.sequential({ layers: [tf.layers.dense({ units: 64, inputShape: [256] })] });
const optimizer = tf.train.adam(0.01);
for (let k = 1; k <= 3; k++) {
  optimizer.minimize(() => tf.sum(model.apply(tf.ones([2, 256])) as tf.Tensor) as tf.Scalar);
  model.setWeights(model.getWeights().map((w) => tf.fill(w.shape, k)));
  await saveCheckpoint({
    dir: ${JSON.stringify(ckpt)}, model, optimizer, state: { step: k },
    afterWrite: async (file) => {
      if (k === 3 && file === "model.bin") {
        console.log("MIDSAVE");
        await new Promise((r) => setTimeout(r, 120_000));
      }
    },
  });
  console.log("saved " + k);
}
`,
  );
  return child;
}

/** Runs `child`, kills it (SIGKILL) when it says "MIDSAVE"; returns its lines. */
async function killMidSave(child: string): Promise<string[]> {
  const proc = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      join(projectPaths().root, "deno.json"),
      child,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of proc.stdout) {
    buffer += decoder.decode(chunk, { stream: true });
    lines.push(...buffer.split("\n").slice(0, -1));
    buffer = buffer.split("\n").at(-1)!;
    if (lines.includes("MIDSAVE")) {
      proc.kill("SIGKILL");
      break;
    }
  }
  const status = await proc.status;
  await proc.stderr.cancel();
  assert.equal(
    status.signal,
    "SIGKILL",
    `child output: ${lines.join(" | ")}`,
  );
  return lines;
}

Deno.test("a process killed (SIGKILL) in the middle of a save leaves the previous checkpoint loadable", async () => {
  await withTemp(async (dir) => {
    const ckpt = join(dir, "checkpoint");
    const lines = await killMidSave(await writeSavingChild(dir, ckpt));
    assert.deepEqual(lines, ["saved 1", "saved 2", "MIDSAVE"]);
    // the half-written save is still there, beside the complete one
    const tmp = readdirSync(dir).filter((n) =>
      n.startsWith(".checkpoint.tmp-")
    );
    assert.equal(tmp.length, 1);
    assert.ok(existsSync(join(dir, tmp[0], CHECKPOINT_FILES.modelWeights)));
    assert.equal(existsSync(join(dir, tmp[0], CHECKPOINT_FILES.state)), false);

    assert.equal(await hasCheckpoint(ckpt), true);
    const model = tf.sequential({
      layers: [tf.layers.dense({ units: 64, inputShape: [256] })],
    });
    const optimizer = tf.train.adam(0.01);
    const state = await loadCheckpoint<{ step: number }>({
      dir: ckpt,
      model,
      optimizer,
    });
    assert.deepEqual(state, { step: 2 });
    for (const w of weightsOf(model)) assert.ok(w.every((v) => v === 2));
    assert.equal(optimizer.iterations, 2);
    // the next save removes the leftover
    await saveCheckpoint({ dir: ckpt, model, optimizer, state: { step: 3 } });
    assert.deepEqual(readdirSync(dir).sort(), ["checkpoint", "child.ts"]);
    model.dispose();
    optimizer.dispose();
  });
});

Deno.test("loadCheckpoint refuses another architecture or optimizer, naming the folder", async () => {
  await withTemp(async (dir) => {
    const ckpt = join(dir, "ckpt");
    const model = tinyModel(1);
    const optimizer = tf.train.adam(0.05);
    step(model, optimizer, 0);
    await saveCheckpoint({ dir: ckpt, model, optimizer, state: {} });

    const other = tf.sequential({
      layers: [tf.layers.dense({ units: 5, inputShape: [4] })],
    });
    const opt2 = tf.train.adam(0.05);
    await assert.rejects(
      loadCheckpoint({ dir: ckpt, model: other, optimizer: opt2 }),
      (e: Error) =>
        e.message.startsWith(`checkpoint ${ckpt}:`) &&
        /holds 8 model weights, the model has 2/.test(e.message),
    );
    const sgd = tf.train.sgd(0.1);
    const same = tinyModel(1);
    await assert.rejects(
      loadCheckpoint({ dir: ckpt, model: same, optimizer: sgd }),
      /saved with a Adam optimizer, cannot restore into SGD/,
    );
    await Deno.writeTextFile(join(ckpt, CHECKPOINT_FILES.state), "{}");
    await assert.rejects(
      readCheckpointState(ckpt),
      /state.json is not a checkpoint/,
    );
    await Deno.remove(join(ckpt, CHECKPOINT_FILES.state));
    assert.equal(await hasCheckpoint(ckpt), false);
    for (const m of [model, other, same]) m.dispose();
    for (const o of [optimizer, opt2, sgd]) o.dispose();
  });
});
