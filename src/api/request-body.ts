// Every POST handler's first step: the body through its zod schema (a 400 naming the field), then the
// model it names checked against the one served (404), as tRPC parses inputs before a procedure runs.
import type { z } from 'zod';
import { ApiError, fromZodError } from '../http/errors.js';
import type { ApiContext } from './api-context.js';

export function parseRequestBody<T extends { model: string }>(ctx: Pick<ApiContext, 'modelId'>, schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw fromZodError(parsed.error);
  if (parsed.data.model !== ctx.modelId) {
    throw new ApiError('model_not_found', `model "${parsed.data.model}" is not served here; this server serves "${ctx.modelId}"`, 'model');
  }
  return parsed.data;
}
