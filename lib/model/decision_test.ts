import assert from "node:assert/strict";
import {
  argmax,
  decider,
  describeDecision,
  tumourThresholdProblem,
} from "./decision.ts";
import { rng } from "../core/random.ts";

const CLASSES = ["glioma", "meningioma", "notumor", "pituitary"];
const NEG = 2;

/** `n` seeded rows of 4 probabilities summing to 1, many near the boundary. */
function rows(n: number, seed: number): number[][] {
  const r = rng(seed);
  return Array.from({ length: n }, () => {
    const raw = CLASSES.map(() => r.next() ** 3);
    const sum = raw.reduce((a, b) => a + b, 0);
    return raw.map((v) => v / sum);
  });
}

Deno.test("decider: argmax by default, the first class on a tie", () => {
  const decide = decider(CLASSES);
  assert.equal(decide([0.1, 0.2, 0.6, 0.1]), 2);
  assert.equal(decide([0.4, 0.4, 0.1, 0.1]), 0);
  assert.equal(decide([0.25, 0.25, 0.25, 0.25]), 0);
  // no negative class needed without a threshold
  assert.equal(decider(["a", "b"])([0.3, 0.7]), 1);
  // only the classes' columns count
  assert.equal(decider(["a", "b"])([0.3, 0.2, 0.9]), 0);
  assert.equal(argmax([0.3, 0.2, 0.9]), 2);
  assert.equal(argmax([0.3, 0.2, 0.9], 2), 0);
});

Deno.test("decider: a threshold calls a tumour when P(tumour) >= τ, else notumor", () => {
  const decide = decider(CLASSES, { tumourThreshold: 0.2 });
  // P(tumour) = 0.25 >= 0.2: the most probable tumour class, meningioma
  assert.equal(decide([0.05, 0.15, 0.75, 0.05]), 1);
  // P(tumour) = 0.15 < 0.2: notumor
  assert.equal(decide([0.05, 0.05, 0.85, 0.05]), NEG);
  // exactly at τ counts as a tumour (0.5 + 0.5 is exact in binary)
  assert.equal(
    decider(CLASSES, { tumourThreshold: 0.5 })([0.5, 0, 0.5, 0]),
    0,
  );
  // a tie between tumour classes goes to the first
  assert.equal(decide([0.1, 0.1, 0.7, 0.1]), 0);
  // another negative class by name
  const other = decider(["x", "healthy", "y"], {
    tumourThreshold: 0.3,
    negativeClass: "healthy",
  });
  assert.equal(other([0.1, 0.6, 0.3]), 2);
  assert.equal(other([0.1, 0.8, 0.1]), 1);
});

Deno.test("decider: a threshold only turns notumor calls into tumour calls, more as τ falls", () => {
  const data = rows(2000, 7);
  const argmax = decider(CLASSES);
  const taus = [0.5, 0.4, 0.3, 0.2, 0.1, 0.05];
  let previous = data.map(argmax);
  let flippedSomewhere = 0;
  for (const tau of taus) {
    const decide = decider(CLASSES, { tumourThreshold: tau });
    const now = data.map(decide);
    data.forEach((row, i) => {
      const a = argmax(row);
      // every argmax tumour call stands, with the same class
      if (a !== NEG) assert.equal(now[i], a, `row ${i}, τ ${tau}`);
      // a flipped call is the most probable tumour class
      if (a === NEG && now[i] !== NEG) {
        const tumours = [0, 1, 3].map((c) => row[c]);
        assert.equal(row[now[i]], Math.max(...tumours));
        assert.ok(1 - row[NEG] >= tau);
      }
      // lowering τ never takes a tumour call back
      if (previous[i] !== NEG) assert.equal(now[i], previous[i]);
    });
    flippedSomewhere += now.filter((c, i) => c !== previous[i]).length;
    previous = now;
  }
  assert.ok(flippedSomewhere > 100, `only ${flippedSomewhere} flips`);
});

Deno.test("decider: clear errors for a bad threshold or a missing negative class", () => {
  for (const bad of [0, -0.1, 0.51, 1, NaN, "0.2"]) {
    assert.throws(
      () => decider(CLASSES, { tumourThreshold: bad as number }),
      /tumourThreshold must be a number in \(0, 0\.5\]/,
    );
  }
  assert.throws(
    () => decider(["glioma", "meningioma"], { tumourThreshold: 0.2 }),
    /a tumour threshold needs a "notumor" class \(classes: glioma, meningioma\)/,
  );
  assert.equal(tumourThresholdProblem(0.5), null);
  assert.equal(tumourThresholdProblem(0.05), null);
  assert.match(tumourThresholdProblem(undefined)!, /got undefined/);
});

Deno.test("describeDecision: argmax or the operating point in words", () => {
  assert.equal(describeDecision(), "argmax (the most probable class)");
  assert.equal(
    describeDecision({ tumourThreshold: 0.1 }),
    "tumour when P(tumour) = 1 − P(notumor) ≥ 0.1 (its most probable tumour class), else notumor",
  );
});
