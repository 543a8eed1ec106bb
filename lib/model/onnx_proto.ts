/**
 * ONNX files as plain objects: the part of the ONNX format an exported
 * classifier needs (a model, its graph, nodes, attributes, weight tensors,
 * typed inputs and outputs, string metadata), encoded and decoded with
 * `protobufjs` from the ONNX project's own schema, `onnx.proto` (ONNX 1.23.1,
 * Apache-2.0), kept unchanged beside this module.
 *
 * Weights are stored as `raw_data` (little-endian), as ONNX's own tools write
 * them. The schema is parsed once, on first use.
 *
 * @module
 */
import protobuf from "protobufjs";

/** The ONNX element types this module writes, by name. */
export const ONNX_DATA_TYPES = { float: 1, int64: 7 } as const;

/** An element type {@linkcode ONNX_DATA_TYPES} names. */
export type OnnxDataType = keyof typeof ONNX_DATA_TYPES;

/** A constant tensor of the graph (a weight, a shape, a pad list). */
export interface OnnxTensor {
  /** The name nodes refer to it by. */
  name: string;
  /** Its dimensions (an empty list: a scalar). */
  dims: number[];
  /** The values, row-major: float32 or int64. */
  data: Float32Array | BigInt64Array;
}

/** One attribute value, tagged with its ONNX type. */
export type OnnxAttributeValue =
  | { int: number }
  | { ints: number[] }
  | { float: number }
  | { floats: number[] }
  | { string: string };

/** One operator application. */
export interface OnnxNode {
  /** The operator, e.g. `"Conv"`. */
  opType: string;
  /** A name unique in the graph (ONNX tools show it). */
  name: string;
  /** Names of the input values, in the operator's order. */
  inputs: string[];
  /** Names of the output values. */
  outputs: string[];
  /** Attributes by name. */
  attributes?: Record<string, OnnxAttributeValue>;
}

/** A typed graph input or output; a string dimension is symbolic (dynamic). */
export interface OnnxValueInfo {
  /** The value's name. */
  name: string;
  /** Its element type. */
  type: OnnxDataType;
  /** Its dimensions: a number is fixed, a string names a dynamic dimension. */
  shape: (number | string)[];
}

/** A whole ONNX model in the default (`ai.onnx`) operator domain. */
export interface OnnxModel {
  /** The ONNX IR version the file claims. */
  irVersion: number;
  /** The `ai.onnx` operator set version. */
  opset: number;
  /** Who wrote the file. */
  producerName: string;
  /** The producer's version. */
  producerVersion: string;
  /** The graph's name. */
  graphName: string;
  /** Operator applications in topological order. */
  nodes: OnnxNode[];
  /** Constant tensors. */
  initializers: OnnxTensor[];
  /** Graph inputs. */
  inputs: OnnxValueInfo[];
  /** Graph outputs. */
  outputs: OnnxValueInfo[];
  /** `metadata_props`: free-form key–value strings. */
  metadata: Record<string, string>;
  /** A description of the model. */
  docString?: string;
}

/** `AttributeProto.AttributeType` values, by the tag of {@linkcode OnnxAttributeValue}. */
const ATTRIBUTE_TYPES = { float: 1, int: 2, string: 3, floats: 6, ints: 7 };

let schema: protobuf.Type | undefined;

/** `onnx.ModelProto`, from `onnx.proto` beside this module (parsed once). */
function modelProto(): protobuf.Type {
  if (!schema) {
    const text = Deno.readTextFileSync(
      new URL("./onnx.proto", import.meta.url),
    );
    schema = protobuf.parse(text).root.lookupType("onnx.ModelProto");
  }
  return schema;
}

function tensorObject(tensor: OnnxTensor): Record<string, unknown> {
  const { data } = tensor;
  const size = tensor.dims.reduce((a, b) => a * b, 1);
  if (data.length !== size) {
    throw new Error(
      `ONNX tensor ${tensor.name}: ${data.length} values for dims [${tensor.dims}]`,
    );
  }
  const rawData = new Uint8Array(data.byteLength);
  const view = new DataView(rawData.buffer);
  if (data instanceof Float32Array) {
    data.forEach((v, i) => view.setFloat32(4 * i, v, true));
  } else data.forEach((v, i) => view.setBigInt64(8 * i, v, true));
  return {
    name: tensor.name,
    dims: tensor.dims,
    dataType: data instanceof Float32Array
      ? ONNX_DATA_TYPES.float
      : ONNX_DATA_TYPES.int64,
    rawData,
  };
}

function attributeObject(
  name: string,
  value: OnnxAttributeValue,
): Record<string, unknown> {
  const [tag, v] = Object.entries(value)[0] as [
    keyof typeof ATTRIBUTE_TYPES,
    unknown,
  ];
  const field = {
    float: "f",
    int: "i",
    string: "s",
    floats: "floats",
    ints: "ints",
  }[tag];
  const encoded = tag === "string" ? new TextEncoder().encode(v as string) : v;
  return { name, type: ATTRIBUTE_TYPES[tag], [field]: encoded };
}

function valueInfoObject(info: OnnxValueInfo): Record<string, unknown> {
  return {
    name: info.name,
    type: {
      tensorType: {
        elemType: ONNX_DATA_TYPES[info.type],
        shape: {
          dim: info.shape.map((d) =>
            typeof d === "string" ? { dimParam: d } : { dimValue: d }
          ),
        },
      },
    },
  };
}

/**
 * The bytes of an ONNX file (a serialised `onnx.ModelProto`).
 *
 * @example A graph of one node, read back
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeOnnxModel, encodeOnnxModel } from "./onnx_proto.ts";
 * const bytes = encodeOnnxModel({
 *   irVersion: 7, opset: 13, producerName: "brain-mri-cnn", producerVersion: "1",
 *   graphName: "g",
 *   nodes: [{ opType: "Relu", name: "relu", inputs: ["x"], outputs: ["y"] }],
 *   initializers: [],
 *   inputs: [{ name: "x", type: "float", shape: ["batch", 4] }],
 *   outputs: [{ name: "y", type: "float", shape: ["batch", 4] }],
 *   metadata: { classes: '["a","b"]' },
 * });
 * const model = decodeOnnxModel(bytes) as {
 *   producerName: string;
 *   graph: { node: { opType: string }[] };
 *   metadataProps: { key: string; value: string }[];
 * };
 * assert.equal(model.producerName, "brain-mri-cnn");
 * assert.equal(model.graph.node[0].opType, "Relu");
 * assert.deepEqual(model.metadataProps, [{ key: "classes", value: '["a","b"]' }]);
 * ```
 */
export function encodeOnnxModel(model: OnnxModel): Uint8Array {
  const type = modelProto();
  const message = type.fromObject({
    irVersion: model.irVersion,
    opsetImport: [{ domain: "", version: model.opset }],
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    ...(model.docString ? { docString: model.docString } : {}),
    graph: {
      name: model.graphName,
      node: model.nodes.map((node) => ({
        opType: node.opType,
        name: node.name,
        input: node.inputs,
        output: node.outputs,
        attribute: Object.entries(node.attributes ?? {}).map(([name, v]) =>
          attributeObject(name, v)
        ),
      })),
      initializer: model.initializers.map(tensorObject),
      input: model.inputs.map(valueInfoObject),
      output: model.outputs.map(valueInfoObject),
    },
    metadataProps: Object.entries(model.metadata).map(([key, value]) => ({
      key,
      value,
    })),
  });
  return type.encode(message).finish();
}

/**
 * Parses the bytes of an ONNX file into a plain object with the schema's
 * field names in camelCase (`graph.node`, `metadataProps`, ...), 64-bit
 * integers as numbers and bytes as `Uint8Array`s. Throws when the bytes are
 * not an `onnx.ModelProto`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeOnnxModel } from "./onnx_proto.ts";
 * assert.throws(() => decodeOnnxModel(new Uint8Array([0xff, 0xff, 0xff])));
 * ```
 */
export function decodeOnnxModel(bytes: Uint8Array): Record<string, unknown> {
  const type = modelProto();
  return type.toObject(type.decode(bytes), {
    longs: Number,
    defaults: false,
  }) as Record<string, unknown>;
}
