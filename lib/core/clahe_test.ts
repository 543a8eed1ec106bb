import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { projectPaths } from "./paths.ts";
import { rng } from "./random.ts";
import { applyClahe, type Clahe, claheImages } from "./clahe.ts";

/** A scan-like test image: rings, a bright disc, noise; seeded. */
function testImage(size: number, seed: number): Uint8Array {
  const random = rng(seed);
  const out = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const r = Math.hypot(x - size / 2, y - size / 2);
      const v = 60 + 50 * Math.cos(r / 5) + 30 * random.next() +
        (r < size / 3 ? 40 : 0);
      out[y * size + x] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  return out;
}

/** OpenCV's CLAHE of each image, computed by the project's Python. */
const OPENCV = `
import sys
import numpy as np
import cv2
size, clip, tiles, count = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
x = np.fromfile(sys.argv[5], dtype=np.uint8).reshape(count, size, size)
clahe = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles))
np.stack([clahe.apply(img) for img in x]).tofile(sys.argv[6])
`;

async function opencvClahe(
  images: Uint8Array,
  size: number,
  clahe: Clahe,
  dir: string,
): Promise<Uint8Array> {
  const { python } = projectPaths();
  assert.ok(existsSync(python), `${python} is missing: run deno task setup`);
  const [input, output] = [join(dir, "in.u8"), join(dir, "out.u8")];
  await Deno.writeFile(input, images);
  const count = images.length / (size * size);
  const args = [size, clahe.clipLimit, clahe.tiles, count, input, output];
  const { code, stderr } = await new Deno.Command(python, {
    args: ["-c", OPENCV, ...args.map(String)],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return await Deno.readFile(output);
}

Deno.test("applyClahe equals OpenCV's cv2.createCLAHE pixel for pixel, including sides the tiles do not divide", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [number, Clahe][] = [
      [128, { clipLimit: 2, tiles: 8 }],
      [128, { clipLimit: 40, tiles: 8 }],
      [128, { clipLimit: 0.5, tiles: 16 }],
      [100, { clipLimit: 2, tiles: 8 }], // 100 = 12·8 + 4: mirrored padding
      [37, { clipLimit: 3.5, tiles: 5 }],
      [64, { clipLimit: 1, tiles: 1 }],
    ];
    for (const [size, clahe] of cases) {
      const images = new Uint8Array(3 * size * size);
      for (let k = 0; k < 3; k++) {
        images.set(testImage(size, 10 * size + k), k * size * size);
      }
      const expected = await opencvClahe(images, size, clahe, dir);
      const ours = claheImages(images.slice(), size, clahe);
      let differing = 0;
      for (let i = 0; i < ours.length; i++) {
        if (ours[i] !== expected[i]) differing++;
      }
      assert.equal(differing, 0, `${size}px ${JSON.stringify(clahe)}`);
      assert.notDeepEqual(ours, images, "CLAHE changed the images");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("applyClahe: leaves its input alone, refuses bad settings and sizes", () => {
  const image = testImage(32, 1);
  const copy = image.slice();
  const out = applyClahe(image, 32, { clipLimit: 2, tiles: 4 });
  assert.deepEqual(image, copy);
  assert.notDeepEqual(out, image);
  assert.throws(
    () => applyClahe(image, 32, { clipLimit: 0, tiles: 4 }),
    /clahe.clipLimit must be a number above 0/,
  );
  assert.throws(
    () => applyClahe(image, 32, { clipLimit: 2, tiles: 33 }),
    /clahe.tiles must be an integer from 1 to 32 for 32-pixel images \(got 33\)/,
  );
  assert.throws(
    () => applyClahe(image, 32, { clipLimit: 2, tiles: 2.5 }),
    /clahe.tiles must be an integer/,
  );
  assert.throws(
    () => applyClahe(image.subarray(1), 32, { clipLimit: 2, tiles: 4 }),
    /1023 bytes are not one 32×32 image/,
  );
  assert.throws(
    () => claheImages(new Uint8Array(10), 3, { clipLimit: 2, tiles: 1 }),
    /10 bytes are not whole 3×3 images/,
  );
});
