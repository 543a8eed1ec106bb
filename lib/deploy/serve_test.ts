import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ellipseScanJpeg,
  ellipseScanPng,
  MRI_CLASSES,
  saveTinyModel,
} from "../../tests/fixtures.ts";
import { projectPaths } from "../core/paths.ts";
import { type FilePrediction, predictFiles } from "./predict.ts";
import { run } from "../tools/proc.ts";
import { loadSavedModel, type ModelMetadata } from "../model/saved_model.ts";
import {
  createPredictHandler,
  type PredictHandlerOptions,
  type PredictResponse,
  type RunningServer,
  startServer,
  type StartServerOptions,
} from "./serve.ts";
import { tf } from "../core/tf.ts";
import { escapeControl } from "../core/text.ts";

const SIZE = 32;
const MAX_BYTES = 64 * 1024;

interface Ctx {
  root: string;
  modelDir: string;
  metadata: ModelMetadata;
  url: string;
  logs: string[];
  jpeg: Uint8Array;
  png: Uint8Array;
  jpegPath: string;
  pngPath: string;
}

/** A real server on a free loopback port, with a tiny saved model. */
async function withServer(
  body: (ctx: Ctx) => Promise<void>,
  options: Pick<PredictHandlerOptions, "bodyTimeoutMs"> = {},
) {
  const root = await Deno.makeTempDir({ prefix: "serve_test_" });
  const modelDir = join(root, "model");
  await saveTinyModel(modelDir, { size: SIZE, run: "tiny-serve" });
  const { model, metadata } = await loadSavedModel(modelDir);
  const logs: string[] = [];
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    createPredictHandler({
      model,
      metadata,
      maxBytes: MAX_BYTES,
      log: (line) => logs.push(line),
      ...options,
    }),
  );
  try {
    const jpeg = await ellipseScanJpeg(1, 64);
    const png = await ellipseScanPng(2, 48);
    const jpegPath = join(root, "scan.jpg");
    const pngPath = join(root, "scan.png");
    await Deno.writeFile(jpegPath, jpeg);
    await Deno.writeFile(pngPath, png);
    await body({
      root,
      modelDir,
      metadata,
      url: `http://127.0.0.1:${server.addr.port}`,
      logs,
      jpeg,
      png,
      jpegPath,
      pngPath,
    });
  } finally {
    await server.shutdown();
    model.dispose();
    await Deno.remove(root, { recursive: true });
  }
}

async function post(
  url: string,
  body: Uint8Array | FormData | null,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown>; res: Response }> {
  const res = await fetch(url, {
    method: "POST",
    body: body as BodyInit | null,
    headers,
  });
  return { status: res.status, json: await res.json(), res };
}

function multipart(
  parts: { name: string; filename?: string; type?: string; data: Uint8Array }[],
): { body: Uint8Array; type: string } {
  const boundary = "----test-boundary-7d2f";
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [];
  for (const p of parts) {
    chunks.push(enc.encode(
      `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"` +
        (p.filename ? `; filename="${p.filename}"` : "") +
        `\r\n${p.type ? `Content-Type: ${p.type}\r\n` : ""}\r\n`,
    ));
    chunks.push(p.data, enc.encode("\r\n"));
  }
  chunks.push(enc.encode(`--${boundary}--\r\n`));
  const body = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.length;
  }
  return { body, type: `multipart/form-data; boundary=${boundary}` };
}

/** A stream of text chunks → a stream of lines. */
function splitLines(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const line of parts) controller.enqueue(line);
    },
    flush(controller) {
      if (rest) controller.enqueue(rest);
    },
  });
}

function checkPrediction(json: Record<string, unknown>) {
  const p = json as unknown as PredictResponse;
  assert.deepEqual(Object.keys(p), [
    "class",
    "confidence",
    "probabilities",
    "model",
  ]);
  assert.deepEqual(Object.keys(p.probabilities), MRI_CLASSES);
  assert.equal(p.probabilities[p.class], p.confidence);
  assert.equal(p.confidence, Math.max(...Object.values(p.probabilities)));
  assert.equal(p.model, "tiny-serve");
}

Deno.test("serve: POST /predict with a raw JPEG or PNG body gives the same prediction as predict", async () => {
  await withServer(async (ctx) => {
    const viaCli = await predictFiles({
      inputs: [ctx.jpegPath, ctx.pngPath],
      model: ctx.modelDir,
    });
    const jpeg = await post(`${ctx.url}/predict`, ctx.jpeg, {
      "content-type": "image/jpeg",
    });
    assert.equal(jpeg.status, 200);
    assert.match(jpeg.res.headers.get("content-type")!, /application\/json/);
    checkPrediction(jpeg.json);
    const png = await post(`${ctx.url}/predict`, ctx.png, {
      "content-type": "application/octet-stream",
    });
    assert.equal(png.status, 200);
    checkPrediction(png.json);
    for (const [i, got] of [jpeg.json, png.json].entries()) {
      const want = viaCli.predictions[i];
      assert.equal(got.class, want.class);
      assert.equal(got.confidence, want.confidence);
      assert.deepEqual(got.probabilities, want.probabilities);
    }
    // no Content-Type at all: taken as raw bytes
    const bare = await post(`${ctx.url}/predict`, ctx.png);
    assert.equal(bare.status, 200);
    assert.deepEqual(bare.json.probabilities, png.json.probabilities);
  });
});

Deno.test("serve: POST /predict with multipart/form-data (field file, else the first file part)", async () => {
  await withServer(async (ctx) => {
    const raw = await post(`${ctx.url}/predict`, ctx.jpeg, {
      "content-type": "image/jpeg",
    });
    const form = new FormData();
    form.append("note", "hello");
    form.append("other", new Blob([ctx.png as BlobPart]), "other.png");
    form.append("file", new Blob([ctx.jpeg as BlobPart]), "scan.jpg");
    const named = await post(`${ctx.url}/predict`, form);
    assert.equal(named.status, 200);
    checkPrediction(named.json);
    assert.deepEqual(named.json, raw.json);
    const m = multipart([
      { name: "note", data: new TextEncoder().encode("x") },
      { name: "upload", filename: "s.jpg", type: "image/jpeg", data: ctx.jpeg },
    ]);
    const first = await post(`${ctx.url}/predict`, m.body, {
      "content-type": m.type,
    });
    assert.equal(first.status, 200);
    assert.deepEqual(first.json, raw.json);
  });
});

Deno.test("serve: 422 for a corrupt image; 400 for an empty body, malformed multipart or no file part", async () => {
  await withServer(async (ctx) => {
    const truncated = ctx.jpeg.subarray(0, ctx.jpeg.length >> 1);
    const bad = await post(`${ctx.url}/predict`, truncated, {
      "content-type": "image/jpeg",
    });
    assert.equal(bad.status, 422);
    assert.match(bad.json.error as string, /^corrupt or undecodable image: /);
    const empty = await post(`${ctx.url}/predict`, new Uint8Array(0), {
      "content-type": "image/png",
    });
    assert.equal(empty.status, 400);
    assert.match(empty.json.error as string, /empty body/);
    const garbage = await post(
      `${ctx.url}/predict`,
      new TextEncoder().encode("this is not multipart at all"),
      { "content-type": "multipart/form-data; boundary=abc" },
    );
    assert.equal(garbage.status, 400);
    assert.match(garbage.json.error as string, /malformed multipart/);
    const m = multipart([{
      name: "note",
      data: new TextEncoder().encode("x"),
    }]);
    const noFile = await post(`${ctx.url}/predict`, m.body, {
      "content-type": m.type,
    });
    assert.equal(noFile.status, 400);
    assert.match(noFile.json.error as string, /no file part/);
  });
});

Deno.test("serve: 415 for an unsupported Content-Type or a body that is not an image", async () => {
  await withServer(async (ctx) => {
    const text = new TextEncoder().encode("hello, not an image\n");
    const typed = await post(`${ctx.url}/predict`, ctx.jpeg, {
      "content-type": "text/plain",
    });
    assert.equal(typed.status, 415);
    assert.match(
      typed.json.error as string,
      /unsupported Content-Type text\/plain/,
    );
    const sniffed = await post(`${ctx.url}/predict`, text, {
      "content-type": "image/jpeg",
    });
    assert.equal(sniffed.status, 415);
    assert.equal(sniffed.json.error, "body is not a JPEG or PNG (text)");
    const m = multipart([{ name: "file", filename: "a.jpg", data: text }]);
    const part = await post(`${ctx.url}/predict`, m.body, {
      "content-type": m.type,
    });
    assert.equal(part.status, 415);
  });
});

Deno.test("serve: 413 by Content-Length and by a chunked body with no length, without reading it all", async () => {
  await withServer(async (ctx) => {
    const big = new Uint8Array(MAX_BYTES + 1);
    big.set(ctx.jpeg);
    const byLength = await post(`${ctx.url}/predict`, big, {
      "content-type": "image/jpeg",
    });
    assert.equal(byLength.status, 413);
    assert.match(
      byLength.json.error as string,
      /larger than the limit of 65536/,
    );

    // A stream that would go on for 64 MB; the server must stop early.
    const chunk = new Uint8Array(16 * 1024);
    chunk.set(ctx.jpeg.subarray(0, 16));
    let sent = 0;
    const total = 64 * 1024 * 1024;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= total) return controller.close();
        sent += chunk.length;
        controller.enqueue(chunk.slice());
      },
    });
    const res = await fetch(`${ctx.url}/predict`, {
      method: "POST",
      body: stream,
      headers: { "content-type": "application/octet-stream" },
    });
    assert.equal(res.status, 413);
    assert.match((await res.json()).error, /larger than the limit/);
    assert.ok(sent < total, `the whole ${total} bytes were sent`);
    // a chunked body under the limit is fine
    const small = await fetch(`${ctx.url}/predict`, {
      method: "POST",
      body: ReadableStream.from([ctx.jpeg.slice(0, 100), ctx.jpeg.slice(100)]),
      headers: { "content-type": "image/jpeg" },
    });
    assert.equal(small.status, 200);
    checkPrediction(await small.json());
  });
});

Deno.test("serve: 404, 405 with Allow, /health, /model, one log line per request, no tensor leaked", async () => {
  await withServer(async (ctx) => {
    const start = tf.memory().numTensors;
    const missing = await fetch(`${ctx.url}/nope`);
    assert.equal(missing.status, 404);
    assert.match((await missing.json()).error, /no such path \/nope/);
    const get = await fetch(`${ctx.url}/predict`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST");
    assert.match((await get.json()).error, /GET is not allowed/);
    const put = await fetch(`${ctx.url}/health`, { method: "POST", body: "x" });
    assert.equal(put.status, 405);
    assert.equal(put.headers.get("allow"), "GET, HEAD");
    await put.body?.cancel();
    const health = await fetch(`${ctx.url}/health`);
    assert.equal(health.status, 200);
    const h = await health.json();
    assert.equal(h.status, "ok");
    assert.equal(h.model, "tiny-serve");
    assert.deepEqual(h.classes, MRI_CLASSES);
    assert.equal(h.inputSize, SIZE);
    const model = await fetch(`${ctx.url}/model`);
    assert.equal(model.status, 200);
    assert.deepEqual(await model.json(), ctx.metadata);
    for (let i = 0; i < 3; i++) {
      const r = await post(`${ctx.url}/predict`, ctx.jpeg, {
        "content-type": "image/jpeg",
      });
      assert.equal(r.status, 200);
    }
    assert.equal(tf.memory().numTensors, start);
    assert.equal(ctx.logs.length, 8);
    const first = JSON.parse(ctx.logs[0]);
    assert.deepEqual(
      [first.method, first.path, first.status],
      ["GET", "/nope", 404],
    );
    assert.match(first.error, /^no such path \/nope /);
    assert.match(first.time, /^\d{4}-\d\d-\d\dT.*Z$/);
    assert.match(first.client, /^127\.0\.0\.1:\d+$/);
    const last = JSON.parse(ctx.logs[7]);
    assert.deepEqual(
      [last.method, last.path, last.status, last.bytes],
      ["POST", "/predict", 200, ctx.jpeg.length],
    );
    assert.ok(last.ms >= 0);
    assert.equal(last.error, undefined);
  });
});

Deno.test("serve: createPredictHandler refuses a bad limit", async () => {
  const root = await Deno.makeTempDir({ prefix: "serve_test_" });
  try {
    await saveTinyModel(join(root, "m"), { size: SIZE });
    const { model, metadata } = await loadSavedModel(join(root, "m"));
    try {
      assert.throws(
        () => createPredictHandler({ model, metadata, maxBytes: 0 }),
        /maxBytes must be a positive integer/,
      );
    } finally {
      model.dispose();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** Each bad flag value exits 2 with a message naming the flag. */
async function checkUsageErrors(script: string): Promise<void> {
  for (
    const [flags, message] of [
      [["--port", "http"], /--port must be/],
      [
        ["--workers", "two"],
        /--workers must be an integer from 0 to 64 \(got "two"\)/,
      ],
      [["--body-timeout", "0"], /--body-timeout must be a positive integer/],
      [
        ["--header-timeout", "0"],
        /--header-timeout must be a positive number/,
      ],
      [["--max-pixels", "0"], /--max-pixels must be a positive integer/],
    ] as const
  ) {
    const usage = await run(Deno.execPath(), {
      args: ["run", "-A", script, ...flags],
    });
    assert.equal(usage.code, 2, flags.join(" "));
    assert.match(usage.stderr, message);
  }
}

Deno.test("serve CLI: serves on a free port, answers, stops gracefully on SIGTERM; usage errors exit 2", async () => {
  const root = await Deno.makeTempDir({ prefix: "serve_test_" });
  try {
    await saveTinyModel(join(root, "m"), { size: SIZE, run: "cli-run" });
    const script = join(projectPaths().root, "lib", "deploy", "serve.ts");
    await checkUsageErrors(script);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, "--model", join(root, "m"), "--port", "0"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const lines = child.stderr
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(splitLines());
    const seen: string[] = [];
    let url = "";
    const reader = lines.getReader();
    try {
      while (!url) {
        const { done, value } = await reader.read();
        if (done) break;
        seen.push(value);
        url = value.match(/ on (http:\/\/127\.0\.0\.1:\d+\/)/)?.[1] ?? "";
      }
      assert.ok(url, `no listening line in: ${seen.join("\n")}`);
      // The default: one inference worker per core.
      assert.match(
        seen.at(-1)!,
        new RegExp(`${navigator.hardwareConcurrency} inference workers?,`),
      );
      const health = await fetch(`${url}health`);
      const h = await health.json();
      assert.equal(h.model, "cli-run");
      assert.equal(h.workers, navigator.hardwareConcurrency);
      const scan = await ellipseScanJpeg(3, 64);
      const res = await fetch(`${url}predict`, {
        method: "POST",
        body: scan as Uint8Array<ArrayBuffer>,
        headers: { "content-type": "image/jpeg" },
      });
      assert.equal(res.status, 200);
      checkPrediction({ ...(await res.json()), model: "tiny-serve" });
      child.kill("SIGTERM");
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        seen.push(value);
      }
    } finally {
      reader.releaseLock();
    }
    const status = await child.status;
    assert.equal(status.code, 0, seen.join("\n"));
    assert.ok(seen.some((l) => /"GET","path":"\/health","status":200/.test(l)));
    assert.ok(
      seen.some((l) => /"POST","path":"\/predict","status":200/.test(l)),
    );
    assert.equal(seen.at(-1), "stopped");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** POSTs a JPEG to a handler's /predict (no server) and returns its 200 answer. */
async function postJpeg(
  handler: (req: Request) => Promise<Response>,
  jpeg: Uint8Array,
): Promise<PredictResponse> {
  const response = await handler(
    new Request("http://x/predict", {
      method: "POST",
      headers: { "content-type": "image/jpeg" },
      body: jpeg as Uint8Array<ArrayBuffer>,
    }),
  );
  assert.equal(response.status, 200);
  return (await response.json()) as PredictResponse;
}

Deno.test("serve: the model's test-time augmentation, or an override, is what /predict uses", async () => {
  const root = await Deno.makeTempDir({ prefix: "serve_test_" });
  try {
    const modelDir = join(root, "model");
    await saveTinyModel(modelDir, { size: SIZE, seed: 4 });
    const loaded = await loadSavedModel(modelDir);
    const jpeg = await ellipseScanJpeg(3, 64);
    const ask = async (tta?: "none" | "hflip") => {
      const handler = createPredictHandler({
        model: loaded.model,
        metadata: { ...loaded.metadata, inference: { tta: "hflip" } },
        log: false,
        ...(tta ? { tta } : {}),
      });
      return (await postJpeg(handler, jpeg)).probabilities;
    };
    const byMetadata = await ask();
    const forcedHflip = await ask("hflip");
    const forcedNone = await ask("none");
    assert.deepEqual(byMetadata, forcedHflip);
    assert.notDeepEqual(forcedNone, forcedHflip);
    loaded.model.dispose();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("serve: /predict decides by the model's operating point", async () => {
  const root = await Deno.makeTempDir({ prefix: "serve_test_" });
  try {
    const modelDir = join(root, "model");
    await saveTinyModel(modelDir, { size: SIZE, seed: 4 });
    const loaded = await loadSavedModel(modelDir);
    const jpeg = await ellipseScanJpeg(3, 64);
    const ask = async (metadata: ModelMetadata) => {
      const handler = createPredictHandler({
        model: loaded.model,
        metadata,
        log: false,
      });
      return await postJpeg(handler, jpeg);
    };
    const plain = await ask(loaded.metadata);
    // Name the argmax output "notumor": argmax then says notumor, and an
    // operating point of 0.5 must overrule it (P < 0.5, untrained net).
    assert.ok(plain.confidence < 0.5);
    const top = loaded.metadata.classes.indexOf(plain.class);
    const classes = [...MRI_CLASSES];
    const n = classes.indexOf("notumor");
    [classes[top], classes[n]] = [classes[n], classes[top]];
    const argmax = await ask({ ...loaded.metadata, classes });
    assert.equal(argmax.class, "notumor");
    const screened = await ask({
      ...loaded.metadata,
      classes,
      inference: { tumourThreshold: 0.5 },
    });
    const tumours = Object.entries(screened.probabilities).filter(([c]) =>
      c !== "notumor"
    );
    assert.equal(
      screened.class,
      tumours.reduce((a, b) => (b[1] > a[1] ? b : a))[0],
    );
    assert.deepEqual(screened.probabilities, argmax.probabilities);
    assert.equal(screened.byOperatingPoint, true);
    assert.equal(argmax.byOperatingPoint, undefined);
    loaded.model.dispose();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** The answers `want`: bit for bit with tfjs, within 1e-5 with onnx. */
function assertAnswersLike(
  answers: { status: number; json: Record<string, unknown> }[],
  want: FilePrediction[],
  engine: "tfjs" | "onnx",
): void {
  answers.forEach((a, i) => {
    assert.equal(a.status, 200);
    assert.equal(a.json.model, "pooled");
    const expected = want[i % want.length];
    if (engine === "tfjs") {
      assert.deepEqual(a.json.probabilities, expected.probabilities);
      return;
    }
    assert.equal(a.json.class, expected.class);
    const got = a.json.probabilities as Record<string, number>;
    for (const [name, p] of Object.entries(expected.probabilities)) {
      assert.ok(Math.abs(got[name] - p) < 1e-5, `${name}: ${got[name]}`);
    }
  });
}

/** A cut-off scan is a 422; a forged 65,500 × 65,500 header a 413, unread. */
async function assertBadScansRefused(url: string, scan: Uint8Array) {
  const jpeg = { "content-type": "image/jpeg" };
  const corrupt = await post(`${url}predict`, scan.slice(0, 300), jpeg);
  assert.equal(corrupt.status, 422);
  assert.match(String(corrupt.json.error), /corrupt or undecodable image/);
  const forged = scan.slice();
  const sof = forged.findIndex((v, i) => v === 0xff && forged[i + 1] === 0xc0);
  forged.set([0xff, 0xdc, 0xff, 0xdc], sof + 5);
  const huge = await post(`${url}predict`, forged, jpeg);
  assert.equal(huge.status, 413);
  assert.match(
    String(huge.json.error),
    /65500 × 65500 pixels .* over the limit of 50 megapixels/,
  );
}

Deno.test("serve: startServer with inference workers or in its own thread answers like predict, with either engine", async () => {
  const root = await Deno.makeTempDir({ prefix: "serve_test_" });
  try {
    const modelDir = join(root, "m");
    await saveTinyModel(modelDir, { size: SIZE, run: "pooled" });
    const scans = await Promise.all(
      [5, 6, 7].map((s) => ellipseScanJpeg(s, 64)),
    );
    const files = scans.map((_, i) => join(root, `s${i}.jpg`));
    await Promise.all(files.map((f, i) => Deno.writeFile(f, scans[i])));
    const want = await predictFiles({
      inputs: files,
      model: modelDir,
      engine: "tfjs",
    });
    // tfjs: bit for bit predict's answers; onnx (serve's default): the same
    // classes, probabilities within 1e-5.
    const settings = [
      { workers: 2, engine: "tfjs" },
      { workers: 0, engine: "tfjs" },
      { workers: 2, engine: undefined },
    ] as const;
    for (const { workers, engine } of settings) {
      const running = await startServer({
        modelDir,
        port: 0,
        workers,
        log: false,
        ...(engine ? { engine } : {}),
      });
      try {
        assert.equal(running.workers, workers);
        const h = await (await fetch(`${running.url}health`)).json();
        assert.equal(h.workers, Math.max(1, workers));
        assert.equal(h.engine, engine ?? "onnx");
        const answers = await Promise.all(
          [...scans, ...scans].map((scan) =>
            post(`${running.url}predict`, scan, {
              "content-type": "image/jpeg",
            })
          ),
        );
        assertAnswersLike(answers, want.predictions, engine ?? "onnx");
        await assertBadScansRefused(running.url, scans[0]);
      } finally {
        await running.shutdown();
      }
    }
    await assert.rejects(
      startServer({ modelDir, port: 0, workers: -1, log: false }),
      /workers must be a non-negative integer/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** An HTTP answer read off a raw socket. */
interface RawAnswer {
  status: number;
  json: Record<string, unknown>;
  seconds: number;
}

/** Reads one HTTP answer (head and a `Content-Length` body) off `conn`. */
async function readAnswer(conn: Deno.Conn): Promise<string> {
  const dec = new TextDecoder();
  const buf = new Uint8Array(16 * 1024);
  let text = "";
  while (true) {
    const n = await conn.read(buf);
    if (n === null) return text;
    text += dec.decode(buf.subarray(0, n), { stream: true });
    const end = text.indexOf("\r\n\r\n");
    const length = Number(text.match(/\r\ncontent-length: *(\d+)/i)?.[1]);
    if (end >= 0 && new TextEncoder().encode(text).length >= end + 4 + length) {
      return text;
    }
  }
}

/**
 * Sends `head` (and then, after `pauseMs`, `rest`) on a raw TCP connection to
 * the server at `url`, and reads the answer until the server closes; gives up
 * after 10 s so a test can never hang.
 */
async function rawRequest(
  url: string,
  head: string | Uint8Array,
  { rest, pauseMs = 0 }: { rest?: string; pauseMs?: number } = {},
): Promise<RawAnswer> {
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: Number(new URL(url).port),
  });
  const t0 = performance.now();
  const guard = setTimeout(() => conn.close(), 10_000);
  const enc = new TextEncoder();
  try {
    await conn.write(typeof head === "string" ? enc.encode(head) : head);
    if (rest !== undefined) {
      await new Promise((r) => setTimeout(r, pauseMs));
      await conn.write(enc.encode(rest)).catch(() => 0);
    }
    const text = await readAnswer(conn);
    const status = Number(text.match(/^HTTP\/1\.1 (\d{3})/)?.[1]);
    const json = JSON.parse(
      text.slice(text.indexOf("{"), text.lastIndexOf("}") + 1),
    );
    return { status, json, seconds: (performance.now() - t0) / 1000 };
  } finally {
    clearTimeout(guard);
    try {
      conn.close();
    } catch {
      // closed already, by the server or by reading to the end
    }
  }
}

Deno.test("serve: escapeControl escapes control characters and backslashes only", () => {
  assert.equal(
    escapeControl("a\u0000b\nGET /x 200\r\t\u007f\u0085\u2028\\ é"),
    "a\\x00b\\nGET /x 200\\r\\t\\x7f\\x85\\u{2028}\\\\ é",
  );
  assert.equal(escapeControl("glioma scan.png"), "glioma scan.png");
});

Deno.test("serve: a hostile Host header neither breaks the request nor changes its route", async () => {
  await withServer(async (ctx) => {
    const get = (target: string, host: string) =>
      rawRequest(
        ctx.url,
        `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      );
    const bracket = await get("/health", "[");
    assert.equal(bracket.status, 200);
    assert.equal(bracket.json.status, "ok");
    assert.equal(bracket.json.model, "tiny-serve");
    const moved = await get("/health", "example.com/predict");
    assert.equal(moved.status, 200);
    assert.equal(moved.json.status, "ok");
    const query = await get("/health?x=1", "a?b#c");
    assert.equal(query.status, 200);
    const missing = await get("/nope", "[");
    assert.equal(missing.status, 404);
    assert.match(String(missing.json.error), /^no such path \/nope /);
    const slashes = await get("//evil/health", "h");
    assert.equal(slashes.status, 404);
    assert.deepEqual(
      ctx.logs.map((l) => JSON.parse(l)).map((l) =>
        `${l.method} ${l.path} ${l.status}`
      ),
      [
        "GET /health 200",
        "GET /health 200",
        "GET /health 200",
        "GET /nope 404",
        "GET //evil/health 404",
      ],
    );
    const health = await fetch(`${ctx.url}/health`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "ok");
  });
});

Deno.test("serve: a body slower than the body timeout gets 408, and the service still answers", async () => {
  await withServer(async (ctx) => {
    const slow = await rawRequest(
      ctx.url,
      "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n" +
        "Content-Length: 1000\r\nConnection: close\r\n\r\n\xff\xd8\xff",
    );
    assert.equal(slow.status, 408);
    assert.deepEqual(slow.json, {
      error: "the body did not arrive within 0.3 s",
    });
    assert.ok(slow.seconds >= 0.25 && slow.seconds < 5, `${slow.seconds} s`);
    const logged = JSON.parse(ctx.logs.at(-1)!);
    assert.deepEqual(
      [logged.method, logged.path, logged.status],
      ["POST", "/predict", 408],
    );
    assert.match(logged.error, /^the body/);
    const health = await fetch(`${ctx.url}/health`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "ok");
    // A body that arrives in time, in two pieces, is still read whole.
    const [first, second] = [ctx.jpeg.slice(0, 100), ctx.jpeg.slice(100)];
    const r = await fetch(`${ctx.url}/predict`, {
      method: "POST",
      body: ReadableStream.from([first, second]),
      headers: { "content-type": "image/jpeg" },
    });
    assert.equal(r.status, 200);
    checkPrediction(await r.json());
  }, { bodyTimeoutMs: 300 });
});

Deno.test("serve: control characters a client sends reach the log escaped", async () => {
  await withServer(async (ctx) => {
    // A header value may carry a tab and obs-text bytes (0x85 is NEL, a C1
    // line break); the 415 note quotes the Content-Type.
    const head = new Uint8Array([
      ...new TextEncoder().encode(
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/x\tGET /health 200",
      ),
      0x85,
      ...new TextEncoder().encode(
        "forged\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
      ),
    ]);
    const answer = await rawRequest(ctx.url, head);
    assert.equal(answer.status, 415);
    assert.match(String(answer.json.error), /^unsupported Content-Type /);
    const line = ctx.logs.at(-1)!;
    // deno-lint-ignore no-control-regex -- no raw control character may be left
    assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f]/);
    assert.match(line, /Content-Type image\/x\\tget \/health 200\\u0085forged/);
    assert.match(
      JSON.parse(line).error,
      /Content-Type image\/x\tget \/health 200\u0085forged/,
    );
    assert.equal((await fetch(`${ctx.url}/health`)).status, 200);
  });
});

Deno.test('serve: "address already in use" names the host and port', async () => {
  const root = await Deno.makeTempDir({ prefix: "serve_test_" });
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await saveTinyModel(join(root, "m"), { size: SIZE });
    const { port } = taken.addr as Deno.NetAddr;
    await assert.rejects(
      startServer({ modelDir: join(root, "m"), port, workers: 0, log: false }),
      new RegExp(`^Error: address already in use: 127\\.0\\.0\\.1:${port} `),
    );
  } finally {
    taken.close();
    await Deno.remove(root, { recursive: true });
  }
});

/** A started service (workers 0) on a free port, its log lines collected. */
async function withService(
  options: Partial<StartServerOptions>,
  body: (running: RunningServer, logs: string[]) => Promise<void>,
) {
  const root = await Deno.makeTempDir({ prefix: "serve_test_" });
  const logs: string[] = [];
  try {
    await saveTinyModel(join(root, "m"), { size: SIZE, run: "guarded" });
    const running = await startServer({
      modelDir: join(root, "m"),
      port: 0,
      workers: 0,
      log: (line) => logs.push(line),
      ...options,
    });
    try {
      await body(running, logs);
    } finally {
      await running.shutdown();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** Opens a raw connection to a service and sends `text`. */
async function rawSend(url: string, text: string): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: Number(new URL(url).port),
  });
  await conn.write(new TextEncoder().encode(text));
  return conn;
}

Deno.test("serve: through startServer, half a request line is answered 408 within the header timeout and logged as JSON; chunked and over-limit bodies pass the guard", async () => {
  const options = { headerTimeoutMs: 500, maxBytes: MAX_BYTES };
  await withService(options, async (running, logs) => {
    const t0 = performance.now();
    const conn = await rawSend(running.url, "GET /hea");
    const text = await readAnswer(conn);
    const seconds = (performance.now() - t0) / 1000;
    conn.close();
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.ok(seconds >= 0.45 && seconds < 1.5, `${seconds} s`);
    const entry = JSON.parse(logs.at(-1)!);
    assert.equal(entry.status, 408);
    assert.match(entry.error, /head did not arrive within 0\.5 s/);
    assert.equal((await fetch(`${running.url}health`)).status, 200);
    // Through the guard: a chunked POST, then a body over the limit by its
    // Content-Length (answered early, the rest of the body unread).
    const jpeg = await ellipseScanJpeg(2, 64);
    const chunked = await fetch(`${running.url}predict`, {
      method: "POST",
      body: ReadableStream.from([jpeg.slice(0, 100), jpeg.slice(100)]),
      headers: { "content-type": "image/jpeg" },
    });
    assert.equal(chunked.status, 200);
    checkPrediction({ ...(await chunked.json()), model: "tiny-serve" });
    const big = await post(`${running.url}predict`, new Uint8Array(70_000), {
      "content-type": "image/jpeg",
    });
    assert.equal(big.status, 413);
    assert.equal((await fetch(`${running.url}health`)).status, 200);
  });
});

Deno.test("serve: a burst beyond the workers and the queue gets 503 with Retry-After at once, while /health answers", async () => {
  const options = { maxQueue: 1, bodyTimeoutMs: 5000 };
  await withService(options, async (running, logs) => {
    // Two requests whose bodies never come hold the one worker's place and
    // the one waiting place.
    const held = await Promise.all([0, 1].map(() =>
      rawSend(
        running.url,
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n" +
          "Content-Length: 100000\r\n\r\n\xff\xd8\xff",
      )
    ));
    await new Promise((r) => setTimeout(r, 200));
    const jpeg = await ellipseScanJpeg(1, 64);
    const t0 = performance.now();
    const busy = await post(`${running.url}predict`, jpeg, {
      "content-type": "image/jpeg",
    });
    assert.equal(busy.status, 503);
    assert.ok(performance.now() - t0 < 1000);
    assert.equal(busy.res.headers.get("retry-after"), "1");
    assert.match(String(busy.json.error), /^busy: .* 1 are waiting; retry/);
    const health = await fetch(`${running.url}health`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "ok");
    // The held clients leave: their places free up.
    for (const conn of held) conn.close();
    await new Promise((r) => setTimeout(r, 200));
    const ok = await post(`${running.url}predict`, jpeg, {
      "content-type": "image/jpeg",
    });
    assert.equal(ok.status, 200);
    const statuses = logs.map((l) => JSON.parse(l).status);
    assert.ok(statuses.includes(503), statuses.join(" "));
  });
});

Deno.test("serve: the log line is valid JSON without raw control characters when a path or a file name carries them", async () => {
  await withService({}, async (running, logs) => {
    // A raw escape sequence and NUL in the request target: refused by the guard.
    const conn = await rawSend(
      running.url,
      `GET /predict\x1b[31m\0 HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    assert.match(await readAnswer(conn), /^HTTP\/1\.1 400 /);
    conn.close();
    // Encoded in the path: routed, 404.
    const encoded = await fetch(`${running.url}predict%0A%1B[31m%00`);
    assert.equal(encoded.status, 404);
    await encoded.body?.cancel();
    // In a multipart file name: the multipart parser refuses the part
    // header and quotes it; a raw line break ends the header early.
    for (const filename of [`scan\x1b[31m\0.jpg`, `scan\n\x1b[31m.jpg`]) {
      const m = multipart([{
        name: "file",
        filename,
        data: new TextEncoder().encode("not an image"),
      }]);
      const named = await post(`${running.url}predict`, m.body, {
        "content-type": m.type,
      });
      assert.equal(named.status, 400, JSON.stringify(named.json));
    }
    assert.equal(logs.length, 4);
    for (const line of logs) {
      // deno-lint-ignore no-control-regex -- no raw control character may be left
      assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
      const entry = JSON.parse(line);
      assert.match(entry.client, /^127\.0\.0\.1:\d+$/);
      assert.ok(entry.status >= 400 && typeof entry.error === "string");
    }
    const [target, path, file] = logs.map((l) => JSON.parse(l));
    assert.equal(target.path, "/predict\x1b[31m\0");
    assert.equal(path.path, "/predict%0A%1B[31m%00");
    assert.ok(file.error.includes("scan\x1b[31m\0.jpg"), file.error);
  });
});

Deno.test("serve: an image over maxPixels is 413 naming its size, and never classified", async () => {
  const root = await Deno.makeTempDir({ prefix: "serve_test_" });
  try {
    await saveTinyModel(join(root, "m"), { size: SIZE });
    const { model, metadata } = await loadSavedModel(join(root, "m"));
    const logs: string[] = [];
    const handler = createPredictHandler({
      model,
      metadata,
      maxPixels: 1000,
      log: (line) => logs.push(line),
    });
    const jpeg = await ellipseScanJpeg(1, 64);
    const res = await handler(
      new Request("http://x/predict", {
        method: "POST",
        headers: { "content-type": "image/jpeg" },
        body: jpeg as Uint8Array<ArrayBuffer>,
      }),
    );
    assert.equal(res.status, 413);
    const { error } = await res.json();
    assert.match(error, /64 × 64 pixels .* over the limit/);
    assert.equal(JSON.parse(logs[0]).error, error);
    model.dispose();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("serve --engine onnx: the same classes and probabilities within 1e-5 as predict with tfjs, in workers or this thread; /health names the engine", async () => {
  const root = await Deno.makeTempDir({ prefix: "serve_test_" });
  try {
    const modelDir = join(root, "m");
    await saveTinyModel(modelDir, { size: SIZE, run: "onnx" });
    const scans = await Promise.all(
      [8, 9, 10].map((s) => ellipseScanJpeg(s, 64)),
    );
    const files = scans.map((_, i) => join(root, `s${i}.jpg`));
    await Promise.all(files.map((f, i) => Deno.writeFile(f, scans[i])));
    const want = await predictFiles({
      inputs: files,
      model: modelDir,
      engine: "tfjs",
    });
    for (const workers of [1, 0]) {
      const running = await startServer({
        modelDir,
        port: 0,
        workers,
        engine: "onnx",
        log: false,
      });
      try {
        assert.equal(running.engine, "onnx");
        const h = await (await fetch(`${running.url}health`)).json();
        assert.equal(h.engine, "onnx");
        for (const [i, scan] of scans.entries()) {
          const a = await post(`${running.url}predict`, scan, {
            "content-type": "image/jpeg",
          });
          assert.equal(a.status, 200);
          const expected = want.predictions[i];
          assert.equal(a.json.class, expected.class);
          const got = a.json.probabilities as Record<string, number>;
          for (const [c, p] of Object.entries(expected.probabilities)) {
            assert.ok(Math.abs(got[c] - p) <= 1e-5, `${c}: ${got[c]} vs ${p}`);
          }
        }
        const corrupt = await post(
          `${running.url}predict`,
          scans[0].slice(0, 300),
          {
            "content-type": "image/jpeg",
          },
        );
        assert.equal(corrupt.status, 422);
      } finally {
        await running.shutdown();
      }
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
