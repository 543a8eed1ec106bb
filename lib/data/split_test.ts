import assert from "node:assert/strict";
import {
  assertNoLeak,
  splitDataset,
  type SplitFile,
  type SplitItem,
  type Splits,
  stratifiedSplit,
  UnionFind,
} from "./split.ts";
import { rng } from "../core/random.ts";

const FR = { train: 0.7, validation: 0.15, test: 0.15 };

function classItems(sizes: Record<string, number>): SplitItem[] {
  return Object.entries(sizes).flatMap(([label, n]) =>
    Array.from({ length: n }, (_, i) => ({
      id: `${label}/${String(i).padStart(4, "0")}.jpg`,
      label,
    }))
  );
}

function assertPartition(s: Splits, ids: string[]): void {
  const all = [...s.train, ...s.validation, ...s.test];
  assert.equal(all.length, ids.length, "every item exactly once");
  assert.deepEqual([...all].sort(), [...ids].sort());
}

function countBy(ids: string[], labelOf: Map<string, string>) {
  const c: Record<string, number> = {};
  for (const id of ids) c[labelOf.get(id)!] = (c[labelOf.get(id)!] ?? 0) + 1;
  return c;
}

Deno.test("UnionFind merges transitively", () => {
  const uf = new UnionFind(6);
  uf.union(0, 1);
  uf.union(2, 3);
  uf.union(1, 3);
  assert.equal(uf.find(0), uf.find(2));
  assert.notEqual(uf.find(0), uf.find(4));
  assert.deepEqual(
    uf.components(2).map((c) => c.sort((a, b) => a - b)),
    [[0, 1, 2, 3]],
  );
  assert.equal(uf.components().length, 3);
});

Deno.test("stratifiedSplit: per-class counts hit their quotas exactly without groups", () => {
  const sizes = { glioma: 101, meningioma: 60, notumor: 37, pituitary: 3 };
  const items = classItems(sizes);
  const labelOf = new Map(items.map((it) => [it.id, it.label]));
  const s = stratifiedSplit({ items, fractions: FR, seed: 1 });
  assertPartition(s, items.map((it) => it.id));
  for (const [name, f] of Object.entries(FR) as [keyof Splits, number][]) {
    const got = countBy(s[name], labelOf);
    for (const [label, n] of Object.entries(sizes)) {
      const want = n * f;
      assert.ok(
        Math.abs((got[label] ?? 0) - want) < 1,
        `${name}/${label}: ${got[label] ?? 0} vs ${want}`,
      );
    }
  }
  // Largest remainder: glioma 70.7/15.15/15.15 → 71/15/15.
  assert.deepEqual(
    ["train", "validation", "test"].map((k) =>
      countBy(s[k as keyof Splits], labelOf).glioma
    ),
    [71, 15, 15],
  );
  for (const k of ["train", "validation", "test"] as const) {
    assert.deepEqual(s[k], [...s[k]].sort(), "each split sorted");
  }
});

Deno.test("stratifiedSplit: seeded — same seed same split, different seed different, input order irrelevant", () => {
  const items = classItems({ a: 50, b: 50 });
  const a = stratifiedSplit({ items, fractions: FR, seed: 42 });
  const b = stratifiedSplit({ items, fractions: FR, seed: 42 });
  assert.deepEqual(a, b);
  const c = stratifiedSplit({ items, fractions: FR, seed: 43 });
  assert.notDeepEqual(a.test, c.test);
  const shuffled = rng(7).shuffle([...items]);
  assert.deepEqual(
    stratifiedSplit({ items: shuffled, fractions: FR, seed: 42 }),
    a,
  );
});

Deno.test("stratifiedSplit: duplicate groups never straddle splits, including transitive ones", () => {
  const r = rng(3);
  const items = classItems({ glioma: 120, notumor: 140, pituitary: 90 });
  const groups: string[][] = [];
  // Random groups of 2–5 items of one class.
  for (let g = 0; g < 40; g++) {
    const label = r.pick(["glioma", "notumor", "pituitary"]);
    const pool = items.filter((it) => it.label === label && !it.group);
    const members = r.shuffle([...pool]).slice(0, r.int(2, 5));
    for (const m of members) m.group = `g${g}`;
    groups.push(members.map((m) => m.id));
  }
  // A transitive chain: x~y in one group, y~z in another (y is in both).
  const [x, y, z] = items.filter((it) => !it.group).slice(0, 3);
  x.group = "chain-1";
  y.group = ["chain-1", "chain-2"];
  z.group = "chain-2";
  groups.push([x.id, y.id], [y.id, z.id]);
  const labelOf = new Map(items.map((it) => [it.id, it.label]));
  for (let seed = 0; seed < 20; seed++) {
    const s = stratifiedSplit({ items, fractions: FR, seed });
    assertPartition(s, items.map((it) => it.id));
    assertNoLeak(s, groups);
    const where = (id: string) =>
      (["train", "validation", "test"] as const).find((k) => s[k].includes(id));
    assert.equal(where(x.id), where(z.id), "transitive group kept together");
    // Stratified to within the largest group size (5).
    for (const [name, f] of Object.entries(FR) as [keyof Splits, number][]) {
      const got = countBy(s[name], labelOf);
      for (const [label, n] of [["glioma", 120], ["notumor", 140]] as const) {
        assert.ok(
          Math.abs((got[label] ?? 0) - n * f) <= 5,
          `seed ${seed} ${name}/${label}: ${got[label]} vs ${n * f}`,
        );
      }
    }
  }
});

Deno.test("stratifiedSplit: zero fractions stay empty; bad input is rejected", () => {
  const items = classItems({ a: 10, b: 7 });
  const s = stratifiedSplit({
    items,
    fractions: { train: 0.8, validation: 0.2, test: 0 },
    seed: 1,
  });
  assert.equal(s.test.length, 0);
  assert.equal(s.train.length + s.validation.length, 17);
  // A big group must not spill into the zero-fraction split.
  const grouped = items.map((it, i) => ({
    ...it,
    group: i < 9 ? "big" : undefined,
  }));
  const g = stratifiedSplit({
    items: grouped,
    fractions: { train: 0.5, validation: 0.5, test: 0 },
    seed: 2,
  });
  assert.equal(g.test.length, 0);
  assert.throws(
    () =>
      stratifiedSplit({
        items,
        fractions: { train: 0.7, validation: 0.2, test: 0.2 },
        seed: 1,
      }),
    /sum to 1/,
  );
  assert.throws(
    () =>
      stratifiedSplit({
        items,
        fractions: { train: 1.2, validation: -0.2, test: 0 },
        seed: 1,
      }),
    /must be a number in \[0, 1\]/,
  );
  assert.throws(
    () =>
      stratifiedSplit({
        items: [items[0], items[0]],
        fractions: FR,
        seed: 1,
      }),
    /duplicate item id a\/0000\.jpg/,
  );
});

function kaggleFiles(
  origin: "Training" | "Testing" | "root",
  sizes: Record<string, number>,
): SplitFile[] {
  return Object.entries(sizes).flatMap(([label, n]) =>
    Array.from({ length: n }, (_, i) => ({
      path: `${origin}/${label}/${origin[1]}${i}.jpg`,
      label,
      origin,
    }))
  );
}

Deno.test("splitDataset case (a): no Testing folder — all three carved, groups kept whole", () => {
  const files = kaggleFiles("root", { glioma: 100, notumor: 80 });
  const groups = [
    ["root/glioma/o0.jpg", "root/glioma/o1.jpg", "root/glioma/o2.jpg"],
    ["root/notumor/o5.jpg", "root/notumor/o6.jpg"],
    ["root/notumor/o6.jpg", "root/notumor/o7.jpg"], // transitive with the one above
  ];
  const s = splitDataset({
    files,
    seed: 5,
    validation: 0.1,
    test: 0.2,
    groups,
  });
  assert.equal(s.mode, "carved");
  assert.deepEqual(s.dropped, []);
  assert.deepEqual(s.crossDuplicates, []);
  assertPartition(s, files.map((f) => f.path));
  assertNoLeak(s, groups);
  const labelOf = new Map(files.map((f) => [f.path, f.label]));
  const test = countBy(s.test, labelOf);
  assert.ok(Math.abs(test.glioma - 20) <= 2, `glioma test ${test.glioma}`);
  assert.ok(Math.abs(test.notumor - 16) <= 2, `notumor test ${test.notumor}`);
  assert.deepEqual(
    splitDataset({ files, seed: 5, validation: 0.1, test: 0.2, groups }),
    s,
  );
});

Deno.test("splitDataset case (b): official Testing kept; Training copies of it dropped and reported", () => {
  const training = kaggleFiles("Training", { glioma: 60, pituitary: 40 });
  const testing = kaggleFiles("Testing", { glioma: 10, pituitary: 10 });
  const files = [...training, ...testing];
  const groups = [
    // Training r0 is a copy of Testing e0.
    ["Training/glioma/r0.jpg", "Testing/glioma/e0.jpg"],
    // r1 ~ r2 (Training only), and r2 ~ Testing e1: r1 leaks transitively.
    ["Training/pituitary/r1.jpg", "Training/pituitary/r2.jpg"],
    ["Training/pituitary/r2.jpg", "Testing/pituitary/e1.jpg"],
    // Within Training only: must stay together, not dropped.
    ["Training/glioma/r5.jpg", "Training/glioma/r6.jpg"],
  ];
  const s = splitDataset({ files, seed: 9, validation: 0.2, groups });
  assert.equal(s.mode, "official-test");
  assert.deepEqual(s.test, testing.map((f) => f.path).sort());
  assert.deepEqual(s.dropped, [
    "Training/glioma/r0.jpg",
    "Training/pituitary/r1.jpg",
    "Training/pituitary/r2.jpg",
  ]);
  assert.deepEqual(s.crossDuplicates, [
    {
      training: ["Training/glioma/r0.jpg"],
      testing: ["Testing/glioma/e0.jpg"],
    },
    {
      training: ["Training/pituitary/r1.jpg", "Training/pituitary/r2.jpg"],
      testing: ["Testing/pituitary/e1.jpg"],
    },
  ]);
  const kept = training.map((f) => f.path).filter((p) =>
    !s.dropped.includes(p)
  );
  assert.deepEqual([...s.train, ...s.validation].sort(), kept.sort());
  // validation is 20 % of what is left of each Training class (59 and 38).
  const labelOf = new Map(files.map((f) => [f.path, f.label]));
  const val = countBy(s.validation, labelOf);
  assert.ok(Math.abs(val.glioma - 0.2 * 59) <= 1, `glioma ${val.glioma}`);
  assert.ok(Math.abs(val.pituitary - 0.2 * 38) < 1, `pit ${val.pituitary}`);
  assertNoLeak(s, groups);
});

Deno.test("splitDataset: a file listed twice is rejected", () => {
  const f = { path: "root/a/x.jpg", label: "a", origin: "root" };
  assert.throws(
    () => splitDataset({ files: [f, f], seed: 1 }),
    /listed twice: root\/a\/x\.jpg/,
  );
});

Deno.test("assertNoLeak: names the straddling files; also catches a file in two splits", () => {
  const splits = { train: ["a", "b", "c"], validation: ["d"], test: ["e"] };
  assertNoLeak(splits, [["a", "b"], ["b", "c"], ["x", "y"]]);
  assert.throws(
    () => assertNoLeak(splits, [["a", "e"]]),
    (e: Error) =>
      /1 duplicate group/.test(e.message) &&
      e.message.includes("a (train)") && e.message.includes("e (test)"),
  );
  // Transitive: a~z, z~d, with z in no split: a and d still leak.
  assert.throws(
    () => assertNoLeak(splits, [["a", "z"], ["z", "d"]]),
    /straddles train and validation: a \(train\), d \(validation\)/,
  );
  assert.throws(
    () => assertNoLeak({ train: ["a"], test: ["a"] }, []),
    /a is in both train and test/,
  );
});
