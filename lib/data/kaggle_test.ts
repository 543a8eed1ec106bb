import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Uint8ArrayReader, Uint8ArrayWriter, ZipWriter } from "@zip.js/zip.js";
import sharp from "sharp";
import {
  DEFAULT_DATASET,
  downloadKaggleDataset,
  type DownloadKaggleDatasetOptions,
  findKaggleCredentials,
  installDatasetZip,
  KAGGLE_CLI,
  KaggleCredentialsError,
  KaggleError,
} from "./kaggle.ts";
import { usage } from "../core/cli.ts";
import { run } from "../tools/proc.ts";

const USER = "ada";
const KEY = "s3cr3t-k3y-0123456789abcdef";
const AUTH = `Basic ${btoa(`${USER}:${KEY}`)}`;
const DATASET = "owner/tiny-mri";
const ZIP_NAME = "tiny-mri";
const API_PATH = "/api/v1/datasets/download/owner/tiny-mri";
const STORAGE_PATH = "/storage/tiny-mri.zip";

// ---------------------------------------------------------------------------
// Fixtures: a small zip of real JPEGs in the Kaggle layout.

interface ZipItem {
  name: string;
  data?: Uint8Array;
  directory?: boolean;
}

async function tinyJpeg(seed: number): Promise<Uint8Array> {
  const buffer = await sharp({
    create: {
      width: 8,
      height: 8,
      channels: 3,
      background: { r: (seed * 40) % 256, g: (seed * 90) % 256, b: 128 },
    },
  }).jpeg({ quality: 90 }).toBuffer();
  return new Uint8Array(buffer);
}

let jpegs: Map<string, Uint8Array> | undefined;

/** `<split>/<class>/<file>` → JPEG bytes: 3 + 2 training, 1 + 1 testing. */
async function datasetFiles(): Promise<Map<string, Uint8Array>> {
  if (jpegs) return jpegs;
  const names = [
    "Training/glioma/Tr-gl_0001.jpg",
    "Training/glioma/Tr-gl_0002.jpg",
    "Training/glioma/Tr-gl_0003.jpg",
    "Training/notumor/Tr-no_0001.jpg",
    "Training/notumor/Tr-no_0002.jpg",
    "Testing/glioma/Te-gl_0001.jpg",
    "Testing/notumor/Te-no_0001.jpg",
  ];
  jpegs = new Map();
  for (const [i, name] of names.entries()) {
    jpegs.set(name, await tinyJpeg(i + 1));
  }
  return jpegs;
}

async function buildZip(items: ZipItem[], level = 6): Promise<Uint8Array> {
  const writer = new ZipWriter(new Uint8ArrayWriter(), {
    useWebWorkers: false,
    level,
  });
  for (const item of items) {
    if (item.directory) {
      await writer.add(item.name, undefined, { directory: true });
    } else await writer.add(item.name, new Uint8ArrayReader(item.data!));
  }
  return await writer.close();
}

async function datasetZip(
  options: { prefix?: string; level?: number; extra?: ZipItem[] } = {},
): Promise<Uint8Array> {
  const prefix = options.prefix ?? "";
  const items: ZipItem[] = [
    { name: `${prefix}Training/`, directory: true },
    { name: `${prefix}Testing/`, directory: true },
  ];
  for (const [name, data] of await datasetFiles()) {
    items.push({ name: prefix + name, data });
  }
  return await buildZip([...items, ...(options.extra ?? [])], options.level);
}

function md5(data: Uint8Array, encoding: "hex" | "base64"): string {
  return createHash("md5").update(data).digest(encoding);
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

// ---------------------------------------------------------------------------
// A local stand-in for Kaggle: the API checks Basic auth and redirects to a
// storage path that serves the zip with Range support (or not).

interface Logged {
  path: string;
  host: string;
  authorization: string | null;
  range: string | null;
  ifRange: string | null;
  status: number;
  /** Body bytes the server handed over (or meant to, before cutting). */
  sent: number;
}

interface StorageBehaviour {
  /** Extra response headers (ETag, x-goog-hash, Content-MD5). */
  headers?: Record<string, string>;
  /** Answer every request with the whole file (200), ignoring Range. */
  ignoreRange?: boolean;
  /** Close the connection after this many body bytes, on the first request only. */
  cutFirstAfter?: number;
  /** Where the API redirects: "same" host (127.0.0.1) or "other" (localhost). */
  redirect?: "same" | "other";
}

interface FakeKaggle {
  apiBase: string;
  port: number;
  log: Logged[];
  storage: Logged[];
  close(): Promise<void>;
}

/** The API's answer: 401 without the right Basic auth, else a redirect to storage. */
function apiAnswer(
  entry: Logged,
  behaviour: StorageBehaviour,
  port: number,
): Response {
  if (entry.authorization !== AUTH) {
    return Response.json({ code: 401, message: "Unauthenticated" }, {
      status: 401,
    });
  }
  const host = behaviour.redirect === "other" ? "localhost" : "127.0.0.1";
  return new Response(null, {
    status: 302,
    headers: { location: `http://${host}:${port}${STORAGE_PATH}?sig=abc` },
  });
}

/** A body that ends after `cut` bytes, short of its Content-Length. */
function cutBody(body: Uint8Array, cut: number): ReadableStream<Uint8Array> {
  let done = false;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!done) {
        controller.enqueue(body.slice(0, cut));
        done = true;
      } else {
        // Ending short of Content-Length makes the server drop the
        // connection mid-body.
        controller.close();
      }
    },
  });
}

/**
 * Storage's answer: the zip, or the rest of it for `Range: bytes=N-` (206,
 * or 416 past the end) unless the behaviour ignores ranges; the first
 * request may be cut short.
 */
function storageAnswer(
  zip: Uint8Array,
  entry: Logged,
  behaviour: StorageBehaviour,
  first: boolean,
): Response {
  const headers = new Headers({
    "content-type": "application/zip",
    "accept-ranges": behaviour.ignoreRange ? "none" : "bytes",
    ...behaviour.headers,
  });
  let start = 0;
  let status = 200;
  const match = entry.range ? /^bytes=(\d+)-$/.exec(entry.range) : null;
  if (match && !behaviour.ignoreRange) {
    start = Number(match[1]);
    if (start >= zip.length) {
      headers.set("content-range", `bytes */${zip.length}`);
      return new Response(null, { status: 416, headers });
    }
    status = 206;
    headers.set(
      "content-range",
      `bytes ${start}-${zip.length - 1}/${zip.length}`,
    );
  }
  const body = zip.subarray(start);
  headers.set("content-length", String(body.length));
  const cut = first ? behaviour.cutFirstAfter : undefined;
  if (cut === undefined) {
    entry.sent = body.length;
    return new Response(body.slice(), { status, headers });
  }
  entry.sent = cut;
  return new Response(cutBody(body, cut), { status, headers });
}

function startFakeKaggle(
  zip: Uint8Array,
  behaviour: StorageBehaviour = {},
): FakeKaggle {
  const log: Logged[] = [];
  let storageRequests = 0;
  let port = 0;
  const answer = (url: URL, entry: Logged) => {
    if (url.pathname === API_PATH) return apiAnswer(entry, behaviour, port);
    if (url.pathname !== STORAGE_PATH) {
      return new Response("not found", { status: 404 });
    }
    storageRequests++;
    return storageAnswer(zip, entry, behaviour, storageRequests === 1);
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const url = new URL(request.url);
      const entry: Logged = {
        path: url.pathname,
        host: request.headers.get("host") ?? "",
        authorization: request.headers.get("authorization"),
        range: request.headers.get("range"),
        ifRange: request.headers.get("if-range"),
        status: 0,
        sent: 0,
      };
      log.push(entry);
      const response = answer(url, entry);
      entry.status = response.status;
      return response;
    },
  );
  port = server.addr.port;
  return {
    apiBase: `http://127.0.0.1:${port}/api/v1`,
    port,
    log,
    get storage() {
      return log.filter((e) => e.path === STORAGE_PATH);
    },
    close: () => server.shutdown(),
  };
}

interface Run {
  dest: string;
  messages: string[];
  progress: Array<[number, number | undefined]>;
  options: DownloadKaggleDatasetOptions;
}

function runOptions(
  fake: FakeKaggle,
  dest: string,
  extra: Partial<DownloadKaggleDatasetOptions> = {},
): Run {
  const messages: string[] = [];
  const progress: Array<[number, number | undefined]> = [];
  return {
    dest,
    messages,
    progress,
    options: {
      dataset: DATASET,
      dest,
      apiBase: fake.apiBase,
      credentials: { username: USER, key: KEY },
      env: {},
      home: dest,
      log: (m) => messages.push(m),
      onProgress: (received, total) => progress.push([received, total]),
      ...extra,
    },
  };
}

async function assertUnpacked(dest: string): Promise<void> {
  for (const [name, data] of await datasetFiles()) {
    const path = join(dest, name);
    assert.ok(existsSync(path), `${path} exists`);
    assert.deepEqual(new Uint8Array(readFileSync(path)), data, name);
  }
  const meta = await sharp(join(dest, "Testing/glioma/Te-gl_0001.jpg"))
    .metadata();
  assert.equal(meta.format, "jpeg");
  assert.equal(meta.width, 8);
}

/** Nothing half-unpacked: no splits, no temporary folders, no zip. */
function assertNothingLeft(dest: string): void {
  assert.ok(!existsSync(join(dest, "Training")), "no Training/");
  assert.ok(!existsSync(join(dest, "Testing")), "no Testing/");
  const scratch = join(dest, ".download");
  const left = existsSync(scratch) ? readdirSync(scratch) : [];
  assert.deepEqual(
    left.filter((n) => n.startsWith("unpack-") || n.endsWith(".zip")),
    [],
  );
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kaggle_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------
// Credentials

Deno.test("findKaggleCredentials: environment variables win", async () => {
  await withTemp(async (home) => {
    await Deno.mkdir(join(home, ".kaggle"));
    await Deno.writeTextFile(
      join(home, ".kaggle", "kaggle.json"),
      JSON.stringify({ username: "file-user", key: "file-key" }),
    );
    assert.deepEqual(
      findKaggleCredentials({
        env: { KAGGLE_USERNAME: "env-user", KAGGLE_KEY: "env-key" },
        home,
      }),
      { username: "env-user", key: "env-key" },
    );
    // Only one of the two variables: fall back to the file.
    assert.deepEqual(
      findKaggleCredentials({ env: { KAGGLE_USERNAME: "env-user" }, home }),
      { username: "file-user", key: "file-key" },
    );
  });
});

Deno.test("findKaggleCredentials: ~/.kaggle/kaggle.json and KAGGLE_CONFIG_DIR", async () => {
  await withTemp(async (home) => {
    assert.equal(findKaggleCredentials({ env: {}, home }), undefined);
    await Deno.mkdir(join(home, ".kaggle"));
    await Deno.writeTextFile(
      join(home, ".kaggle", "kaggle.json"),
      JSON.stringify({ username: "ada", key: "k1" }),
    );
    assert.deepEqual(findKaggleCredentials({ env: {}, home }), {
      username: "ada",
      key: "k1",
    });
    assert.deepEqual(
      findKaggleCredentials({ env: { HOME: home } }),
      { username: "ada", key: "k1" },
      "home defaults to HOME",
    );
    const other = join(home, "elsewhere");
    await Deno.mkdir(other);
    assert.equal(
      findKaggleCredentials({ env: { KAGGLE_CONFIG_DIR: other }, home }),
      undefined,
      "KAGGLE_CONFIG_DIR replaces ~/.kaggle",
    );
    await Deno.writeTextFile(
      join(other, "kaggle.json"),
      JSON.stringify({ username: "bob", key: "k2" }),
    );
    assert.deepEqual(
      findKaggleCredentials({ env: { KAGGLE_CONFIG_DIR: other }, home }),
      { username: "bob", key: "k2" },
    );
  });
});

Deno.test("findKaggleCredentials: a broken kaggle.json names the file, not the key", async () => {
  await withTemp(async (home) => {
    await Deno.mkdir(join(home, ".kaggle"));
    const path = join(home, ".kaggle", "kaggle.json");
    await Deno.writeTextFile(path, `{"username": "ada", "key": "${KEY}",}`);
    assert.throws(
      () => findKaggleCredentials({ env: {}, home }),
      (error: Error) => {
        assert.ok(error instanceof KaggleCredentialsError);
        assert.ok(error.message.includes(path), error.message);
        assert.match(error.message, /not valid JSON/);
        assert.ok(!error.message.includes(KEY), "key not echoed");
        return true;
      },
    );
    await Deno.writeTextFile(path, JSON.stringify({ username: "ada" }));
    assert.throws(
      () => findKaggleCredentials({ env: {}, home }),
      /kaggle\.json must hold \{"username"/,
    );
  });
});

Deno.test("downloadKaggleDataset: no credentials → says exactly what to do, no request", async () => {
  await withTemp(async (dir) => {
    let requests = 0;
    const error = await downloadKaggleDataset({
      dest: join(dir, "data"),
      env: {},
      home: dir,
      log: () => {},
      fetch: () => {
        requests++;
        return Promise.reject(new Error("must not be called"));
      },
    }).then(() => undefined, (e: Error) => e);
    assert.ok(error instanceof KaggleCredentialsError);
    const message = error.message;
    for (
      const needle of [
        "Settings → API",
        '"Create New Token"',
        "chmod 600 ~/.kaggle/kaggle.json",
        "KAGGLE_USERNAME",
        "KAGGLE_KEY",
        "KAGGLE_CONFIG_DIR",
        join(dir, "data", "Training"),
        join(dir, "data", "Testing"),
        "BRAIN_MRI_DATA",
        `https://www.kaggle.com/datasets/${DEFAULT_DATASET}`,
        join(dir, ".kaggle", "kaggle.json"),
      ]
    ) {
      assert.ok(message.includes(needle), `message mentions ${needle}`);
    }
    assert.equal(requests, 0);
  });
});

// ---------------------------------------------------------------------------
// Downloading

/**
 * Only the verified zip, its SHA-256 record and the manifest are left in
 * `.download/`.
 */
function assertDownloadFolderClean(dest: string): void {
  assert.deepEqual(
    readdirSync(join(dest, ".download")).sort(),
    [`${ZIP_NAME}.manifest.json`, `${ZIP_NAME}.zip`, `${ZIP_NAME}.zip.sha256`],
  );
  const zip = join(dest, ".download", `${ZIP_NAME}.zip`);
  assert.equal(
    readFileSync(`${zip}.sha256`, "utf8"),
    `${sha256(readFileSync(zip))}  ${ZIP_NAME}.zip\n`,
    "the SHA-256 of the verified download is recorded beside it",
  );
}

/** A first download: two requests with Basic auth, verified, unpacked. */
async function assertFirstDownload(
  fake: FakeKaggle,
  dest: string,
  zip: Uint8Array,
): Promise<void> {
  const first = runOptions(fake, dest);
  const result = await downloadKaggleDataset(first.options);
  assert.deepEqual(result, {
    dest,
    zip: join(dest, ".download", `${ZIP_NAME}.zip`),
    bytes: zip.length,
    resumed: false,
    files: 7,
    skipped: false,
  });
  await assertUnpacked(dest);
  assert.deepEqual(
    new Uint8Array(readFileSync(result.zip)),
    zip,
    "the verified zip is kept under its final name",
  );
  assert.ok(!existsSync(`${result.zip}.partial`));
  assertDownloadFolderClean(dest);
  assert.deepEqual(readdirSync(dest).sort(), [
    ".download",
    "Testing",
    "Training",
  ]);
  assert.deepEqual(fake.log.map((e) => [e.path, e.status]), [
    [API_PATH, 302],
    [STORAGE_PATH, 200],
  ]);
  assert.equal(fake.log[0].authorization, AUTH);
  assert.equal(
    fake.log[1].authorization,
    AUTH,
    "same origin: Authorization kept",
  );
  assert.equal(fake.log[1].range, null);
  assert.deepEqual(first.progress.at(-1), [zip.length, zip.length]);
  assert.ok(first.messages.some((m) => /MD5 verified/.test(m)));
}

/**
 * After a first download: a second call does nothing; a missing file is
 * unpacked again from the kept zip, offline, clearing what a killed run left
 * in `.download/unpack-*`.
 */
async function assertOfflineReruns(
  fake: FakeKaggle,
  dest: string,
): Promise<void> {
  const second = runOptions(fake, dest);
  const again = await downloadKaggleDataset(second.options);
  assert.equal(again.skipped, true);
  assert.equal(again.files, 7);
  assert.equal(again.bytes, 0);
  assert.equal(fake.log.length, 2);
  assert.match(second.messages.join("\n"), /already unpacked/);

  await Deno.remove(join(dest, "Training/notumor/Tr-no_0002.jpg"));
  await Deno.mkdir(join(dest, ".download", "unpack-stale", "Training"), {
    recursive: true,
  });
  const third = await downloadKaggleDataset(runOptions(fake, dest).options);
  assert.equal(third.skipped, false);
  assert.equal(third.bytes, 0);
  assert.equal(fake.log.length, 2);
  await assertUnpacked(dest);
  assertDownloadFolderClean(dest);
}

Deno.test("download: Basic auth, redirect on the same host keeps it, unpacks, idempotent", async () => {
  const zip = await datasetZip();
  const fake = startFakeKaggle(zip, {
    headers: { "x-goog-hash": `crc32c=AAAAAA==,md5=${md5(zip, "base64")}` },
  });
  try {
    await withTemp(async (dir) => {
      const dest = join(dir, "data");
      await assertFirstDownload(fake, dest, zip);
      await assertOfflineReruns(fake, dest);

      // --force downloads and unpacks again.
      const forced = await downloadKaggleDataset(
        runOptions(fake, dest, { force: true }).options,
      );
      assert.equal(forced.bytes, zip.length);
      assert.equal(fake.log.length, 4);
      await assertUnpacked(dest);
      assertDownloadFolderClean(dest);
    });
  } finally {
    await fake.close();
  }
});

Deno.test("download: wrong key → 401 with a clear message and no key in it", async () => {
  const fake = startFakeKaggle(await datasetZip());
  try {
    await withTemp(async (dir) => {
      const wrong = "wr0ng-k3y-fedcba";
      const { options } = runOptions(fake, join(dir, "data"), {
        credentials: { username: USER, key: wrong },
      });
      await assert.rejects(downloadKaggleDataset(options), (error: Error) => {
        assert.ok(error instanceof KaggleError);
        assert.match(error.message, /rejected the credentials of user "ada"/);
        assert.match(error.message, /HTTP 401/);
        assert.match(error.message, /Unauthenticated/);
        assert.ok(!error.message.includes(wrong));
        return true;
      });
      assert.deepEqual(fake.log.map((e) => e.status), [401]);
      assert.equal(
        fake.log[0].authorization,
        `Basic ${btoa(`${USER}:${wrong}`)}`,
      );
      assertNothingLeft(join(dir, "data"));
    });
  } finally {
    await fake.close();
  }
});

Deno.test("download: a redirect to another host does not get the Authorization header", async () => {
  const zip = await datasetZip();
  const fake = startFakeKaggle(zip, { redirect: "other" });
  try {
    await withTemp(async (dir) => {
      const dest = join(dir, "data");
      const result = await downloadKaggleDataset(
        runOptions(fake, dest).options,
      );
      assert.equal(result.files, 7);
      await assertUnpacked(dest);
      assert.equal(fake.log.length, 2);
      assert.equal(fake.log[0].host, `127.0.0.1:${fake.port}`);
      assert.equal(fake.log[0].authorization, AUTH);
      assert.equal(fake.log[1].host, `localhost:${fake.port}`);
      assert.equal(fake.log[1].authorization, null, "no credentials leaked");
    });
  } finally {
    await fake.close();
  }
});

Deno.test("download: an interrupted transfer resumes with Range and moves only the rest", async () => {
  const zip = await datasetZip();
  const cut = Math.floor(zip.length / 2);
  const etag = `"${md5(zip, "hex")}"`;
  const fake = startFakeKaggle(zip, {
    cutFirstAfter: cut,
    redirect: "other",
    headers: { etag },
  });
  try {
    await withTemp(async (dir) => {
      const dest = join(dir, "data");
      const partial = join(dest, ".download", `${ZIP_NAME}.zip.partial`);
      await assert.rejects(
        downloadKaggleDataset(runOptions(fake, dest).options),
        (error: Error) => {
          assert.ok(error instanceof KaggleError);
          assert.match(error.message, /interrupted.*run again to resume/s);
          return true;
        },
      );
      const kept = Deno.statSync(partial).size;
      assert.ok(kept > 0 && kept <= cut, `partial holds ${kept} bytes`);
      assert.ok(!existsSync(join(dest, "Training")));

      const second = runOptions(fake, dest);
      const result = await downloadKaggleDataset(second.options);
      assert.equal(result.resumed, true);
      assert.equal(result.bytes, zip.length - kept);
      assert.equal(result.files, 7);
      const resumedRequest = fake.storage[1];
      assert.equal(resumedRequest.range, `bytes=${kept}-`);
      assert.equal(resumedRequest.ifRange, etag);
      assert.equal(resumedRequest.status, 206);
      assert.equal(resumedRequest.sent, zip.length - kept, "only the rest");
      assert.equal(resumedRequest.authorization, null);
      assert.deepEqual(second.progress[0], [kept, zip.length]);
      assert.deepEqual(second.progress.at(-1), [zip.length, zip.length]);
      assert.ok(!existsSync(partial));
      assert.deepEqual(
        new Uint8Array(
          readFileSync(join(dest, ".download", `${ZIP_NAME}.zip`)),
        ),
        zip,
      );
      await assertUnpacked(dest);
    });
  } finally {
    await fake.close();
  }
});

Deno.test("download: a server that ignores Range → start over from zero", async () => {
  const zip = await datasetZip();
  const fake = startFakeKaggle(zip, {
    cutFirstAfter: Math.floor(zip.length / 3),
    ignoreRange: true,
  });
  try {
    await withTemp(async (dir) => {
      const dest = join(dir, "data");
      await assert.rejects(
        downloadKaggleDataset(runOptions(fake, dest).options),
        /interrupted/,
      );
      const second = runOptions(fake, dest);
      const result = await downloadKaggleDataset(second.options);
      assert.ok(fake.storage[1].range?.startsWith("bytes="), "Range was asked");
      assert.equal(fake.storage[1].status, 200);
      assert.equal(result.resumed, false);
      assert.equal(result.bytes, zip.length);
      assert.match(second.messages.join("\n"), /starting over/);
      await assertUnpacked(dest);
    });
  } finally {
    await fake.close();
  }
});

Deno.test("download: 416 on a partial that is already complete → no bytes moved", async () => {
  const zip = await datasetZip();
  const fake = startFakeKaggle(zip);
  try {
    await withTemp(async (dir) => {
      const dest = join(dir, "data");
      await Deno.mkdir(join(dest, ".download"), { recursive: true });
      await Deno.writeFile(
        join(dest, ".download", `${ZIP_NAME}.zip.partial`),
        zip,
      );
      const result = await downloadKaggleDataset(
        runOptions(fake, dest).options,
      );
      assert.equal(fake.storage[0].range, `bytes=${zip.length}-`);
      assert.equal(fake.storage[0].status, 416);
      assert.equal(result.bytes, 0);
      assert.equal(result.files, 7);
      await assertUnpacked(dest);
    });
  } finally {
    await fake.close();
  }
});

Deno.test("download: an MD5 mismatch (x-goog-hash) fails and leaves nothing", async () => {
  const zip = await datasetZip();
  const wrong = md5(new TextEncoder().encode("something else"), "base64");
  const fake = startFakeKaggle(zip, {
    headers: { "x-goog-hash": `crc32c=AAAAAA==,md5=${wrong}` },
  });
  try {
    await withTemp(async (dir) => {
      const dest = join(dir, "data");
      await assert.rejects(
        downloadKaggleDataset(runOptions(fake, dest).options),
        (error: Error) => {
          assert.ok(error instanceof KaggleError);
          assert.match(error.message, /MD5 mismatch/);
          assert.ok(error.message.includes(wrong));
          return true;
        },
      );
      assertNothingLeft(dest);
      assert.ok(
        !existsSync(join(dest, ".download", `${ZIP_NAME}.zip.partial`)),
      );
    });
  } finally {
    await fake.close();
  }
});

Deno.test("download: a zip with a bad CRC → clear error, nothing half-unpacked", async () => {
  // Stored (level 0) so the JPEG bytes sit verbatim in the zip; flip one.
  const zip = await datasetZip({ level: 0 });
  const victim = (await datasetFiles()).get("Training/notumor/Tr-no_0001.jpg")!;
  const at = indexOf(zip, victim);
  assert.ok(at > 0);
  zip[at + Math.floor(victim.length / 2)] ^= 0xff;
  const fake = startFakeKaggle(zip);
  try {
    await withTemp(async (dir) => {
      const dest = join(dir, "data");
      await assert.rejects(
        downloadKaggleDataset(runOptions(fake, dest).options),
        (error: Error) => {
          assert.ok(error instanceof KaggleError);
          assert.match(error.message, /CRC-32/);
          assert.match(error.message, /Training\/notumor\/Tr-no_0001\.jpg/);
          assert.match(error.message, /run again/);
          return true;
        },
      );
      assertNothingLeft(dest);
      assert.deepEqual(readdirSync(join(dest, ".download")), []);
    });
  } finally {
    await fake.close();
  }
});

Deno.test("download: a truncated zip → clear error, nothing half-unpacked", async () => {
  const full = await datasetZip();
  const truncated = full.slice(0, Math.floor(full.length * 0.6));
  const fake = startFakeKaggle(truncated);
  try {
    await withTemp(async (dir) => {
      const dest = join(dir, "data");
      await assert.rejects(
        downloadKaggleDataset(runOptions(fake, dest).options),
        /is not a valid zip archive \(End of central directory not found\)/,
      );
      assertNothingLeft(dest);
    });
  } finally {
    await fake.close();
  }
});

Deno.test("download: zip-slip entries are refused before anything is written", async () => {
  for (
    const evil of ["../evil.txt", "/tmp/evil.txt", "Training/../../evil.txt"]
  ) {
    const zip = await datasetZip({
      extra: [{ name: evil, data: new TextEncoder().encode("pwned") }],
    });
    const fake = startFakeKaggle(zip);
    try {
      await withTemp(async (dir) => {
        const dest = join(dir, "data");
        await assert.rejects(
          downloadKaggleDataset(runOptions(fake, dest).options),
          (error: Error) => {
            assert.ok(error instanceof KaggleError);
            assert.match(error.message, /unsafe path/);
            assert.ok(error.message.includes(evil), error.message);
            return true;
          },
        );
        assertNothingLeft(dest);
        assert.ok(!existsSync(join(dir, "evil.txt")));
        assert.ok(!existsSync(join(dest, "evil.txt")));
      });
    } finally {
      await fake.close();
    }
  }
});

Deno.test("download: an extra wrapper folder (and __MACOSX junk) is handled", async () => {
  const zip = await datasetZip({
    prefix: "brain-tumor-mri-dataset/",
    extra: [{ name: "__MACOSX/._junk", data: new Uint8Array([0]) }],
  });
  const fake = startFakeKaggle(zip);
  try {
    await withTemp(async (dir) => {
      const dest = join(dir, "data");
      const result = await downloadKaggleDataset(
        runOptions(fake, dest).options,
      );
      assert.equal(result.files, 7);
      await assertUnpacked(dest);
      assert.deepEqual(readdirSync(dest).sort(), [
        ".download",
        "Testing",
        "Training",
      ]);
    });
  } finally {
    await fake.close();
  }
});

Deno.test("download: a zip without Training/ and Testing/ is rejected", async () => {
  const zip = await buildZip([
    { name: "images/a.jpg", data: await tinyJpeg(1) },
  ]);
  const fake = startFakeKaggle(zip);
  try {
    await withTemp(async (dir) => {
      const dest = join(dir, "data");
      await assert.rejects(
        downloadKaggleDataset(runOptions(fake, dest).options),
        /does not have the expected layout: no Training\/ and Testing\/ folders \(top level holds: images\)/,
      );
      assertNothingLeft(dest);
    });
  } finally {
    await fake.close();
  }
});

Deno.test("download: data unpacked by hand counts as present, no credentials needed", async () => {
  await withTemp(async (dir) => {
    const dest = join(dir, "data");
    for (const [name, data] of await datasetFiles()) {
      await Deno.mkdir(dirname(join(dest, name)), { recursive: true });
      await Deno.writeFile(join(dest, name), data);
    }
    const messages: string[] = [];
    const result = await downloadKaggleDataset({
      dest,
      env: {},
      home: dir,
      log: (m) => messages.push(m),
      fetch: () => Promise.reject(new Error("must not be called")),
    });
    assert.equal(result.skipped, true);
    assert.equal(result.files, 7);
    assert.match(messages.join("\n"), /already unpacked.*by hand/s);
  });
});

// ---------------------------------------------------------------------------
// CLI

const KAGGLE_TS = join(dirname(fileURLToPath(import.meta.url)), "kaggle.ts");

Deno.test("CLI: bad flag → usage, exit 2", async () => {
  const result = await run(Deno.execPath(), {
    args: ["run", "-A", KAGGLE_TS, "--bogus"],
  });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /Unknown option '--bogus'/);
  assert.match(result.stderr, /usage: deno task data:download -- \[options\]/);
  for (const flag of ["--dest DIR", "--dataset OWNER/NAME", "--force"]) {
    assert.ok(result.stderr.includes(flag), `usage lists ${flag}`);
  }
});

Deno.test("CLI: --help prints the generated usage, exit 0", async () => {
  const result = await run(Deno.execPath(), {
    args: ["run", "-A", KAGGLE_TS, "--help"],
  });
  assert.equal(result.code, 0);
  assert.equal(result.stdout.trim(), usage(KAGGLE_CLI));
  assert.match(result.stdout, /KAGGLE_USERNAME \+ KAGGLE_KEY/);
});

Deno.test("CLI: no credentials → exit 1 with instructions, no stack trace", async () => {
  await withTemp(async (dir) => {
    const result = await run(Deno.execPath(), {
      args: ["run", "-A", KAGGLE_TS, "--dest", join(dir, "data")],
      // HOME stays (Deno's cache lives there); KAGGLE_CONFIG_DIR hides ~/.kaggle.
      env: { KAGGLE_USERNAME: "", KAGGLE_KEY: "", KAGGLE_CONFIG_DIR: dir },
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^error: No Kaggle API credentials found/m);
    assert.ok(result.stderr.includes(join(dir, "kaggle.json")));
    assert.match(result.stderr, /"Create New Token"/);
    assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
  });
});

Deno.test("CLI: downloads through KAGGLE_API_BASE with env credentials, never prints the key", async () => {
  const zip = await datasetZip();
  const fake = startFakeKaggle(zip, { redirect: "other" });
  try {
    await withTemp(async (dir) => {
      const dest = join(dir, "data");
      const result = await run(Deno.execPath(), {
        args: ["run", "-A", KAGGLE_TS, "--dest", dest, "--dataset", DATASET],
        env: {
          KAGGLE_USERNAME: USER,
          KAGGLE_KEY: KEY,
          KAGGLE_CONFIG_DIR: dir,
          KAGGLE_API_BASE: fake.apiBase,
        },
      });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /Done: 7 files in /);
      assert.ok(!(result.stdout + result.stderr).includes(KEY));
      await assertUnpacked(dest);
      assert.equal(fake.log[1].authorization, null);

      const again = await run(Deno.execPath(), {
        args: ["run", "-A", KAGGLE_TS, "--dest", dest, "--dataset", DATASET],
        env: { KAGGLE_USERNAME: "", KAGGLE_KEY: "", KAGGLE_CONFIG_DIR: dir },
      });
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /already unpacked/);
      assert.equal(fake.log.length, 2);
    });
  } finally {
    await fake.close();
  }
});

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

// ---------------------------------------------------------------------------
// Checksums of the kept zip, and --sha256 on a download

Deno.test("download: a kept zip that no longer matches its recorded SHA-256 is deleted, not unpacked", async () => {
  const zip = await datasetZip();
  await withTemp(async (dir) => {
    const dest = join(dir, "data");
    const kept = join(dest, ".download", `${ZIP_NAME}.zip`);
    await Deno.mkdir(dirname(kept), { recursive: true });
    await Deno.writeFile(kept, zip);
    const wrong = "0".repeat(64);
    await Deno.writeTextFile(`${kept}.sha256`, `${wrong}  ${ZIP_NAME}.zip\n`);
    const offline = {
      dataset: DATASET,
      dest,
      env: {},
      home: dir,
      log: () => {},
      fetch: () => Promise.reject(new Error("must not be called")),
    };
    await assert.rejects(downloadKaggleDataset(offline), (error: Error) => {
      assert.ok(error instanceof KaggleError);
      assert.ok(error.message.startsWith(`${kept}: SHA-256 mismatch`));
      assert.ok(error.message.includes(`expected ${wrong}`), error.message);
      assert.ok(error.message.includes(`(from ${kept}.sha256)`));
      assert.ok(error.message.includes(`actual ${sha256(zip)}`));
      assert.match(error.message, /deleted it, run again/);
      return true;
    });
    assertNothingLeft(dest);
    assert.ok(!existsSync(`${kept}.sha256`));

    // The same zip with the right record is unpacked offline.
    await Deno.writeFile(kept, zip);
    await Deno.writeTextFile(`${kept}.sha256`, `${sha256(zip)}  x.zip\n`);
    const result = await downloadKaggleDataset(offline);
    assert.equal(result.files, 7);
    await assertUnpacked(dest);
  });
});

Deno.test("download: --sha256 that the download does not match → deleted, names expected and actual", async () => {
  const zip = await datasetZip();
  const fake = startFakeKaggle(zip);
  try {
    await withTemp(async (dir) => {
      const dest = join(dir, "data");
      const wrong = "ab".repeat(32);
      const { options } = runOptions(fake, dest, { sha256: wrong });
      await assert.rejects(downloadKaggleDataset(options), (error: Error) => {
        assert.ok(error instanceof KaggleError);
        assert.match(error.message, /does not match its checksum/);
        assert.ok(error.message.includes(`expected ${wrong} (from --sha256)`));
        assert.ok(error.message.includes(`actual ${sha256(zip)}`));
        return true;
      });
      assertNothingLeft(dest);
      assert.deepEqual(readdirSync(join(dest, ".download")), []);
    });
  } finally {
    await fake.close();
  }
});

// ---------------------------------------------------------------------------
// --zip: a zip the user already has

Deno.test("installDatasetZip: an empty class folder is a layout error naming it; nothing installed", async () => {
  await withTemp(async (dir) => {
    const archive = join(dir, "mine.zip");
    await Deno.writeFile(
      archive,
      await buildZip([
        { name: "Training/glioma/a.jpg", data: await tinyJpeg(1) },
        { name: "Training/notumor/", directory: true },
        { name: "Testing/glioma/b.jpg", data: await tinyJpeg(2) },
      ]),
    );
    const dest = join(dir, "data");
    await assert.rejects(
      installDatasetZip({ zip: archive, dest, env: {}, log: () => {} }),
      (error: Error) => {
        assert.ok(error instanceof KaggleError);
        assert.equal(
          error.message,
          `${archive} does not have the expected layout: the class folder ` +
            `"Training/notumor" holds no files`,
        );
        return true;
      },
    );
    assertNothingLeft(dest);
    assert.ok(existsSync(archive), "the user's zip is never deleted");
  });
});

/** Runs the CLI offline: no credentials, an API base nothing listens on. */
function offlineCli(dir: string, args: string[]) {
  return run(Deno.execPath(), {
    args: ["run", "-A", KAGGLE_TS, ...args],
    env: {
      KAGGLE_USERNAME: "",
      KAGGLE_KEY: "",
      KAGGLE_CONFIG_DIR: dir,
      KAGGLE_API_BASE: "http://127.0.0.1:9/api/v1",
    },
  });
}

/** Exit 1 with one `error: …` line on stderr and no stack trace. */
function assertOneLineError(
  result: { code: number; stderr: string },
  pattern: RegExp,
): void {
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /^error: [^\n]*\n?$/, "one line");
  assert.match(result.stderr, pattern);
  assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
}

Deno.test("CLI --zip: a small real-layout zip is unpacked into --dest offline, its sidecar and --sha256 checked", async () => {
  const zip = await datasetZip();
  await withTemp(async (dir) => {
    const archive = join(dir, "brain-tumor-mri-dataset.zip");
    await Deno.writeFile(archive, zip);
    await Deno.writeTextFile(`${archive}.sha256`, `${sha256(zip)}  x.zip\n`);
    const dest = join(dir, "data");
    const result = await offlineCli(dir, [
      "--zip",
      archive,
      "--dest",
      dest,
      "--sha256",
      sha256(zip).toUpperCase(),
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "");
    assert.match(result.stdout, /SHA-256 verified/);
    assert.match(result.stdout, /Done: 7 files in /);
    await assertUnpacked(dest);
    assert.deepEqual(readdirSync(dest).sort(), [
      ".download",
      "Testing",
      "Training",
    ]);
    assert.deepEqual(readdirSync(join(dest, ".download")), [
      "brain-tumor-mri-dataset.manifest.json",
    ]);
    assert.deepEqual(await Deno.readFile(archive), zip, "the zip is untouched");

    // A later plain run sees the data complete, offline.
    const again = await offlineCli(dir, ["--dest", dest]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already unpacked in .* \(7 files\)/);
  });
});

Deno.test("CLI --zip: a checksum mismatch (sidecar, then --sha256) → exit 1 naming file, expected and actual", async () => {
  const zip = await datasetZip();
  const actual = sha256(zip);
  await withTemp(async (dir) => {
    const archive = join(dir, "mine.zip");
    await Deno.writeFile(archive, zip);
    const dest = join(dir, "data");
    const wrong = "1".repeat(64);
    await Deno.writeTextFile(`${archive}.sha256`, `${wrong}  mine.zip\n`);
    const bySidecar = await offlineCli(dir, ["--zip", archive, "--dest", dest]);
    assertOneLineError(
      bySidecar,
      new RegExp(
        `${archive}: SHA-256 mismatch: expected ${wrong} \\(from ` +
          `${archive}\\.sha256\\), actual ${actual}`,
      ),
    );
    assertNothingLeft(dest);

    await Deno.remove(`${archive}.sha256`);
    const byFlag = await offlineCli(dir, [
      "--zip",
      archive,
      "--dest",
      dest,
      "--sha256",
      wrong,
    ]);
    assertOneLineError(
      byFlag,
      new RegExp(`expected ${wrong} \\(from --sha256\\), actual ${actual}`),
    );
    assertNothingLeft(dest);
    assert.deepEqual(await Deno.readFile(archive), zip, "the zip is kept");
  });
});

Deno.test("CLI --zip: a file where a folder should be → one-line error naming the entry, no stack trace", async () => {
  await withTemp(async (dir) => {
    const archive = join(dir, "clash.zip");
    await Deno.writeFile(
      archive,
      await buildZip([
        { name: "Training", data: new TextEncoder().encode("a file") },
        { name: "Training/glioma/x.jpg", data: await tinyJpeg(1) },
        { name: "Testing/glioma/y.jpg", data: await tinyJpeg(2) },
      ]),
    );
    const dest = join(dir, "data");
    const result = await offlineCli(dir, ["--zip", archive, "--dest", dest]);
    assertOneLineError(
      result,
      /clash\.zip: entry "Training" is a file where a folder should be/,
    );
    assertNothingLeft(dest);
  });
});

Deno.test("CLI --max-unpacked-bytes: a zip unpacking to more is refused naming the entry and the cap", async () => {
  const zip = await datasetZip();
  await withTemp(async (dir) => {
    const archive = join(dir, "mine.zip");
    await Deno.writeFile(archive, zip);
    const dest = join(dir, "data");
    const result = await offlineCli(dir, [
      "--zip",
      archive,
      "--dest",
      dest,
      "--max-unpacked-bytes",
      "1000",
    ]);
    assertOneLineError(
      result,
      /mine\.zip claims to unpack to more than the cap of 1000 B in all \(at entry "[^"]+"\).*raise --max-unpacked-bytes/,
    );
    assertNothingLeft(dest);
  });
});

Deno.test("CLI: flag mistakes (--sha256 not hex, --zip with --force, a cap of 0) → usage, exit 2", async () => {
  await withTemp(async (dir) => {
    for (
      const [args, error] of [
        [["--sha256", "xyz"], /--sha256 must be 64 hex digits/],
        [["--zip", "a.zip", "--force"], /--force only applies to downloads/],
        [["--max-unpacked-bytes", "0"], /--max-unpacked-bytes must be above 0/],
      ] as const
    ) {
      const result = await offlineCli(dir, [...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, error);
      assert.match(result.stderr, /usage: deno task data:download/);
    }
  });
});

// ---------------------------------------------------------------------------
// Zip bombs, in a child process whose peak memory is watched

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const BOMB_ENTRY = "Training/glioma/Tr-gl_0001.jpg";

/**
 * A zip bomb in the dataset's layout, written straight to `path`: a tiny
 * `Testing/` and one training entry of 1 GiB of zeros, fed to the writer
 * 1 MiB at a time (the zip is about 1 MiB).
 */
async function writeZeroBomb(path: string): Promise<void> {
  const zeros = new Uint8Array(MiB);
  let sent = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= GiB) return controller.close();
      controller.enqueue(zeros);
      sent += zeros.length;
    },
  });
  using file = await Deno.open(path, { write: true, createNew: true });
  const writer = new ZipWriter(file.writable, { useWebWorkers: false });
  await writer.add(
    "Testing/glioma/Te-gl_0001.jpg",
    new Uint8ArrayReader(await tinyJpeg(1)),
  );
  await writer.add(BOMB_ENTRY, source, { uncompressedSize: GiB });
  await writer.close();
}

/** Makes the central directory claim `size` uncompressed bytes for `name`. */
function claimUncompressedSize(zip: Uint8Array, name: string, size: number) {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const wanted = new TextEncoder().encode(name);
  for (let at = zip.length - 46; at >= 0; at--) {
    if (view.getUint32(at, true) !== 0x02014b50) continue;
    const stored = zip.subarray(
      at + 46,
      at + 46 + view.getUint16(at + 28, true),
    );
    if (
      stored.every((b, i) => b === wanted[i]) && stored.length === wanted.length
    ) {
      view.setUint32(at + 24, size, true);
      return;
    }
  }
  throw new Error(`no central directory record for ${name}`);
}

/** How a child process ended, how long it took and its peak RSS. */
interface Watched {
  code: number;
  stderr: string;
  ms: number;
  /** VmHWM of the child, read from /proc while it ran, in bytes. */
  peakRss: number;
}

/** Runs the CLI in a child process, polling its peak RSS (VmHWM) as it runs. */
async function watchCli(args: string[], env: Record<string, string>) {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", KAGGLE_TS, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let peakRss = 0;
  let done = false;
  const output = child.output().finally(() => done = true);
  while (!done) {
    try {
      const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
      const kib = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
      peakRss = Math.max(peakRss, kib * 1024);
    } catch {
      // Gone already: the last reading stands.
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const { code, stderr } = await output;
  return {
    code,
    stderr: new TextDecoder().decode(stderr),
    ms: performance.now() - started,
    peakRss,
  } satisfies Watched;
}

Deno.test({
  name:
    "CLI --zip: a 1 GiB-entry zip bomb is refused within seconds naming the cap, its peak RSS under 300 MB (honest and lying headers)",
  ignore: Deno.build.os !== "linux", // reads /proc
  fn: async () => {
    await withTemp(async (dir) => {
      const honest = join(dir, "bomb.zip");
      await writeZeroBomb(honest);
      assert.ok((await Deno.stat(honest)).size < 2 * MiB);
      const lying = join(dir, "liar.zip");
      const bytes = await Deno.readFile(honest);
      claimUncompressedSize(bytes, BOMB_ENTRY, 50 * MiB); // "only" 47:1
      await Deno.writeFile(lying, bytes);
      const env = {
        KAGGLE_USERNAME: "",
        KAGGLE_KEY: "",
        KAGGLE_CONFIG_DIR: dir,
        KAGGLE_API_BASE: "http://127.0.0.1:9/api/v1",
      };
      for (
        const [archive, pattern] of [
          [honest, /claims to expand \d+:1 .* compression-ratio cap of 100:1/],
          [
            lying,
            /expands \d+:1 \(.* so far\), past the compression-ratio cap/,
          ],
        ] as const
      ) {
        const dest = join(dir, "data");
        const watched = await watchCli(["--zip", archive, "--dest", dest], env);
        assertOneLineError(watched, pattern);
        assert.ok(watched.stderr.includes(`${archive}: entry "${BOMB_ENTRY}"`));
        assert.ok(watched.ms < 15_000, `refused in ${watched.ms} ms`);
        assert.ok(watched.peakRss > 0, "the child's memory was read");
        assert.ok(
          watched.peakRss < 300e6,
          `peak RSS ${(watched.peakRss / 1e6).toFixed(0)} MB`,
        );
        assertNothingLeft(dest);
      }
    });
  },
});
