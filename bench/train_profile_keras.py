"""Keras peer of bench/train_profile.ts: where one training step of the ResNet goes.

Run by bench/train_profile.ts; it can be run by hand:

  python bench/train_profile_keras.py --out FILE.json [--size 128] [--batch 32]
      [--arch resnet|seedCnn] [--filters 32,64,128,256] [--steps 10]
      [--warmup 5] [--seed 42]

The ResNet is bench/time_to_accuracy_keras.py's copy of the project's ResNet
(same layers, same names), compiled as the shipped recipe trains it: AdamW
with decoupled weight decay 1 on the kernels and a moving average of the
weights. The seed CNN (`--arch seedCnn`) is bench/keras_seed_cnn.py's, with
Adam, as bench/train_keras.py trains it. Sparse categorical cross-entropy,
Keras 3 defaults (no XLA on CPU).
Every step trains on the same seeded random batch (no augmentation, no data
pipeline: the step alone).

It times `--steps` calls of `train_on_batch` after `--warmup` (wall ms per
step), then records the same number of steps with TensorFlow's profiler and
sums each TensorFlow op type's time on the host's compute threads, divided by
the steps. TensorFlow runs independent ops of a step on two threads at once,
so the op times can add up to more than the wall time.
"""

import argparse
import json
import os
import sys
import tempfile
import time


def op_type(name):
    """`scope/op:Type` or `Type` -> `Type`."""
    return name.rsplit(":", 1)[-1] if ":" in name else name


def profile_ops(logdir):
    """Per op type: (total ms, count) over the executor threads of the trace
    (the `tf_Compute` lines; their events are named `scope/op:Type`)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    totals = {}
    for root, _dirs, files in os.walk(logdir):
        for name in files:
            if not name.endswith(".xplane.pb"):
                continue
            space = xplane_pb2.XSpace()
            with open(os.path.join(root, name), "rb") as f:
                space.ParseFromString(f.read())
            for plane in space.planes:
                if plane.name != "/host:CPU":
                    continue
                for line in plane.lines:
                    if not line.name.startswith("tf_Compute"):
                        continue
                    for event in line.events:
                        meta = plane.event_metadata.get(event.metadata_id)
                        if meta is None or ":" not in meta.name or "::" in meta.name:
                            continue
                        kind = op_type(meta.name)
                        ms = event.duration_ps / 1e9
                        total, count = totals.get(kind, (0.0, 0))
                        totals[kind] = (total + ms, count + 1)
    return totals


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--filters", default="32,64,128,256")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--arch", choices=["resnet", "seedCnn"], default="resnet")
    args = p.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy as np
    import tensorflow as tf
    import keras
    from time_to_accuracy_keras import build_model

    keras.utils.set_random_seed(args.seed)
    if args.arch == "resnet":
        filters = [int(f) for f in args.filters.split(",")]
        model = build_model(keras, args.size, 4, filters, 32, 2, 0.3, args.seed)
        optimizer = keras.optimizers.AdamW(
            1e-3, weight_decay=1.0, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
            use_ema=True, ema_momentum=0.998)
        optimizer.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if len(v.shape) < 2])
    else:
        from keras_seed_cnn import seed_cnn
        model = seed_cnn(keras, args.size, 1, 4)
        optimizer = keras.optimizers.Adam(1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(args.seed)
    x = rng.integers(0, 256, (args.batch, args.size, args.size, 1)).astype(np.float32) / 255
    y = (np.arange(args.batch) % 4).astype(np.int32)

    for _ in range(args.warmup):
        model.train_on_batch(x, y)
    walls = []
    for _ in range(args.steps):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        walls.append((time.perf_counter() - t) * 1000)

    logdir = tempfile.mkdtemp(prefix="train-profile-")
    tf.profiler.experimental.start(logdir)
    for _ in range(args.steps):
        model.train_on_batch(x, y)
    tf.profiler.experimental.stop()
    totals = profile_ops(logdir)
    ops = sorted(
        ({"op": k, "msPerStep": v[0] / args.steps, "callsPerStep": v[1] / args.steps}
         for k, v in totals.items()),
        key=lambda o: -o["msPerStep"])
    walls.sort()
    report = {
        "side": "keras",
        "arch": args.arch,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "params": int(model.count_params()),
        "batch": args.batch,
        "size": args.size,
        "steps": args.steps,
        "wallMsPerStep": walls[len(walls) // 2],
        "opMsPerStep": sum(o["msPerStep"] for o in ops),
        "ops": ops,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
