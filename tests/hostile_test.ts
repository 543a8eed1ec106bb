/**
 * Hostile and clumsy input against the project's own commands, started as
 * child processes (`deno task serve`, `predict`, ...), the way a user or an
 * attacker meets them: each refusal is asserted with its status or exit
 * code, a message that names the problem, a time bound, a memory ceiling
 * for the process doing the work, and, for the server, that `GET /health`
 * still answers afterwards. The inputs are generated at run time
 * (tests/hostile_cases.ts); bench/hostile.ts measures the same cases before
 * and after the hardening.
 */
import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  rawRequest,
  runTask,
  sampleMemory,
  type ServeProcess,
  startServe,
  type TaskRun,
} from "./hostile_probe.ts";
import {
  CONTROL_NAME,
  type HostileModels,
  tamperCheckpoint,
  writeHostileModels,
  writeTinyDataset,
} from "./hostile_cases.ts";
import { ellipseScanJpeg } from "./fixtures.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MODEL = "models/seedcnn-128-r2";

// deno-lint-ignore no-control-regex
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/;
const STACK_TRACE = /^\s+at .*[:(]/m;

/** Whether `GET /health` answers 200 within 5 s. */
async function healthy(server: ServeProcess): Promise<boolean> {
  try {
    const res = await fetch(`${server.url}health`, {
      signal: AbortSignal.timeout(5000),
    });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** What a server case measured. */
interface Measured<T> {
  value: T;
  ms: number;
  /** Growth of the server's resident memory over the case, MB. */
  growthMb: number;
  /** What the server logged during the case. */
  log: string;
}

/**
 * Runs `act` against the server while sampling its memory, then asserts it
 * still answers `/health` and logged neither a stack trace nor a raw
 * control character.
 */
async function measured<T>(
  server: ServeProcess,
  act: () => Promise<T>,
): Promise<Measured<T>> {
  const logStart = server.log().length;
  const stop = sampleMemory(server.pid);
  const started = performance.now();
  const value = await act();
  const ms = performance.now() - started;
  const memory = stop();
  assert.ok(await healthy(server), "GET /health fails after the case");
  const log = server.log().slice(logStart);
  assert.doesNotMatch(log, STACK_TRACE, `a stack trace in the log:\n${log}`);
  assert.doesNotMatch(log, RAW_CONTROL, `a raw control character in the log`);
  return { value, ms, growthMb: memory.peakMb - memory.startMb, log };
}

/** A request `fetch` will not send, on a fresh connection. */
function raw(server: ServeProcess, request: string) {
  return rawRequest({
    hostname: server.hostname,
    port: server.port,
    send: request,
  });
}

/** A multipart body whose file part's headers hold a NUL and an ANSI escape. */
function multipartWithNul(
  scan: Uint8Array,
): { body: Uint8Array; type: string } {
  const boundary = "hostile-boundary";
  const head = `--${boundary}\r\n` +
    `Content-Disposition: form-data; name="file"; filename="scan\0\x1b[2J.jpg"\r\n` +
    `Content-Type: image/jpeg\0\x1b[31m\r\n\r\n`;
  const enc = new TextEncoder();
  const body = new Uint8Array([
    ...enc.encode(head),
    ...scan,
    ...enc.encode(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, type: `multipart/form-data; boundary=${boundary}` };
}

Deno.test("serve: hostile requests are answered in JSON, fast, and /health stays up", async (t) => {
  const server = await startServe({
    root: ROOT,
    model: MODEL,
    args: ["--body-timeout", "2"],
  });
  const scan = await ellipseScanJpeg(42, 256);
  try {
    await t.step(
      "a Host of `[` neither breaks nor reroutes GET /health",
      async () => {
        const m = await measured(server, () =>
          raw(
            server,
            "GET /health HTTP/1.1\r\nHost: [\r\nConnection: close\r\n\r\n",
          ));
        assert.equal(m.value.status, 200, m.value.text);
        assert.ok(JSON.parse(m.value.body).status, m.value.body);
        assert.ok(m.ms < 2000, `${m.ms} ms`);
        assert.ok(m.growthMb < 50, `server grew ${m.growthMb} MB`);
      },
    );
    await t.step("a Host holding a path does not move the route", async () => {
      const m = await measured(
        server,
        () =>
          raw(
            server,
            "GET /health HTTP/1.1\r\nHost: a/predict\r\nConnection: close\r\n\r\n",
          ),
      );
      assert.equal(m.value.status, 200, m.value.text);
      assert.ok(JSON.parse(m.value.body).status, m.value.body);
      assert.ok(m.ms < 2000, `${m.ms} ms`);
    });
    await t.step(
      "a NUL and an ANSI escape in multipart headers: a JSON 400, escaped in the log",
      async () => {
        const { body, type } = multipartWithNul(scan);
        const m = await measured(server, async () => {
          const res = await fetch(`${server.url}predict`, {
            method: "POST",
            headers: { "content-type": type },
            body: body.slice(),
          });
          return { status: res.status, text: await res.text() };
        });
        assert.equal(m.value.status, 400, m.value.text);
        assert.match(JSON.parse(m.value.text).error, /multipart/);
        assert.ok(m.ms < 2000, `${m.ms} ms`);
      },
    );
    await t.step(
      "a body trickled past --body-timeout gets 408 in time",
      async () => {
        const m = await measured(server, () =>
          rawRequest({
            hostname: server.hostname,
            port: server.port,
            send:
              "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n" +
              "Content-Length: 100000\r\n\r\n",
            drip: "x".repeat(40),
            dripMs: 500,
            timeoutMs: 15_000,
          }));
        assert.equal(m.value.status, 408, m.value.text);
        assert.match(JSON.parse(m.value.body).error, /body|time/i);
        assert.ok(m.ms >= 1500 && m.ms < 8000, `${m.ms} ms`);
      },
    );
  } finally {
    await server.stop();
  }
});

Deno.test("serve: a port already taken is named, with no stack trace", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  try {
    const run = await runTask({
      root: ROOT,
      task: "serve",
      args: ["--model", MODEL, "--port", String(port)],
      timeoutMs: 60_000,
    });
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      run.stderr,
      new RegExp(`address already in use: 127\\.0\\.0\\.1:${port}`),
    );
    assert.doesNotMatch(run.stderr, STACK_TRACE);
  } finally {
    listener.close();
  }
});

let hostile:
  | Promise<{ dir: string; models: HostileModels; scan: string }>
  | undefined;

/** The hostile model copies and a normal scan, made once for the file's tests. */
function hostileModels() {
  return hostile ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "hostile-test-" });
    const models = await writeHostileModels(
      join(dir, "models"),
      join(ROOT, MODEL),
    );
    const scan = join(dir, "scan.jpg");
    await Deno.writeFile(scan, await ellipseScanJpeg(42, 256));
    return { dir, models, scan };
  })();
}

/** `deno task predict` with `args`; asserts no stack trace and no raw control characters. */
async function predict(args: string[]): Promise<TaskRun> {
  const run = await runTask({
    root: ROOT,
    task: "predict",
    args,
    timeoutMs: 60_000,
  });
  assert.doesNotMatch(run.stderr, STACK_TRACE, run.stderr);
  assert.doesNotMatch(
    run.stdout + run.stderr,
    RAW_CONTROL,
    "raw control characters in the output",
  );
  return run;
}

/** Asserts a refusal: exit 1, the message, and the bounds on time and memory. */
function assertRefused(run: TaskRun, message: RegExp): void {
  assert.equal(run.code, 1, `exit ${run.code}\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stderr, message);
  // Starting Deno and TensorFlow takes a few seconds; reading 10 GB of
  // /dev/zero took 23 s and the refusal reads nothing.
  assert.ok(run.ms < 15_000, `${run.ms} ms`);
  assert.ok(run.peakRssMb < 800, `peak ${run.peakRssMb} MB`);
}

Deno.test("predict: a model whose weights.bin links to /dev/zero is refused at once, naming it", async () => {
  const { models, scan } = await hostileModels();
  const run = await predict(["--model", models.devZero, scan]);
  assertRefused(run, /weights\.bin is a symbolic link/);
});

Deno.test("predict: a model folder that links outside the model is refused, naming it", async () => {
  const { models, scan } = await hostileModels();
  const run = await predict(["--model", models.linkedFolder, scan]);
  assertRefused(run, /model folder is a symbolic link/);
});

Deno.test("predict: class names with terminal escapes are refused, escaped in the message", async () => {
  const { models, scan } = await hostileModels();
  const run = await predict(["--model", models.escapes, scan]);
  assertRefused(run, /class 0 .*\\u001b.* has a control character/);
});

Deno.test("predict: a file name with a newline, a CR and an escape cannot forge table lines", async () => {
  const { dir, models } = await hostileModels();
  const folder = join(dir, "control-names");
  await Deno.mkdir(folder, { recursive: true });
  await Deno.writeFile(
    join(folder, CONTROL_NAME),
    await ellipseScanJpeg(43, 256),
  );
  const run = await predict(["--model", models.good, folder]);
  assert.equal(run.code, 0, run.stderr);
  assert.ok(
    !run.stdout.split("\n").some((line) => line.startsWith("glioma 1.000")),
    run.stdout,
  );
  assert.match(run.stdout, /scan\\nglioma 1\.000\\r\\(x1b|u001b)\[31mred\.jpg/);
});

Deno.test({
  name: "hostile-test temporary folder is removed",
  async fn() {
    if (hostile) await Deno.remove((await hostile).dir, { recursive: true });
    hostile = undefined;
  },
});

Deno.test("train --resume: a spoiled checkpoint is refused at once, naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostile-resume-" });
  // The image cache goes to the temporary folder, not the project's.
  const env = { BRAIN_MRI_CACHE: join(dir, "cache") };
  try {
    const tiny = join(dir, "tiny");
    await writeTinyDataset(tiny);
    const flags = (
      run: string,
    ) => ["--data", tiny, "--size", "32", "--out", run];
    const first = await runTask({
      root: ROOT,
      task: "train",
      args: [...flags(join(dir, "run")), "--epochs", "1"],
      env,
    });
    assert.equal(first.code, 0, first.stderr);
    const expected = {
      "dev-zero": /checkpoint .*: weights file model\.bin is a symbolic link/,
      truncated:
        /checkpoint .*: weights file model\.bin: weights are 1000 bytes/,
    };
    for (const how of ["dev-zero", "truncated"] as const) {
      const run = join(dir, `run-${how}`);
      cpSync(join(dir, "run"), run, { recursive: true });
      await tamperCheckpoint(run, how);
      const resumed = await runTask({
        root: ROOT,
        task: "train",
        args: [...flags(run), "--epochs", "2", "--resume"],
        env,
        timeoutMs: 60_000,
      });
      assert.equal(
        resumed.code,
        1,
        `${how}: exit ${resumed.code}\n${resumed.stderr}`,
      );
      assert.match(resumed.stderr, expected[how]);
      assert.doesNotMatch(resumed.stderr, STACK_TRACE);
      assert.ok(resumed.ms < 20_000, `${how}: ${resumed.ms} ms`);
      assert.ok(
        resumed.peakRssMb < 800,
        `${how}: peak ${resumed.peakRssMb} MB`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
