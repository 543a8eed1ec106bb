import assert from "node:assert/strict";
import { join } from "node:path";
import { writeFileAtomic, writeTextAtomic } from "./atomic.ts";

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
