/**
 * `deno task ensemble`: saves several trained models as one that averages
 * their class probabilities (`averageModels`, lib/model/ensemble.ts).
 *
 * The members must share one training split (same dataset, seed, fractions
 * and grouping radius: `ensembleProblems`), so that the ensemble's
 * validation and test splits are as held out for it as for each member.
 * Choosing the members is a choice like any other: make it on validation
 * (`deno task select-run`, or `deno task evaluate --split val` of the
 * candidates), then test the ensemble once. Its test-time augmentation and
 * operating point are chosen afresh on validation (`select-tta`,
 * `select-threshold`): the members' choices are not carried over.
 *
 * ```sh
 * deno task ensemble -- --models DIR,DIR[,DIR...] --out models/NAME
 * ```
 *
 * @module
 */
import { basename, resolve } from "node:path";
import { type ParsedCli, runCli, UsageError } from "../core/cli.ts";
import { versions } from "../core/versions.ts";
import { averageModels, ensembleProblems } from "../model/ensemble.ts";
import {
  type LoadedModel,
  loadSavedModel,
  type ModelMetadata,
  resolveModelDir,
  saveModel,
} from "../model/saved_model.ts";

/** Options for {@linkcode saveEnsemble}. */
export interface SaveEnsembleOptions {
  /** Saved models or run folders, two or more. */
  models: string[];
  /** Folder to write the ensemble to (must not exist yet). */
  out: string;
}

/** What {@linkcode saveEnsemble} wrote. */
export interface EnsembleResult {
  /** The ensemble's folder. */
  dir: string;
  /** The members, in order. */
  members: NonNullable<ModelMetadata["ensemble"]>["members"];
  /** Parameters in all. */
  params: number;
}

/** The ensemble's metadata: the shared input and split, and its members. */
export function ensembleMetadata(
  loaded: { dir: string; metadata: ModelMetadata }[],
): ModelMetadata {
  const first = loaded[0].metadata;
  return {
    format: first.format,
    formatVersion: first.formatVersion,
    classes: first.classes,
    inputSize: first.inputSize,
    channels: first.channels,
    preprocessing: first.preprocessing,
    arch: "ensemble",
    training: first.training,
    datasetFingerprint: first.datasetFingerprint,
    metrics: {},
    createdAt: new Date().toISOString(),
    versions: versions() as unknown as Record<string, string>,
    ensemble: {
      members: loaded.map(({ dir, metadata: m }) => ({
        name: m.training.run ?? basename(dir),
        arch: m.arch,
        epochs: m.training.epochs,
        bestEpoch: m.training.bestEpoch,
      })),
    },
  };
}

/**
 * Loads the models, checks they can form an ensemble, and saves the
 * averaging model with its metadata (atomically, refusing an existing
 * folder).
 *
 * Loads saved models and writes a folder, so it is not run by
 * `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { saveEnsemble } from "./ensemble.ts";
 * const r = await saveEnsemble({ models: ["runs/a", "runs/b"], out: "models/ab" });
 * console.log(r.params);
 * ```
 */
export async function saveEnsemble(
  options: SaveEnsembleOptions,
): Promise<EnsembleResult> {
  const dirs = options.models.map((m) => resolveModelDir(m));
  const loaded: (LoadedModel & { dir: string })[] = [];
  try {
    for (const dir of dirs) loaded.push({ dir, ...await loadSavedModel(dir) });
    const problems = ensembleProblems(loaded.map((l) => l.metadata));
    if (problems.length) {
      throw new UsageError(
        `cannot combine these models: ${problems.join("; ")}`,
      );
    }
    const model = await averageModels(loaded.map((l) => l.model));
    try {
      const metadata = ensembleMetadata(loaded);
      const saved = await saveModel({
        dir: resolve(options.out),
        model,
        metadata,
      });
      return {
        dir: saved.dir,
        members: metadata.ensemble!.members,
        params: model.countParams(),
      };
    } finally {
      model.dispose();
    }
  } finally {
    loaded.forEach((l) => l.model.dispose());
  }
}

const ENSEMBLE_CLI = {
  command: "deno task ensemble",
  summary:
    "Saves two or more trained models, trained on the same split, as one\n" +
    "model that averages their class probabilities.",
  flags: {
    models: {
      type: "string",
      value: "DIR,DIR[,...]",
      help: "the members: saved models or run folders",
    },
    out: { type: "string", value: "DIR", help: "folder for the ensemble" },
  },
  footer: "Then choose its test-time augmentation and operating point on\n" +
    "validation: deno task select-tta, deno task select-threshold.",
} as const;

async function ensembleMain(
  { values }: ParsedCli<typeof ENSEMBLE_CLI>,
): Promise<number> {
  if (!values.models || !values.out) {
    throw new UsageError("give --models and --out");
  }
  const models = values.models.split(",").filter(Boolean);
  const r = await saveEnsemble({ models, out: values.out });
  console.log(
    `saved ${r.dir}: the average of ${r.members.length} models ` +
      `(${r.members.map((m) => m.name).join(", ")}), ` +
      `${r.params.toLocaleString("en-US")} parameters`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await runCli(ENSEMBLE_CLI, ensembleMain));
