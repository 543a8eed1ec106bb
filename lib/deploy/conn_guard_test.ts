import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CLIENT_HEADER,
  type ConnGuardOptions,
  startConnGuard,
} from "./conn_guard.ts";
import type { RequestLogEntry } from "./request_log.ts";

interface Ctx {
  port: number;
  logs: RequestLogEntry[];
  /** What the server behind the guard saw: method, path, body, client field. */
  seen: { method: string; path: string; body: string; client: string }[];
}

/**
 * A real `Deno.serve` on a Unix socket (echoing what it got; `/slow` answers
 * after 300 ms) behind a guard on a free loopback port.
 */
async function withGuard(
  options: Partial<ConnGuardOptions>,
  body: (ctx: Ctx) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "conn_guard_test_" });
  const upstreamPath = join(dir, "http.sock");
  const seen: Ctx["seen"] = [];
  const server = Deno.serve(
    { path: upstreamPath, onListen: () => {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      const text = await req.text();
      seen.push({
        method: req.method,
        path,
        body: text,
        client: req.headers.get(CLIENT_HEADER) ?? "",
      });
      if (path === "/slow") await new Promise((r) => setTimeout(r, 300));
      return Response.json({ path, length: text.length });
    },
  );
  const logs: RequestLogEntry[] = [];
  const guard = startConnGuard({
    hostname: "127.0.0.1",
    port: 0,
    upstreamPath,
    log: (entry) => logs.push(entry),
    ...options,
  });
  try {
    await body({ port: guard.addr.port, logs, seen });
  } finally {
    await guard.shutdown();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

const enc = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw connection to the guard. */
async function connect(port: number): Promise<Deno.TcpConn> {
  return await Deno.connect({ hostname: "127.0.0.1", port });
}

/**
 * Reads until the guard closes the connection (or `limitMs` passes, then
 * gives up): everything read and when the close came.
 */
async function readToClose(
  conn: Deno.Conn,
  limitMs = 10_000,
): Promise<{ text: string; seconds: number; closed: boolean }> {
  const t0 = performance.now();
  const guard = setTimeout(() => conn.close(), limitMs);
  const buf = new Uint8Array(64 * 1024);
  let text = "";
  let closed = false;
  try {
    while (true) {
      const n = await conn.read(buf);
      if (n === null) {
        closed = true;
        break;
      }
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
  } catch {
    // closed by the time limit (or reset by the guard)
    closed = performance.now() - t0 < limitMs - 50;
  } finally {
    clearTimeout(guard);
    try {
      conn.close();
    } catch {
      // closed already
    }
  }
  return { text, seconds: (performance.now() - t0) / 1000, closed };
}

/**
 * Reads `count` whole answers (heads and Content-Length bodies; the answers
 * at the indices `heads` are to HEAD requests: no body).
 */
async function readAnswers(
  conn: Deno.Conn,
  count: number,
  heads: number[] = [],
): Promise<string[]> {
  const buf = new Uint8Array(64 * 1024);
  let text = "";
  const answers: string[] = [];
  while (answers.length < count) {
    const end = text.indexOf("\r\n\r\n");
    const length = heads.includes(answers.length)
      ? 0
      : Number(text.match(/content-length: *(\d+)/i)?.[1]);
    if (end >= 0 && text.length >= end + 4 + length) {
      answers.push(text.slice(0, end + 4 + length));
      text = text.slice(end + 4 + length);
      continue;
    }
    const n = await conn.read(buf);
    if (n === null) throw new Error(`closed after ${answers.length} answers`);
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  return answers;
}

const status = (answer: string) => Number(answer.slice(9, 12));
const json = (answer: string) =>
  JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));

Deno.test("conn guard: half a request line is answered 408 and closed within the header timeout", async () => {
  await withGuard({ headerTimeoutMs: 500 }, async (ctx) => {
    const conn = await connect(ctx.port);
    await conn.write(enc.encode("POST /pre"));
    const { text, seconds, closed } = await readToClose(conn);
    assert.ok(closed);
    assert.ok(seconds >= 0.45 && seconds < 1.5, `${seconds} s`);
    assert.equal(status(text), 408);
    assert.match(text, /\r\nconnection: close\r\n/);
    assert.deepEqual(json(text), {
      error: "the request head did not arrive within 0.5 s",
    });
    assert.equal(ctx.seen.length, 0);
    assert.equal(ctx.logs.length, 1);
    assert.equal(ctx.logs[0].status, 408);
    assert.equal(ctx.logs[0].bytes, 9);
    assert.match(ctx.logs[0].client!, /^127\.0\.0\.1:\d+$/);
  });
});

Deno.test("conn guard: a client that sends nothing is closed after the header timeout", async () => {
  await withGuard({ headerTimeoutMs: 500 }, async (ctx) => {
    const { text, seconds, closed } = await readToClose(
      await connect(ctx.port),
    );
    assert.ok(closed);
    assert.equal(text, "");
    assert.ok(seconds >= 0.45 && seconds < 1.5, `${seconds} s`);
  });
});

Deno.test("conn guard: a slow client trickling its head byte by byte is cut at the header timeout", async () => {
  await withGuard({ headerTimeoutMs: 500 }, async (ctx) => {
    const conn = await connect(ctx.port);
    const t0 = performance.now();
    const trickle = (async () => {
      for (const byte of enc.encode("GET /health HTTP/1.1\r\nHost: x\r\n")) {
        await sleep(100);
        try {
          await conn.write(new Uint8Array([byte]));
        } catch {
          return; // cut
        }
      }
    })();
    const { text, closed } = await readToClose(conn);
    const seconds = (performance.now() - t0) / 1000;
    await trickle;
    assert.ok(closed);
    assert.equal(status(text), 408);
    // The first byte went at 0.1 s: cut 0.5 s later, not after the 3.2 s the
    // whole head would take.
    assert.ok(seconds >= 0.5 && seconds < 1.7, `${seconds} s`);
  });
});

Deno.test("conn guard: keep-alive requests on one connection are not cut; an idle one is closed after the idle timeout", async () => {
  await withGuard({ headerTimeoutMs: 400, idleTimeoutMs: 600 }, async (ctx) => {
    const conn = await connect(ctx.port);
    // Six requests 300 ms apart: 1.8 s, longer than either timeout.
    for (let i = 0; i < 6; i++) {
      await conn.write(
        enc.encode(`GET /r${i} HTTP/1.1\r\nHost: x\r\n\r\n`),
      );
      const [answer] = await readAnswers(conn, 1);
      assert.equal(status(answer), 200);
      assert.equal(json(answer).path, `/r${i}`);
      await sleep(300);
    }
    // A request to /slow takes 300 ms to answer: not idle meanwhile.
    await conn.write(enc.encode("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.equal(status((await readAnswers(conn, 1))[0]), 200);
    const { text, seconds, closed } = await readToClose(conn);
    assert.ok(closed);
    assert.equal(text, "", "nothing is sent on an idle close");
    assert.ok(seconds >= 0.55 && seconds < 1.6, `${seconds} s`);
    assert.equal(ctx.seen.length, 7);
    assert.deepEqual(ctx.logs, []);
  });
});

Deno.test("conn guard: pipelined requests, a chunked POST, and the client's address passed on", async () => {
  await withGuard({ headerTimeoutMs: 2000 }, async (ctx) => {
    const conn = await connect(ctx.port);
    await conn.write(enc.encode(
      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
        "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" +
        `${CLIENT_HEADER}: 6.6.6.6:1\r\n\r\n` +
        "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n" +
        "HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n" +
        "GET /d HTTP/1.1\r\nHost: x\r\n\r\n",
    ));
    const answers = await readAnswers(conn, 4, [2]);
    assert.deepEqual(answers.map(status), [200, 200, 200, 200]);
    assert.deepEqual(json(answers[0]), { path: "/a", length: 5 });
    assert.deepEqual(json(answers[1]), { path: "/b", length: 7 });
    // The HEAD answer has a Content-Length and no body: the GET's follows.
    assert.match(answers[2], /content-length: \d+\r\n/);
    assert.deepEqual(json(answers[3]), { path: "/d", length: 0 });
    conn.close();
    assert.deepEqual(ctx.seen.map((s) => s.body), ["hello", "abcdefg", "", ""]);
    const { port } = conn.localAddr as Deno.NetAddr;
    for (const s of ctx.seen) assert.equal(s.client, `127.0.0.1:${port}`);
  });
});

Deno.test("conn guard: a chunked POST split across writes, with pauses, arrives whole", async () => {
  await withGuard({ headerTimeoutMs: 2000 }, async (ctx) => {
    const conn = await connect(ctx.port);
    const pieces = [
      "POST /up HTTP/1.1\r\nHo",
      "st: x\r\nTransfer-Encoding: chunked\r\n\r",
      "\na\r\n0123",
      "456789\r",
      "\n0\r\n\r\n",
    ];
    for (const piece of pieces) {
      await conn.write(enc.encode(piece));
      await sleep(50);
    }
    const [answer] = await readAnswers(conn, 1);
    assert.deepEqual(json(answer), { path: "/up", length: 10 });
    conn.close();
  });
});

Deno.test("conn guard: a 20 KiB head gets 431; ambiguous framing gets 400; both are logged", async () => {
  await withGuard({}, async (ctx) => {
    const big = await connect(ctx.port);
    await big.write(enc.encode(
      `GET /x HTTP/1.1\r\nHost: x\r\nX-Pad: ${"a".repeat(20 * 1024)}\r\n\r\n`,
    ));
    const tooBig = await readToClose(big);
    assert.equal(status(tooBig.text), 431);
    assert.match(json(tooBig.text).error, /larger than 16384 bytes/);
    const both = await connect(ctx.port);
    await both.write(enc.encode(
      "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n" +
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ));
    const ambiguous = await readToClose(both);
    assert.equal(status(ambiguous.text), 400);
    assert.match(json(ambiguous.text).error, /both Content-Length and/);
    assert.equal(ctx.seen.length, 0);
    assert.deepEqual(ctx.logs.map((l) => [l.status, l.method, l.path]), [
      [431, "GET", "/x"],
      [400, "POST", "/x"],
    ]);
  });
});

Deno.test("conn guard: connections over the cap get 503 with Retry-After; closed ones free their place", async () => {
  await withGuard({ maxConnections: 2 }, async (ctx) => {
    const held = [await connect(ctx.port), await connect(ctx.port)];
    await sleep(100);
    const third = await readToClose(await connect(ctx.port));
    assert.equal(status(third.text), 503);
    assert.match(third.text, /\r\nretry-after: 1\r\n/);
    assert.match(json(third.text).error, /too many open connections/);
    held[0].close();
    await sleep(100);
    const again = await connect(ctx.port);
    await again.write(enc.encode("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.equal(status((await readAnswers(again, 1))[0]), 200);
    again.close();
    held[1].close();
  });
});

Deno.test("conn guard: refuses bad timeouts and caps", () => {
  assert.throws(
    () =>
      startConnGuard({
        hostname: "127.0.0.1",
        port: 0,
        upstreamPath: "x",
        headerTimeoutMs: 0,
      }),
    /headerTimeoutMs must be a positive number/,
  );
  assert.throws(
    () =>
      startConnGuard({
        hostname: "127.0.0.1",
        port: 0,
        upstreamPath: "x",
        maxConnections: 0,
      }),
    /maxConnections must be a positive integer/,
  );
});
