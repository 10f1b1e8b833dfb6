// Request fields shared by completions and chat completions (OpenAI's plus vLLM's extras), and their
// conversion into the engine's sampling settings, next to the schema as vLLM's to_sampling_params.
import { z } from 'zod';
import type { GenerationRequest } from '../engine/protocol.js';
import type { SamplingParams } from '../engine/sampler.js';
import type { ApiContext } from './api-context.js';
import { ApiError } from '../http/errors.js';
import { superWeightsFieldSchema } from './super-weights-field.js';

const tokenId = z.number().int().min(0);

// OpenAI allows at most 4 stop sequences.
const MAX_STOP_SEQUENCES = 4;

export const samplingFields = {
  model: z.string().min(1),
  n: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.strictObject({ include_usage: z.boolean().nullish(), continuous_usage_stats: z.boolean().nullish() }).nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(MAX_STOP_SEQUENCES)]).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z.record(z.string().regex(/^\d+$/, 'keys must be token ids'), z.number().min(-100).max(100)).nullish(),
  seed: z.number().int().nullish(),
  user: z.string().nullish(),
  // vLLM's extras, sent by benchmark clients.
  top_k: z.number().int().min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).nullish(),
  ignore_eos: z.boolean().nullish(),
  stop_token_ids: z.array(tokenId).nullish(),
  min_tokens: z.number().int().min(0).nullish(),
  super_weights: superWeightsFieldSchema.nullish(),
};

const samplingObject = z.object(samplingFields);
export type SamplingFields = z.infer<typeof samplingObject>;

/** OpenAI defaults (temperature 1, top_p 1) where a field is absent or null. */
export function toSampling(body: SamplingFields, logprobs: number): SamplingParams {
  const logitBias = new Map<number, number>();
  for (const [id, bias] of Object.entries(body.logit_bias ?? {})) logitBias.set(Number(id), bias);
  return {
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    topK: body.top_k ?? -1,
    minP: body.min_p ?? 0,
    presencePenalty: body.presence_penalty ?? 0,
    frequencyPenalty: body.frequency_penalty ?? 0,
    repetitionPenalty: body.repetition_penalty ?? 1,
    logitBias,
    seed: body.seed ?? undefined,
    logprobs,
  };
}

export type GenerationSettings = Pick<GenerationRequest, 'maxTokens' | 'maxTokensLimit' | 'sampling' | 'stop' | 'stopTokenIds' | 'ignoreEos' | 'minTokens'>;

/** Checks the fields against the server's limits and the model, and converts them. */
export function toGenerationSettings(body: SamplingFields, maxTokens: number | null, logprobs: number, ctx: Pick<ApiContext, 'config' | 'engine'>, maxTokensParam: string): GenerationSettings {
  const limits = ctx.config.limits;
  const vocab = ctx.engine.info.vocabSize;
  const badBias = Object.keys(body.logit_bias ?? {}).find((id) => Number(id) >= vocab);
  if (badBias !== undefined) throw new ApiError('invalid_request', `logit_bias token id ${badBias} is outside the vocabulary (0..${vocab - 1})`, 'logit_bias');
  const badStop = (body.stop_token_ids ?? []).find((id) => id >= vocab);
  if (badStop !== undefined) throw new ApiError('invalid_request', `stop_token_ids: ${badStop} is outside the vocabulary (0..${vocab - 1})`, 'stop_token_ids');
  if (maxTokens !== null && maxTokens > limits.maxTokens) {
    throw new ApiError('invalid_request', `${maxTokensParam} ${maxTokens} is above this server's limit of ${limits.maxTokens}`, maxTokensParam);
  }
  if ((body.n ?? 1) > limits.maxN) throw new ApiError('invalid_request', `n ${body.n} is above this server's limit of ${limits.maxN}`, 'n');
  if (body.stream_options && !body.stream) throw new ApiError('invalid_request', 'stream_options can only be set when stream is true', 'stream_options');
  return {
    maxTokens,
    // No max_tokens runs to the end of the context (vLLM's default), but never past the server's limit.
    ...(maxTokens === null ? { maxTokensLimit: limits.maxTokens } : {}),
    sampling: toSampling(body, logprobs),
    stop: body.stop === undefined || body.stop === null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop,
    stopTokenIds: body.stop_token_ids ?? [],
    ignoreEos: body.ignore_eos ?? false,
    minTokens: body.min_tokens ?? 0,
  };
}
