// Sends an opened job as one JSON response or as an SSE stream. The endpoint supplies a format (its
// convert-out functions: the JSON body, and the stream's events) that turns choice states and
// increments into its own OpenAI shapes; admission, the engine job and the stream are shared.
import type { Request, Response } from 'express';
import { disconnectSignal, type ApiContext } from './api-context.js';
import type { ChoiceIncrement } from './choice-state.js';
import { ChoiceState } from './choice-state.js';
import { ApiError } from '../http/errors.js';
import { openJob, type GenerationJob, type OpenedJob } from './generation-job.js';
import { SseWriter, type SseEvent, type SseOptions } from '../http/sse.js';
import { describeSwitch, type AppliedSwitch, type ResolvedSwitch } from './super-weights-field.js';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** What every format may put in its answer. */
export interface JobResponse {
  id: string;
  model: string;
  /** Unix seconds. */
  created: number;
  superWeights: AppliedSwitch;
  includeUsage: boolean;
}

export interface ResponseFormat {
  /** The whole answer without `stream`. */
  body(r: JobResponse, states: ChoiceState[], usage: Usage): object;
  /** Events before the first token. */
  open(r: JobResponse): SseEvent[];
  /** Events for one increment of one choice (`first`: the choice's first). */
  increment(r: JobResponse, index: number, increment: ChoiceIncrement, state: ChoiceState, first: boolean): SseEvent[];
  /** Events once every choice has finished. */
  close(r: JobResponse, states: ChoiceState[], usage: Usage): SseEvent[];
  /** The event that reports an error after the stream started. */
  failure(r: JobResponse, error: ApiError): SseEvent;
  /** Chat and completions end with `data: [DONE]`; the Responses API does not. */
  doneMarker: boolean;
}

export interface ServeOptions {
  stream: boolean;
  includeUsage: boolean;
  resolved: ResolvedSwitch;
  /** The field a request too large for the server is blamed on. */
  admissionParam: string;
}

/** The life of a validated generation request: admission, the engine job, the response. */
export async function serveJob(ctx: ApiContext, req: Request, res: Response, job: GenerationJob, format: ResponseFormat, o: ServeOptions): Promise<void> {
  const choices = job.prompts.length * job.n;
  const release = ctx.admission.acquire(choices, o.admissionParam);
  try {
    const tagged = { ...job, requestId: req.get('x-request-id') ?? job.id };
    const opened = await openJob(ctx.engine, tagged, disconnectSignal(req).signal);
    const r: JobResponse = {
      id: job.id,
      model: ctx.modelId,
      created: Math.floor(Date.now() / 1000),
      superWeights: describeSwitch(o.resolved, opened.weightValues),
      includeUsage: o.includeUsage,
    };
    const stream = { pingIntervalMs: ctx.config.pingIntervalSeconds * 1000, maxBufferedBytes: ctx.config.connections.maxWriteBufferBytes };
    await sendJob(res, opened, format, r, choices, o.stream ? stream : null);
  } finally {
    release();
  }
}

/** Streams when `stream` options are given, else answers one JSON body. */
async function sendJob(
  res: Response,
  opened: OpenedJob,
  format: ResponseFormat,
  r: JobResponse,
  choices: number,
  stream: Pick<SseOptions, 'pingIntervalMs' | 'maxBufferedBytes'> | null,
): Promise<void> {
  const states = Array.from({ length: choices }, () => new ChoiceState());
  const usage = (): Usage => {
    const prompt = opened.promptTokens.reduce((a, b) => a + b, 0);
    const completion = states.reduce((a, s) => a + s.completionTokens, 0);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  };

  if (stream === null) {
    for await (const { index, event } of opened.events) {
      states[index]!.apply(event);
    }
    if (res.writableEnded || res.destroyed) return;
    res.json(format.body(r, states, usage()));
    return;
  }

  // A shutdown deadline may have answered the request while it waited for the engine.
  if (res.writableEnded || res.destroyed) return;
  const sse = new SseWriter(res, { ...stream, doneMarker: format.doneMarker, failure: (error) => format.failure(r, error) });
  const started = new Set<number>();
  const sendAll = (events: SseEvent[]): void => events.forEach((e) => sse.send(e));
  try {
    sendAll(format.open(r));
    for await (const { index, event } of opened.events) {
      const state = states[index]!;
      const events = format.increment(r, index, state.apply(event), state, !started.has(index));
      if (events.length > 0) started.add(index);
      sendAll(events);
    }
    sendAll(format.close(r, states, usage()));
    sse.end();
  } catch (err) {
    sse.fail(err instanceof ApiError ? err : new ApiError('internal_error', 'internal server error'));
  }
}
