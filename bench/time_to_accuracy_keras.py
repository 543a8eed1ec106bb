"""Keras peer of bench/time_to_accuracy.ts: the project's ResNet, trained in Keras.

Run by bench/time_to_accuracy.ts (which installs TensorFlow into
.cache/bench-venv and writes the data); not meant to be run by hand, but it
can be:

  python bench/time_to_accuracy_keras.py --data DIR --weights FILE.json \
      --out FILE.json [--check-only] [--epochs 48] [--minutes 30] \
      [--targets 0.94,0.97] [--seed 42] [--init shared|keras] \
      [--brightness multiplicative|additive] [--stop-when-reached] \
      [--cosine-over epochs|time] [--weight-decay WD] [--ema DECAY]

DIR holds header.json and the uint8 pixel / int32 label files the Deno side
wrote; FILE.json (+ its .bin) the initial weights of the project's model and
its softmax outputs on the first validation images.

The network is lib/model/models.ts's `resnet` layer by layer (same names): a 5x5
stride-2 "same" conv (no bias) + BatchNormalization + ReLU, a 2x2 max pool;
per stage, blocks of conv3x3-BN-ReLU, conv3x3-BN, a 1x1 conv-BN projection
shortcut when the stride or width changes, add, ReLU (every stage after the
first starts with stride 2); global average pooling, Dropout(0.3), Dense
softmax. BatchNormalization uses momentum 0.99 and epsilon 1e-3 on both sides
(tfjs' defaults and Keras'; tfjs' moving averages are
`m -= (m - batch) * (1 - momentum)` with the biased batch variance, as in
Keras). Glorot-uniform kernels, zero biases.

Before training it loads the project's initial weights (every variable, by
layer and variable name) into a Keras copy and compares the softmax outputs on
the reference images: a parameter-count mismatch, a missing or misshapen
weight, or outputs that differ by more than --tolerance fail loudly (exit 3).
With --init shared (the default) the trained model starts from those weights;
with --init keras from Keras' own seeded Glorot initialisation.

Training: Adam (epsilon 1e-7, as lib/train/train.ts), learning rate set per epoch to
`min_lr + (lr - min_lr) * (1 + cos(pi * epoch / epochs)) / 2` (lib/train/train.ts'
cosineLearningRate), batch 32, sparse categorical cross-entropy, a tf.data
pipeline that reshuffles every epoch (seeded), augments each batch with Keras
preprocessing layers (sequential map, so the random stream is reproducible,
prefetched so that augmentation overlaps training) and validates every epoch in
batches of 64 (as lib/train/train.ts' evaluateSplit). Writes one JSON report to
--out; prints one line per epoch to stderr.

The project's shipped recipe (`--cosine-over time --weight-decay 1 --ema
0.998`, as `deno task train` ran resnet-128-e9/e11), in Keras' own terms:

- `--cosine-over time`: the rate of each epoch follows the cosine over the
  time budget, from the seconds of training before the epoch (lib/train/train.ts'
  `cosineDecay.over: "time"`), instead of over `--epochs`;
- `--weight-decay WD`: `AdamW(weight_decay=WD)`, which multiplies a variable
  by `1 - lr * WD` every step as lib/train/train.ts does; only kernels (rank >= 2)
  are decayed, as there (`exclude_from_weight_decay` gets the rest). Keras
  decays before the Adam step, lib/train/train.ts after it;
- `--ema DECAY`: the optimizer's moving average of the trainable weights
  (`use_ema=True, ema_momentum=DECAY`), swapped in for every validation by
  `keras.callbacks.SwapEMAWeights`. lib/train/train.ts also averages the
  batch-norm statistics and ramps the decay up over the first updates
  (`min(DECAY, (1 + n) / (10 + n))`); Keras starts the average at the
  weights after the first step and uses DECAY from then on.
"""

import argparse
import json
import math
import os
import sys
import time


def cosine_lr(lr, min_lr, epoch, epochs):
    t = min(1.0, max(0.0, epoch / epochs))
    return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * t))


def finite(value):
    """JSON has no NaN: non-finite numbers become null."""
    value = float(value)
    return value if math.isfinite(value) else None


def clean(value):
    """The report with every non-finite float as null (JSON.parse knows no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def write_report(path, report):
    with open(path, "w") as f:
        json.dump(clean(report), f, allow_nan=False)


def reached(acc, n, target):
    """Whether a validation accuracy (as a float32 from Keras) reached `target`, by count."""
    return round(acc * n) >= math.ceil(target * n - 1e-6)


def fmt(value):
    return "nan" if value is None else f"{value:.4f}"


def load_split(data_dir, header, key):
    import numpy as np

    part = header[key]
    size = header["size"]
    x = np.fromfile(os.path.join(data_dir, part["pixels"]), dtype=np.uint8)
    y = np.fromfile(os.path.join(data_dir, part["labels"]), dtype="<i4")
    n = part["count"]
    if x.size != n * size * size or y.size != n:
        sys.exit(
            f"time_to_accuracy_keras.py: {data_dir}/{part['pixels']} has {x.size} bytes "
            f"(want {n * size * size}) or {part['labels']} {y.size} labels (want {n})"
        )
    return x.reshape(n, size, size, 1), y.astype("int32")


def build_model(keras, size, classes, filters, stem, blocks, dropout, seed):
    """lib/model/models.ts' resnet, with the same layer names."""
    from keras import layers

    def conv_bn(x, name, f, k, strides, relu):
        y = layers.Conv2D(
            f, k, strides=strides, padding="same", use_bias=False, name=name,
            kernel_initializer=keras.initializers.GlorotUniform(),
        )(x)
        y = layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name=f"{name}_bn")(y)
        if relu:
            y = layers.ReLU(name=f"{name}_relu")(y)
        return y

    inputs = keras.Input((size, size, 1), name="input")
    x = conv_bn(inputs, "stem_conv", stem, 5, 2, True)
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    width = stem
    for s, f in enumerate(filters):
        for b in range(blocks):
            name = f"stage{s + 1}_block{b + 1}"
            strides = 2 if s > 0 and b == 0 else 1
            y = conv_bn(x, f"{name}_conv1", f, 3, strides, True)
            y = conv_bn(y, f"{name}_conv2", f, 3, 1, False)
            shortcut = (
                conv_bn(x, f"{name}_proj", f, 1, strides, False)
                if strides != 1 or width != f else x
            )
            x = layers.Add(name=f"{name}_add")([y, shortcut])
            x = layers.ReLU(name=f"{name}_relu")(x)
            width = f
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout", seed=seed)(x)
    outputs = layers.Dense(
        classes, activation="softmax", name="predictions",
        kernel_initializer=keras.initializers.GlorotUniform(),
        bias_initializer="zeros",
    )(x)
    return keras.Model(inputs, outputs, name="resnet")


def load_weights(model, spec, blob):
    """Sets every variable of `model` from the project's exported weights, by name."""
    import numpy as np

    by_layer = {layer["name"]: layer for layer in spec["layers"]}
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        theirs = by_layer.get(layer.name)
        if theirs is None:
            raise ValueError(f"layer {layer.name}: not in the project's model")
        arrays = {w["name"]: w for w in theirs["weights"]}
        for variable in layer.weights:
            name = variable.name.split("/")[-1]
            w = arrays.get(name)
            if w is None:
                raise ValueError(f"{layer.name}/{name}: not in the project's model")
            if tuple(w["shape"]) != tuple(variable.shape):
                raise ValueError(
                    f"{layer.name}/{name}: shape {tuple(variable.shape)} here, "
                    f"{tuple(w['shape'])} in the project's model"
                )
            values = np.frombuffer(blob, dtype="<f4", count=w["length"], offset=w["offset"])
            variable.assign(values.reshape(w["shape"]))
            used.add(f"{layer.name}/{name}")
        missing = [w["name"] for w in theirs["weights"] if f"{layer.name}/{w['name']}" not in used]
        if missing:
            raise ValueError(f"layer {layer.name}: the project's model also has {missing}")
    unused = [l["name"] for l in spec["layers"] if not any(u.startswith(l["name"] + "/") for u in used)]
    if unused:
        raise ValueError(f"the project's layers {unused} have no Keras counterpart")


class Brightness:
    """Multiplicative brightness as lib/data/augment.ts does it: x * U(1 - f, 1 + f) per image."""

    def __init__(self, tf, factor, seed):
        self.tf = tf
        self.factor = factor
        self.generator = tf.random.Generator.from_seed(seed)

    def __call__(self, x):
        n = self.tf.shape(x)[0]
        scale = self.generator.uniform(
            self.tf.stack([n, 1, 1, 1]), 1 - self.factor, 1 + self.factor
        )
        return x * scale


def make_augmenter(keras, tf, seed, brightness_mode):
    """lib/data/augment.ts' defaults with Keras preprocessing layers (see the .ts module doc)."""
    from keras import layers

    geometric = [
        layers.RandomFlip("horizontal", seed=seed + 1),
        layers.RandomRotation(
            10 / 360, fill_mode="constant", fill_value=0.0,
            interpolation="bilinear", seed=seed + 2,
        ),
        layers.RandomZoom(
            0.1, fill_mode="constant", fill_value=0.0,
            interpolation="bilinear", seed=seed + 3,
        ),
        layers.RandomTranslation(
            0.08, 0.08, fill_mode="constant", fill_value=0.0,
            interpolation="bilinear", seed=seed + 4,
        ),
    ]
    # A tuple, not 0.1: in Keras 3.15 RandomContrast(0.1) draws the factor
    # from [1.0, 1.1] (the lower bound is clamped to 0 in _set_factor, despite
    # the docstring); (0.1, 0.1) gives [0.9, 1.1] as lib/data/augment.ts.
    contrast = layers.RandomContrast((0.1, 0.1), value_range=(0, 1), seed=seed + 5)
    if brightness_mode == "additive":
        bright = layers.RandomBrightness(0.1, value_range=(0, 1), seed=seed + 6)

        def brightness(x):
            return bright(x, training=True)
    else:
        brightness = Brightness(tf, 0.1, seed + 6)

    def augment(x):
        for layer in geometric:
            x = layer(x, training=True)
        x = contrast(x, training=True)
        x = brightness(x)
        return tf.clip_by_value(x, 0.0, 1.0)

    return augment


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder with header.json and the raw .bin pixel and label files")
    p.add_argument("--weights", required=True, help="the project's initial weights (.json + .bin)")
    p.add_argument("--out", required=True, help="report file (JSON)")
    p.add_argument("--check-only", action="store_true",
                   help="build, compare with the project's model, write the report, stop")
    p.add_argument("--epochs", type=int, default=48)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--targets", default="0.94,0.97")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--eval-batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--init", choices=["shared", "keras"], default="shared")
    p.add_argument("--brightness", choices=["multiplicative", "additive"], default="multiplicative")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest allowed |softmax difference| on the reference images")
    p.add_argument("--stop-when-reached", action="store_true",
                   help="stop once every target is reached")
    p.add_argument("--cosine-over", choices=["epochs", "time"], default="epochs",
                   help="the cosine decay runs over --epochs or over the --minutes budget")
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="decoupled weight decay of the kernels (AdamW); 0: Adam")
    p.add_argument("--ema", type=float, default=0.0,
                   help="validate a moving average of the weights with this decay; 0: off")
    args = p.parse_args()
    targets = [float(t) for t in args.targets.split(",") if t.strip()]

    import numpy as np

    started = time.perf_counter()
    import keras
    import tensorflow as tf

    import_s = time.perf_counter() - started
    keras.utils.set_random_seed(args.seed)

    with open(os.path.join(args.data, "header.json")) as f:
        header = json.load(f)
    with open(args.weights) as f:
        spec = json.load(f)
    with open(os.path.splitext(args.weights)[0] + ".bin", "rb") as f:
        blob = f.read()
    arch = spec["arch"]
    size = header["size"]
    classes = len(header["classes"])

    def build():
        return build_model(
            keras, size, classes, arch["filters"], arch["stemFilters"],
            arch["blocksPerStage"], arch["dropout"], args.seed,
        )

    # --- The network check -------------------------------------------------
    reference = build()
    params = int(reference.count_params())
    report = {
        "impl": "keras",
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__},
        "params": params,
        "oursParams": spec["params"],
        "importSeconds": import_s,
        "init": args.init,
        "brightness": args.brightness,
    }

    def fail(message):
        report["error"] = message
        write_report(args.out, report)
        print(f"time_to_accuracy_keras.py: {message}", file=sys.stderr)
        sys.exit(3)

    if params != spec["params"]:
        fail(f"parameter count differs: Keras {params:,}, ours {spec['params']:,}")
    try:
        load_weights(reference, spec, blob)
    except ValueError as error:
        fail(f"weights do not map onto the Keras model: {error}")
    x_val, y_val = load_split(args.data, header, "validation")
    ref = spec["reference"]
    probe = x_val[: ref["count"]].astype("float32") / 255.0
    got = reference(probe, training=False).numpy()
    want = np.asarray(ref["probs"], dtype="float32").reshape(got.shape)
    diff = float(np.max(np.abs(got - want)))
    report["referenceMaxAbsDiff"] = diff
    print(
        f"keras: {params:,} parameters (ours {spec['params']:,}); softmax on "
        f"{ref['count']} validation images with our initial weights: max |diff| {diff:.2e}",
        file=sys.stderr,
    )
    if not diff <= args.tolerance:
        fail(f"the Keras network's outputs differ from ours by {diff:.3e} "
             f"(> {args.tolerance:g}) with the same weights")
    if args.check_only:
        write_report(args.out, report)
        return

    # --- Data ----------------------------------------------------------------
    x_train, y_train = load_split(args.data, header, "train")
    n_train, n_val = len(y_train), len(y_val)
    augment = make_augmenter(keras, tf, args.seed, args.brightness)
    train_ds = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(n_train, seed=args.seed, reshuffle_each_iteration=True)
        .batch(args.batch)
        .map(lambda x, y: (augment(tf.cast(x, tf.float32) / 255.0), y))
        .prefetch(tf.data.AUTOTUNE)
    )
    val_ds = (
        tf.data.Dataset.from_tensor_slices((x_val, y_val))
        .batch(args.eval_batch)
        .map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
        .prefetch(tf.data.AUTOTUNE)
    )

    # --- Model ---------------------------------------------------------------
    model = reference if args.init == "shared" else build()
    ema = {"use_ema": True, "ema_momentum": args.ema} if args.ema > 0 else {}
    if args.weight_decay > 0:
        optimizer = keras.optimizers.AdamW(
            args.lr, weight_decay=args.weight_decay, beta_1=0.9, beta_2=0.999,
            epsilon=1e-7, **ema)
        optimizer.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if len(v.shape) < 2])
    else:
        optimizer = keras.optimizers.Adam(
            args.lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **ema)
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    budget = args.minutes * 60
    report.update({
        "recipe": {"cosineOver": args.cosine_over,
                   "weightDecay": args.weight_decay, "ema": args.ema},
    })

    class Recorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []
            self.stop_reason = "completed"

        def on_train_begin(self, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            if args.cosine_over == "time":
                spent = time.perf_counter() - self.t0
                lr = cosine_lr(args.lr, args.min_lr, min(spent, budget), budget)
            else:
                lr = cosine_lr(args.lr, args.min_lr, epoch, args.epochs)
            self.model.optimizer.learning_rate = lr
            self.lr = lr
            self.e0 = time.perf_counter()
            self.v0 = None

        def on_test_begin(self, logs=None):
            self.v0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            logs = logs or {}
            seconds = now - self.e0
            record = {
                "epoch": epoch + 1,
                "elapsed": now - self.t0,
                "seconds": seconds,
                "trainSeconds": (self.v0 or now) - self.e0,
                "loss": finite(logs.get("loss", float("nan"))),
                "acc": finite(logs.get("accuracy", float("nan"))),
                "val_loss": finite(logs.get("val_loss", float("nan"))),
                "val_acc": finite(logs.get("val_accuracy", float("nan"))),
                "lr": self.lr,
            }
            self.epochs.append(record)
            print(
                f"keras epoch {epoch + 1:3d}/{args.epochs}  t {record['elapsed']:8.1f} s  "
                f"val_acc {fmt(record['val_acc'])}  val_loss {fmt(record['val_loss'])}  "
                f"loss {fmt(record['loss'])}  lr {self.lr:.2e}",
                file=sys.stderr, flush=True,
            )
            # lib/train/train.ts' rule: stop when one more epoch of this length
            # would exceed the budget.
            if epoch + 1 < args.epochs and record["elapsed"] + seconds > budget:
                self.stop_reason = "time-budget"
                self.model.stop_training = True
            if args.stop_when_reached and all(
                any(e["val_acc"] is not None and reached(e["val_acc"], n_val, t)
                    for e in self.epochs)
                for t in targets
            ):
                if epoch + 1 < args.epochs:
                    self.stop_reason = "targets-reached"
                self.model.stop_training = True

    recorder = Recorder()
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=args.epochs,
        # SwapEMAWeights first: validation sees the average, the recorder
        # times it.
        callbacks=([keras.callbacks.SwapEMAWeights()] if args.ema > 0 else [])
        + [recorder],
        shuffle=False,  # the dataset reshuffles itself every epoch
        verbose=0,
    )
    report.update({
        "trainImages": n_train,
        "validationImages": n_val,
        "epochs": recorder.epochs,
        "stopReason": recorder.stop_reason,
        "seconds": recorder.epochs[-1]["elapsed"] if recorder.epochs else 0,
    })
    write_report(args.out, report)


if __name__ == "__main__":
    main()
