// POST /v1/responses: the input items (and instructions) rendered with the model's chat template,
// then the same job path as chat and text completions, answered in the Responses API's shapes.
import type { Request, RequestHandler, Response } from 'express';
import { responseId, type ApiContext } from '../api-context.js';
import { renderChat } from '../chat/template.js';
import type { ChatMessage } from '../chat/schema.js';
import type { GenerationJob } from '../generation-job.js';
import { parseRequestBody } from '../request-body.js';
import { toGenerationSettings } from '../sampling-fields.js';
import { serveJob } from '../send-job.js';
import { resolveSwitch } from '../super-weights-field.js';
import { refuseUnsupported } from '../unsupported-fields.js';
import { responsesFormat } from './format.js';
import { RESPONSES_UNSUPPORTED, responsesRequestSchema, type ResponsesRequest } from './schema.js';

export function responsesHandler(ctx: ApiContext): RequestHandler {
  return async (req: Request, res: Response) => {
    const body = parseRequestBody(ctx, responsesRequestSchema, req.body);
    refuseUnsupported(body, RESPONSES_UNSUPPORTED);
    const info = ctx.engine.info;
    const { model, temperature, top_p, seed, top_k, min_p, repetition_penalty, user, super_weights } = body;
    // Without max_output_tokens, generation runs to the end of the context, at most limits.maxTokens (as chat).
    const settings = toGenerationSettings({ model, temperature, top_p, seed, top_k, min_p, repetition_penalty, user, super_weights }, body.max_output_tokens ?? null, 0, ctx, 'max_output_tokens');
    const resolved = resolveSwitch(super_weights, req.get('x-super-weights'), info);
    const text = renderChat({ template: info.chatTemplate, bosToken: info.bosToken, eosToken: info.eosToken, modelId: ctx.modelId, param: 'input' }, toMessages(body), true, {});
    const job: GenerationJob = {
      id: responseId('resp'),
      prompts: [{ text, addSpecialTokens: false }],
      n: 1,
      settings,
      promptLogprobs: null,
      switchPlan: resolved.plan,
      promptParam: 'input',
      switchParam: resolved.param,
    };
    const echo = {
      instructions: body.instructions ?? null,
      max_output_tokens: body.max_output_tokens ?? null,
      metadata: body.metadata ?? {},
      temperature: settings.sampling.temperature,
      top_p: settings.sampling.topP,
      user: body.user ?? null,
    };
    await serveJob(ctx, req, res, job, responsesFormat(echo, responseId('msg')), { stream: body.stream ?? false, includeUsage: false, resolved, admissionParam: 'input' });
  };
}

/** instructions as a system message, then the input items as chat messages. */
function toMessages(body: ResponsesRequest): ChatMessage[] {
  const items = typeof body.input === 'string' ? [{ role: 'user' as const, content: body.input }] : body.input;
  const messages: ChatMessage[] = items.map((item) => ({ role: item.role, content: typeof item.content === 'string' ? item.content : item.content.map((p) => p.text).join('') }));
  return body.instructions ? [{ role: 'system', content: body.instructions }, ...messages] : messages;
}
