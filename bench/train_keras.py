"""Keras peer of bench/train.ts: trains the seed CNN on the same tensors.

Run by bench/train.ts (which installs TensorFlow into .cache/bench-venv and
writes the data); prints one JSON line with the timings on stdout.

  python bench/train_keras.py --x x.f32 --y y.i32 --n 320 --size 128 \
      --channels 1 --classes 4 --batch 32 --epochs 3 [--jit] \
      [--steps-per-execution 10]

The architecture is the seed notebook's, layer for layer as lib/model/models.ts
builds it (bench/keras_seed_cnn.py): Conv2D(32,3,relu) MaxPool(2)
Conv2D(64,3,relu) MaxPool(2) Conv2D(128,3,relu) MaxPool(2) Flatten
Dense(128,relu) Dropout(0.5) Dense(classes,softmax); Adam(1e-3), sparse
categorical cross-entropy, accuracy.
"""

import argparse
import json
import os
import sys
import time

from keras_seed_cnn import seed_cnn


def vm_hwm_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def cpu_seconds():
    t = os.times()
    return t.user + t.system


def median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--x", required=True, help="float32 images, N*size*size*channels, little-endian")
    p.add_argument("--y", required=True, help="int32 labels, N, little-endian")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3, help="first one is the warm-up")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--jit", action="store_true", help="compile the train step with XLA")
    p.add_argument("--steps-per-execution", type=int, default=1,
                   help="train steps per tf.function call")
    p.add_argument("--inference-reps", type=int, default=30)
    p.add_argument("--no-inference", action="store_true", help="skip the inference timings")
    args = p.parse_args()

    import numpy as np

    started = time.perf_counter()
    import keras
    import tensorflow as tf
    from keras import layers  # noqa: F401 (timed with the other imports)

    import_s = time.perf_counter() - started
    keras.utils.set_random_seed(args.seed)

    x = np.fromfile(args.x, dtype="<f4")
    y = np.fromfile(args.y, dtype="<i4")
    want = args.n * args.size * args.size * args.channels
    if x.size != want or y.size != args.n:
        sys.exit(f"train_keras.py: {args.x} has {x.size} floats (want {want}) "
                 f"or {args.y} has {y.size} labels (want {args.n})")
    x = x.reshape(args.n, args.size, args.size, args.channels)

    model = seed_cnn(keras, args.size, args.channels, args.classes)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=args.jit,
        steps_per_execution=args.steps_per_execution,
    )

    epochs = []
    losses = []
    for _ in range(args.epochs):
        t0, c0 = time.perf_counter(), cpu_seconds()
        h = model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, shuffle=False)
        epochs.append({
            "wallMs": (time.perf_counter() - t0) * 1000,
            "cpuMs": (cpu_seconds() - c0) * 1000,
        })
        losses.append(float(h.history["loss"][0]))

    # Inference: Keras gets the fastest of its ways for each case (the direct
    # call, predict_on_batch, a tf.function of the call), results
    # materialised as NumPy arrays.
    one = x[:1]
    batch = x[: args.batch]
    fn = tf.function(lambda t: model(t, training=False))
    ways = {
        "call": lambda t: model(t, training=False).numpy(),
        "predict_on_batch": lambda t: model.predict_on_batch(t),
        "tf.function": lambda t: fn(tf.constant(t)).numpy(),
    }

    def fastest(data, reps):
        best = None
        for name, way in ways.items():
            for _ in range(3):
                way(data)
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                way(data)
                times.append((time.perf_counter() - t0) * 1000)
            m = median(times)
            if best is None or m < best[1]:
                best = (name, m)
        return best

    single_way, single_ms, batch_way, batch_ms = None, None, None, None
    if not args.no_inference:
        single_way, single_ms = fastest(one, args.inference_reps)
        batch_way, batch_ms = fastest(batch, max(5, args.inference_reps // 3))

    print(json.dumps({
        "impl": "keras",
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "params": int(model.count_params()),
        "importMs": import_s * 1000,
        "epochs": epochs,
        "losses": losses,
        "inferSingleMs": single_ms,
        "inferSingleWay": single_way,
        "inferBatchMs": batch_ms,
        "inferBatchWay": batch_way,
        "peakRssMb": vm_hwm_mb(),
    }))


if __name__ == "__main__":
    main()
