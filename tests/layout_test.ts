import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { PROJECT_ROOT } from "../lib/core/paths.ts";

// lib/ is laid out like the pipeline. Each stage may import only the stages
// before it: core first, then data and model (side by side, never importing
// each other), then train and evaluate (likewise), then deploy, then the
// notebook views. lib/tools/ (set-up and developer tooling) may use the
// product, but the product never imports it.
const STAGES: Record<string, number> = {
  core: 0,
  data: 1,
  model: 1,
  train: 2,
  evaluate: 2,
  deploy: 3,
  views: 4,
};
const TOOLS = "tools";
const LIB = join(PROJECT_ROOT, "lib");

/** Every module of lib/ (tests excluded), as paths relative to lib/. */
function modules(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".ts") && !name.endsWith("_test.ts")) {
        out.push(relative(LIB, path));
      }
    }
  };
  walk(LIB);
  return out;
}

/** The relative modules a source file imports (comments stripped). */
function importsOf(file: string): string[] {
  const source = readFileSync(join(LIB, file), "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "");
  const found = new Set<string>();
  const patterns = [
    /^\s*(?:import|export)\b[^;]*?\bfrom\s+"(\.[^"]+\.ts)"/gms,
    /\bimport\(\s*"(\.[^"]+\.ts)"\s*\)/g,
    /^\s*import\s+"(\.[^"]+\.ts)"/gm,
  ];
  for (const pattern of patterns) {
    for (const m of source.matchAll(pattern)) {
      found.add(relative(LIB, resolve(dirname(join(LIB, file)), m[1])));
    }
  }
  return [...found];
}

const folderOf = (module: string) => module.split("/")[0];

Deno.test("layout: every module of lib/ sits in a stage folder or tools/", () => {
  const misplaced = modules().filter((m) => {
    const folder = folderOf(m);
    return !(folder in STAGES || folder === TOOLS) || !m.includes("/");
  });
  assert.deepEqual(misplaced, []);
});

Deno.test("layout: each folder opens with a mod.ts whose module doc lists and exports its modules", () => {
  for (const folder of [...Object.keys(STAGES), TOOLS]) {
    const modPath = join(LIB, folder, "mod.ts");
    assert.ok(existsSync(modPath), `lib/${folder}/mod.ts is missing`);
    const mod = readFileSync(modPath, "utf8");
    assert.match(mod, /^\/\*\*[\s\S]*?@module[\s\S]*?\*\//, `${folder}/mod.ts`);
    for (const m of modules().filter((m) => folderOf(m) === folder)) {
      const name = m.slice(folder.length + 1);
      if (name === "mod.ts") continue;
      assert.ok(
        mod.includes(`| \`${name}\` |`),
        `lib/${folder}/mod.ts does not list ${name} in its table`,
      );
      assert.ok(
        mod.includes(`from "./${name}"`),
        `lib/${folder}/mod.ts does not export ${name}`,
      );
    }
  }
});

Deno.test("layout: imports run one way along the pipeline, and the product never imports tools/", () => {
  const wrong: string[] = [];
  for (const m of modules()) {
    const from = folderOf(m);
    if (from === TOOLS) continue;
    for (const target of importsOf(m)) {
      const to = folderOf(target);
      if (to === from) continue;
      const ok = to in STAGES && STAGES[to] < STAGES[from];
      if (!ok) wrong.push(`lib/${m} imports lib/${target}`);
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("layout: no module imports itself through a cycle", () => {
  const graph = new Map(modules().map((m) => [m, importsOf(m)]));
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (m: string, path: string[]) => {
    state.set(m, "open");
    for (const next of graph.get(m) ?? []) {
      if (state.get(next) === "open") {
        cycles.push([...path.slice(path.indexOf(next)), next].join(" → "));
      } else if (!state.has(next) && graph.has(next)) {
        visit(next, [...path, next]);
      }
    }
    state.set(m, "done");
  };
  for (const m of graph.keys()) if (!state.has(m)) visit(m, [m]);
  assert.deepEqual(cycles, []);
});

Deno.test("layout: the import check sees real imports (a known edge and a known stage)", () => {
  // Guards the checks above against passing vacuously.
  assert.ok(importsOf("train/train.ts").includes("core/tf.ts"));
  assert.ok(
    importsOf("deploy/predict.ts").some((t) => folderOf(t) === "model"),
  );
  assert.ok(modules().length > 50);
});
