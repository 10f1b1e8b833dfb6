// Perplexity windows: the text's tokens cut into fixed-length windows, each scored by the engine in
// one prefill (max_tokens 0 with prompt logprobs) under a switch plan, windows batched together.
import { analysisId, analysisRequest, runSequence, type SequenceEngine } from './engine-run.js';
import type { SwitchPlan } from '../model/switch-plan.js';

export interface WindowScore {
  /** Sum of -log p(token | prefix) over the window's scored tokens (all but its first). */
  nll: number;
  tokens: number;
  /** Sum over the scored positions of the probability on stop words (when asked for). */
  stopWordMass: number;
  /** The next-token log-distribution at each scored position, when asked for. */
  distributions?: Float32Array[];
}

export interface ScoreOptions {
  /** Token ids whose next-token probability is summed (the stop-word shift); none skips it. */
  stopWordIds?: readonly number[];
  /** Keep the log-distributions of the first this many windows (comparisons across models). */
  keepDistributions?: number;
  /** Windows in flight at once (one engine batch); bounds the memory full distributions take. */
  concurrency: number;
  onWindow?: () => void;
  signal?: AbortSignal;
}

/**
 * Token ids cut into windows of `windowTokens`, each starting with `bosId` when the model has one
 * (the super activation sits on the first token, as in every window the paper scores). Only full
 * windows are kept, as in the paper's evaluation code; a text shorter than one window is one window.
 */
export function cutWindows(ids: readonly number[], windowTokens: number, bosId: number | undefined, maxWindows = Infinity): number[][] {
  const body = bosId === undefined ? windowTokens : windowTokens - 1;
  if (body < 1) throw new Error(`a window of ${windowTokens} tokens leaves nothing to score`);
  const count = Math.min(maxWindows, Math.max(1, Math.floor(ids.length / body)));
  const windows: number[][] = [];
  for (let w = 0; w < count; w++) {
    const chunk = ids.slice(w * body, (w + 1) * body);
    windows.push(bosId === undefined ? chunk : [bosId, ...chunk]);
  }
  if (windows[0]!.length < 2) throw new Error('the text is too short to score (fewer than two tokens)');
  return windows;
}

export async function scoreWindows(engine: SequenceEngine, windows: readonly number[][], plan: SwitchPlan, options: ScoreOptions): Promise<WindowScore[]> {
  const scores: WindowScore[] = new Array(windows.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < windows.length) {
      const w = next++;
      scores[w] = await scoreWindow(engine, windows[w]!, plan, options, w < (options.keepDistributions ?? 0));
      options.onWindow?.();
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, windows.length) }, worker));
  return scores;
}

async function scoreWindow(engine: SequenceEngine, tokenIds: number[], plan: SwitchPlan, options: ScoreOptions, keep: boolean): Promise<WindowScore> {
  const stopIds = options.stopWordIds;
  const request = analysisRequest({
    id: analysisId('eval'),
    prompt: { tokenIds },
    maxTokens: 0,
    promptLogprobs: 0,
    ...(stopIds ? { promptStopWordIds: [...stopIds] } : {}),
    ...(keep ? { promptDistributions: true } : {}),
    switchPlan: plan,
  });
  const { prompt } = await runSequence(engine, request, options.signal);
  if (!prompt?.promptLogprobs) throw new Error('the engine returned no prompt logprobs');
  let nll = 0;
  for (let t = 1; t < tokenIds.length; t++) nll -= prompt.promptLogprobs[t]!.logprob;
  let stopWordMass = 0;
  // The engine sums the stop words' probability at each position predicting a window token (0 .. n - 2).
  if (stopIds) for (const mass of prompt.stopWordMass!) stopWordMass += mass;
  return { nll, tokens: tokenIds.length - 1, stopWordMass, distributions: keep ? prompt.distributions!.slice(0, tokenIds.length - 1) : undefined };
}
