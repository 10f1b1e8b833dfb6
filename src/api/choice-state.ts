// Accumulates one choice's events into what the OpenAI shapes need (text, tokens, logprobs, finish
// reason), and hands each event's increment to a stream.
import type { FinishReason, SequenceEvent, TokenAlternative } from '../engine/protocol.js';

export interface TokenRecord {
  token: string;
  tokenId: number;
  /** null for the first prompt token, which has no logprob. */
  logprob: number | null;
  top: TokenAlternative[] | null;
}

export interface ChoiceIncrement {
  text: string;
  tokens: TokenRecord[];
  finishReason: FinishReason | null;
}

export class ChoiceState {
  text = '';
  readonly tokens: TokenRecord[] = [];
  promptTokens: TokenRecord[] = [];
  promptText = '';
  finishReason: FinishReason | null = null;
  completionTokens = 0;

  /** Applies one event; returns what it adds to the choice. */
  apply(event: SequenceEvent): ChoiceIncrement {
    const added: ChoiceIncrement = { text: '', tokens: [], finishReason: null };
    if (event.type === 'prompt') {
      this.promptText = event.promptText;
      this.promptTokens = event.promptIds.map((tokenId, t) => ({
        token: event.promptTokens[t]!,
        tokenId,
        logprob: event.promptLogprobs?.[t]?.logprob ?? null,
        top: event.promptLogprobs?.[t]?.top ?? null,
      }));
    } else if (event.type === 'token') {
      const record = { token: event.token, tokenId: event.tokenId, logprob: event.logprob, top: event.top };
      this.tokens.push(record);
      this.text += event.text;
      added.text = event.text;
      added.tokens.push(record);
    } else if (event.type === 'finish') {
      this.text += event.text;
      this.finishReason = event.reason;
      this.completionTokens = event.completionTokens;
      added.text = event.text;
      added.finishReason = event.reason;
    }
    return added;
  }
}
