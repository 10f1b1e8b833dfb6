// POST /v1/ablations/compare (swserve's own): one prompt under several switch states, same seed.
import { z } from 'zod';
import { superWeightsFieldSchema } from '../super-weights-field.js';

// Each state is generated and then scored: keep one call's work bounded.
export const MAX_COMPARE_STATES = 8;
export const DEFAULT_COMPARE_MAX_TOKENS = 16;

export const ablationCompareSchema = z.looseObject({
  model: z.string().min(1),
  prompt: z.union([z.string().min(1), z.array(z.number().int().min(0)).min(1)]),
  max_tokens: z.number().int().min(1).nullish(),
  /** Greedy by default, so states differ only by the switch. */
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  seed: z.number().int().nullish(),
  states: z.array(superWeightsFieldSchema).min(1).max(MAX_COMPARE_STATES).nullish(),
});

export type AblationCompareRequest = z.infer<typeof ablationCompareSchema>;
