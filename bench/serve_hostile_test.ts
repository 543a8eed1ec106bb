import assert from "node:assert/strict";
import sharp from "sharp";
import {
  forgeJpegSize,
  hostileBodies,
  runHostileClient,
  sampleRss,
  treeRssMb,
  truncateJpeg,
} from "./serve_hostile.ts";

/** A real JPEG made by sharp: a grey square `side` pixels a side. */
async function greyJpeg(side: number): Promise<Uint8Array> {
  const grey = {
    width: side,
    height: side,
    channels: 3 as const,
    background: { r: 90, g: 90, b: 90 },
  };
  return new Uint8Array(await sharp({ create: grey }).jpeg().toBuffer());
}

Deno.test("serve_hostile: a forged frame header is what a decoder reads; a truncated scan ends as a JPEG", async () => {
  const jpeg = await greyJpeg(64);
  const forged = forgeJpegSize(jpeg, 65500, 65500);
  const meta = await sharp(forged, { limitInputPixels: false }).metadata();
  assert.equal(meta.width, 65500);
  assert.equal(meta.height, 65500);
  assert.equal(forged.length, jpeg.length);
  const cut = truncateJpeg(jpeg);
  assert.equal(cut.length, Math.floor(jpeg.length / 2) + 2);
  assert.deepEqual([...cut.subarray(-2)], [0xff, 0xd9]);
  assert.deepEqual([...cut.subarray(0, 3)], [0xff, 0xd8, 0xff]);
});

Deno.test("serve_hostile: the hostile bodies, with a PNG of the side asked for", async () => {
  const scan = await greyJpeg(32);
  const bodies = await hostileBodies(scan, 300);
  const png = await sharp(bodies.largePng).metadata();
  assert.equal(png.format, "png");
  assert.equal(png.width, 300);
  assert.equal(png.height, 300);
  assert.equal(
    (await sharp(bodies.forged, { limitInputPixels: false }).metadata()).width,
    65500,
  );
  assert.equal(bodies.scan, scan);
});

Deno.test("serve_hostile: request kinds tally the server's statuses, `Host: [` included", async () => {
  const hosts: (string | null)[] = [];
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    async (req) => {
      hosts.push(req.headers.get("host"));
      await req.arrayBuffer();
      return new Response("{}", { status: 400 });
    },
  );
  try {
    const { port } = server.addr;
    const target = {
      url: `http://127.0.0.1:${port}`,
      hostname: "127.0.0.1",
      port,
    };
    const bodies = await hostileBodies(await greyJpeg(32), 100);
    const until = performance.now() + 400;
    const [forged, badHost] = await Promise.all([
      runHostileClient({ kind: "forged-size", target, bodies, until }),
      runHostileClient({ kind: "bad-host", target, bodies, until }),
    ]);
    for (const tally of [forged, badHost]) {
      assert.ok(tally.attempts >= 2, `${tally.attempts} attempts`);
      assert.deepEqual(tally.outcomes, { "400": tally.attempts });
    }
    assert.ok(hosts.includes("["));
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve_hostile: connection kinds tell a server that closes from one that never does", async () => {
  const closing = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const holding = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const serveClosing = (async () => {
    for await (const conn of closing) {
      setTimeout(() => conn.close(), 300);
    }
  })();
  const serveHolding = (async () => {
    for await (const conn of holding) held.push(conn);
  })();
  try {
    const bodies = await hostileBodies(await greyJpeg(32), 100);
    const at = (l: Deno.TcpListener) => ({
      url: `http://127.0.0.1:${l.addr.port}`,
      hostname: "127.0.0.1",
      port: l.addr.port,
    });
    const until = performance.now() + 1200;
    const [slow, idle] = await Promise.all([
      runHostileClient({
        kind: "slow-headers",
        target: at(closing),
        bodies,
        until,
      }),
      runHostileClient({ kind: "idle", target: at(holding), bodies, until }),
    ]);
    assert.ok(slow.outcomes.closed >= 2, JSON.stringify(slow));
    for (const s of slow.secondsToClose) assert.ok(s >= 0.25 && s < 1, `${s}`);
    assert.deepEqual(idle.outcomes, { "open at end": 1 });
    assert.deepEqual(idle.secondsToClose, []);
  } finally {
    closing.close();
    holding.close();
    for (const c of held) c.close();
    await Promise.allSettled([serveClosing, serveHolding]);
  }
});

Deno.test("serve_hostile: resident memory of this process, sampled", async () => {
  const now = treeRssMb(Deno.pid);
  assert.ok(now > 1, `${now} MB`);
  const sampler = sampleRss(Deno.pid, 20);
  await new Promise((r) => setTimeout(r, 150));
  const { peakMb, lastMb, samples } = sampler.stop();
  assert.ok(samples >= 3, `${samples} samples`);
  assert.ok(peakMb >= lastMb && lastMb > 1);
});
