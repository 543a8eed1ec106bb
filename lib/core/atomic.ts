/**
 * Writing files atomically and durably: to a temporary file beside the
 * target, flushed to disk, then a rename (and a flush of the folder), so a
 * crash never leaves a half-written file under the real name and a finished
 * write survives a power loss.
 *
 * A write killed before its rename leaves its temporary file behind, named
 * `.<name>.<pid>.<random>.tmp`; {@linkcode removeStaleTemps} clears the ones
 * whose writer is gone.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";

/** The temporary file name a write to `<name>` uses, with its parts. */
const TEMP_NAME = /^\.(.+)\.(\d+)\.([0-9a-f]{8})\.tmp$/;

/** A temporary file untouched this long is stale even if its pid is alive. */
const STALE_AFTER_MS = 60 * 60 * 1000;

/** Writes every byte of `data`, as `write` may write only part of it. */
async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.length) done += await file.write(data.subarray(done));
}

/**
 * Flushes a folder's entries (the rename) to disk. Platforms that cannot
 * open a folder as a file (Windows) are skipped.
 */
async function syncDir(dir: string): Promise<void> {
  let handle: Deno.FsFile;
  try {
    handle = await Deno.open(dir, { read: true });
  } catch {
    return;
  }
  try {
    await handle.sync();
  } catch {
    // a folder cannot be flushed here; the rename still happened
  } finally {
    handle.close();
  }
}

/**
 * Writes bytes to `path` atomically (temporary file, flushed to disk, then a
 * rename and a flush of the folder), creating the parent folder if needed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { writeFileAtomic } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * const path = join(dir, "new", "example.bin"); // the folder is created
 * await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
 * assert.deepEqual(await Deno.readFile(path), new Uint8Array([1, 2, 3]));
 * // Nothing but the file itself is left beside it.
 * assert.deepEqual([...Deno.readDirSync(join(dir, "new"))].map((e) => e.name), [
 *   "example.bin",
 * ]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array,
): Promise<void> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true });
  const temp = join(
    dir,
    `.${basename(path)}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`,
  );
  try {
    const file = await Deno.open(temp, { write: true, createNew: true });
    try {
      await writeAll(file, data);
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
  await syncDir(dir);
}

/**
 * Writes text to `path` atomically (temporary file + rename).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { writeTextAtomic } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * const path = join(dir, "example.json");
 * await writeTextAtomic(path, JSON.stringify({ ok: true }));
 * await writeTextAtomic(path, JSON.stringify({ ok: false })); // replaced whole
 * assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), { ok: false });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function writeTextAtomic(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, new TextEncoder().encode(text));
}

/**
 * Whether process `pid` is running, where the platform shows it (`/proc`);
 * `undefined` where it cannot be told.
 */
function processAlive(pid: number): boolean | undefined {
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync("/proc/self");
  } catch {
    return undefined;
  }
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes the temporary files that writes of {@linkcode writeFileAtomic}
 * left in `dir` when they were killed before their rename: those whose
 * writing process is gone, or that nobody has touched for an hour. A write
 * still under way (its process alive, its file recent) is left alone. Returns
 * the names removed; a missing folder removes nothing.
 *
 * @example A killed writer's temporary file goes; the real file stays
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { removeStaleTemps, writeTextAtomic } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * await writeTextAtomic(join(dir, "a.json"), "{}");
 * // pid 4294967295 is never a running process.
 * await Deno.writeTextFile(join(dir, ".a.json.4294967295.0badcafe.tmp"), "{");
 * assert.deepEqual(await removeStaleTemps(dir), [".a.json.4294967295.0badcafe.tmp"]);
 * assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a.json"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return removed;
  }
  for (const e of entries) {
    const m = e.isFile ? TEMP_NAME.exec(e.name) : null;
    if (!m) continue;
    const path = join(dir, e.name);
    try {
      const age = Date.now() - (Deno.statSync(path).mtime?.getTime() ?? 0);
      if (processAlive(Number(m[2])) !== false && age < STALE_AFTER_MS) {
        continue;
      }
      await Deno.remove(path);
      removed.push(e.name);
    } catch {
      // already gone (its writer renamed it, or another run removed it)
    }
  }
  return removed.sort();
}
