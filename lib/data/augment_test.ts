import assert from "node:assert/strict";
import {
  affineTransform,
  applyAugmentation,
  augmentationGrid,
  type AugmentOptions,
  augmentWithParams,
  createAugmenter,
  DEFAULT_AUGMENT_OPTIONS,
  IDENTITY_PARAMS,
  resolveAugmentOptions,
  sampleAugmentParams,
} from "./augment.ts";
import { type Tensor3D, type Tensor4D, tf } from "../core/tf.ts";

const OFF: AugmentOptions = {
  flip: false,
  rotation: false,
  zoom: false,
  shift: false,
  brightness: false,
  contrast: false,
};

/** A [n, size, size, 1] batch of smooth, varied test images in [0, 1]. */
function testBatch(n: number, size: number): Tensor4D {
  const values = new Float32Array(n * size * size);
  let k = 0;
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        values[k++] = 0.5 + 0.4 * Math.sin((x + 2 * b) / 3) * Math.cos(y / 4);
      }
    }
  }
  return tf.tensor4d(values, [n, size, size, 1]);
}

/** One image from a function of (row, column). */
function image(
  size: number,
  f: (row: number, col: number) => number,
): Tensor4D {
  const values = new Float32Array(size * size);
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) values[r * size + c] = f(r, c);
  }
  return tf.tensor4d(values, [1, size, size, 1]);
}

function valuesOf(t: Tensor4D): Float32Array {
  return t.dataSync() as Float32Array;
}

function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s / a.length;
}

function std(a: ArrayLike<number>): number {
  const m = mean(a);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - m) ** 2;
  return Math.sqrt(s / a.length);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

Deno.test("applyAugmentation keeps shape and dtype and stays in [0, 1]", () => {
  const start = tf.memory().numTensors;
  const x = testBatch(8, 32);
  const y = applyAugmentation(x, {
    seed: 1,
    epoch: 0,
    batch: 0,
    brightness: 0.5,
    contrast: 0.5,
  });
  assert.deepEqual(y.shape, [8, 32, 32, 1]);
  assert.equal(y.dtype, "float32");
  const v = valuesOf(y);
  assert.ok(v.every((p) => p >= 0 && p <= 1));
  assert.ok(maxAbsDiff(v, valuesOf(x)) > 0.05, "output should differ");
  tf.dispose([x, y]);
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("applyAugmentation handles 3 channels", () => {
  const x = tf.randomUniform([2, 16, 20, 3], 0, 1, "float32", 5) as Tensor4D;
  const y = applyAugmentation(x, { seed: 3, epoch: 1, batch: 2 });
  assert.deepEqual(y.shape, [2, 16, 20, 3]);
  tf.dispose([x, y]);
});

Deno.test("same seed, epoch and batch give identical output; any change differs", () => {
  const start = tf.memory().numTensors;
  const x = testBatch(6, 24);
  const run = (seed: number, epoch: number, batch: number) => {
    const y = applyAugmentation(x, { seed, epoch, batch });
    const v = valuesOf(y).slice();
    y.dispose();
    return v;
  };
  const base = run(42, 3, 7);
  assert.deepEqual(run(42, 3, 7), base);
  assert.ok(maxAbsDiff(run(43, 3, 7), base) > 0.01, "seed");
  assert.ok(maxAbsDiff(run(42, 4, 7), base) > 0.01, "epoch");
  assert.ok(maxAbsDiff(run(42, 3, 8), base) > 0.01, "batch");
  x.dispose();
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("every image in a batch gets its own parameters", () => {
  const params = sampleAugmentParams({
    seed: 1,
    epoch: 0,
    batch: 0,
    count: 16,
  });
  const rotations = new Set(params.map((p) => p.rotation));
  assert.equal(rotations.size, 16);
  const flips = params.filter((p) => p.flip).length;
  assert.ok(flips > 0 && flips < 16, `flips: ${flips}`);
});

Deno.test("sampleAugmentParams respects the ranges and is independent of batch size", () => {
  const d = DEFAULT_AUGMENT_OPTIONS;
  const params = sampleAugmentParams({
    seed: 9,
    epoch: 2,
    batch: 5,
    count: 200,
  });
  for (const p of params) {
    assert.ok(Math.abs(p.rotation) <= d.rotation);
    assert.ok(Math.abs(p.zoom - 1) <= d.zoom);
    assert.ok(Math.abs(p.shiftX) <= d.shift && Math.abs(p.shiftY) <= d.shift);
    assert.ok(Math.abs(p.brightness) <= d.brightness);
    assert.ok(Math.abs(p.contrast - 1) <= d.contrast);
  }
  // Values spread over the range, not stuck near zero.
  assert.ok(Math.max(...params.map((p) => Math.abs(p.rotation))) > 8);
  const few = sampleAugmentParams({ seed: 9, epoch: 2, batch: 5, count: 3 });
  assert.deepEqual(few, params.slice(0, 3));
});

Deno.test("disabling one transform leaves the others' values unchanged", () => {
  const key = { seed: 11, epoch: 0, batch: 0, count: 5 };
  const all = sampleAugmentParams(key);
  const noRotation = sampleAugmentParams({ ...key, rotation: false });
  for (let i = 0; i < all.length; i++) {
    assert.equal(noRotation[i].rotation, 0);
    assert.deepEqual({ ...noRotation[i], rotation: all[i].rotation }, all[i]);
  }
});

Deno.test("with everything disabled the output equals the input", () => {
  const start = tf.memory().numTensors;
  const x = testBatch(4, 16);
  const y = applyAugmentation(x, { ...OFF, seed: 5, epoch: 0, batch: 0 });
  assert.notEqual(y, x, "returns a new tensor");
  assert.deepEqual(valuesOf(y), valuesOf(x));
  tf.dispose([x, y]);
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("flip turns a bright left half into a bright right half", () => {
  const x = image(8, (_r, c) => (c < 4 ? 1 : 0));
  const mirrored = image(8, (_r, c) => (c >= 4 ? 1 : 0));
  const y = augmentWithParams(x, [{ ...IDENTITY_PARAMS, flip: true }]);
  assert.ok(maxAbsDiff(valuesOf(y), valuesOf(mirrored)) < 1e-6);
  tf.dispose([x, mirrored, y]);
});

Deno.test("random flip alone gives either the image or its mirror, both occurring", () => {
  const n = 16;
  const one = image(8, (_r, c) => (c < 4 ? 1 : 0));
  const x = tf.tile(one, [n, 1, 1, 1]) as Tensor4D;
  const y = applyAugmentation(x, {
    ...OFF,
    flip: true,
    seed: 2,
    epoch: 0,
    batch: 0,
  });
  const v = valuesOf(y);
  let flipped = 0;
  for (let i = 0; i < n; i++) {
    const img = v.subarray(i * 64, (i + 1) * 64);
    const leftBright = img[0] === 1 && img[7] === 0;
    const rightBright = img[0] === 0 && img[7] === 1;
    assert.ok(leftBright || rightBright, `image ${i} is neither`);
    assert.equal(mean(img), 0.5);
    if (rightBright) flipped++;
  }
  assert.ok(flipped > 0 && flipped < n, `flipped ${flipped} of ${n}`);
  tf.dispose([one, x, y]);
});

Deno.test("rotation by 90° turns the picture counter-clockwise about the centre", () => {
  // 5×5, one bright pixel at row 2, column 4 (right of centre). Turned 90°
  // counter-clockwise it lands at row 0, column 2 (above centre).
  const x = image(5, (r, c) => (r === 2 && c === 4 ? 1 : 0));
  const y = augmentWithParams(x, [{ ...IDENTITY_PARAMS, rotation: 90 }]);
  const v = valuesOf(y);
  assert.ok(Math.abs(v[0 * 5 + 2] - 1) < 1e-5, `at (0, 2): ${v[2]}`);
  assert.ok(Math.abs(mean(v) - 1 / 25) < 1e-5);
  tf.dispose([x, y]);
});

Deno.test("shift moves content right and down by the given fraction", () => {
  // 10×10, bright pixel at row 3, column 2; shift by +0.2 width and +0.1 height.
  const x = image(10, (r, c) => (r === 3 && c === 2 ? 1 : 0));
  const y = augmentWithParams(x, [{
    ...IDENTITY_PARAMS,
    shiftX: 0.2,
    shiftY: 0.1,
  }]);
  const v = valuesOf(y);
  assert.ok(Math.abs(v[4 * 10 + 4] - 1) < 1e-5);
  assert.ok(Math.abs(mean(v) - 1 / 100) < 1e-5);
  tf.dispose([x, y]);
});

Deno.test("zoom above 1 enlarges a centred square, below 1 shrinks it", () => {
  // 16×16 with a bright 8×8 square in the middle: 64 bright pixels.
  const x = image(16, (r, c) => (r >= 4 && r < 12 && c >= 4 && c < 12 ? 1 : 0));
  const bigger = augmentWithParams(x, [{ ...IDENTITY_PARAMS, zoom: 1.5 }]);
  const smaller = augmentWithParams(x, [{ ...IDENTITY_PARAMS, zoom: 0.5 }]);
  const sum = (t: Tensor4D) => mean(valuesOf(t)) * 256;
  assert.ok(sum(bigger) > 64 * 1.5, `bigger: ${sum(bigger)}`);
  assert.ok(sum(smaller) < 64 * 0.5, `smaller: ${sum(smaller)}`);
  // The centre stays bright, the corners stay dark.
  assert.equal(valuesOf(smaller)[7 * 16 + 7], 1);
  assert.equal(valuesOf(bigger)[0], 0);
  tf.dispose([x, bigger, smaller]);
});

Deno.test("brightness scales the mean; contrast scales the spread about the mean", () => {
  const x = testBatch(1, 16); // values in [0.1, 0.9]: no clipping below
  const m0 = mean(valuesOf(x));
  const s0 = std(valuesOf(x));
  const brighter = augmentWithParams(x, [{
    ...IDENTITY_PARAMS,
    brightness: 0.08,
  }]);
  const darker = augmentWithParams(x, [{
    ...IDENTITY_PARAMS,
    brightness: -0.08,
  }]);
  assert.ok(Math.abs(mean(valuesOf(brighter)) - m0 * 1.08) < 1e-5);
  assert.ok(Math.abs(mean(valuesOf(darker)) - m0 * 0.92) < 1e-5);
  const more = augmentWithParams(x, [{ ...IDENTITY_PARAMS, contrast: 1.1 }]);
  const less = augmentWithParams(x, [{ ...IDENTITY_PARAMS, contrast: 0.5 }]);
  assert.ok(Math.abs(std(valuesOf(more)) - 1.1 * s0) < 1e-4);
  assert.ok(Math.abs(std(valuesOf(less)) - 0.5 * s0) < 1e-4);
  assert.ok(Math.abs(mean(valuesOf(less)) - m0) < 1e-5);
  tf.dispose([x, brighter, darker, more, less]);
});

Deno.test("brightness alone via applyAugmentation scales each image by a constant", () => {
  const x = testBatch(4, 16);
  const key = { ...OFF, brightness: 0.1, seed: 8, epoch: 0, batch: 0 };
  const y = applyAugmentation(x, key);
  const params = sampleAugmentParams({ ...key, count: 4 });
  const xv = valuesOf(x);
  const yv = valuesOf(y);
  for (let i = 0; i < 4; i++) {
    const d = params[i].brightness;
    assert.ok(d !== 0 && Math.abs(d) <= 0.1);
    for (let j = i * 256; j < (i + 1) * 256; j++) {
      assert.ok(Math.abs(yv[j] - xv[j] * (1 + d)) < 1e-6);
    }
  }
  tf.dispose([x, y]);
});

Deno.test("output is clipped to [0, 1]", () => {
  const x = image(4, () => 0.95);
  const y = augmentWithParams(x, [{ ...IDENTITY_PARAMS, brightness: 0.2 }]);
  assert.ok(valuesOf(y).every((v) => v === 1));
  tf.dispose([x, y]);
});

Deno.test("affineTransform composes flip, rotation, zoom and shift", () => {
  const size = { height: 4, width: 6 };
  assert.deepEqual(affineTransform(IDENTITY_PARAMS, size), [
    1,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
  ]);
  assert.deepEqual(
    affineTransform({ ...IDENTITY_PARAMS, flip: true }, size),
    [-1, 0, 5, 0, 1, 0, 0, 0],
  );
  // Forward map: the input point, sent through flip → rotate → zoom → shift,
  // must come back to itself through the row.
  const p = {
    ...IDENTITY_PARAMS,
    flip: true,
    rotation: 30,
    zoom: 1.2,
    shiftX: 0.1,
    shiftY: -0.05,
  };
  const row = affineTransform(p, size);
  const [cx, cy] = [2.5, 1.5];
  const t = (30 * Math.PI) / 180;
  const inX = 1, inY = 3;
  const fx = -(inX - cx), fy = inY - cy;
  const rx = Math.cos(t) * fx + Math.sin(t) * fy;
  const ry = -Math.sin(t) * fx + Math.cos(t) * fy;
  const outX = cx + 1.2 * rx + 0.1 * 6, outY = cy + 1.2 * ry - 0.05 * 4;
  const backX = row[0] * outX + row[1] * outY + row[2];
  const backY = row[3] * outX + row[4] * outY + row[5];
  assert.ok(Math.abs(backX - inX) < 1e-9 && Math.abs(backY - inY) < 1e-9);
});

Deno.test("createAugmenter advances, resets and resumes its stream", () => {
  const start = tf.memory().numTensors;
  const x = testBatch(3, 16);
  const aug = createAugmenter({ seed: 4, zoom: 0.2 });
  const first = aug.apply(x);
  const second = aug.apply(x);
  assert.deepEqual(aug.state(), { seed: 4, step: 2 });
  assert.ok(maxAbsDiff(valuesOf(first), valuesOf(second)) > 0.01);
  const direct = applyAugmentation(x, {
    seed: 4,
    zoom: 0.2,
    epoch: 0,
    batch: 1,
  });
  assert.deepEqual(valuesOf(second), valuesOf(direct));
  const resumed = createAugmenter({ seed: 4, zoom: 0.2, step: 1 });
  const again = resumed.apply(x);
  assert.deepEqual(valuesOf(again), valuesOf(second));
  aug.reset();
  const restarted = aug.apply(x);
  assert.deepEqual(valuesOf(restarted), valuesOf(first));
  tf.dispose([x, first, second, direct, again, restarted]);
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("bad options and inputs fail with clear errors", () => {
  assert.throws(
    () => resolveAugmentOptions({ rotation: -1 }),
    /augment: option "rotation"/,
  );
  assert.throws(() => resolveAugmentOptions({ zoom: 1 }), /option "zoom"/);
  assert.throws(
    () => resolveAugmentOptions({ contrast: Number.NaN }),
    /option "contrast"/,
  );
  assert.deepEqual(resolveAugmentOptions({ shift: false, flip: false }), {
    ...DEFAULT_AUGMENT_OPTIONS,
    shift: 0,
    flip: false,
  });
  const start = tf.memory().numTensors;
  const x = tf.zeros([4, 4, 1]) as Tensor3D;
  assert.throws(
    () =>
      applyAugmentation(x as unknown as Tensor4D, {
        seed: 1,
        epoch: 0,
        batch: 0,
      }),
    /\[N, H, W, C\]/,
  );
  const b = tf.zeros([2, 4, 4, 1]) as Tensor4D;
  assert.throws(
    () => augmentWithParams(b, [IDENTITY_PARAMS]),
    /1 parameter sets for a batch of 2/,
  );
  assert.throws(
    () => applyAugmentation(b, { seed: 1, epoch: 0.5, batch: 0 }),
    /"epoch" must be an integer/,
  );
  tf.dispose([x, b]);
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("augmentationGrid returns uint8 variants of a Uint8Array image", () => {
  const start = tf.memory().numTensors;
  const size = 32;
  const img = new Uint8Array(size * size).map((
    _,
    i,
  ) => (i % size < 16 ? 200 : 20));
  const variants = augmentationGrid({ image: img, size, seed: 3, count: 6 });
  assert.equal(variants.length, 6);
  for (const v of variants) {
    assert.ok(v instanceof Uint8Array);
    assert.equal(v.length, size * size);
  }
  assert.notDeepEqual(variants[0], variants[1]);
  assert.deepEqual(
    augmentationGrid({ image: img, size, seed: 3, count: 6 }),
    variants,
  );
  const withOriginal = augmentationGrid({
    image: img,
    size,
    seed: 3,
    count: 3,
    includeOriginal: true,
  });
  assert.deepEqual(withOriginal[0], img);
  const unchanged = augmentationGrid({
    ...OFF,
    image: img,
    size,
    seed: 3,
    count: 2,
  });
  assert.deepEqual(unchanged, [img, img]);
  assert.throws(
    () => augmentationGrid({ image: img, size: 30, seed: 1 }),
    /cannot have 1024 bytes/,
  );
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("augmentationGrid accepts a float tensor and resizes it to size", () => {
  const start = tf.memory().numTensors;
  const t = tf.fill([20, 20, 1], 0.5) as Tensor3D;
  const variants = augmentationGrid({
    ...OFF,
    image: t,
    size: 10,
    seed: 1,
    count: 2,
  });
  assert.equal(variants.length, 2);
  assert.equal(variants[0].length, 100);
  assert.ok(variants[0].every((v) => v === 128));
  const same = augmentationGrid({ image: t, seed: 1, count: 1 });
  assert.equal(same[0].length, 400);
  t.dispose();
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("native transform matches tf.image.transform on the cpu backend", async () => {
  assert.equal(tf.getBackend(), "tensorflow");
  const x = testBatch(4, 24);
  const key = { seed: 21, epoch: 1, batch: 2, rotation: 30, zoom: 0.3 };
  const native = applyAugmentation(x, key);
  const nativeValues = valuesOf(native).slice();
  const quiet = tf.env().getBool("IS_TEST"); // silences tfjs's "use tfjs-node" notice
  tf.env().set("IS_TEST", true);
  assert.ok(await tf.setBackend("cpu"));
  try {
    const xCpu = tf.tensor4d(valuesOf(x), x.shape);
    const viaTfjs = applyAugmentation(xCpu, key);
    assert.ok(maxAbsDiff(valuesOf(viaTfjs), nativeValues) < 1e-5);
    tf.dispose([xCpu, viaTfjs]);
  } finally {
    assert.ok(await tf.setBackend("tensorflow"));
    tf.env().set("IS_TEST", quiet);
  }
  tf.dispose([x, native]);
});

Deno.test("brightness keeps a black background black", () => {
  const x = image(8, (_r, c) => (c < 4 ? 0 : 0.5));
  const y = augmentWithParams(x, [{ ...IDENTITY_PARAMS, brightness: 0.1 }]);
  const v = valuesOf(y);
  for (let i = 0; i < 64; i++) {
    assert.ok(Math.abs(v[i] - (i % 8 < 4 ? 0 : 0.55)) < 1e-6, `pixel ${i}`);
  }
  tf.dispose([x, y]);
});
