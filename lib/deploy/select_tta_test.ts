import assert from "node:assert/strict";
import { join } from "node:path";
import { saveTinyModel, withSyntheticDataset } from "../../tests/fixtures.ts";
import { evaluateModel } from "../evaluate/evaluate.ts";
import { predictProbabilities } from "../model/inference.ts";
import {
  readModelMetadata,
  updateModelMetadata,
  validateMetadata,
} from "../model/saved_model.ts";
import { copyTta, selectTta } from "./select_tta.ts";
import { seedCnn } from "../model/models.ts";
import { tf } from "../core/tf.ts";

/** Runs `body` with a small synthetic dataset and a cache in a temp folder. */
function withDataset(
  body: (p: { dir: string; data: string; cacheDir: string }) => Promise<void>,
): Promise<void> {
  return withSyntheticDataset({ seed: 4, prefix: "select_tta_test_" }, body);
}

Deno.test("predictProbabilities: hflip averages each image with its mirror", async () => {
  const start = tf.memory().numTensors;
  const model = seedCnn({ inputSize: 24, channels: 1, numClasses: 4, seed: 2 });
  const size = 24;
  const pixels = new Uint8Array(3 * size * size).map((_, i) => (i * 53) % 256);
  const mirrored = new Uint8Array(pixels.length);
  for (let n = 0; n < 3; n++) {
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        mirrored[(n * size + y) * size + x] =
          pixels[(n * size + y) * size + (size - 1 - x)];
      }
    }
  }
  const plain = await predictProbabilities(model, { pixels, size });
  const flipped = await predictProbabilities(model, {
    pixels: mirrored,
    size,
  });
  const tta = await predictProbabilities(model, { pixels, size, tta: "hflip" });
  tta.forEach((p, i) =>
    assert.ok(Math.abs(p - (plain[i] + flipped[i]) / 2) < 1e-6, `value ${i}`)
  );
  assert.notDeepEqual(Array.from(tta), Array.from(plain));
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    predictProbabilities(model, { pixels, size, tta: "vflip" as any }),
    /tta must be "none" or "hflip"/,
  );
  model.dispose();
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("selectTta: keeps the mode with the lower validation loss and records it", async () => {
  await withDataset(async ({ dir, data, cacheDir }) => {
    const model = join(dir, "model");
    await saveTinyModel(model, { seed: 9 });
    const dry = await selectTta({ model, data, write: false, cacheDir });
    assert.equal(dry.written, false);
    assert.equal((await readModelMetadata(model)).inference, undefined);
    const choice = await selectTta({ model, data, cacheDir });
    const expected = choice.validation.hflip.loss < choice.validation.none.loss
      ? "hflip"
      : "none";
    assert.equal(choice.tta, expected);
    assert.deepEqual(choice.validation, dry.validation);
    assert.notEqual(choice.validation.hflip.loss, choice.validation.none.loss);
    assert.deepEqual((await readModelMetadata(model)).inference, {
      tta: expected,
    });
    // evaluate now predicts that way by default
    const e = await evaluateModel({
      modelDir: model,
      data,
      split: "validation",
      cacheDir,
    });
    assert.equal(e.full.loss, choice.validation[expected].loss);
  });
});

Deno.test("a refit cannot select on its validation split; copyTta takes the validated run's choice", async () => {
  await withDataset(async ({ dir, data, cacheDir }) => {
    const validated = join(dir, "validated");
    const refit = join(dir, "refit");
    const other = join(dir, "other");
    for (const [path, seed] of [[validated, 9], [refit, 9], [other, 10]]) {
      await saveTinyModel(path as string, {
        seed: seed as number,
        split: {
          validation: 0.15,
          test: 0.15,
          ...(path === refit ? { validationTrained: true } : {}),
        },
      });
    }
    await assert.rejects(
      selectTta({ model: refit, data, cacheDir }),
      /refit on its validation split \(train --refit\)/,
    );
    await assert.rejects(
      evaluateModel({ modelDir: refit, data, split: "validation", cacheDir }),
      /refit on its validation split/,
    );
    await assert.rejects(
      copyTta({ model: refit, from: validated }),
      /has no test-time augmentation chosen on validation/,
    );
    await updateModelMetadata(validated, { inference: { tta: "hflip" } });
    await updateModelMetadata(other, { inference: { tta: "hflip" } });
    await assert.rejects(
      copyTta({ model: refit, from: other }),
      /was split differently/,
    );
    await assert.rejects(
      copyTta({ model: validated, from: other }),
      /is not a refit: choose on its own validation split/,
    );
    await updateModelMetadata(other, {
      training: {
        ...(await readModelMetadata(other)).training,
        split: { validation: 0.15, test: 0.15, validationTrained: true },
      },
    });
    await assert.rejects(
      copyTta({ model: refit, from: other }),
      /was itself refit on its validation split/,
    );
    const plain = (await readModelMetadata(refit)).preprocessing;
    await updateModelMetadata(refit, {
      preprocessing: { ...plain, clahe: { clipLimit: 2, tiles: 4 } },
    });
    await assert.rejects(
      copyTta({ model: refit, from: validated }),
      /validated prepares its input differently \(size or CLAHE\)/,
    );
    await updateModelMetadata(refit, { preprocessing: plain });
    assert.equal((await readModelMetadata(refit)).inference, undefined);
    assert.equal(await copyTta({ model: refit, from: validated }), "hflip");
    assert.deepEqual((await readModelMetadata(refit)).inference, {
      tta: "hflip",
    });
    // The test split stays available.
    const e = await evaluateModel({
      modelDir: refit,
      data,
      split: "test",
      cacheDir,
    });
    assert.ok(e.full.n > 0);
  });
});

Deno.test("validateMetadata: an unknown inference.tta, a tumour threshold out of (0, 0.5] or without notumor are refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "select_tta_test_" });
  try {
    const metadata = await saveTinyModel(join(dir, "m"));
    assert.throws(
      () =>
        validateMetadata(
          { ...metadata, inference: { tta: "rotate" } },
          join(dir, "m"),
        ),
      /inference\.tta must be "none" or "hflip"/,
    );
    const check = (inference: unknown, classes = metadata.classes) =>
      validateMetadata({ ...metadata, classes, inference }, join(dir, "m"));
    assert.deepEqual(check({ tumourThreshold: 0.3 }).inference, {
      tumourThreshold: 0.3,
    });
    assert.deepEqual(check({}).inference, {});
    assert.throws(
      () => check({ tta: "none", tumourThreshold: 0.7 }),
      /inference\.tumourThreshold must be a number in \(0, 0\.5\] \(got 0\.7\)/,
    );
    assert.throws(
      () => check({ tumourThreshold: 0.3 }, ["a", "b", "c", "d"]),
      /inference\.tumourThreshold needs a "notumor" class/,
    );
    assert.throws(() => check("hflip"), /inference must be an object/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
