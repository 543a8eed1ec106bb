/**
 * Chooses a model's operating point (lib/model/decision.ts) on its validation split
 * — never on the test split — by the operating-point rule (lib/deploy/operating_point.ts) and records
 * it in its metadata (`inference.tumourThreshold`), so that `evaluate`,
 * `predict` and `serve` all decide the same way.
 *
 * A refit (`train --refit`) has trained on its validation split, so it takes
 * the choice made for the run of the same settings that kept its validation
 * split (`--from DIR`), as `select-tta` does for test-time augmentation.
 *
 * ```sh
 * deno task select-threshold -- [--model DIR] --data DIR [--dry-run] [--json]
 * deno task select-threshold -- --model REFIT_DIR --from VALIDATED_RUN_DIR
 * ```
 *
 * @module
 */
import { type ParsedCli, runCli, UsageError } from "../core/cli.ts";
import { describeDecision } from "../model/decision.ts";
import { evaluateModel } from "../evaluate/evaluate.ts";
import {
  chooseOperatingPoint,
  formatOperatingPoints,
  type OperatingPoint,
  type OperatingPointChoice,
  operatingPoints,
} from "./operating_point.ts";
import { projectPaths } from "../core/paths.ts";
import {
  readModelMetadata,
  resolveModelDir,
  updateModelMetadata,
} from "../model/saved_model.ts";
import {
  type CopyTtaOptions,
  refitPair,
  VALIDATION_CHOICE_FLAGS,
} from "./select_tta.ts";

/** What {@linkcode selectThreshold} decided. */
export interface ThresholdChoice {
  /** The chosen tumour threshold; `null` for argmax. */
  tumourThreshold: number | null;
  /** The model's operating point before. */
  previous: number | null;
  /** Every candidate, scored on the validation split. */
  points: OperatingPoint[];
  /** The rule's decision and its eligible candidates. */
  choice: OperatingPointChoice;
  /** Validation scans. */
  images: number;
  /** Whether the metadata was updated. */
  written: boolean;
}

/** Options for {@linkcode selectThreshold}. */
export interface SelectThresholdOptions {
  /** Saved model or run folder (default: the shipped model). */
  model?: string;
  /** The dataset the model was trained on (its split is re-derived). */
  data: string;
  /** Record the choice in the model's metadata (default true). */
  write?: boolean;
  /** Cache folder for decoded images. */
  cacheDir?: string;
}

/**
 * Scores the operating-point rule's candidates on the model's validation
 * split (under its recorded test-time augmentation) and keeps the rule's
 * choice.
 *
 * Needs the dataset the model was trained on and evaluates the model on its
 * validation split, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { selectThreshold } from "./select_threshold.ts";
 * const c = await selectThreshold({ model: "models/seedcnn-128-r2", data: "data/Training", write: false });
 * console.log(c.tumourThreshold, c.choice.reachedBar);
 * ```
 */
export async function selectThreshold(
  options: SelectThresholdOptions,
): Promise<ThresholdChoice> {
  const dir = resolveModelDir(options.model ?? projectPaths().defaultModel);
  const previous = (await readModelMetadata(dir)).inference?.tumourThreshold ??
    null;
  const e = await evaluateModel({
    modelDir: dir,
    data: options.data,
    split: "validation",
    tumourThreshold: null,
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
  });
  const points = operatingPoints({
    yTrue: e.labels,
    probs: e.probabilities,
    classes: e.metadata.classes,
  });
  const choice = chooseOperatingPoint(points);
  const tumourThreshold = choice.chosen.tumourThreshold;
  const write = options.write ?? true;
  if (write) {
    await updateModelMetadata(dir, {
      inference: { tumourThreshold: tumourThreshold ?? undefined },
    });
  }
  return {
    tumourThreshold,
    previous,
    points,
    choice,
    images: e.full.n,
    written: write,
  };
}

/**
 * Records in a refit's metadata (a refit's only) the operating point chosen
 * on validation for the run of the same settings (`from`; see
 * `select_tta.ts`' `refitPair` for what must match). Returns it (`null`:
 * argmax).
 *
 * Needs a refit and the run it was refit from, and writes the refit's
 * metadata, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { copyThreshold } from "./select_threshold.ts";
 * const t = await copyThreshold({ model: "runs/refit", from: "runs/validated" });
 * ```
 */
export async function copyThreshold(
  options: CopyTtaOptions,
): Promise<number | null> {
  const { dir, source } = await refitPair(options);
  const tumourThreshold = source.inference?.tumourThreshold;
  await updateModelMetadata(dir, { inference: { tumourThreshold } });
  return tumourThreshold ?? null;
}

const SELECT_THRESHOLD_CLI = {
  command: "deno task select-threshold",
  summary:
    "Chooses the model's operating point (argmax or a threshold on P(tumour))\n" +
    "on its validation split by the operating-point rule, and records it in\n" +
    "its metadata.json. Give --data, or --from for a refit.",
  flags: {
    ...VALIDATION_CHOICE_FLAGS,
    json: {
      type: "boolean",
      help: "print the candidates and the choice as JSON",
    },
  },
  footer: "A refit: deno task select-threshold -- --model REFIT_DIR --from " +
    "VALIDATED_RUN_DIR",
} as const;

/** The rule in words: argmax (`null`) or the tumour threshold. */
function ruleText(t: number | null): string {
  return describeDecision(t === null ? {} : { tumourThreshold: t });
}

/** The `--json` output: the choice and every candidate's numbers. */
function thresholdChoiceJson(c: ThresholdChoice): unknown {
  return {
    tumourThreshold: c.tumourThreshold,
    previous: c.previous,
    reachedBar: c.choice.reachedBar,
    written: c.written,
    images: c.images,
    points: c.points.map((p) => ({
      tumourThreshold: p.tumourThreshold,
      eligible: c.choice.eligible.includes(p),
      targetsMet: p.score.met,
      targets: p.score.results,
      accuracy: p.report.accuracy,
      sensitivity: p.sensitivity,
      sensitivityLower: p.sensitivityLower,
      missed: p.missed,
      falseAlarms: p.falseAlarms,
    })),
  };
}

/** The text output: every candidate, then the choice and why. */
function printThresholdChoice(c: ThresholdChoice): void {
  console.log(`validation split: ${c.images} scans`);
  console.log(formatOperatingPoints(c.points, c.choice.chosen));
  console.log(
    `chosen: ${ruleText(c.tumourThreshold)} (${
      c.choice.reachedBar
        ? "the first to keep every target and show sensitivity ≥ 99% at 95% confidence"
        : "no candidate shows sensitivity ≥ 99% at 95% confidence; the highest lower bound"
    }; was ${c.previous ?? "argmax"})${
      c.written ? "; recorded in metadata.json" : " (dry run)"
    }`,
  );
}

/** `deno task select-threshold`: chooses on validation, or copies a run's choice to its refit. */
async function selectThresholdMain(
  { values }: ParsedCli<typeof SELECT_THRESHOLD_CLI>,
): Promise<number> {
  if (!values.from === !values.data) {
    throw new UsageError("give exactly one of --data and --from");
  }
  try {
    if (values.from) {
      const t = await copyThreshold({
        model: values.model ?? projectPaths().defaultModel,
        from: values.from,
      });
      console.log(
        `chosen: ${
          ruleText(t)
        } (as chosen on validation for ${values.from}); recorded in metadata.json`,
      );
      return 0;
    }
    const c = await selectThreshold({
      ...(values.model ? { model: values.model } : {}),
      data: values.data!,
      write: !values["dry-run"],
    });
    if (values.json) console.log(JSON.stringify(thresholdChoiceJson(c)));
    else printThresholdChoice(c);
    return 0;
  } catch (error) {
    console.error(`select-threshold: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await runCli(SELECT_THRESHOLD_CLI, selectThresholdMain));
}
