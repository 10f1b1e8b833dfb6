// Next-token selection over one row of logits, following vLLM's order and semantics:
// logit_bias -> penalties -> (greedy if temperature ~ 0) -> temperature -> top-k -> top-p -> min-p -> sample.
// Reported logprobs are log-softmax of the RAW logits (vLLM's default "raw_logprobs" mode).
// Filters mask tokens with -Infinity in one reusable scratch buffer instead of building new arrays,
// because this runs once per token per row over vocabularies of 32k-150k entries.

import { TopK } from "../util/top-k.js";
import type { Rng } from "./rng.js";

export interface SamplingParams {
  /** 0 => greedy. */
  temperature: number;
  /** 1 = off. */
  topP: number;
  /** 0 or -1 = off (vLLM uses -1). */
  topK: number;
  /** 0 = off. */
  minP: number;
  /** OpenAI semantics: subtracted once if the token appeared in the generated output. */
  presencePenalty: number;
  /** Subtracted count times, counting occurrences in the generated output. */
  frequencyPenalty: number;
  /** 1 = off. vLLM/HF semantics: for tokens in prompt OR output, logit > 0 ? logit / p : logit * p. */
  repetitionPenalty: number;
  /** Added to the logits before everything else. */
  logitBias: ReadonlyMap<number, number>;
  seed?: number;
  /** Number of top alternatives to report (0..20); the sampled token's logprob is always reported. */
  logprobs: number;
}

/** What the penalties need to know about the sequence so far. */
export interface PenaltyState {
  /** Distinct prompt token ids (a set, so repetition penalty applies once per token). */
  promptTokens: ReadonlySet<number>;
  /** Occurrences of each token id in the generated output. */
  outputCounts: ReadonlyMap<number, number>;
}

export interface TokenLogprob {
  tokenId: number;
  logprob: number;
}

export interface SampledToken {
  tokenId: number;
  /** Log-softmax of the raw logits at the sampled token. */
  logprob: number;
  /** The `params.logprobs` most likely tokens under the raw logits, most likely first. */
  topLogprobs: TokenLogprob[];
}

/** Logits of the top-p candidates; grown on demand, and most steps only touch a short prefix. */
export interface CandidateBuffer {
  candidates: Float32Array;
}

/** Reusable per-row buffers; create one per engine row (sized to the vocabulary) and pass it to every call. */
export interface SamplerScratch extends CandidateBuffer {
  /** The processed logits of the current step. */
  readonly work: Float32Array;
}

/** Every knob off and greedy: the base that callers override. */
export const GREEDY_SAMPLING: SamplingParams = {
  temperature: 0,
  topP: 1,
  topK: 0,
  minP: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
  repetitionPenalty: 1,
  logitBias: new Map(),
  logprobs: 0,
};

/** vLLM treats temperatures below this as greedy (its _SAMPLING_EPS). */
export const GREEDY_TEMPERATURE_EPSILON = 1e-5;
/** The most top alternatives a request may ask for (OpenAI's top_logprobs limit). */
export const MAX_TOP_LOGPROBS = 20;
/** Top-p gathers candidates with probability >= maxProb / this, lowering the bar by this factor each round. */
const TOP_P_THRESHOLD_STEP = 64;
/** Initial top-p candidate capacity; the candidate buffer grows past this only for flat distributions. */
const INITIAL_CANDIDATE_CAPACITY = 1024;

export function createSamplerScratch(vocabSize: number): SamplerScratch {
  return {
    work: new Float32Array(vocabSize),
    candidates: new Float32Array(Math.min(vocabSize, INITIAL_CANDIDATE_CAPACITY)),
  };
}

/** The owning sequence's writable view of its penalty state. */
export interface SequencePenaltyState extends PenaltyState {
  readonly promptTokens: Set<number>;
  readonly outputCounts: Map<number, number>;
}

/** Penalty state for a new sequence; record generated tokens with {@link recordOutputToken}. */
export function createPenaltyState(promptIds: readonly number[]): SequencePenaltyState {
  return { promptTokens: new Set(promptIds), outputCounts: new Map() };
}

export function recordOutputToken(outputCounts: Map<number, number>, tokenId: number): void {
  outputCounts.set(tokenId, (outputCounts.get(tokenId) ?? 0) + 1);
}

// ---------------------------------------------------------------------------------------------
// Processing steps. Each mutates `logits` in place; masked tokens become -Infinity.

/** Adds the OpenAI logit_bias. Ids outside the vocabulary are ignored (the API layer validates them). */
export function applyLogitBias(logits: Float32Array, logitBias: ReadonlyMap<number, number>): void {
  for (const [tokenId, bias] of logitBias) {
    if (tokenId >= 0 && tokenId < logits.length) logits[tokenId] += bias;
  }
}

/** Repetition (prompt + output, multiplicative), then frequency and presence (output only, additive), as vLLM does. */
export function applyPenalties(
  logits: Float32Array,
  params: Pick<SamplingParams, "repetitionPenalty" | "frequencyPenalty" | "presencePenalty">,
  state: PenaltyState,
): void {
  const { repetitionPenalty, frequencyPenalty, presencePenalty } = params;
  if (repetitionPenalty !== 1) {
    const penalize = (tokenId: number): void => {
      if (tokenId < 0 || tokenId >= logits.length) return;
      const logit = logits[tokenId];
      logits[tokenId] = logit > 0 ? logit / repetitionPenalty : logit * repetitionPenalty;
    };
    for (const tokenId of state.promptTokens) penalize(tokenId);
    for (const tokenId of state.outputCounts.keys()) {
      if (!state.promptTokens.has(tokenId)) penalize(tokenId);
    }
  }
  if (frequencyPenalty === 0 && presencePenalty === 0) return;
  for (const [tokenId, count] of state.outputCounts) {
    if (count <= 0 || tokenId < 0 || tokenId >= logits.length) continue;
    logits[tokenId] -= frequencyPenalty * count + presencePenalty;
  }
}

export function applyTemperature(logits: Float32Array, temperature: number): void {
  if (temperature === 1) return;
  const inverse = 1 / temperature;
  for (let i = 0; i < logits.length; i++) logits[i] *= inverse;
}

/** Keeps the k largest logits; ties with the k-th largest are kept too (as vLLM's mask `logit < kth`). */
export function applyTopK(logits: Float32Array, topK: number): void {
  if (topK <= 0 || topK >= logits.length) return;
  const kthLargest = kthLargestValue(logits, topK);
  maskBelow(logits, kthLargest);
}

/**
 * Nucleus filter: keeps the most likely tokens until their cumulative probability reaches topP (always at
 * least one; ties with the last kept token are kept too). Only the logits above a probability bar are
 * gathered and sorted, the bar being lowered until the gathered mass reaches topP, so peaked distributions
 * sort a handful of values and only flat ones approach a full sort.
 */
export function applyTopP(
  logits: Float32Array,
  topP: number,
  buffer: CandidateBuffer = { candidates: new Float32Array(INITIAL_CANDIDATE_CAPACITY) },
): void {
  if (topP >= 1) return;
  const maxLogit = maxValue(logits);
  if (maxLogit === -Infinity) return;
  const barStep = Math.log(TOP_P_THRESHOLD_STEP);

  let bar = maxLogit - barStep;
  let gathered = gatherAtOrAbove(logits, bar, maxLogit, buffer);
  const normalizer = gathered.weight + gathered.skippedWeight;
  while (gathered.weight < topP * normalizer && gathered.skipped > 0) {
    bar -= barStep;
    gathered = gatherAtOrAbove(logits, bar, maxLogit, buffer);
  }
  maskBelow(logits, nucleusCutoffLogit(buffer.candidates.subarray(0, gathered.count), maxLogit, topP * normalizer));
}

/** Drops tokens whose probability is below minP times the top probability (a fixed gap in logit space). */
export function applyMinP(logits: Float32Array, minP: number): void {
  if (minP <= 0) return;
  const maxLogit = maxValue(logits);
  if (maxLogit === -Infinity) return;
  maskBelow(logits, maxLogit + Math.log(minP));
}

/** Index of the largest logit; ties go to the lowest id. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > bestValue) {
      bestValue = logits[i];
      best = i;
    }
  }
  return best;
}

/**
 * Draws a token from softmax(logits), masked tokens excluded, by inverse-CDF sampling. Overwrites `logits`
 * with the unnormalized weights so Math.exp (the costly part at 150k entries) runs once per token.
 */
export function sampleFromLogitsInPlace(logits: Float32Array, rng: Rng): number {
  const maxLogit = maxValue(logits);
  if (maxLogit === -Infinity) return argmax(logits);
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    logits[i] = Math.exp(logits[i] - maxLogit); // masked tokens become 0
    total += logits[i];
  }
  const target = rng.next() * total;
  let cumulative = 0;
  let lastCandidate = -1;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] === 0) continue;
    cumulative += logits[i];
    lastCandidate = i;
    if (cumulative > target) return i;
  }
  // Rounding can leave the target at the very top of the range.
  return lastCandidate;
}

// ---------------------------------------------------------------------------------------------
// Logprobs.

/** log(sum(exp(values))), computed stably. */
export function logSumExp(values: Float32Array): number {
  const maxLogit = maxValue(values);
  if (maxLogit === -Infinity) return -Infinity;
  return maxLogit + Math.log(sumExpShifted(values, maxLogit));
}

/** Full log-softmax; allocates V floats, so the per-token path uses {@link logSumExp} instead. */
export function logSoftmax(logits: Float32Array): Float32Array {
  const normalizer = logSumExp(logits);
  const out = new Float32Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - normalizer;
  return out;
}

/** The k largest values with their ids, largest first; ties go to the lowest id. O(V log k), no full sort. */
export function topLogprobs(logprobs: Float32Array, k: number): TokenLogprob[] {
  return topKIndices(logprobs, k).map((tokenId) => ({ tokenId, logprob: logprobs[tokenId] }));
}

// ---------------------------------------------------------------------------------------------
// Entry point.

/**
 * Picks the next token for one row. `rawLogits` is not modified (it may be a view into the batch output);
 * it is copied once into `scratch.work`. `logNormalizer` is log(sum(exp(rawLogits))) when the caller
 * already has it (the graph computes it), saving a pass of exp over the vocabulary.
 */
export function sampleToken(
  rawLogits: Float32Array,
  params: SamplingParams,
  state: PenaltyState,
  rng: Rng,
  scratch: SamplerScratch = createSamplerScratch(rawLogits.length),
  logNormalizer: number = logSumExp(rawLogits),
): SampledToken {
  const work = scratch.work;
  if (work.length !== rawLogits.length) {
    throw new Error(`sampler scratch holds ${work.length} logits but the row has ${rawLogits.length}`);
  }
  work.set(rawLogits);

  applyLogitBias(work, params.logitBias);
  applyPenalties(work, params, state);

  let tokenId: number;
  if (params.temperature < GREEDY_TEMPERATURE_EPSILON) {
    tokenId = argmax(work);
  } else {
    applyTemperature(work, params.temperature);
    applyTopK(work, params.topK);
    applyTopP(work, params.topP, scratch);
    applyMinP(work, params.minP);
    tokenId = sampleFromLogitsInPlace(work, rng);
  }

  const normalizer = logNormalizer;
  const alternatives = Math.min(Math.max(0, Math.floor(params.logprobs)), MAX_TOP_LOGPROBS);
  return {
    tokenId,
    logprob: rawLogits[tokenId] - normalizer,
    topLogprobs: topKIndices(rawLogits, alternatives).map((id) => ({ tokenId: id, logprob: rawLogits[id] - normalizer })),
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers.

function maxValue(values: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  return max;
}

/** sum(exp(v - shift)) in float64; masked (-Infinity) entries contribute 0. */
function sumExpShifted(values: Float32Array, shift: number): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += Math.exp(values[i] - shift);
  return sum;
}

function maskBelow(logits: Float32Array, threshold: number): void {
  for (let i = 0; i < logits.length; i++) if (logits[i] < threshold) logits[i] = -Infinity;
}

/**
 * Copies the logits >= bar into buffer.candidates (growing it if needed). Returns how many, their
 * unnormalized weight sum(exp(logit - maxLogit)), and the count and weight of unmasked logits below the bar.
 */
function gatherAtOrAbove(
  logits: Float32Array,
  bar: number,
  maxLogit: number,
  buffer: CandidateBuffer,
): { count: number; weight: number; skipped: number; skippedWeight: number } {
  let count = 0;
  let weight = 0;
  let skipped = 0;
  let skippedWeight = 0;
  for (let i = 0; i < logits.length; i++) {
    const logit = logits[i];
    if (logit === -Infinity) continue;
    if (logit < bar) {
      skipped++;
      skippedWeight += Math.exp(logit - maxLogit);
      continue;
    }
    if (count === buffer.candidates.length) {
      const grown = new Float32Array(Math.max(INITIAL_CANDIDATE_CAPACITY, Math.min(logits.length, count * 2)));
      grown.set(buffer.candidates);
      buffer.candidates = grown;
    }
    buffer.candidates[count++] = logit;
    weight += Math.exp(logit - maxLogit);
  }
  return { count, weight, skipped, skippedWeight };
}

/** Sorts the candidate logits (a native numeric sort) and walks down from the largest until the kept weight reaches `targetWeight`. */
function nucleusCutoffLogit(candidates: Float32Array, maxLogit: number, targetWeight: number): number {
  candidates.sort();
  let cumulative = 0;
  for (let rank = candidates.length - 1; rank >= 0; rank--) {
    cumulative += Math.exp(candidates[rank] - maxLogit);
    if (cumulative >= targetWeight) return candidates[rank];
  }
  return candidates[0];
}

/** Value of the k-th largest entry (1-based). */
function kthLargestValue(values: Float32Array, k: number): number {
  const top = new TopK(k);
  for (let i = 0; i < values.length; i++) top.push(values[i], i);
  return top.smallestKey;
}

/** Ids of the k largest values, largest first, ties to the lowest id. */
function topKIndices(values: Float32Array, k: number): number[] {
  // Most requests ask for no alternatives: skip the pass over the vocabulary.
  if (k <= 0) return [];
  const top = new TopK(Math.min(k, values.length));
  for (let i = 0; i < values.length; i++) top.push(values[i], i);
  return top.sortedIds();
}
