// The chat.completion shapes: an assistant message per choice, logprobs as {content: [...]}, and
// chunks whose delta carries the role first and then content.
import type { TokenRecord } from '../choice-state.js';
import { choiceFormat } from '../choice-format.js';
import type { ResponseFormat } from '../send-job.js';

function chatLogprobs(records: TokenRecord[]): { content: object[] } {
  const bytes = (token: string): number[] => [...Buffer.from(token, 'utf8')];
  return {
    content: records.map((r) => ({
      token: r.token,
      logprob: r.logprob,
      bytes: bytes(r.token),
      top_logprobs: (r.top ?? []).map((a) => ({ token: a.token, logprob: a.logprob, bytes: bytes(a.token) })),
    })),
  };
}

export function chatFormat(logprobs: boolean): ResponseFormat {
  return choiceFormat({
    object: 'chat.completion',
    chunkObject: 'chat.completion.chunk',
    choice(index, state) {
      return {
        index,
        message: { role: 'assistant', content: state.text, refusal: null },
        logprobs: logprobs ? chatLogprobs(state.tokens) : null,
        finish_reason: state.finishReason,
      };
    },
    chunkChoice(index, increment, _state, first) {
      const hasContent = increment.text !== '' || (logprobs && increment.tokens.length > 0);
      if (!first && !hasContent && increment.finishReason === null) return undefined;
      const delta: Record<string, string> = first ? { role: 'assistant', content: increment.text } : increment.text !== '' || increment.finishReason === null ? { content: increment.text } : {};
      return {
        index,
        delta,
        logprobs: logprobs && increment.tokens.length > 0 ? chatLogprobs(increment.tokens) : null,
        finish_reason: increment.finishReason,
      };
    },
  });
}
