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
 * import { writeFileAtomic } from "./atomic.ts";
 * await writeFileAtomic("/tmp/example.bin", new Uint8Array([1, 2, 3]));
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
 * import { writeTextAtomic } from "./atomic.ts";
 * await writeTextAtomic("/tmp/example.json", JSON.stringify({ ok: true }));
 * ```
 */
export function writeTextAtomic(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, new TextEncoder().encode(text));
}
