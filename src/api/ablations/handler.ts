// POST /v1/ablations/compare: generate under each switch state (batched together), then score the
// first state's tokens under every state to get per-token log-probabilities, KL divergence per step
// and the probability mass on stop-words: an A/B in one call.
import type { Request, RequestHandler, Response } from 'express';
import { klDivergence, probabilityMass } from '../../superweights/distribution-compare.js';
import { disconnectSignal, responseId, type ApiContext } from '../api-context.js';
import { ChoiceState } from '../choice-state.js';
import { ApiError } from '../../http/errors.js';
import { openJob, type GenerationJob } from '../generation-job.js';
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
      const generated = await Promise.all(
        states.map((state, i) =>
          runOne(ctx, { id: `${id}-gen${i}`, prompts: [prompt], n: 1, settings, promptLogprobs: null, switchPlan: state.plan, promptParam: 'prompt', switchParam: state.param }, signal),
        ),
      );
      const promptIds = generated[0]!.state.promptTokens.map((t) => t.tokenId);
      const baseline = generated[0]!.state.tokens.map((t) => t.tokenId);
      const scored = await Promise.all(
        states.map((state, i) =>
          runOne(
            ctx,
            {
              id: `${id}-score${i}`,
              prompts: [{ tokenIds: [...promptIds, ...baseline] }],
              n: 1,
              settings: { ...settings, maxTokens: 0 },
              promptLogprobs: null,
              switchPlan: state.plan,
              promptParam: 'prompt',
              switchParam: state.param,
            },
            signal,
            promptIds.length - 1,
          ),
        ),
      );
      const base = scored[0]!.distributions.slice(0, baseline.length);
      res.json({
        id,
        object: 'ablation.comparison',
        created: Math.floor(Date.now() / 1000),
        model: ctx.modelId,
        prompt_tokens: promptIds.length,
        baseline: 0,
        stop_words: info.stopWords.words,
        states: states.map((state, i) => describeState(state, generated[i]!, scored[i]!.distributions.slice(0, baseline.length), base, baseline, info.stopWords.ids)),
      });
    } finally {
      release();
    }
  };
}

interface RunResult {
  state: ChoiceState;
  weightValues: Record<string, number>;
  distributions: Float32Array[];
}

async function runOne(ctx: ApiContext, job: GenerationJob, signal: AbortSignal, distributionsFrom?: number): Promise<RunResult> {
  const opened = await openJob(ctx.engine, job, signal, distributionsFrom);
  const state = new ChoiceState();
  let distributions: Float32Array[] = [];
  for await (const { event } of opened.events) {
    if (event.type === 'error') throw new ApiError('engine_failure', event.message);
    if (event.type === 'prompt' && event.distributions) distributions = event.distributions;
    state.apply(event);
  }
  return { state, weightValues: opened.weightValues, distributions };
}

function describeState(state: ResolvedSwitch, generated: RunResult, dists: Float32Array[], base: Float32Array[], baseline: number[], stopIds: number[]): object {
  const stopMass = dists.map((d) => probabilityMass(d, stopIds));
  return {
    super_weights: describeSwitch(state, generated.weightValues),
    text: generated.state.text,
    tokens: generated.state.tokens.map((t) => t.token),
    token_ids: generated.state.tokens.map((t) => t.tokenId),
    finish_reason: generated.state.finishReason,
    baseline_token_logprobs: dists.map((d, k) => d[baseline[k]!]!),
    kl_divergence: dists.map((d, k) => klDivergence(base[k]!, d)),
    stop_word_mass: stopMass,
    mean_stop_word_mass: stopMass.length === 0 ? 0 : stopMass.reduce((a, b) => a + b, 0) / stopMass.length,
  };
}
