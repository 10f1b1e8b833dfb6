// Requests for the load generator: token-id prompts (exact lengths, like vllm's random dataset) drawn
// from a length mix that includes long prompts, seeded so every run and every server sees the same.
import { mulberry32 } from '../../test/helpers/tiny-checkpoint.js';
import type { CompletionJob } from './stream-client.js';

/** [prompt tokens, share of requests] */
export type LengthMix = [number, number][];

// Mostly chat-sized prompts with a tail of long documents.
export const DEFAULT_MIX: LengthMix = [
  [64, 0.5],
  [256, 0.3],
  [1024, 0.15],
  [2048, 0.05],
];

// Ids every served tokenizer and model here has (the byte tokenizer's and the demo's BPE range).
const FIRST_ID = 3;
const ID_SPAN = 247;

export interface WorkloadOptions {
  count: number;
  mix: LengthMix;
  outputTokens: number;
  contextLength: number;
  seed: number;
  /** Body fields for each request, given its index (e.g. half with super_weights off). */
  extra?: (index: number) => Record<string, unknown> | undefined;
}

export function workload(o: WorkloadOptions): CompletionJob[] {
  const random = mulberry32(o.seed);
  const total = o.mix.reduce((a, [, w]) => a + w, 0);
  const longest = o.contextLength - o.outputTokens - 1;
  return Array.from({ length: o.count }, (_, i) => {
    let pick = random() * total;
    const [length] = o.mix.find(([, w]) => (pick -= w) < 0) ?? o.mix[o.mix.length - 1]!;
    const n = Math.min(length, longest);
    return { prompt: Array.from({ length: n }, () => FIRST_ID + Math.floor(random() * ID_SPAN)), maxTokens: o.outputTokens, extra: o.extra?.(i) };
  });
}
