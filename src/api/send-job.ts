// Sends an opened job as one JSON response or as an SSE stream. The endpoint supplies a format that
// turns choice states and increments into its own OpenAI shapes; everything else is shared.
import type { Request, Response } from 'express';
import { disconnectSignal, type ApiContext } from './api-context.js';
import type { ChoiceIncrement } from './choice-state.js';
import { ChoiceState } from './choice-state.js';
import { ApiError } from '../http/errors.js';
import { openJob, type GenerationJob, type OpenedJob } from './generation-job.js';
import { SseWriter, type SseOptions } from '../http/sse.js';
import { describeSwitch, type AppliedSwitch, type ResolvedSwitch } from './super-weights-field.js';

export interface ResponseFormat {
  object: string;
  chunkObject: string;
  /** A whole choice for the JSON response. */
  choice(index: number, state: ChoiceState): object;
  /** A stream chunk's choice for one increment, or undefined when there is nothing to send. */
  chunkChoice(index: number, increment: ChoiceIncrement, state: ChoiceState, first: boolean): object | undefined;
}

export interface JobResponse {
  id: string;
  model: string;
  choices: number;
  stream: boolean;
  includeUsage: boolean;
  superWeights: AppliedSwitch;
  sse: SseOptions;
}

export interface ServeOptions {
  stream: boolean;
  includeUsage: boolean;
  resolved: ResolvedSwitch;
  /** The field a request too large for the server is blamed on. */
  admissionParam: string;
}

/** The life of a validated completion request: admission, the engine job, the response. */
export async function serveJob(ctx: ApiContext, req: Request, res: Response, job: GenerationJob, format: ResponseFormat, o: ServeOptions): Promise<void> {
  const choices = job.prompts.length * job.n;
  const release = ctx.admission.acquire(choices, o.admissionParam);
  try {
    const tagged = { ...job, requestId: req.get('x-request-id') ?? job.id, switchMode: o.resolved.mode };
    const opened = await openJob(ctx.engine, tagged, disconnectSignal(req).signal);
    await sendJob(res, opened, format, {
      id: job.id,
      model: ctx.modelId,
      choices,
      stream: o.stream,
      includeUsage: o.includeUsage,
      superWeights: describeSwitch(o.resolved, opened.weightValues),
      sse: { pingIntervalMs: ctx.config.pingIntervalSeconds * 1000, maxBufferedBytes: ctx.config.connections.maxWriteBufferBytes },
    });
  } finally {
    release();
  }
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export async function sendJob(res: Response, opened: OpenedJob, format: ResponseFormat, r: JobResponse): Promise<void> {
  const created = Math.floor(Date.now() / 1000);
  const states = Array.from({ length: r.choices }, () => new ChoiceState());
  const usage = (): Usage => {
    const prompt = opened.promptTokens.reduce((a, b) => a + b, 0);
    const completion = states.reduce((a, s) => a + s.completionTokens, 0);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  };
  const head = { id: r.id, created, model: r.model };

  if (!r.stream) {
    for await (const { index, event } of opened.events) {
      if (event.type === 'error') throw new ApiError(event.kind, event.message);
      states[index]!.apply(event);
    }
    if (res.writableEnded || res.destroyed) return;
    res.json({ ...head, object: format.object, choices: states.map((s, i) => format.choice(i, s)), usage: usage(), super_weights: r.superWeights });
    return;
  }

  // A shutdown deadline may have answered the request while it waited for the engine.
  if (res.writableEnded || res.destroyed) return;
  const sse = new SseWriter(res, r.sse);
  const started = new Set<number>();
  let firstChunk = true;
  const send = (choices: object[], extra: object = {}): void => {
    sse.send({
      ...head,
      object: format.chunkObject,
      choices,
      ...(firstChunk ? { super_weights: r.superWeights } : {}),
      ...(r.includeUsage ? { usage: null } : {}),
      ...extra,
    });
    firstChunk = false;
  };
  try {
    for await (const { index, event } of opened.events) {
      if (event.type === 'error') throw new ApiError('engine_failure', event.message);
      const state = states[index]!;
      const increment = state.apply(event);
      const choice = format.chunkChoice(index, increment, state, !started.has(index));
      if (choice) {
        started.add(index);
        send([choice]);
      }
    }
    if (r.includeUsage) send([], { usage: usage() });
    sse.done();
  } catch (err) {
    sse.fail(err instanceof ApiError ? err : new ApiError('internal_error', 'internal server error'));
  }
}
