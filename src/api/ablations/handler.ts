// POST /v1/ablations/compare: generate under each switch state (batched together), then score the
// first state's tokens under every state to get per-token log-probabilities, KL divergence per step
// and the probability mass on stop-words: an A/B in one call. The engine does the scoring where the
// distributions are (src/engine/comparison.ts); only those numbers come back.
import type { Request, RequestHandler, Response } from 'express';
import type { ComparisonScores } from '../../engine/protocol.js';
import { disconnectSignal, responseId, type ApiContext } from '../api-context.js';
import { ChoiceState } from '../choice-state.js';
import { ApiError } from '../../http/errors.js';
import { openJob, type OpenedJob } from '../generation-job.js';
import { toGenerationSettings } from '../sampling-fields.js';
import { describeSwitch, resolveSwitch, type ResolvedSwitch } from '../super-weights-field.js';
import { ablationCompareSchema, DEFAULT_COMPARE_MAX_TOKENS } from './schema.js';
import { parseRequestBody } from '../request-body.js';

// A fixed default seed keeps sampled comparisons reproducible without the client choosing one.
const DEFAULT_COMPARE_SEED = 0;

export function ablationCompareHandler(ctx: ApiContext): RequestHandler {
  return async (req: Request, res: Response) => {
    const body = parseRequestBody(ctx, ablationCompareSchema, req.body);
    const info = ctx.engine.info;
    const states = (body.states ?? ['on', 'off']).map((s, i) => resolveSwitch(s, undefined, info, `states[${i}]`));
    const settings = toGenerationSettings(
      { model: body.model, temperature: body.temperature ?? 0, top_p: body.top_p, seed: body.seed ?? DEFAULT_COMPARE_SEED },
      body.max_tokens ?? DEFAULT_COMPARE_MAX_TOKENS,
      0,
      ctx,
      'max_tokens',
    );
    const prompt = typeof body.prompt === 'string' ? { text: body.prompt } : { tokenIds: body.prompt };
    const id = responseId('ablation');
    const signal = disconnectSignal(req).signal;
    const release = ctx.admission.acquire(states.length, 'states');
    try {
      // One engine comparison: every state generates, then scores the baseline's tokens in the worker.
      // All states are submitted before any is read: a refused one answers for the request (the engine
      // then ends the others, which would otherwise report that as their own failure).
      const openings = await Promise.allSettled(
        states.map((state, i) =>
          openJob(
            ctx.engine,
            {
              id: `${id}-state${i}`,
              prompts: [prompt],
              n: 1,
              settings,
              promptLogprobs: null,
              switchPlan: state.plan,
              promptParam: 'prompt',
              comparison: { group: id, index: i, size: states.length, stopWordIds: info.stopWords.ids },
              switchParam: state.param,
            },
            signal,
          ),
        ),
      );
      if (openings.some((o) => o.status === 'rejected')) {
        // The engine ends the other states of a refused comparison (or of one whose state failed before
        // the last was submitted) with an error that echoes it; read them to that end, answer with it.
        const ended = await Promise.all(openings.map((o) => (o.status === 'rejected' ? o.reason : readToEnd(o.value.events))));
        throw ownFailure(ended);
      }
      const runs = await Promise.allSettled(openings.map((o) => collect((o as PromiseFulfilledResult<OpenedJob>).value)));
      if (runs.some((r) => r.status === 'rejected')) throw ownFailure(runs.map((r) => (r.status === 'rejected' ? r.reason : undefined)));
      const results = runs.map((r) => (r as PromiseFulfilledResult<RunResult>).value);
      res.json({
        id,
        object: 'ablation.comparison',
        created: Math.floor(Date.now() / 1000),
        model: ctx.modelId,
        prompt_tokens: results[0]!.promptTokens,
        baseline: 0,
        stop_words: info.stopWords.words,
        states: states.map((state, i) => describeState(state, results[i]!)),
      });
    } finally {
      release();
    }
  };
}

interface RunResult {
  state: ChoiceState;
  weightValues: Record<string, number>;
  promptTokens: number;
  scores: ComparisonScores;
}

async function collect(opened: OpenedJob): Promise<RunResult> {
  const state = new ChoiceState();
  let scores: ComparisonScores | undefined;
  for await (const { event } of opened.events) {
    if (event.type === 'finish') scores = event.comparison;
    state.apply(event);
  }
  if (!scores) throw new ApiError('engine_failure', 'the comparison ended without scores');
  return { state, weightValues: opened.weightValues, promptTokens: opened.promptTokens[0]!, scores };
}

function describeState(state: ResolvedSwitch, result: RunResult): object {
  const { scores } = result;
  const stopMass = scores.stopWordMass;
  return {
    super_weights: describeSwitch(state, result.weightValues),
    text: result.state.text,
    tokens: result.state.tokens.map((t) => t.token),
    token_ids: result.state.tokens.map((t) => t.tokenId),
    finish_reason: result.state.finishReason,
    baseline_token_logprobs: scores.baselineTokenLogprobs,
    kl_divergence: scores.klDivergence,
    stop_word_mass: stopMass,
    mean_stop_word_mass: stopMass.length === 0 ? 0 : stopMass.reduce((a, b) => a + b, 0) / stopMass.length,
  };
}

/**
 * The error of the state that was refused or failed. The engine ends the other states with an echo
 * of it that names no request field, so a failure naming a field (states[i], prompt) is the state's own.
 */
function ownFailure(errors: readonly unknown[]): unknown {
  const thrown = errors.filter((e) => e !== undefined);
  return thrown.find((e) => e instanceof ApiError && e.param !== null) ?? thrown[0];
}

/** Reads a state of a refused comparison until the engine ends it; returns the error it ended with. */
async function readToEnd(events: AsyncGenerator<unknown>): Promise<unknown> {
  try {
    for await (const _ of events);
    return undefined;
  } catch (err) {
    return err;
  }
}
