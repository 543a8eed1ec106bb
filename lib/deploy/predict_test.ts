import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import {
  ellipseScanJpeg,
  ellipseScanPng,
  MRI_CLASSES,
  saveTinyModel,
} from "../../tests/fixtures.ts";
import { predictProbabilities } from "../model/inference.ts";
import { projectPaths } from "../core/paths.ts";
import { run } from "../tools/proc.ts";
import {
  collectInputs,
  type FilePrediction,
  formatPredictError,
  formatPrediction,
  formatPredictions,
  gradcamFileName,
  imageFormatProblem,
  modelName,
  predictFiles,
  toPrediction,
} from "./predict.ts";
import { preprocessImage } from "../data/preprocess.ts";
import {
  loadSavedModel,
  type ModelMetadata,
  updateModelMetadata,
} from "../model/saved_model.ts";
import { tf } from "../core/tf.ts";

const SIZE = 32;

interface Fixture {
  root: string;
  modelDir: string;
  metadata: ModelMetadata;
  /** good JPEG (64×64, so resizing to the model's 32 is exercised) */
  jpeg: string;
  /** good PNG */
  png: string;
  /** a JPEG cut in half */
  truncated: string;
  /** a text file */
  text: string;
  /** scans/ : a/scan.jpg, b/scan.jpg, b/notes.txt, b/.hidden.jpg, c/image.data (a PNG) */
  scans: string;
}

async function withFixture(body: (f: Fixture) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "predict_test_" });
  try {
    const modelDir = join(root, "run", "model");
    const metadata = await saveTinyModel(modelDir, { size: SIZE });
    const jpegBytes = await ellipseScanJpeg(1, 64);
    const f: Fixture = {
      root,
      modelDir,
      metadata,
      jpeg: join(root, "good.jpg"),
      png: join(root, "good.png"),
      truncated: join(root, "truncated.jpg"),
      text: join(root, "notes.txt"),
      scans: join(root, "scans"),
    };
    await Deno.writeFile(f.jpeg, jpegBytes);
    await Deno.writeFile(f.png, await ellipseScanPng(2, 48));
    await Deno.writeFile(
      f.truncated,
      jpegBytes.subarray(0, Math.floor(jpegBytes.length / 2)),
    );
    await Deno.writeTextFile(f.text, "not an image\n");
    for (const sub of ["a", "b", "c"]) {
      await Deno.mkdir(join(f.scans, sub), { recursive: true });
    }
    await Deno.writeFile(
      join(f.scans, "a", "scan.jpg"),
      await ellipseScanJpeg(3, 64),
    );
    await Deno.writeFile(
      join(f.scans, "b", "scan.jpg"),
      await ellipseScanJpeg(4, 64),
    );
    await Deno.writeTextFile(join(f.scans, "b", "notes.txt"), "hello\n");
    await Deno.writeFile(join(f.scans, "b", ".hidden.jpg"), jpegBytes);
    // A PNG with a misleading name: sniffed by content, so used.
    await Deno.writeFile(
      join(f.scans, "c", "image.data"),
      await ellipseScanPng(5, 40),
    );
    await body(f);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** Probabilities computed by hand: metadata's size, then the model. */
async function reference(
  f: Fixture,
  file: string,
): Promise<Record<string, number>> {
  const { model, metadata } = await loadSavedModel(f.modelDir);
  try {
    const pixels = await preprocessImage(file, {
      size: metadata.preprocessing.size,
      fit: metadata.preprocessing.fit,
    });
    const probs = await predictProbabilities(model, {
      pixels,
      size: metadata.preprocessing.size,
      scale: metadata.preprocessing.scale,
      batchSize: 1,
    });
    return Object.fromEntries(metadata.classes.map((c, k) => [c, probs[k]]));
  } finally {
    model.dispose();
  }
}

function checkPrediction(p: FilePrediction) {
  assert.deepEqual(Object.keys(p.probabilities), MRI_CLASSES);
  const values = Object.values(p.probabilities);
  assert.ok(Math.abs(values.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  assert.equal(p.confidence, Math.max(...values));
  assert.equal(p.probabilities[p.class], p.confidence);
}

Deno.test("predictFiles: a JPEG and a PNG, preprocessed from the model's metadata, no tensor leaked", async () => {
  await withFixture(async (f) => {
    const start = tf.memory().numTensors;
    const result = await predictFiles({
      inputs: [f.jpeg, f.png],
      model: join(f.root, "run"), // a run folder resolves to its model/
    });
    assert.equal(tf.memory().numTensors, start);
    assert.deepEqual(result.errors, []);
    assert.deepEqual(result.predictions.map((p) => p.file), [f.jpeg, f.png]);
    for (const p of result.predictions) {
      checkPrediction(p);
      assert.deepEqual(p.probabilities, await reference(f, p.file));
    }
    assert.equal(result.model.dir, f.modelDir);
    assert.equal(result.model.name, "tiny-test");
    assert.equal(result.model.inputSize, SIZE);
    assert.deepEqual(result.model.classes, MRI_CLASSES);
    assert.equal(tf.memory().numTensors, start);
  });
});

Deno.test("predictFiles: a loaded model is used and left alone; no tensor leaked", async () => {
  await withFixture(async (f) => {
    const loaded = await loadSavedModel(f.modelDir);
    const start = tf.memory().numTensors;
    try {
      const a = await predictFiles({ inputs: [f.jpeg], model: loaded });
      const b = await predictFiles({
        inputs: [f.jpeg],
        model: loaded,
        gradcamDir: join(f.root, "cams"),
      });
      assert.equal(tf.memory().numTensors, start);
      assert.equal(a.model.dir, "(in memory)");
      assert.deepEqual(
        a.predictions[0].probabilities,
        b.predictions[0].probabilities,
      );
    } finally {
      loaded.model.dispose();
    }
  });
});

Deno.test("predictFiles: the model's operating point decides the class, and the model info says which", async () => {
  await withFixture(async (f) => {
    const plain = await predictFiles({ inputs: [f.jpeg], model: f.modelDir });
    assert.deepEqual(plain.model.inference, {
      tta: "none",
      tumourThreshold: null,
    });
    const p = plain.predictions[0];
    const top = f.metadata.classes.indexOf(p.class);
    // Name the argmax output "notumor", so that argmax says notumor and
    // the threshold must overrule it (P < 0.5 for the untrained net).
    assert.ok(p.confidence < 0.5, `top probability ${p.confidence}`);
    const classes = [...f.metadata.classes];
    const n = classes.indexOf("notumor");
    [classes[top], classes[n]] = [classes[n], classes[top]];
    await updateModelMetadata(f.modelDir, {
      classes,
      inference: { tumourThreshold: 0.5 },
    });
    const screened = await predictFiles({
      inputs: [f.jpeg],
      model: f.modelDir,
    });
    assert.deepEqual(screened.model.inference, {
      tta: "none",
      tumourThreshold: 0.5,
    });
    const s = screened.predictions[0];
    const tumours = Object.entries(s.probabilities).filter(([c]) =>
      c !== "notumor"
    );
    const best = tumours.reduce((a, b) => (b[1] > a[1] ? b : a));
    assert.equal(s.class, best[0]);
    assert.equal(s.confidence, best[1]);
    assert.equal(s.byOperatingPoint, true);
    assert.match(formatPrediction(s), / {2}\(operating point\)$/);
    // the same model without the operating point: argmax, notumor
    await updateModelMetadata(f.modelDir, {
      inference: { tumourThreshold: undefined },
    });
    const back = await predictFiles({ inputs: [f.jpeg], model: f.modelDir });
    assert.equal(back.predictions[0].class, "notumor");
    assert.equal("byOperatingPoint" in back.predictions[0], false);
    assert.doesNotMatch(formatPrediction(back.predictions[0]), /operating/);
    assert.deepEqual(back.model.inference.tumourThreshold, null);
  });
});

Deno.test("predictFiles: a truncated JPEG and a text file are reported and skipped, the rest predicted", async () => {
  await withFixture(async (f) => {
    const seen: string[] = [];
    const missing = join(f.root, "missing.jpg");
    const empty = join(f.root, "empty.jpg");
    await Deno.writeFile(empty, new Uint8Array(0));
    const result = await predictFiles({
      inputs: [f.truncated, f.jpeg, f.text, missing, empty],
      model: f.modelDir,
      onPrediction: (p) => seen.push(`ok ${p.file}`),
      onError: (e) => seen.push(`error ${e.file}`),
    });
    assert.deepEqual(result.predictions.map((p) => p.file), [f.jpeg]);
    const reasons = Object.fromEntries(
      result.errors.map((e) => [e.file, e.error]),
    );
    assert.match(reasons[f.truncated], /premature end|truncat|corrupt/i);
    assert.equal(reasons[f.text], "not a JPEG or PNG (text)");
    assert.equal(reasons[missing], "no such file or directory");
    assert.equal(reasons[empty], "empty file");
    // callbacks come in input order
    assert.deepEqual(seen, [
      `error ${f.truncated}`,
      `ok ${f.jpeg}`,
      `error ${f.text}`,
      `error ${missing}`,
      `error ${empty}`,
    ]);
  });
});

Deno.test("collectInputs: folders walked recursively and sorted, hidden skipped, files sniffed by content", async () => {
  await withFixture(async (f) => {
    const c = await collectInputs([f.scans, join(f.scans, "a", "scan.jpg")]);
    assert.deepEqual(c.files, [
      join(f.scans, "a", "scan.jpg"),
      join(f.scans, "b", "scan.jpg"),
      join(f.scans, "c", "image.data"),
    ]);
    assert.deepEqual(c.errors, [{
      file: join(f.scans, "b", "notes.txt"),
      error: "not a JPEG or PNG (text)",
    }]);
    const empty = join(f.root, "empty-dir");
    await Deno.mkdir(empty);
    const e = await collectInputs([empty]);
    assert.deepEqual(e.errors, [{
      file: empty,
      error: "no files in this folder",
    }]);
  });
});

Deno.test("predictFiles --gradcam: one PNG per scan at the input size, same-named files do not collide, no temp files", async () => {
  await withFixture(async (f) => {
    const out = join(f.root, "cams");
    const start = tf.memory().numTensors;
    const result = await predictFiles({
      inputs: [f.scans],
      model: f.modelDir,
      gradcamDir: out,
      batchSize: 2,
    });
    assert.equal(tf.memory().numTensors, start);
    assert.equal(result.predictions.length, 3);
    const names = readdirSync(out).sort();
    assert.equal(names.length, 3);
    assert.ok(names.every((n) => !n.startsWith(".") && n.endsWith(".png")));
    const a = gradcamFileName(join(f.scans, "a", "scan.jpg"));
    const b = gradcamFileName(join(f.scans, "b", "scan.jpg"));
    assert.notEqual(a, b);
    assert.match(a, /^scan\.jpg\.[0-9a-f]{10}\.png$/);
    for (const p of result.predictions) {
      assert.ok(p.gradcam && existsSync(p.gradcam));
      assert.equal(p.gradcam, join(out, gradcamFileName(p.file)));
      const meta = await sharp(await Deno.readFile(p.gradcam)).metadata();
      assert.equal(meta.format, "png");
      assert.equal(meta.width, SIZE);
      assert.equal(meta.height, SIZE);
      assert.equal(meta.channels, 3);
    }
  });
});

Deno.test("predictFiles: a batch of several gives the same classes and nearly the same probabilities", async () => {
  await withFixture(async (f) => {
    const one = await predictFiles({ inputs: [f.scans], model: f.modelDir });
    const many = await predictFiles({
      inputs: [f.scans],
      model: f.modelDir,
      batchSize: 8,
    });
    assert.equal(many.predictions.length, one.predictions.length);
    one.predictions.forEach((p, i) => {
      const q = many.predictions[i];
      assert.equal(q.class, p.class);
      for (const c of MRI_CLASSES) {
        assert.ok(Math.abs(q.probabilities[c] - p.probabilities[c]) < 1e-5);
      }
    });
    await assert.rejects(
      predictFiles({ inputs: [f.jpeg], model: f.modelDir, batchSize: 0 }),
      /batchSize must be a positive integer/,
    );
  });
});

Deno.test("formatting: aligned lines with every class, skipped files named", () => {
  const classes = ["glioma", "meningioma"];
  const a: FilePrediction = {
    file: "a.jpg",
    ...toPrediction([0.25, 0.75], classes),
  };
  const b: FilePrediction = {
    file: "dir/longer.jpg",
    ...toPrediction([0.9, 0.1], classes),
  };
  assert.equal(
    formatPrediction(a, { pathWidth: 14 }),
    "a.jpg           meningioma   75.0%  glioma 0.2500  meningioma 0.7500",
  );
  assert.equal(
    formatPrediction(b, { pathWidth: 14 }),
    "dir/longer.jpg  glioma       90.0%  glioma 0.9000  meningioma 0.1000",
  );
  const text = formatPredictions({
    model: {
      dir: "m",
      name: "m",
      arch: "seedCnn",
      classes,
      inputSize: 32,
      channels: 1,
      preprocessing: { size: 32, fit: "fill", grayscale: true, scale: 1 / 255 },
      datasetFingerprint: "",
      createdAt: "",
      inference: { tta: "none", tumourThreshold: null },
    },
    predictions: [a, b],
    errors: [{ file: "x.txt", error: "not a JPEG or PNG (text)" }],
  }).split("\n");
  assert.equal(text.length, 3);
  assert.equal(text[0].indexOf("meningioma"), text[1].indexOf("glioma"));
  assert.equal(text[2], "skipped x.txt: not a JPEG or PNG (text)");
  assert.equal(
    formatPredictError({ file: "f", error: "why" }),
    "skipped f: why",
  );
  assert.equal(toPrediction([0.5, 0.5], classes).class, "glioma");
  // An operating point turns a notumor call with P(tumour) >= τ into the
  // most probable tumour class; its confidence is that class's probability.
  const four = ["glioma", "meningioma", "notumor", "pituitary"];
  const row = [0.05, 0.2, 0.7, 0.05];
  assert.equal(toPrediction(row, four).class, "notumor");
  assert.equal(
    toPrediction(row, four, { tumourThreshold: 0.35 }).class,
    "notumor",
  );
  const flipped = toPrediction(row, four, { tumourThreshold: 0.3 });
  assert.equal(flipped.class, "meningioma");
  assert.equal(flipped.confidence, 0.2);
  assert.throws(
    () => toPrediction([0.5, 0.5], classes, { tumourThreshold: 0.2 }),
    /a tumour threshold needs a "notumor" class/,
  );
  assert.equal(
    imageFormatProblem(new Uint8Array([0x47, 0x49, 0x46, 0x38, 0x39, 0x61])),
    "not a JPEG or PNG (GIF)",
  );
  assert.equal(
    imageFormatProblem(
      new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    ),
    undefined,
  );
  assert.equal(
    modelName("/x/run-1/model", { arch: "vgg", training: {} } as ModelMetadata),
    "run-1",
  );
});

// ---------------------------------------------------------------------------
// The command line, as a user runs it

function cli(args: string[], env?: Record<string, string>) {
  return run(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(projectPaths().root, "lib", "deploy", "predict.ts"),
      ...args,
    ],
    cwd: projectPaths().root,
    ...(env ? { env } : {}),
  });
}

Deno.test("CLI: a mixed folder and files print every good prediction, name the bad ones on stderr, exit 1", async () => {
  await withFixture(async (f) => {
    const r = await cli([
      "--model",
      f.modelDir,
      f.scans,
      f.truncated,
      f.png,
    ]);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    const files = [
      join(f.scans, "a", "scan.jpg"),
      join(f.scans, "b", "scan.jpg"),
      join(f.scans, "c", "image.data"),
      f.png,
    ];
    assert.equal(lines.length, files.length, r.stdout);
    lines.forEach((line, i) => {
      assert.ok(line.startsWith(files[i] + " "), line);
      for (const c of MRI_CLASSES) {
        assert.match(line, new RegExp(` ${c} 0\\.\\d{4}`));
      }
      assert.match(line, /\d+\.\d%/);
    });
    // aligned: the class column starts at the same place on every line
    const width = Math.max(...files.map((p) => p.length));
    for (const line of lines) assert.match(line.slice(width), /^ {2}\S/);
    assert.match(
      r.stderr,
      new RegExp(
        `skipped ${
          join(f.scans, "b", "notes.txt")
        }: not a JPEG or PNG \\(text\\)`,
      ),
    );
    assert.match(r.stderr, new RegExp(`skipped ${f.truncated}: \\S`));
    assert.match(r.stderr, /2 files skipped, 4 predicted/);
  });
});

Deno.test("CLI: --json prints one object {model, predictions, errors}; all good exits 0; usage errors exit 2", async () => {
  await withFixture(async (f) => {
    const r = await cli(["--model", f.modelDir, "--json", f.jpeg, f.text]);
    assert.equal(r.code, 1, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(out), ["model", "predictions", "errors"]);
    assert.equal(out.model.dir, f.modelDir);
    assert.deepEqual(out.model.classes, MRI_CLASSES);
    assert.equal(out.model.inputSize, SIZE);
    assert.equal(out.predictions.length, 1);
    const p = out.predictions[0];
    assert.deepEqual(Object.keys(p), [
      "file",
      "class",
      "confidence",
      "probabilities",
    ]);
    assert.equal(p.file, f.jpeg);
    assert.deepEqual(p.probabilities, await reference(f, f.jpeg));
    assert.deepEqual(out.errors, [{
      file: f.text,
      error: "not a JPEG or PNG (text)",
    }]);

    const ok = await cli([
      "--model",
      f.modelDir,
      "--gradcam",
      join(f.root, "g"),
      f.jpeg,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trimEnd().split("\n").length, 1);
    assert.deepEqual(readdirSync(join(f.root, "g")), [gradcamFileName(f.jpeg)]);

    for (
      const args of [[], ["--batch-size", "0", f.jpeg], ["--nope", f.jpeg]]
    ) {
      const bad = await cli(["--model", f.modelDir, ...args]);
      assert.equal(bad.code, 2, `${args}: ${bad.stderr}`);
      assert.match(bad.stderr, /usage: deno task predict/);
    }
    const noModel = await cli(["--model", join(f.root, "nowhere"), f.jpeg]);
    assert.equal(noModel.code, 1);
    assert.match(noModel.stderr, /nowhere.*no such folder/);
  });
});

Deno.test({
  name:
    "predictFiles: the shipped model (default) predicts a scan at its input size",
  ignore:
    !existsSync(join(projectPaths().defaultModel, "model", "metadata.json")) &&
    !existsSync(join(projectPaths().defaultModel, "metadata.json")),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "predict_test_" });
    try {
      const file = join(dir, "scan.jpg");
      await Deno.writeFile(file, await ellipseScanJpeg(9, 64));
      const start = tf.memory().numTensors;
      const result = await predictFiles({ inputs: [file] });
      assert.equal(tf.memory().numTensors, start);
      assert.equal(result.predictions.length, 1);
      checkPrediction(result.predictions[0]);
      assert.equal(result.model.inputSize, result.model.preprocessing.size);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("CLI: corrupt and oversized scans are skipped with the reason, control characters in names escaped", async () => {
  await withFixture(async (f) => {
    const jpeg = new Uint8Array(await Deno.readFile(f.jpeg));
    const hostile = join(f.root, "hostile");
    await Deno.mkdir(hostile);
    // Half the scan plus an end-of-image marker: decodes to a grey-filled
    // image unless the decoder's warning counts as an error.
    const half = new Uint8Array([
      ...jpeg.subarray(0, jpeg.length >> 1),
      0xff,
      0xd9,
    ]);
    await Deno.writeFile(join(hostile, "a-half.jpg"), half);
    // A frame header claiming 65500 × 65500 pixels.
    const forged = new Uint8Array(jpeg);
    const sof = forged.findIndex((v, i) =>
      v === 0xff && forged[i + 1] === 0xc0
    );
    forged.set([0xff, 0xdc, 0xff, 0xdc], sof + 5);
    await Deno.writeFile(join(hostile, "b-forged.jpg"), forged);
    // A good scan whose name holds a newline and a terminal escape.
    await Deno.writeFile(join(hostile, "c-new\nline\x1b[31m.jpg"), jpeg);
    const t0 = performance.now();
    const r = await cli(["--model", f.modelDir, hostile]);
    assert.ok(performance.now() - t0 < 30_000);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 1, r.stdout);
    assert.ok(
      lines[0].startsWith(join(hostile, "c-new\\nline\\x1b[31m.jpg") + "  "),
      lines[0],
    );
    assert.match(
      r.stderr,
      /skipped \S+a-half\.jpg: corrupt JPEG data: premature end of data segment/,
    );
    assert.match(
      r.stderr,
      /skipped \S+b-forged\.jpg: image claims 65500 × 65500 pixels \(4290 megapixels\), over the limit of 50 megapixels/,
    );
    assert.ok(!(r.stdout + r.stderr).includes("\x1b"), "raw escape printed");
    // --max-pixels lowers the limit: now the good scan (64 × 64) is too big.
    const low = await cli([
      "--model",
      f.modelDir,
      "--max-pixels",
      "4000",
      f.jpeg,
    ]);
    assert.equal(low.code, 1);
    assert.match(
      low.stderr,
      /64 × 64 pixels .* over the limit of 0\.004 megapixels/,
    );
  });
});

Deno.test("predictFiles: the tfjs and onnx engines give the same classes on a few scans, and say which ran", async () => {
  await withFixture(async (f) => {
    const inputs = [f.jpeg, f.png, f.scans];
    const tfjs = await predictFiles({
      inputs,
      model: f.modelDir,
      engine: "tfjs",
    });
    const onnx = await predictFiles({
      inputs,
      model: f.modelDir,
      engine: "onnx",
    });
    assert.equal(tfjs.model.engine, "tfjs");
    assert.equal(onnx.model.engine, "onnx");
    assert.equal(tfjs.predictions.length, 5);
    assert.deepEqual(
      onnx.predictions.map((p) => [p.file, p.class]),
      tfjs.predictions.map((p) => [p.file, p.class]),
    );
    tfjs.predictions.forEach((p, i) => {
      for (const c of MRI_CLASSES) {
        const delta = Math.abs(
          onnx.predictions[i].probabilities[c] - p.probabilities[c],
        );
        assert.ok(delta < 1e-5, `${p.file} ${c}: |Δp| ${delta}`);
      }
    });
    assert.deepEqual(onnx.errors, tfjs.errors);
  });
});

Deno.test("CLI: --engine onnx is recorded in --json; an unknown engine is a usage error", async () => {
  await withFixture(async (f) => {
    const r = await cli([
      "--model",
      f.modelDir,
      "--engine",
      "onnx",
      "--json",
      f.jpeg,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.model.engine, "onnx");
    const expected = await reference(f, f.jpeg);
    for (const c of MRI_CLASSES) {
      assert.ok(
        Math.abs(out.predictions[0].probabilities[c] - expected[c]) < 1e-5,
      );
    }
    const bad = await cli(["--model", f.modelDir, "--engine", "torch", f.jpeg]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(
      bad.stderr,
      /--engine must be one of tfjs, onnx \(got "torch"\)/,
    );
    assert.match(bad.stderr, /usage: deno task predict/);
    const badEnv = await cli(["--model", f.modelDir, f.jpeg], {
      BRAIN_MRI_ENGINE: "torch",
    });
    assert.equal(badEnv.code, 2, badEnv.stderr);
    assert.match(
      badEnv.stderr,
      /BRAIN_MRI_ENGINE must be one of tfjs, onnx \(got "torch"\)/,
    );
    const fromEnv = await cli(["--model", f.modelDir, "--json", f.jpeg], {
      BRAIN_MRI_ENGINE: "onnx",
    });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.equal(JSON.parse(fromEnv.stdout).model.engine, "onnx");
  });
});
