import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { tf } from "../core/tf.ts";
import {
  contentHashes,
  datasetFingerprint,
  fingerprintFromHashes,
  loadImages,
} from "./image_cache.ts";
import { pipelineKey, preprocessFiles } from "./preprocess.ts";

async function scan(
  shade: number,
  width = 48,
  height = 40,
): Promise<Uint8Array> {
  const raw = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const v = (shade + (i % width) * 3) % 256;
    raw.set([v, v, v], i * 3);
  }
  return await sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 92 }).toBuffer();
}

interface Fixture {
  dir: string;
  cacheDir: string;
  files: { path: string; label: string }[];
}

async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "image-cache-test-" });
  try {
    const files: { path: string; label: string }[] = [];
    for (
      const [label, shades] of [["glioma", [10, 60, 110]], ["notumor", [
        160,
        210,
      ]]] as const
    ) {
      await Deno.mkdir(join(dir, "data", label), { recursive: true });
      for (const shade of shades) {
        const path = join(dir, "data", label, `${shade}.jpg`);
        await Deno.writeFile(path, await scan(shade));
        files.push({ path, label });
      }
    }
    // A byte-identical copy, as the real dataset has.
    const copy = join(dir, "data", "notumor", "copy-of-10.jpg");
    await Deno.copyFile(files[0].path, copy);
    files.push({ path: copy, label: "notumor" });
    await fn({ dir, cacheDir: join(dir, "cache"), files });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadImages: first load decodes, second load is all cache hits", async () => {
  await withFixture(async ({ cacheDir, files }) => {
    const before = tf.memory().numTensors;
    const progress: [number, number][] = [];
    const first = await loadImages(files, {
      size: 32,
      cacheDir,
      onProgress: (d, t) => progress.push([d, t]),
    });
    assert.equal(first.cacheHits, 0);
    assert.equal(first.cacheMisses, files.length);
    assert.deepEqual(first.ok, [0, 1, 2, 3, 4, 5]);
    assert.equal(first.errors.length, 0);
    assert.equal(first.hashes.length, files.length);
    assert.equal(
      first.hashes[5],
      first.hashes[0],
      "identical copies, one hash",
    );
    assert.deepEqual(progress.at(-1), [files.length, files.length]);

    // The cache holds exactly what preprocessFiles makes.
    const direct = await preprocessFiles(files.map((f) => f.path), {
      size: 32,
    });
    assert.deepEqual(first.pixels, direct.pixels);

    const second = await loadImages(files, { size: 32, cacheDir });
    assert.equal(second.cacheHits, files.length);
    assert.equal(second.cacheMisses, 0);
    assert.deepEqual(second.pixels, first.pixels);
    assert.deepEqual(second.hashes, first.hashes);
    assert.ok(second.seconds >= 0);

    // One pack of the unique images (5, not 6) under the settings' folder.
    const packDir = join(cacheDir, pipelineKey({ size: 32 }));
    const names = [...Deno.readDirSync(packDir)].map((e) => e.name).sort();
    assert.equal(names.length, 2);
    const meta = JSON.parse(
      Deno.readTextFileSync(
        join(packDir, names.find((n) => n.endsWith(".json"))!),
      ),
    );
    assert.equal(meta.hashes.length, 5);
    assert.equal(
      Deno.statSync(join(packDir, names.find((n) => n.endsWith(".bin"))!)).size,
      5 * 32 * 32,
    );
    // A subset (in another order) is served from the same pack.
    const subset = await loadImages([files[3], files[1]], {
      size: 32,
      cacheDir,
    });
    assert.equal(subset.cacheHits, 2);
    assert.deepEqual(
      subset.pixels,
      new Uint8Array([
        ...first.pixels.subarray(3 * 1024, 4 * 1024),
        ...first.pixels.subarray(1024, 2 * 1024),
      ]),
    );
    assert.equal(
      [...Deno.readDirSync(packDir)].length,
      2,
      "no new pack for hits",
    );
    assert.equal(tf.memory().numTensors, before);
  });
});

Deno.test("loadImages: a settings change or a content change invalidates", async () => {
  await withFixture(async ({ cacheDir, files }) => {
    const at32 = await loadImages(files, { size: 32, cacheDir });
    const at24 = await loadImages(files, { size: 24, cacheDir });
    assert.equal(at24.cacheMisses, files.length, "new size: all decoded again");
    assert.equal(at24.pixels.length, files.length * 24 * 24);
    const cover = await loadImages(files, { size: 32, fit: "cover", cacheDir });
    assert.equal(cover.cacheMisses, files.length, "new fit: all decoded again");
    assert.equal(
      (await loadImages(files, { size: 32, cacheDir })).cacheHits,
      files.length,
      "the old settings are still cached",
    );

    // Rewrite one file with other content of the same size.
    const target = files[2].path;
    const oldInfo = Deno.statSync(target);
    const other = await scan(111);
    assert.equal(other.length, oldInfo.size, "test needs an equal-size file");
    await Deno.writeFile(target, other);
    const after = await loadImages(files, { size: 32, cacheDir });
    assert.equal(after.cacheMisses, 1);
    assert.equal(after.cacheHits, files.length - 1);
    assert.notDeepEqual(
      after.pixels.subarray(2 * 1024, 3 * 1024),
      at32.pixels.subarray(2 * 1024, 3 * 1024),
    );
    assert.deepEqual(
      after.pixels.subarray(0, 2 * 1024),
      at32.pixels.subarray(0, 2 * 1024),
    );
    assert.notEqual(after.hashes[2], at32.hashes[2]);
    // The new pack replaced the old one (which it fully covers? no: the old
    // image is gone, so the old pack stays); either way the next load hits.
    assert.equal(
      (await loadImages(files, { size: 32, cacheDir })).cacheMisses,
      0,
    );
  });
});

Deno.test("loadImages: corrupt files are reported, skipped and never cached", async () => {
  await withFixture(async ({ dir, cacheDir, files }) => {
    const broken = join(dir, "data", "glioma", "broken.jpg");
    const good = await scan(90);
    await Deno.writeFile(broken, good.subarray(0, good.length >> 1));
    const garbage = join(dir, "data", "glioma", "garbage.jpg");
    await Deno.writeFile(
      garbage,
      new TextEncoder().encode("not an image at all"),
    );
    const list = [...files, { path: broken, label: "glioma" }, {
      path: garbage,
      label: "glioma",
    }, { path: join(dir, "gone.jpg"), label: "glioma" }];
    for (const round of [1, 2]) {
      const r = await loadImages(list, { size: 16, cacheDir });
      assert.deepEqual(r.ok, [0, 1, 2, 3, 4, 5]);
      assert.deepEqual(r.errors.map((e) => e.path), [
        broken,
        garbage,
        join(dir, "gone.jpg"),
      ]);
      assert.match(r.errors[2].reason, /cannot be read/);
      assert.equal(r.hashes[8], "");
      assert.equal(r.cacheHits, round === 1 ? 0 : 6);
      assert.equal(r.cacheMisses, round === 1 ? 8 : 2, "bad files are retried");
    }
    const packDir = join(cacheDir, pipelineKey({ size: 16 }));
    for (const e of Deno.readDirSync(packDir)) {
      if (!e.name.endsWith(".json")) continue;
      const meta = JSON.parse(Deno.readTextFileSync(join(packDir, e.name)));
      assert.equal(meta.hashes.length, 5, "only the good images are packed");
    }
  });
});

Deno.test("loadImages: a lost hash index falls back to hashing, then hits", async () => {
  await withFixture(async ({ cacheDir, files }) => {
    await loadImages(files, { size: 16, cacheDir });
    await Deno.remove(join(cacheDir, "hashes.json"));
    const r = await loadImages(files, { size: 16, cacheDir });
    assert.equal(r.cacheHits, files.length);
    const verified = await loadImages(files, {
      size: 16,
      cacheDir,
      verify: true,
    });
    assert.equal(verified.cacheHits, files.length);
  });
});

Deno.test("datasetFingerprint: stable, order- and path-independent, content- and label-sensitive", async () => {
  await withFixture(async ({ dir, cacheDir, files }) => {
    const fp = await datasetFingerprint(files, { cacheDir });
    assert.match(fp, /^[0-9a-f]{64}$/);
    assert.equal(await datasetFingerprint(files, { cacheDir }), fp);
    assert.equal(
      await datasetFingerprint([...files].reverse(), { cacheDir }),
      fp,
    );
    // Without the index (fresh cache folder) the answer is the same.
    assert.equal(
      await datasetFingerprint(files, { cacheDir: join(dir, "other-cache") }),
      fp,
    );
    // Moving a file keeps it.
    const moved = join(dir, "moved.jpg");
    await Deno.copyFile(files[1].path, moved);
    const movedList = files.map((
      f,
      i,
    ) => (i === 1 ? { ...f, path: moved } : f));
    assert.equal(await datasetFingerprint(movedList, { cacheDir }), fp);
    // A label change, a removed file or a changed image changes it.
    const relabelled = files.map((
      f,
      i,
    ) => (i === 1 ? { ...f, label: "notumor" } : f));
    assert.notEqual(await datasetFingerprint(relabelled, { cacheDir }), fp);
    assert.notEqual(await datasetFingerprint(files.slice(1), { cacheDir }), fp);
    await Deno.writeFile(files[1].path, await scan(77));
    assert.notEqual(await datasetFingerprint(files, { cacheDir }), fp);

    const hashes = await contentHashes(files.map((f) => f.path), { cacheDir });
    assert.equal(
      fingerprintFromHashes(
        files.map((f, i) => ({ label: f.label, hash: hashes[i] })),
      ),
      await datasetFingerprint(files, { cacheDir }),
    );
    await assert.rejects(
      contentHashes([join(dir, "nope.jpg")], { cacheDir }),
      /nope\.jpg: cannot be read/,
    );
  });
});

/** The pack files (`.bin`, `.json`) of the settings folder, sorted. */
function packFiles(packDir: string): string[] {
  return [...Deno.readDirSync(packDir)].map((e) => e.name).sort();
}

Deno.test("loadImages: a pack zeroed in place is never used: a warning names it, the images are decoded again", async () => {
  await withFixture(async ({ cacheDir, files }) => {
    const cold = await loadImages(files, { size: 32, cacheDir });
    const packDir = join(cacheDir, pipelineKey({ size: 32 }));
    const bin = packFiles(packDir).find((n) => n.endsWith(".bin"))!;
    const binPath = join(packDir, bin);
    // Damage on disk that keeps the length: the whole pack zeroed in place.
    const zeros = new Uint8Array(Deno.statSync(binPath).size);
    const f = await Deno.open(binPath, { write: true });
    await f.write(zeros);
    f.close();
    assert.deepEqual(Deno.readFileSync(binPath), zeros);

    const warnings: string[] = [];
    const r = await loadImages(files, {
      size: 32,
      cacheDir,
      onWarning: (m) => warnings.push(m),
    });
    assert.equal(warnings.length, 1);
    assert.ok(warnings[0].includes(bin), `names the pack: ${warnings[0]}`);
    assert.match(warnings[0], /checksum/);
    assert.equal(r.cacheHits, 0, "nothing is served from the damaged pack");
    assert.equal(r.cacheMisses, files.length);
    assert.deepEqual(r.pixels, cold.pixels, "the right pixels, decoded again");
    assert.ok(r.pixels.some((v) => v !== 0));

    // The rebuilt pack is good: the next load hits it, with no warning.
    assert.notDeepEqual(Deno.readFileSync(binPath), zeros);
    const warm = await loadImages(files, {
      size: 32,
      cacheDir,
      onWarning: (m) => warnings.push(m),
    });
    assert.equal(warnings.length, 1);
    assert.equal(warm.cacheHits, files.length);
    assert.deepEqual(warm.pixels, cold.pixels);
    assert.equal(packFiles(packDir).length, 2, "one pack, no leftovers");
  });
});

Deno.test("loadImages: one flipped byte in a pack fails the checksum too", async () => {
  await withFixture(async ({ cacheDir, files }) => {
    const cold = await loadImages(files, { size: 16, cacheDir });
    const packDir = join(cacheDir, pipelineKey({ size: 16 }));
    const binPath = join(
      packDir,
      packFiles(packDir).find((n) => n.endsWith(".bin"))!,
    );
    const bytes = Deno.readFileSync(binPath);
    bytes[700] ^= 1;
    Deno.writeFileSync(binPath, bytes);
    const warnings: string[] = [];
    const r = await loadImages(files, {
      size: 16,
      cacheDir,
      onWarning: (m) => warnings.push(m),
    });
    assert.equal(warnings.length, 1);
    assert.equal(r.cacheHits, 0);
    assert.deepEqual(r.pixels, cold.pixels);
  });
});

Deno.test("loadImages: packs of the older format, without a checksum, are removed, not trusted", async () => {
  await withFixture(async ({ cacheDir, files }) => {
    const cold = await loadImages(files, { size: 16, cacheDir });
    const packDir = join(cacheDir, pipelineKey({ size: 16 }));
    const json = packFiles(packDir).find((n) => n.endsWith(".json"))!;
    const meta = JSON.parse(Deno.readTextFileSync(join(packDir, json)));
    // An old pack: version 1, no checksum, zeroed pixels of the right length.
    const oldId = "0".repeat(32);
    Deno.writeFileSync(
      join(packDir, `${oldId}.bin`),
      new Uint8Array(meta.hashes.length * 256),
    );
    Deno.writeTextFileSync(
      join(packDir, `${oldId}.json`),
      JSON.stringify({ version: 1, area: 256, hashes: meta.hashes }),
    );
    // Only the old pack: the current one is gone.
    for (const n of packFiles(packDir)) {
      if (!n.startsWith(oldId)) Deno.removeSync(join(packDir, n));
    }
    const r = await loadImages(files, { size: 16, cacheDir });
    assert.equal(r.cacheHits, 0);
    assert.deepEqual(r.pixels, cold.pixels);
    assert.ok(
      packFiles(packDir).every((n) => !n.startsWith(oldId)),
      "the old pack's files are removed",
    );
    assert.equal(
      (await loadImages(files, { size: 16, cacheDir })).cacheHits,
      6,
    );
  });
});

Deno.test("loadImages: temp files left by killed writes are removed when the cache opens", async () => {
  await withFixture(async ({ cacheDir, files }) => {
    await loadImages(files, { size: 16, cacheDir });
    const packDir = join(cacheDir, pipelineKey({ size: 16 }));
    const before = packFiles(packDir);
    // What a write killed before its rename leaves (pid 4294967295 is never
    // running): a half pack and a half hash index.
    const deadPack = ".0123.bin.4294967295.0badcafe.tmp";
    const deadIndex = ".hashes.json.4294967295.1badcafe.tmp";
    Deno.writeFileSync(join(packDir, deadPack), new Uint8Array(100));
    Deno.writeTextFileSync(join(cacheDir, deadIndex), '{"version"');
    const r = await loadImages(files, { size: 16, cacheDir });
    assert.equal(r.cacheHits, files.length);
    assert.deepEqual(packFiles(packDir), before, "the half pack is gone");
    assert.ok(
      ![...Deno.readDirSync(cacheDir)].some((e) => e.name === deadIndex),
      "the half index is gone",
    );
  });
});
