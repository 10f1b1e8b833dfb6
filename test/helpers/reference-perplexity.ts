// Perplexity and stop-word probability computed directly with the plain reference forward pass
// (no engine, no switch), for checking `swserve eval` against checkpoints modified on disk.
import { createReferenceModel, type ReferenceOptions } from './reference-forward.js';
import type { TinyCheckpoint } from './tiny-checkpoint.js';

export interface ReferenceScore {
  perplexity: number;
  /** Mean next-token probability on `stopIds` over the scored positions. */
  stopWordProbability: number;
}

export function referencePerplexity(checkpoint: TinyCheckpoint, windows: number[][], stopIds: number[], options: ReferenceOptions = {}): ReferenceScore {
  const model = createReferenceModel(checkpoint, options);
  let nll = 0;
  let stop = 0;
  let tokens = 0;
  for (const window of windows) {
    const { logits } = model.forward(window);
    for (let t = 0; t + 1 < window.length; t++) {
      const logP = logSoftmax(logits[t]!);
      nll -= logP[window[t + 1]!]!;
      for (const id of stopIds) stop += Math.exp(logP[id]!);
      tokens++;
    }
  }
  return { perplexity: Math.exp(nll / tokens), stopWordProbability: stop / tokens };
}

/** log-softmax in float64, for comparisons with the engine's float32 distributions. */
export function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - lse);
}
