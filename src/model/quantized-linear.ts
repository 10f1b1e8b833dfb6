// Linear layers whose weights are block-quantized: onnxruntime's com.microsoft.MatMulNBits reads
// the codes, scales and zero points of a quantized copy (src/model/quantize/) and computes y = x W^T
// with W dequantized per block; float weights go through the plain `linear`.
import { cast, linear, weight, type GraphContext } from './graph-context.js';
import { blockLayout } from './quantize/block-quantizer.js';
import type { QuantizedTensorRecord } from './quantize/quantized-manifest.js';

// MatMulNBits' accuracy_level: 0 keeps activations float32; 4 quantizes them to int8 per block,
// which is what onnxruntime's fast CPU kernels need for 8-bit weights (others fall back to
// dequantizing all of B on every run).
const ACCURACY_FLOAT32 = 0;
const ACCURACY_INT8 = 4;

/** y = x W^T (+ b), through MatMulNBits when the weight is quantized. */
export function linearLayer(ctx: GraphContext, x: string, weightName: string, biasName?: string): string {
  const quantized = ctx.quantized?.weights.quantized.get(weightName);
  if (!quantized) return linear(ctx, x, weightName, biasName);
  const y = matMulNBits(ctx, x, quantized);
  return biasName ? ctx.g.op('Add', [y, weight(ctx, biasName)]) : y;
}

function matMulNBits(ctx: GraphContext, x: string, t: QuantizedTensorRecord): string {
  const { g } = ctx;
  const { dataFile } = ctx.quantized!.weights.manifest;
  const layout = blockLayout(t.rows, t.k, t.bits, t.blockSize);
  const codes = g.externalInitializer(`${t.name}.codes`, {
    dtype: 'uint8',
    dims: [t.rows, layout.blocksPerRow, layout.blobBytes],
    location: dataFile,
    ...t.codes,
  });
  const scales = g.externalInitializer(`${t.name}.scales`, { dtype: 'float32', dims: [t.rows, layout.blocksPerRow], location: dataFile, ...t.scales });
  const inputs = [x, codes, scales];
  if (t.zeroPoints) {
    inputs.push(g.externalInitializer(`${t.name}.zero_points`, { dtype: 'uint8', dims: [t.rows * layout.zeroPointBytesPerRow], location: dataFile, ...t.zeroPoints }));
  }
  const attrs = {
    K: t.k,
    N: t.rows,
    bits: t.bits,
    block_size: t.kernelBlock,
    accuracy_level: ctx.quantized!.compute === 'int8' ? ACCURACY_INT8 : ACCURACY_FLOAT32,
  };
  const held = ctx.quantized!.compute === 'int8' ? ctx.quantized!.heldOut?.get(t.name) : undefined;
  if (!held?.length) return g.node('MatMulNBits', inputs, attrs, 1, 'com.microsoft')[0]!;
  // The paper's remedy for int8 activations: an outlier channel would set its block's scale on the
  // first token and flatten the rest of the block, so it goes in as 0 and its product comes back in float32.
  const keep = g.constant({ dtype: 'float32', dims: [t.k], values: Float32Array.from({ length: t.k }, (_, c) => (held.includes(c) ? 0 : 1)) }, 'held_out_mask');
  inputs[0] = g.op('Mul', [x, keep]);
  const y = g.node('MatMulNBits', inputs, attrs, 1, 'com.microsoft')[0]!;
  const columns = g.constant({ dtype: 'float32', dims: [held.length, t.rows], values: ctx.quantized!.weights.columns(t.name, held) }, 'held_out_columns');
  const heldValues = g.op('Gather', [x, g.int64s([...held])], { axis: -1 });
  return g.op('Add', [y, g.op('MatMul', [heldValues, columns])]);
}

/**
 * The embedding rows of `ids`. A quantized copy keeps a float16 or bfloat16 table as the checkpoint
 * has it: rows are gathered from it and only they are cast, so onnxruntime maps the table from the
 * file and touches only the rows used (a Cast of the whole table would be folded into a resident
 * float32 copy at load: 1 GB for Llama-3.2-1B's 128256 x 2048 table).
 */
export function embeddingRows(ctx: GraphContext, tableName: string, ids: string): string {
  const entry = ctx.quantized?.weights.float.get(tableName);
  if (!entry || entry.dtype === 'F32' || ctx.dtype !== 'float32') return ctx.g.op('Gather', [weight(ctx, tableName), ids], { axis: 0 });
  const dtype = entry.dtype === 'F16' ? 'float16' : 'bfloat16';
  const table = ctx.g.externalInitializer(`${tableName}.${dtype}`, { dtype, dims: entry.shape, location: entry.file, offset: entry.offset, length: entry.byteLength });
  return cast(ctx.g, ctx.g.op('Gather', [table, ids], { axis: 0 }), 'float32');
}
