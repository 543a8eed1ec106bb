import assert from "node:assert/strict";
import { join } from "node:path";
import { type CliSpec, usage } from "../lib/core/cli.ts";
import { PROJECT_ROOT } from "../lib/core/paths.ts";
import { run } from "../lib/tools/proc.ts";
import { AUDIT_CLI } from "../lib/data/audit.ts";
import { SYNTHETIC_CLI } from "../lib/data/synthetic.ts";
import { TRAIN_CLI } from "../lib/train/train_cli.ts";
import { EVALUATE_CLI } from "../lib/evaluate/evaluate.ts";
import { SELECT_RUN_CLI } from "../scripts/select_run.ts";
import { PREPROCESS_CLI } from "../bench/preprocess.ts";
import { SERVE_BENCH_CLI } from "../bench/serve.ts";
import { TIME_TO_ACCURACY_CLI } from "../bench/time_to_accuracy.ts";
import { TRAIN_BENCH_CLI } from "../bench/train.ts";

// Every command-line entry point declares its flags once (a CliSpec run by
// lib/core/cli.ts' runCli): --help prints the usage generated from that
// declaration (exit 0), and an unknown flag prints an error naming it and
// the usage (exit 2), before doing any work. Where the test can import the
// declaration, the printed usage must be exactly the generated one.
const ENTRY_POINTS: { script: string; spec?: CliSpec; command?: string }[] = [
  { script: "lib/data/audit.ts", spec: AUDIT_CLI },
  { script: "lib/data/synthetic.ts", spec: SYNTHETIC_CLI },
  { script: "lib/train/train_cli.ts", spec: TRAIN_CLI },
  { script: "lib/evaluate/evaluate.ts", spec: EVALUATE_CLI },
  { script: "scripts/select_run.ts", spec: SELECT_RUN_CLI },
  { script: "bench/preprocess.ts", spec: PREPROCESS_CLI },
  { script: "bench/serve.ts", spec: SERVE_BENCH_CLI },
  { script: "bench/time_to_accuracy.ts", spec: TIME_TO_ACCURACY_CLI },
  { script: "bench/train.ts", spec: TRAIN_BENCH_CLI },
  { script: "lib/data/kaggle.ts", command: "deno task data:download" },
  { script: "lib/deploy/ensemble.ts", command: "deno task ensemble" },
  { script: "lib/deploy/export.ts", command: "deno task export" },
  { script: "lib/deploy/model_card.ts", command: "deno task model-card" },
  { script: "lib/deploy/predict.ts", command: "deno task predict" },
  {
    script: "lib/deploy/select_threshold.ts",
    command: "deno task select-threshold",
  },
  { script: "lib/deploy/select_tta.ts", command: "deno task select-tta" },
  { script: "lib/deploy/serve.ts", command: "deno task serve" },
];

function deno(script: string, ...args: string[]) {
  return run(Deno.execPath(), {
    args: ["run", "-A", join(PROJECT_ROOT, script), ...args],
    cwd: PROJECT_ROOT,
    // No dataset: a command that went past its usage checks would fail
    // differently (exit 1), not silently pass.
    env: { BRAIN_MRI_DATA: join(PROJECT_ROOT, "no-such-dataset") },
  });
}

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

for (const { script, spec, command } of ENTRY_POINTS) {
  Deno.test(`${script}: --help exits 0 with the generated usage; an unknown flag exits 2`, async () => {
    const synopsis = `usage: ${spec?.command ?? command} -- [options]`;
    const [help, bad] = await Promise.all([
      deno(script, "--help"),
      deno(script, "--no-such-flag"),
    ]);
    assert.equal(help.code, 0, help.stderr);
    if (spec) assert.equal(help.stdout, `${usage(spec)}\n`);
    else assert.match(help.stdout, new RegExp(`^${escaped(synopsis)}`));
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /^error: Unknown option '--no-such-flag'/m);
    assert.ok(bad.stderr.includes(synopsis), bad.stderr);
    assert.equal(bad.stdout, "");
  });
}

// Mistakes a type cannot catch, each a usage error (exit 2, the usage
// printed) before any data is read or any model loaded.
const USAGE_ERRORS: { script: string; args: string[]; error: RegExp }[] = [
  {
    script: "lib/train/train_cli.ts",
    args: ["--cosine-over", "time"],
    error: /--cosine-over time needs --max-minutes/,
  },
  {
    script: "lib/train/train_cli.ts",
    args: ["--val", "1"],
    error: /--val must be a number in \[0, 1\) \(got "1"\)/,
  },
  {
    script: "lib/train/train_cli.ts",
    args: ["--arch", "lenet"],
    error: /--arch must be one of seedCnn, vgg, resnet \(got "lenet"\)/,
  },
  {
    script: "lib/evaluate/evaluate.ts",
    args: ["--data", "d", "--tumour-threshold", "0.7"],
    error: /--tumour-threshold must be argmax or a number in \(0, 0\.5\]/,
  },
  {
    script: "lib/evaluate/evaluate.ts",
    args: ["--data", "d", "--test", "1.5"],
    error: /--test must be a number in \[0, 1\) \(got "1\.5"\)/,
  },
  {
    script: "lib/evaluate/evaluate.ts",
    args: ["--data", "d", "--split", "train"],
    error: /--split must be one of auto, test, validation \(got "train"\)/,
  },
  {
    script: "lib/data/audit.ts",
    args: ["--data", "d", "--threshold", "65"],
    error: /--threshold must be an integer in 0\.\.64/,
  },
  {
    script: "lib/data/audit.ts",
    args: [],
    error: /--data DIR is required/,
  },
  {
    script: "lib/data/synthetic.ts",
    args: ["--out", "d", "--sizes", "big"],
    error: /--sizes must look like 256,300,450x504/,
  },
  {
    script: "scripts/select_run.ts",
    args: ["--data", "d", "--tta", "none", "--tta", "vflip", "run"],
    error: /--tta: "vflip" is not none or hflip/,
  },
  {
    script: "bench/time_to_accuracy.ts",
    args: ["--order", "ours,ours"],
    error: /--order must list ours and\/or keras once each/,
  },
  {
    script: "bench/train.ts",
    args: ["--size", "8"],
    error: /--size must be at least 22/,
  },
  {
    script: "bench/train.ts",
    args: ["--ours", "fast"],
    error: /--ours: unknown configuration "fast"/,
  },
  {
    script: "bench/serve.ts",
    args: ["--workers", "1,1"],
    error: /--workers must be distinct non-negative integers/,
  },
  {
    script: "bench/preprocess.ts",
    args: ["--repeat", "0"],
    error: /--repeat must be an integer ≥ 1, got 0/,
  },
];

Deno.test("usage errors that a flag's type cannot catch exit 2 with the usage", async () => {
  for (const { script, args, error } of USAGE_ERRORS) {
    const what = `${script} ${args.join(" ")}`;
    const r = await deno(script, ...args);
    assert.equal(r.code, 2, `${what}: ${r.stderr}`);
    assert.match(r.stderr, error, what);
    assert.match(r.stderr, /^usage: /m, what);
  }
});

Deno.test("bench scripts without a dataset say how to get one (exit 1)", async () => {
  const r = await deno("bench/preprocess.ts", "--limit", "1");
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /no dataset at .*no-such-dataset: pass --data DIR, set BRAIN_MRI_DATA/,
  );
});
