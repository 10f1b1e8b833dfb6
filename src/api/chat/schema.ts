// POST /v1/chat/completions request body.
import { z } from 'zod';
import { samplingFields } from '../sampling-fields.js';

// OpenAI allows top_logprobs up to 20.
export const MAX_CHAT_TOP_LOGPROBS = 20;

const textPart = z.strictObject({ type: z.literal('text'), text: z.string() });

export const chatMessageSchema = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.union([z.string(), z.array(textPart).min(1), z.null()], {
    error: (issue) => (issue.code === 'invalid_union' ? 'expected a string or an array of {"type": "text", "text": string} parts (only text is supported)' : undefined),
  }),
  name: z.string().optional(),
});

export const chatRequestSchema = z.looseObject({
  ...samplingFields,
  messages: z.array(chatMessageSchema).min(1),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(MAX_CHAT_TOP_LOGPROBS).nullish(),
  // vLLM's extras for templates.
  add_generation_prompt: z.boolean().nullish(),
  chat_template_kwargs: z.record(z.string(), z.unknown()).nullish(),
});

export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type ChatMessage = z.infer<typeof chatMessageSchema>;
