// Runs one sequence on the real engine (the worker's EngineClient, or anything with its `generate`)
// and keeps what detection and evaluation read: the prompt event and the first token's activation frame.
import type { ActivationFrame, EngineErrorKind, EngineInfo, GenerationRequest, SequenceEvent } from '../engine/protocol.js';
import { GREEDY_SAMPLING } from '../engine/sampler.js';
import { ORIGINAL_SWITCH } from '../model/switch-plan.js';

export interface SequenceEngine {
  readonly info: EngineInfo;
  generate(request: GenerationRequest, signal?: AbortSignal): AsyncIterable<SequenceEvent>;
}

export interface SequenceOutcome {
  prompt?: Extract<SequenceEvent, { type: 'prompt' }>;
  /** The prefill step's taps (absent when nothing was generated or the graph has no taps). */
  frame?: ActivationFrame;
}

/** A greedy request with everything switched off but what the caller sets. */
export function analysisRequest(fields: Pick<GenerationRequest, 'id' | 'prompt' | 'maxTokens'> & Partial<GenerationRequest>): GenerationRequest {
  return {
    sampling: GREEDY_SAMPLING,
    streamIndex: 0,
    stop: [],
    stopTokenIds: [],
    ignoreEos: true,
    minTokens: 0,
    promptLogprobs: null,
    switchPlan: ORIGINAL_SWITCH,
    ...fields,
  };
}

/** The engine refused or failed a sequence; `kind` says whether the request was at fault (e.g. a prompt longer than the context). */
export class SequenceFailed extends Error {
  constructor(
    readonly kind: EngineErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'SequenceFailed';
  }
}

export async function runSequence(engine: SequenceEngine, request: GenerationRequest, signal?: AbortSignal): Promise<SequenceOutcome> {
  const outcome: SequenceOutcome = {};
  for await (const event of engine.generate(request, signal)) {
    if (event.type === 'error') throw new SequenceFailed(event.kind, event.message);
    if (event.type === 'prompt') outcome.prompt = event;
    if (event.type === 'token' && event.frame?.phase === 'prefill') outcome.frame = event.frame;
    if (event.type === 'finish' && event.reason === 'abort') throw new Error(`${request.id} was cancelled`);
  }
  return outcome;
}

let counter = 0;
/** Ids unique within this process, so concurrent analyses never collide in the engine. */
export function analysisId(prefix: string): string {
  return `${prefix}-${process.pid}-${(counter++).toString(36)}`;
}
