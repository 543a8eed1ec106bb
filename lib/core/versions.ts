/**
 * Versions of everything that shapes a result, for manifests and the setup
 * check.
 *
 * @module
 */
import { join } from "node:path";
import sharp from "sharp";
import { projectPaths } from "./paths.ts";
import { tfInfo } from "./tf.ts";

/** Component → version. */
export type Versions = Record<string, string>;

/**
 * Versions of Deno, V8, TypeScript, tfjs-node, libtensorflow, the active
 * backend, sharp, libvips and plotly.js.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { versions } from "./versions.ts";
 * const v = versions();
 * assert.equal(v.deno, Deno.version.deno);
 * assert.equal(v.backend, "tensorflow");
 * for (const key of ["tfjs-node", "libtensorflow", "sharp", "libvips", "plotly.js"]) {
 *   assert.match(v[key], /^\d+\.\d+/, key);
 * }
 * ```
 */
export function versions(): Versions {
  const info = tfInfo();
  const plotly = JSON.parse(
    Deno.readTextFileSync(
      join(projectPaths().nodeModules, "plotly.js-dist", "package.json"),
    ),
  ).version as string;
  return {
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    "tfjs-node": info.tfjs["tfjs-node"] ?? "unknown",
    libtensorflow: info.libtensorflow,
    backend: info.backend,
    sharp: sharp.versions.sharp ?? "unknown",
    libvips: sharp.versions.vips,
    "plotly.js": plotly,
  };
}
