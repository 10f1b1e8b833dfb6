// The weights a quantized copy stands for, decoded from its data file: the reference forward pass
// run on these checks the MatMulNBits wiring number by number.
import fs from 'node:fs';
import path from 'node:path';
import { blockLayout, dequantizeRows } from '../../src/model/quantize/block-quantizer.js';
import type { QuantizedWeights } from '../../src/model/quantize/quantized-cache.js';
import type { QuantizedTensorRecord } from '../../src/model/quantize/quantized-manifest.js';
import { readTensorAsFloat32 } from '../../src/model/safetensors.js';
import type { SuperWeightCoordinate } from '../../src/model/switch-plan.js';
import type { TinyCheckpoint, WeightTensor } from './tiny-checkpoint.js';
import { logSoftmax } from '../../src/engine/sampler.js';
import { klDivergence as klOfLogProbs } from '../../src/superweights/distribution-compare.js';

/**
 * The checkpoint's weights with every quantized tensor replaced by its dequantized values, and the
 * given coordinates (the super weights the switch keeps exact) set back to the checkpoint's value.
 */
export function dequantizedCheckpoint(ckpt: TinyCheckpoint, quantized: QuantizedWeights, exact: readonly SuperWeightCoordinate[] = []): TinyCheckpoint {
  const data = fs.readFileSync(path.join(quantized.dir, quantized.manifest.dataFile));
  const slice = (r: { offset: number; length: number }): Uint8Array => Uint8Array.from(data.subarray(r.offset, r.offset + r.length));
  const dequantized = (t: QuantizedTensorRecord): WeightTensor => {
    const scales = slice(t.scales);
    const q = { codes: slice(t.codes), scales: new Float32Array(scales.buffer, 0, scales.length / 4), zeroPoints: t.zeroPoints ? slice(t.zeroPoints) : undefined };
    return { shape: [t.rows, t.k], data: dequantizeRows(q, t.rows, blockLayout(t.rows, t.k, t.bits, t.blockSize), quantized.manifest.scheme) };
  };
  const weights = new Map<string, WeightTensor>(ckpt.weights);
  for (const t of quantized.manifest.quantized) weights.set(t.name, dequantized(t));
  // Float tensors as the copy holds them (round trips, the embedding table).
  for (const [name, entry] of quantized.float) weights.set(name, { shape: entry.shape, data: readTensorAsFloat32(quantized.dir, entry) });
  // Tied embeddings with a quantized lm_head: the graph gathers from the float table and projects with
  // the quantized copy, which the reference sees as untied.
  const embed = 'model.embed_tokens.weight';
  if (ckpt.config.tie_word_embeddings && quantized.quantized.has(embed)) {
    weights.set('lm_head.weight', dequantized(quantized.manifest.quantized.find((q) => q.name === embed)!));
    return { ...ckpt, config: { ...ckpt.config, tie_word_embeddings: false }, weights: withExact(ckpt, weights, exact) };
  }
  return { ...ckpt, weights: withExact(ckpt, weights, exact) };
}

/** The given down_proj coordinates set back to the checkpoint's values. */
function withExact(ckpt: TinyCheckpoint, weights: Map<string, WeightTensor>, exact: readonly SuperWeightCoordinate[]): Map<string, WeightTensor> {
  for (const c of exact) {
    const name = `model.layers.${c.layer}.mlp.down_proj.weight`;
    const original = ckpt.weights.get(name)!;
    const copy = Float32Array.from(weights.get(name)!.data);
    copy[c.row * original.shape[1]! + c.col] = original.data[c.row * original.shape[1]! + c.col]!;
    weights.set(name, { shape: original.shape, data: copy });
  }
  return weights;
}

/** KL(p || q) of two logit vectors, in nats. */
export function klDivergence(p: Float32Array, q: Float32Array): number {
  return klOfLogProbs(logSoftmax(p), logSoftmax(q));
}
