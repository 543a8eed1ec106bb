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
import { cpSync, existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  burst,
  rawRequest,
  runTask,
  sampleMemory,
  type ServeProcess,
  startServe,
  type TaskRun,
} from "./hostile_probe.ts";
import {
  CONTROL_NAME,
  forgeJpegSize,
  halfScanJpeg,
  type HostileModels,
  plantKilledWrites,
  tamperCheckpoint,
  truncatedJpeg,
  writeBadChecksumZip,
  writeFileWhereFolderZip,
  writeHostileDataset,
  writeHostileModels,
  writeLyingZipBomb,
  writePngBomb,
  writeTinyDataset,
  writeZipBomb,
  zeroCachePacks,
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

/** The inputs the server steps post. */
interface ServerInputs {
  scan: Uint8Array;
  forged: Uint8Array;
  png: Record<"png-30000" | "png-16000" | "png-7000", Uint8Array>;
}

/** Makes the server steps' inputs (the PNG bombs are under a megabyte each). */
async function serverInputs(): Promise<ServerInputs> {
  const scan = await ellipseScanJpeg(42, 256);
  const dir = await Deno.makeTempDir({ prefix: "hostile-png-" });
  const png = {} as ServerInputs["png"];
  try {
    for (const side of [30000, 16000, 7000] as const) {
      const path = join(dir, `${side}.png`);
      await writePngBomb({ path, width: side, height: side });
      png[`png-${side}`] = await Deno.readFile(path);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return {
    scan,
    forged: forgeJpegSize(scan, { width: 65500, height: 65500 }),
    png,
  };
}

/** POSTs an image to `/predict`: status and parsed JSON answer. */
async function postImage(
  server: ServeProcess,
  body: Uint8Array,
  type = "image/jpeg",
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${server.url}predict`, {
    method: "POST",
    headers: { "content-type": type },
    body: body.slice(),
  });
  return { status: res.status, json: await res.json() };
}

/** Statuses that refuse an image over the pixel limit. */
const TOO_LARGE = [413, 422];

/** A step: its name and what it checks against the running server. */
type ServerStep = [string, (s: ServeProcess, i: ServerInputs) => Promise<void>];

const HOST_STEPS: ServerStep[] = [
  ["a Host of `[` neither breaks nor reroutes GET /health", async (server) => {
    const m = await measured(
      server,
      () =>
        raw(
          server,
          "GET /health HTTP/1.1\r\nHost: [\r\nConnection: close\r\n\r\n",
        ),
    );
    assert.equal(m.value.status, 200, m.value.text);
    assert.ok(JSON.parse(m.value.body).status, m.value.body);
    assert.ok(m.ms < 2000, `${m.ms} ms`);
    assert.ok(m.growthMb < 50, `server grew ${m.growthMb} MB`);
  }],
  ["a Host holding a path does not move the route", async (server) => {
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
  }],
  [
    "a NUL and an ANSI escape in multipart headers: a JSON 400, escaped in the log",
    async (server, inputs) => {
      const { body, type } = multipartWithNul(inputs.scan);
      const m = await measured(server, () => postImage(server, body, type));
      assert.equal(m.value.status, 400, JSON.stringify(m.value.json));
      assert.match(String(m.value.json.error), /multipart/);
      assert.ok(m.ms < 2000, `${m.ms} ms`);
    },
  ],
];

/** Asserts a refusal of an image over the pixel limit: status, message, time, memory. */
function assertOverLimit(
  m: Measured<{ status: number; json: Record<string, unknown> }>,
  claim: RegExp,
): void {
  assert.ok(TOO_LARGE.includes(m.value.status), `status ${m.value.status}`);
  assert.match(String(m.value.json.error), claim);
  assert.match(String(m.value.json.error), /over the limit of 50 megapixels/);
  assert.ok(m.ms < 2000, `${m.ms} ms`);
  assert.ok(m.growthMb < 200, `server grew ${m.growthMb} MB`);
}

const IMAGE_STEPS: ServerStep[] = [
  [
    "a JPEG whose header claims 65500×65500 is refused from its header",
    async (server, inputs) => {
      const m = await measured(server, () => postImage(server, inputs.forged));
      assertOverLimit(m, /65500 × 65500/);
    },
  ],
  [
    "PNG bombs (900 and 256 megapixels of zeros) are refused from their header",
    async (server, inputs) => {
      for (
        const [name, side] of [["png-30000", 30000], [
          "png-16000",
          16000,
        ]] as const
      ) {
        const m = await measured(
          server,
          () => postImage(server, inputs.png[name], "image/png"),
        );
        assertOverLimit(m, new RegExp(`${side} × ${side}`));
      }
    },
  ],
  [
    "a 49-megapixel PNG, under the limit, is classified",
    async (server, inputs) => {
      const m = await measured(
        server,
        () => postImage(server, inputs.png["png-7000"], "image/png"),
      );
      assert.equal(m.value.status, 200, JSON.stringify(m.value.json));
      assert.ok(m.ms < 5000, `${m.ms} ms`);
      assert.ok(m.growthMb < 400, `server grew ${m.growthMb} MB`);
    },
  ],
  [
    "half a scan closed with an end marker, and a cut-off JPEG, are corrupt: 422",
    async (server, inputs) => {
      for (
        const [body, reason] of [[
          halfScanJpeg(inputs.scan),
          /corrupt JPEG data|premature end/,
        ], [truncatedJpeg(inputs.scan), /premature end/]] as const
      ) {
        const m = await measured(server, () => postImage(server, body));
        assert.equal(m.value.status, 422, JSON.stringify(m.value.json));
        assert.match(String(m.value.json.error), reason);
        assert.ok(m.ms < 2000, `${m.ms} ms`);
      }
    },
  ],
];

const LOAD_STEPS: ServerStep[] = [
  [
    "six forged headers at once cost nothing; a normal scan and /health are answered beside them",
    async (server, inputs) => {
      const m = await measured(
        server,
        () =>
          burst({
            url: server.url,
            heavy: inputs.forged,
            type: "image/jpeg",
            count: 6,
            normal: inputs.scan,
          }),
      );
      const { heavy, normal, health } = m.value;
      assert.ok(
        heavy.every((r) => TOO_LARGE.includes(r.status!)),
        JSON.stringify(heavy),
      );
      assert.equal(normal.status, 200);
      assert.ok(normal.ms < 5000, `normal scan waited ${normal.ms} ms`);
      assert.ok(
        health.status === 200 && health.ms < 3000,
        JSON.stringify(health),
      );
      assert.ok(m.growthMb < 200, `server grew ${m.growthMb} MB`);
    },
  ],
  [
    "forty 49-megapixel PNGs at once: the overflow gets 503, memory stays bounded, /health answers",
    async (server, inputs) => {
      const m = await measured(
        server,
        () =>
          burst({
            url: server.url,
            heavy: inputs.png["png-7000"],
            type: "image/png",
            count: 40,
            normal: inputs.scan,
          }),
      );
      const { heavy, normal, health } = m.value;
      assert.ok(
        heavy.every((r) => r.status === 200 || r.status === 503),
        JSON.stringify(heavy),
      );
      assert.ok(
        heavy.some((r) => r.status === 503),
        "no request of the burst was turned away",
      );
      assert.ok(
        heavy.every((r) =>
          r.status !== 503 || /^\d+$/.test(r.retryAfter ?? "")
        ),
        "a 503 without Retry-After",
      );
      assert.ok(
        normal.status === 200 || normal.status === 503,
        `normal scan: ${normal.status}`,
      );
      assert.ok(normal.ms < 5000, `normal scan waited ${normal.ms} ms`);
      assert.ok(
        health.status === 200 && health.ms < 3000,
        JSON.stringify(health),
      );
      assert.ok(m.growthMb < 500, `server grew ${m.growthMb} MB`);
      assert.equal((await postImage(server, inputs.scan)).status, 200);
    },
  ],
];

/** A connection held open: `send` then `drip` one byte every 500 ms. */
function hold(server: ServeProcess, send: string, drip = "") {
  return rawRequest({
    hostname: server.hostname,
    port: server.port,
    send,
    drip,
    dripMs: 500,
    timeoutMs: 15_000,
  });
}

const SLOW_STEPS: ServerStep[] = [
  [
    "request headers trickled past --header-timeout get 408 in time",
    async (server) => {
      const m = await measured(server, () =>
        hold(
          server,
          "GET /health HTTP/1.1\r\nHost: x\r\n",
          "X-Slow: " + "a".repeat(30),
        ));
      assert.equal(m.value.status, 408, m.value.text);
      assert.ok(m.ms >= 1500 && m.ms < 8000, `${m.ms} ms`);
    },
  ],
  [
    "a connection that sends nothing is closed after --idle-timeout",
    async (server) => {
      const m = await measured(server, () => hold(server, ""));
      assert.ok(m.value.closed, "still open");
      assert.ok(m.ms >= 1500 && m.ms < 8000, `${m.ms} ms`);
    },
  ],
  ["a body trickled past --body-timeout gets 408 in time", async (server) => {
    const m = await measured(
      server,
      () =>
        hold(
          server,
          "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n",
          "x".repeat(40),
        ),
    );
    assert.equal(m.value.status, 408, m.value.text);
    assert.match(JSON.parse(m.value.body).error, /body|time/i);
    assert.ok(m.ms >= 1500 && m.ms < 8000, `${m.ms} ms`);
  }],
];

Deno.test("serve: hostile requests are answered in JSON, fast, and /health stays up", async (t) => {
  const timeouts = ["--body-timeout", "--header-timeout", "--idle-timeout"];
  const server = await startServe({
    root: ROOT,
    model: MODEL,
    args: timeouts.flatMap((f) => [f, "2"]),
  });
  try {
    const inputs = await serverInputs();
    for (
      const [name, step] of [
        ...HOST_STEPS,
        ...IMAGE_STEPS,
        ...LOAD_STEPS,
        ...SLOW_STEPS,
      ]
    ) {
      await t.step(name, () => step(server, inputs));
    }
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
    // Removed when the test module ends, whichever of its tests ran.
    globalThis.addEventListener("unload", () => {
      Deno.removeSync(dir, { recursive: true });
    });
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

Deno.test("predict: a JPEG whose header claims 65500×65500 is skipped at once, naming the limit", async () => {
  const { dir, models } = await hostileModels();
  const forged = join(dir, "forged.jpg");
  await Deno.writeFile(
    forged,
    forgeJpegSize(await ellipseScanJpeg(44, 256), {
      width: 65500,
      height: 65500,
    }),
  );
  const run = await predict(["--model", models.good, forged]);
  assert.equal(run.code, 1, `exit ${run.code}\n${run.stdout}\n${run.stderr}`);
  assert.match(
    run.stdout + run.stderr,
    /forged\.jpg: image claims 65500 × 65500 pixels .*over the limit of 50 megapixels/,
  );
  // Decoding it took 11 s and 1 GB; the header alone is refused (about 400 MB
  // is Deno with TensorFlow loaded).
  assert.ok(run.ms < 15_000, `${run.ms} ms`);
  assert.ok(run.peakRssMb < 600, `peak ${run.peakRssMb} MB`);
});

Deno.test("data:download --zip: a zip bomb (honest or lying about its size), a bad checksum and a file where a folder should be are refused, nothing installed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostile-zip-" });
  try {
    const zips = {
      bomb: join(dir, "bomb.zip"),
      lyingBomb: join(dir, "lying-bomb.zip"),
      badChecksum: join(dir, "bad-checksum.zip"),
      fileWhereFolder: join(dir, "file-where-folder.zip"),
    };
    await writeZipBomb({ path: zips.bomb, entryBytes: 1 << 30 });
    await writeLyingZipBomb({ path: zips.lyingBomb, entryBytes: 1 << 30 });
    await writeBadChecksumZip(zips.badChecksum);
    await writeFileWhereFolderZip(zips.fileWhereFolder);
    const cases = [
      [
        zips.bomb,
        /bomb\.zip: entry "Training\/glioma\/Tr-gl-bomb\.jpg" claims to expand/,
      ],
      [
        zips.lyingBomb,
        /lying-bomb\.zip is corrupt: entry "Training\/glioma\/Tr-gl-bomb\.jpg" unpacks to more than the 1048576 bytes its header says/,
      ],
      [
        zips.badChecksum,
        /bad-checksum\.zip is corrupt: entry "Training\/glioma\/Tr-gl-0001\.jpg" failed its CRC/,
      ],
      [
        zips.fileWhereFolder,
        /file-where-folder\.zip: entry "Training" is a file where a folder should be/,
      ],
    ] as const;
    for (const [zip, message] of cases) {
      const dest = join(dir, "dest");
      const run = await runTask({
        root: ROOT,
        task: "data:download",
        args: ["--zip", zip, "--dest", dest],
        timeoutMs: 60_000,
      });
      assert.equal(run.code, 1, `${zip}: exit ${run.code}\n${run.stderr}`);
      assert.match(run.stderr, message);
      assert.doesNotMatch(run.stderr, STACK_TRACE);
      // Unpacking the bomb whole took 1.7 GB and left 1 GiB on disk.
      assert.ok(run.ms < 15_000, `${zip}: ${run.ms} ms`);
      assert.ok(run.peakRssMb < 400, `${zip}: peak ${run.peakRssMb} MB`);
      for (const split of ["Training", "Testing"]) {
        assert.ok(
          !existsSync(join(dest, split)),
          `${zip}: ${split}/ was installed`,
        );
      }
      await Deno.remove(dest, { recursive: true }).catch(() => {});
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("audit: an empty class folder is a warning and a truncated JPEG is named with its reason", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostile-audit-" });
  try {
    await writeHostileDataset(dir);
    const run = await runTask({
      root: ROOT,
      task: "audit",
      args: ["--data", dir],
      timeoutMs: 60_000,
    });
    const output = run.stdout + run.stderr;
    assert.equal(run.code, 0, output);
    assert.match(
      output,
      /pituitary: class folder with no JPEG or PNG images \(it is empty\)/,
    );
    assert.match(
      output,
      /glioma\/cut\.jpg: cannot decode image: .*premature end of JPEG image/,
    );
    assert.doesNotMatch(output, /unknown error/i);
    assert.doesNotMatch(output, RAW_CONTROL);
    assert.doesNotMatch(run.stderr, STACK_TRACE);
    assert.ok(run.ms < 15_000, `${run.ms} ms`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train: an image-cache pack zeroed on disk is found by its checksum and decoded again; a killed write's temp file is cleared", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostile-cache-" });
  const env = { BRAIN_MRI_CACHE: join(dir, "cache") };
  try {
    const tiny = join(dir, "tiny");
    await writeTinyDataset(tiny);
    const train = (run: string) =>
      runTask({
        root: ROOT,
        task: "train",
        args: [
          "--data",
          tiny,
          "--size",
          "32",
          "--epochs",
          "1",
          "--out",
          join(dir, run),
        ],
        env,
        timeoutMs: 60_000,
      });
    const first = await train("first");
    assert.equal(first.code, 0, first.stderr);
    assert.ok(
      await zeroCachePacks(env.BRAIN_MRI_CACHE) > 0,
      "no cache pack was written",
    );
    const temps = await plantKilledWrites(env.BRAIN_MRI_CACHE);
    const second = await train("second");
    const output = second.stdout + second.stderr;
    assert.equal(second.code, 0, output);
    assert.match(
      output,
      /image cache: .*\.bin fails its checksum \(damaged on disk\); removed, its 40 images are decoded again/,
    );
    assert.match(output, /decoded 40 images \(0 from cache\)/);
    for (const temp of temps) {
      assert.ok(!existsSync(temp), `the killed write's ${temp} is still there`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
