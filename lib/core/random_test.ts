import assert from "node:assert/strict";
import { deriveSeed, rng } from "./random.ts";

Deno.test("rng: same seed, same sequence; different seed, different", () => {
  const a = Array.from({ length: 5 }, rng(7).next);
  const r = rng(7);
  assert.deepEqual(Array.from({ length: 5 }, () => r.next()), a);
  const s = rng(8);
  assert.notDeepEqual(Array.from({ length: 5 }, () => s.next()), a);
});

Deno.test("rng: ranges hold", () => {
  const r = rng("ranges");
  for (let i = 0; i < 1000; i++) {
    const u = r.uniform(2, 3);
    assert.ok(u >= 2 && u < 3);
    const k = r.int(-2, 2);
    assert.ok(Number.isInteger(k) && k >= -2 && k <= 2);
  }
});

Deno.test("rng: normal has about the right mean and sd", () => {
  const r = rng(1);
  const xs = Array.from({ length: 20000 }, () => r.normal(5, 2));
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
  assert.ok(Math.abs(mean - 5) < 0.05, `mean ${mean}`);
  assert.ok(Math.abs(sd - 2) < 0.05, `sd ${sd}`);
});

Deno.test("rng: shuffle is a seeded permutation", () => {
  const items = Array.from({ length: 50 }, (_, i) => i);
  const a = rng(3).shuffle([...items]);
  const b = rng(3).shuffle([...items]);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, items);
  assert.deepEqual([...a].sort((x, y) => x - y), items);
});

Deno.test("deriveSeed: stable and distinct per name", () => {
  assert.equal(deriveSeed(42, "split"), deriveSeed(42, "split"));
  assert.notEqual(deriveSeed(42, "split"), deriveSeed(42, "augment"));
  assert.notEqual(deriveSeed(42, "split"), deriveSeed(43, "split"));
});
