// Reads an existing ONNX decoder export in Optimum's layout (model.onnx or onnx/model.onnx, weights inline
// or as external data): checks that swserve can serve and instrument it, and finds each layer's down_proj
// through its node name (/model/layers.N/mlp/down_proj/MatMul) and the node's weight input, never by
// initializer name (exports name weights "onnx::MatMul_1234" and store them transposed, [in, out]).
import fs from 'node:fs';
import path from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, TensorProto_DataLocation, TensorProto_DataType, type ModelProto, type NodeProto, type TensorProto } from 'onnx-buf';
import { CheckpointError } from './checkpoint-error.js';
import type { ComputeDtype } from './graph-context.js';
import type { ModelSpec } from './hf-config.js';
import { decodeElements, type SafetensorsDtype } from './safetensors.js';

/** Where exports put the decoder: the folder itself (optimum-cli) or onnx/ (hub repositories of ONNX models). */
export const ONNX_MODEL_FILES = ['model.onnx', path.join('onnx', 'model.onnx')];
// Optimum's older layouts: two graphs, or both merged behind an If on use_cache_branch.
const LEGACY_FILES = ['decoder_model_merged.onnx', 'decoder_with_past_model.onnx', path.join('onnx', 'decoder_model_merged.onnx')];
const SUPPORTED =
  "swserve serves Optimum's single-graph decoder export with past key values (optimum-cli export onnx --task text-generation-with-past, giving model.onnx) in float32 or float16";
// Ops of quantized exports: the switch needs down_proj as a plain float MatMul.
const QUANTIZED_OPS = new Set(['MatMulNBits', 'MatMulInteger', 'QLinearMatMul', 'DequantizeLinear', 'DynamicQuantizeLinear', 'MatMulInteger16', 'QAttention']);
// Instrumentation passes its reduce axes as attributes, which ops take up to opset 17 (design.md).
export const MAX_IMPORT_OPSET = 17;
const DOWN_PROJ_NODE = /^\/model\/layers\.(\d+)\/mlp\/down_proj\/MatMul$/;

export interface DownProjWeight {
  tensor: TensorProto;
  /** Stored [in, out] (x @ W.T exported as MatMul(x, W.T)) rather than Hugging Face's [out, in]. */
  transposed: boolean;
}

export interface DownProjNode {
  layer: number;
  node: NodeProto;
  weight: DownProjWeight;
}

export interface OnnxExport {
  /** The folder holding the .onnx file (external data paths are relative to it). */
  graphDir: string;
  file: string;
  model: ModelProto;
  computeDtype: ComputeDtype;
  downProj: DownProjNode[];
  /** Files the external data lives in, relative to graphDir. */
  externalFiles: string[];
}

/** External data files an .onnx file names (relative to its folder), read without opening it as a model. */
export function onnxExternalFiles(file: string): string[] {
  return externalLocations(fromBinary(ModelProtoSchema, fs.readFileSync(file)));
}

function externalLocations(model: ModelProto): string[] {
  return [...new Set((model.graph?.initializer ?? []).filter(isExternal).map((t) => externalField(t, 'location')!))];
}

export function findOnnxModel(modelDir: string): string | undefined {
  return ONNX_MODEL_FILES.map((f) => path.join(modelDir, f)).find((f) => fs.existsSync(f));
}

/** Whether a folder holds only an ONNX layout swserve refuses (so the refusal can say why). */
export function legacyOnnxFile(modelDir: string): string | undefined {
  return LEGACY_FILES.map((f) => path.join(modelDir, f)).find((f) => fs.existsSync(f));
}

export function legacyLayoutError(file: string): CheckpointError {
  return new CheckpointError(file, `is Optimum's legacy decoder layout (separate or merged with-past graphs, an If on use_cache_branch); ${SUPPORTED}`);
}

export function openOnnxExport(file: string, spec: ModelSpec): OnnxExport {
  const fail = (problem: string): never => {
    throw new CheckpointError(file, problem);
  };
  let model: ModelProto;
  try {
    model = fromBinary(ModelProtoSchema, fs.readFileSync(file));
  } catch (err) {
    return fail(`is not a readable ONNX model (${(err as Error).message})`);
  }
  const graph = model.graph ?? fail('has no graph');
  const inputs = new Map(graph.input.map((i) => [i.name, i]));
  if (inputs.has('use_cache_branch') || graph.node.some((n) => n.opType === 'If')) throw legacyLayoutError(file);
  const quantized = graph.node.find((n) => QUANTIZED_OPS.has(n.opType));
  if (quantized) fail(`is a quantized export (${quantized.opType} at ${quantized.name}); ${SUPPORTED}. Quantize inside swserve instead, which keeps the super weights exact`);
  const opset = Number(model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0);
  if (opset > MAX_IMPORT_OPSET) fail(`uses opset ${opset}; swserve instruments exports of opset ${MAX_IMPORT_OPSET} and below (Optimum's default is 14)`);

  const expected = ['input_ids', 'attention_mask', 'position_ids'];
  for (let l = 0; l < spec.numLayers; l++) expected.push(`past_key_values.${l}.key`, `past_key_values.${l}.value`);
  const missing = expected.filter((n) => !inputs.has(n));
  if (missing.length > 0) fail(`lacks the inputs ${missing.join(', ')}; ${SUPPORTED}`);
  const extra = [...inputs.keys()].filter((n) => !expected.includes(n) && !graph.initializer.some((t) => t.name === n));
  if (extra.length > 0) fail(`has inputs swserve cannot feed: ${extra.join(', ')}; ${SUPPORTED}`);
  const outputs = new Set(graph.output.map((o) => o.name));
  const wantedOutputs = ['logits', ...Array.from({ length: spec.numLayers }, (_, l) => [`present.${l}.key`, `present.${l}.value`]).flat()];
  const absent = wantedOutputs.filter((n) => !outputs.has(n));
  if (absent.length > 0) fail(`lacks the outputs ${absent.join(', ')}; ${SUPPORTED}`);

  const kvValue = inputs.get('past_key_values.0.key')!.type?.value;
  const kvType = kvValue?.case === 'tensorType' ? kvValue.value.elemType : undefined;
  const computeDtype: ComputeDtype | undefined = kvType === TensorProto_DataType.FLOAT ? 'float32' : kvType === TensorProto_DataType.FLOAT16 ? 'float16' : undefined;
  if (!computeDtype) fail(`keeps its KV cache in element type ${kvType}; ${SUPPORTED}`);

  const downProj = findDownProj(graph.node, new Map(graph.initializer.map((t) => [t.name, t])), spec, fail);
  return { graphDir: path.dirname(file), file, model, computeDtype: computeDtype!, downProj, externalFiles: externalLocations(model) };
}

function findDownProj(nodes: NodeProto[], initializers: Map<string, TensorProto>, spec: ModelSpec, fail: (problem: string) => never): DownProjNode[] {
  const producers = new Map(nodes.flatMap((n) => n.output.map((o) => [o, n] as const)));
  const found = new Map<number, DownProjNode>();
  for (const node of nodes) {
    const layer = Number(DOWN_PROJ_NODE.exec(node.name)?.[1] ?? NaN);
    if (!Number.isInteger(layer)) continue;
    if (node.opType !== 'MatMul') fail(`node ${node.name} is a ${node.opType}, not a MatMul`);
    found.set(layer, { layer, node, weight: weightBehind(node.input[1]!, producers, initializers, spec, node.name, fail) });
  }
  const layers = Array.from({ length: spec.numLayers }, (_, l) => found.get(l) ?? fail(`has no node /model/layers.${l}/mlp/down_proj/MatMul (swserve finds down_proj by the node names torch.onnx gives); ${SUPPORTED}`));
  return layers;
}

/** Follows the MatMul's weight input through Identity, Cast and Transpose to the initializer holding it. */
function weightBehind(
  value: string,
  producers: Map<string, NodeProto>,
  initializers: Map<string, TensorProto>,
  spec: ModelSpec,
  nodeName: string,
  fail: (problem: string) => never,
): DownProjWeight {
  let transposes = 0;
  let name = value;
  for (;;) {
    const tensor = initializers.get(name);
    if (tensor) {
      const dims = tensor.dims.map(Number);
      // MatMul(x, W) with W [in, out]; each Transpose on the way flips that.
      const stored = transposes % 2 === 0 ? [spec.intermediateSize, spec.hiddenSize] : [spec.hiddenSize, spec.intermediateSize];
      if (dims.length !== 2 || dims[0] !== stored[0] || dims[1] !== stored[1]) {
        fail(`${nodeName}'s weight has shape [${dims.join(', ')}], config.json implies [${stored.join(', ')}]`);
      }
      if (![TensorProto_DataType.FLOAT, TensorProto_DataType.FLOAT16, TensorProto_DataType.BFLOAT16].includes(tensor.dataType)) {
        fail(`${nodeName}'s weight has element type ${tensor.dataType}; ${SUPPORTED}`);
      }
      return { tensor, transposed: transposes % 2 === 0 };
    }
    const producer = producers.get(name);
    if (!producer || !['Identity', 'Cast', 'Transpose'].includes(producer.opType)) {
      return fail(`${nodeName}'s weight ${value} is ${producer ? `computed by a ${producer.opType}` : 'not an initializer'}; swserve switches plain float weights`);
    }
    if (producer.opType === 'Transpose') transposes++;
    name = producer.input[0]!;
  }
}

export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === TensorProto_DataLocation.EXTERNAL;
}

export function externalField(t: TensorProto, key: string): string | undefined {
  return t.externalData.find((e) => e.key === key)?.value;
}

/** W[row, col] in Hugging Face's [out, in] terms, wherever and however the export stores it. */
export function readDownProjElement(exported: OnnxExport, layer: number, row: number, col: number, spec: ModelSpec): number {
  const { tensor, transposed } = exported.downProj[layer]!.weight;
  const index = transposed ? col * spec.hiddenSize + row : row * spec.intermediateSize + col;
  return readElements(exported, tensor, index, 1)[0]!;
}

/** A whole down_proj as float32 [out, in], for analyses that rank weights. */
export function readDownProj(exported: OnnxExport, layer: number, spec: ModelSpec): Float32Array {
  const { tensor, transposed } = exported.downProj[layer]!.weight;
  const stored = readElements(exported, tensor, 0, spec.hiddenSize * spec.intermediateSize);
  if (!transposed) return stored;
  const out = new Float32Array(stored.length);
  for (let c = 0; c < spec.intermediateSize; c++) for (let r = 0; r < spec.hiddenSize; r++) out[r * spec.intermediateSize + c] = stored[c * spec.hiddenSize + r]!;
  return out;
}

function readElements(exported: OnnxExport, t: TensorProto, first: number, count: number): Float32Array {
  const size = t.dataType === TensorProto_DataType.FLOAT ? 4 : 2;
  let bytes: Uint8Array;
  if (isExternal(t)) {
    bytes = new Uint8Array(count * size);
    const fd = fs.openSync(path.join(exported.graphDir, externalField(t, 'location')!), 'r');
    try {
      fs.readSync(fd, bytes, 0, bytes.length, Number(externalField(t, 'offset') ?? 0) + first * size);
    } finally {
      fs.closeSync(fd);
    }
  } else if (t.rawData.length > 0) {
    bytes = t.rawData.subarray(first * size, (first + count) * size);
  } else if (t.dataType === TensorProto_DataType.FLOAT) {
    return Float32Array.from(t.floatData.slice(first, first + count));
  } else {
    // float16/bfloat16 without raw_data keep their bits in int32_data.
    bytes = new Uint8Array(Uint16Array.from(t.int32Data.slice(first, first + count)).buffer);
  }
  return decodeElements(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), STORED_AS[t.dataType]!);
}

const STORED_AS: Record<number, SafetensorsDtype> = { [TensorProto_DataType.FLOAT]: 'F32', [TensorProto_DataType.FLOAT16]: 'F16', [TensorProto_DataType.BFLOAT16]: 'BF16' };

/** Elements of every initializer (the export's parameter count; small constants included). */
export function onnxParameterCount(exported: OnnxExport): number {
  return exported.model.graph!.initializer.filter((t) => t.dims.length >= 1).reduce((sum, t) => sum + t.dims.reduce((a, d) => a * Number(d), 1), 0);
}
