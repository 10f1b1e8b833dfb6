// Rotary embedding frequencies, computed at build time and baked into the graph as a constant.
import type { Llama3RopeScaling } from './hf-config.js';

/** inv_freq[i] = theta^(-2i/d), adjusted as transformers' `_compute_llama3_parameters` when scaled. */
export function ropeInverseFrequencies(headDim: number, theta: number, scaling?: Llama3RopeScaling): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / theta ** ((2 * i) / headDim);
  if (!scaling) return inv;
  const { factor, low_freq_factor: low, high_freq_factor: high, original_max_position_embeddings: oldContext } = scaling;
  const lowFreqWavelen = oldContext / low;
  const highFreqWavelen = oldContext / high;
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / inv[i]!;
    if (wavelen > lowFreqWavelen) {
      inv[i] = inv[i]! / factor;
    } else if (wavelen >= highFreqWavelen) {
      const smooth = (oldContext / wavelen - low) / (high - low);
      inv[i] = (1 - smooth) * (inv[i]! / factor) + smooth * inv[i]!;
    }
  }
  return inv;
}
