// The Responses API's shapes: a `response` object whose output is one assistant message with one
// output_text part, and the stream's named events, each with a sequence number: response.created,
// response.in_progress, response.output_item.added, response.content_part.added, then
// response.output_text.delta per increment, and at the end response.output_text.done,
// response.content_part.done, response.output_item.done and response.completed (or
// response.incomplete when max_output_tokens ran out). No `data: [DONE]`, as OpenAI and vLLM.
import type { FinishReason } from '../../engine/protocol.js';
import type { ApiError } from '../../http/errors.js';
import type { SseEvent } from '../../http/sse.js';
import type { ChoiceState } from '../choice-state.js';
import type { JobResponse, ResponseFormat, Usage } from '../send-job.js';

/** Request settings a response echoes back, as OpenAI's does. */
export interface ResponseEcho {
  instructions: string | null;
  max_output_tokens: number | null;
  metadata: Record<string, string>;
  temperature: number;
  top_p: number;
  user: string | null;
}

type Status = 'in_progress' | 'completed' | 'incomplete' | 'cancelled';

function status(reason: FinishReason | null): Status {
  if (reason === null) return 'in_progress';
  return reason === 'length' ? 'incomplete' : reason === 'abort' ? 'cancelled' : 'completed';
}

function outputText(text: string): object {
  return { type: 'output_text', text, annotations: [], logprobs: [] };
}

export function responsesFormat(echo: ResponseEcho, messageId: string): ResponseFormat {
  let sequence = 0;
  const event = (type: string, fields: object): SseEvent => ({ event: type, data: { type, sequence_number: sequence++, ...fields } });
  const message = (state: ChoiceState | null): object => {
    const s = status(state?.finishReason ?? null);
    return { id: messageId, type: 'message', role: 'assistant', status: s === 'cancelled' ? 'incomplete' : s, content: state ? [outputText(state.text)] : [] };
  };
  const response = (r: JobResponse, state: ChoiceState | null, usage: Usage | null): object => {
    const s = status(state?.finishReason ?? null);
    return {
      id: r.id,
      object: 'response',
      created_at: r.created,
      status: s,
      error: null,
      incomplete_details: s === 'incomplete' ? { reason: 'max_output_tokens' } : null,
      model: r.model,
      output: state ? [message(state)] : [],
      parallel_tool_calls: false,
      tool_choice: 'none',
      tools: [],
      store: false,
      text: { format: { type: 'text' } },
      truncation: 'disabled',
      ...echo,
      usage: usage && {
        input_tokens: usage.prompt_tokens,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: usage.completion_tokens,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: usage.total_tokens,
      },
      super_weights: r.superWeights,
    };
  };
  const where = { item_id: messageId, output_index: 0, content_index: 0 };
  return {
    body: (r, states, usage) => response(r, states[0]!, usage),
    open: (r) => [
      event('response.created', { response: response(r, null, null) }),
      event('response.in_progress', { response: response(r, null, null) }),
      event('response.output_item.added', { output_index: 0, item: message(null) }),
      event('response.content_part.added', { ...where, part: outputText('') }),
    ],
    increment: (_r, _index, increment) => (increment.text === '' ? [] : [event('response.output_text.delta', { ...where, delta: increment.text, logprobs: [] })]),
    close: (r, states, usage) => {
      const state = states[0]!;
      const final = response(r, state, usage);
      return [
        event('response.output_text.done', { ...where, text: state.text, logprobs: [] }),
        event('response.content_part.done', { ...where, part: outputText(state.text) }),
        event('response.output_item.done', { output_index: 0, item: message(state) }),
        event(status(state.finishReason) === 'incomplete' ? 'response.incomplete' : 'response.completed', { response: final }),
      ];
    },
    failure: (_r, error: ApiError) => {
      const { code, message: text, param } = error.toJSON().error;
      return event('error', { code, message: text, param });
    },
    doneMarker: false,
  };
}
