// Exports a tiny Llama checkpoint (tiny-checkpoint.ts) as an ONNX decoder laid out the way Optimum's
// `optimum-cli export onnx --task text-generation-with-past` writes one: inputs input_ids,
// attention_mask [B, past + T], position_ids and past_key_values.N.{key,value}; outputs logits [B, T, V]
// and present.N.{key,value}; node names as torch.onnx traces them (/model/layers.N/mlp/down_proj/MatMul)
// with anonymous weights stored transposed ([in, out], "onnx::MatMul_N"), the causal mask built inside
// the graph from attention_mask, opset 14, weights inline or in model.onnx_data. Written with its own
// small emitter (not src/model's graph builder; only its value declarations) so the import is tested
// against a graph swserve did not make.
// Variants produce the layouts swserve refuses: the legacy merged decoder and a MatMulNBits export.
import fs from 'node:fs';
import path from 'node:path';
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
  type AttributeProto,
  type NodeProto,
  type TensorProto,
} from 'onnx-buf';
import { valueInfo } from '../../src/model/onnx-graph.js';
import type { TinyCheckpoint } from './tiny-checkpoint.js';

export interface OptimumExportOptions {
  /** Weights in model.onnx_data (as exports over 2 GB must be) instead of inline. */
  externalData?: boolean;
  /** Put model.onnx under onnx/ as hub repositories of ONNX models do. */
  subfolder?: boolean;
  variant?: 'decoder' | 'legacy-merged' | 'matmulnbits';
}

const OPSET = 14;
const F32 = TensorProto_DataType.FLOAT;
const I64 = TensorProto_DataType.INT64;

class Emitter {
  nodes: NodeProto[] = [];
  initializers: TensorProto[] = [];
  private anonymous = 0;
  private data: Buffer[] = [];
  private dataBytes = 0;

  constructor(private readonly externalFile?: string) {}

  /** A node named as torch.onnx names them; its outputs are <name>_output_<i>. */
  op(name: string, opType: string, inputs: string[], attrs: Record<string, number | number[] | { f: number } | { t: TensorProto }> = {}, outputs = 1, domain = ''): string[] {
    const out = Array.from({ length: outputs }, (_, i) => `${name}_output_${i}`);
    this.nodes.push(create(NodeProtoSchema, { name, opType, domain, input: inputs, output: out, attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)) }));
    return out;
  }

  one(name: string, opType: string, inputs: string[], attrs: Record<string, number | number[] | { f: number } | { t: TensorProto }> = {}): string {
    return this.op(name, opType, inputs, attrs)[0]!;
  }

  ints(values: number[]): string {
    return this.tensor(`onnx::Constant_${this.anonymous++}`, I64, [values.length], Buffer.from(BigInt64Array.from(values.map(BigInt)).buffer));
  }

  floats(dims: number[], values: Float32Array, name = `onnx::MatMul_${this.anonymous++}`): string {
    return this.tensor(name, F32, dims, Buffer.from(values.buffer, values.byteOffset, values.byteLength), true);
  }

  private tensor(name: string, dataType: number, dims: number[], bytes: Buffer, weight = false): string {
    if (weight && this.externalFile) {
      const offset = this.dataBytes;
      this.data.push(bytes);
      this.dataBytes += bytes.length;
      this.initializers.push(
        create(TensorProtoSchema, {
          name,
          dataType,
          dims: dims.map(BigInt),
          dataLocation: TensorProto_DataLocation.EXTERNAL,
          externalData: [
            create(StringStringEntryProtoSchema, { key: 'location', value: this.externalFile }),
            create(StringStringEntryProtoSchema, { key: 'offset', value: String(offset) }),
            create(StringStringEntryProtoSchema, { key: 'length', value: String(bytes.length) }),
          ],
        }),
      );
    } else {
      this.initializers.push(create(TensorProtoSchema, { name, dataType, dims: dims.map(BigInt), rawData: new Uint8Array(bytes) }));
    }
    return name;
  }

  externalBytes(): Buffer {
    return Buffer.concat(this.data);
  }
}

function attr(name: string, value: number | number[] | { f: number } | { t: TensorProto }): AttributeProto {
  const T = AttributeProto_AttributeType;
  if (typeof value === 'number') return create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(value) });
  if (Array.isArray(value)) return create(AttributeProtoSchema, { name, type: T.INTS, ints: value.map(BigInt) });
  if ('f' in value) return create(AttributeProtoSchema, { name, type: T.FLOAT, f: value.f });
  return create(AttributeProtoSchema, { name, type: T.TENSOR, t: value.t });
}

/** [out, in] (Hugging Face) -> [in, out] (what torch.onnx stores for x @ W.T). */
function transposed(w: { shape: number[]; data: Float32Array }): Float32Array {
  const [rows, cols] = w.shape as [number, number];
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w.data[r * cols + c]!;
  return out;
}

/** Writes the export (model.onnx, config and tokenizer files) into `outDir`; returns the folder holding model.onnx. */
export function exportOptimumLayout(tiny: TinyCheckpoint, outDir: string, options: OptimumExportOptions = {}): string {
  if (tiny.arch !== 'llama') throw new Error('the Optimum-layout exporter writes Llama graphs');
  const modelDir = options.subfolder ? path.join(outDir, 'onnx') : outDir;
  fs.mkdirSync(modelDir, { recursive: true });
  for (const file of fs.readdirSync(tiny.dir)) if (!file.includes('safetensors')) fs.copyFileSync(path.join(tiny.dir, file), path.join(outDir, file));
  const e = new Emitter(options.externalData ? 'model.onnx_data' : undefined);
  const c = tiny.config;
  const H = c.hidden_size;
  const heads = c.num_attention_heads;
  const kvHeads = c.num_key_value_heads;
  const D = H / heads;
  const w = (name: string) => tiny.weights.get(name)!;
  const matmul = (name: string, x: string, weight: string): string => e.one(name, 'MatMul', [x, e.floats([w(weight).shape[1]!, w(weight).shape[0]!], transposed(w(weight)))]);
  const rmsNorm = (scope: string, x: string, weight: string): string => {
    const variance = e.one(`${scope}/ReduceMean`, 'ReduceMean', [e.one(`${scope}/Pow`, 'Pow', [x, e.floats([], Float32Array.of(2), `${scope}/Constant`)])], { axes: [-1], keepdims: 1 });
    const denom = e.one(`${scope}/Sqrt`, 'Sqrt', [e.one(`${scope}/Add`, 'Add', [variance, e.floats([], Float32Array.of(c.rms_norm_eps as number), `${scope}/Constant_1`)])]);
    return e.one(`${scope}/Mul_1`, 'Mul', [e.floats([H], w(weight).data, `${weight}`), e.one(`${scope}/Div`, 'Div', [x, denom])]);
  };

  // The 4-D additive mask from attention_mask and the shapes, as transformers' traced causal mask does.
  const seqLen = e.one('/model/Gather_1', 'Gather', [e.one('/model/Shape_1', 'Shape', ['input_ids']), e.ints([1])]);
  const total = e.one('/model/Gather_2', 'Gather', [e.one('/model/Shape_2', 'Shape', ['attention_mask']), e.ints([1])]);
  const past = e.one('/model/Sub', 'Sub', [total, seqLen]);
  const zero = e.ints([0]);
  const one = e.ints([1]);
  const queryPos = e.one('/model/Add_q', 'Add', [e.one('/model/Range', 'Range', [e.one('/model/Squeeze_0', 'Squeeze', [zero]), e.one('/model/Squeeze_1', 'Squeeze', [seqLen]), e.one('/model/Squeeze_2', 'Squeeze', [one])]), past]);
  const keyPos = e.one('/model/Range_1', 'Range', [e.one('/model/Squeeze_3', 'Squeeze', [zero]), e.one('/model/Squeeze_4', 'Squeeze', [total]), e.one('/model/Squeeze_5', 'Squeeze', [one])]);
  const causal = e.one('/model/LessOrEqual', 'LessOrEqual', [e.one('/model/Unsqueeze_k', 'Unsqueeze', [keyPos, e.ints([0])]), e.one('/model/Unsqueeze_q', 'Unsqueeze', [queryPos, e.ints([1])])]);
  const valid = e.one('/model/Unsqueeze_m', 'Unsqueeze', [e.one('/model/Cast_m', 'Cast', ['attention_mask'], { to: TensorProto_DataType.BOOL }), e.ints([1, 2])]);
  const allowed = e.one('/model/And', 'And', [e.one('/model/Unsqueeze_c', 'Unsqueeze', [causal, e.ints([0, 1])]), valid]);
  const mask = e.one('/model/Where', 'Where', [allowed, e.floats([], Float32Array.of(0), '/model/Constant_zero'), e.floats([], Float32Array.of(-3.4028234663852886e38), '/model/Constant_min')]);

  const inv = Float32Array.from({ length: D / 2 }, (_, i) => 1 / (c.rope_theta as number) ** ((2 * i) / D));
  const freqs = e.one('/model/rotary_emb/Mul', 'Mul', [e.one('/model/rotary_emb/Unsqueeze', 'Unsqueeze', [e.one('/model/rotary_emb/Cast', 'Cast', ['position_ids'], { to: F32 }), e.ints([2])]), e.floats([D / 2], inv, '/model/rotary_emb/inv_freq')]);
  const emb = e.one('/model/rotary_emb/Unsqueeze_1', 'Unsqueeze', [e.one('/model/rotary_emb/Concat', 'Concat', [freqs, freqs], { axis: -1 }), e.ints([1])]);
  const cos = e.one('/model/rotary_emb/Cos', 'Cos', [emb]);
  const sin = e.one('/model/rotary_emb/Sin', 'Sin', [emb]);
  const rope = (scope: string, x: string): string => {
    const [a, b] = e.op(`${scope}/Split`, 'Split', [x, e.ints([D / 2, D / 2])], { axis: -1 }, 2) as [string, string];
    const rotated = e.one(`${scope}/Concat`, 'Concat', [e.one(`${scope}/Neg`, 'Neg', [b]), a], { axis: -1 });
    return e.one(`${scope}/Add`, 'Add', [e.one(`${scope}/Mul`, 'Mul', [x, cos]), e.one(`${scope}/Mul_1`, 'Mul', [rotated, sin])]);
  };
  const heads4 = (scope: string, x: string, n: number): string =>
    e.one(`${scope}/Transpose`, 'Transpose', [e.one(`${scope}/Reshape`, 'Reshape', [x, e.ints([0, 0, n, D])])], { perm: [0, 2, 1, 3] });

  let h = e.one('/model/embed_tokens/Gather', 'Gather', [e.floats(w('model.embed_tokens.weight').shape, w('model.embed_tokens.weight').data, 'model.embed_tokens.weight'), 'input_ids']);
  const inputs = [valueInfo('input_ids', 'int64', ['batch_size', 'sequence_length']), valueInfo('attention_mask', 'int64', ['batch_size', 'past_sequence_length + sequence_length']), valueInfo('position_ids', 'int64', ['batch_size', 'sequence_length'])];
  const outputs = [valueInfo('logits', 'float32', ['batch_size', 'sequence_length', c.vocab_size])];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `/model/layers.${l}`;
    const hf = `model.layers.${l}.`;
    const x = rmsNorm(`${p}/input_layernorm`, h, `${hf}input_layernorm.weight`);
    const q = rope(`${p}/self_attn/q`, heads4(`${p}/self_attn/q`, matmul(`${p}/self_attn/q_proj/MatMul`, x, `${hf}self_attn.q_proj.weight`), heads));
    const k = rope(`${p}/self_attn/k`, heads4(`${p}/self_attn/k`, matmul(`${p}/self_attn/k_proj/MatMul`, x, `${hf}self_attn.k_proj.weight`), kvHeads));
    const v = heads4(`${p}/self_attn/v`, matmul(`${p}/self_attn/v_proj/MatMul`, x, `${hf}self_attn.v_proj.weight`), kvHeads);
    inputs.push(valueInfo(`past_key_values.${l}.key`, 'float32', ['batch_size', kvHeads, 'past_sequence_length', D]), valueInfo(`past_key_values.${l}.value`, 'float32', ['batch_size', kvHeads, 'past_sequence_length', D]));
    const keys = e.one(`${p}/self_attn/Concat_k`, 'Concat', [`past_key_values.${l}.key`, k], { axis: 2 });
    const values = e.one(`${p}/self_attn/Concat_v`, 'Concat', [`past_key_values.${l}.value`, v], { axis: 2 });
    e.one(`${p}/self_attn/present_k`, 'Identity', [keys]);
    e.nodes.at(-1)!.output[0] = `present.${l}.key`;
    e.one(`${p}/self_attn/present_v`, 'Identity', [values]);
    e.nodes.at(-1)!.output[0] = `present.${l}.value`;
    outputs.push(valueInfo(`present.${l}.key`, 'float32', ['batch_size', kvHeads, 'past_sequence_length + sequence_length', D]), valueInfo(`present.${l}.value`, 'float32', ['batch_size', kvHeads, 'past_sequence_length + sequence_length', D]));
    // repeat_kv: [B, kvH, S, D] -> [B, heads, S, D]
    const repeat = (name: string, t: string): string =>
      e.one(`${p}/self_attn/${name}/Reshape`, 'Reshape', [
        e.one(`${p}/self_attn/${name}/Expand`, 'Expand', [e.one(`${p}/self_attn/${name}/Unsqueeze`, 'Unsqueeze', [t, e.ints([2])]), e.ints([1, 1, heads / kvHeads, 1, 1])]),
        e.ints([0, heads, -1, D]),
      ]);
    const scores = e.one(`${p}/self_attn/Add_mask`, 'Add', [
      e.one(`${p}/self_attn/Mul_scale`, 'Mul', [e.one(`${p}/self_attn/MatMul`, 'MatMul', [q, e.one(`${p}/self_attn/Transpose_k`, 'Transpose', [repeat('repeat_k', `present.${l}.key`)], { perm: [0, 1, 3, 2] })]), e.floats([], Float32Array.of(1 / Math.sqrt(D)), `${p}/self_attn/Constant_scale`)]),
      mask,
    ]);
    const context = e.one(`${p}/self_attn/MatMul_1`, 'MatMul', [e.one(`${p}/self_attn/Softmax`, 'Softmax', [scores], { axis: -1 }), repeat('repeat_v', `present.${l}.value`)]);
    const merged = e.one(`${p}/self_attn/Reshape_o`, 'Reshape', [e.one(`${p}/self_attn/Transpose_o`, 'Transpose', [context], { perm: [0, 2, 1, 3] }), e.ints([0, 0, H])]);
    h = e.one(`${p}/Add`, 'Add', [h, matmul(`${p}/self_attn/o_proj/MatMul`, merged, `${hf}self_attn.o_proj.weight`)]);
    const x2 = rmsNorm(`${p}/post_attention_layernorm`, h, `${hf}post_attention_layernorm.weight`);
    const gate = matmul(`${p}/mlp/gate_proj/MatMul`, x2, `${hf}mlp.gate_proj.weight`);
    const act = e.one(`${p}/mlp/act_fn/Mul`, 'Mul', [gate, e.one(`${p}/mlp/act_fn/Sigmoid`, 'Sigmoid', [gate])]);
    const downIn = e.one(`${p}/mlp/Mul`, 'Mul', [act, matmul(`${p}/mlp/up_proj/MatMul`, x2, `${hf}mlp.up_proj.weight`)]);
    const down =
      options.variant === 'matmulnbits'
        ? e.one(`${p}/mlp/down_proj/MatMul_Q4`, 'MatMulNBits', [downIn, e.ints([0]), e.ints([0])], { K: c.intermediate_size, N: H, bits: 4, block_size: 32 })
        : matmul(`${p}/mlp/down_proj/MatMul`, downIn, `${hf}mlp.down_proj.weight`);
    if (options.variant === 'matmulnbits') e.nodes.at(-1)!.domain = 'com.microsoft';
    h = e.one(`${p}/Add_1`, 'Add', [h, down]);
  }
  const final = rmsNorm('/model/norm', h, 'model.norm.weight');
  const lmHead = c.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  e.one('/lm_head/MatMul', 'MatMul', [final, e.floats([H, c.vocab_size], transposed(w(lmHead)))]);
  e.nodes.at(-1)!.output[0] = 'logits';

  let graph = create(GraphProtoSchema, { name: 'main_graph', node: e.nodes, initializer: e.initializers, input: inputs, output: outputs });
  if (options.variant === 'legacy-merged') {
    // decoder_model_merged.onnx: one If on use_cache_branch choosing the with-past or without-past graph.
    const branch = create(GraphProtoSchema, { name: 'with_past', node: graph.node, initializer: graph.initializer, output: outputs });
    graph = create(GraphProtoSchema, {
      name: 'main_graph',
      input: [...inputs, valueInfo('use_cache_branch', 'bool', [1])],
      output: outputs,
      node: [create(NodeProtoSchema, { name: 'optimum::if', opType: 'If', input: ['use_cache_branch'], output: outputs.map((o) => o.name), attribute: [create(AttributeProtoSchema, { name: 'then_branch', type: AttributeProto_AttributeType.GRAPH, g: branch }), create(AttributeProtoSchema, { name: 'else_branch', type: AttributeProto_AttributeType.GRAPH, g: branch })] })],
    });
  }
  const model = create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: 'pytorch',
    producerVersion: '2.5.0',
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(OPSET) }), ...(options.variant === 'matmulnbits' ? [create(OperatorSetIdProtoSchema, { domain: 'com.microsoft', version: 1n })] : [])],
    graph,
  });
  const name = options.variant === 'legacy-merged' ? 'decoder_model_merged.onnx' : 'model.onnx';
  fs.writeFileSync(path.join(modelDir, name), toBinary(ModelProtoSchema, model));
  if (options.externalData) fs.writeFileSync(path.join(modelDir, 'model.onnx_data'), e.externalBytes());
  return modelDir;
}
