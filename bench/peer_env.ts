/**
 * The Python environment of the benchmarks' peers (Keras, PIL):
 * `.cache/bench-venv`, created on first use, with the packages each bench
 * names installed from the project's pip index (lib/tools/pip_index.ts).
 *
 * @module
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import {
  configuredIndexes,
  isolatedPipEnv,
  pipIndexArgs,
} from "../lib/tools/pip_index.ts";
import { projectPaths } from "../lib/core/paths.ts";
import { run } from "../lib/tools/proc.ts";

/** Options for {@linkcode ensurePeerEnv}. */
export interface PeerEnvOptions {
  /**
   * What must be installed: `name` (any version) or `name==version` (that
   * version exactly, as pip writes it in the `.dist-info` folder's name).
   */
  packages: readonly string[];
  /** The venv folder; defaults to `<cache>/bench-venv`. */
  venv?: string;
  /**
   * Index URLs pip installs from; defaults to the project's
   * (`configuredIndexes()`), asked only when something is missing.
   */
  indexes?: string[];
  /** The Python that creates the venv; default `python3`. */
  basePython?: string;
  /** Progress messages; default `console.error`. */
  log?: (message: string) => void;
}

/** PEP 503 normalised distribution name. */
function normalise(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}

/** `name` or `name==version`, split; throws for any other specifier. */
function parseRequirement(spec: string): { name: string; version?: string } {
  const match = spec.trim().match(
    /^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\s*==\s*([A-Za-z0-9.+!_-]+))?$/,
  );
  if (!match) {
    throw new Error(
      `bench peer environment: "${spec}" is not a package name or ` +
        "name==version",
    );
  }
  return { name: normalise(match[1]), version: match[2] };
}

/** Installed distributions of a venv: normalised name -> versions. */
function installedDistributions(venv: string): Map<string, Set<string>> {
  const found = new Map<string, Set<string>>();
  const lib = join(venv, "lib");
  if (!existsSync(lib)) return found;
  for (const py of readdirSync(lib)) {
    const site = join(lib, py, "site-packages");
    if (!existsSync(site)) continue;
    for (const entry of readdirSync(site)) {
      const match = entry.match(/^([^-]+)-(.+)\.dist-info$/);
      if (!match) continue;
      const name = normalise(match[1]);
      if (!found.has(name)) found.set(name, new Set());
      found.get(name)!.add(match[2]);
    }
  }
  return found;
}

/**
 * Of `packages` (`name` or `name==version`), the ones the venv does not hold,
 * judged by its `site-packages/*.dist-info` folders (nothing is run).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { missingPackages } from "./peer_env.ts";
 * assert.deepEqual(
 *   missingPackages("no-such-venv", ["pillow", "numpy==2.4.6"]),
 *   ["pillow", "numpy==2.4.6"],
 * );
 * ```
 */
export function missingPackages(
  venv: string,
  packages: readonly string[],
): string[] {
  const installed = installedDistributions(venv);
  return packages.filter((spec) => {
    const { name, version } = parseRequirement(spec);
    const versions = installed.get(name);
    return !versions || (version !== undefined && !versions.has(version));
  });
}

/**
 * Makes sure the benchmarks' Python venv (`.cache/bench-venv` unless `venv`
 * says otherwise) exists and holds `packages`, and returns its `python`. It
 * looks at the installed distributions first and, when all are there, does
 * nothing else (no process is started). Otherwise it creates the venv if
 * needed and pip-installs only the missing packages from the project's index
 * (lib/tools/pip_index.ts), with pip's configuration files switched off
 * (`PIP_CONFIG_FILE=/dev/null`) so that no other index, find-links folder or
 * constraint slips in.
 *
 * Creates a venv and installs packages with pip, so it is not run by
 * `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { ensurePeerEnv } from "./peer_env.ts";
 * const python = await ensurePeerEnv({
 *   packages: ["tensorflow-cpu==2.21.0", "pillow", "numpy"],
 * });
 * console.log(python); // ".../.cache/bench-venv/bin/python"
 * ```
 */
export async function ensurePeerEnv(options: PeerEnvOptions): Promise<string> {
  const venv = options.venv ?? join(projectPaths().cache, "bench-venv");
  const python = join(venv, "bin", "python");
  const missing = missingPackages(venv, options.packages);
  if (existsSync(python) && missing.length === 0) return python;
  const log = options.log ?? ((message: string) => console.error(message));
  if (!existsSync(python)) {
    const base = options.basePython ?? "python3";
    log(`creating ${venv}`);
    const made = await run(base, {
      args: ["-m", "venv", venv],
      timeoutMs: 5 * 60_000,
    });
    if (made.code !== 0) {
      throw new Error(`${base} -m venv ${venv} failed: ${made.stderr.trim()}`);
    }
  }
  if (missing.length === 0) return python;
  const indexes = options.indexes ?? await configuredIndexes();
  log(`installing ${missing.join(", ")} into ${venv} (may take minutes)`);
  const pip = await run(python, {
    args: [
      "-m",
      "pip",
      "install",
      "--disable-pip-version-check",
      "-q",
      ...pipIndexArgs(indexes),
      ...missing,
    ],
    ...(indexes.length ? { env: isolatedPipEnv(), clearEnv: true } : {}),
    timeoutMs: 30 * 60_000,
  });
  const still = missingPackages(venv, missing);
  if (pip.code !== 0 || still.length) {
    const tail = (pip.stderr || pip.stdout).trim().split("\n").slice(-5);
    const where = indexes.length ? indexes.join(" ") : "pip's default index";
    throw new Error(
      `pip install ${missing.join(" ")} from ${where} failed: ` +
        tail.join(" | "),
    );
  }
  return python;
}
