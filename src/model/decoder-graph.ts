// Builds the ONNX graph of a Llama-family decoder from a checkpoint: embeddings, RMSNorm/LayerNorm,
// RoPE, grouped-query attention over a KV cache, SwiGLU, and (optionally) the super-weight switch
// and activation taps around every down_proj.
import type { LayerLayout } from './architectures/layout.js';
import type { Checkpoint } from './checkpoint.js';
import { norm, toCompute, type ComputeDtype, type GraphContext, type QuantizedGraphWeights } from './graph-context.js';
// Every linear layer goes through linearLayer: MatMulNBits for quantized weights, else the float `linear`.
import { embeddingRows, linearLayer as linear } from './quantized-linear.js';
import { INPUT, OUTPUT, pastKey, pastValue, presentKey, presentValue } from './graph-io.js';
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
}

export function buildDecoderGraph(checkpoint: Checkpoint, options: DecoderGraphOptions): DecoderGraph {
  const g = new GraphBuilder();
  const ctx: GraphContext = { g, checkpoint, dtype: options.computeDtype, weights: new Map(), quantized: options.quantized };
  const { spec, layout } = checkpoint;
  const layers = Math.min(options.layers ?? spec.numLayers, spec.numLayers);
  const truncated = layers < spec.numLayers;

  const inputIds = g.input(INPUT.inputIds, 'int64', ['batch', 'tokens']);
  const positionIds = g.input(INPUT.positionIds, 'int64', ['batch', 'tokens']);
  const bias = g.input(INPUT.attentionBias, 'float32', ['batch', 1, 'tokens', 'slots']);
  const logitsIndex = g.input(INPUT.logitsIndex, 'int64', ['logit_rows']);
  // [B, 1, 1, T, S] broadcasts over kv heads and the query heads of each group.
  const mask = g.op('Unsqueeze', [toCompute(ctx, bias), g.int64s([1])]);
  const rope = ropeTables(ctx, positionIds);
  const inst = options.instrument ? addInstrumentationInputs(ctx, positionIds) : undefined;

  let hidden = embeddingRows(ctx, layout.embedTokens, inputIds);
  layout.layers.slice(0, layers).forEach((layer, l) => {
    hidden = g.scoped(`layers.${l}`, () => {
      const attn = g.scoped('self_attn', () =>
        attention(ctx, norm(ctx, layout.norm, hidden, layer.inputNorm, spec.normEps), layer, l, rope, mask),
      );
      const h = g.op('Add', [hidden, attn]);
      const mlpOut = g.scoped('mlp', () => mlp(ctx, norm(ctx, layout.norm, h, layer.postAttentionNorm, spec.normEps), layer, l, inst));
      return g.op('Add', [h, mlpOut]);
    });
  });

  if (!truncated) {
    // Only the requested positions go through the final norm and the vocabulary projection.
    const flat = g.op('Reshape', [hidden, g.int64s([-1, spec.hiddenSize])]);
    const selected = g.op('Gather', [flat, logitsIndex], { axis: 0 });
    const finalHidden = norm(ctx, layout.norm, selected, layout.finalNorm, spec.normEps);
    const logits = linear(ctx, finalHidden, layout.lmHead ?? layout.embedTokens);
    const logits32 = ctx.dtype === 'float32' ? logits : g.op('Cast', [logits], { to: 1 });
    g.output(logits32, OUTPUT.logits, 'float32', ['logit_rows', spec.vocabSize]);
    g.output(g.op('ReduceLogSumExp', [logits32], { axes: [-1], keepdims: 0 }), OUTPUT.logitsLogSumExp, 'float32', ['logit_rows']);
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

/** cos/sin tables [B, 1, T, D] in the rotate_half layout ([freqs, freqs]). */
function ropeTables(ctx: GraphContext, positionIds: string): Rope {
  const { g } = ctx;
  const { headDim, ropeTheta, ropeScaling } = ctx.checkpoint.spec;
  const inverse = g.constant({ dtype: 'float32', dims: [headDim / 2], values: ropeInverseFrequencies(headDim, ropeTheta, ropeScaling) }, 'inv_freq');
  const positions = g.op('Unsqueeze', [g.op('Cast', [positionIds], { to: 1 }), g.int64s([2])]);
  const freqs = g.op('Mul', [positions, inverse]);
  const angles = g.op('Unsqueeze', [g.op('Concat', [freqs, freqs], { axis: -1 }), g.int64s([1])]);
  return { cos: toCompute(ctx, g.op('Cos', [angles])), sin: toCompute(ctx, g.op('Sin', [angles])) };
}

function applyRope(ctx: GraphContext, x: string, rope: Rope): string {
  const { g } = ctx;
  const half = ctx.checkpoint.spec.headDim / 2;
  const [first, second] = g.node('Split', [x, g.int64s([half, half])], { axis: -1 }, 2) as [string, string];
  const rotated = g.op('Concat', [g.op('Neg', [second]), first], { axis: -1 });
  return g.op('Add', [g.op('Mul', [x, rope.cos]), g.op('Mul', [rotated, rope.sin])]);
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

/** [B, T, heads * D] -> [B, heads, T, D] */
function splitHeads(ctx: GraphContext, x: string, heads: number): string {
  const { g } = ctx;
  const shaped = g.op('Reshape', [x, g.int64s([0, 0, heads, ctx.checkpoint.spec.headDim])]);
  return g.op('Transpose', [shaped], { perm: [0, 2, 1, 3] });
}

function attention(ctx: GraphContext, x: string, layer: LayerLayout, l: number, rope: Rope, mask: string): string {
  const { g } = ctx;
  const { numHeads, numKvHeads, headDim } = ctx.checkpoint.spec;
  const [q, k, v] = projectQkv(ctx, x, layer);
  const query = applyRope(ctx, splitHeads(ctx, q, numHeads), rope);
  const key = applyRope(ctx, splitHeads(ctx, k, numKvHeads), rope);
  const value = splitHeads(ctx, v, numKvHeads);

  const cacheDims = ['batch', numKvHeads, 'past', headDim];
  const allKeys = g.op('Concat', [g.input(pastKey(l), ctx.dtype, cacheDims), key], { axis: 2 });
  const allValues = g.op('Concat', [g.input(pastValue(l), ctx.dtype, cacheDims), value], { axis: 2 });
  g.output(allKeys, presentKey(l), ctx.dtype, ['batch', numKvHeads, 'slots', headDim]);
  g.output(allValues, presentValue(l), ctx.dtype, ['batch', numKvHeads, 'slots', headDim]);

  // Grouped-query attention without repeating K/V: queries as [B, kvH, group, T, D] against [B, kvH, 1, S, D].
  const group = numHeads / numKvHeads;
  const scale = g.constant({ dtype: 'float32', dims: [], values: [1 / Math.sqrt(headDim)] }, 'scale');
  const grouped = g.op('Reshape', [g.op('Mul', [query, toCompute(ctx, scale)]), g.int64s([0, numKvHeads, group, -1, headDim])]);
  const keysT = g.op('Transpose', [g.op('Unsqueeze', [allKeys, g.int64s([2])])], { perm: [0, 1, 2, 4, 3] });
  const scores = g.op('Add', [g.op('MatMul', [grouped, keysT]), mask]);
  const probs = g.op('Softmax', [scores], { axis: -1 });
  const context = g.op('MatMul', [probs, g.op('Unsqueeze', [allValues, g.int64s([2])])]);
  const heads = g.op('Reshape', [context, g.int64s([0, numHeads, -1, headDim])]);
  const merged = g.op('Reshape', [g.op('Transpose', [heads], { perm: [0, 2, 1, 3] }), g.int64s([0, 0, numHeads * headDim])]);
  return linear(ctx, merged, layer.o);
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
