import assert from "node:assert/strict";
import { JUPYTER_DISPLAY } from "../core/display.ts";
import { evaluationReport } from "../evaluate/metrics.ts";
import { degenerateWarning } from "../evaluate/degenerate.ts";
import { degenerateModelBanner } from "./warnings.ts";

const CLASSES = ["glioma", "meningioma", "notumor", "pituitary"];

/** `perClass` scans of each class, class `c` called `calledAs[c]`. */
function report(calledAs: number[], perClass = 5) {
  const yTrue: number[] = [];
  const probs: number[][] = [];
  calledAs.forEach((called, c) => {
    for (let i = 0; i < perClass; i++) {
      yTrue.push(c);
      probs.push(CLASSES.map((_, k) => (k === called ? 0.7 : 0.1)));
    }
  });
  return evaluationReport({ yTrue, probs, classes: CLASSES });
}

Deno.test("degenerateModelBanner: a model that never calls notumor gets a visible warning box", () => {
  const r = report([0, 1, 3, 3]); // notumor called pituitary
  const bundle = degenerateModelBanner(r)[JUPYTER_DISPLAY]() as Record<
    string,
    string
  >;
  const html = bundle["text/html"];
  assert.match(
    html,
    /^<div class="brain-mri-warning" role="alert" style="[^"]*border/,
  );
  assert.match(
    html,
    /<strong>⚠ Warning: this model is degenerate\. Its metrics do not mean what they seem, and the clinical targets are not assessable:<\/strong>/,
  );
  assert.match(
    html,
    /<ul[^>]*><li>never predicts notumor, though 5 of the 20 scans are notumor<\/li><\/ul><\/div>$/,
  );
  // The plain-text form is the evaluation's and the model card's warning.
  assert.equal(bundle["text/plain"], degenerateWarning(r));
  assert.match(bundle["text/plain"], /\n- never predicts notumor/);
});

Deno.test("degenerateModelBanner: every reason is listed, class names escaped", () => {
  const r = evaluationReport({
    yTrue: [0, 1, 1],
    probs: [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4]],
    classes: ["a<b", "c&d"],
  });
  const html = degenerateModelBanner(r)[JUPYTER_DISPLAY]()[
    "text/html"
  ] as string;
  assert.equal(html.match(/<li>/g)?.length, 2);
  assert.match(
    html,
    /<li>never predicts c&amp;d, though 2 of the 3 scans are c&amp;d<\/li>/,
  );
  assert.match(html, /<li>accuracy 33\.3% is within 5 points of chance/);
  assert.doesNotMatch(html, /c&d/);
});

Deno.test("degenerateModelBanner: nothing to show for a model that is fine; the margin is an option", () => {
  const good = report([0, 1, 2, 3]);
  assert.deepEqual(degenerateModelBanner(good)[JUPYTER_DISPLAY](), {});
  // Every class predicted, 12 of 16 right (75%): fine 5 points above
  // chance, degenerate with a margin of 60 points.
  const matrix = {
    classes: CLASSES,
    confusionMatrix: [[3, 1, 0, 0], [0, 3, 1, 0], [0, 0, 3, 1], [1, 0, 0, 3]],
  };
  assert.deepEqual(degenerateModelBanner(matrix)[JUPYTER_DISPLAY](), {});
  const strict = degenerateModelBanner(matrix, { chanceMargin: 0.6 })[
    JUPYTER_DISPLAY
  ]() as Record<string, string>;
  assert.match(
    strict["text/html"],
    /<li>accuracy 75\.0% is within 60 points of chance \(25\.0% with 4 classes\)<\/li>/,
  );
});
