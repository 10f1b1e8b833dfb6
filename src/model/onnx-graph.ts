// A small typed ONNX graph builder: nodes, inputs, outputs, inline and external initializers,
// serialized with the onnx-buf schema (ONNX 1.20, keeps metadata_props).
import { create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
} from 'onnx-buf';
import type { AttributeProto, NodeProto, TensorProto, ValueInfoProto } from 'onnx-buf';

export type OnnxDataType = 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'bool';

const DATA_TYPE_CODES: Record<OnnxDataType, TensorProto_DataType> = {
  float32: TensorProto_DataType.FLOAT,
  float16: TensorProto_DataType.FLOAT16,
  bfloat16: TensorProto_DataType.BFLOAT16,
  int64: TensorProto_DataType.INT64,
  int32: TensorProto_DataType.INT32,
  bool: TensorProto_DataType.BOOL,
};

export function onnxDataTypeCode(dtype: OnnxDataType): number {
  return DATA_TYPE_CODES[dtype];
}

/** A dimension is a fixed size or a symbolic name such as "batch". */
export type Dim = number | string;

/** Attribute values: plain numbers are ints; floats must be marked, so that `1` and `1.0` are never confused. */
export type AttrValue =
  | number
  | number[]
  | string
  | { float: number }
  | { floats: number[] }
  | { tensor: InlineTensor };

export interface InlineTensor {
  dtype: OnnxDataType;
  dims: number[];
  values: ArrayLike<number> | readonly bigint[];
}

export interface ExternalTensorRef {
  dtype: OnnxDataType;
  dims: number[];
  /** File name relative to the model folder (never absolute, never `..`). */
  location: string;
  offset: number;
  length: number;
}

export interface ModelOptions {
  opset: number;
  producerName: string;
  metadata?: Record<string, string>;
}

export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly names = new Set<string>();
  private counter = 0;
  private prefix = '';

  /** Runs `body` with node names prefixed (e.g. "layers.3/mlp"), so graphs read like the checkpoint. */
  scoped<T>(scope: string, body: () => T): T {
    const saved = this.prefix;
    this.prefix = saved ? `${saved}/${scope}` : scope;
    try {
      return body();
    } finally {
      this.prefix = saved;
    }
  }

  input(name: string, dtype: OnnxDataType, dims: Dim[]): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, dtype, dims));
    return name;
  }

  /** Declares `value` as a graph output named `name` (an Identity is added when the names differ). */
  output(value: string, name: string, dtype: OnnxDataType, dims: Dim[]): void {
    if (value !== name) {
      this.claim(name);
      this.nodes.push(create(NodeProtoSchema, { opType: 'Identity', input: [value], output: [name], name: `${name}/Identity` }));
    }
    this.outputs.push(valueInfo(name, dtype, dims));
  }

  /** Adds a node and returns its output names. */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputCount = 1, domain = ''): string[] {
    const base = this.freshName(opType);
    const outputs = Array.from({ length: outputCount }, (_, i) => (i === 0 ? base : `${base}:${i}`));
    for (const out of outputs.slice(1)) this.claim(out);
    this.nodes.push(
      create(NodeProtoSchema, {
        opType,
        domain,
        name: base,
        input: inputs,
        output: outputs,
        attribute: Object.entries(attrs).map(([key, value]) => attribute(key, value)),
      }),
    );
    return outputs;
  }

  /**
   * A single-output node with an exact name (exporters that follow another tool's naming, e.g. Optimum's
   * `/model/layers.0/mlp/down_proj/MatMul`); its output is `${name}_output_0`, as torch.onnx names it.
   */
  namedOp(name: string, opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    const output = `${name}_output_0`;
    this.claim(name);
    this.claim(output);
    this.nodes.push(
      create(NodeProtoSchema, {
        opType,
        name,
        input: inputs,
        output: [output],
        attribute: Object.entries(attrs).map(([key, value]) => attribute(key, value)),
      }),
    );
    return output;
  }

  /** Single-output shorthand for `node`. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.node(opType, inputs, attrs)[0]!;
  }

  constant(tensor: InlineTensor, hint = 'const'): string {
    const name = this.freshName(hint);
    this.initializers.push(inlineTensorProto(name, tensor));
    return name;
  }

  /** Scalar or 1-D int64 constant, the form shape and axes inputs take. */
  int64s(values: number[], hint = 'ints'): string {
    return this.constant({ dtype: 'int64', dims: [values.length], values: values.map(BigInt) }, hint);
  }

  externalInitializer(name: string, ref: ExternalTensorRef): string {
    this.claim(name);
    this.initializers.push(
      create(TensorProtoSchema, {
        name,
        dims: ref.dims.map(BigInt),
        dataType: onnxDataTypeCode(ref.dtype),
        dataLocation: TensorProto_DataLocation.EXTERNAL,
        externalData: [
          create(StringStringEntryProtoSchema, { key: 'location', value: ref.location }),
          create(StringStringEntryProtoSchema, { key: 'offset', value: String(ref.offset) }),
          create(StringStringEntryProtoSchema, { key: 'length', value: String(ref.length) }),
        ],
      }),
    );
    return name;
  }

  /** Claims the names an existing graph uses, so values added here never collide with them. */
  reserve(names: Iterable<string>): void {
    for (const name of names) this.names.add(name);
  }

  /** Hands over what was built so far, to be spliced into an existing graph (an imported ONNX export). */
  drain(): { nodes: NodeProto[]; inputs: ValueInfoProto[]; outputs: ValueInfoProto[]; initializers: TensorProto[] } {
    return { nodes: this.nodes.splice(0), inputs: this.inputs.splice(0), outputs: this.outputs.splice(0), initializers: this.initializers.splice(0) };
  }

  get nodeCount(): number {
    return this.nodes.length;
  }

  toModelBytes(options: ModelOptions): Uint8Array {
    const graph = create(GraphProtoSchema, {
      name: 'swserve',
      node: this.nodes,
      input: this.inputs,
      output: this.outputs,
      initializer: this.initializers,
    });
    const model = create(ModelProtoSchema, {
      irVersion: IR_VERSION,
      producerName: options.producerName,
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(options.opset) })],
      graph,
      metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) =>
        create(StringStringEntryProtoSchema, { key, value }),
      ),
    });
    return toBinary(ModelProtoSchema, model);
  }

  private freshName(hint: string): string {
    let name: string;
    do {
      name = `${this.prefix ? `${this.prefix}/` : ''}${hint}_${this.counter++}`;
    } while (this.names.has(name));
    this.claim(name);
    return name;
  }

  private claim(name: string): void {
    if (this.names.has(name)) throw new Error(`duplicate ONNX value name ${name}`);
    this.names.add(name);
  }
}

// IR version 8 pairs with opsets up to 18 (onnx/docs/Versioning.md); onnxruntime 1.30 reads up to 11.
const IR_VERSION = 8n;

/** A typed, shaped graph input or output declaration. */
export function valueInfo(name: string, dtype: OnnxDataType, dims: Dim[]): ValueInfoProto {
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: {
        case: 'tensorType',
        value: create(TypeProto_TensorSchema, {
          elemType: onnxDataTypeCode(dtype),
          shape: create(TensorShapeProtoSchema, {
            dim: dims.map((d) =>
              create(TensorShapeProto_DimensionSchema, {
                value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d },
              }),
            ),
          }),
        }),
      },
    }),
  });
}

function attribute(name: string, value: AttrValue): AttributeProto {
  const T = AttributeProto_AttributeType;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: ${value} is not an int; wrap floats as {float}`);
    return create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(value) });
  }
  if (typeof value === 'string') return create(AttributeProtoSchema, { name, type: T.STRING, s: new TextEncoder().encode(value) });
  if (Array.isArray(value)) return create(AttributeProtoSchema, { name, type: T.INTS, ints: value.map(BigInt) });
  if ('float' in value) return create(AttributeProtoSchema, { name, type: T.FLOAT, f: value.float });
  if ('floats' in value) return create(AttributeProtoSchema, { name, type: T.FLOATS, floats: value.floats });
  return create(AttributeProtoSchema, { name, type: T.TENSOR, t: inlineTensorProto('', value.tensor) });
}

function inlineTensorProto(name: string, tensor: InlineTensor): TensorProto {
  return create(TensorProtoSchema, {
    name,
    dims: tensor.dims.map(BigInt),
    dataType: onnxDataTypeCode(tensor.dtype),
    rawData: rawBytes(tensor),
  });
}

function rawBytes(tensor: InlineTensor): Uint8Array<ArrayBuffer> {
  const values = tensor.values;
  switch (tensor.dtype) {
    case 'float32':
      return new Uint8Array(Float32Array.from(values as ArrayLike<number>).buffer);
    case 'int64':
      return new Uint8Array(BigInt64Array.from(values as ArrayLike<bigint>, (v) => BigInt(v)).buffer);
    case 'int32':
      return new Uint8Array(Int32Array.from(values as ArrayLike<number>).buffer);
    case 'bool':
      return Uint8Array.from(values as ArrayLike<number>, (v) => (v ? 1 : 0));
    default:
      throw new Error(`inline ${tensor.dtype} constants are not supported; cast a float32 constant in the graph`);
  }
}
