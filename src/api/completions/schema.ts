// POST /v1/completions request body. Unknown top-level fields are accepted (benchmark clients send
// many); fields we do not implement with a non-default value are refused by name.
import { z } from 'zod';
import { samplingFields } from '../sampling-fields.js';

const tokenId = z.number().int().min(0);

// OpenAI's completions API allows top-5 logprobs.
export const MAX_COMPLETION_LOGPROBS = 5;
// OpenAI's default max_tokens for completions.
export const DEFAULT_COMPLETION_MAX_TOKENS = 16;

export const completionRequestSchema = z.looseObject({
  ...samplingFields,
  prompt: z.union([
    z.string(),
    z.array(z.string()).min(1),
    z.array(tokenId).min(1),
    z.array(z.array(tokenId).min(1)).min(1),
  ], { error: (issue) => (issue.code === 'invalid_union' ? 'expected a string, an array of strings, an array of token ids, or an array of token-id arrays (none empty)' : undefined) }),
  max_tokens: z.number().int().min(0).nullish(),
  logprobs: z.number().int().min(0).max(MAX_COMPLETION_LOGPROBS).nullish(),
  echo: z.boolean().nullish(),
  best_of: z.number().int().min(1).nullish(),
  suffix: z.string().nullish(),
});

export type CompletionRequest = z.infer<typeof completionRequestSchema>;
