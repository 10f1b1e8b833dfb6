// POST /v1/completions: validate, convert to one GenerationJob, send as JSON or SSE.
import type { Request, RequestHandler, Response } from 'express';
import { responseId, type ApiContext } from '../api-context.js';
import type { GenerationJob } from '../generation-job.js';
import { toGenerationSettings } from '../sampling-fields.js';
import { serveJob } from '../send-job.js';
import { resolveSwitch } from '../super-weights-field.js';
import { completionFormat } from './format.js';
import { completionRequestSchema, DEFAULT_COMPLETION_MAX_TOKENS, type CompletionRequest } from './schema.js';
import { parseRequestBody } from '../request-body.js';
import { COMPLETION_UNSUPPORTED, refuseUnsupported } from '../unsupported-fields.js';

export function completionsHandler(ctx: ApiContext): RequestHandler {
  return async (req: Request, res: Response) => {
    const body = parseRequestBody(ctx, completionRequestSchema, req.body);
    refuseUnsupported(body, COMPLETION_UNSUPPORTED);
    const logprobs = body.logprobs ?? null;
    const echo = body.echo ?? false;
    const settings = toGenerationSettings(body, body.max_tokens ?? DEFAULT_COMPLETION_MAX_TOKENS, logprobs ?? 0, ctx, 'max_tokens');
    const resolved = resolveSwitch(body.super_weights, req.get('x-super-weights'), ctx.engine.info);
    const prompts = normalizePrompts(body.prompt);
    const n = body.n ?? 1;
    const job: GenerationJob = {
      id: responseId('cmpl'),
      prompts,
      n,
      settings,
      promptLogprobs: echo && logprobs !== null ? logprobs : null,
      switchPlan: resolved.plan,
      promptParam: 'prompt',
      switchParam: resolved.param,
    };
    await serveJob(ctx, req, res, job, completionFormat(echo, logprobs), {
      stream: body.stream ?? false,
      includeUsage: body.stream_options?.include_usage ?? false,
      resolved,
      admissionParam: 'prompt',
    });
  };
}

function normalizePrompts(prompt: CompletionRequest['prompt']): GenerationJob['prompts'] {
  if (typeof prompt === 'string') return [{ text: prompt }];
  if (prompt.every((p): p is number => typeof p === 'number')) return [{ tokenIds: prompt }];
  return (prompt as (string | number[])[]).map((p) => (typeof p === 'string' ? { text: p } : { tokenIds: p }));
}
