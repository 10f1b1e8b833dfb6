// The closed catalogue of API errors: every code has one HTTP status (the compiler checks the table
// covers them all), one function turns anything thrown into an ApiError, and one express middleware
// writes the OpenAI envelope {"error": {message, type, param, code}}.
import type { ErrorRequestHandler, Response } from 'express';
import type { z } from 'zod';
import { firstZodIssue } from '../util/zod-issue.js';

export type ApiErrorCode =
  | 'invalid_request'
  | 'invalid_json'
  | 'unsupported_parameter'
  | 'context_length_exceeded'
  | 'invalid_api_key'
  | 'model_not_found'
  | 'route_not_found'
  | 'method_not_allowed'
  | 'body_too_large'
  | 'too_many_requests'
  | 'model_loading'
  | 'shutting_down'
  | 'engine_failure'
  | 'internal_error';

const STATUS: Record<ApiErrorCode, number> = {
  invalid_request: 400,
  invalid_json: 400,
  unsupported_parameter: 400,
  context_length_exceeded: 400,
  invalid_api_key: 401,
  model_not_found: 404,
  route_not_found: 404,
  method_not_allowed: 405,
  body_too_large: 413,
  too_many_requests: 429,
  model_loading: 503,
  shutting_down: 503,
  engine_failure: 503,
  internal_error: 500,
};

const TYPE: Record<ApiErrorCode, string> = {
  invalid_request: 'invalid_request_error',
  invalid_json: 'invalid_request_error',
  unsupported_parameter: 'invalid_request_error',
  context_length_exceeded: 'invalid_request_error',
  // OpenAI answers a bad key with invalid_request_error / invalid_api_key; clients match on that.
  invalid_api_key: 'invalid_request_error',
  model_not_found: 'invalid_request_error',
  route_not_found: 'invalid_request_error',
  method_not_allowed: 'invalid_request_error',
  body_too_large: 'invalid_request_error',
  too_many_requests: 'rate_limit_error',
  model_loading: 'service_unavailable_error',
  shutting_down: 'service_unavailable_error',
  engine_failure: 'service_unavailable_error',
  internal_error: 'server_error',
};

// Seconds a client should wait before retrying an overloaded or loading server.
export const RETRY_AFTER_SECONDS = 1;

export class ApiError extends Error {
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get status(): number {
    return STATUS[this.code];
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string } } {
    return { error: { message: this.message, type: TYPE[this.code], param: this.param, code: this.code } };
  }
}

/** zod's first issue as a 400 naming the parameter path (e.g. `messages[0].content`). */
export function fromZodError(error: z.ZodError): ApiError {
  const { path, message } = firstZodIssue(error);
  return new ApiError('invalid_request', path ? `${path}: ${message}` : message, path || null);
}

/** Anything thrown while handling a request, as an ApiError. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as { type?: string; status?: number; message?: string };
  // body-parser's errors carry a `type`.
  if (e.type === 'entity.too.large') return new ApiError('body_too_large', 'request body is larger than the server accepts');
  if (e.type === 'entity.parse.failed') return new ApiError('invalid_json', `request body is not valid JSON: ${e.message ?? ''}`);
  if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') return new ApiError('invalid_request', e.message ?? 'unsupported encoding');
  return new ApiError('internal_error', 'internal server error');
}

export function sendError(res: Response, error: ApiError): void {
  if (error.code === 'too_many_requests' || error.status === 503) res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
  res.status(error.status).json(error.toJSON());
}

export const errorMiddleware: ErrorRequestHandler = (err, _req, res, next) => {
  if (res.headersSent) return next(err);
  const error = toApiError(err);
  if (error.code === 'internal_error') console.error(err);
  sendError(res, error);
};
