"""Keras peer of bench/inference.ts: the project's saved models, run by Keras.

Three commands, each run in its own process by bench/inference.ts:

- ``convert --model DIR --out FILE.keras [--pixels P --probs Q --count N]``:
  builds the Keras model from the saved model's ``model.json`` (a tfjs Layers
  topology is a Keras config; Keras' loader of legacy configs reads it), loads
  every weight from its weights files by layer and weight name, saves it in
  Keras' own format, and, given packed uint8 images and our float32
  probabilities on them, prints the largest |difference| (the peer must be
  the same network).
- ``batch --model FILE.keras --pixels P --count N --size S [--batch-size 64]
  [--repeats 3]``: class probabilities of N packed images, scaled by 1/255 in
  float32 as ours are, timed per pass over all of them (after one warm-up
  pass) with ``model.predict(batch_size=...)`` and with the model called on
  each batch (``model(x, training=False)``); prints JSON.
- ``predict --model FILE.keras FILE``: a cold single prediction, as a user
  would run it: import TensorFlow, load the model, decode the scan to grey,
  resize it to the input size, predict, print the class and probabilities.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time


def tf_keras():
    import keras
    import tensorflow as tf

    return tf, keras


def legacy_config(model_json):
    """The Keras config of a tfjs Layers model.json, as Keras 3 reads it."""
    topology = model_json["modelTopology"]
    config = topology.get("model_config", topology)
    if config["class_name"] == "Sequential":
        layers = config["config"]["layers"]
        shape = layers[0]["config"].pop("batch_input_shape")
        layers.insert(0, {
            "class_name": "InputLayer",
            "config": {"batch_shape": shape, "name": "input"},
        })
    return config


def read_weights(model_dir, manifest):
    """Layer/weight name -> numpy array, from the tfjs weights manifest."""
    import numpy as np

    out = {}
    for group in manifest:
        blob = b"".join(
            open(os.path.join(model_dir, p), "rb").read() for p in group["paths"]
        )
        offset = 0
        for spec in group["weights"]:
            if spec["dtype"] != "float32":
                raise SystemExit(f"{spec['name']}: dtype {spec['dtype']} not supported")
            count = 1
            for d in spec["shape"]:
                count *= d
            values = np.frombuffer(blob, dtype="<f4", count=count, offset=offset)
            out[spec["name"]] = values.reshape(spec["shape"])
            offset += 4 * count
    return out


def convert(args):
    tf, keras = tf_keras()
    from keras.src.legacy.saving import saving_utils
    import numpy as np

    with open(os.path.join(args.model, "model.json")) as f:
        model_json = json.load(f)
    model = saving_utils.model_from_config(legacy_config(model_json))
    weights = read_weights(args.model, model_json["weightsManifest"])
    used = set()
    for layer in model.layers:
        values = []
        for w in layer.weights:
            key = f"{layer.name}/{w.name}"
            if key not in weights:
                raise SystemExit(f"no weight {key} in {args.model}")
            values.append(weights[key])
            used.add(key)
        if values:
            layer.set_weights(values)
    unused = sorted(set(weights) - used)
    if unused:
        raise SystemExit(f"weights not loaded into Keras: {', '.join(unused)}")
    model.save(args.out)
    report = {"params": int(model.count_params()), "layers": len(model.layers)}
    if args.pixels:
        size = model.input_shape[1]
        x = load_pixels(args.pixels, args.count, size)
        ours = np.fromfile(args.probs, dtype="<f4").reshape(args.count, -1)
        theirs = model.predict(x, batch_size=64, verbose=0)
        report["maxAbsDiff"] = float(np.abs(theirs - ours).max())
        report["classesDiffering"] = int((theirs.argmax(1) != ours.argmax(1)).sum())
    print(json.dumps(report))


def load_pixels(path, count, size):
    import numpy as np

    raw = np.fromfile(path, dtype=np.uint8, count=count * size * size)
    x = raw.reshape(count, size, size, 1).astype(np.float32)
    return x * np.float32(1 / 255)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def batch(args):
    start = time.perf_counter()
    tf, keras = tf_keras()
    model = keras.models.load_model(args.model)
    loaded = time.perf_counter() - start
    x = load_pixels(args.pixels, args.count, args.size)
    n = args.count
    bs = args.batch_size

    def by_predict():
        return model.predict(x, batch_size=bs, verbose=0)

    def by_call():
        return [model(x[i:i + bs], training=False).numpy() for i in range(0, n, bs)]

    timings = {}
    for name, fn in (("predict", by_predict), ("call", by_call)):
        fn()  # warm-up: graph tracing, first allocations
        seconds = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - t)
        timings[name] = {
            "seconds": seconds,
            "imagesPerSecond": n / statistics.median(seconds),
        }
    print(json.dumps({
        "images": n,
        "batchSize": bs,
        "loadSeconds": loaded,
        "timings": timings,
        "peakRssMb": peak_rss_mb(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }))


def predict(args):
    tf, keras = tf_keras()
    model = keras.models.load_model(args.model)
    size = model.input_shape[1]
    data = tf.io.read_file(args.file)
    image = tf.io.decode_image(data, channels=1, expand_animations=False)
    image = tf.image.resize(tf.cast(image, tf.float32), (size, size))
    x = tf.round(image)[tf.newaxis] * (1 / 255)
    probs = model(x, training=False).numpy()[0]
    classes = json.loads(args.classes) if args.classes else list(range(len(probs)))
    best = int(probs.argmax())
    print(json.dumps({
        "file": args.file,
        "class": classes[best],
        "probabilities": [float(p) for p in probs],
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--model", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--pixels")
    c.add_argument("--probs")
    c.add_argument("--count", type=int, default=0)
    b = sub.add_parser("batch")
    b.add_argument("--model", required=True)
    b.add_argument("--pixels", required=True)
    b.add_argument("--count", type=int, required=True)
    b.add_argument("--size", type=int, required=True)
    b.add_argument("--batch-size", type=int, default=64)
    b.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("predict")
    p.add_argument("--model", required=True)
    p.add_argument("--classes")
    p.add_argument("file")
    args = parser.parse_args()
    {"convert": convert, "batch": batch, "predict": predict}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
