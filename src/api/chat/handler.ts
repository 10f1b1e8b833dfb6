// POST /v1/chat/completions: render the conversation with the model's template, then the same job
// path as completions.
import type { Request, RequestHandler, Response } from 'express';
import { responseId, type ApiContext } from '../api-context.js';
import { ApiError } from '../../http/errors.js';
import type { GenerationJob } from '../generation-job.js';
import { toGenerationSettings } from '../sampling-fields.js';
import { serveJob } from '../send-job.js';
import { resolveSwitch } from '../super-weights-field.js';
import { chatFormat } from './format.js';
import { chatRequestSchema } from './schema.js';
import { renderChat } from './template.js';
import { parseRequestBody } from '../request-body.js';
import { CHAT_UNSUPPORTED, refuseUnsupported } from '../unsupported-fields.js';

export function chatCompletionsHandler(ctx: ApiContext): RequestHandler {
  return async (req: Request, res: Response) => {
    const body = parseRequestBody(ctx, chatRequestSchema, req.body);
    refuseUnsupported(body, CHAT_UNSUPPORTED);
    const info = ctx.engine.info;
    // max_completion_tokens supersedes max_tokens; without either, the rest of the context up to limits.maxTokens.
    const maxTokensParam = body.max_completion_tokens ? 'max_completion_tokens' : 'max_tokens';
    const requested = body.max_completion_tokens ?? body.max_tokens ?? undefined;
    if (body.top_logprobs != null && !body.logprobs) throw new ApiError('invalid_request', 'top_logprobs requires logprobs: true', 'top_logprobs');
    const topLogprobs = body.logprobs ? (body.top_logprobs ?? 0) : 0;
    // Without a limit, generation runs to the end of the context or the server's limit (vLLM's default).
    const settings = toGenerationSettings(body, requested ?? null, topLogprobs, ctx, maxTokensParam);
    const resolved = resolveSwitch(body.super_weights, req.get('x-super-weights'), info);
    const text = renderChat(
      { template: info.chatTemplate, bosToken: info.bosToken, eosToken: info.eosToken, modelId: ctx.modelId },
      body.messages,
      body.add_generation_prompt ?? true,
      // As vLLM: tools the model may not call (tool_choice "none") still reach the template.
      { ...(body.chat_template_kwargs ?? {}), ...(Array.isArray(body.tools) ? { tools: body.tools } : {}) },
    );
    const n = body.n ?? 1;
    const job: GenerationJob = {
      id: responseId('chatcmpl'),
      prompts: [{ text, addSpecialTokens: false }],
      n,
      settings,
      promptLogprobs: null,
      switchPlan: resolved.plan,
      promptParam: 'messages',
      switchParam: resolved.param,
    };
    await serveJob(ctx, req, res, job, chatFormat(body.logprobs ?? false), {
      stream: body.stream ?? false,
      includeUsage: body.stream_options?.include_usage ?? false,
      resolved,
      admissionParam: 'n',
    });
  };
}
