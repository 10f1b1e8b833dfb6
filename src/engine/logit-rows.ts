// What the responses need from rows of raw logits, computed in the worker where the logits are, so
// only numbers cross the thread boundary: a token's logprob, the top alternatives, the probability
// mass on a set of tokens, and the KL divergence between two rows. Each row comes with its
// log-normalizer (the graph's ReduceLogSumExp), so none of these allocates a vocabulary-sized array.
import { topLogprobs, type TokenLogprob } from './sampler.js';

export interface LogitRows {
  logits: Float32Array;
  logSumExp: Float32Array;
  vocabSize: number;
}

export function rowOf(rows: LogitRows, row: number): Float32Array {
  return rows.logits.subarray(row * rows.vocabSize, (row + 1) * rows.vocabSize);
}

export function tokenLogprob(rows: LogitRows, row: number, tokenId: number): number {
  return rows.logits[row * rows.vocabSize + tokenId]! - rows.logSumExp[row]!;
}

/** The k most likely tokens of a row with their logprobs, most likely first. */
export function topTokens(rows: LogitRows, row: number, k: number): TokenLogprob[] {
  const normalizer = rows.logSumExp[row]!;
  return topLogprobs(rowOf(rows, row), k).map((t) => ({ tokenId: t.tokenId, logprob: t.logprob - normalizer }));
}

/** A row's log-probabilities (a vocabulary-sized copy: for in-process comparisons across models only). */
export function logDistribution(rows: LogitRows, row: number): Float32Array {
  const out = rowOf(rows, row).slice();
  const normalizer = rows.logSumExp[row]!;
  for (let i = 0; i < out.length; i++) out[i]! -= normalizer;
  return out;
}

/** Total probability of `ids` under a row. */
export function probabilityMass(rows: LogitRows, row: number, ids: readonly number[]): number {
  let mass = 0;
  for (const id of ids) mass += Math.exp(tokenLogprob(rows, row, id));
  return mass;
}

/** KL(P || Q) in nats between rows `p` and `q`. */
export function klDivergence(rows: LogitRows, p: number, q: number): number {
  const V = rows.vocabSize;
  const a = p * V;
  const b = q * V;
  const normP = rows.logSumExp[p]!;
  const normQ = rows.logSumExp[q]!;
  let kl = 0;
  for (let i = 0; i < V; i++) {
    const logP = rows.logits[a + i]! - normP;
    if (logP === -Infinity) continue;
    kl += Math.exp(logP) * (logP - (rows.logits[b + i]! - normQ));
  }
  return Math.max(0, kl);
}
