// An evaluation run as JSON (snake_case) for `swserve eval --json`.
import type { EvaluationResult } from './evaluation.js';
import type { SourcedSuperWeight } from './registry.js';
import { coordinateId } from '../model/switch-plan.js';

/** How a text was scored: the model, the file and its window length (every windowed analysis). */
export interface ScoredTextContext {
  model: string;
  textFile: string;
  windowTokens: number;
}

export interface ScoredTextJson {
  model: string;
  text_file: string;
  window_tokens: number;
  windows: number;
  scored_tokens: number;
}

/** The fields every windowed analysis's JSON starts with. */
export function scoredTextJson(ctx: ScoredTextContext, result: { windows: number; scoredTokens: number }): ScoredTextJson {
  return { model: ctx.model, text_file: ctx.textFile, window_tokens: ctx.windowTokens, windows: result.windows, scored_tokens: result.scoredTokens };
}

export interface EvaluationContext extends ScoredTextContext {
  superWeights: SourcedSuperWeight[];
  superWeightsFrom: string;
  largestCount: number;
  stopWords: string[];
}

export interface EvaluationJson extends ScoredTextJson {
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
    ...scoredTextJson(ctx, result),
    super_weights_from: ctx.superWeightsFrom,
    super_weights: ctx.superWeights.map((s) => ({ id: coordinateId(s), layer: s.layer, row: s.row, col: s.col, source: s.source })),
    largest_count: ctx.largestCount,
    conditions: { original: condition(original), zeroed: condition(zeroed), zeroed_restored: condition(zeroed_restored), largest_zeroed: condition(largest_zeroed) },
    sweep: result.sweep.map((s) => ({ scale: s.scale, ...condition(s) })),
    stop_words: { words: ctx.stopWords, ...result.stopWords },
  };
}
