import assert from "node:assert/strict";
import { DEFAULTS } from "../core/defaults.ts";
import { tf } from "../core/tf.ts";
import { DEFAULT_AUGMENT_OPTIONS } from "../data/augment.ts";
import {
  classCounts,
  configDifferences,
  resolveClassWeights,
  resolveConfig,
  type RunConfig,
  type RunConfigOptions,
} from "./config.ts";

const SIZE = 2;
const IMAGES = {
  pixels: new Uint8Array(4 * SIZE * SIZE),
  labels: new Int32Array([0, 1, 1, 0]),
};

function options(extra: Partial<RunConfigOptions> = {}): RunConfigOptions {
  return {
    train: IMAGES,
    validation: IMAGES,
    classes: ["a", "b"],
    size: SIZE,
    ...extra,
  };
}

Deno.test("resolveConfig: every default comes from DEFAULTS, in the order manifests record", () => {
  const config = resolveConfig(options());
  assert.deepEqual(Object.keys(config), [
    "arch",
    "modelOptions",
    "inputSize",
    "channels",
    "classes",
    "epochs",
    "batchSize",
    "learningRate",
    "seed",
    "augmentation",
    "classWeights",
    "earlyStopping",
    "reduceLrOnPlateau",
    "cosineDecay",
    "maxSeconds",
    "weightDecay",
    "labelSmoothing",
    "mixup",
    "clahe",
    "ema",
    "restoreBestWeights",
    "evalBatchSize",
  ]);
  assert.equal(config.arch, DEFAULTS.arch);
  assert.equal(config.epochs, DEFAULTS.epochs);
  assert.equal(config.batchSize, DEFAULTS.batchSize);
  assert.equal(config.learningRate, DEFAULTS.learningRate);
  assert.equal(config.seed, DEFAULTS.seed);
  assert.equal(config.evalBatchSize, DEFAULTS.evalBatchSize);
  assert.deepEqual(config.augmentation, { ...DEFAULT_AUGMENT_OPTIONS });
  assert.deepEqual(config.earlyStopping, {
    patience: DEFAULTS.earlyStoppingPatience,
    minDelta: 0,
  });
  assert.deepEqual(config.reduceLrOnPlateau, {
    patience: DEFAULTS.plateauPatience,
    factor: DEFAULTS.plateauFactor,
    minLr: DEFAULTS.minLearningRate,
    minDelta: 0,
  });
  assert.equal(config.cosineDecay, false);
  assert.equal(config.clahe, null);
  assert.equal(config.ema, false);
  assert.deepEqual(resolveConfig(options({ ema: true })).ema, {
    decay: DEFAULTS.emaDecay,
  });
  assert.deepEqual(resolveConfig(options({ cosineDecay: true })).cosineDecay, {
    minLr: DEFAULTS.minLearningRate,
    over: "epochs",
  });
});

Deno.test("resolveConfig: a cosine decay replaces reduce-on-plateau; a given model names the arch", () => {
  const cosine = resolveConfig(options({ cosineDecay: { minLr: 0 } }));
  assert.equal(cosine.reduceLrOnPlateau, false);
  assert.deepEqual(cosine.cosineDecay, { minLr: 0, over: "epochs" });
  assert.throws(
    () => resolveConfig(options({ cosineDecay: true, reduceLrOnPlateau: {} })),
    /trainModel: cosineDecay and reduceLrOnPlateau cannot both be on/,
  );
  const model = tf.sequential({
    name: "tiny",
    layers: [tf.layers.dense({ units: 2, inputShape: [4] })],
  });
  assert.equal(resolveConfig(options({ model })).arch, "tiny");
  assert.equal(resolveConfig(options({ model, arch: "vgg" })).arch, "vgg");
  model.dispose();
});

Deno.test("resolveConfig: refuses bad data and settings, naming the problem", () => {
  const cases: [Partial<RunConfigOptions>, RegExp][] = [
    [{ size: 0 }, /size must be a positive integer \(got 0\)/],
    [{ classes: ["a"] }, /classes must list at least two class names/],
    [
      { train: { pixels: new Uint8Array(3), labels: new Int32Array(1) } },
      /train has 1 labels but 3 pixel bytes \(expected 1·2·2\)/,
    ],
    [
      { validation: { ...IMAGES, labels: new Int32Array([0, 1, 2, 0]) } },
      /validation has label 2, outside 0..1/,
    ],
    [
      { train: { pixels: new Uint8Array(0), labels: new Int32Array(0) } },
      /the training split is empty/,
    ],
    [{ learningRate: 0 }, /learningRate must be a positive number \(got 0\)/],
    [{ seed: 1.5 }, /seed must be an integer \(got 1.5\)/],
    [{ maxSeconds: 0 }, /maxSeconds must be > 0 \(got 0\)/],
    [{ epochs: 2.5 }, /epochs must be a positive integer \(got 2.5\)/],
    [{ batchSize: 0 }, /batchSize must be a positive integer/],
    [{ earlyStopping: { patience: 0 } }, /earlyStopping.patience must be/],
    [{ reduceLrOnPlateau: { patience: 0 } }, /reduceLrOnPlateau.patience/],
    [{ evalBatchSize: -1 }, /evalBatchSize must be a positive integer/],
    [{ weightDecay: -1 }, /weightDecay must be a number >= 0 \(got -1\)/],
    [{ labelSmoothing: 1 }, /labelSmoothing must be in \[0, 1\) \(got 1\)/],
    [{ ema: { decay: 1 } }, /ema.decay must be in \(0, 1\) \(got 1\)/],
    [
      { cosineDecay: { over: "steps" as "time" }, maxSeconds: 60 },
      /cosineDecay.over must be "epochs" or "time" \(got "steps"\)/,
    ],
    [
      { cosineDecay: { over: "time" } },
      /cosineDecay over "time" needs a time budget \(maxSeconds\)/,
    ],
    [
      { reduceLrOnPlateau: { factor: 1 } },
      /reduceLrOnPlateau.factor must be in \(0, 1\) \(got 1\)/,
    ],
  ];
  for (const [extra, message] of cases) {
    assert.throws(() => resolveConfig(options(extra)), message);
  }
});

Deno.test("resolveClassWeights and classCounts", () => {
  const labels = new Int32Array([0, 0, 0, 1]);
  assert.deepEqual(classCounts(labels, ["x", "y", "z"]), { x: 3, y: 1, z: 0 });
  assert.deepEqual(resolveClassWeights("balanced", ["x", "y", "z"], labels), {
    x: 4 / 9,
    y: 4 / 3,
    z: 1,
  });
  assert.deepEqual(resolveClassWeights([2, 3], ["x", "y"], labels), {
    x: 2,
    y: 3,
  });
  assert.deepEqual(resolveClassWeights({ "1": 5 }, ["x", "y"], labels), {
    x: 1,
    y: 5,
  });
  assert.throws(
    () => resolveClassWeights({ y: 0 }, ["x", "y"], labels),
    /class weight of "y" must be a positive number \(got 0\)/,
  );
  assert.throws(
    () => resolveClassWeights("even" as "balanced", ["x", "y"], labels),
    /classWeights must be "balanced", a map or an array \(got "even"\)/,
  );
  assert.deepEqual(
    resolveConfig(options({ classWeights: "balanced" })).classWeights,
    { a: 1, b: 1 },
  );
});

Deno.test("configDifferences: epochs may change; settings a run saved before they existed count as off", () => {
  const saved = resolveConfig(options());
  assert.deepEqual(
    configDifferences(saved, resolveConfig(options({ epochs: 50 }))),
    [],
  );
  assert.deepEqual(
    configDifferences(saved, resolveConfig(options({ seed: 7, batchSize: 4 }))),
    ["batchSize: 32 in the run, 4 now", "seed: 42 in the run, 7 now"],
  );
  // An old run: no weightDecay, labelSmoothing, ema, maxSeconds, and its
  // cosine decay has no `over`.
  const old = resolveConfig(options({ cosineDecay: { minLr: 0 } }));
  const older: Record<string, unknown> = { ...old, cosineDecay: { minLr: 0 } };
  for (const key of ["weightDecay", "labelSmoothing", "ema", "maxSeconds"]) {
    delete older[key];
  }
  assert.deepEqual(configDifferences(older as unknown as RunConfig, old), []);
  assert.deepEqual(
    configDifferences(
      older as unknown as RunConfig,
      resolveConfig(options({ cosineDecay: { minLr: 0 }, weightDecay: 0.1 })),
    ),
    ["weightDecay: 0 in the run, 0.1 now"],
  );
});
