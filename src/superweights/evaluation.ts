// The paper's ablations as one run over a text: perplexity under the original model, super weights
// zeroed, zeroed with the super activation restored, the N largest other down_proj weights zeroed,
// and a scale sweep; plus the stop-word probability shift (original vs zeroed) over the same windows.
import { scoreWindows, type WindowScore } from './eval-windows.js';
import type { SequenceEngine } from './engine-run.js';
import { ORIGINAL_SWITCH, scaledPlan, type SuperWeightCoordinate, type SwitchPlan } from '../model/switch-plan.js';

// The paper's sweep (Llama-7B accuracy: x0 35.15 ... x1 70.12 ... x2 70.55).
export const PAPER_SWEEP_SCALES = [0, 0.2, 0.5, 1, 1.5, 2, 3];
// Windows scored at once: one engine batch at the default scheduler limits.
const WINDOW_CONCURRENCY = 16;

export interface EvaluationInput {
  windows: number[][];
  superWeights: SuperWeightCoordinate[];
  /** The N largest non-super down_proj weights (largestDownProjWeights). */
  largest: SuperWeightCoordinate[];
  sweepScales: number[];
  stopWordIds: number[];
}

export type ConditionName = 'original' | 'zeroed' | 'zeroed_restored' | 'largest_zeroed';

export interface ConditionResult {
  perplexity: number;
  /** Mean -log p per scored token (nats). */
  meanNll: number;
}

export interface EvaluationResult {
  windows: number;
  scoredTokens: number;
  conditions: Record<ConditionName, ConditionResult>;
  sweep: (ConditionResult & { scale: number })[];
  /** Mean next-token probability on the stop words, original vs super weights zeroed. */
  stopWords: { original: number; zeroed: number };
}

export type Progress = (done: number, total: number) => void;

export async function evaluate(engine: SequenceEngine, input: EvaluationInput, onProgress?: Progress, signal?: AbortSignal): Promise<EvaluationResult> {
  const { windows, superWeights, largest } = input;
  if (superWeights.length === 0) throw new Error('no super weights are known for this model; pass --super-weights FILE or --detect');
  const scaled = (scale: number, restoreActivation = false): SwitchPlan => scaledPlan(superWeights, scale, restoreActivation);
  const runs: { plan: SwitchPlan; stopWords: boolean }[] = [
    { plan: ORIGINAL_SWITCH, stopWords: true },
    { plan: scaled(0), stopWords: true },
    { plan: scaled(0, true), stopWords: false },
    { plan: scaledPlan(largest, 0), stopWords: false },
    // Scale 1 is run, not copied from the original: it checks that an explicit no-op switch is one.
    ...input.sweepScales.map((scale) => ({ plan: scaled(scale), stopWords: false })),
  ];
  const total = runs.length * windows.length;
  let done = 0;
  const scores: WindowScore[][] = [];
  for (const run of runs) {
    scores.push(
      await scoreWindows(engine, windows, run.plan, {
        stopWordIds: run.stopWords ? input.stopWordIds : undefined,
        concurrency: WINDOW_CONCURRENCY,
        onWindow: () => onProgress?.(++done, total),
        signal,
      }),
    );
  }
  const [original, zeroed, restored, largestZeroed, ...sweep] = scores.map(summarize);
  const stopWordMean = (s: WindowScore[]): number => s.reduce((a, w) => a + w.stopWordMass, 0) / s.reduce((a, w) => a + w.tokens, 0);
  return {
    windows: windows.length,
    scoredTokens: scores[0]!.reduce((a, w) => a + w.tokens, 0),
    conditions: { original: original!, zeroed: zeroed!, zeroed_restored: restored!, largest_zeroed: largestZeroed! },
    sweep: sweep.map((r, i) => ({ scale: input.sweepScales[i]!, ...r })),
    stopWords: { original: stopWordMean(scores[0]!), zeroed: stopWordMean(scores[1]!) },
  };
}

function summarize(scores: WindowScore[]): ConditionResult {
  let nll = 0;
  let tokens = 0;
  for (const s of scores) {
    nll += s.nll;
    tokens += s.tokens;
  }
  return { perplexity: Math.exp(nll / tokens), meanNll: nll / tokens };
}
