// The text_completion shapes: choices with text, the four-array logprobs, and stream chunks.
import type { ChoiceState, TokenRecord } from '../choice-state.js';
import { choiceFormat } from '../choice-format.js';
import type { ResponseFormat } from '../send-job.js';

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/** OpenAI's four parallel arrays; top_logprobs holds the top alternatives plus the sampled token. */
export function completionLogprobs(records: TokenRecord[], startOffset: number): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let offset = startOffset;
  for (const r of records) {
    out.tokens.push(r.token);
    out.token_logprobs.push(r.logprob);
    out.top_logprobs.push(r.top === null || r.logprob === null ? null : topByText([...r.top.map((a) => [a.token, a.logprob] as const), [r.token, r.logprob]]));
    out.text_offset.push(offset);
    offset += r.token.length;
  }
  return out;
}

/**
 * The alternatives keyed by text, most likely first. Distinct tokens can share a text (byte tokens
 * that are not UTF-8 on their own all read "\uFFFD"); the more likely one keeps the key, never a later one.
 */
function topByText(alternatives: (readonly [string, number])[]): Record<string, number> {
  const top: Record<string, number> = {};
  for (const [text, logprob] of alternatives) if (!Object.hasOwn(top, text)) top[text] = logprob;
  return top;
}

export function completionFormat(echo: boolean, logprobs: number | null): ResponseFormat {
  return choiceFormat({
    object: 'text_completion',
    chunkObject: 'text_completion',
    choice(index, state: ChoiceState) {
      const records = echo ? [...state.promptTokens, ...state.tokens] : state.tokens;
      return {
        index,
        text: (echo ? state.promptText : '') + state.text,
        logprobs: logprobs === null ? null : completionLogprobs(records, 0),
        finish_reason: state.finishReason,
      };
    },
    chunkChoice(index, increment, state, first) {
      const echoed = first && echo;
      const records = echoed ? [...state.promptTokens, ...increment.tokens] : increment.tokens;
      const text = (echoed ? state.promptText : '') + increment.text;
      if (text === '' && increment.finishReason === null && (logprobs === null || records.length === 0)) return undefined;
      const offset = echoed ? 0 : (echo ? state.promptText.length : 0) + state.text.length - increment.text.length;
      return {
        index,
        text,
        logprobs: logprobs === null ? null : completionLogprobs(records, offset),
        finish_reason: increment.finishReason,
      };
    },
  });
}
