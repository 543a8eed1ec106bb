/**
 * On-the-fly data augmentation for training batches.
 *
 * A batch is a `[N, H, W, C]` float32 tensor with values in [0, 1]. Every image
 * gets its own random parameters: a horizontal flip, a small rotation, a zoom,
 * a shift (all composed into one affine matrix and applied in a single
 * bilinear resampling pass, areas moved in from outside the image are black),
 * then a contrast and brightness change (brightness scales pixels, so the black
 * background of a scan stays black). The result has the same shape and is
 * clipped to [0, 1].
 *
 * The random parameters are a pure function of `(seed, epoch, batch, index in
 * batch)`, so a training run that resumes at epoch k re-creates exactly the
 * augmentation it would have seen without the interruption:
 *
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyAugmentation } from "./augment.ts";
 * import { tf, type Tensor4D } from "../core/tf.ts";
 * const batch = tf.randomUniform([2, 16, 16, 1], 0, 1, "float32", 3) as Tensor4D;
 * const key = { seed: 42, epoch: 3, batch: 7 };
 * const seen = applyAugmentation(batch, key);
 * const afterRestart = applyAugmentation(batch, key);
 * assert.deepEqual(afterRestart.dataSync(), seen.dataSync());
 * tf.dispose([batch, seen, afterRestart]);
 * ```
 *
 * The geometric pass runs TensorFlow's `ImageProjectiveTransformV3` kernel.
 * tfjs-node 4.22 does not register a kernel for `tf.image.transform` on its
 * `tensorflow` backend ("Kernel 'Transform' not registered"), so on that
 * backend the native op is called through the backend directly; on any other
 * backend `tf.image.transform` is used, one image at a time (tfjs-backend-cpu
 * 4.22's kernel only transforms the first image of a batch). Both read the
 * same 8-number transform rows.
 *
 * @module
 */
import { type Tensor3D, type Tensor4D, tf } from "../core/tf.ts";
import { deriveSeed, rng } from "../core/random.ts";

/**
 * Which transforms to apply and how strong each may be. `false` or `0`
 * disables a transform. Every field is optional; see {@linkcode
 * DEFAULT_AUGMENT_OPTIONS} for the defaults.
 */
export interface AugmentOptions {
  /** Mirror left–right with probability 0.5. Default `true`. */
  flip?: boolean;
  /** Largest rotation, in degrees, either way (0–180). Default `10`. */
  rotation?: number | false;
  /**
   * Largest relative zoom, either way: the scale factor is drawn from
   * `[1 - zoom, 1 + zoom]` (0 ≤ zoom < 1). Default `0.1`.
   */
  zoom?: number | false;
  /**
   * Largest shift as a fraction of the width (horizontally) and of the height
   * (vertically), either way (0–1). Default `0.08`.
   */
  shift?: number | false;
  /**
   * Largest relative brightness change, either way: every pixel is multiplied
   * by a factor from `[1 - brightness, 1 + brightness]` (0–1), so black stays
   * black. Default `0.1`.
   */
  brightness?: number | false;
  /**
   * Largest relative contrast change, either way: pixels are stretched about
   * the image's mean by a factor from `[1 - contrast, 1 + contrast]`
   * (0 ≤ contrast < 1). Default `0.1`.
   */
  contrast?: number | false;
}

/** {@linkcode AugmentOptions} with every field filled in; `0` means off. */
export interface ResolvedAugmentOptions {
  /** Mirror left–right with probability 0.5. */
  flip: boolean;
  /** Largest rotation in degrees. */
  rotation: number;
  /** Largest relative zoom. */
  zoom: number;
  /** Largest shift as a fraction of the image size. */
  shift: number;
  /** Largest relative brightness change. */
  brightness: number;
  /** Largest relative contrast change. */
  contrast: number;
}

/** The defaults: flip, ±10°, ±10% zoom, ±8% shift, ±10% brightness, ±10% contrast. */
export const DEFAULT_AUGMENT_OPTIONS: Readonly<ResolvedAugmentOptions> = Object
  .freeze({
    flip: true,
    rotation: 10,
    zoom: 0.1,
    shift: 0.08,
    brightness: 0.1,
    contrast: 0.1,
  });

/** Identifies one batch of the augmentation stream. */
export interface AugmentKey {
  /** The run's seed. */
  seed: number;
  /** Epoch number (any integer; usually 0-based). */
  epoch: number;
  /** Batch number within the epoch (any integer; usually 0-based). */
  batch: number;
}

/** The concrete transform for one image. The identity is {@linkcode IDENTITY_PARAMS}. */
export interface AugmentParams {
  /** Mirror left–right. */
  flip: boolean;
  /** Rotation in degrees; positive turns the picture counter-clockwise. */
  rotation: number;
  /** Scale factor; above 1 zooms in (content looks bigger). */
  zoom: number;
  /** Horizontal shift as a fraction of the width; positive moves content right. */
  shiftX: number;
  /** Vertical shift as a fraction of the height; positive moves content down. */
  shiftY: number;
  /**
   * Relative brightness change: after the contrast change every pixel is
   * multiplied by `1 + brightness`; 0 leaves it alone.
   */
  brightness: number;
  /** Contrast factor about the image's per-channel mean; 1 leaves it alone. */
  contrast: number;
}

/** Parameters that leave an image unchanged. */
export const IDENTITY_PARAMS: Readonly<AugmentParams> = Object.freeze({
  flip: false,
  rotation: 0,
  zoom: 1,
  shiftX: 0,
  shiftY: 0,
  brightness: 0,
  contrast: 1,
});

function fail(problem: string): never {
  throw new Error(`augment: ${problem}`);
}

function range(
  name: keyof AugmentOptions,
  value: number | false | undefined,
  max: number,
  maxInclusive: boolean,
): number {
  if (value === undefined) return DEFAULT_AUGMENT_OPTIONS[name] as number;
  if (value === false) return 0;
  const ok = typeof value === "number" && Number.isFinite(value) &&
    value >= 0 && (maxInclusive ? value <= max : value < max);
  if (!ok) {
    fail(
      `option "${name}" must be false or a number in [0, ${max}${
        maxInclusive ? "]" : ")"
      }, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * Fills in defaults and checks ranges. `false` becomes `0`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveAugmentOptions } from "./augment.ts";
 * assert.deepEqual(resolveAugmentOptions({ rotation: false, zoom: 0.2 }), {
 *   flip: true,
 *   rotation: 0,
 *   zoom: 0.2,
 *   shift: 0.08,
 *   brightness: 0.1,
 *   contrast: 0.1,
 * });
 * assert.throws(() => resolveAugmentOptions({ zoom: 1 }), /"zoom" must be/);
 * ```
 */
export function resolveAugmentOptions(
  options: AugmentOptions = {},
): ResolvedAugmentOptions {
  const flip = options.flip ?? DEFAULT_AUGMENT_OPTIONS.flip;
  if (typeof flip !== "boolean") {
    fail(`option "flip" must be true or false, got ${String(flip)}`);
  }
  return {
    flip,
    rotation: range("rotation", options.rotation, 180, true),
    zoom: range("zoom", options.zoom, 1, false),
    shift: range("shift", options.shift, 1, true),
    brightness: range("brightness", options.brightness, 1, true),
    contrast: range("contrast", options.contrast, 1, false),
  };
}

function checkInteger(name: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    fail(`"${name}" must be an integer, got ${String(value)}`);
  }
}

/** Options for {@linkcode sampleAugmentParams}. */
export interface SampleAugmentParamsOptions extends AugmentOptions, AugmentKey {
  /** How many images the batch holds. */
  count: number;
}

/**
 * Draws the random parameters for each image of one batch. Image `i` of batch
 * `(seed, epoch, batch)` always gets the same parameters, whatever the batch
 * size, and switching one transform off does not change the others' values.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sampleAugmentParams } from "./augment.ts";
 * const key = { seed: 42, epoch: 0, batch: 0 };
 * const params = sampleAugmentParams({ ...key, count: 2 });
 * assert.equal(params.length, 2);
 * assert.ok(Math.abs(params[0].rotation) <= 10); // the default ±10°
 * // Image 1 gets the same parameters in a batch of 5, and without flips
 * // its rotation is unchanged.
 * assert.deepEqual(sampleAugmentParams({ ...key, count: 5 })[1], params[1]);
 * const noFlip = sampleAugmentParams({ ...key, count: 2, flip: false });
 * assert.equal(noFlip[1].rotation, params[1].rotation);
 * ```
 */
export function sampleAugmentParams(
  options: SampleAugmentParamsOptions,
): AugmentParams[] {
  const { seed, epoch, batch, count } = options;
  checkInteger("seed", seed);
  checkInteger("epoch", epoch);
  checkInteger("batch", batch);
  checkInteger("count", count);
  if (count < 0) fail(`"count" must not be negative, got ${count}`);
  const o = resolveAugmentOptions(options);
  const base = deriveSeed(seed, "augment");
  const out: AugmentParams[] = [];
  for (let i = 0; i < count; i++) {
    const r = rng(`${base}/${epoch}/${batch}/${i}`);
    // Always draw all seven numbers, in this order, so each transform's value
    // does not depend on which others are enabled.
    const u = Array.from({ length: 7 }, () => r.next());
    const sym = (k: number, max: number) =>
      max === 0 ? 0 : (2 * u[k] - 1) * max;
    out.push({
      flip: o.flip && u[0] < 0.5,
      rotation: sym(1, o.rotation),
      zoom: 1 + sym(2, o.zoom),
      shiftX: sym(3, o.shift),
      shiftY: sym(4, o.shift),
      brightness: sym(5, o.brightness),
      contrast: 1 + sym(6, o.contrast),
    });
  }
  return out;
}

/** Image size for {@linkcode affineTransform}. */
export interface ImageSize {
  /** Height in pixels. */
  height: number;
  /** Width in pixels. */
  width: number;
}

/**
 * The 8-number projective transform row `[a0, a1, a2, b0, b1, b2, c0, c1]`
 * for one image, in the form `tf.image.transform` and TensorFlow's
 * `ImageProjectiveTransformV3` take: it maps an OUTPUT pixel `(x, y)` (column,
 * row; integers are pixel centres) to the INPUT point `(a0 x + a1 y + a2,
 * b0 x + b1 y + b2)`. Forward, the image is flipped, rotated, scaled about its
 * centre, then shifted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { affineTransform, IDENTITY_PARAMS } from "./augment.ts";
 * const size = { height: 4, width: 4 };
 * // Output column x reads input column 3 - x: a mirror.
 * assert.deepEqual(
 *   affineTransform({ ...IDENTITY_PARAMS, flip: true }, size),
 *   [-1, 0, 3, 0, 1, 0, 0, 0],
 * );
 * assert.deepEqual(affineTransform(IDENTITY_PARAMS, size), [1, 0, 0, 0, 1, 0, 0, 0]);
 * ```
 */
export function affineTransform(
  params: AugmentParams,
  size: ImageSize,
): number[] {
  if (!(params.zoom > 0)) fail(`zoom must be positive, got ${params.zoom}`);
  const cx = (size.width - 1) / 2;
  const cy = (size.height - 1) / 2;
  const theta = params.rotation * Math.PI / 180;
  const cos = Math.cos(theta);
  const sin = Math.sin(theta);
  const f = params.flip ? -1 : 1;
  // Inverse of the forward map, A = F · R⁻¹ / zoom, where the forward rotation
  // (y pointing down, counter-clockwise on screen) is [[cos, sin], [-sin, cos]].
  const a00 = f * cos / params.zoom;
  const a01 = -f * sin / params.zoom;
  const a10 = sin / params.zoom;
  const a11 = cos / params.zoom;
  // input = A · (output - centre - shift) + centre
  const ox = cx + params.shiftX * size.width;
  const oy = cy + params.shiftY * size.height;
  const clean = (v: number) => Math.abs(v) < 1e-12 ? 0 : v;
  return [
    clean(a00),
    clean(a01),
    clean(cx - a00 * ox - a01 * oy),
    clean(a10),
    clean(a11),
    clean(cy - a10 * ox - a11 * oy),
    0,
    0,
  ];
}

function isGeometricIdentity(p: AugmentParams): boolean {
  return !p.flip && p.rotation === 0 && p.zoom === 1 && p.shiftX === 0 &&
    p.shiftY === 0;
}

type NativeBinding = {
  TF_ATTR_TYPE: number;
  TF_ATTR_STRING: number;
  TF_FLOAT: number;
};
type NativeBackend = {
  binding?: NativeBinding;
  executeSingleOutput?: (
    name: string,
    attrs: { name: string; type: number; value: unknown }[],
    inputs: unknown[],
  ) => Tensor4D;
};

/**
 * Bilinear projective resampling with constant 0 fill: the native
 * `ImageProjectiveTransformV3` op on the `tensorflow` backend, else
 * `tf.image.transform`.
 */
function projectiveTransform(images: Tensor4D, rows: number[][]): Tensor4D {
  return tf.tidy(() => {
    const transforms = tf.tensor2d(rows, [rows.length, 8], "float32");
    const backend = tf.backend() as unknown as NativeBackend;
    const b = backend.binding;
    if (
      tf.getBackend() === "tensorflow" && b !== undefined &&
      typeof backend.executeSingleOutput === "function"
    ) {
      const outputShape = tf.tensor1d(
        [images.shape[1], images.shape[2]],
        "int32",
      );
      const fillValue = tf.scalar(0, "float32");
      return backend.executeSingleOutput("ImageProjectiveTransformV3", [
        { name: "dtype", type: b.TF_ATTR_TYPE, value: b.TF_FLOAT },
        { name: "interpolation", type: b.TF_ATTR_STRING, value: "BILINEAR" },
        { name: "fill_mode", type: b.TF_ATTR_STRING, value: "CONSTANT" },
      ], [images, transforms, outputShape, fillValue]);
    }
    // tfjs-backend-cpu 4.22's Transform kernel returns after the first image
    // of a batch (the rest stay at the fill value), so go one image at a time.
    const one = (i: number) =>
      tf.image.transform(
        tf.slice(images, i, 1),
        tf.slice(transforms, i, 1),
        "bilinear",
        "constant",
        0,
      );
    return tf.concat(rows.map((_, i) => one(i)), 0);
  });
}

function checkBatch(batch: Tensor4D): void {
  if (batch.rank !== 4) {
    fail(`batch must be a [N, H, W, C] tensor, got shape [${batch.shape}]`);
  }
  if (batch.dtype !== "float32") {
    fail(`batch must be float32 in [0, 1], got ${batch.dtype}`);
  }
}

/**
 * Applies explicit per-image parameters to a batch (one `AugmentParams` per
 * image). Returns a new float32 tensor of the same shape, clipped to [0, 1];
 * the caller disposes both. Useful for tests and for showing a chosen
 * transform; training uses {@linkcode applyAugmentation}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { augmentWithParams, IDENTITY_PARAMS } from "./augment.ts";
 * import { tf } from "../core/tf.ts";
 * // A 1×3 image [0, 0.5, 1], mirrored.
 * const x = tf.tensor4d([0, 0.5, 1], [1, 1, 3, 1]);
 * const y = augmentWithParams(x, [{ ...IDENTITY_PARAMS, flip: true }]);
 * assert.deepEqual(y.shape, [1, 1, 3, 1]);
 * assert.deepEqual(Array.from(y.dataSync()), [1, 0.5, 0]);
 * tf.dispose([x, y]);
 * ```
 */
export function augmentWithParams(
  batch: Tensor4D,
  params: readonly AugmentParams[],
): Tensor4D {
  checkBatch(batch);
  const [n, height, width] = batch.shape;
  if (params.length !== n) {
    fail(`got ${params.length} parameter sets for a batch of ${n} images`);
  }
  return tf.tidy(() => {
    let x: Tensor4D = batch;
    if (n > 0 && !params.every(isGeometricIdentity)) {
      const rows = params.map((p) => affineTransform(p, { height, width }));
      x = projectiveTransform(x, rows);
    }
    const photometric = params.some((p) =>
      p.brightness !== 0 || p.contrast !== 1
    );
    if (n > 0 && photometric) {
      // ((x - mean) * c + mean) * (1 + b), computed as x * scale + mean * k
      // with scale = c (1 + b) and k = (1 - c)(1 + b), so that only two
      // full-size passes run before the clip.
      const perImage = (f: (p: AugmentParams) => number) =>
        tf.tensor4d(params.map(f), [n, 1, 1, 1]);
      const scale = perImage((p) => p.contrast * (1 + p.brightness));
      const k = perImage((p) => (1 - p.contrast) * (1 + p.brightness));
      const mean = tf.mean(x, [1, 2], true);
      x = tf.add(tf.mul(x, scale), tf.mul(mean, k));
    }
    return tf.clipByValue(x, 0, 1);
  });
}

/** Options for {@linkcode applyAugmentation}: the batch's key plus the ranges. */
export interface ApplyAugmentationOptions extends AugmentOptions, AugmentKey {}

/**
 * Augments one training batch. The output is a pure function of the input and
 * `(seed, epoch, batch)`, so a resumed run reproduces the stream exactly.
 * Returns a new tensor; the caller disposes both.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyAugmentation } from "./augment.ts";
 * import { tf, type Tensor4D } from "../core/tf.ts";
 * const x = tf.randomUniform([4, 32, 32, 1], 0, 1, "float32", 1) as Tensor4D;
 * const key = { seed: 42, epoch: 3, batch: 17 };
 * const y = applyAugmentation(x, key);
 * const again = applyAugmentation(x, key); // a resumed run sees the same
 * assert.deepEqual(y.shape, [4, 32, 32, 1]);
 * assert.deepEqual(y.dataSync(), again.dataSync());
 * tf.dispose([x, y, again]);
 * ```
 */
export function applyAugmentation(
  batch: Tensor4D,
  options: ApplyAugmentationOptions,
): Tensor4D {
  checkBatch(batch);
  const params = sampleAugmentParams({ ...options, count: batch.shape[0] });
  return augmentWithParams(batch, params);
}

/** Where an {@linkcode Augmenter} is in its stream. */
export interface AugmenterState {
  /** The seed it was created with. */
  seed: number;
  /** How many batches it has augmented since creation or `reset()`. */
  step: number;
}

/** A stateful wrapper around {@linkcode applyAugmentation}. */
export interface Augmenter {
  /** Augments a batch and advances the stream by one step. */
  apply(batch: Tensor4D): Tensor4D;
  /** Goes back to step 0. */
  reset(): void;
  /** The current position, to save and pass back to `createAugmenter`. */
  state(): AugmenterState;
}

/** Options for {@linkcode createAugmenter}. */
export interface CreateAugmenterOptions extends AugmentOptions {
  /** The run's seed. */
  seed: number;
  /** Step to start at (for resuming from a saved `state()`). Default 0. */
  step?: number;
}

/**
 * Creates an augmenter that keeps its own position. Its call number `step`
 * (0-based) gives the same result as `applyAugmentation(batch, { seed, epoch:
 * 0, batch: step })`. Prefer `applyAugmentation` with the real epoch and batch
 * numbers in training loops; this is for code that has no such numbers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyAugmentation, createAugmenter } from "./augment.ts";
 * import { tf, type Tensor4D } from "../core/tf.ts";
 * const aug = createAugmenter({ seed: 7, rotation: 5 });
 * const x = tf.randomUniform([2, 16, 16, 1], 0, 1, "float32", 1) as Tensor4D;
 * const first = aug.apply(x);
 * const saved = aug.state();
 * assert.deepEqual(saved, { seed: 7, step: 1 });
 * // A new augmenter resumed at the saved step continues the same stream.
 * const resumed = createAugmenter({ seed: 7, rotation: 5, step: saved.step });
 * const second = resumed.apply(x);
 * const expected = applyAugmentation(x, { seed: 7, rotation: 5, epoch: 0, batch: 1 });
 * assert.deepEqual(second.dataSync(), expected.dataSync());
 * tf.dispose([x, first, second, expected]);
 * ```
 */
export function createAugmenter(options: CreateAugmenterOptions): Augmenter {
  const { seed, step: start = 0, ...ranges } = options;
  checkInteger("seed", seed);
  checkInteger("step", start);
  resolveAugmentOptions(ranges);
  let step = start;
  return {
    apply(batch: Tensor4D): Tensor4D {
      const out = applyAugmentation(batch, {
        ...ranges,
        seed,
        epoch: 0,
        batch: step,
      });
      step++;
      return out;
    },
    reset() {
      step = 0;
    },
    state() {
      return { seed, step };
    },
  };
}

/** Options for {@linkcode augmentationGrid}. */
export interface AugmentationGridOptions extends AugmentOptions {
  /**
   * The image: raw uint8 pixels (`size × size × channels`, row-major,
   * channels interleaved), or a `[H, W, C]` tensor (float32 in [0, 1], or
   * int32 in [0, 255]).
   */
  image: Uint8Array | Tensor3D;
  /**
   * Side length in pixels. Required for a `Uint8Array`; for a tensor it is
   * optional and, if it differs from the tensor's size, the tensor is resized
   * (bilinear) to `size × size` first.
   */
  size?: number;
  /** Seed for the variants. */
  seed: number;
  /** How many variants. Default 8. */
  count?: number;
  /** Put the unchanged image first (it counts towards `count`). Default false. */
  includeOriginal?: boolean;
}

/**
 * Augmented variants of one image as uint8 pixel arrays (same layout as the
 * input), for showing in a notebook grid. Variant `i` is what image `i` of
 * batch `(seed, epoch 0, batch 0)` would get.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { augmentationGrid } from "./augment.ts";
 * const image = new Uint8Array(64 * 64).map((_, i) => (i % 64) * 4);
 * const variants = augmentationGrid({
 *   image,
 *   size: 64,
 *   seed: 1,
 *   count: 6,
 *   includeOriginal: true,
 * });
 * assert.equal(variants.length, 6);
 * assert.equal(variants[0].length, 64 * 64);
 * assert.deepEqual(variants[0], image); // the unchanged image comes first
 * ```
 */
export function augmentationGrid(
  options: AugmentationGridOptions,
): Uint8Array[] {
  const { image, size, seed, count = 8, includeOriginal = false, ...ranges } =
    options;
  checkInteger("count", count);
  if (count < 0) fail(`"count" must not be negative, got ${count}`);
  if (size !== undefined && (!Number.isSafeInteger(size) || size <= 0)) {
    fail(`"size" must be a positive integer, got ${String(size)}`);
  }
  const out: Uint8Array[] = [];
  tf.tidy(() => {
    let x: Tensor3D;
    if (image instanceof Uint8Array) {
      if (size === undefined) fail(`"size" is required for a Uint8Array image`);
      const channels = image.length / (size * size);
      if (!Number.isInteger(channels) || channels < 1) {
        fail(
          `a ${size}×${size} image cannot have ${image.length} bytes ` +
            `(expected size × size × channels)`,
        );
      }
      x = tf.div(tf.tensor3d(image, [size, size, channels], "float32"), 255);
    } else {
      if (image.rank !== 3) {
        fail(`image tensor must be [H, W, C], got shape [${image.shape}]`);
      }
      x = image.dtype === "float32"
        ? image
        : tf.div(tf.cast(image, "float32"), 255);
      if (
        size !== undefined &&
        (image.shape[0] !== size || image.shape[1] !== size)
      ) {
        x = tf.image.resizeBilinear(x, [size, size]);
      }
    }
    const n = includeOriginal ? Math.max(count - 1, 0) : count;
    const batch = tf.tile(tf.expandDims(x, 0), [n, 1, 1, 1]) as Tensor4D;
    const augmented = applyAugmentation(batch, {
      ...ranges,
      seed,
      epoch: 0,
      batch: 0,
    });
    const toBytes = (t: Tensor3D) =>
      Uint8Array.from(
        tf.clipByValue(t, 0, 1).dataSync(),
        (v) => Math.round(v * 255),
      );
    if (includeOriginal && count > 0) out.push(toBytes(x));
    for (let i = 0; i < n; i++) {
      out.push(toBytes(tf.squeeze(tf.slice(augmented, i, 1), [0])));
    }
  });
  return out;
}
