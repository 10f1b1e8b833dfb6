// Every code of the error catalogue, for tests that go through all of them.
import type { ApiErrorCode } from '../../src/http/errors.js';

/** The Record type makes the compiler insist on every code. */
export const ALL_ERROR_CODES: Record<ApiErrorCode, true> = {
  invalid_request: true,
  invalid_json: true,
  unsupported_parameter: true,
  context_length_exceeded: true,
  invalid_api_key: true,
  model_not_found: true,
  route_not_found: true,
  method_not_allowed: true,
  request_timeout: true,
  body_too_large: true,
  unsupported_media_type: true,
  headers_too_large: true,
  too_many_requests: true,
  model_loading: true,
  shutting_down: true,
  engine_failure: true,
  internal_error: true,
};
