import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  TextReader,
  Uint8ArrayReader,
  Uint8ArrayWriter,
  ZipWriter,
} from "@zip.js/zip.js";
import { UNZIP_LIMITS, UnzipError, unzipFile } from "./unzip.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

// ---------------------------------------------------------------------------
// Fixtures, all made at test time.

interface Item {
  name: string;
  text?: string;
  directory?: boolean;
  unixMode?: number;
}

async function zipOf(items: Item[], level = 6): Promise<Uint8Array> {
  const writer = new ZipWriter(new Uint8ArrayWriter(), {
    useWebWorkers: false,
    level,
  });
  for (const { name, text, directory, unixMode } of items) {
    if (directory) await writer.add(name, undefined, { directory: true });
    else {
      await writer.add(name, new TextReader(text ?? name), { unixMode });
    }
  }
  return await writer.close();
}

/**
 * A zip bomb written straight to `path`: one entry of `bytes` zeros, fed to
 * the writer 1 MiB at a time so that neither the test nor the zip is big
 * (1 GiB deflates to about 1 MiB).
 */
async function writeZeroBomb(path: string, bytes: number): Promise<void> {
  const zeros = new Uint8Array(MiB);
  let sent = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= bytes) return controller.close();
      const size = Math.min(zeros.length, bytes - sent);
      controller.enqueue(zeros.subarray(0, size));
      sent += size;
    },
  });
  using file = await Deno.open(path, { write: true, createNew: true });
  const writer = new ZipWriter(file.writable, { useWebWorkers: false });
  await writer.add("Testing/glioma/Te-gl_0001.jpg", new TextReader("jpeg"));
  await writer.add("Training/glioma/bomb.jpg", source, {
    uncompressedSize: bytes,
  });
  await writer.close();
}

/**
 * Rewrites the uncompressed size the central directory claims for an entry
 * (a lying header: the data inflates to more).
 */
function claimUncompressedSize(
  zip: Uint8Array,
  name: string,
  size: number,
): void {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const wanted = new TextEncoder().encode(name);
  for (let at = zip.length - 46; at >= 0; at--) {
    if (view.getUint32(at, true) !== 0x02014b50) continue;
    const length = view.getUint16(at + 28, true);
    const stored = zip.subarray(at + 46, at + 46 + length);
    if (
      stored.length === wanted.length && stored.every((b, i) => b === wanted[i])
    ) {
      view.setUint32(at + 24, size, true);
      return;
    }
  }
  throw new Error(`no central directory record for ${name}`);
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "unzip_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Bytes of every file under `dir` (0 when it does not exist). */
async function bytesUnder(dir: string): Promise<number> {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    total += entry.isDirectory
      ? await bytesUnder(path)
      : (await Deno.stat(path)).size;
  }
  return total;
}

/** Expects `unzipFile` to refuse, with a one-line message; returns the error. */
async function refused(
  promise: Promise<unknown>,
  check: (error: UnzipError) => void,
): Promise<void> {
  await assert.rejects(promise, (error: Error) => {
    assert.ok(error instanceof UnzipError, String(error));
    assert.doesNotMatch(error.message, /\n/, "one line");
    check(error);
    return true;
  });
}

// ---------------------------------------------------------------------------
// Caps

Deno.test("unzipFile: a 1 GiB entry of zeros (a 1 MiB zip bomb) is refused from its header, naming the cap", async () => {
  await withTemp(async (dir) => {
    const archive = join(dir, "bomb.zip");
    await writeZeroBomb(archive, GiB);
    assert.ok((await Deno.stat(archive)).size < 2 * MiB);
    const into = join(dir, "out");
    const started = performance.now();
    await refused(unzipFile({ archive, into }), (error) => {
      assert.equal(error.cap, "maxRatio");
      assert.equal(error.archive, archive);
      assert.equal(error.entry, "Training/glioma/bomb.jpg");
      assert.ok(error.message.startsWith(`${archive}: `), error.message);
      assert.match(error.message, /"Training\/glioma\/bomb\.jpg"/);
      assert.match(error.message, /claims to expand \d+:1/);
      assert.match(error.message, /compression-ratio cap of 100:1/);
    });
    assert.ok(performance.now() - started < 5_000, "refused within seconds");
    assert.equal(await bytesUnder(into), 0, "nothing written");
  });
});

Deno.test("unzipFile: a bomb whose header understates its size is refused while it streams", async () => {
  await withTemp(async (dir) => {
    const honest = join(dir, "honest.zip");
    await writeZeroBomb(honest, GiB);
    const zip = await Deno.readFile(honest);
    // 50 MiB from ~1 MiB: 47:1, under the cap as far as the header goes.
    claimUncompressedSize(zip, "Training/glioma/bomb.jpg", 50 * MiB);
    const archive = join(dir, "liar.zip");
    await Deno.writeFile(archive, zip);
    const into = join(dir, "out");
    const started = performance.now();
    await refused(unzipFile({ archive, into }), (error) => {
      assert.equal(error.cap, "maxRatio");
      assert.match(error.message, /expands \d+:1 \(.* so far\)/);
      assert.match(error.message, /"Training\/glioma\/bomb\.jpg"/);
    });
    assert.ok(performance.now() - started < 5_000, "refused within seconds");
    const written = await bytesUnder(into);
    assert.ok(written < 16 * MiB, `stopped early: ${written} bytes written`);
  });
});

Deno.test("unzipFile: a 20 MiB entry of zeros — under every size cap — is refused by the ratio cap alone", async () => {
  await withTemp(async (dir) => {
    const archive = join(dir, "ratio.zip");
    await writeZeroBomb(archive, 20 * MiB);
    const into = join(dir, "out");
    await refused(unzipFile({ archive, into }), (error) => {
      assert.equal(error.cap, "maxRatio");
      assert.match(error.message, /\(\d+\.\d KiB → 20\.0 MiB\)/);
    });
    assert.equal(await bytesUnder(into), 0);
    // The same entry is fine once the ratio cap is lifted: only the cap
    // refused it.
    const ok = await unzipFile({ archive, into, limits: { maxRatio: 1e6 } });
    assert.equal(ok.bytes, 20 * MiB + 4);
  });
});

Deno.test("unzipFile: the 1 GiB bomb with the ratio cap lifted is refused by maxUnpackedBytes, from its header", async () => {
  await withTemp(async (dir) => {
    const archive = join(dir, "bomb.zip");
    await writeZeroBomb(archive, GiB);
    const into = join(dir, "out");
    await refused(
      unzipFile({
        archive,
        into,
        limits: { maxRatio: 1e6, maxUnpackedBytes: 500 * MiB },
      }),
      (error) => {
        assert.equal(error.cap, "maxUnpackedBytes");
        assert.equal(error.entry, "Training/glioma/bomb.jpg");
        assert.match(
          error.message,
          /claims to unpack to more than the cap of 500\.0 MiB in all/,
        );
      },
    );
    assert.equal(await bytesUnder(into), 0);
  });
});

Deno.test("unzipFile: more unpacked bytes than maxUnpackedBytes → refused before writing, naming entry and cap", async () => {
  await withTemp(async (dir) => {
    const archive = join(dir, "a.zip");
    await Deno.writeFile(
      archive,
      await zipOf([
        { name: "Training/a/1.jpg", text: "x".repeat(600) },
        { name: "Training/a/2.jpg", text: "y".repeat(600) },
      ]),
    );
    const into = join(dir, "out");
    await refused(
      unzipFile({ archive, into, limits: { maxUnpackedBytes: 1000 } }),
      (error) => {
        assert.equal(error.cap, "maxUnpackedBytes");
        assert.equal(error.entry, "Training/a/2.jpg");
        assert.match(error.message, /more than the cap of 1000 B in all/);
      },
    );
    assert.equal(await bytesUnder(into), 0);
    const ok = await unzipFile({
      archive,
      into,
      limits: { maxUnpackedBytes: 1200 },
    });
    assert.deepEqual(ok, { files: 2, bytes: 1200 });
  });
});

Deno.test("unzipFile: more entries than maxEntries → refused from the end record", async () => {
  await withTemp(async (dir) => {
    const archive = join(dir, "many.zip");
    const items = Array.from({ length: 12 }, (_, i) => ({ name: `f${i}.txt` }));
    await Deno.writeFile(archive, await zipOf(items));
    await refused(
      unzipFile({
        archive,
        into: join(dir, "out"),
        limits: { maxEntries: 10 },
      }),
      (error) => {
        assert.equal(error.cap, "maxEntries");
        assert.match(
          error.message,
          /holds 12 entries, more than the cap of 10/,
        );
      },
    );
    assert.equal(await bytesUnder(join(dir, "out")), 0);
    assert.ok(UNZIP_LIMITS.maxEntries >= 10_000, "room for the real dataset");
  });
});

Deno.test("unzipFile: a large entry that compresses like a JPEG is not a bomb", async () => {
  await withTemp(async (dir) => {
    // Random bytes do not compress: 6 MiB stays about 6 MiB.
    const data = new Uint8Array(6 * MiB);
    for (let at = 0; at < data.length; at += 65_536) {
      crypto.getRandomValues(data.subarray(at, at + 65_536));
    }
    const writer = new ZipWriter(new Uint8ArrayWriter(), {
      useWebWorkers: false,
    });
    await writer.add("Training/a/big.jpg", new Uint8ArrayReader(data));
    const archive = join(dir, "big.zip");
    await Deno.writeFile(archive, await writer.close());
    const into = join(dir, "out");
    assert.deepEqual(await unzipFile({ archive, into }), {
      files: 1,
      bytes: data.length,
    });
    assert.deepEqual(
      await Deno.readFile(join(into, "Training/a/big.jpg")),
      data,
    );
  });
});

// ---------------------------------------------------------------------------
// Names and layout

Deno.test("unzipFile: a file where a folder should be → one-line error naming both entries, nothing written", async () => {
  await withTemp(async (dir) => {
    const archive = join(dir, "clash.zip");
    await Deno.writeFile(
      archive,
      await zipOf([
        { name: "Training", text: "not a folder" },
        { name: "Training/glioma/x.jpg" },
      ]),
    );
    const into = join(dir, "out");
    await refused(unzipFile({ archive, into }), (error) => {
      assert.equal(error.entry, "Training");
      assert.equal(
        error.message,
        `${archive}: entry "Training" is a file where a folder should be ` +
          `("Training/glioma/x.jpg" is inside it); refusing to unpack it`,
      );
    });
    assert.ok(!existsSync(into), "checked before anything is written");
  });
});

Deno.test("unzipFile: symbolic links and unsafe paths are refused before anything is written", async () => {
  await withTemp(async (dir) => {
    const link = join(dir, "link.zip");
    await Deno.writeFile(
      link,
      await zipOf([
        { name: "Training/a/ok.jpg" },
        { name: "Training/a/x.jpg", text: "/etc/passwd", unixMode: 0o120777 },
      ]),
    );
    await refused(unzipFile({ archive: link, into: join(dir, "l") }), (e) => {
      assert.equal(e.entry, "Training/a/x.jpg");
      assert.match(e.message, /is a symbolic link; refusing to unpack it$/);
    });
    assert.ok(!existsSync(join(dir, "l")));
    for (const evil of ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"]) {
      const archive = join(dir, "evil.zip");
      await Deno.writeFile(archive, await zipOf([{ name: evil }]));
      await refused(unzipFile({ archive, into: join(dir, "e") }), (e) => {
        assert.match(e.message, /unsafe path/);
        assert.ok(e.message.includes(evil), e.message);
      });
      assert.ok(!existsSync(join(dir, "evil.txt")));
      assert.ok(!existsSync(join(dir, "e")));
      await Deno.remove(archive);
    }
  });
});

Deno.test("unzipFile: control characters in a name stay escaped, the message one line", async () => {
  await withTemp(async (dir) => {
    const archive = join(dir, "ctl.zip");
    await Deno.writeFile(
      archive,
      await zipOf([
        { name: "Training/a\nb", text: "file" },
        { name: "Training/a\nb/c.jpg" },
      ]),
    );
    await refused(unzipFile({ archive, into: join(dir, "out") }), (e) => {
      assert.ok(e.message.includes(`"Training/a\\nb"`), e.message);
    });
  });
});

// ---------------------------------------------------------------------------
// Corruption

Deno.test("unzipFile: corrupt compressed data → error naming the entry, not a crash", async () => {
  await withTemp(async (dir) => {
    const zip = await zipOf([{
      name: "Training/a/x.jpg",
      text: "ab".repeat(5000),
    }]);
    // Garble the middle of the deflate stream (the entry's data follows its
    // 30-byte local header and name).
    const start = 30 + "Training/a/x.jpg".length;
    for (let i = start + 2; i < start + 12; i++) zip[i] ^= 0x5a;
    const archive = join(dir, "bad.zip");
    await Deno.writeFile(archive, zip);
    await refused(unzipFile({ archive, into: join(dir, "out") }), (e) => {
      assert.equal(e.entry, "Training/a/x.jpg");
      assert.ok(
        e.message.startsWith(`${archive} is corrupt: entry `),
        e.message,
      );
    });
  });
});

Deno.test("unzipFile: an entry whose offset points at no local header, or whose data runs past the end → corrupt, naming it", async () => {
  await withTemp(async (dir) => {
    const name = "Training/a/x.jpg";
    for (
      const [patch, why] of [
        [
          (view: DataView, at: number) => view.setUint32(at + 42, 1, true),
          /has no local header/,
        ],
        [
          (view: DataView, at: number) => view.setUint32(at + 20, 1e6, true),
          /runs past the end of the archive/,
        ],
      ] as const
    ) {
      const zip = await zipOf([{ name, text: "ab".repeat(500) }]);
      const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
      let at = zip.length - 46;
      while (view.getUint32(at, true) !== 0x02014b50) at--;
      patch(view, at); // the central directory's offset or compressed size
      const archive = join(dir, "bad.zip");
      await Deno.writeFile(archive, zip);
      await refused(unzipFile({ archive, into: join(dir, "out") }), (e) => {
        assert.equal(e.entry, name);
        assert.match(e.message, why);
      });
      await Deno.remove(join(dir, "out"), { recursive: true }).catch(() => {});
    }
  });
});

Deno.test("unzipFile: not a zip, or no file at all → one-line error naming it", async () => {
  await withTemp(async (dir) => {
    const archive = join(dir, "not.zip");
    await Deno.writeTextFile(archive, "hello, I am text");
    await refused(unzipFile({ archive, into: join(dir, "out") }), (e) => {
      assert.match(e.message, /not\.zip is not a valid zip archive/);
    });
    await refused(
      unzipFile({ archive: join(dir, "missing.zip"), into: join(dir, "out") }),
      (e) =>
        assert.match(
          e.message,
          /missing\.zip: cannot read it \(no such file\)/,
        ),
    );
  });
});
