// The closed catalogue of API errors: every code has one HTTP status (the compiler checks the table
// covers them all), one function turns anything thrown into an ApiError, and one express middleware
// writes the OpenAI envelope {"error": {message, type, param, code}}.
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { ErrorRequestHandler } from 'express';
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
  | 'request_timeout'
  | 'body_too_large'
  | 'unsupported_media_type'
  | 'headers_too_large'
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
  request_timeout: 408,
  body_too_large: 413,
  unsupported_media_type: 415,
  headers_too_large: 431,
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
  request_timeout: 'invalid_request_error',
  body_too_large: 'invalid_request_error',
  unsupported_media_type: 'invalid_request_error',
  headers_too_large: 'invalid_request_error',
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
  const e = (err ?? {}) as { type?: string; status?: number; expose?: boolean; message?: string };
  // body-parser's errors carry a `type`.
  if (e.type === 'entity.too.large') return new ApiError('body_too_large', 'request body is larger than the server accepts');
  if (e.type === 'entity.parse.failed') return new ApiError('invalid_json', `request body is not valid JSON: ${e.message ?? ''}`);
  if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') return new ApiError('unsupported_media_type', e.message ?? 'unsupported encoding');
  // The router could not percent-decode a path parameter (`/v1/models/%zz`).
  if (err instanceof URIError) return new ApiError('invalid_request', 'the request path is not valid percent-encoding');
  // Everything else body-parser and raw-body raise on a client's body (cut off, length mismatch, an
  // undecodable gzip/deflate/br stream from zlib) is an http-errors 4xx marked safe to expose.
  if (e.expose === true && typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    const message = `request body could not be read: ${e.message ?? 'malformed'}`;
    return new ApiError(e.status === 415 ? 'unsupported_media_type' : e.status === 413 ? 'body_too_large' : 'invalid_request', message);
  }
  return new ApiError('internal_error', 'internal server error');
}

/** Writes the envelope on a plain Node response (express's and the server's own both use it). */
export function sendError(res: ServerResponse, error: ApiError, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(error.toJSON());
  res.statusCode = error.status;
  for (const [name, value] of Object.entries({ ...retryAfter(error), ...headers })) res.setHeader(name, value);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** A whole HTTP/1.1 error response for a raw socket, where there is no response object (upgrades, protocol errors). */
export function rawErrorResponse(error: ApiError): string {
  const body = JSON.stringify(error.toJSON());
  const extra = Object.entries(retryAfter(error)).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  return `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`;
}

function retryAfter(error: ApiError): Record<string, string> {
  return error.code === 'too_many_requests' || error.status === 503 ? { 'Retry-After': String(RETRY_AFTER_SECONDS) } : {};
}

export const errorMiddleware: ErrorRequestHandler = (err, _req, res, next) => {
  // Already answered (a drain deadline or a dropped client ended it): nothing more to write.
  if (res.writableEnded || res.destroyed) return;
  if (res.headersSent) return next(err);
  const error = toApiError(err);
  if (error.code === 'internal_error') console.error(err);
  sendError(res, error);
};
