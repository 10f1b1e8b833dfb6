// An evaluation run as JSON (snake_case) for `swserve eval --json`.
import type { EvaluationResult } from './evaluation.js';
import type { SourcedSuperWeight } from './registry.js';
import { coordinateId } from '../model/switch-plan.js';

export interface EvaluationContext {
  model: string;
  textFile: string;
  windowTokens: number;
  superWeights: SourcedSuperWeight[];
  superWeightsFrom: string;
  largestCount: number;
  stopWords: string[];
}

export interface EvaluationJson {
  model: string;
  text_file: string;
  window_tokens: number;
  windows: number;
  scored_tokens: number;
  super_weights_from: string;
  super_weights: { id: string; layer: number; row: number; col: number; source: string }[];
  largest_count: number;
  conditions: Record<keyof EvaluationResult['conditions'], { perplexity: number; mean_nll: number }>;
  sweep: { scale: number; perplexity: number; mean_nll: number }[];
  stop_words: { words: string[]; original: number; zeroed: number };
}

export function evaluationJson(result: EvaluationResult, ctx: EvaluationContext): EvaluationJson {
  const condition = (c: { perplexity: number; meanNll: number }): { perplexity: number; mean_nll: number } => ({ perplexity: c.perplexity, mean_nll: c.meanNll });
  const { original, zeroed, zeroed_restored, largest_zeroed } = result.conditions;
  return {
    model: ctx.model,
    text_file: ctx.textFile,
    window_tokens: ctx.windowTokens,
    windows: result.windows,
    scored_tokens: result.scoredTokens,
    super_weights_from: ctx.superWeightsFrom,
    super_weights: ctx.superWeights.map((s) => ({ id: coordinateId(s), layer: s.layer, row: s.row, col: s.col, source: s.source })),
    largest_count: ctx.largestCount,
    conditions: { original: condition(original), zeroed: condition(zeroed), zeroed_restored: condition(zeroed_restored), largest_zeroed: condition(largest_zeroed) },
    sweep: result.sweep.map((s) => ({ scale: s.scale, ...condition(s) })),
    stop_words: { words: ctx.stopWords, ...result.stopWords },
  };
}
