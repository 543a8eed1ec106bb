import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import {
  auditDataset,
  auditDuplicates,
  type AuditFile,
  auditGroupRows,
  type AuditReport,
  auditSplitRows,
  auditSummaryRows,
  auditTables,
  auditToJSON,
  dedupeKeep,
  DEFAULT_NEAR_THRESHOLD,
  duplicateGroups,
  pairsWithin,
  thresholdSweep,
} from "./audit.ts";
import { JUPYTER_DISPLAY } from "../core/display.ts";
import { hammingDistance } from "./phash.ts";
import { PROJECT_ROOT } from "../core/paths.ts";
import { run } from "../tools/proc.ts";
import { ellipseScanJpeg } from "../../tests/fixtures.ts";
import { rng } from "../core/random.ts";

/** A seeded JPEG "scan" (96 px unless told). */
function syntheticScan(seed: number, size = 96): Promise<Uint8Array> {
  return ellipseScanJpeg(seed, size);
}

/**
 * A small dataset in `<dir>/Training/<class>/` (+ one Testing image):
 * - glioma/g0.jpg and glioma/g0_copy.jpg: byte copies (exact group);
 * - glioma/g1.jpg and pituitary/p_same_as_g1.jpg: byte copies under two
 *   classes (label conflict);
 * - glioma/g2.jpg, g2_q50.jpg (re-encoded), g2_small.jpg (resized),
 *   g2_bright.jpg (+2 % brightness): one near group;
 * - glioma/g3, pituitary/p0..p2: unrelated;
 * - Testing/pituitary/t_same_as_p0.jpg: byte copy of p0 (cross-split).
 */
async function makeDataset(dir: string): Promise<AuditFile[]> {
  const files: AuditFile[] = [];
  const put = async (
    origin: "Training" | "Testing",
    label: string,
    name: string,
    bytes: Uint8Array,
  ) => {
    await Deno.mkdir(join(dir, origin, label), { recursive: true });
    const path = join(dir, origin, label, name);
    await Deno.writeFile(path, bytes);
    files.push({ path, label, origin });
  };
  const g0 = await syntheticScan(1);
  const g1 = await syntheticScan(2);
  const g2 = await syntheticScan(3);
  const p0 = await syntheticScan(5);
  await put("Training", "glioma", "g0.jpg", g0);
  await put("Training", "glioma", "g0_copy.jpg", g0);
  await put("Training", "glioma", "g1.jpg", g1);
  await put("Training", "pituitary", "p_same_as_g1.jpg", g1);
  await put("Training", "glioma", "g2.jpg", g2);
  await put(
    "Training",
    "glioma",
    "g2_q50.jpg",
    await sharp(g2).jpeg({ quality: 50 }).toBuffer(),
  );
  await put(
    "Training",
    "glioma",
    "g2_small.jpg",
    await sharp(g2).resize(88, 88).jpeg({ quality: 90 }).toBuffer(),
  );
  await put(
    "Training",
    "glioma",
    "g2_bright.jpg",
    await sharp(g2).linear(1.02, 0).jpeg({ quality: 90 }).toBuffer(),
  );
  await put("Training", "glioma", "g3.jpg", await syntheticScan(4));
  await put("Training", "pituitary", "p0.jpg", p0);
  await put("Training", "pituitary", "p1.jpg", await syntheticScan(6));
  await put("Training", "pituitary", "p2.jpg", await syntheticScan(7));
  await put("Testing", "pituitary", "t_same_as_p0.jpg", p0);
  return files;
}

const names = (paths: { path: string }[]) =>
  paths.map((p) => p.path.split("/").pop()!).sort();

/** The exact groups of `makeDataset`'s files, with their flags and counts. */
function assertExactGroups(report: AuditReport): void {
  const s = report.summary;
  // Exact groups, ordered by first path ("…/Testing/…" < "…/Training/…"):
  // p0 across Testing/Training, the g0 copies, g1 under two labels.
  assert.deepEqual(report.exactGroups.map((g) => names(g.members)), [
    ["p0.jpg", "t_same_as_p0.jpg"],
    ["g0.jpg", "g0_copy.jpg"],
    ["g1.jpg", "p_same_as_g1.jpg"],
  ]);
  assert.deepEqual(report.exactGroups.map((g) => g.id), ["E1", "E2", "E3"]);
  const [e0, e1, e2] = report.exactGroups;
  assert.equal(e0.crossSplit, true);
  assert.deepEqual(e0.splits, ["Testing", "Training"]);
  assert.equal(e0.labelConflict, false);
  assert.equal(e1.labelConflict, false);
  assert.equal(e1.crossSplit, false);
  assert.equal(e2.labelConflict, true);
  assert.deepEqual(e2.labels, ["glioma", "pituitary"]);
  assert.equal(e2.crossSplit, false);
  assert.equal(e0.maxDistance, 0);
  assert.deepEqual(s.exact, {
    groups: 3,
    images: 6,
    redundant: 3,
    labelConflicts: 1,
    crossSplit: 1,
  });
}

/** The one near group of `makeDataset`'s files: the four versions of g2. */
function assertNearGroup(report: AuditReport): void {
  const s = report.summary;
  // Near: the four versions of g2, and nothing else.
  assert.equal(report.nearGroups.length, 1);
  const n = report.nearGroups[0];
  assert.deepEqual(names(n.members), [
    "g2.jpg",
    "g2_bright.jpg",
    "g2_q50.jpg",
    "g2_small.jpg",
  ]);
  assert.equal(n.kind, "near");
  assert.equal(n.id, "N1");
  assert.equal(n.labelConflict, false);
  assert.ok(n.maxDistance <= DEFAULT_NEAR_THRESHOLD);
  assert.ok(n.pairs!.length >= 3);
  for (const p of n.pairs!) {
    assert.ok(p.a < p.b);
    const ha = n.members.find((m) => m.path === p.a)!.phash!;
    const hb = n.members.find((m) => m.path === p.b)!.phash!;
    assert.equal(hammingDistance(ha, hb), p.distance);
  }
  assert.equal(s.near.groups, 1);
  assert.equal(s.near.images, 4);
  assert.equal(s.near.redundant, 3);
  const grouped = new Set(
    [...report.exactGroups, ...report.nearGroups].flatMap((g) =>
      g.members.map((m) => m.path.split("/").pop())
    ),
  );
  for (const lone of ["g3.jpg", "p1.jpg", "p2.jpg"]) {
    assert.ok(!grouped.has(lone), `${lone} should match nothing`);
  }
}

Deno.test("auditDuplicates: exact, near, label conflicts, cross-split; unrelated images unmatched", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = await makeDataset(dir);
    const report = await auditDuplicates({ files, concurrency: 3 });
    const s = report.summary;
    assert.equal(s.files, 13);
    assert.equal(s.hashed, 13);
    assert.equal(s.errors, 0);
    assert.equal(s.nearThreshold, DEFAULT_NEAR_THRESHOLD);

    assertExactGroups(report);
    assertNearGroup(report);

    // Per split (default: origin).
    assert.deepEqual(s.bySplit.Training, {
      files: 12,
      exactGroups: 2,
      exactRedundant: 2,
      nearGroups: 1,
      nearRedundant: 3,
    });
    assert.equal(s.bySplit.Testing.files, 1);
    assert.equal(s.bySplit.Testing.exactGroups, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("auditDuplicates: explicit splits (Map or Record) drive cross-split detection", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = (await makeDataset(dir)).filter((f) =>
      f.origin === "Training"
    );
    const at = (name: string) => files.find((f) => f.path.endsWith(name))!.path;
    const record: Record<string, string> = {};
    for (const f of files) record[f.path] = "train";
    record[at("g0_copy.jpg")] = "test";
    record[at("g2_small.jpg")] = "validation";
    for (const splits of [record, new Map(Object.entries(record))]) {
      const report = await auditDuplicates({ files, splits });
      const leaking = [...report.exactGroups, ...report.nearGroups].filter((
        g,
      ) => g.crossSplit);
      assert.deepEqual(leaking.map((g) => g.id), ["E1", "N1"]);
      assert.deepEqual(leaking[0].splits, ["test", "train"]);
      assert.deepEqual(leaking[1].splits, ["train", "validation"]);
      assert.equal(report.summary.exact.crossSplit, 1);
      assert.equal(report.summary.near.crossSplit, 1);
      assert.equal(report.summary.bySplit.train.exactGroups, 1); // g1 pair
      assert.equal(report.summary.bySplit.train.nearGroups, 1); // g2 ×3
      assert.equal(report.summary.bySplit.train.nearRedundant, 2);
      assert.equal(report.summary.bySplit.test.files, 1);
    }
    // A path missing from the map has no split.
    const partial = new Map([[at("g0.jpg"), "train"]]);
    const r2 = await auditDuplicates({ files, splits: partial });
    assert.equal(r2.exactGroups[0].crossSplit, false);
    assert.equal(r2.exactGroups[0].members[1].split, undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("auditDuplicates: corrupt images are reported, byte copies of them still grouped", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "glioma"));
    const ok = join(dir, "glioma", "ok.jpg");
    await Deno.writeFile(ok, await syntheticScan(1));
    const junk = new TextEncoder().encode("this is not a jpeg");
    const bad1 = join(dir, "glioma", "bad1.jpg");
    const bad2 = join(dir, "glioma", "bad2.jpg");
    await Deno.writeFile(bad1, junk);
    await Deno.writeFile(bad2, junk);
    const files = [ok, bad1, bad2].map((path) => ({ path, label: "glioma" }));
    const report = await auditDuplicates({ files });
    assert.equal(report.summary.errors, 2);
    assert.deepEqual(report.errors.map((e) => e.path).sort(), [bad1, bad2]);
    assert.equal(report.summary.hashed, 1);
    assert.equal(report.exactGroups.length, 1);
    assert.equal(report.exactGroups[0].members[0].phash, undefined);
    assert.equal(report.nearGroups.length, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("auditDuplicates: bad options are rejected", async () => {
  const f = { path: "x.jpg", label: "a" };
  await assert.rejects(
    () => auditDuplicates({ files: [f], nearThreshold: -1 }),
    /nearThreshold/,
  );
  await assert.rejects(
    () => auditDuplicates({ files: [f, f] }),
    /listed twice: x\.jpg/,
  );
});

Deno.test("dedupeKeep: one per exact group, optionally per near group; conflicts dropped or kept", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = await makeDataset(dir);
    const report = await auditDuplicates({ files });
    assert.deepEqual(names(dedupeKeep(files, report)), [
      "g0.jpg",
      "g2.jpg",
      "g2_bright.jpg",
      "g2_q50.jpg",
      "g2_small.jpg",
      "g3.jpg",
      "p1.jpg",
      "p2.jpg",
      "t_same_as_p0.jpg", // first by path: …/Testing/… < …/Training/…
    ]);
    assert.deepEqual(
      names(dedupeKeep(files, report, { near: true, conflicts: "keep-first" })),
      [
        "g0.jpg",
        "g1.jpg",
        "g2.jpg",
        "g3.jpg",
        "p1.jpg",
        "p2.jpg",
        "t_same_as_p0.jpg",
      ],
    );
    // The Training images alone keep p0.
    const training = files.filter((f) => f.origin === "Training");
    assert.ok(
      names(dedupeKeep(training, report)).includes("p0.jpg"),
    );
    // A subset (the Testing images alone) keeps its own member.
    const testing = files.filter((f) => f.origin === "Testing");
    assert.deepEqual(dedupeKeep(testing, report, { near: true }), testing);
    // Input order preserved.
    const kept = dedupeKeep(files, report);
    assert.deepEqual(kept, files.filter((f) => kept.includes(f)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("duplicateGroups, tables and JSON", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = await makeDataset(dir);
    const report = await auditDuplicates({ files });
    assert.equal(duplicateGroups(report).length, 4);
    assert.equal(duplicateGroups(report, { near: false }).length, 3);
    assert.deepEqual(
      duplicateGroups(report)[3].map((p) => p.split("/").pop()).sort(),
      ["g2.jpg", "g2_bright.jpg", "g2_q50.jpg", "g2_small.jpg"],
    );

    const json = auditToJSON(report);
    const round = JSON.parse(JSON.stringify(json));
    assert.deepEqual(round.summary, report.summary);
    assert.equal(round.exactGroups.length, 3);
    assert.match(round.nearGroups[0].members[0].phash, /^[0-9a-f]{16}$/);

    const summary = auditSummaryRows(report);
    assert.equal(summary[0]["redundant copies"], 3);
    assert.equal(summary[0]["label conflicts"], 1);
    assert.equal(summary[1].groups, 1);
    const splitRows = auditSplitRows(report);
    assert.deepEqual(splitRows.map((r) => r.split), [
      "Testing",
      "Training",
      "across splits",
    ]);
    assert.equal(splitRows[2]["exact groups"], 1);
    const problems = auditGroupRows(report);
    assert.deepEqual(problems.map((r) => r.group), ["E1", "E3"]);
    assert.equal(auditGroupRows(report, { all: true }).length, 4);
    const tables = auditTables(report);
    assert.equal(tables.length, 3);
    const text = tables[0][JUPYTER_DISPLAY]()["text/plain"] as string;
    assert.match(text, /Duplicates among 13 images/);
    assert.match(text, /exact \(same bytes\)\s+3\s+6\s+3\s+1\s+1/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pairsWithin (BK-tree) finds exactly the brute-force pairs", () => {
  const r = rng(21);
  const rand64 = () =>
    (BigInt(r.int32() >>> 0) << 32n) | BigInt(r.int32() >>> 0);
  const hashes: bigint[] = [];
  for (let c = 0; c < 40; c++) {
    const center = rand64();
    hashes.push(center);
    for (let k = 0; k < r.int(0, 6); k++) {
      let h = center;
      for (let b = 0; b < r.int(0, 8); b++) h ^= 1n << BigInt(r.int(0, 63));
      hashes.push(h);
    }
  }
  hashes.push(hashes[3]); // an identical hash too
  for (const t of [0, 2, 5, 8]) {
    const expected: [number, number, number][] = [];
    for (let i = 0; i < hashes.length; i++) {
      for (let j = i + 1; j < hashes.length; j++) {
        const d = hammingDistance(hashes[i], hashes[j]);
        if (d <= t) expected.push([i, j, d]);
      }
    }
    assert.deepEqual(pairsWithin(hashes, t), expected);
  }
  assert.deepEqual(pairsWithin([], 4), []);
});

Deno.test("thresholdSweep: counts grow with the threshold and match the audit", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = await makeDataset(dir);
    const report = await auditDuplicates({ files, nearThreshold: 6 });
    const sweep = thresholdSweep({ hashes: report.hashes });
    assert.deepEqual(sweep.map((s) => s.threshold), [
      0,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      9,
      10,
    ]);
    for (let i = 1; i < sweep.length; i++) {
      assert.ok(sweep[i].pairs >= sweep[i - 1].pairs);
    }
    const at6 = sweep[6];
    assert.equal(at6.pairs, report.summary.nearPairs);
    assert.equal(at6.groups, report.summary.near.groups);
    assert.equal(at6.images, report.summary.near.images);
    for (const row of sweep) {
      assert.ok(row.largest <= row.images);
      assert.ok(row.groups === 0 ? row.largest === 0 : row.largest >= 2);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: tables, --json, and a usage error on bad flags", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await makeDataset(dir);
    const script = new URL("./audit.ts", import.meta.url).pathname;
    const deno = Deno.execPath();
    const json = await run(deno, {
      args: ["run", "-A", script, "--data", dir, "--json", "--sweep", "4"],
      cwd: PROJECT_ROOT,
    });
    assert.equal(json.code, 0, json.stderr);
    const out = JSON.parse(json.stdout);
    assert.equal(out.summary.files, 13);
    assert.equal(out.summary.exact.groups, 3);
    assert.equal(out.summary.exact.crossSplit, 1);
    assert.equal(out.sweep.length, 5);

    const text = await run(deno, {
      args: ["run", "-A", script, "--data", dir, "--threshold", "2"],
      cwd: PROJECT_ROOT,
    });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /near \(pHash ≤ 2 bits\)/);
    assert.match(text.stdout, /13 images; hashing/);

    const bad = await run(deno, {
      args: ["run", "-A", script, "--data", dir, "--threshold", "x"],
      cwd: PROJECT_ROOT,
    });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--threshold must be a number \(got "x"\)/);
    assert.match(bad.stderr, /usage:/);
    assert.doesNotMatch(bad.stderr, /at .*audit\.ts:\d+/);

    const missing = await run(deno, {
      args: ["run", "-A", script, "--data", join(dir, "nope")],
      cwd: PROJECT_ROOT,
    });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Dataset root not found: .*nope/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** `<dir>/glioma/{a,b}.jpg` (b a byte copy of a) and `<dir>/notumor/c.jpg`. */
async function smallDataset(dir: string): Promise<void> {
  const a = await syntheticScan(11);
  for (
    const [file, bytes] of [["glioma/a.jpg", a], ["glioma/b.jpg", a], [
      "notumor/c.jpg",
      await syntheticScan(12),
    ]] as const
  ) {
    await Deno.mkdir(join(dir, file, ".."), { recursive: true });
    await Deno.writeFile(join(dir, file), bytes);
  }
}

Deno.test("auditDataset: an empty class folder is a warning and the rest is audited; no image at all is an error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await smallDataset(dir);
    await Deno.mkdir(join(dir, "pituitary"));
    await Deno.mkdir(join(dir, "meningioma"));
    await Deno.writeTextFile(join(dir, "meningioma", "notes.txt"), "no scan");
    const { warnings, skipped, report } = await auditDataset({ data: dir });
    assert.deepEqual(warnings, [
      `${join(dir, "meningioma")}: class folder with no JPEG or PNG images ` +
      "(1 skipped); the other classes are audited",
      `${join(dir, "pituitary")}: class folder with no JPEG or PNG images ` +
      "(it is empty); the other classes are audited",
    ]);
    assert.deepEqual(skipped, [{
      path: join(dir, "meningioma", "notes.txt"),
      reason: "not a JPEG or PNG (text)",
    }]);
    assert.equal(report.summary.files, 3);
    assert.equal(report.summary.exact.groups, 1);

    for (const file of ["glioma/a.jpg", "glioma/b.jpg", "notumor/c.jpg"]) {
      await Deno.remove(join(dir, file));
    }
    await assert.rejects(
      auditDataset({ data: dir }),
      new RegExp(
        `^Error: no JPEG or PNG images in any class folder of ${dir} ` +
          "\\(4 empty class folders\\)$",
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("auditDataset: a linked class folder, a file for a class folder, a FIFO, a device and an unreadable file are reported, not fatal", async () => {
  const dir = await Deno.makeTempDir();
  const elsewhere = await Deno.makeTempDir();
  try {
    await smallDataset(dir);
    await Deno.mkdir(join(elsewhere, "meningioma"));
    await Deno.writeFile(
      join(elsewhere, "meningioma", "m.jpg"),
      await syntheticScan(13),
    );
    await Deno.symlink(join(elsewhere, "meningioma"), join(dir, "meningioma"));
    await Deno.writeTextFile(join(dir, "pituitary"), "a file, not a folder");
    const made = await new Deno.Command("mkfifo", {
      args: [join(dir, "glioma", "fifo.jpg")],
    }).output();
    assert.ok(made.success);
    await Deno.symlink("/dev/zero", join(dir, "glioma", "zero.jpg"));
    // Unreadable when hashed: removed after discovery, while the first
    // image is hashed (one at a time, in order).
    const vanishing = join(dir, "notumor", "c.jpg");
    const t0 = performance.now();
    const { warnings, skipped, report } = await auditDataset({
      data: dir,
      concurrency: 1,
      onProgress: (done) => {
        if (done === 1) Deno.removeSync(vanishing);
      },
    });
    assert.ok(performance.now() - t0 < 5000); // nothing blocked on the FIFO
    assert.deepEqual(warnings, [
      `${join(dir, "meningioma")} is a symbolic link to ` +
      `${await Deno.realPath(join(elsewhere, "meningioma"))}; its images ` +
      "are audited as if they were here",
    ]);
    assert.deepEqual(skipped, [
      { path: join(dir, "glioma", "fifo.jpg"), reason: "not a regular file" },
      { path: join(dir, "glioma", "zero.jpg"), reason: "not a regular file" },
      {
        path: join(dir, "pituitary"),
        reason: "file outside any class folder",
      },
    ]);
    assert.equal(report.summary.files, 4);
    assert.deepEqual(report.errors.map((e) => e.path), [vanishing]);
    assert.match(report.errors[0].error, /^cannot read: No such file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(elsewhere, { recursive: true });
  }
});

Deno.test("CLI: an empty class folder warns and the audit carries on; a dataset with no image fails clearly", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await smallDataset(dir);
    await Deno.mkdir(join(dir, "pituitary"));
    const script = new URL("./audit.ts", import.meta.url).pathname;
    const audit = (...args: string[]) =>
      run(Deno.execPath(), {
        args: ["run", "-A", script, "--data", dir, ...args],
        cwd: PROJECT_ROOT,
      });
    const text = await audit();
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stderr,
      /warning: .*pituitary: class folder with no JPEG or PNG images \(it is empty\); the other classes are audited/,
    );
    assert.match(text.stdout, /3 images; hashing/);
    const json = await audit("--json");
    assert.equal(json.code, 0, json.stderr);
    const out = JSON.parse(json.stdout);
    assert.equal(out.warnings.length, 1);
    assert.equal(out.summary.files, 3);

    for (const c of ["glioma", "notumor"]) {
      await Deno.remove(join(dir, c), { recursive: true });
      await Deno.mkdir(join(dir, c));
    }
    const empty = await audit();
    assert.equal(empty.code, 1);
    assert.match(
      empty.stderr,
      /^error: no JPEG or PNG images in any class folder of .* \(3 empty class folders\)$/m,
    );
    assert.doesNotMatch(empty.stderr, /at .*\.ts:\d+/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
