/**
 * Writing files atomically: to a temporary file beside the target, then a
 * rename, so a crash never leaves a half-written file under the real name.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";

/**
 * Writes bytes to `path` atomically (temporary file + rename), creating the
 * parent folder if needed.
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
    await Deno.writeFile(temp, data);
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
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
