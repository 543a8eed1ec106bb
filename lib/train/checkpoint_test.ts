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

/** A checkpoint of `tinyModel(1)` after one step, with a `best.bin`. */
async function savedCheckpoint(ckpt: string): Promise<void> {
  const model = tinyModel(1);
  const optimizer = tf.train.adam(0.05);
  step(model, optimizer, 0);
  await saveCheckpoint({
    dir: ckpt,
    model,
    optimizer,
    state: { epoch: 1 },
    extraFiles: { "best.bin": new Uint8Array(64) },
  });
  model.dispose();
  optimizer.dispose();
}

/**
 * Asserts that `load` is refused within a second with a message naming the
 * checkpoint folder and matching `problem`.
 */
async function refusedFast(
  ckpt: string,
  load: () => Promise<unknown>,
  problem: RegExp,
): Promise<void> {
  const t0 = performance.now();
  await assert.rejects(load, (e: Error) => {
    assert.ok(e.message.startsWith(`checkpoint ${ckpt}: `), e.message);
    assert.match(e.message, problem);
    return true;
  });
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `refused after ${ms.toFixed(0)} ms`);
}

/** Loads `ckpt` into a fresh `tinyModel` and Adam (disposed after). */
async function loadTiny(ckpt: string): Promise<unknown> {
  const model = tinyModel(2);
  const optimizer = tf.train.adam(0.05);
  try {
    return await loadCheckpoint({ dir: ckpt, model, optimizer });
  } finally {
    model.dispose();
    optimizer.dispose();
  }
}

Deno.test("loadCheckpoint refuses symbolic links and FIFOs in the checkpoint without reading them", async () => {
  await withTemp(async (dir) => {
    const ckpt = join(dir, "ckpt");
    await savedCheckpoint(ckpt);
    const weights = join(ckpt, CHECKPOINT_FILES.modelWeights);
    const outside = join(dir, "outside.bin");
    await Deno.rename(weights, outside);
    // A link to a file outside the folder, even one of the right size.
    await Deno.symlink(outside, weights);
    await refusedFast(
      ckpt,
      () => loadTiny(ckpt),
      /weights file model.bin is a symbolic link; a checkpoint folder holds only regular files/,
    );
    // A link to an endless device: refused at once, never read.
    await Deno.remove(weights);
    await Deno.symlink("/dev/zero", weights);
    await refusedFast(
      ckpt,
      () => loadTiny(ckpt),
      /weights file model.bin is a symbolic link/,
    );
    await Deno.remove(weights);
    await Deno.rename(outside, weights);
    assert.deepEqual(await loadTiny(ckpt), { epoch: 1 });

    // A FIFO would block a reader forever.
    const optimizerWeights = join(ckpt, CHECKPOINT_FILES.optimizerWeights);
    await Deno.rename(optimizerWeights, outside);
    const mkfifo = await new Deno.Command("mkfifo", {
      args: [optimizerWeights],
    })
      .output();
    assert.ok(mkfifo.success);
    await refusedFast(
      ckpt,
      () => loadTiny(ckpt),
      /weights file optimizer.bin is not a regular file/,
    );
    await Deno.remove(optimizerWeights);
    await Deno.rename(outside, optimizerWeights);

    // The state file and the extra files follow the same rule.
    const best = join(ckpt, "best.bin");
    await Deno.remove(best);
    await Deno.symlink("/dev/zero", best);
    await refusedFast(
      ckpt,
      () => readCheckpointFile(ckpt, "best.bin"),
      /weights file best.bin is a symbolic link/,
    );
    const state = join(ckpt, CHECKPOINT_FILES.state);
    await Deno.rename(state, outside);
    await Deno.symlink("/dev/zero", state);
    assert.equal(await hasCheckpoint(ckpt), true);
    await refusedFast(
      ckpt,
      () => readCheckpointState(ckpt),
      /state.json is a symbolic link/,
    );
  });
});

Deno.test("loadCheckpoint refuses a checkpoint folder that is a symbolic link", async () => {
  await withTemp(async (dir) => {
    const real = join(dir, "real");
    await savedCheckpoint(real);
    const linked = join(dir, "linked");
    await Deno.symlink(real, linked);
    for (
      const load of [
        () => loadTiny(linked),
        () => readCheckpointState(linked),
        () => readCheckpointFile(linked, "best.bin"),
      ]
    ) {
      await refusedFast(
        linked,
        load,
        /the checkpoint folder is a symbolic link/,
      );
    }
    assert.deepEqual(await loadTiny(real), { epoch: 1 });
  });
});

Deno.test("loadCheckpoint checks every file's size against its manifest before reading it", async () => {
  await withTemp(async (dir) => {
    const ckpt = join(dir, "ckpt");
    await savedCheckpoint(ckpt);
    const file = (name: string) => join(ckpt, name);
    const size = async (name: string) => (await Deno.stat(file(name))).size;
    const modelBytes = await size(CHECKPOINT_FILES.modelWeights);
    // Bigger than model.json describes (a sparse 3 GB file: never read).
    await Deno.truncate(file(CHECKPOINT_FILES.modelWeights), 3e9);
    await refusedFast(
      ckpt,
      () => loadTiny(ckpt),
      new RegExp(
        `weights file model.bin: weights are 3000000000 bytes, model.json describes ${modelBytes}`,
      ),
    );
    await Deno.truncate(file(CHECKPOINT_FILES.modelWeights), modelBytes);
    // Smaller than optimizer.json describes.
    const optimizerBytes = await size(CHECKPOINT_FILES.optimizerWeights);
    await Deno.truncate(file(CHECKPOINT_FILES.optimizerWeights), 8);
    await refusedFast(
      ckpt,
      () => loadTiny(ckpt),
      new RegExp(
        `weights file optimizer.bin: weights are 8 bytes, optimizer.json describes ${optimizerBytes}`,
      ),
    );
    // An extra file of another size than state.json records.
    await Deno.truncate(file("best.bin"), 65);
    await refusedFast(
      ckpt,
      () => readCheckpointFile(ckpt, "best.bin"),
      /weights file best.bin: weights are 65 bytes, state.json describes 64/,
    );
    // A JSON file beyond the 16 MiB bound.
    await Deno.truncate(file(CHECKPOINT_FILES.state), 17 * 1024 * 1024);
    await refusedFast(
      ckpt,
      () => readCheckpointState(ckpt),
      /state.json is 17825792 bytes, more than the 16777216 allowed/,
    );
  });
});

Deno.test("loadCheckpoint refuses malformed manifests and state files, naming the file", async () => {
  await withTemp(async (dir) => {
    const ckpt = join(dir, "ckpt");
    await savedCheckpoint(ckpt);
    type Doc = { specs: { shape: number[] }[] };
    const edit = async (name: string, change: (doc: Doc) => unknown) => {
      const path = join(ckpt, name);
      const text = await Deno.readTextFile(path);
      await Deno.writeTextFile(
        path,
        JSON.stringify(change(JSON.parse(text) as Doc)),
      );
      return async () => await Deno.writeTextFile(path, text);
    };
    const cases: [string, (doc: Doc) => unknown, RegExp][] = [
      [
        CHECKPOINT_FILES.modelSpecs,
        () => ({}),
        /model.json has no list of weight specs/,
      ],
      [
        CHECKPOINT_FILES.modelSpecs,
        (d) => {
          d.specs[0].shape = [-4, 8];
          return d;
        },
        /model.json: weight "0:.*" has an invalid shape/,
      ],
      [
        CHECKPOINT_FILES.optimizerSpecs,
        (d) => {
          d.specs[1].shape = [1e6, 1e6];
          return d;
        },
        /optimizer.json describes \d+ bytes of weights, more than the 2147483648 allowed/,
      ],
      [
        CHECKPOINT_FILES.optimizerSpecs,
        (d: object) => ({ ...d, extras: { accBeta1: "x" } }),
        /optimizer.json: extras are not numbers/,
      ],
      [
        CHECKPOINT_FILES.optimizerSpecs,
        () => [],
        /optimizer.json names no optimizer/,
      ],
      [
        CHECKPOINT_FILES.state,
        (d: object) => ({ ...d, version: 99 }),
        /unknown checkpoint version 99/,
      ],
      [
        CHECKPOINT_FILES.state,
        (d: object) => ({ ...d, files: { "best.bin": -1 } }),
        /state.json: files gives best.bin the size -1/,
      ],
      [
        CHECKPOINT_FILES.state,
        (d: object) => ({ ...d, files: { "../x": 1 } }),
        /state.json: files names "..\/x"/,
      ],
    ];
    for (const [name, change, problem] of cases) {
      const restore = await edit(name, change);
      await refusedFast(ckpt, () => loadTiny(ckpt), problem);
      await restore();
    }
    await Deno.writeTextFile(join(ckpt, CHECKPOINT_FILES.modelSpecs), "{");
    await refusedFast(
      ckpt,
      () => loadTiny(ckpt),
      /model.json is not valid JSON/,
    );
    await refusedFast(
      ckpt,
      () => readCheckpointFile(ckpt, "../state.json"),
      /invalid extra file name "..\/state.json"/,
    );
  });
});
