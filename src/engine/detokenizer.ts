// Streaming text output: an incremental detokenizer (token ids -> text deltas) and a stop-string matcher
// (text deltas -> client-visible text). Both hold back text that may still change: a partial UTF-8
// character, or the beginning of a stop string.

import type { TextTokenizer } from "./tokenizer.js";

export interface IncrementalDetokenizer {
  /** Adds one generated token; returns the text it completes ("" while a character or word is still partial). */
  push(tokenId: number): string;
  /** Returns whatever is still held back (e.g. a trailing partial character, as U+FFFD) at the end of generation. */
  flush(): string;
}

export interface DetokenizerOptions {
  /** Default true: vLLM's default (skip_special_tokens) for generated text. */
  skipSpecialTokens?: boolean;
}

export interface StopMatch {
  /** Text that is safe to send to the client now. */
  emit: string;
  /** True once a stop string has been seen; later pushes emit nothing. */
  stopped: boolean;
  /** The stop string that matched (vLLM reports it as `stop_reason`). */
  stopString?: string;
}

export interface StopMatcher {
  push(delta: string): StopMatch;
  /** The held-back text at the end of generation (it turned out not to start a stop string). */
  flush(): string;
}

/**
 * How many prompt tokens seed the decode window (vLLM's INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET), so the
 * first generated token decodes in context (e.g. SentencePiece keeps its leading space).
 */
export const PROMPT_CONTEXT_TOKENS = 5;
/** What a decoder produces for an incomplete UTF-8 sequence. */
const REPLACEMENT_CHARACTER = "\uFFFD";

/**
 * The prefix-offset technique of vLLM/TGI: decode a short window of already-emitted tokens with and
 * without the new ones, and emit the difference. Decoding in context keeps decoders that strip or merge
 * at token boundaries (SentencePiece spaces, byte-level UTF-8) correct; without a prompt, the deltas
 * concatenate to decode(allGeneratedIds).
 */
export function createDetokenizer(
  tokenizer: Pick<TextTokenizer, "decode">,
  promptIds: readonly number[] = [],
  options: DetokenizerOptions = {},
): IncrementalDetokenizer {
  const decodeOptions = { skipSpecialTokens: options.skipSpecialTokens ?? true };
  // window[0, readOffset) is the already-emitted context; window[readOffset, end) is not emitted yet.
  let window: number[] = promptIds.slice(-PROMPT_CONTEXT_TOKENS);
  let readOffset = window.length;

  const pendingDelta = (): { delta: string; complete: boolean } => {
    const contextText = tokenizer.decode(window.slice(0, readOffset), decodeOptions);
    const fullText = tokenizer.decode(window, decodeOptions);
    if (fullText.length <= contextText.length) return { delta: "", complete: false };
    return { delta: fullText.slice(contextText.length), complete: !fullText.endsWith(REPLACEMENT_CHARACTER) };
  };

  const advance = (): void => {
    window = window.slice(readOffset);
    readOffset = window.length;
  };

  return {
    push(tokenId: number): string {
      window.push(tokenId);
      const { delta, complete } = pendingDelta();
      if (!complete) return "";
      advance();
      return delta;
    },
    flush(): string {
      if (readOffset === window.length) return "";
      const { delta } = pendingDelta();
      advance();
      return delta;
    },
  };
}

/**
 * Watches streamed text for stop strings. Text that could be the start of a stop string is held back,
 * so a client never sees part of one; on a match only the text before the stop string is emitted.
 */
export function createStopMatcher(stops: readonly string[]): StopMatcher {
  const stopStrings = stops.filter((stop) => stop.length > 0);
  let held = "";
  let stopped = false;

  return {
    push(delta: string): StopMatch {
      if (stopped) return { emit: "", stopped: true };
      const text = held + delta;
      const match = earliestStop(text, stopStrings);
      if (match !== undefined) {
        stopped = true;
        held = "";
        return { emit: text.slice(0, match.index), stopped: true, stopString: match.stop };
      }
      const holdLength = longestStopPrefixSuffix(text, stopStrings);
      held = text.slice(text.length - holdLength);
      return { emit: text.slice(0, text.length - holdLength), stopped: false };
    },
    flush(): string {
      const rest = held;
      held = "";
      return stopped ? "" : rest;
    },
  };
}

/** The stop string that occurs first in `text` (the longer one when two start at the same place). */
function earliestStop(text: string, stops: readonly string[]): { index: number; stop: string } | undefined {
  let best: { index: number; stop: string } | undefined;
  for (const stop of stops) {
    const index = text.indexOf(stop);
    if (index < 0) continue;
    if (best === undefined || index < best.index || (index === best.index && stop.length > best.stop.length)) {
      best = { index, stop };
    }
  }
  return best;
}

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
function longestStopPrefixSuffix(text: string, stops: readonly string[]): number {
  let longest = 0;
  for (const stop of stops) {
    for (let length = Math.min(stop.length - 1, text.length); length > longest; length--) {
      if (text.endsWith(stop.slice(0, length))) {
        longest = length;
        break;
      }
    }
  }
  return longest;
}
