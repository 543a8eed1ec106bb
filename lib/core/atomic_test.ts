import assert from "node:assert/strict";
import { join } from "node:path";
import {
  removeStaleTemps,
  writeFileAtomic,
  writeTextAtomic,
} from "./atomic.ts";

Deno.test("atomic: writes the content and leaves no temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "sub", "f.json");
    await writeTextAtomic(path, "one");
    await writeTextAtomic(path, "two");
    assert.equal(await Deno.readTextFile(path), "two");
    assert.deepEqual(
      [...Deno.readDirSync(join(dir, "sub"))].map((e) => e.name),
      ["f.json"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomic: a large write is complete on disk after the rename", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "big.bin");
    // 24 MB of varying bytes: more than one write call, all of it flushed.
    const data = new Uint8Array(24 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 13)) & 255;
    await writeFileAtomic(path, data);
    const back = await Deno.readFile(path);
    assert.equal(back.length, data.length);
    assert.ok(back.every((v, i) => v === data[i]), "every byte is there");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [
      "big.bin",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomic: a failed write keeps the old file intact", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "f.bin");
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    // Renaming onto a non-empty directory fails after the temp file is written.
    const blocker = join(dir, "blocked");
    await Deno.mkdir(join(blocker, "inside"), { recursive: true });
    await assert.rejects(writeFileAtomic(blocker, new Uint8Array([9])));
    assert.deepEqual(await Deno.readFile(path), new Uint8Array([1, 2, 3]));
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(
      names,
      ["blocked", "f.bin"],
      "the temp file was cleaned up",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("removeStaleTemps: removes killed writes' temp files, keeps live and other files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeTextAtomic(join(dir, "f.json"), "{}");
    const dead = ".f.json.4294967295.0badcafe.tmp"; // no such process
    const live = `.f.json.${Deno.pid}.1234abcd.tmp`; // this process, fresh
    const old = `.f.json.${Deno.pid}.deadbeef.tmp`; // this process, untouched 2 h
    const other = ".notes.tmp"; // not the writer's naming pattern
    for (const name of [dead, live, old, other]) {
      await Deno.writeTextFile(join(dir, name), "partial");
    }
    const twoHoursAgo = new Date(Date.now() - 2 * 3600 * 1000);
    await Deno.utime(join(dir, old), twoHoursAgo, twoHoursAgo);
    assert.deepEqual(await removeStaleTemps(dir), [old, dead].sort());
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      [live, other, "f.json"].sort(),
    );
    assert.deepEqual(await removeStaleTemps(dir), [], "nothing left to remove");
    assert.deepEqual(await removeStaleTemps(join(dir, "missing")), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
