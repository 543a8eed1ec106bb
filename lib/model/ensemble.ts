/**
 * Ensembles: several trained networks as one model that averages their
 * class probabilities. {@linkcode averageModels} builds the single tfjs
 * model (every member's layers, renamed `m1_…`, `m2_…`, on one shared input,
 * then an `Average` layer), so that saving, `evaluate`, `predict`, `serve`,
 * Grad-CAM, batch-norm folding and the ONNX export all treat an ensemble as
 * any other model. {@linkcode ensembleProblems} says why saved models cannot
 * be combined: an ensemble is only honest when every member was trained on
 * the same training split, so that none has seen the ensemble's test scans.
 *
 * Inference costs the sum of the members'.
 *
 * @module
 */
import type { LayersModel } from "../core/tf.ts";
import {
  type LayerJson,
  type LayerRef,
  modelFromTopology,
  type ModelTopology,
  modelTopology,
} from "./topology.ts";
import {
  type ModelMetadata,
  samePreprocessing,
  splitDescription,
} from "./saved_model.ts";

/** One member's layers renamed `m<k>_…`, its input replaced by `input`. */
function memberLayers(model: LayersModel, k: number) {
  const topology = modelTopology(model);
  const inputs = new Set(topology.config.input_layers.map(([n]) => n));
  if (inputs.size !== 1 || topology.config.output_layers.length !== 1) {
    throw new Error(
      `ensemble: member ${k} must have one input and one output`,
    );
  }
  const rename = (name: string) => inputs.has(name) ? "input" : `m${k}_${name}`;
  const nested = topology.config.layers.find((l) =>
    ["Model", "Functional", "Sequential"].includes(l.class_name)
  );
  if (nested) {
    throw new Error(
      `ensemble: member ${k} has a nested model (layer "${nested.name}"); ` +
        "combine models without one",
    );
  }
  const layers = topology.config.layers
    .filter((l) => !inputs.has(l.name))
    .map((l) => ({
      ...l,
      name: rename(l.name),
      config: { ...l.config, name: rename(l.name) },
      inbound_nodes: l.inbound_nodes.map((node) =>
        node.map(([n, i, t, kw]): LayerRef => [rename(n), i, t, kw])
      ),
    }));
  const input = topology.config.layers.find((l) => inputs.has(l.name))!;
  return {
    layers,
    input: {
      ...input,
      name: "input",
      config: { ...input.config, name: "input" },
    },
    output: rename(topology.config.output_layers[0][0]),
  };
}

/**
 * One model averaging the outputs of `members` (two or more, each with one
 * input of the same shape and one output): their layers side by side on a
 * shared input, renamed `m1_…`, `m2_…`, then an `Average` layer named
 * `average`. The weights are copied; the members stay the caller's.
 *
 * @example Two seed CNNs: the ensemble's output is the mean of theirs
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Tensor, tf } from "../core/tf.ts";
 * import { averageModels } from "./ensemble.ts";
 * import { seedCnn } from "./models.ts";
 * const a = seedCnn({ inputSize: 32, channels: 1, numClasses: 4, seed: 1 });
 * const b = seedCnn({ inputSize: 32, channels: 1, numClasses: 4, seed: 2 });
 * const both = await averageModels([a, b]);
 * const x = tf.randomUniform([2, 32, 32, 1], 0, 1, "float32", 3);
 * const [pa, pb, pe] = [a, b, both].map((m) => m.predict(x) as Tensor);
 * const mean = tf.div(tf.add(pa, pb), 2);
 * assert.ok(tf.max(tf.abs(tf.sub(mean, pe))).dataSync()[0] < 1e-6);
 * assert.equal(both.countParams(), a.countParams() + b.countParams());
 * tf.dispose([x, pa, pb, pe, mean]);
 * [a, b, both].forEach((m) => m.dispose());
 * ```
 */
export async function averageModels(
  members: LayersModel[],
): Promise<LayersModel> {
  if (members.length < 2) {
    throw new Error(
      `ensemble: needs two or more members (got ${members.length})`,
    );
  }
  const parts = members.map((m, i) => memberLayers(m, i + 1));
  const average: LayerJson = {
    name: "average",
    class_name: "Average",
    config: { name: "average", trainable: true },
    inbound_nodes: [parts.map((p) => [p.output, 0, 0, {}])],
  };
  const topology: ModelTopology = {
    class_name: "Model",
    config: {
      name: "ensemble",
      layers: [parts[0].input, ...parts.flatMap((p) => p.layers), average],
      input_layers: [["input", 0, 0]],
      output_layers: [["average", 0, 0]],
    },
  };
  const model = await modelFromTopology(topology);
  members.forEach((member, i) => {
    for (const layer of member.layers) {
      const weights = layer.getWeights();
      if (weights.length) {
        model.getLayer(`m${i + 1}_${layer.name}`).setWeights(weights);
      }
    }
  });
  return model;
}

/** What fixes a model's splits, and whether it was refit on its validation split. */
function splitKey(m: ModelMetadata): string {
  return `${splitDescription(m)}, refit ${
    m.training.split?.validationTrained ?? false
  }`;
}

/**
 * Why the saved models with these metadata cannot form one ensemble (empty
 * when they can): they must classify the same classes in the same order
 * from the same input, and share one training split (the same dataset,
 * split seed, fractions, grouping radius, and all refits or none), so that
 * no member has trained on the ensemble's validation or test scans. Runs
 * that differ only in `train --train-seed` share their split.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ensembleProblems } from "./ensemble.ts";
 * import { defaultPreprocessing, type ModelMetadata } from "./saved_model.ts";
 * const base = {
 *   classes: ["a", "b"], inputSize: 32, channels: 1,
 *   preprocessing: defaultPreprocessing(32), datasetFingerprint: "f",
 *   training: { seed: 42, split: { validation: 0.15, test: 0.2 } },
 * } as unknown as ModelMetadata;
 * assert.deepEqual(ensembleProblems([base, base]), []);
 * const other = { ...base, training: { seed: 7, split: base.training.split } } as ModelMetadata;
 * assert.match(ensembleProblems([base, other])[0], /member 2 was trained on another split/);
 * ```
 */
export function ensembleProblems(members: ModelMetadata[]): string[] {
  if (members.length < 2) return ["an ensemble needs two or more models"];
  const [first, ...rest] = members;
  const problems: string[] = [];
  rest.forEach((m, i) => {
    const which = `member ${i + 2}`;
    if (JSON.stringify(m.classes) !== JSON.stringify(first.classes)) {
      problems.push(
        `${which} has classes [${m.classes}], member 1 [${first.classes}]`,
      );
    }
    if (
      m.inputSize !== first.inputSize || m.channels !== first.channels ||
      !samePreprocessing(m.preprocessing, first.preprocessing)
    ) {
      problems.push(`${which} takes another input or preprocessing`);
    }
    if (splitKey(m) !== splitKey(first)) {
      problems.push(
        `${which} was trained on another split (dataset, seed, fractions, ` +
          "grouping radius or refit differ): its training scans could be in " +
          "the ensemble's test split",
      );
    }
  });
  return problems;
}
