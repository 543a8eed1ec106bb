import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_ROOT, projectPaths, SHIPPED_MODEL } from "./paths.ts";

Deno.test("PROJECT_ROOT is the folder holding deno.json", () => {
  assert.deepEqual(existsSync(join(PROJECT_ROOT, "deno.json")), true);
  assert.deepEqual(
    existsSync(join(PROJECT_ROOT, "lib", "core", "paths.ts")),
    true,
  );
});

Deno.test("projectPaths: defaults sit under the root", () => {
  const p = projectPaths({ env: {}, root: "/proj" });
  assert.deepEqual(p.root, "/proj");
  assert.deepEqual(p.data, "/proj/data");
  assert.deepEqual(p.models, "/proj/models");
  assert.deepEqual(p.reports, "/proj/reports");
  assert.deepEqual(p.cache, "/proj/.cache");
  assert.deepEqual(p.notebooks, "/proj/notebooks");
  assert.deepEqual(p.python, "/proj/.venv/bin/python");
  assert.deepEqual(p.jupyterData, "/proj/.venv/share/jupyter");
  assert.deepEqual(p.defaultModel, `/proj/models/${SHIPPED_MODEL}`);
});

Deno.test("projectPaths: BRAIN_MRI_MODEL picks the default model", () => {
  const p = projectPaths({ root: "/proj", env: { BRAIN_MRI_MODEL: "m/x" } });
  assert.deepEqual(p.defaultModel, "/proj/m/x");
});

Deno.test("projectPaths: environment overrides, absolute and relative", () => {
  const p = projectPaths({
    root: "/proj",
    env: {
      BRAIN_MRI_DATA: "/datasets/brain",
      BRAIN_MRI_MODELS: "elsewhere/models",
      BRAIN_MRI_REPORTS: "  ",
      BRAIN_MRI_CACHE: "/tmp/c",
    },
  });
  assert.deepEqual(p.data, "/datasets/brain");
  assert.deepEqual(p.models, "/proj/elsewhere/models");
  assert.deepEqual(p.reports, "/proj/reports", "blank means unset");
  assert.deepEqual(p.cache, "/tmp/c");
});

Deno.test("projectPaths: reads Deno.env when no env is given", () => {
  const before = Deno.env.get("BRAIN_MRI_DATA");
  try {
    Deno.env.set("BRAIN_MRI_DATA", "/from/env");
    assert.deepEqual(projectPaths().data, "/from/env");
    assert.match(projectPaths().models, /models$/);
  } finally {
    if (before === undefined) Deno.env.delete("BRAIN_MRI_DATA");
    else Deno.env.set("BRAIN_MRI_DATA", before);
  }
});
