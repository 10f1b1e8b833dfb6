// Building blocks shared by the decoder graph and its instrumentation: checkpoint weights as external
// data, dtype casts, linear layers and norms, each a few ONNX nodes.
import type { Checkpoint } from './checkpoint.js';
import type { NormKind } from './architectures/layout.js';
import { GraphBuilder, onnxDataTypeCode, type OnnxDataType } from './onnx-graph.js';
import { OUTPUT } from './graph-io.js';
import type { SafetensorsDtype } from './safetensors.js';
import type { QuantizedWeights } from './quantize/quantized-cache.js';
import type { ComputePrecision } from './quantize/weight-format.js';

export type ComputeDtype = 'float32' | 'float16';

export interface QuantizedGraphWeights {
  weights: QuantizedWeights;
  compute: ComputePrecision;
  /**
   * With int8 activations, input channels of a weight kept out of the activation scale (the super
   * activation's channel, the super weight's column) and added back in float32. By tensor name.
   */
  heldOut?: ReadonlyMap<string, readonly number[]>;
}

export interface GraphContext {
  g: GraphBuilder;
  checkpoint: Checkpoint;
  dtype: ComputeDtype;
  /** Weight name -> value name in compute dtype, so tied embeddings load once. */
  weights: Map<string, string>;
  /** A quantized copy: its MatMulNBits weights, and the float tensors it carries in place of the checkpoint's. */
  quantized?: QuantizedGraphWeights;
}

const SAFETENSORS_TO_ONNX: Record<SafetensorsDtype, OnnxDataType> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** A checkpoint tensor in compute dtype; the Cast is folded by onnxruntime at load. */
export function weight(ctx: GraphContext, name: string): string {
  const cached = ctx.weights.get(name);
  if (cached) return cached;
  const copied = ctx.quantized?.weights.float.get(name);
  const entry = copied ?? ctx.checkpoint.tensors.get(name);
  if (!entry) throw new Error(`checkpoint has no tensor ${name}`);
  const stored = SAFETENSORS_TO_ONNX[entry.dtype];
  const init = ctx.g.externalInitializer(name, {
    dtype: stored,
    dims: entry.shape,
    // A quantized copy's tensors sit in its own folder, the external-data folder then.
    location: copied ? entry.file : ctx.checkpoint.dataLocations.get(entry.file)!,
    offset: entry.offset,
    length: entry.byteLength,
  });
  const value = stored === ctx.dtype ? init : cast(ctx.g, init, ctx.dtype);
  ctx.weights.set(name, value);
  return value;
}

export function cast(g: GraphBuilder, value: string, to: OnnxDataType): string {
  return g.op('Cast', [value], { to: onnxDataTypeCode(to) });
}

/** Casts a float32 value to compute dtype (a no-op on float32 graphs). */
export function toCompute(ctx: GraphContext, float32Value: string): string {
  return ctx.dtype === 'float32' ? float32Value : cast(ctx.g, float32Value, ctx.dtype);
}

export function toFloat32(ctx: GraphContext, value: string): string {
  return ctx.dtype === 'float32' ? value : cast(ctx.g, value, 'float32');
}

export function scalar(ctx: GraphContext, value: number): string {
  return toCompute(ctx, ctx.g.constant({ dtype: 'float32', dims: [], values: [value] }, 'scalar'));
}

/**
 * y = x W^T (+ b) for x [N, in], W in Hugging Face [out, in] layout. A float32 weight feeds Gemm with
 * transB, which prepacks it straight from the file: no transposed copy is folded at load (that fold
 * was most of a 1B model's load time). Other dtypes cast first, so Transpose + MatMul fold as one.
 */
export function linear(ctx: GraphContext, x: string, weightName: string, biasName?: string): string {
  const { g } = ctx;
  const stored = ctx.checkpoint.tensors.get(weightName)?.dtype;
  if (ctx.dtype === 'float32' && stored === 'F32') {
    return g.op('Gemm', biasName ? [x, weight(ctx, weightName), weight(ctx, biasName)] : [x, weight(ctx, weightName)], { transB: 1 });
  }
  const y = g.op('MatMul', [x, g.op('Transpose', [weight(ctx, weightName)], { perm: [1, 0] })]);
  return biasName ? g.op('Add', [y, weight(ctx, biasName)]) : y;
}

/**
 * The graph's two logits outputs from float32 logits [M, V]: the logits and their log-normalizer [M].
 * onnxruntime's ReduceLogSumExp answers an empty [0, V] input (a step that needs no logits, such as a
 * mid-prompt chunk) with a [0, V] result and a shape warning on every such step; keepdims and a
 * reshape give [0] there and [M] otherwise.
 */
export function addLogitsOutputs(g: GraphBuilder, logits32: string, vocabSize: number): void {
  g.output(logits32, OUTPUT.logits, 'float32', ['logit_rows', vocabSize]);
  const logSumExp = g.op('ReduceLogSumExp', [logits32], { axes: [-1], keepdims: 1 });
  g.output(g.op('Reshape', [logSumExp, g.int64s([-1])]), OUTPUT.logitsLogSumExp, 'float32', ['logit_rows']);
}

/** RMSNorm (computed in float32 as transformers does) or OLMo's LayerNorm without weights. */
export function norm(ctx: GraphContext, kind: NormKind, x: string, weightName: string | undefined, eps: number): string {
  const { g } = ctx;
  const x32 = toFloat32(ctx, x);
  const epsilon = g.constant({ dtype: 'float32', dims: [], values: [eps] }, 'eps');
  let normed: string;
  if (kind === 'rms') {
    const square = g.op('Pow', [x32, g.constant({ dtype: 'float32', dims: [], values: [2] }, 'two')]);
    const variance = g.op('ReduceMean', [square], { axes: [-1], keepdims: 1 });
    normed = g.op('Div', [x32, g.op('Sqrt', [g.op('Add', [variance, epsilon])])]);
  } else {
    const mean = g.op('ReduceMean', [x32], { axes: [-1], keepdims: 1 });
    const centred = g.op('Sub', [x32, mean]);
    const variance = g.op('ReduceMean', [g.op('Mul', [centred, centred])], { axes: [-1], keepdims: 1 });
    normed = g.op('Div', [centred, g.op('Sqrt', [g.op('Add', [variance, epsilon])])]);
  }
  const back = toCompute(ctx, normed);
  return weightName ? g.op('Mul', [back, weight(ctx, weightName)]) : back;
}
