// POST /v1/responses request body: text in, text out. Input is a string or a list of message items
// whose content is text; unknown top-level fields are accepted, those asking for behaviour swserve
// does not have are refused by name (RESPONSES_UNSUPPORTED).
import { z } from 'zod';
import { superWeightsFieldSchema } from '../super-weights-field.js';
import { refusedUnless, textFormat, toolCalls, type UnsupportedRule } from '../unsupported-fields.js';

const textContent = z.strictObject({ type: z.enum(['input_text', 'output_text']), text: z.string() });

export const responseInputMessageSchema = z.looseObject({
  type: z.literal('message').optional(),
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(textContent).min(1)], {
    error: (issue) => (issue.code === 'invalid_union' ? 'expected a string or an array of {"type": "input_text" | "output_text", "text": string} parts (only text is supported)' : undefined),
  }),
});

export const responsesRequestSchema = z.looseObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(responseInputMessageSchema).min(1)], {
    error: (issue) => (issue.code === 'invalid_union' ? 'expected a string or an array of message items ({"role", "content"}); only text messages are supported' : undefined),
  }),
  /** A system message placed before the input. */
  instructions: z.string().nullish(),
  max_output_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  stream: z.boolean().nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  user: z.string().nullish(),
  // vLLM's sampling extras.
  seed: z.number().int().nullish(),
  top_k: z.number().int().min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).nullish(),
  super_weights: superWeightsFieldSchema.nullish(),
});

export type ResponsesRequest = z.infer<typeof responsesRequestSchema>;
export type ResponseInputMessage = z.infer<typeof responseInputMessageSchema>;

/** What the Responses API asks for that swserve does not have: tools, constrained text, stored state. */
export const RESPONSES_UNSUPPORTED: readonly UnsupportedRule[] = [
  toolCalls,
  textFormat('text.format'),
  refusedUnless('previous_response_id', 'swserve keeps no responses; send the whole conversation as input'),
  refusedUnless('conversation', 'swserve keeps no conversations; send the whole conversation as input'),
  refusedUnless('store', 'swserve keeps no responses (store: false)', [false]),
  refusedUnless('background', 'background responses are not supported', [false]),
  refusedUnless('include', 'no extra output (logprobs, tool results) is available', [[]]),
  refusedUnless('top_logprobs', 'logprobs are not available on /v1/responses; use /v1/chat/completions', [0]),
  refusedUnless('reasoning', 'the model does not reason separately'),
  refusedUnless('prompt', 'stored prompt templates are not supported'),
  refusedUnless('max_tool_calls', 'swserve makes no tool calls'),
  refusedUnless('truncation', 'the input is never truncated (truncation "disabled")', ['disabled']),
];
