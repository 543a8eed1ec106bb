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
 * @module
 */
import { parseCli, taskArgs } from "../lib/core/cli.ts";
import { evaluateModel } from "../lib/evaluate/evaluate.ts";
import {
  isTta,
  readModelMetadata,
  resolveModelDir,
  type Tta,
  updateModelMetadata,
} from "../lib/model/saved_model.ts";
import { DEFAULTS } from "../lib/core/defaults.ts";
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
 * The runs must share that split (same seed, fractions and dataset), and
 * refits (trained on their validation split) are refused.
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
    const split = `seed ${t.seed}, validation ${
      t.split?.validation ?? DEFAULTS.validationFraction
    }, test ${
      t.split?.test ?? DEFAULTS.testFraction
    }, dataset ${metadata.datasetFingerprint}`;
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

const USAGE =
  `usage: deno task select-run -- --data DIR [--tta none,hflip [--record]] [--json] RUN_DIR...

  Ranks runs on their validation splits by the clinical targets: most targets
  met, then the weakest of the glioma and meningioma recalls, then the loss.
  --data DIR   the dataset the runs were trained on
  --tta LIST   modes to score for each run (default: each run's own)
  --record     write the winner's mode into its metadata.json
  --json       print the ranking as JSON`;

async function main(args: string[]): Promise<number> {
  const parsed = parseCli(USAGE, {
    args,
    options: {
      data: { type: "string" },
      tta: { type: "string" },
      json: { type: "boolean", default: false },
      record: { type: "boolean", default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (!values.data || positionals.length === 0) {
    console.error(`error: --data and at least one run are required\n${USAGE}`);
    return 2;
  }
  const tta = values.tta === undefined
    ? undefined
    : [...new Set(values.tta.split(",").map((s) => s.trim()))];
  const bad = tta?.find((t) => !isTta(t));
  if (bad !== undefined) {
    console.error(`error: --tta: "${bad}" is not none or hflip\n${USAGE}`);
    return 2;
  }
  if (values.record && !tta) {
    console.error(
      `error: --record needs --tta (the modes to choose from)\n${USAGE}`,
    );
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
