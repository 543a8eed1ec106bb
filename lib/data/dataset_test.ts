import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import {
  classBalance,
  discoverDataset,
  sniffFormat,
  summarizeDataset,
} from "./dataset.ts";

async function jpeg(path: string, shade = 100): Promise<void> {
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeFile(
    path,
    await sharp({
      create: {
        width: 24,
        height: 20,
        channels: 3,
        background: { r: shade, g: shade, b: shade },
      },
    }).jpeg().toBuffer(),
  );
}

async function png(path: string, channels: 1 | 3 | 4 = 1): Promise<void> {
  await Deno.mkdir(join(path, ".."), { recursive: true });
  const create = {
    width: 16,
    height: 16,
    channels: channels === 1 ? 3 : channels,
    background: { r: 50, g: 60, b: 70, alpha: 0.5 },
  } as const;
  let image = sharp({ create });
  if (channels === 1) image = image.toColourspace("b-w");
  await Deno.writeFile(path, await image.png().toBuffer());
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dataset-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("discoverDataset: Kaggle layout, sorted, with skipped files and reasons", async () => {
  await withTemp(async (root) => {
    await jpeg(join(root, "Training/pituitary/b.jpg"));
    await jpeg(join(root, "Training/pituitary/a.jpg"));
    await png(join(root, "Training/pituitary/c.png"), 4);
    await jpeg(join(root, "Training/glioma/x.jpeg"));
    await png(join(root, "Training/glioma/gray.png"), 1);
    // A JPEG with a misleading extension is still a JPEG.
    await jpeg(join(root, "Training/glioma/really-a-jpeg.txt"));
    await jpeg(join(root, "Testing/glioma/t1.jpg"));
    await jpeg(join(root, "Testing/pituitary/t2.jpg"));
    // Things to skip.
    await Deno.writeTextFile(join(root, "Training/glioma/notes.txt"), "hi\n");
    await Deno.writeFile(
      join(root, "Training/glioma/anim.gif"),
      await sharp({
        create: { width: 4, height: 4, channels: 3, background: "#fff" },
      }).gif().toBuffer(),
    );
    await Deno.writeFile(
      join(root, "Training/pituitary/empty.jpg"),
      new Uint8Array(),
    );
    await Deno.writeTextFile(join(root, "Training/pituitary/.DS_Store"), "x");
    await Deno.mkdir(join(root, "Training/.hidden-class"));
    await Deno.writeTextFile(join(root, "README.md"), "# data\n");

    const ds = await discoverDataset(root);
    assert.equal(ds.layout, "kaggle");
    assert.equal(ds.root, root);
    assert.deepEqual(ds.classes, ["glioma", "pituitary"]);
    assert.deepEqual(
      ds.files.map((f) => `${f.origin}/${f.label}/${f.path.split("/").pop()}`),
      [
        "Training/glioma/gray.png",
        "Training/glioma/really-a-jpeg.txt",
        "Training/glioma/x.jpeg",
        "Training/pituitary/a.jpg",
        "Training/pituitary/b.jpg",
        "Training/pituitary/c.png",
        "Testing/glioma/t1.jpg",
        "Testing/pituitary/t2.jpg",
      ],
    );
    assert.ok(ds.files.every((f) => f.path.startsWith(root + "/")));
    const reasons = Object.fromEntries(
      ds.skipped.map((s) => [s.path.slice(root.length + 1), s.reason]),
    );
    assert.deepEqual(reasons, {
      "README.md": "file outside any class folder",
      "Training/glioma/anim.gif": "not a JPEG or PNG (GIF)",
      "Training/glioma/notes.txt": "not a JPEG or PNG (text)",
      "Training/pituitary/empty.jpg": "empty file",
    });
    assert.deepEqual(ds.counts, {
      Training: { glioma: 3, pituitary: 3 },
      Testing: { glioma: 1, pituitary: 1 },
    });
    assert.deepEqual(summarizeDataset(ds), [
      { origin: "Training", class: "glioma", count: 3 },
      { origin: "Training", class: "pituitary", count: 3 },
      { origin: "Testing", class: "glioma", count: 1 },
      { origin: "Testing", class: "pituitary", count: 1 },
    ]);
    const training = classBalance(ds, { origin: "Training" });
    assert.equal(training.total, 6);
    assert.equal(training.imbalanceRatio, 1);
    assert.deepEqual(training.classes.map((c) => c.fraction), [0.5, 0.5]);
    assert.equal(classBalance(ds).total, 8);

    // The same folder again gives the same answer (deterministic).
    assert.deepEqual(await discoverDataset(root), ds);
  });
});

Deno.test("discoverDataset: bare class folders and the extensions option", async () => {
  await withTemp(async (root) => {
    await jpeg(join(root, "notumor/1.jpg"));
    await jpeg(join(root, "notumor/2.jpg"));
    await jpeg(join(root, "notumor/3.JPG"));
    await png(join(root, "meningioma/1.png"), 3);
    await Deno.mkdir(join(root, "meningioma/nested"));
    const ds = await discoverDataset(root);
    assert.equal(ds.layout, "folders");
    assert.deepEqual(ds.classes, ["meningioma", "notumor"]);
    assert.deepEqual(ds.counts, { root: { meningioma: 1, notumor: 3 } });
    assert.ok(ds.files.every((f) => f.origin === "root"));
    assert.deepEqual(ds.skipped.map((s) => s.reason), [
      "folder inside a class folder (not searched)",
    ]);
    const balance = classBalance(ds);
    assert.equal(balance.imbalanceRatio, 3);
    assert.deepEqual(balance.classes.map((c) => c.count), [1, 3]);

    // The extensions option filters by name before sniffing.
    await jpeg(join(root, "notumor/4.jpeg"));
    const filtered = await discoverDataset(root, {
      extensions: ["jpg", ".PNG"],
    });
    assert.equal(
      filtered.counts.root!.notumor,
      3,
      "3.JPG counts: case-insensitive",
    );
    assert.equal(filtered.counts.root!.meningioma, 1);
    assert.ok(
      filtered.skipped.some((s) =>
        s.path.endsWith("4.jpeg") &&
        /extension "\.jpeg" not in \.jpg, \.png/.test(s.reason)
      ),
    );
    // A class left without images by the filter is an error.
    await assert.rejects(
      discoverDataset(root, { extensions: ["jpg"] }),
      /meningioma has no JPEG or PNG images \(2 skipped\)/,
    );
  });
});

Deno.test("discoverDataset: clear errors naming the path", async () => {
  await withTemp(async (root) => {
    const missing = join(root, "nope");
    await assert.rejects(
      discoverDataset(missing),
      new RegExp(`Dataset root not found: ${missing}`),
    );
    const file = join(root, "file.txt");
    await Deno.writeTextFile(file, "x");
    await assert.rejects(
      discoverDataset(file),
      new RegExp(`Dataset root is not a folder: ${file}`),
    );
    const bare = join(root, "bare");
    await Deno.mkdir(bare);
    await Deno.writeTextFile(join(bare, "stray.jpg"), "x");
    await assert.rejects(discoverDataset(bare), /No class folders in .*bare/);

    const withEmpty = join(root, "with-empty");
    await jpeg(join(withEmpty, "glioma/1.jpg"));
    await Deno.mkdir(join(withEmpty, "pituitary"));
    await assert.rejects(
      discoverDataset(withEmpty),
      /Class folder .*with-empty\/pituitary has no JPEG or PNG images \(it is empty\)/,
    );

    const onlyJunk = join(root, "only-junk");
    await jpeg(join(onlyJunk, "glioma/1.jpg"));
    await Deno.mkdir(join(onlyJunk, "pituitary"));
    await Deno.writeTextFile(join(onlyJunk, "pituitary/readme.txt"), "x");
    await assert.rejects(
      discoverDataset(onlyJunk),
      /pituitary has no JPEG or PNG images \(1 skipped\)/,
    );

    const kaggle = join(root, "kaggle");
    await jpeg(join(kaggle, "Training/glioma/1.jpg"));
    await jpeg(join(kaggle, "Testing/glioma/1.jpg"));
    await jpeg(join(kaggle, "Testing/unknown/1.jpg"));
    await assert.rejects(
      discoverDataset(kaggle),
      /Testing has class folder\(s\) unknown that .*Training lacks/,
    );
  });
});

Deno.test("sniffFormat: by magic bytes", () => {
  const bytes = (...b: number[]) => new Uint8Array(b);
  const text = (s: string) => new TextEncoder().encode(s);
  assert.equal(sniffFormat(bytes(0xff, 0xd8, 0xff, 0xdb)), "JPEG");
  assert.equal(
    sniffFormat(bytes(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)),
    "PNG",
  );
  assert.equal(sniffFormat(text("GIF87a....")), "GIF");
  assert.equal(sniffFormat(text("BM......")), "BMP");
  assert.equal(sniffFormat(text("RIFF\0\0\0\0WEBPVP8 ")), "WebP");
  assert.equal(sniffFormat(bytes(0x49, 0x49, 0x2a, 0)), "TIFF");
  assert.equal(sniffFormat(text("%PDF-1.7")), "PDF");
  assert.equal(sniffFormat(text("hello\n")), "text");
  assert.equal(sniffFormat(bytes(0, 1, 2, 3, 200)), "unknown");
  assert.equal(sniffFormat(bytes(0xff, 0xd8)), "unknown");
});
