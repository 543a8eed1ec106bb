/**
 * Chooses among finished runs on their validation splits — never on the test
 * split — by how many of the clinical targets each one meets (accuracy,
 * macro-F1, the recall of the classes that matter most, tumour sensitivity,
 * calibration), with the run-ranking rule of `targets.ts`:
 * the most targets met, then the higher of the glioma and meningioma recalls
 * (the weaker one), then the lower validation loss. Every run is scored at
 * argmax, whatever operating point it records (`select-threshold` chooses
 * one on the same split, after the run is chosen).
 *
 * ```sh
 * deno task select-run -- --data DIR [--tta none,hflip [--record]] [--json] RUN_DIR...
 * ```
 *
 * The flags are declared in {@linkcode SELECT_RUN_CLI}; `--help` prints them.
 *
 * @module
 */
import { type ParsedCli, runCli, UsageError } from "../lib/core/cli.ts";
import { evaluateModel } from "../lib/evaluate/evaluate.ts";
import {
  isTta,
  readModelMetadata,
  resolveModelDir,
  splitDescription,
  type Tta,
  updateModelMetadata,
} from "../lib/model/saved_model.ts";
import {
  formatRanking,
  type RankedRun,
  rankRuns,
  type RunCandidate,
  type Target,
} from "../lib/evaluate/targets.ts";

/** Options for {@linkcode selectRun}. */
export interface SelectRunOptions {
  /** Run or saved-model folders (their validation splits are re-derived). */
  runs: readonly string[];
  /** The dataset they were trained on. */
  data: string;
  /** Test-time augmentation modes to score for each run (default: each run's own). */
  tta?: readonly Tta[];
  /** The targets (default: the clinical targets, `CLINICAL_TARGETS`). */
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
 * Evaluates every run on its validation split (under each requested
 * test-time augmentation mode) and ranks them with {@linkcode rankRuns}.
 * The runs must share that split (same seed, fractions, grouping radius and
 * dataset), and
 * refits (trained on their validation split) are refused.
 *
 * Needs the runs' dataset on disk, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { selectRun } from "./select_run.ts";
 * const s = await selectRun({
 *   runs: ["models/resnet-128-e1", "models/resnet-128-e7"],
 *   data: "data/Training",
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
  if (new Set(options.runs).size !== options.runs.length) {
    throw new Error("selectRun: a run is listed twice");
  }
  // Check every run before evaluating any: refits are refused, and runs are
  // only comparable on the same validation split.
  let first: { run: string; split: string } | undefined;
  for (const run of options.runs) {
    const metadata = await readModelMetadata(resolveModelDir(run));
    const t = metadata.training;
    if (t.split?.validationTrained) {
      throw new Error(
        `${run} was refit on its validation split: it cannot be ranked on it`,
      );
    }
    const split = splitDescription(metadata);
    first ??= { run, split };
    if (split !== first.split) {
      throw new Error(
        `${run} was split differently from ${first.run} (${split} vs ` +
          `${first.split}): their validation splits are not the same scans`,
      );
    }
  }
  const candidates: RunSelection["candidates"] = {};
  const reports: RunCandidate[] = [];
  for (const run of options.runs) {
    for (const mode of modes) {
      const e = await evaluateModel({
        modelDir: run,
        data: options.data,
        split: "validation",
        // Compared at argmax: an operating point (select-threshold) is chosen
        // on this same split after a run is chosen; counting it here would
        // favour the runs that have one.
        tumourThreshold: null,
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

/** The run ranking's command line: every flag with its type and help. */
export const SELECT_RUN_CLI = {
  command: "deno task select-run",
  summary:
    "Ranks runs on their validation splits by the clinical targets: most\n" +
    "targets met, then the weaker of the glioma and meningioma recalls, then\n" +
    "the validation loss.",
  positionals: "RUN_DIR...",
  flags: {
    data: {
      type: "string",
      value: "DIR",
      help: "the dataset the runs were trained on (required)",
    },
    tta: {
      type: "string",
      value: "LIST",
      multiple: true,
      defaultText: "each run's own",
      help:
        "test-time modes to score for each run,\ncomma-separated (none,hflip)",
    },
    record: {
      type: "boolean",
      help: "write the winner's mode into its metadata.json\n(needs --tta)",
    },
    json: { type: "boolean", help: "print the ranking as JSON" },
  },
} as const;

/** `--tta` lists (repeated or comma-separated), each mode once. */
function ttaArg(lists: readonly string[]): Tta[] | undefined {
  if (lists.length === 0) return undefined;
  const modes = [
    ...new Set(lists.flatMap((l) => l.split(",")).map((s) => s.trim())),
  ];
  const bad = modes.find((t) => !isTta(t));
  if (bad !== undefined) {
    throw new UsageError(`--tta: "${bad}" is not none or hflip`);
  }
  return modes as Tta[];
}

async function main(
  { values, positionals }: ParsedCli<typeof SELECT_RUN_CLI>,
): Promise<number> {
  if (!values.data || positionals.length === 0) {
    throw new UsageError("--data and at least one run are required");
  }
  const tta = ttaArg(values.tta);
  if (values.record && !tta) {
    throw new UsageError("--record needs --tta (the modes to choose from)");
  }
  try {
    const s = await selectRun({
      runs: positionals,
      data: values.data,
      ...(tta ? { tta } : {}),
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

if (import.meta.main) Deno.exit(await runCli(SELECT_RUN_CLI, main));
