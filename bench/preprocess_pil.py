"""Python/PIL peer of bench/preprocess.ts: the same preprocessing job.

For each file: Image.open -> (mode "draft": im.draft("L", (size, size)), which
lets libjpeg decode only the luma channel at 1/2, 1/4 or 1/8 scale, like our
DCT-scaled decode) -> convert("L") -> resize((size, size), BILINEAR) ->
numpy uint8. Mode "full" decodes every JPEG at full size in colour first.

Prints one JSON line: {"mode", "procs", "images", "failed", "seconds",
"images_per_second"}. The time covers the pool start-up and the work, not the
interpreter start or the imports. With --out, writes the pixels (images in list
order, size*size bytes each, zeros for failures) to that file.

Run by bench/preprocess.ts from the venv it makes (.cache/bench-venv).
"""

import argparse
import json
import sys
import time
from multiprocessing import Pool

import numpy as np
from PIL import Image

SIZE = 128
MODE = "full"


def _init(size, mode):
    global SIZE, MODE
    SIZE = size
    MODE = mode


def work(path):
    try:
        with Image.open(path) as im:
            if MODE == "draft":
                im.draft("L", (SIZE, SIZE))
            im = im.convert("L").resize((SIZE, SIZE), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8).tobytes()
    except Exception:  # a bad file is skipped, as in ours
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", required=True, help="file with one path per line")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--mode", choices=["full", "draft"], default="full")
    parser.add_argument("--out", help="write the pixels here")
    args = parser.parse_args()
    with open(args.list, encoding="utf-8") as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]

    area = args.size * args.size
    out = np.zeros((len(paths), area), dtype=np.uint8)
    failed = 0
    start = time.perf_counter()
    if args.procs <= 1:
        _init(args.size, args.mode)
        results = map(work, paths)
        pool = None
    else:
        pool = Pool(args.procs, initializer=_init, initargs=(args.size, args.mode))
        results = pool.imap(work, paths, chunksize=32)
    for i, data in enumerate(results):
        if data is None:
            failed += 1
        else:
            out[i] = np.frombuffer(data, dtype=np.uint8)
    if pool is not None:
        pool.close()
        pool.join()
    seconds = time.perf_counter() - start
    if args.out:
        out.tofile(args.out)
    json.dump(
        {
            "mode": args.mode,
            "procs": args.procs,
            "images": len(paths) - failed,
            "failed": failed,
            "seconds": seconds,
            "images_per_second": (len(paths) - failed) / seconds,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
