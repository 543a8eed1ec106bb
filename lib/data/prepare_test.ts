import assert from "node:assert/strict";
import { join } from "node:path";
import { prepareData, resolveDataSource } from "./prepare.ts";
import { generateSyntheticDataset } from "./synthetic.ts";

async function fixture() {
  const dir = await Deno.makeTempDir({ prefix: "data-test-" });
  const root = join(dir, "ds");
  await generateSyntheticDataset({
    outDir: root,
    seed: 5,
    trainPerClass: 20,
    testPerClass: 0,
  });
  // A bare class-folder layout: move Training/<class> up, drop Testing.
  const bare = join(dir, "bare");
  await Deno.rename(join(root, "Training"), bare);
  // Two exact copies of one glioma under new names, and one corrupt file.
  const src = join(bare, "glioma", "Tr-gl_0000.jpg");
  await Deno.copyFile(src, join(bare, "glioma", "copy-a.jpg"));
  await Deno.copyFile(src, join(bare, "glioma", "copy-b.jpg"));
  const bytes = await Deno.readFile(join(bare, "meningioma", "Tr-me_0001.jpg"));
  await Deno.writeFile(
    join(bare, "meningioma", "broken.jpg"),
    bytes.subarray(0, 600),
  );
  return { dir, bare };
}

Deno.test("data: the pipeline splits without leakage and keeps copies together", async () => {
  const { dir, bare } = await fixture();
  try {
    const opts = {
      source: bare,
      size: 32,
      seed: 3,
      validation: 0.2,
      test: 0.2,
      cacheDir: join(dir, "cache"),
    };
    const data = await prepareData(opts);
    assert.deepEqual(data.classes, [
      "glioma",
      "meningioma",
      "notumor",
      "pituitary",
    ]);
    assert.equal(data.split.mode, "carved");
    // 80 good images + 2 copies; the truncated JPEG is reported, not fatal.
    assert.equal(data.errors.length, 1);
    assert.match(data.errors[0].path, /broken\.jpg$/);
    const n = data.train.files.length + data.validation.files.length +
      data.test.files.length;
    assert.equal(n, 82);
    for (const s of [data.train, data.validation, data.test]) {
      assert.equal(s.pixels.length, s.files.length * 32 * 32);
      assert.equal(s.labels.length, s.files.length);
      s.files.forEach((f, i) =>
        assert.equal(data.classes[s.labels[i]], f.label)
      );
    }
    // The three identical gliomas sit in one split.
    const where = (name: string) =>
      ["train", "validation", "test"].find((k) =>
        data[k as "train"].files.some((f) => f.path.endsWith(name))
      );
    assert.equal(data.audit.summary.exact.groups, 1);
    assert.equal(where("copy-a.jpg"), where("Tr-gl_0000.jpg"));
    assert.equal(where("copy-b.jpg"), where("Tr-gl_0000.jpg"));
    assert.ok(data.testDeduplicated.files.length <= data.test.files.length);
    // Same seed, same split and fingerprint (now from the caches).
    const again = await prepareData(opts);
    assert.deepEqual(again.split, data.split);
    assert.equal(again.fingerprint, data.fingerprint);
    assert.deepEqual(again.train.pixels, data.train.pixels);
    // Another seed, another split.
    const other = await prepareData({ ...opts, seed: 4 });
    assert.notDeepEqual(other.split.train, data.split.train);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("data: BRAIN_MRI_DATA is used when set, and must exist", async () => {
  await assert.rejects(
    resolveDataSource({ env: { BRAIN_MRI_DATA: "/no/such/dataset" } }),
    /BRAIN_MRI_DATA=\/no\/such\/dataset: no such folder/,
  );
  const source = await resolveDataSource({ env: { BRAIN_MRI_DATA: "/tmp" } });
  assert.deepEqual(source, {
    root: "/tmp",
    synthetic: false,
    reason: "BRAIN_MRI_DATA",
  });
});
