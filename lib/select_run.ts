/**
 * Chooses among finished runs on their validation splits — never on the test
 * split — by how many of a list of targets each one meets, the way issue 7
 * states them (accuracy, macro-F1, the recall of the classes that matter
 * most, tumour sensitivity, calibration).
 *
 * The ranking rule ("R2" in `models/README.md`):
 *
 * 1. the most targets met;
 * 2. then the higher of the weakest recalls among `focusClasses` (by default
 *    glioma and meningioma, the two classes with a recall target);
 * 3. then the lower validation loss.
 *
 * ```sh
 * deno task select-run -- --data DIR [--tta none,hflip [--record]] [--json] RUN_DIR...
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { taskArgs } from "./cli.ts";
import { evaluateModel } from "./evaluate.ts";
import type { EvaluationReport } from "./metrics.ts";
import {
  isTta,
  readModelMetadata,
  resolveModelDir,
  type Tta,
  updateModelMetadata,
} from "./saved_model.ts";

/** One target: a metric of an {@linkcode EvaluationReport} and its bound. */
export interface Target {
  /** Short name, e.g. `"accuracy ≥ 97%"`. */
  name: string;
  /** The metric's value in a report; `null` when it is undefined there. */
  value: (report: EvaluationReport) => number | null;
  /** The value must be at least this (inclusive). */
  min?: number;
  /** The value must be at most this (inclusive). */
  max?: number;
  /** Show the value as a percentage (default: three decimals). */
  percent?: boolean;
}

/** A class's recall in `report`, or `null` if the class is not there. */
function recallOf(report: EvaluationReport, name: string): number | null {
  return report.perClass.find((c) => c.class === name)?.recall ?? null;
}

/**
 * Issue 7's targets: accuracy ≥ 97%, macro-F1 ≥ 0.96, glioma and meningioma
 * recall ≥ 94% each, tumour sensitivity ≥ 99%, expected calibration error
 * ≤ 0.03.
 *
 * @example
 * ```ts
 * import { ISSUE_7_TARGETS } from "./select_run.ts";
 * console.log(ISSUE_7_TARGETS.map((t) => t.name).join(", "));
 * ```
 */
export const ISSUE_7_TARGETS: readonly Target[] = [
  {
    name: "accuracy ≥ 97%",
    value: (r) => r.accuracy,
    min: 0.97,
    percent: true,
  },
  { name: "macro-F1 ≥ 0.96", value: (r) => r.macro.f1, min: 0.96 },
  {
    name: "glioma recall ≥ 94%",
    value: (r) => recallOf(r, "glioma"),
    min: 0.94,
    percent: true,
  },
  {
    name: "meningioma recall ≥ 94%",
    value: (r) => recallOf(r, "meningioma"),
    min: 0.94,
    percent: true,
  },
  {
    name: "tumour sensitivity ≥ 99%",
    value: (r) => r.binary?.sensitivity ?? null,
    min: 0.99,
    percent: true,
  },
  { name: "ECE ≤ 0.03", value: (r) => r.calibration.ece, max: 0.03 },
];

/** One target's outcome in {@linkcode TargetScore}. */
export interface TargetResult {
  /** The target's name. */
  name: string;
  /** The measured value (`null`: undefined, which counts as not met). */
  value: number | null;
  /** Whether the bound holds. */
  met: boolean;
  /** Whether the value reads as a percentage (the target's `percent`). */
  percent: boolean;
}

/** What {@linkcode scoreTargets} returns. */
export interface TargetScore {
  /** One result per target, in the targets' order. */
  results: TargetResult[];
  /** How many targets are met. */
  met: number;
  /** The lowest recall among the focus classes (`null` if none is there). */
  weakestRecall: number | null;
  /** The report's mean cross-entropy. */
  loss: number;
}

/** Options for {@linkcode scoreTargets}. */
export interface ScoreTargetsOptions {
  /** A validation report (`evaluateModel(...).full`). */
  report: EvaluationReport;
  /** The targets (default {@linkcode ISSUE_7_TARGETS}). */
  targets?: readonly Target[];
  /** Classes whose weakest recall breaks ties (default glioma, meningioma). */
  focusClasses?: readonly string[];
}

/**
 * Checks each target against a report.
 *
 * @example
 * ```ts
 * import { reportFromProbabilities } from "./evaluate.ts";
 * import { scoreTargets } from "./select_run.ts";
 * const report = reportFromProbabilities({
 *   probabilities: new Float32Array([0.9, 0.1, 0.2, 0.8]),
 *   labels: [0, 1],
 *   classes: ["glioma", "notumor"],
 * });
 * const s = scoreTargets({ report, focusClasses: ["glioma"] });
 * console.log(s.results[0]); // { name: "accuracy ≥ 97%", value: 1, met: true, percent: true }
 * console.log(s.weakestRecall); // 1
 * ```
 */
export function scoreTargets(options: ScoreTargetsOptions): TargetScore {
  const targets = options.targets ?? ISSUE_7_TARGETS;
  const results = targets.map((t): TargetResult => {
    const v = t.value(options.report);
    const value = v === null || Number.isNaN(v) ? null : v;
    const met = value !== null &&
      (t.min === undefined || value >= t.min) &&
      (t.max === undefined || value <= t.max);
    return { name: t.name, value, met, percent: t.percent ?? false };
  });
  const recalls = (options.focusClasses ?? ["glioma", "meningioma"])
    .map((c) => recallOf(options.report, c))
    .filter((r): r is number => r !== null);
  return {
    results,
    met: results.filter((r) => r.met).length,
    weakestRecall: recalls.length ? Math.min(...recalls) : null,
    loss: options.report.loss,
  };
}

/** A candidate for {@linkcode rankRuns}. */
export interface RunCandidate {
  /** What to call it, e.g. `"resnet-128-e9 (hflip)"`. */
  name: string;
  /** Its validation report. */
  report: EvaluationReport;
}

/** One row of {@linkcode rankRuns}' answer. */
export interface RankedRun extends TargetScore {
  /** 1 for the chosen run. */
  rank: number;
  /** The candidate's name. */
  name: string;
}

/** Options for {@linkcode rankRuns}. */
export interface RankRunsOptions {
  /** The candidates, each with its validation report. */
  candidates: readonly RunCandidate[];
  /** The targets (default {@linkcode ISSUE_7_TARGETS}). */
  targets?: readonly Target[];
  /** Classes whose weakest recall breaks ties (default glioma, meningioma). */
  focusClasses?: readonly string[];
}

/**
 * Ranks candidates: most targets met, then the highest weakest focus-class
 * recall, then the lowest loss; equal on all three keeps the given order.
 *
 * @example
 * ```ts
 * import { reportFromProbabilities } from "./evaluate.ts";
 * import { rankRuns } from "./select_run.ts";
 * const classes = ["glioma", "notumor"];
 * const labels = [0, 1];
 * const sure = reportFromProbabilities({
 *   probabilities: new Float32Array([0.9, 0.1, 0.1, 0.9]), labels, classes,
 * });
 * const wrong = reportFromProbabilities({
 *   probabilities: new Float32Array([0.4, 0.6, 0.1, 0.9]), labels, classes,
 * });
 * const ranked = rankRuns({ candidates: [
 *   { name: "a", report: wrong }, { name: "b", report: sure },
 * ] });
 * console.log(ranked[0].name); // "b"
 * ```
 */
export function rankRuns(options: RankRunsOptions): RankedRun[] {
  const scored = options.candidates.map((c, i) => ({
    i,
    name: c.name,
    score: scoreTargets({
      report: c.report,
      ...(options.targets ? { targets: options.targets } : {}),
      ...(options.focusClasses ? { focusClasses: options.focusClasses } : {}),
    }),
  }));
  scored.sort((a, b) =>
    b.score.met - a.score.met ||
    (b.score.weakestRecall ?? -1) - (a.score.weakestRecall ?? -1) ||
    a.score.loss - b.score.loss ||
    a.i - b.i
  );
  return scored.map((s, k) => ({ rank: k + 1, name: s.name, ...s.score }));
}

/**
 * A plain-text table of a ranking: one line per run, the targets met, the
 * weakest focus recall, the loss and each target's value (`*` when met).
 *
 * @example
 * ```ts
 * import { reportFromProbabilities } from "./evaluate.ts";
 * import { formatRanking, rankRuns } from "./select_run.ts";
 * const report = reportFromProbabilities({
 *   probabilities: new Float32Array([0.9, 0.1, 0.2, 0.8]),
 *   labels: [0, 1],
 *   classes: ["glioma", "notumor"],
 * });
 * console.log(formatRanking(rankRuns({ candidates: [{ name: "a", report }] })));
 * ```
 */
export function formatRanking(ranked: readonly RankedRun[]): string {
  const pct = (v: number | null) => v === null ? "—" : (100 * v).toFixed(2);
  const width = Math.max(4, ...ranked.map((r) => r.name.length));
  const lines = [
    `${"rank".padEnd(4)}  ${"run".padEnd(width)}  met  weakest  loss`,
  ];
  for (const r of ranked) {
    const targets = r.results.map((t) =>
      `${t.name.split(" ")[0]} ${
        t.value === null ? "—" : t.percent ? pct(t.value) : t.value.toFixed(3)
      }${t.met ? "*" : ""}`
    ).join(", ");
    lines.push(
      `${String(r.rank).padEnd(4)}  ${
        r.name.padEnd(width)
      }  ${r.met}/${r.results.length}  ${pct(r.weakestRecall).padStart(7)}  ${
        r.loss.toFixed(4)
      }  ${targets}`,
    );
  }
  return lines.join("\n");
}

/** Options for {@linkcode selectRun}. */
export interface SelectRunOptions {
  /** Run or saved-model folders (their validation splits are re-derived). */
  runs: readonly string[];
  /** The dataset they were trained on. */
  data: string;
  /** Test-time augmentation modes to score for each run (default: each run's own). */
  tta?: readonly Tta[];
  /** The targets (default {@linkcode ISSUE_7_TARGETS}). */
  targets?: readonly Target[];
  /** Classes whose weakest recall breaks ties (default glioma, meningioma). */
  focusClasses?: readonly string[];
  /** Cache folder for decoded images. */
  cacheDir?: string;
  /**
   * Record the winner's test-time mode in its `metadata.json` (default
   * false; only meaningful with `tta`), so `evaluate`, `predict` and `serve`
   * predict the way it was chosen.
   */
  record?: boolean;
}

/** What {@linkcode selectRun} returns. */
export interface RunSelection {
  /** The ranking; `ranking[0]` is the choice. */
  ranking: RankedRun[];
  /** Each candidate's run folder and mode, by candidate name. */
  candidates: Record<string, { run: string; tta: Tta | "own" }>;
  /** The winner's mode, if it was written to its metadata. */
  recorded: Tta | null;
}

/**
 * Evaluates every run on its own validation split (under each requested
 * test-time augmentation mode) and ranks them with {@linkcode rankRuns}.
 * Refits (trained on their validation split) are refused.
 *
 * @example
 * ```ts ignore
 * import { selectRun } from "./select_run.ts";
 * const s = await selectRun({
 *   runs: ["models/resnet-128-e7", "models/resnet-128-e9"],
 *   data: "../shared/data/brain-tumor-mri/Training",
 * });
 * console.log(s.ranking[0].name);
 * ```
 */
export async function selectRun(
  options: SelectRunOptions,
): Promise<RunSelection> {
  if (options.runs.length === 0) throw new Error("selectRun: no runs given");
  const modes: (Tta | "own")[] = options.tta?.length
    ? [...options.tta]
    : ["own"];
  const candidates: RunSelection["candidates"] = {};
  const reports: RunCandidate[] = [];
  for (const run of options.runs) {
    const metadata = await readModelMetadata(resolveModelDir(run));
    if (metadata.training.split?.validationTrained) {
      throw new Error(
        `${run} was refit on its validation split: it cannot be ranked on it`,
      );
    }
    for (const mode of modes) {
      const e = await evaluateModel({
        modelDir: run,
        data: options.data,
        split: "validation",
        ...(mode === "own" ? {} : { tta: mode }),
        ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
      });
      const name = modes.length > 1 ? `${run} (${mode})` : run;
      candidates[name] = { run, tta: mode };
      reports.push({ name, report: e.full });
    }
  }
  const ranking = rankRuns({
    candidates: reports,
    ...(options.targets ? { targets: options.targets } : {}),
    ...(options.focusClasses ? { focusClasses: options.focusClasses } : {}),
  });
  const winner = candidates[ranking[0].name];
  let recorded: Tta | null = null;
  if (options.record && winner.tta !== "own") {
    await updateModelMetadata(resolveModelDir(winner.run), {
      inference: { tta: winner.tta },
    });
    recorded = winner.tta;
  }
  return { ranking, candidates, recorded };
}

const USAGE =
  `usage: deno task select-run -- --data DIR [--tta none,hflip [--record]] [--json] RUN_DIR...

  Ranks runs on their validation splits by issue 7's targets: most targets
  met, then the weakest of the glioma and meningioma recalls, then the loss.
  --data DIR   the dataset the runs were trained on
  --tta LIST   modes to score for each run (default: each run's own)
  --record     write the winner's mode into its metadata.json
  --json       print the ranking as JSON`;

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        data: { type: "string" },
        tta: { type: "string" },
        json: { type: "boolean", default: false },
        record: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.data || positionals.length === 0) {
    console.error(`error: --data and at least one run are required\n${USAGE}`);
    return 2;
  }
  const tta = values.tta?.split(",").map((s) => s.trim());
  const bad = tta?.find((t) => !isTta(t));
  if (bad !== undefined) {
    console.error(`error: --tta: "${bad}" is not none or hflip\n${USAGE}`);
    return 2;
  }
  try {
    const s = await selectRun({
      runs: positionals,
      data: values.data,
      ...(tta ? { tta: tta as Tta[] } : {}),
      record: values.record,
    });
    console.log(
      values.json ? JSON.stringify(s) : formatRanking(s.ranking) +
        `\nchosen: ${s.ranking[0].name}` +
        (s.recorded
          ? `; test-time mode ${s.recorded} recorded in its metadata.json`
          : ""),
    );
    return 0;
  } catch (error) {
    console.error(`select-run: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(taskArgs()));
}
