/**
 * Chooses a model's test-time augmentation on its validation split — never
 * on the test split — and records the choice in its metadata, so that
 * `evaluate`, `predict` and `serve` all predict the same way.
 *
 * The rule, fixed in advance: `hflip` (average of the image and its mirror)
 * is kept when it lowers the validation cross-entropy; otherwise `none`.
 *
 * A refit (`train --refit`) has trained on its validation split, so it
 * takes the choice made for the run of the same settings that kept its
 * validation split (`--from DIR`).
 *
 * ```sh
 * deno task select-tta -- [--model DIR] --data DIR [--dry-run]
 * deno task select-tta -- --model REFIT_DIR --from VALIDATED_RUN_DIR
 * ```
 *
 * @module
 */
import { MODEL_FLAG, type ParsedCli, runCli, UsageError } from "../core/cli.ts";
import { evaluateModel } from "../evaluate/evaluate.ts";
import { projectPaths } from "../core/paths.ts";
import {
  type ModelMetadata,
  readModelMetadata,
  resolveModelDir,
  samePreprocessing,
  splitSeed,
  type Tta,
  updateModelMetadata,
} from "../model/saved_model.ts";

/** Validation metrics of one test-time augmentation mode. */
export interface TtaScore {
  /** Accuracy on the validation split. */
  accuracy: number;
  /** Mean cross-entropy on the validation split. */
  loss: number;
  /** Validation images. */
  images: number;
}

/** What {@linkcode selectTta} decided. */
export interface TtaChoice {
  /** The chosen mode. */
  tta: Tta;
  /** The mode the model had before. */
  previous: Tta;
  /** Each mode's validation metrics. */
  validation: Record<Tta, TtaScore>;
  /** Whether the metadata was updated. */
  written: boolean;
}

/** Options for {@linkcode selectTta}. */
export interface SelectTtaOptions {
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
 * Evaluates the model's validation split with and without the mirror and
 * keeps the mode with the lower validation loss.
 *
 * Needs the dataset the model was trained on and evaluates the model on its
 * validation split twice, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { selectTta } from "./select_tta.ts";
 * const choice = await selectTta({ model: "models/seedcnn-128-r2", data: "data/Training", write: false });
 * console.log(choice.tta, choice.validation);
 * ```
 */
export async function selectTta(options: SelectTtaOptions): Promise<TtaChoice> {
  const dir = resolveModelDir(options.model ?? projectPaths().defaultModel);
  const previous = (await readModelMetadata(dir)).inference?.tta ?? "none";
  const score = async (tta: Tta): Promise<TtaScore> => {
    const e = await evaluateModel({
      modelDir: dir,
      data: options.data,
      split: "validation",
      tta,
      ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
    });
    return { accuracy: e.full.accuracy, loss: e.full.loss, images: e.full.n };
  };
  const validation = { none: await score("none"), hflip: await score("hflip") };
  const tta: Tta = validation.hflip.loss < validation.none.loss
    ? "hflip"
    : "none";
  const write = options.write ?? true;
  if (write) await updateModelMetadata(dir, { inference: { tta } });
  return { tta, previous, validation, written: write };
}

/** Options for {@linkcode copyTta} and {@linkcode refitPair}. */
export interface CopyTtaOptions {
  /** The refit (saved model or run folder) to record the choice in. */
  model: string;
  /** The run of the same settings that made its choice on validation. */
  from: string;
}

/** A refit and the validated run it takes its inference choices from. */
export interface RefitPair {
  /** The refit's model folder. */
  dir: string;
  /** The validated run's model folder. */
  fromDir: string;
  /** The validated run's metadata. */
  source: ModelMetadata;
}

/**
 * Checks that `model` is a refit (`train --refit`) and `from` a run that held
 * its validation split out with the same seed and split fractions and
 * prepared its input the same way, so a
 * choice made on `from`'s validation split can be carried over to `model`.
 * Throws, naming the folder and the problem, otherwise.
 *
 * @example The two shipped models are not such a pair
 * ```ts
 * import assert from "node:assert/strict";
 * import { refitPair } from "./select_tta.ts";
 * // resnet-128-e11 is a refit, but the seed CNN was split differently
 * await assert.rejects(
 *   refitPair({ model: "models/resnet-128-e11", from: "models/seedcnn-128-r2" }),
 *   /seedcnn-128-r2 was split differently \(seed or fractions\)/,
 * );
 * // the seed CNN kept its validation split: it is no refit
 * await assert.rejects(
 *   refitPair({ model: "models/seedcnn-128-r2", from: "models/resnet-128-e11" }),
 *   /seedcnn-128-r2 is not a refit/,
 * );
 * ```
 */
export async function refitPair(options: CopyTtaOptions): Promise<RefitPair> {
  const dir = resolveModelDir(options.model);
  const fromDir = resolveModelDir(options.from);
  const target = await readModelMetadata(dir);
  const source = await readModelMetadata(fromDir);
  if (!target.training.split?.validationTrained) {
    throw new Error(
      `${options.model} is not a refit: choose on its own validation split ` +
        "(--data DIR)",
    );
  }
  const problem = source.training.split?.validationTrained
    ? "was itself refit on its validation split"
    : splitSeed(source.training) !== splitSeed(target.training) ||
        source.training.split?.validation !==
          target.training.split?.validation ||
        source.training.split?.test !== target.training.split?.test
    ? "was split differently (seed or fractions)"
    : !samePreprocessing(source.preprocessing, target.preprocessing)
    ? "prepares its input differently (size or CLAHE)"
    : null;
  if (problem) throw new Error(`${options.from} ${problem}`);
  return { dir, fromDir, source };
}

/**
 * Records in a refit's metadata (a refit's only) the test-time augmentation
 * chosen on validation for the run of the same settings (`from`), which must
 * have held its validation split out, used the same seed and split fractions,
 * and have a recorded choice. Returns the mode.
 *
 * Needs a refit and the run it was refit from, and writes the refit's
 * metadata, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { copyTta } from "./select_tta.ts";
 * const tta = await copyTta({ model: "runs/refit", from: "runs/validated" });
 * ```
 */
export async function copyTta(options: CopyTtaOptions): Promise<Tta> {
  const { dir, source } = await refitPair(options);
  const tta = source.inference?.tta;
  if (tta === undefined) {
    throw new Error(
      `${options.from} has no test-time augmentation chosen on validation ` +
        "(run select-tta on it first)",
    );
  }
  await updateModelMetadata(dir, { inference: { tta } });
  return tta;
}

/**
 * The flags the commands that choose on a model's validation split share
 * (`select-tta`, `select-threshold`): the saved model, the dataset it was
 * trained on, or the validated run whose choice a refit copies, and a dry run.
 */
export const VALIDATION_CHOICE_FLAGS = {
  model: MODEL_FLAG,
  data: {
    type: "string",
    value: "DIR",
    help: "the dataset the model was trained on (its split is re-derived)",
  },
  from: {
    type: "string",
    value: "VALIDATED_RUN_DIR",
    help: "copy to the refit --model the choice made on this run's\n" +
      "validation split",
  },
  "dry-run": {
    type: "boolean",
    help: "choose, but leave metadata.json alone",
  },
} as const;

const SELECT_TTA_CLI = {
  command: "deno task select-tta",
  summary:
    "Chooses the model's test-time augmentation on its validation split\n" +
    "(hflip when it lowers the validation loss, else none) and records it\n" +
    "in its metadata.json. Give --data, or --from for a refit.",
  flags: VALIDATION_CHOICE_FLAGS,
  footer:
    "A refit: deno task select-tta -- --model REFIT_DIR --from VALIDATED_RUN_DIR",
} as const;

/** `deno task select-tta`: chooses on validation, or copies a run's choice to its refit. */
async function selectTtaMain(
  { values }: ParsedCli<typeof SELECT_TTA_CLI>,
): Promise<number> {
  if (!values.from && !values.data) {
    throw new UsageError("give --data or --from");
  }
  try {
    if (values.from) {
      const tta = await copyTta({
        model: values.model ?? projectPaths().defaultModel,
        from: values.from,
      });
      console.log(
        `chosen: ${tta} (as chosen on validation for ${values.from}); recorded in metadata.json`,
      );
      return 0;
    }
    const c = await selectTta({
      ...(values.model ? { model: values.model } : {}),
      data: values.data!,
      write: !values["dry-run"],
    });
    for (const [mode, s] of Object.entries(c.validation)) {
      console.log(
        `${mode.padEnd(5)}  validation accuracy ${
          (100 * s.accuracy).toFixed(2)
        }%  loss ${s.loss.toFixed(4)}  (${s.images} images)`,
      );
    }
    console.log(
      `chosen: ${c.tta} (was ${c.previous})${
        c.written ? "; recorded in metadata.json" : " (dry run)"
      }`,
    );
    return 0;
  } catch (error) {
    console.error(`select-tta: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await runCli(SELECT_TTA_CLI, selectTtaMain));
