"""Keras peer of lib/deploy/serve.ts for bench/serve.ts: the same HTTP API.

A small threaded HTTP/1.1 server (http.server.ThreadingHTTPServer, keep-alive)
around the seed CNN built in Keras (TensorFlow 2.21), layer for layer as
lib/model/models.ts builds it (bench/keras_seed_cnn.py, shared with
bench/train_keras.py), with seeded random weights (speed does not depend on
the values); or, with --keras-model FILE, around one of our saved models
converted to Keras with its own weights (bench/inference_keras.py convert). Preprocessing with PIL: open, (with --draft, the default:
im.draft("L", (size, size)), libjpeg's DCT-scaled luma decode, the same
mechanism as our TensorFlow JPEG path), convert("L"), resize((size, size),
BILINEAR), / 255.

Routes, as lib/deploy/serve.ts:
  POST /predict  raw image body (image/jpeg, image/png,
                 application/octet-stream, none) or multipart/form-data
                 (field "file", else the first file part)
                 -> 200 {class, confidence, probabilities, model}
  GET  /health   -> 200 {status: "ok", ...}
  GET  /model    -> the model description
Errors as JSON {error}: 400, 404, 405 (with Allow), 413, 415. One log line per
request on stderr (http.server's own). Binds --port (0: a free one) and prints
"listening on http://HOST:PORT/" on stderr once ready.

  python bench/serve_peer.py [--port 0] [--hostname 127.0.0.1] [--size 128]
      [--classes 4] [--max-bytes N] [--no-draft] [--keras-model FILE.keras]
"""

import argparse
import email.parser
import email.policy
import io
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from keras_seed_cnn import seed_cnn  # noqa: E402

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]
RAW_TYPES = ("image/jpeg", "image/png", "application/octet-stream", "")


class HttpError(Exception):
    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def sniff(head):
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if head and all(b in (9, 10, 13) or 32 <= b < 127 for b in head[:16]):
        return "text"
    return "unrecognised content"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--hostname", default="127.0.0.1")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--max-bytes", type=int, default=10 * 1024 * 1024)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--no-draft", action="store_true",
                   help="decode JPEGs at full size (no DCT scaling)")
    p.add_argument("--keras-model",
                   help="serve this Keras model (its input size and classes "
                        "count win over --size and --classes)")
    args = p.parse_args()

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    classes = CLASSES[: args.classes] if args.classes <= len(CLASSES) else [
        f"class{i}" for i in range(args.classes)]
    if args.keras_model:
        model = keras.models.load_model(args.keras_model)
        size = model.input_shape[1]
        count = model.output_shape[-1]
        classes = CLASSES[:count] if count <= len(CLASSES) else [
            f"class{i}" for i in range(count)]
        arch = os.path.splitext(os.path.basename(args.keras_model))[0]
    else:
        model = seed_cnn(keras, args.size, 1, len(classes))
        size = args.size
        arch = "seedCnn"
    draft = not args.no_draft
    name = f"keras-{arch}"

    # Keras gets the fastest of its ways for one image (as bench/train_keras.py).
    fn = tf.function(lambda t: model(t, training=False),
                     input_signature=[tf.TensorSpec([None, size, size, 1], tf.float32)])
    ways = {
        "call": lambda x: model(x, training=False).numpy(),
        "predict_on_batch": lambda x: model.predict_on_batch(x),
        "tf.function": lambda x: fn(tf.constant(x)).numpy(),
    }
    probe = np.zeros((1, size, size, 1), np.float32)
    timings = {}
    for way_name, way in ways.items():
        for _ in range(3):
            way(probe)
        t0 = time.perf_counter()
        for _ in range(15):
            way(probe)
        timings[way_name] = (time.perf_counter() - t0) / 15 * 1000
    way_name = min(timings, key=timings.get)
    infer = ways[way_name]

    def preprocess(data):
        kind = sniff(data[:16])
        if kind not in ("JPEG", "PNG"):
            raise HttpError(415, f"body is not a JPEG or PNG ({kind})")
        try:
            with Image.open(io.BytesIO(data)) as im:
                if draft:
                    im.draft("L", (size, size))
                im = im.convert("L").resize((size, size), Image.BILINEAR)
                pixels = np.asarray(im, dtype=np.float32)
        except Exception as error:  # corrupt or truncated
            raise HttpError(400, f"corrupt or undecodable image: {error}")
        return (pixels / 255.0).reshape(1, size, size, 1)

    def predict(data):
        if not data:
            raise HttpError(400, "empty body: send a JPEG or PNG image")
        row = np.asarray(infer(preprocess(data)))[0]
        best = int(np.argmax(row))
        return {
            "class": classes[best],
            "confidence": float(row[best]),
            "probabilities": {c: float(row[k]) for k, c in enumerate(classes)},
            "model": name,
        }

    def from_multipart(content_type, body):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
        if not message.is_multipart():
            raise HttpError(400, "malformed multipart/form-data body")
        files = []
        for part in message.iter_parts():
            if part.get_filename() is None:
                continue
            files.append((part.get_param("name", header="content-disposition"),
                          part.get_payload(decode=True) or b""))
        if not files:
            raise HttpError(400, "multipart/form-data body has no file part")
        for field, data in files:
            if field == "file":
                return data
        return files[0][1]

    started = time.perf_counter()
    counter = {"requests": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "serve_peer"

        def setup(self):
            super().setup()
            # http.server writes the headers and the body separately: without
            # TCP_NODELAY, Nagle + delayed ACK add ~40 ms to every response.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def send_json(self, status, body, headers=None):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def read_body(self):
            length = self.headers.get("Content-Length")
            if length is not None:
                if not length.strip().isdigit():
                    raise HttpError(400, f"invalid Content-Length {length}")
                n = int(length)
                if n > args.max_bytes:
                    self.close_connection = True
                    raise HttpError(413, f"body of {n} bytes is larger than the "
                                    f"limit of {args.max_bytes} bytes")
                return self.rfile.read(n)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks, total = [], 0
                while True:
                    size_line = self.rfile.readline(65537)
                    n = int(size_line.split(b";")[0].strip() or b"0", 16)
                    if n == 0:
                        self.rfile.readline()
                        break
                    total += n
                    if total > args.max_bytes:
                        self.close_connection = True
                        raise HttpError(413, "body is larger than the limit of "
                                        f"{args.max_bytes} bytes")
                    chunks.append(self.rfile.read(n))
                    self.rfile.readline()
                return b"".join(chunks)
            return b""

        def route(self, method):
            with lock:
                counter["requests"] += 1
            path = self.path.split("?")[0]
            allowed = {"/predict": "POST", "/health": "GET, HEAD", "/model": "GET, HEAD"}
            if path not in allowed:
                raise HttpError(404, f"no such path {path}")
            if method not in allowed[path].split(", "):
                self.close_connection = True
                raise HttpError(405, f"{method} is not allowed on {path}",
                                {"Allow": allowed[path]})
            if path == "/health":
                return {"status": "ok", "model": name, "arch": arch,
                        "classes": classes, "inputSize": size,
                        "uptimeSeconds": time.perf_counter() - started,
                        "requests": counter["requests"], "inference": way_name}
            if path == "/model":
                return {"arch": arch, "classes": classes, "inputSize": size,
                        "channels": 1, "framework": f"keras {keras.__version__}",
                        "tensorflow": tf.__version__, "draft": draft,
                        "inference": way_name, "inferenceMs": timings}
            full_type = self.headers.get("Content-Type", "")
            ctype = full_type.split(";")[0].strip().lower()
            if ctype != "multipart/form-data" and ctype not in RAW_TYPES:
                self.close_connection = True
                raise HttpError(415, f"unsupported Content-Type {ctype}")
            body = self.read_body()
            if ctype == "multipart/form-data":
                body = from_multipart(full_type, body)
            return predict(body)

        def handle_method(self, method):
            try:
                self.send_json(200, self.route(method))
            except HttpError as error:
                # The body may be unread: do not reuse the connection.
                self.close_connection = True
                self.send_json(error.status, {"error": str(error)}, error.headers)
            except Exception as error:  # noqa: BLE001
                self.close_connection = True
                self.send_json(500, {"error": f"internal error: {error}"})

        def do_POST(self):
            self.handle_method("POST")

        def do_GET(self):
            self.handle_method("GET")

        def do_HEAD(self):
            self.handle_method("HEAD")

        def do_PUT(self):
            self.handle_method("PUT")

        def do_DELETE(self):
            self.handle_method("DELETE")

    server = ThreadingHTTPServer((args.hostname, args.port), Handler)
    server.daemon_threads = True

    def stop(signum, _frame):
        print(f"signal {signum}: stopping", file=sys.stderr, flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"keras {keras.__version__} / tensorflow {tf.__version__}, inference way "
          f"{way_name} ({timings[way_name]:.2f} ms for one image), PIL draft={draft}",
          file=sys.stderr, flush=True)
    print(f"listening on http://{host}:{port}/", file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()
    print("stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
