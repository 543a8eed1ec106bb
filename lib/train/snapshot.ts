/**
 * Weight snapshots: a model's weights (or any tensors) as one block of
 * float32 bytes, and back. Training keeps the best epoch's weights and the
 * weights' moving average this way, in memory and in the checkpoint
 * (`best.bin`, `ema.bin`).
 *
 * @example A snapshot puts a model's weights back exactly
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../core/tf.ts";
 * import { restoreSnapshot, weightSnapshot } from "./snapshot.ts";
 *
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
 * const before = weightSnapshot(model);
 * const zeros = model.getWeights().map((w) => tf.zerosLike(w));
 * model.setWeights(zeros);
 * tf.dispose(zeros);
 * restoreSnapshot(model, before);
 * assert.deepEqual(weightSnapshot(model), before);
 * model.dispose();
 * ```
 *
 * @module
 */
import { type LayersModel, type Tensor, tf } from "../core/tf.ts";

/**
 * The values of `tensors`, float32, one after the other.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../core/tf.ts";
 * import { tensorsSnapshot } from "./snapshot.ts";
 * const tensors = [tf.tensor1d([1, 2]), tf.scalar(3)];
 * const bytes = tensorsSnapshot(tensors);
 * assert.deepEqual(Array.from(new Float32Array(bytes.buffer)), [1, 2, 3]);
 * tf.dispose(tensors);
 * ```
 */
export function tensorsSnapshot(values: readonly Tensor[]): Uint8Array {
  const total = values.reduce((s, t) => s + t.size, 0);
  const out = new Float32Array(total);
  let offset = 0;
  for (const t of values) {
    out.set(t.dataSync() as Float32Array, offset);
    offset += t.size;
  }
  return new Uint8Array(out.buffer);
}

/**
 * New tensors, shaped like `like`, holding a {@linkcode tensorsSnapshot};
 * throws when the sizes do not match. They are the caller's to dispose.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../core/tf.ts";
 * import { snapshotTensors } from "./snapshot.ts";
 * const bytes = new Uint8Array(Float32Array.from([1, 2, 3]).buffer);
 * const [a, b] = snapshotTensors(bytes, [
 *   { shape: [2], dtype: "float32" },
 *   { shape: [], dtype: "float32" },
 * ]);
 * assert.deepEqual(Array.from(a.dataSync()), [1, 2]);
 * assert.equal(b.dataSync()[0], 3);
 * tf.dispose([a, b]);
 * assert.throws(() => snapshotTensors(bytes, [{ shape: [2], dtype: "float32" }]), /holds 3 values, the model 2/);
 * ```
 */
export function snapshotTensors(
  bytes: Uint8Array,
  like: readonly { shape: readonly (number | null)[]; dtype: string }[],
): Tensor[] {
  const floats = new Float32Array(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  );
  const sizeOf = (shape: readonly (number | null)[]) =>
    (shape as number[]).reduce((a, b) => a * b, 1);
  const total = like.reduce((s, w) => s + sizeOf(w.shape), 0);
  if (total !== floats.length) {
    throw new Error(
      `weights snapshot holds ${floats.length} values, the model ${total}`,
    );
  }
  let offset = 0;
  return like.map((w) => {
    const n = sizeOf(w.shape);
    const t = tf.tensor(
      floats.subarray(offset, offset + n),
      w.shape as number[],
      w.dtype as "float32",
    );
    offset += n;
    return t;
  });
}

/**
 * A snapshot of all of a model's weights (trainable and not), in
 * `model.weights` order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../core/tf.ts";
 * import { weightSnapshot } from "./snapshot.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
 * assert.equal(weightSnapshot(model).byteLength, 4 * (3 * 2 + 2));
 * model.dispose();
 * ```
 */
export function weightSnapshot(model: LayersModel): Uint8Array {
  return tensorsSnapshot(model.getWeights());
}

/**
 * Puts a {@linkcode weightSnapshot} back into a model (same architecture).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../core/tf.ts";
 * import { restoreSnapshot, weightSnapshot } from "./snapshot.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] });
 * restoreSnapshot(model, new Uint8Array(Float32Array.from([2, 3]).buffer));
 * assert.deepEqual(Array.from(new Float32Array(weightSnapshot(model).buffer)), [2, 3]);
 * model.dispose();
 * ```
 */
export function restoreSnapshot(model: LayersModel, bytes: Uint8Array): void {
  const tensors = snapshotTensors(bytes, model.weights);
  model.setWeights(tensors);
  tf.dispose(tensors);
}
