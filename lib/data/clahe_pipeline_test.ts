import assert from "node:assert/strict";
import { join } from "node:path";
import { applyClahe, claheImages } from "../core/clahe.ts";
import { loadImages } from "./image_cache.ts";
import { prepareData } from "./prepare.ts";
import { preprocessImage } from "./preprocess.ts";
import { generateSyntheticDataset } from "./synthetic.ts";

Deno.test("CLAHE in the data pipeline: after the resize, one cached decode, and the same split with or without it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const root = join(dir, "data");
    await generateSyntheticDataset({
      outDir: root,
      seed: 5,
      trainPerClass: 6,
      testPerClass: 2,
      sizes: [96],
    });
    const clahe = { clipLimit: 2, tiles: 4 };
    const cacheDir = join(dir, "cache");
    const plain = await prepareData({ source: root, size: 32, cacheDir });
    const equalised = await prepareData({
      source: root,
      size: 32,
      cacheDir,
      clahe,
    });
    assert.equal(plain.clahe, null);
    assert.deepEqual(equalised.clahe, clahe);
    for (const part of ["train", "validation", "test"] as const) {
      assert.deepEqual(
        equalised[part].files.map((f) => f.path),
        plain[part].files.map((f) => f.path),
        `${part}: the split does not depend on CLAHE`,
      );
      assert.deepEqual(
        equalised[part].pixels,
        claheImages(plain[part].pixels.slice(), 32, clahe),
      );
    }
    assert.equal(equalised.fingerprint, plain.fingerprint);

    const files = plain.test.files.slice(0, 3);
    const cached = await loadImages(files, {
      size: 32,
      clahe,
      cacheDir: join(cacheDir, "images"),
    });
    assert.equal(cached.cacheHits, 3, "the plain decode's cache serves CLAHE");
    const one = await preprocessImage(files[0].path, { size: 32, clahe });
    assert.deepEqual(
      one,
      applyClahe(await preprocessImage(files[0].path, { size: 32 }), 32, clahe),
    );
    assert.deepEqual(one, cached.pixels.subarray(0, 32 * 32));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
