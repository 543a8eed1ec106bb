/**
 * A model's layer graph as JSON (tfjs' Keras-compatible `model.toJSON`),
 * for the transformations that rebuild a model from an edited graph:
 * batch-norm folding (`fold.ts`) and ensembles (`ensemble.ts`).
 * {@linkcode modelTopology} reads any Layers model as a functional graph (a
 * Sequential model becomes an input and a chain);
 * {@linkcode modelFromTopology} builds a model from one.
 *
 * @module
 */
import { type LayersModel, type TF, tf } from "../core/tf.ts";

/** A reference to a layer's output: layer name, node, tensor, call arguments. */
export type LayerRef = [string, number, number, Record<string, unknown>];

/** A layer of a functional graph. */
export interface LayerJson {
  /** The layer's name (also `config.name`). */
  name: string;
  /** Its Keras class, e.g. `Conv2D`. */
  class_name: string;
  /** Its settings, in Keras' snake_case. */
  config: Record<string, unknown>;
  /** Its calls (one per node), each listing the outputs it reads. */
  inbound_nodes: LayerRef[][];
}

/** A functional graph: layers, and which outputs are the model's inputs and outputs. */
export interface ModelTopology {
  class_name: string;
  config: {
    name?: string;
    layers: LayerJson[];
    input_layers: [string, number, number][];
    output_layers: [string, number, number][];
  };
}

type TopologyJson = Parameters<
  TF["models"]["modelFromJSON"]
>[0]["modelTopology"];

/** A Sequential model's JSON as a functional graph: an input, then a chain. */
function sequentialAsFunctional(
  layers: { class_name: string; config: Record<string, unknown> }[],
): ModelTopology {
  const first = layers[0]?.config ?? {};
  const input: LayerJson = {
    name: "input",
    class_name: "InputLayer",
    config: {
      batch_input_shape: first.batch_input_shape,
      dtype: "float32",
      sparse: false,
      name: "input",
    },
    inbound_nodes: [],
  };
  let previous = input.name;
  const chain = layers.map((l) => {
    const config = { ...l.config };
    delete config.batch_input_shape;
    const layer: LayerJson = {
      name: config.name as string,
      class_name: l.class_name,
      config,
      inbound_nodes: [[[previous, 0, 0, {}]]],
    };
    previous = layer.name;
    return layer;
  });
  return {
    class_name: "Model",
    config: {
      layers: [input, ...chain],
      input_layers: [[input.name, 0, 0]],
      output_layers: [[previous, 0, 0]],
    },
  };
}

/**
 * A model's layer graph as functional JSON (a copy: edit it freely). A
 * Sequential model becomes an `input` layer and a chain of its layers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { modelTopology } from "./topology.ts";
 * import { seedCnn } from "./models.ts";
 * const model = seedCnn({ inputSize: 32, channels: 1, numClasses: 4 });
 * const t = modelTopology(model);
 * assert.equal(t.config.layers[0].class_name, "InputLayer");
 * assert.deepEqual(t.config.layers[1].inbound_nodes, [[["input", 0, 0, {}]]]);
 * assert.equal(t.config.output_layers[0][0], "predictions");
 * model.dispose();
 * ```
 */
export function modelTopology(model: LayersModel): ModelTopology {
  const json = structuredClone(model.toJSON(undefined, false)) as unknown as {
    class_name: string;
    config: ModelTopology["config"] | {
      layers: { class_name: string; config: Record<string, unknown> }[];
    };
  };
  return "output_layers" in json.config
    ? json as ModelTopology
    : sequentialAsFunctional(json.config.layers);
}

/** A new model (fresh weights) built from a functional graph. */
export function modelFromTopology(
  topology: ModelTopology,
): Promise<LayersModel> {
  return tf.models.modelFromJSON({
    modelTopology: topology as unknown as TopologyJson,
  });
}
