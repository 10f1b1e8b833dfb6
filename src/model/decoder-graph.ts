// Builds the ONNX graph of a Llama-family decoder from a checkpoint: embeddings, RMSNorm/LayerNorm,
// RoPE, grouped-query attention over the slot cache (attention.ts), SwiGLU, and (optionally) the
// super-weight switch and activation taps around every down_proj. A step's tokens are flat
// (graph-io.ts), so decode tokens and prefill chunks share every weight read.
import type { LayerLayout } from './architectures/layout.js';
import type { Checkpoint } from './checkpoint.js';
import { attentionGroups, attentionScale, groupAttention, type AttentionGroups } from './attention.js';
import { addLogitsOutputs, norm, toCompute, type ComputeDtype, type GraphContext, type QuantizedGraphWeights } from './graph-context.js';
// Every linear layer goes through linearLayer: MatMulNBits for quantized weights, else the float `linear`.
import { embeddingRows, linearLayer as linear } from './quantized-linear.js';
import { decodePastKey, decodePastValue, INPUT, prefillPastKey, prefillPastValue, presentKey, presentValue } from './graph-io.js';
import { addInstrumentationInputs, addTapOutputs, switchAndTap, type Instrumentation } from './instrumentation.js';
import { GraphBuilder } from './onnx-graph.js';
import { ropeInverseFrequencies } from './rope.js';

export interface DecoderGraphOptions {
  computeDtype: ComputeDtype;
  /** Switch inputs and tap outputs; off only to measure what they cost. */
  instrument: boolean;
  /** Linear layers from this quantized copy (MatMulNBits), computed as `compute` says. */
  quantized?: QuantizedGraphWeights;
  /** Build only the first `layers` layers and their taps, no logits (a cheap reference run of early layers). */
  layers?: number;
}

export interface DecoderGraph {
  bytes: Uint8Array;
  computeDtype: ComputeDtype;
  instrumented: boolean;
  nodeCount: number;
  /** Layers built (all, unless truncated); the graph has KV inputs and outputs for these. */
  layers: number;
  /** Has logits outputs (a truncated graph has only taps). */
  logits: boolean;
  /** The folder onnxruntime resolves external data in: the checkpoint's, or the quantized copy's. */
  externalDataFolder: string;
}

// Opset 17: LayerNormalization and ScatterElements(reduction=add) exist, and reduce ops still take
// `axes` as an attribute (design.md: it becomes an input at 18).
export const DECODER_OPSET = 17;

interface Rope {
  cos: string;
  sin: string;
  /** cos and sin times 1/sqrt(D), so the query comes out of RoPE already scaled. */
  queryCos: string;
  querySin: string;
}

export function buildDecoderGraph(checkpoint: Checkpoint, options: DecoderGraphOptions): DecoderGraph {
  const g = new GraphBuilder();
  const ctx: GraphContext = { g, checkpoint, dtype: options.computeDtype, weights: new Map(), quantized: options.quantized };
  const { spec, layout } = checkpoint;
  const layers = Math.min(options.layers ?? spec.numLayers, spec.numLayers);
  const truncated = layers < spec.numLayers;

  const inputIds = g.input(INPUT.inputIds, 'int64', ['tokens']);
  const positionIds = g.input(INPUT.positionIds, 'int64', ['tokens']);
  const logitsIndex = g.input(INPUT.logitsIndex, 'int64', ['logit_rows']);
  // Symbolic dims are the same size wherever the same name appears (onnxruntime plans memory by them).
  const decodeCache = ['decode_rows', spec.numKvHeads, 'slots', spec.headDim];
  const prefillCache = ['prefill_rows', spec.numKvHeads, 'slots', spec.headDim];
  const past = layout.layers.slice(0, layers).map((_, l) => ({
    decodeKey: g.input(decodePastKey(l), ctx.dtype, decodeCache),
    decodeValue: g.input(decodePastValue(l), ctx.dtype, decodeCache),
    prefillKey: g.input(prefillPastKey(l), ctx.dtype, prefillCache),
    prefillValue: g.input(prefillPastValue(l), ctx.dtype, prefillCache),
  }));
  const groups = attentionGroups(ctx, positionIds, past[0]!.decodeKey);
  const rope = ropeTables(ctx, positionIds);
  const inst = options.instrument ? addInstrumentationInputs(ctx, layers) : undefined;

  let hidden = embeddingRows(ctx, layout.embedTokens, inputIds);
  layout.layers.slice(0, layers).forEach((layer, l) => {
    hidden = g.scoped(`layers.${l}`, () => {
      const attn = g.scoped('self_attn', () =>
        attention(ctx, norm(ctx, layout.norm, hidden, layer.inputNorm, spec.normEps), layer, l, rope, groups, past[l]!),
      );
      const h = g.op('Add', [hidden, attn]);
      const mlpOut = g.scoped('mlp', () => mlp(ctx, norm(ctx, layout.norm, h, layer.postAttentionNorm, spec.normEps), layer, l, inst));
      return g.op('Add', [h, mlpOut]);
    });
  });

  if (!truncated) {
    // Only the requested tokens go through the final norm and the vocabulary projection.
    const selected = g.op('Gather', [hidden, logitsIndex], { axis: 0 });
    const finalHidden = norm(ctx, layout.norm, selected, layout.finalNorm, spec.normEps);
    const logits = linear(ctx, finalHidden, layout.lmHead ?? layout.embedTokens);
    const logits32 = ctx.dtype === 'float32' ? logits : g.op('Cast', [logits], { to: 1 });
    addLogitsOutputs(g, logits32, spec.vocabSize);
  }
  if (inst) addTapOutputs(ctx, inst, layers);

  const bytes = g.toModelBytes({
    opset: DECODER_OPSET,
    producerName: 'swserve',
    metadata: { architecture: spec.architecture, instrumented: String(options.instrument), compute_dtype: options.computeDtype },
  });
  return {
    bytes,
    computeDtype: options.computeDtype,
    instrumented: options.instrument,
    nodeCount: g.nodeCount,
    layers,
    logits: !truncated,
    externalDataFolder: options.quantized?.weights.dir ?? checkpoint.externalDataDir,
  };
}

interface LayerPast {
  decodeKey: string;
  decodeValue: string;
  prefillKey: string;
  prefillValue: string;
}

/** cos/sin tables [N, 1, D] in the rotate_half layout ([freqs, freqs]); the query's carry the 1/sqrt(D) scale. */
function ropeTables(ctx: GraphContext, positionIds: string): Rope {
  const { g } = ctx;
  const { headDim, ropeTheta, ropeScaling } = ctx.checkpoint.spec;
  const inverse = g.constant({ dtype: 'float32', dims: [headDim / 2], values: ropeInverseFrequencies(headDim, ropeTheta, ropeScaling) }, 'inv_freq');
  const positions = g.op('Unsqueeze', [g.op('Cast', [positionIds], { to: 1 }), g.int64s([1])]);
  const freqs = g.op('Mul', [positions, inverse]);
  const angles = g.op('Unsqueeze', [g.op('Concat', [freqs, freqs], { axis: -1 }), g.int64s([1])]);
  const cos = toCompute(ctx, g.op('Cos', [angles]));
  const sin = toCompute(ctx, g.op('Sin', [angles]));
  const scale = attentionScale(ctx);
  return { cos, sin, queryCos: g.op('Mul', [cos, scale]), querySin: g.op('Mul', [sin, scale]) };
}

function applyRope(ctx: GraphContext, x: string, cos: string, sin: string): string {
  const { g } = ctx;
  const half = ctx.checkpoint.spec.headDim / 2;
  const [first, second] = g.node('Split', [x, g.int64s([half, half])], { axis: -1 }, 2) as [string, string];
  const rotated = g.op('Concat', [g.op('Neg', [second]), first], { axis: -1 });
  return g.op('Add', [g.op('Mul', [x, cos]), g.op('Mul', [rotated, sin])]);
}

function projectQkv(ctx: GraphContext, x: string, layer: LayerLayout): [string, string, string] {
  const { g } = ctx;
  const { numHeads, numKvHeads, headDim, clipQkv } = ctx.checkpoint.spec;
  const a = layer.attention;
  let qkv: [string, string, string];
  if (a.kind === 'fused') {
    const fused = linear(ctx, x, a.qkv);
    const sizes = g.int64s([numHeads * headDim, numKvHeads * headDim, numKvHeads * headDim]);
    qkv = g.node('Split', [fused, sizes], { axis: -1 }, 3) as [string, string, string];
  } else {
    qkv = [linear(ctx, x, a.q, a.qBias), linear(ctx, x, a.k, a.kBias), linear(ctx, x, a.v, a.vBias)];
  }
  if (clipQkv === undefined) return qkv;
  const lo = g.constant({ dtype: 'float32', dims: [], values: [-clipQkv] }, 'clip_lo');
  const hi = g.constant({ dtype: 'float32', dims: [], values: [clipQkv] }, 'clip_hi');
  return qkv.map((t) => g.op('Clip', [t, toCompute(ctx, lo), toCompute(ctx, hi)])) as [string, string, string];
}

/** [N, heads * D] -> [N, heads, D] */
function splitHeads(ctx: GraphContext, x: string, heads: number): string {
  return ctx.g.op('Reshape', [x, ctx.g.int64s([-1, heads, ctx.checkpoint.spec.headDim])]);
}

function attention(ctx: GraphContext, x: string, layer: LayerLayout, l: number, rope: Rope, groups: AttentionGroups, past: LayerPast): string {
  const { g } = ctx;
  const { numHeads, numKvHeads, headDim } = ctx.checkpoint.spec;
  const [q, k, v] = projectQkv(ctx, x, layer);
  const query = applyRope(ctx, splitHeads(ctx, q, numHeads), rope.queryCos, rope.querySin);
  const key = applyRope(ctx, splitHeads(ctx, k, numKvHeads), rope.cos, rope.sin);
  const value = splitHeads(ctx, v, numKvHeads);
  g.output(key, presentKey(l), ctx.dtype, ['tokens', numKvHeads, headDim]);
  g.output(value, presentValue(l), ctx.dtype, ['tokens', numKvHeads, headDim]);
  const decoded = groupAttention(ctx, groups.decode, groups, query, key, value, past.decodeKey, past.decodeValue);
  const prefilled = groupAttention(ctx, groups.prefill, groups, query, key, value, past.prefillKey, past.prefillValue);
  return linear(ctx, g.op('Concat', [decoded, prefilled], { axis: 0 }), layer.o);
}

function mlp(ctx: GraphContext, x: string, layer: LayerLayout, l: number, inst: Instrumentation | undefined): string {
  const { g } = ctx;
  let gate: string;
  let up: string;
  if (layer.mlp.kind === 'fused') {
    const size = ctx.checkpoint.spec.intermediateSize;
    [gate, up] = g.node('Split', [linear(ctx, x, layer.mlp.gateUp), g.int64s([size, size])], { axis: -1 }, 2) as [string, string];
  } else {
    gate = linear(ctx, x, layer.mlp.gate);
    up = linear(ctx, x, layer.mlp.up);
  }
  const downInput = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
  const downOutput = linear(ctx, downInput, layer.down);
  return inst ? switchAndTap(ctx, inst, l, downInput, downOutput) : downOutput;
}
