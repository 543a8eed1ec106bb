import assert from "node:assert/strict";
import { JUPYTER_DISPLAY } from "../core/display.ts";
import { wilsonInterval } from "../evaluate/metrics.ts";
import {
  chooseOperatingPoint,
  formatOperatingPoints,
  OPERATING_POINT_CANDIDATES,
  operatingPoints,
  operatingPointTable,
} from "./operating_point.ts";
import { CLINICAL_TARGETS, type Target } from "../evaluate/targets.ts";

const CLASSES = ["glioma", "meningioma", "notumor", "pituitary"];

/**
 * 200 scans per class, all called right with probability 0.99, except:
 * 4 gliomas with P(notumor) 0.65 (P(tumour) 0.35: found from τ = 0.3),
 * 2 meningiomas with P(notumor) 0.85 (found from τ = 0.1), and 5 healthy
 * scans with P(pituitary) 0.25 (false alarms from τ = 0.2).
 */
function scenario(): { yTrue: number[]; probs: number[][] } {
  const yTrue: number[] = [];
  const probs: number[][] = [];
  const row = (c: number, p: number, other: number) => {
    const r = [0, 0, 0, 0];
    r[c] = p;
    r[other] += 1 - p;
    return r;
  };
  for (let c = 0; c < 4; c++) {
    for (let i = 0; i < 200; i++) {
      yTrue.push(c);
      if (c === 0 && i < 4) probs.push(row(2, 0.65, 0));
      else if (c === 1 && i < 2) probs.push(row(2, 0.85, 1));
      else if (c === 2 && i < 5) probs.push(row(2, 0.75, 3));
      else probs.push(row(c, 0.99, (c + 1) % 4));
    }
  }
  return { yTrue, probs };
}

Deno.test("operatingPoints: missed tumours and false alarms per τ; loss and calibration unchanged", () => {
  const points = operatingPoints({ ...scenario(), classes: CLASSES });
  assert.deepEqual(
    points.map((p) => p.tumourThreshold),
    [...OPERATING_POINT_CANDIDATES],
  );
  assert.deepEqual(points.map((p) => p.missed), [6, 6, 6, 2, 2, 0, 0]);
  assert.deepEqual(points.map((p) => p.falseAlarms), [0, 0, 0, 0, 5, 5, 5]);
  for (const p of points) {
    assert.equal(p.report.loss, points[0].report.loss);
    assert.equal(p.report.calibration.ece, points[0].report.calibration.ece);
    const ci = wilsonInterval({ successes: 600 - p.missed, total: 600 });
    assert.equal(p.sensitivityLower, ci.lower);
    assert.equal(p.sensitivity, (600 - p.missed) / 600);
    assert.deepEqual(
      p.report.binary!.decision,
      p.tumourThreshold === null ? "argmax" : { threshold: p.tumourThreshold },
    );
  }
  // a rescued glioma is called glioma, not just "a tumour"
  assert.equal(points[3].report.confusionMatrix[0][0], 200);
  assert.equal(points[0].report.confusionMatrix[0][2], 4);
  assert.throws(
    () =>
      operatingPoints({ ...scenario(), classes: CLASSES, candidates: [0.3] }),
    /the first candidate must be argmax/,
  );
});

Deno.test("chooseOperatingPoint: the first τ whose sensitivity lower bound reaches 99%", () => {
  const points = operatingPoints({ ...scenario(), classes: CLASSES });
  // lower bounds: 594/600 → 0.978, 598/600 → 0.988, 600/600 → 0.994
  assert.ok(points[3].sensitivityLower < 0.99);
  assert.ok(points[5].sensitivityLower >= 0.99);
  const c = chooseOperatingPoint(points);
  assert.equal(c.chosen.tumourThreshold, 0.1);
  assert.equal(c.reachedBar, true);
  assert.equal(c.eligible.length, points.length);
});

Deno.test("chooseOperatingPoint: no target argmax meets is given up; else the highest lower bound, earliest on a tie", () => {
  const specificity: Target = {
    name: "specificity ≥ 99%",
    value: (r) => r.binary?.specificity ?? null,
    min: 0.99,
    percent: true,
  };
  const points = operatingPoints({
    ...scenario(),
    classes: CLASSES,
    targets: [...CLINICAL_TARGETS, specificity],
  });
  const c = chooseOperatingPoint(points);
  // τ ≤ 0.2 raise 5 false alarms (specificity 97.5%): out; of the rest, none
  // reaches the bar and τ = 0.3 has the highest lower bound
  assert.deepEqual(
    c.eligible.map((p) => p.tumourThreshold),
    [null, 0.5, 0.4, 0.3],
  );
  assert.equal(c.chosen.tumourThreshold, 0.3);
  assert.equal(c.reachedBar, false);
  // equal lower bounds: argmax, the earliest, stays
  const flat = operatingPoints({
    ...scenario(),
    classes: CLASSES,
    candidates: [null, 0.5, 0.4],
  });
  assert.equal(chooseOperatingPoint(flat).chosen.tumourThreshold, null);
  assert.throws(
    () => chooseOperatingPoint(points.slice(1)),
    /the first point must be argmax/,
  );
  // a stricter bar than any candidate reaches falls back to step 3
  assert.equal(
    chooseOperatingPoint(points, { minLowerBound: 0.999 }).reachedBar,
    false,
  );
});

Deno.test("formatOperatingPoints and operatingPointTable: one row per candidate, the choice marked", () => {
  const points = operatingPoints({ ...scenario(), classes: CLASSES });
  const chosen = chooseOperatingPoint(points).chosen;
  const lines = formatOperatingPoints(points, chosen).split("\n");
  assert.equal(lines.length, 1 + points.length);
  assert.match(lines[0], /^operating point\s+targets met\s+accuracy/);
  assert.match(lines[1], /^argmax\s/);
  assert.match(
    lines[6],
    /^τ = 0\.1 \(chosen\)\s+\d\/6\s+99\.38%\s+100\.00% \(≥ 99\.\d\d%\)\s+0\s+5\s+97\.50%$/,
  );
  const table = operatingPointTable({ points, chosen });
  const html = String(table[JUPYTER_DISPLAY]()["text/html"]);
  assert.equal(html.match(/<tr>/g)?.length, 1 + points.length);
  assert.match(html, /τ = 0\.1 \(chosen\)/);
  assert.match(html, /P\(tumour\) = 1 − P\(notumor\) ≥ τ/);
});
