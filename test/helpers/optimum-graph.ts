// The decoder graph as Hugging Face Optimum exports it (`optimum-cli export onnx --task
// text-generation-with-past`, torch.onnx under the hood): inputs input_ids, attention_mask [B, P+T],
// position_ids and past_key_values.N.key/value [B, kvH, P, D]; outputs logits [B, T, V] and
// present.N.key/value; eager attention with repeat_kv; node names as torch.onnx gives them
// (`/model/layers.N/mlp/down_proj/MatMul`); MatMul weights as anonymous `[in, out]` initializers.
// Built with swserve's GraphBuilder, sharing no graph code with src/model/decoder-graph.ts.
import type { Checkpoint } from '../../src/model/checkpoint.js';
import type { LayerLayout } from '../../src/model/architectures/layout.js';
import { GraphBuilder, type ExternalTensorRef } from '../../src/model/onnx-graph.js';
import { ropeInverseFrequencies } from '../../src/model/rope.js';

/** Writes a checkpoint tensor (as stored, or a matrix transposed to [in, out]) and says where it went. */
export interface WeightSink {
  write(tensor: string, transposed: boolean): ExternalTensorRef;
}

// Optimum's dimension names.
const B = 'batch_size';
const T = 'sequence_length';
const P = 'past_sequence_length';
const S = 'past_sequence_length + sequence_length';
// transformers fills masked scores with torch.finfo(float32).min, never -inf, so fully padded rows stay finite.
const FLOAT32_MIN = -3.4028234663852886e38;
export const OPTIMUM_OPSET = 17;

interface Ctx {
  g: GraphBuilder;
  checkpoint: Checkpoint;
  sink: WeightSink;
  /** Checkpoint tensor -> initializer, so tied embeddings and shared weights are written once. */
  plainNames: Map<string, string>;
  transposedNames: Map<string, string>;
}

/** An initializer named after the checkpoint tensor (norms, biases, the embedding), as torch.onnx keeps them. */
function plain(ctx: Ctx, tensor: string): string {
  let name = ctx.plainNames.get(tensor);
  if (name === undefined) {
    name = ctx.g.externalInitializer(tensor, ctx.sink.write(tensor, false));
    ctx.plainNames.set(tensor, name);
  }
  return name;
}

/** A MatMul weight: anonymous (`onnx::MatMul_N`) and transposed to [in, out], as torch.onnx writes it. */
function transposed(ctx: Ctx, tensor: string): string {
  let name = ctx.transposedNames.get(tensor);
  if (name === undefined) {
    name = ctx.g.externalInitializer(`onnx::MatMul_${ctx.transposedNames.size}`, ctx.sink.write(tensor, true));
    ctx.transposedNames.set(tensor, name);
  }
  return name;
}

interface Rope {
  cos: string;
  sin: string;
}

function f32(g: GraphBuilder, value: number): string {
  return g.constant({ dtype: 'float32', dims: [], values: [value] }, 'Constant');
}

function matmul(ctx: Ctx, scope: string, x: string, tensor: string, bias?: string): string {
  const y = ctx.g.namedOp(`${scope}/MatMul`, 'MatMul', [x, transposed(ctx, tensor)]);
  return bias ? ctx.g.namedOp(`${scope}/Add`, 'Add', [y, plain(ctx, bias)]) : y;
}

function norm(ctx: Ctx, scope: string, x: string, tensor: string | undefined): string {
  const { g } = ctx;
  const eps = f32(g, ctx.checkpoint.spec.normEps);
  return g.scoped(scope, () => {
    let normed: string;
    if (ctx.checkpoint.layout.norm === 'rms') {
      const variance = g.op('ReduceMean', [g.op('Pow', [x, f32(g, 2)])], { axes: [-1], keepdims: 1 });
      normed = g.op('Mul', [x, g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [variance, eps])])])]);
    } else {
      const centred = g.op('Sub', [x, g.op('ReduceMean', [x], { axes: [-1], keepdims: 1 })]);
      const variance = g.op('ReduceMean', [g.op('Mul', [centred, centred])], { axes: [-1], keepdims: 1 });
      normed = g.op('Div', [centred, g.op('Sqrt', [g.op('Add', [variance, eps])])]);
    }
    return tensor ? g.op('Mul', [normed, plain(ctx, tensor)]) : normed;
  });
}

/** Additive mask [B, 1, T, S]: key slot j is visible to query i when j <= P + i (and within the window) and attention_mask[b, j] = 1. */
function attentionBias(ctx: Ctx, attentionMask: string, inputIds: string, pastKey: string): string {
  const { g } = ctx;
  return g.scoped('/model', () => {
    const scalar = (v: string): string => g.op('Squeeze', [v, g.int64s([0])]);
    const past = scalar(g.op('Shape', [pastKey], { start: 2, end: 3 }));
    const total = g.op('Add', [past, scalar(g.op('Shape', [inputIds], { start: 1, end: 2 }))]);
    const one = g.constant({ dtype: 'int64', dims: [], values: [1n] }, 'Constant');
    const slots = g.op('Unsqueeze', [g.op('Range', [g.constant({ dtype: 'int64', dims: [], values: [0n] }, 'Constant'), total, one]), g.int64s([0])]);
    const queries = g.op('Unsqueeze', [g.op('Range', [past, total, one]), g.int64s([1])]);
    let visible = g.op('LessOrEqual', [slots, queries]);
    const window = ctx.checkpoint.spec.slidingWindow;
    if (window !== undefined) {
      const lowest = g.op('Sub', [queries, g.constant({ dtype: 'int64', dims: [], values: [BigInt(window)] }, 'Constant')]);
      visible = g.op('And', [visible, g.op('Greater', [slots, lowest])]);
    }
    const padding = g.op('Unsqueeze', [g.op('Cast', [attentionMask], { to: 9 }), g.int64s([1, 2])]);
    const allowed = g.op('And', [g.op('Unsqueeze', [visible, g.int64s([0, 1])]), padding]);
    return g.op('Where', [allowed, f32(g, 0), f32(g, FLOAT32_MIN)]);
  });
}

function rotaryTables(ctx: Ctx, positionIds: string): Rope {
  const { g } = ctx;
  const { headDim, ropeTheta, ropeScaling } = ctx.checkpoint.spec;
  return g.scoped('/model/rotary_emb', () => {
    const inv = g.constant({ dtype: 'float32', dims: [headDim / 2], values: ropeInverseFrequencies(headDim, ropeTheta, ropeScaling) }, 'inv_freq');
    const freqs = g.op('Mul', [g.op('Unsqueeze', [g.op('Cast', [positionIds], { to: 1 }), g.int64s([2])]), inv]);
    const emb = g.op('Unsqueeze', [g.op('Concat', [freqs, freqs], { axis: -1 }), g.int64s([1])]);
    return { cos: g.op('Cos', [emb]), sin: g.op('Sin', [emb]) };
  });
}

function applyRotary(ctx: Ctx, x: string, rope: Rope): string {
  const { g } = ctx;
  const half = ctx.checkpoint.spec.headDim / 2;
  const [first, second] = g.node('Split', [x, g.int64s([half, half])], { axis: -1 }, 2) as [string, string];
  const rotated = g.op('Concat', [g.op('Neg', [second]), first], { axis: -1 });
  return g.op('Add', [g.op('Mul', [x, rope.cos]), g.op('Mul', [rotated, rope.sin])]);
}

function heads(ctx: Ctx, x: string, count: number): string {
  const { g } = ctx;
  return g.op('Transpose', [g.op('Reshape', [x, g.int64s([0, 0, count, ctx.checkpoint.spec.headDim])])], { perm: [0, 2, 1, 3] });
}

/** transformers' repeat_kv: [B, kvH, S, D] -> [B, H, S, D]. */
function repeatKv(ctx: Ctx, x: string): string {
  const { g } = ctx;
  const { numHeads, numKvHeads, headDim } = ctx.checkpoint.spec;
  if (numHeads === numKvHeads) return x;
  const expanded = g.op('Expand', [g.op('Unsqueeze', [x, g.int64s([2])]), g.int64s([1, 1, numHeads / numKvHeads, 1, 1])]);
  return g.op('Reshape', [expanded, g.int64s([0, numHeads, -1, headDim])]);
}

function projections(ctx: Ctx, scope: string, x: string, layer: LayerLayout): [string, string, string] {
  const { g } = ctx;
  const { numHeads, numKvHeads, headDim, clipQkv } = ctx.checkpoint.spec;
  const a = layer.attention;
  let qkv: [string, string, string];
  if (a.kind === 'fused') {
    const fused = matmul(ctx, `${scope}/qkv_proj`, x, a.qkv);
    qkv = g.node('Split', [fused, g.int64s([numHeads * headDim, numKvHeads * headDim, numKvHeads * headDim])], { axis: -1 }, 3) as [string, string, string];
  } else {
    qkv = [matmul(ctx, `${scope}/q_proj`, x, a.q, a.qBias), matmul(ctx, `${scope}/k_proj`, x, a.k, a.kBias), matmul(ctx, `${scope}/v_proj`, x, a.v, a.vBias)];
  }
  if (clipQkv === undefined) return qkv;
  return qkv.map((t) => g.op('Clip', [t, f32(g, -clipQkv), f32(g, clipQkv)])) as [string, string, string];
}

function selfAttention(ctx: Ctx, l: number, x: string, layer: LayerLayout, rope: Rope, bias: string): string {
  const { g } = ctx;
  const { numHeads, numKvHeads, headDim } = ctx.checkpoint.spec;
  const scope = `/model/layers.${l}/self_attn`;
  const [q, k, v] = projections(ctx, scope, x, layer);
  return g.scoped(scope, () => {
    const query = applyRotary(ctx, heads(ctx, q, numHeads), rope);
    const cache = [B, numKvHeads, P, headDim];
    const keys = g.op('Concat', [g.input(`past_key_values.${l}.key`, 'float32', cache), applyRotary(ctx, heads(ctx, k, numKvHeads), rope)], { axis: 2 });
    const values = g.op('Concat', [g.input(`past_key_values.${l}.value`, 'float32', cache), heads(ctx, v, numKvHeads)], { axis: 2 });
    g.output(keys, `present.${l}.key`, 'float32', [B, numKvHeads, S, headDim]);
    g.output(values, `present.${l}.value`, 'float32', [B, numKvHeads, S, headDim]);
    const scores = g.op('Mul', [g.op('MatMul', [query, g.op('Transpose', [repeatKv(ctx, keys)], { perm: [0, 1, 3, 2] })]), f32(g, 1 / Math.sqrt(headDim))]);
    const probs = g.op('Softmax', [g.op('Add', [scores, bias])], { axis: -1 });
    const context = g.op('Transpose', [g.op('MatMul', [probs, repeatKv(ctx, values)])], { perm: [0, 2, 1, 3] });
    const merged = g.op('Reshape', [context, g.int64s([0, 0, numHeads * headDim])]);
    return matmul(ctx, `${scope}/o_proj`, merged, layer.o);
  });
}

function mlp(ctx: Ctx, l: number, x: string, layer: LayerLayout): string {
  const { g } = ctx;
  const scope = `/model/layers.${l}/mlp`;
  let gate: string;
  let up: string;
  if (layer.mlp.kind === 'fused') {
    const size = ctx.checkpoint.spec.intermediateSize;
    const fused = matmul(ctx, `${scope}/gate_up_proj`, x, layer.mlp.gateUp);
    [gate, up] = g.scoped(scope, () => g.node('Split', [fused, g.int64s([size, size])], { axis: -1 }, 2) as [string, string]);
  } else {
    gate = matmul(ctx, `${scope}/gate_proj`, x, layer.mlp.gate);
    up = matmul(ctx, `${scope}/up_proj`, x, layer.mlp.up);
  }
  const act = g.namedOp(`${scope}/act_fn/Mul`, 'Mul', [gate, g.namedOp(`${scope}/act_fn/Sigmoid`, 'Sigmoid', [gate])]);
  return matmul(ctx, `${scope}/down_proj`, g.namedOp(`${scope}/Mul`, 'Mul', [act, up]), layer.down);
}

/** The serialized ModelProto; weights go through `sink` (external data). */
export function buildOptimumGraph(checkpoint: Checkpoint, sink: WeightSink): Uint8Array {
  const g = new GraphBuilder();
  const ctx: Ctx = { g, checkpoint, sink, plainNames: new Map(), transposedNames: new Map() };
  const { spec, layout } = checkpoint;
  const inputIds = g.input('input_ids', 'int64', [B, T]);
  const attentionMask = g.input('attention_mask', 'int64', [B, S]);
  const positionIds = g.input('position_ids', 'int64', [B, T]);
  const embed = plain(ctx, layout.embedTokens);
  let hidden = g.namedOp('/model/embed_tokens/Gather', 'Gather', [embed, inputIds], { axis: 0 });
  // The mask reads the past length from layer 0's cache input, declared here so inputs keep Optimum's order.
  const bias = attentionBias(ctx, attentionMask, inputIds, `past_key_values.0.key`);
  const rope = rotaryTables(ctx, positionIds);
  layout.layers.forEach((layer, l) => {
    const attn = selfAttention(ctx, l, norm(ctx, `/model/layers.${l}/input_layernorm`, hidden, layer.inputNorm), layer, rope, bias);
    const h = g.namedOp(`/model/layers.${l}/Add`, 'Add', [hidden, attn]);
    const out = mlp(ctx, l, norm(ctx, `/model/layers.${l}/post_attention_layernorm`, h, layer.postAttentionNorm), layer);
    hidden = g.namedOp(`/model/layers.${l}/Add_1`, 'Add', [h, out]);
  });
  const final = norm(ctx, '/model/norm', hidden, layout.finalNorm);
  const logits = g.namedOp('/lm_head/MatMul', 'MatMul', [final, transposed(ctx, layout.lmHead ?? layout.embedTokens)]);
  g.output(logits, 'logits', 'float32', [B, T, spec.vocabSize]);
  return g.toModelBytes({ opset: OPTIMUM_OPSET, producerName: 'pytorch', metadata: { exported_by: 'swserve test/helpers/optimum-export.ts' } });
}
