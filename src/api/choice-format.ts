// The convert-out shared by chat and text completions: a body with `choices`, stream chunks holding
// one choice each (the first with `super_weights`), a usage chunk when asked, then `data: [DONE]`.
import type { ChoiceIncrement, ChoiceState } from './choice-state.js';
import type { ApiError } from '../http/errors.js';
import type { SseEvent } from '../http/sse.js';
import type { JobResponse, ResponseFormat, Usage } from './send-job.js';

export interface ChoiceShapes {
  object: string;
  chunkObject: string;
  /** A whole choice for the JSON response. */
  choice(index: number, state: ChoiceState): object;
  /** A stream chunk's choice for one increment, or undefined when there is nothing to send. */
  chunkChoice(index: number, increment: ChoiceIncrement, state: ChoiceState, first: boolean): object | undefined;
}

/** A ResponseFormat for one request (it remembers whether the first chunk went out). */
export function choiceFormat(shapes: ChoiceShapes): ResponseFormat {
  let firstChunk = true;
  const chunk = (r: JobResponse, choices: object[], extra: object = {}): SseEvent => {
    const data = {
      id: r.id,
      object: shapes.chunkObject,
      created: r.created,
      model: r.model,
      choices,
      ...(firstChunk ? { super_weights: r.superWeights } : {}),
      ...(r.includeUsage ? { usage: null } : {}),
      ...extra,
    };
    firstChunk = false;
    return { data };
  };
  return {
    body: (r, states, usage) => ({
      id: r.id,
      object: shapes.object,
      created: r.created,
      model: r.model,
      choices: states.map((s, i) => shapes.choice(i, s)),
      usage,
      super_weights: r.superWeights,
    }),
    open: () => [],
    increment(r, index, increment, state, first) {
      const choice = shapes.chunkChoice(index, increment, state, first);
      return choice ? [chunk(r, [choice])] : [];
    },
    close: (r, _states, usage: Usage) => (r.includeUsage ? [chunk(r, [], { usage })] : []),
    failure: (_r, error: ApiError) => ({ data: error.toJSON() }),
    doneMarker: true,
  };
}
