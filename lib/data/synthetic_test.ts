import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join, relative } from "node:path";
import sharp from "sharp";
import { projectPaths } from "../core/paths.ts";
import { run } from "../tools/proc.ts";
import {
  generateSyntheticDataset,
  renderSlice,
  SYNTHETIC_ABBREVIATIONS,
  SYNTHETIC_CLASSES,
  SYNTHETIC_DEFAULT_SIZES,
  SYNTHETIC_MARKER,
} from "./synthetic.ts";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** Every file under `dir`, as sorted paths relative to it. */
async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const entry of Deno.readDir(d)) {
      const path = join(d, entry.name);
      if (entry.isDirectory) await walk(path);
      else out.push(relative(dir, path));
    }
  };
  await walk(dir);
  return out.sort();
}

/** SHA-256 of every file under `dir`, by relative path. */
async function hashTree(dir: string): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  for (const path of await listFiles(dir)) {
    const bytes = await Deno.readFile(join(dir, path));
    hashes.set(path, createHash("sha256").update(bytes).digest("hex"));
  }
  return hashes;
}

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "synthetic_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const SIZE = 256;
const SEEDS = Array.from({ length: 20 }, (_, i) => 1000 + i);

/**
 * The head's outer outline in a slice: per row the leftmost/rightmost and per
 * column the top/bottom pixel of the bright scalp (two bright pixels in a row,
 * so lone noise pixels do not count).
 */
function outline(img: Uint8Array) {
  const bright = (i: number) => img[i] > 72;
  const left = new Int32Array(SIZE).fill(-1);
  const right = new Int32Array(SIZE).fill(-1);
  const top = new Int32Array(SIZE).fill(-1);
  const bottom = new Int32Array(SIZE).fill(-1);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x + 1 < SIZE; x++) {
      if (bright(y * SIZE + x) && bright(y * SIZE + x + 1)) {
        if (left[y] < 0) left[y] = x;
        right[y] = x + 1;
      }
    }
  }
  for (let x = 0; x < SIZE; x++) {
    for (let y = 0; y + 1 < SIZE; y++) {
      if (bright(y * SIZE + x) && bright((y + 1) * SIZE + x)) {
        if (top[x] < 0) top[x] = y;
        bottom[x] = y + 1;
      }
    }
  }
  const xs = [...left, ...right].filter((v) => v >= 0);
  const ys = [...top, ...bottom].filter((v) => v >= 0);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const y0 = Math.min(...ys);
  const y1 = Math.max(...ys);
  return {
    left,
    right,
    top,
    bottom,
    cx: (x0 + x1) / 2,
    cy: (y0 + y1) / 2,
    width: x1 - x0,
    height: y1 - y0,
  };
}

/** What a label's lesion adds to the same head without a tumour. */
function lesionOf(label: string, seed: number) {
  const base = renderSlice({ label: "notumor", seed, size: SIZE });
  const img = renderSlice({ label, seed, size: SIZE });
  const head = outline(base);
  const diff = new Float32Array(SIZE * SIZE);
  let n = 0;
  let sx = 0;
  let sy = 0;
  let sum = 0;
  let sum2 = 0;
  let peak = 0;
  let margin = Infinity;
  for (let i = 0; i < diff.length; i++) {
    diff[i] = img[i] - base[i];
    peak = Math.max(peak, Math.abs(diff[i]));
  }
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const d = diff[y * SIZE + x];
      if (Math.abs(d) < 12) continue;
      n++;
      sx += x;
      sy += y;
      sum += d;
      sum2 += d * d;
      margin = Math.min(
        margin,
        x - head.left[y],
        head.right[y] - x,
        y - head.top[x],
        head.bottom[x] - y,
      );
    }
  }
  // Fuzziness: pixels in the soft fringe relative to the clear core.
  let fringe = 0;
  let core = 0;
  for (const d of diff) {
    const a = Math.abs(d);
    if (a >= 0.5 * peak) core++;
    else if (a >= 0.1 * peak) fringe++;
  }
  const mean = sum / Math.max(n, 1);
  return {
    head,
    area: n / (SIZE * SIZE),
    x: (sx / Math.max(n, 1) - head.cx) / head.width,
    y: (sy / Math.max(n, 1) - head.cy) / head.height,
    mean,
    sd: Math.sqrt(Math.max(0, sum2 / Math.max(n, 1) - mean * mean)),
    margin: margin / head.width,
    fuzziness: fringe / Math.max(core, 1),
  };
}

const average = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const countOf = (xs: boolean[]) => xs.filter(Boolean).length;

// ---------------------------------------------------------------------------
// renderSlice
// ---------------------------------------------------------------------------

Deno.test("renderSlice: shape, determinism and a plausible head", () => {
  const a = renderSlice({ label: "glioma", seed: 3, size: 96 });
  assert.ok(a instanceof Uint8Array);
  assert.equal(a.length, 96 * 96);
  assert.deepEqual(renderSlice({ label: "glioma", seed: 3, size: 96 }), a);
  assert.notDeepEqual(renderSlice({ label: "glioma", seed: 4, size: 96 }), a);
  assert.equal(renderSlice({ label: "notumor", seed: 1 }).length, 256 * 256);

  const img = renderSlice({ label: "notumor", seed: 11, size: SIZE });
  // Dark background in the corners, bright skull, mid-grey brain.
  let corner = 0;
  for (let y = 0; y < 16; y++) {
    for (let x = 0; x < 16; x++) corner += img[y * SIZE + x];
  }
  assert.ok(corner / 256 < 30, `corner mean ${corner / 256}`);
  const head = outline(img);
  assert.ok(head.width > 0.45 * SIZE && head.width < 0.98 * SIZE);
  assert.ok(head.height >= head.width * 0.9, "axial heads are taller");
  const centre = img[Math.round(head.cy) * SIZE + Math.round(head.cx) + 30];
  assert.ok(centre > 25 && centre < 200, `brain grey level ${centre}`);
});

Deno.test("renderSlice: rejects bad options with clear errors", () => {
  assert.throws(
    () => renderSlice({ label: "cat", seed: 1 }),
    /renderSlice: unknown label "cat"; expected one of glioma, meningioma/,
  );
  assert.throws(
    () => renderSlice({ label: "glioma", seed: 1, size: 8 }),
    /renderSlice: size must be an integer from 32 to 4096, got 8/,
  );
  assert.throws(
    () => renderSlice({ label: "glioma", seed: NaN }),
    /renderSlice: seed must be a finite number/,
  );
});

Deno.test("renderSlice: the same seed gives the same head; only the lesion differs", () => {
  const base = renderSlice({ label: "notumor", seed: 5, size: SIZE });
  for (const label of ["glioma", "meningioma", "pituitary"]) {
    const img = renderSlice({ label, seed: 5, size: SIZE });
    let changed = 0;
    for (let i = 0; i < img.length; i++) if (img[i] !== base[i]) changed++;
    // A lesion changes some pixels, but far from most of the image.
    assert.ok(changed > 30, `${label}: ${changed} pixels changed`);
    assert.ok(changed < 0.25 * img.length, `${label}: ${changed} changed`);
  }
});

Deno.test("renderSlice: pituitary masses sit small and bright at the centre-bottom", () => {
  const stats = SEEDS.map((seed) => lesionOf("pituitary", seed));
  const placed = stats.map((s) =>
    Math.abs(s.x) < 0.15 && s.y > 0.02 && s.y < 0.35 && s.area < 0.03 &&
    s.mean > 10
  );
  assert.ok(countOf(placed) >= 19, JSON.stringify(stats));

  // Unpaired, as a classifier sees them: the centre-bottom region is
  // brighter in pituitary images than in notumor images of other heads.
  const roi = (label: string, seed: number) => {
    const img = renderSlice({ label, seed, size: SIZE });
    let sum = 0;
    let n = 0;
    for (let y = Math.round(0.55 * SIZE); y < 0.7 * SIZE; y++) {
      for (let x = Math.round(0.44 * SIZE); x < 0.56 * SIZE; x++) {
        sum += img[y * SIZE + x];
        n++;
      }
    }
    return sum / n;
  };
  const pit = average(SEEDS.map((s) => roi("pituitary", s)));
  const none = average(SEEDS.map((s) => roi("notumor", s + 5000)));
  assert.ok(pit > none + 8, `pituitary ${pit} vs notumor ${none}`);
});

Deno.test("renderSlice: meningiomas are bright, sharp and touch the skull", () => {
  const men = SEEDS.map((seed) => lesionOf("meningioma", seed));
  const gli = SEEDS.map((seed) => lesionOf("glioma", seed));
  const touching = men.map((s) => s.margin < 0.1 && s.mean > 10);
  assert.ok(countOf(touching) >= 19, JSON.stringify(men));
  // Gliomas sit inside the brain, further from the head's edge on average.
  assert.ok(
    average(gli.map((s) => s.margin)) >
      average(men.map((s) => s.margin)) + 0.03,
  );
  // Meningiomas have a crisp edge, gliomas a fuzzy one.
  assert.ok(
    average(men.map((s) => s.fuzziness)) <
      0.6 * average(gli.map((s) => s.fuzziness)),
    `${average(men.map((s) => s.fuzziness))} vs ${
      average(gli.map((s) => s.fuzziness))
    }`,
  );
});

Deno.test("renderSlice: gliomas are heterogeneous masses off the midline", () => {
  const gli = SEEDS.map((seed) => lesionOf("glioma", seed));
  const men = SEEDS.map((seed) => lesionOf("meningioma", seed));
  const pit = SEEDS.map((seed) => lesionOf("pituitary", seed));
  assert.ok(gli.every((s) => s.area > 0.001), "every glioma is visible");
  // Off the midline (pituitary masses are on it).
  const offset = average(gli.map((s) => Math.abs(s.x)));
  assert.ok(offset > 0.12, `glioma offset ${offset}`);
  assert.ok(offset > 2 * average(pit.map((s) => Math.abs(s.x))));
  // Heterogeneous: the spread of intensities inside the lesion, relative to
  // its strength, is larger than a meningioma's.
  const spread = (s: { sd: number; mean: number }) =>
    s.sd / Math.max(Math.abs(s.mean), 1);
  assert.ok(average(gli.map(spread)) > 1.5 * average(men.map(spread)));
});

Deno.test("renderSlice: every lesion stands out at the training resolution", () => {
  // At the 128-pixel input of the report's CNN, each lesion changes a patch
  // of pixels by a tenth of the grey range or more, so that it can be learnt
  // from a few hundred scans per class.
  const size = 128;
  for (const label of ["glioma", "meningioma", "pituitary"]) {
    for (const seed of SEEDS) {
      const img = renderSlice({ label, seed, size });
      const base = renderSlice({ label: "notumor", seed, size });
      const changed = img.filter((v, i) => Math.abs(v - base[i]) >= 24).length;
      assert.ok(changed >= 30, `${label}, seed ${seed}: ${changed} pixels`);
    }
  }
});

// ---------------------------------------------------------------------------
// generateSyntheticDataset
// ---------------------------------------------------------------------------

function expectedFiles(train: number, test: number): string[] {
  const files = [SYNTHETIC_MARKER];
  for (
    const [split, prefix, count] of [
      ["Training", "Tr", train],
      ["Testing", "Te", test],
    ] as const
  ) {
    for (const label of SYNTHETIC_CLASSES) {
      for (let i = 0; i < count; i++) {
        const abbr = SYNTHETIC_ABBREVIATIONS[label];
        files.push(
          join(
            split,
            label,
            `${prefix}-${abbr}_${String(i).padStart(4, "0")}.jpg`,
          ),
        );
      }
    }
  }
  return files.sort();
}

Deno.test("generateSyntheticDataset: Kaggle layout, counts, 3-channel JPEGs of varied sizes, marker", async () => {
  await withTempDir(async (dir) => {
    const result = await generateSyntheticDataset({
      outDir: dir,
      trainPerClass: 3,
      testPerClass: 2,
    });
    assert.equal(result.outDir, dir);
    assert.equal(result.files, 20);
    assert.equal(result.reused, false);
    assert.deepEqual(result.counts, {
      Training: { glioma: 3, meningioma: 3, notumor: 3, pituitary: 3 },
      Testing: { glioma: 2, meningioma: 2, notumor: 2, pituitary: 2 },
    });
    assert.deepEqual(await listFiles(dir), expectedFiles(3, 2));

    const allowed = new Set(
      SYNTHETIC_DEFAULT_SIZES.map((s) =>
        typeof s === "number" ? `${s}x${s}` : `${s[0]}x${s[1]}`
      ),
    );
    const seen = new Set<string>();
    for (const path of await listFiles(dir)) {
      if (!path.endsWith(".jpg")) continue;
      const file = join(dir, path);
      const meta = await sharp(file).metadata();
      assert.equal(meta.format, "jpeg", path);
      assert.equal(meta.channels, 3, path);
      const size = `${meta.width}x${meta.height}`;
      assert.ok(allowed.has(size), `${path}: ${size}`);
      seen.add(size);
      // Grey-looking: the three channels agree.
      const { data } = await sharp(file).raw().toBuffer({
        resolveWithObject: true,
      });
      let worst = 0;
      let max = 0;
      for (let i = 0; i < data.length; i += 3) {
        worst = Math.max(
          worst,
          Math.abs(data[i] - data[i + 1]),
          Math.abs(data[i + 1] - data[i + 2]),
        );
        max = Math.max(max, data[i]);
      }
      assert.ok(worst <= 2, `${path}: channels differ by ${worst}`);
      assert.ok(max > 100, `${path}: no bright skull (max ${max})`);
    }
    assert.ok(seen.size >= 3, `sizes ${[...seen]}`);

    const marker = await Deno.readTextFile(join(dir, SYNTHETIC_MARKER));
    assert.match(marker, /SYNTHETIC DATA — NOT REAL MRI SCANS/);
    assert.match(marker, /EVERY IMAGE IN THIS FOLDER IS SYNTHETIC/);
    assert.match(marker, /Status: complete\./);
    assert.match(marker, /"seed": 42/);
    assert.match(marker, /"trainPerClass": 3/);
    assert.match(marker, /"testPerClass": 2/);
    assert.match(marker, /"quality": 90/);
    assert.match(marker, /--seed 42 --train-per-class 3 --test-per-class 2/);
  });
});

Deno.test("generateSyntheticDataset: same seed → identical bytes, other seed → different, images independent of count", async () => {
  await withTempDir(async (root) => {
    const options = {
      trainPerClass: 2,
      testPerClass: 1,
      sizes: [64, [80, 72]] as const,
    };
    await generateSyntheticDataset({ outDir: join(root, "a"), ...options });
    await generateSyntheticDataset({ outDir: join(root, "b"), ...options });
    await generateSyntheticDataset({
      outDir: join(root, "c"),
      ...options,
      seed: 43,
    });
    await generateSyntheticDataset({
      outDir: join(root, "d"),
      ...options,
      trainPerClass: 1,
    });
    const a = await hashTree(join(root, "a"));
    const b = await hashTree(join(root, "b"));
    const c = await hashTree(join(root, "c"));
    const d = await hashTree(join(root, "d"));
    assert.equal(a.size, 13);
    assert.deepEqual(b, a);
    for (const [path, hash] of a) {
      if (path.endsWith(".jpg")) assert.notEqual(c.get(path), hash, path);
    }
    // Fewer images per class: the ones made are the same bytes.
    for (const [path, hash] of d) {
      if (path.endsWith(".jpg")) assert.equal(a.get(path), hash, path);
    }
  });
});

Deno.test("generateSyntheticDataset: idempotent re-run, regeneration on changes", async () => {
  await withTempDir(async (dir) => {
    const options = {
      outDir: dir,
      trainPerClass: 3,
      testPerClass: 1,
      sizes: [64],
    };
    await generateSyntheticDataset(options);
    const before = await hashTree(dir);
    const probe = join(dir, "Training", "glioma", "Tr-gl_0000.jpg");
    const mtime = (await Deno.stat(probe)).mtime?.getTime();

    const again = await generateSyntheticDataset(options);
    assert.equal(again.reused, true);
    assert.equal(again.files, 16);
    assert.equal((await Deno.stat(probe)).mtime?.getTime(), mtime);
    assert.deepEqual(await hashTree(dir), before);

    // A missing file: regenerated, with the same bytes.
    await Deno.remove(probe);
    assert.equal((await generateSyntheticDataset(options)).reused, false);
    assert.deepEqual(await hashTree(dir), before);

    // Fewer images: surplus files go, the marker records the new settings.
    const fewer = await generateSyntheticDataset({
      ...options,
      trainPerClass: 2,
    });
    assert.equal(fewer.reused, false);
    assert.deepEqual(await listFiles(dir), expectedFiles(2, 1));
    const marker = await Deno.readTextFile(join(dir, SYNTHETIC_MARKER));
    assert.match(marker, /"trainPerClass": 2/);
  });
});

Deno.test("generateSyntheticDataset: refuses a folder that holds other data", async () => {
  await withTempDir(async (dir) => {
    const real = join(dir, "Training", "glioma");
    await Deno.mkdir(real, { recursive: true });
    await Deno.writeFile(join(real, "Tr-gl_0000.jpg"), new Uint8Array([1]));
    await assert.rejects(
      generateSyntheticDataset({
        outDir: dir,
        trainPerClass: 1,
        testPerClass: 0,
      }),
      /already holds data and .* has no SYNTHETIC\.md marker; refusing/,
    );
    assert.deepEqual(
      await Deno.readFile(join(real, "Tr-gl_0000.jpg")),
      new Uint8Array([1]),
    );
  });
});

Deno.test("generateSyntheticDataset: rejects bad options", async () => {
  const outDir = "/nonexistent/never-written";
  await assert.rejects(
    generateSyntheticDataset({ outDir, trainPerClass: -1 }),
    /trainPerClass must be an integer from 0 to 99999, got -1/,
  );
  await assert.rejects(
    generateSyntheticDataset({ outDir, testPerClass: 1.5 }),
    /testPerClass must be an integer/,
  );
  await assert.rejects(
    generateSyntheticDataset({ outDir, quality: 0 }),
    /quality must be an integer from 1 to 100, got 0/,
  );
  await assert.rejects(
    generateSyntheticDataset({ outDir, sizes: [10] }),
    /sizes must be an integer from 32 to 4096, got 10/,
  );
  await assert.rejects(
    generateSyntheticDataset({ outDir, sizes: [] }),
    /sizes must not be empty/,
  );
  await assert.rejects(
    generateSyntheticDataset({ outDir: "" }),
    /outDir must be a non-empty path/,
  );
});

Deno.test("synthetic CLI: writes a dataset; bad flags print usage", async () => {
  await withTempDir(async (dir) => {
    const cwd = projectPaths().root;
    const script = join(cwd, "lib", "data", "synthetic.ts");
    const ok = await run(Deno.execPath(), {
      args: [
        "run",
        "-A",
        script,
        "--out",
        dir,
        "--seed",
        "7",
        "--train-per-class",
        "1",
        "--test-per-class",
        "1",
        "--sizes",
        "64,80x72",
      ],
      cwd,
      timeoutMs: 120_000,
    });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /Wrote 8 SYNTHETIC images to .* images\/s/);
    assert.deepEqual(await listFiles(dir), expectedFiles(1, 1));
    assert.match(
      await Deno.readTextFile(join(dir, SYNTHETIC_MARKER)),
      /"seed": 7/,
    );

    const bad = await run(Deno.execPath(), {
      args: ["run", "-A", script, "--out", dir, "--seed", "x"],
      cwd,
      timeoutMs: 120_000,
    });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--seed must be a number \(got "x"\)/);
    assert.match(
      bad.stderr,
      /usage: deno run -A lib\/data\/synthetic\.ts -- \[options\]/,
    );

    const missing = await run(Deno.execPath(), {
      args: ["run", "-A", script],
      cwd,
      timeoutMs: 120_000,
    });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--out is required/);
  });
});
