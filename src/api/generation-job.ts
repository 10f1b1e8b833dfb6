// The core both completion endpoints share: one internal job (prompts x n choices) submitted to the
// engine as sequences, their events merged into one stream of choice events. A job is opened only
// once the engine has accepted every sequence, so a bad request is a 400 before any stream starts.
import type { EngineClient } from '../engine/engine-client.js';
import type { ComparisonMembership, GenerationRequest, SequenceEvent } from '../engine/protocol.js';
import type { SwitchPlan } from '../model/switch-plan.js';
import { ApiError } from '../http/errors.js';
import type { GenerationSettings } from './sampling-fields.js';

export interface GenerationJob {
  id: string;
  prompts: GenerationRequest['prompt'][];
  n: number;
  settings: GenerationSettings;
  promptLogprobs: number | null;
  switchPlan: SwitchPlan;
  /** The request field engine refusals of the prompt are about ('prompt', or 'messages' for chat). */
  promptParam: string;
  /** The request field engine refusals of the switch plan are about (super_weights, its header, states[i]). */
  switchParam: string;
  /** The id telemetry reports: the client's X-Request-Id, else the response id. */
  requestId?: string;
  /** For one state of an A/B comparison (one prompt, n = 1). */
  comparison?: ComparisonMembership;
}

export interface ChoiceEvent {
  /** OpenAI's choice index: prompt p, sample j -> p * n + j. */
  index: number;
  promptIndex: number;
  event: SequenceEvent;
}

export interface OpenedJob {
  promptTokens: number[];
  /** Original weight values reported by the engine (same for every choice). */
  weightValues: Record<string, number>;
  /** Every choice's events; a sequence's error is thrown as an ApiError. */
  events: AsyncGenerator<ChoiceEvent>;
}

/** Submits every sequence and waits until all are accepted; an engine refusal becomes an ApiError. */
export async function openJob(engine: EngineClient, job: GenerationJob, signal: AbortSignal): Promise<OpenedJob> {
  const sources: AsyncGenerator<ChoiceEvent>[] = [];
  job.prompts.forEach((prompt, p) => {
    for (let j = 0; j < job.n; j++) {
      const index = p * job.n + j;
      const request: GenerationRequest = {
        ...job.settings,
        id: `${job.id}-${index}`,
        prompt,
        streamIndex: j,
        promptLogprobs: job.promptLogprobs,
        ...(job.comparison ? { comparison: job.comparison } : {}),
        switchPlan: job.switchPlan,
        tags: { requestId: job.requestId ?? job.id, choice: index },
      };
      sources.push(tagged(engine.generate(request, signal), index, p, job));
    }
  });
  const events = merge(sources);
  const promptTokens: number[] = Array(job.prompts.length).fill(0);
  let weightValues: Record<string, number> = {};
  const early: ChoiceEvent[] = [];
  let accepted = 0;
  while (accepted < sources.length) {
    const next = await events.next().catch((err: Error) => {
      throw err instanceof ApiError ? err : new ApiError('engine_failure', `the engine is not available: ${err.message}`);
    });
    if (next.done) throw new ApiError('engine_failure', 'the engine closed before accepting the request');
    const { event } = next.value;
    if (event.type === 'accepted') {
      accepted++;
      promptTokens[next.value.promptIndex] = event.promptTokens;
      weightValues = event.weightValues;
    } else {
      early.push(next.value);
    }
  }
  return { promptTokens, weightValues, events: prepend(early, events) };
}

/** An engine refusal or failure as the API's error, naming the request field it is about. */
function sequenceError(event: Extract<SequenceEvent, { type: 'error' }>, job: GenerationJob): ApiError {
  const param = event.kind === 'engine_failure' || event.field === 'comparison' ? null : event.field === 'switch' ? job.switchParam : job.promptParam;
  return new ApiError(event.kind, param === null ? event.message : `${param}: ${event.message}`, param);
}

/** One sequence's events as choice events; its error (a refusal, or a failure after acceptance) is thrown. */
async function* tagged(source: AsyncGenerator<SequenceEvent>, index: number, promptIndex: number, job: GenerationJob): AsyncGenerator<ChoiceEvent> {
  for await (const event of source) {
    if (event.type === 'error') throw sequenceError(event, job);
    yield { index, promptIndex, event };
  }
}

async function* prepend<T>(first: T[], rest: AsyncGenerator<T>): AsyncGenerator<T> {
  yield* first;
  yield* rest;
}

type Pulled<T> = { i: number; result: IteratorResult<T> } | { i: number; error: unknown };

/** Interleaves several async generators in arrival order; a source's error is thrown when it is reached. */
async function* merge<T>(sources: AsyncGenerator<T>[]): AsyncGenerator<T> {
  const pending = new Map<number, Promise<Pulled<T>>>();
  // Each source's next event is pulled ahead of the consumer; its failure is held as a value so it
  // surfaces when the consumer gets to it, not as an unhandled rejection while nobody is reading.
  const pull = (i: number): void => {
    pending.set(
      i,
      sources[i]!.next().then(
        (result) => ({ i, result }),
        (error: unknown) => ({ i, error }),
      ),
    );
  };
  sources.forEach((_, i) => pull(i));
  try {
    while (pending.size > 0) {
      const pulled = await Promise.race(pending.values());
      if ('error' in pulled) throw pulled.error;
      const { i, result } = pulled;
      if (result.done) {
        pending.delete(i);
      } else {
        pull(i);
        yield result.value;
      }
    }
  } finally {
    // Not awaited: a source parked on its next event finishes once its cancellation lands.
    for (const source of sources) void source.return(undefined);
  }
}
