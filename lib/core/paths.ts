/**
 * The one module that knows where things live.
 *
 * Every path is resolved from this file's location, so the project works from
 * any current directory (a notebook's kernel starts in `notebooks/`, a task in
 * the project root). Environment variables override the defaults:
 *
 * | variable            | default            | what                                   |
 * | ------------------- | ------------------ | -------------------------------------- |
 * | `BRAIN_MRI_DATA`    | `<root>/data`      | dataset root (Kaggle layout or classes) |
 * | `BRAIN_MRI_MODELS`  | `<root>/models`    | trained models and run directories      |
 * | `BRAIN_MRI_REPORTS` | `<root>/reports`   | executed notebooks and HTML reports     |
 * | `BRAIN_MRI_CACHE`   | `<root>/.cache`    | preprocessed-tensor cache, downloads    |
 *
 * JSR (`jsr:@std/path`) cannot be reached from these machines, so this module
 * is built on `node:path`, which Deno ships in the runtime.
 *
 * @module
 */
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The project's root folder (the one holding `deno.json`). */
export const PROJECT_ROOT: string = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
);

/** The run folder name of the model shipped in `models/`. */
export const SHIPPED_MODEL = "resnet-128-e13";

/** Where every project path points, after environment overrides. */
export interface ProjectPaths {
  /** The project root. */
  root: string;
  /** Dataset root: `BRAIN_MRI_DATA`, else `<root>/data`. */
  data: string;
  /** Models: `BRAIN_MRI_MODELS`, else `<root>/models`. */
  models: string;
  /** Reports: `BRAIN_MRI_REPORTS`, else `<root>/reports`. */
  reports: string;
  /** Caches and downloads: `BRAIN_MRI_CACHE`, else `<root>/.cache`. */
  cache: string;
  /**
   * The model `predict`, `serve` and `evaluate` use when none is given:
   * `BRAIN_MRI_MODEL`, else the shipped `<root>/models/<SHIPPED_MODEL>`.
   */
  defaultModel: string;
  /** The notebooks folder. */
  notebooks: string;
  /** Project-local tools (the pinned `deno` binary). */
  tools: string;
  /** The npm packages (`node_modules/`, managed by Deno). */
  nodeModules: string;
  /** The project-local Python environment. */
  venv: string;
  /** The venv's Python interpreter. */
  python: string;
  /** The Jupyter data folder holding the project's kernelspec. */
  jupyterData: string;
}

/** Options for {@linkcode projectPaths}. */
export interface ProjectPathsOptions {
  /** Environment to read overrides from; defaults to `Deno.env`. */
  env?: Record<string, string | undefined>;
  /** Project root; defaults to {@linkcode PROJECT_ROOT}. */
  root?: string;
}

function readEnv(
  env: Record<string, string | undefined> | undefined,
  name: string,
): string | undefined {
  const value = env ? env[name] : Deno.env.get(name);
  return value === undefined || value.trim() === "" ? undefined : value;
}

function override(root: string, value: string | undefined, fallback: string) {
  if (value === undefined) return fallback;
  return isAbsolute(value) ? value : resolve(root, value);
}

/**
 * Resolves every project path, applying environment overrides. A relative
 * override is taken relative to the project root.
 *
 * @example Default data folder and an override
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { PROJECT_ROOT, projectPaths } from "./paths.ts";
 * const paths = projectPaths({
 *   env: { BRAIN_MRI_DATA: "/datasets/mri", BRAIN_MRI_MODELS: "runs" },
 * });
 * assert.equal(paths.data, "/datasets/mri");
 * assert.equal(paths.models, join(PROJECT_ROOT, "runs")); // relative to the root
 * assert.equal(paths.reports, join(PROJECT_ROOT, "reports")); // the default
 * assert.equal(projectPaths({ env: { BRAIN_MRI_DATA: " " } }).data, join(PROJECT_ROOT, "data"));
 * ```
 */
export function projectPaths(options: ProjectPathsOptions = {}): ProjectPaths {
  const root = options.root ?? PROJECT_ROOT;
  const env = options.env;
  const venv = join(root, ".venv");
  return {
    root,
    data: override(root, readEnv(env, "BRAIN_MRI_DATA"), join(root, "data")),
    models: override(
      root,
      readEnv(env, "BRAIN_MRI_MODELS"),
      join(root, "models"),
    ),
    reports: override(
      root,
      readEnv(env, "BRAIN_MRI_REPORTS"),
      join(root, "reports"),
    ),
    cache: override(
      root,
      readEnv(env, "BRAIN_MRI_CACHE"),
      join(root, ".cache"),
    ),
    defaultModel: override(
      root,
      readEnv(env, "BRAIN_MRI_MODEL"),
      join(root, "models", SHIPPED_MODEL),
    ),
    notebooks: join(root, "notebooks"),
    tools: join(root, ".tools"),
    nodeModules: join(root, "node_modules"),
    venv,
    python: join(venv, "bin", "python"),
    jupyterData: join(venv, "share", "jupyter"),
  };
}
