// Bad requests against one real swserve: every row must come back as the OpenAI error envelope with
// its documented 4xx status, error code and (where it applies) the parameter it names; never a 5xx,
// never a hang. A few unusual-but-valid requests must be accepted, and the server must still serve
// normally after the whole table. Rows the server currently answers wrongly are marked `todo`.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import type { ApiErrorCode } from '../../src/http/errors.js';
import { PLANTED, startTestServer, type TestServer } from '../helpers/test-server.js';

const MODEL = 'tiny';
const COMPLETIONS = '/v1/completions';
const CHAT = '/v1/chat/completions';
const COMPARE = '/v1/ablations/compare';
const DETECT = '/v1/super_weights/detect';
const SW = `${PLANTED.layer}:${PLANTED.row}:${PLANTED.col}`;
// config/server.json defaults the test server keeps.
const MAX_TOKENS_LIMIT = 2048;
const MAX_N = 8;
const MAX_BODY_BYTES = 1024 * 1024;
const CAPACITY = 16 + 64;
const VOCAB = 258;

// The envelope's `type` for each code (src/api/errors.ts).
const TYPE_OF: Record<ApiErrorCode, string> = {
  invalid_request: 'invalid_request_error',
  invalid_json: 'invalid_request_error',
  unsupported_parameter: 'invalid_request_error',
  context_length_exceeded: 'invalid_request_error',
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

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
type Json = Record<string, unknown>;

interface BadRow {
  name: string;
  method?: Method;
  /** Defaults to /v1/completions. */
  path?: string;
  headers?: Record<string, string>;
  /** A string or bytes are sent as they are (with Content-Type application/json unless headers say otherwise). */
  body?: string | Buffer | Json | unknown[];
  status: number;
  code: ApiErrorCode;
  /** Exact param, a pattern it must match, or null; undefined leaves it unchecked. */
  param?: string | RegExp | null;
  message?: RegExp;
  todo?: string;
}

interface OkRow {
  name: string;
  path?: string;
  headers?: Record<string, string>;
  body: Json;
  check?: (body: Json) => void;
  todo?: string;
}

/** A valid one-token completion request with `extra` layered over it. */
function cmp(extra: Json = {}): Json {
  return { model: MODEL, prompt: 'Hello', max_tokens: 1, ...extra };
}

/** A valid one-token chat request with `extra` layered over it. */
function chat(extra: Json = {}): Json {
  return { model: MODEL, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 1, ...extra };
}

function without(body: Json, key: string): Json {
  const copy = { ...body };
  delete copy[key];
  return copy;
}

function sw(value: unknown): Json {
  return cmp({ super_weights: value });
}

const bigPrompt = 'a'.repeat(MAX_BODY_BYTES + 64 * 1024);

const BAD: BadRow[] = [
  // --- The body itself ---
  { name: 'malformed JSON (truncated)', body: '{"model":"tiny","prompt":', status: 400, code: 'invalid_json', param: null },
  { name: 'malformed JSON (trailing comma)', body: '{"model":"tiny","prompt":"hi",}', status: 400, code: 'invalid_json', param: null },
  { name: 'malformed JSON (single quotes)', body: "{'model':'tiny'}", status: 400, code: 'invalid_json', param: null },
  { name: 'JSON null body', body: 'null', status: 400, code: 'invalid_json', param: null },
  { name: 'JSON string body', body: '"hello"', status: 400, code: 'invalid_json', param: null },
  { name: 'a field nested 100,000 deep', body: `{"model":"tiny","prompt":"hi","max_tokens":1,"extra":${'['.repeat(100_000)}1${']'.repeat(100_000)}}`, status: 400, code: 'invalid_json', param: null, message: /deeper than 64/ },
  { name: 'tools nested 100,000 deep', path: CHAT, body: `{"model":"tiny","messages":[{"role":"user","content":"x"}],"tools":${'['.repeat(100_000)}1${']'.repeat(100_000)}}`, status: 400, code: 'invalid_json', param: null },
  { name: 'top-level array', body: JSON.stringify([cmp()]), status: 400, code: 'invalid_request', param: null },
  { name: 'empty body', body: '', status: 400, code: 'invalid_request' },
  { name: 'empty body, chat', path: CHAT, body: '', status: 400, code: 'invalid_request' },
  { name: 'non-JSON content type (text/plain)', headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify(cmp()), status: 400, code: 'invalid_request', param: null },
  { name: 'form-encoded body', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'model=tiny&prompt=hi', status: 400, code: 'invalid_request', param: null },
  { name: 'unsupported charset', headers: { 'Content-Type': 'application/json; charset=latin-9' }, body: JSON.stringify(cmp()), status: 415, code: 'unsupported_media_type' },
  { name: 'unsupported content encoding', headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'br2' }, body: JSON.stringify(cmp()), status: 415, code: 'unsupported_media_type' },
  { name: 'gzip body that is not gzip', headers: { 'Content-Encoding': 'gzip' }, body: JSON.stringify(cmp()), status: 400, code: 'invalid_request', param: null },
  { name: 'deflate body that is not deflate', headers: { 'Content-Encoding': 'deflate' }, body: JSON.stringify(cmp()), status: 400, code: 'invalid_request', param: null },
  { name: 'br body that is not brotli', headers: { 'Content-Encoding': 'br' }, body: JSON.stringify(cmp()), status: 400, code: 'invalid_request', param: null },
  { name: 'gzip body cut short', headers: { 'Content-Encoding': 'gzip' }, body: gzipSync(JSON.stringify(cmp())).subarray(0, 20), status: 400, code: 'invalid_request', param: null },
  { name: 'oversized body (> maxBodyBytes)', body: cmp({ prompt: bigPrompt }), status: 413, code: 'body_too_large', param: null },
  { name: 'oversized body, chat', path: CHAT, body: chat({ messages: [{ role: 'user', content: bigPrompt }] }), status: 413, code: 'body_too_large', param: null },

  // --- Routes and methods ---
  { name: 'unknown route POST /v1/embeddings', path: '/v1/embeddings', body: { model: MODEL, input: 'hi' }, status: 404, code: 'route_not_found', param: null },
  { name: 'unknown route GET /v1/nothing', method: 'GET', path: '/v1/nothing', status: 404, code: 'route_not_found', param: null },
  { name: 'GET /v1/models/%zz (a parameter that is not percent-encoding)', method: 'GET', path: '/v1/models/%zz', status: 400, code: 'invalid_request', param: null },
  { name: 'unknown route GET /nothing', method: 'GET', path: '/nothing', status: 404, code: 'route_not_found', param: null },
  { name: 'wrong method GET /v1/completions', method: 'GET', status: 405, code: 'method_not_allowed', param: null },
  { name: 'wrong method PUT /v1/chat/completions', method: 'PUT', path: CHAT, body: chat(), status: 405, code: 'method_not_allowed', param: null },
  { name: 'wrong method DELETE /v1/models', method: 'DELETE', path: '/v1/models', status: 405, code: 'method_not_allowed', param: null },
  { name: 'wrong method POST /health', path: '/health', body: {}, status: 405, code: 'method_not_allowed', param: null },

  // --- Missing or unknown required fields ---
  { name: 'missing model', body: without(cmp(), 'model'), status: 400, code: 'invalid_request', param: 'model' },
  { name: 'empty model', body: cmp({ model: '' }), status: 400, code: 'invalid_request', param: 'model' },
  { name: 'missing prompt', body: without(cmp(), 'prompt'), status: 400, code: 'invalid_request', param: 'prompt' },
  { name: 'chat: missing model', path: CHAT, body: without(chat(), 'model'), status: 400, code: 'invalid_request', param: 'model' },
  { name: 'chat: missing messages', path: CHAT, body: without(chat(), 'messages'), status: 400, code: 'invalid_request', param: 'messages' },
  { name: 'unknown model', body: cmp({ model: 'gpt-4o' }), status: 404, code: 'model_not_found', param: 'model' },
  { name: 'chat: unknown model', path: CHAT, body: chat({ model: 'tiny-2' }), status: 404, code: 'model_not_found', param: 'model' },

  // --- Wrong types ---
  { name: 'model is a number', body: cmp({ model: 5 }), status: 400, code: 'invalid_request', param: 'model' },
  { name: 'prompt is a number', body: cmp({ prompt: 42 }), status: 400, code: 'invalid_request', param: 'prompt' },
  { name: 'prompt is an object', body: cmp({ prompt: { text: 'hi' } }), status: 400, code: 'invalid_request', param: 'prompt' },
  { name: 'prompt mixes ids and strings', body: cmp({ prompt: [1, 'a'] }), status: 400, code: 'invalid_request', param: /^prompt/ },
  { name: 'prompt token id is fractional', body: cmp({ prompt: [1.5] }), status: 400, code: 'invalid_request', param: /^prompt/ },
  { name: 'max_tokens is a string', body: cmp({ max_tokens: '16' }), status: 400, code: 'invalid_request', param: 'max_tokens' },
  { name: 'max_tokens is fractional', body: cmp({ max_tokens: 1.5 }), status: 400, code: 'invalid_request', param: 'max_tokens' },
  { name: 'temperature is a string', body: cmp({ temperature: 'hot' }), status: 400, code: 'invalid_request', param: 'temperature' },
  { name: 'top_p is a string', body: cmp({ top_p: '1' }), status: 400, code: 'invalid_request', param: 'top_p' },
  { name: 'n is a string', body: cmp({ n: '2' }), status: 400, code: 'invalid_request', param: 'n' },
  { name: 'stream is a string', body: cmp({ stream: 'true' }), status: 400, code: 'invalid_request', param: 'stream' },
  { name: 'stream_options is a boolean', body: cmp({ stream: true, stream_options: true }), status: 400, code: 'invalid_request', param: 'stream_options' },
  { name: 'stop is a number', body: cmp({ stop: 5 }), status: 400, code: 'invalid_request', param: /^stop/ },
  { name: 'stop holds numbers', body: cmp({ stop: [1, 2] }), status: 400, code: 'invalid_request', param: /^stop/ },
  { name: 'logprobs is a boolean (completions)', body: cmp({ logprobs: true }), status: 400, code: 'invalid_request', param: 'logprobs' },
  { name: 'echo is a string', body: cmp({ echo: 'yes' }), status: 400, code: 'invalid_request', param: 'echo' },
  { name: 'logit_bias is an array', body: cmp({ logit_bias: [1] }), status: 400, code: 'invalid_request', param: 'logit_bias' },
  { name: 'logit_bias value is a string', body: cmp({ logit_bias: { '5': 'up' } }), status: 400, code: 'invalid_request', param: /^logit_bias/ },
  { name: 'seed is fractional', body: cmp({ seed: 1.5 }), status: 400, code: 'invalid_request', param: 'seed' },
  { name: 'seed is a string', body: cmp({ seed: '1' }), status: 400, code: 'invalid_request', param: 'seed' },
  { name: 'user is a number', body: cmp({ user: 5 }), status: 400, code: 'invalid_request', param: 'user' },
  { name: 'presence_penalty is a string', body: cmp({ presence_penalty: '0' }), status: 400, code: 'invalid_request', param: 'presence_penalty' },
  { name: 'frequency_penalty is a boolean', body: cmp({ frequency_penalty: true }), status: 400, code: 'invalid_request', param: 'frequency_penalty' },
  { name: 'best_of is a string', body: cmp({ best_of: '2' }), status: 400, code: 'invalid_request', param: 'best_of' },
  { name: 'suffix is a number', body: cmp({ suffix: 5 }), status: 400, code: 'invalid_request', param: 'suffix' },
  { name: 'top_k is a string', body: cmp({ top_k: 'x' }), status: 400, code: 'invalid_request', param: 'top_k' },
  { name: 'ignore_eos is a string', body: cmp({ ignore_eos: 'yes' }), status: 400, code: 'invalid_request', param: 'ignore_eos' },
  { name: 'stop_token_ids is a string', body: cmp({ stop_token_ids: 'x' }), status: 400, code: 'invalid_request', param: 'stop_token_ids' },
  { name: 'stop_token_ids holds a negative id', body: cmp({ stop_token_ids: [-1] }), status: 400, code: 'invalid_request', param: 'stop_token_ids[0]' },
  { name: 'min_tokens is negative', body: cmp({ min_tokens: -1 }), status: 400, code: 'invalid_request', param: 'min_tokens' },
  { name: 'chat: messages is an object', path: CHAT, body: chat({ messages: { role: 'user', content: 'hi' } }), status: 400, code: 'invalid_request', param: 'messages' },
  { name: 'chat: a message is a string', path: CHAT, body: chat({ messages: ['hi'] }), status: 400, code: 'invalid_request', param: 'messages[0]' },
  { name: 'chat: content is a number', path: CHAT, body: chat({ messages: [{ role: 'user', content: 5 }] }), status: 400, code: 'invalid_request', param: 'messages[0].content' },
  { name: 'chat: content is missing', path: CHAT, body: chat({ messages: [{ role: 'user' }] }), status: 400, code: 'invalid_request', param: 'messages[0].content' },
  { name: 'chat: role is missing', path: CHAT, body: chat({ messages: [{ content: 'hi' }] }), status: 400, code: 'invalid_request', param: 'messages[0].role' },
  { name: 'chat: name is a number', path: CHAT, body: chat({ messages: [{ role: 'user', content: 'hi', name: 5 }] }), status: 400, code: 'invalid_request', param: 'messages[0].name' },
  { name: 'chat: logprobs is a number', path: CHAT, body: chat({ logprobs: 5 }), status: 400, code: 'invalid_request', param: 'logprobs' },
  { name: 'chat: top_logprobs is a string', path: CHAT, body: chat({ logprobs: true, top_logprobs: '3' }), status: 400, code: 'invalid_request', param: 'top_logprobs' },
  { name: 'chat: max_completion_tokens is a string', path: CHAT, body: chat({ max_completion_tokens: 'x' }), status: 400, code: 'invalid_request', param: 'max_completion_tokens' },
  { name: 'chat: chat_template_kwargs is an array', path: CHAT, body: chat({ chat_template_kwargs: [1] }), status: 400, code: 'invalid_request', param: 'chat_template_kwargs' },
  { name: 'chat: add_generation_prompt is a string', path: CHAT, body: chat({ add_generation_prompt: 'yes' }), status: 400, code: 'invalid_request', param: 'add_generation_prompt' },

  // --- Out-of-range values ---
  { name: 'temperature 2.5', body: cmp({ temperature: 2.5 }), status: 400, code: 'invalid_request', param: 'temperature' },
  { name: 'temperature -0.1', body: cmp({ temperature: -0.1 }), status: 400, code: 'invalid_request', param: 'temperature' },
  { name: 'temperature 1e999 (Infinity)', body: '{"model":"tiny","prompt":"hi","max_tokens":1,"temperature":1e999}', status: 400, code: 'invalid_request', param: 'temperature' },
  { name: 'top_p 0', body: cmp({ top_p: 0 }), status: 400, code: 'invalid_request', param: 'top_p' },
  { name: 'top_p 1.5', body: cmp({ top_p: 1.5 }), status: 400, code: 'invalid_request', param: 'top_p' },
  { name: 'n 0', body: cmp({ n: 0 }), status: 400, code: 'invalid_request', param: 'n' },
  { name: `n ${MAX_N + 1} (above the server limit)`, body: cmp({ n: MAX_N + 1 }), status: 400, code: 'invalid_request', param: 'n' },
  { name: `chat: n ${MAX_N + 1} (above the server limit)`, path: CHAT, body: chat({ n: MAX_N + 1 }), status: 400, code: 'invalid_request', param: 'n' },
  { name: 'logprobs 6', body: cmp({ logprobs: 6 }), status: 400, code: 'invalid_request', param: 'logprobs' },
  { name: 'logprobs -1', body: cmp({ logprobs: -1 }), status: 400, code: 'invalid_request', param: 'logprobs' },
  { name: 'chat: top_logprobs 21', path: CHAT, body: chat({ logprobs: true, top_logprobs: 21 }), status: 400, code: 'invalid_request', param: 'top_logprobs' },
  { name: 'presence_penalty 3', body: cmp({ presence_penalty: 3 }), status: 400, code: 'invalid_request', param: 'presence_penalty' },
  { name: 'frequency_penalty -2.5', body: cmp({ frequency_penalty: -2.5 }), status: 400, code: 'invalid_request', param: 'frequency_penalty' },
  { name: 'logit_bias value 101', body: cmp({ logit_bias: { '5': 101 } }), status: 400, code: 'invalid_request', param: 'logit_bias.5' },
  { name: 'logit_bias key "abc"', body: cmp({ logit_bias: { abc: 1 } }), status: 400, code: 'invalid_request', param: 'logit_bias.abc' },
  { name: 'logit_bias key "-1"', body: cmp({ logit_bias: { '-1': 1 } }), status: 400, code: 'invalid_request', param: /^logit_bias/ },
  {
    name: 'logit_bias key outside the vocabulary',
    body: cmp({ logit_bias: { '99999': 5 } }),
    status: 400,
    code: 'invalid_request',
    param: /^logit_bias/,
  },
  { name: 'max_tokens -1', body: cmp({ max_tokens: -1 }), status: 400, code: 'invalid_request', param: 'max_tokens' },
  { name: `max_tokens ${MAX_TOKENS_LIMIT + 1} (above the server limit)`, body: cmp({ max_tokens: MAX_TOKENS_LIMIT + 1 }), status: 400, code: 'invalid_request', param: 'max_tokens' },
  { name: 'max_tokens 1e10', body: cmp({ max_tokens: 1e10 }), status: 400, code: 'invalid_request', param: 'max_tokens' },
  { name: 'chat: max_tokens 0', path: CHAT, body: chat({ max_tokens: 0 }), status: 400, code: 'invalid_request', param: 'max_tokens' },
  { name: 'chat: max_tokens above the server limit', path: CHAT, body: chat({ max_tokens: MAX_TOKENS_LIMIT + 1 }), status: 400, code: 'invalid_request', param: 'max_tokens' },
  { name: 'chat: max_completion_tokens above the server limit', path: CHAT, body: chat({ max_completion_tokens: MAX_TOKENS_LIMIT + 1 }), status: 400, code: 'invalid_request', param: 'max_completion_tokens' },
  { name: 'stop with 5 entries', body: cmp({ stop: ['a', 'b', 'c', 'd', 'e'] }), status: 400, code: 'invalid_request', param: 'stop' },
  { name: 'top_k -2', body: cmp({ top_k: -2 }), status: 400, code: 'invalid_request', param: 'top_k' },
  { name: 'min_p 2', body: cmp({ min_p: 2 }), status: 400, code: 'invalid_request', param: 'min_p' },
  { name: 'repetition_penalty 0', body: cmp({ repetition_penalty: 0 }), status: 400, code: 'invalid_request', param: 'repetition_penalty' },

  // --- Prompts ---
  { name: 'empty prompt array', body: cmp({ prompt: [] }), status: 400, code: 'invalid_request', param: 'prompt' },
  { name: 'empty token-id list inside a batch', body: cmp({ prompt: [[]] }), status: 400, code: 'invalid_request', param: /^prompt/ },
  { name: 'token id 99999 (outside the vocabulary)', body: cmp({ prompt: [99999] }), status: 400, code: 'invalid_request', param: 'prompt', message: /99999/ },
  { name: `token id ${VOCAB} (one past the vocabulary)`, body: cmp({ prompt: [1, 2, VOCAB] }), status: 400, code: 'invalid_request', param: 'prompt' },
  { name: 'token id outside the vocabulary in the second prompt of a batch', body: cmp({ prompt: [[104, 105], [99999]] }), status: 400, code: 'invalid_request', param: 'prompt' },
  { name: 'negative token id', body: cmp({ prompt: [-1] }), status: 400, code: 'invalid_request', param: /^prompt/ },
  {
    name: 'prompt of 600 token ids (context 512)',
    body: cmp({ prompt: Array.from({ length: 600 }, (_, i) => 97 + (i % 26)) }),
    status: 400,
    code: 'context_length_exceeded',
    param: 'prompt',
  },
  {
    name: 'prompt of 600 characters (context 512)',
    body: cmp({ prompt: 'a'.repeat(600) }),
    status: 400,
    code: 'context_length_exceeded',
    param: 'prompt',
  },
  {
    name: 'chat: conversation longer than the context',
    path: CHAT,
    body: chat({ messages: [{ role: 'user', content: 'a'.repeat(600) }] }),
    status: 400,
    code: 'context_length_exceeded',
    param: 'messages',
  },
  {
    name: `more prompts than the server can ever hold (${CAPACITY + 1} prompts, capacity ${CAPACITY})`,
    body: cmp({ prompt: Array.from({ length: CAPACITY + 1 }, () => 'a') }),
    status: 400,
    code: 'invalid_request',
  },

  // --- Every route that reaches the engine refuses what the engine refuses, as a 400 ---
  { name: 'detect: a prompt longer than the context', path: DETECT, body: { model: MODEL, prompt: 'a'.repeat(600) }, status: 400, code: 'context_length_exceeded', param: 'prompt' },
  { name: 'detect: the second prompt longer than the context', path: DETECT, body: { model: MODEL, prompt: ['Hello', 'b'.repeat(700)] }, status: 400, code: 'context_length_exceeded', param: 'prompt' },
  { name: 'compare: a prompt longer than the context', path: COMPARE, body: { model: MODEL, prompt: 'a'.repeat(600) }, status: 400, code: 'context_length_exceeded', param: 'prompt' },
  { name: 'compare: prompt + max_tokens beyond the context', path: COMPARE, body: { model: MODEL, prompt: 'a'.repeat(500), max_tokens: 100 }, status: 400, code: 'context_length_exceeded', param: 'prompt' },
  { name: 'compare: a token id outside the vocabulary', path: COMPARE, body: { model: MODEL, prompt: [1, 99999] }, status: 400, code: 'invalid_request', param: 'prompt' },
  { name: 'compare: a state naming a layer that does not exist', path: COMPARE, body: { model: MODEL, prompt: 'Hi', states: ['on', { scale: 0, select: ['9:0:0'] }] }, status: 400, code: 'invalid_request', param: 'states[1].select[0]' },
  { name: 'compare: max_tokens above the server limit', path: COMPARE, body: { model: MODEL, prompt: 'Hi', max_tokens: MAX_TOKENS_LIMIT + 1 }, status: 400, code: 'invalid_request', param: 'max_tokens' },

  // --- Unsupported parameters and combinations ---
  { name: 'best_of 2', body: cmp({ best_of: 2 }), status: 400, code: 'unsupported_parameter', param: 'best_of', message: /best_of/ },
  { name: 'suffix "x"', body: cmp({ suffix: 'x' }), status: 400, code: 'unsupported_parameter', param: 'suffix', message: /suffix/ },
  { name: 'stream_options without stream', body: cmp({ stream_options: { include_usage: true } }), status: 400, code: 'invalid_request', param: 'stream_options' },
  { name: 'stream_options with stream false', body: cmp({ stream: false, stream_options: { include_usage: true } }), status: 400, code: 'invalid_request', param: 'stream_options' },
  { name: 'chat: stream_options without stream', path: CHAT, body: chat({ stream_options: { include_usage: true } }), status: 400, code: 'invalid_request', param: 'stream_options' },
  { name: 'stream_options with an unknown key', body: cmp({ stream: true, stream_options: { include_usage: true, foo: 1 } }), status: 400, code: 'invalid_request', param: 'stream_options.foo', message: /foo/ },

  // --- Chat messages ---
  { name: 'chat: bad role', path: CHAT, body: chat({ messages: [{ role: 'wizard', content: 'hi' }] }), status: 400, code: 'invalid_request', param: 'messages[0].role' },
  { name: 'chat: bad role in the second message', path: CHAT, body: chat({ messages: [{ role: 'user', content: 'hi' }, { role: 'robot', content: 'x' }] }), status: 400, code: 'invalid_request', param: 'messages[1].role' },
  {
    name: 'chat: image_url content part',
    path: CHAT,
    body: chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }] }] }),
    status: 400,
    code: 'invalid_request',
    param: /^messages\[0\]\.content/,
  },
  { name: 'chat: text part with an unknown key', path: CHAT, body: chat({ messages: [{ role: 'user', content: [{ type: 'text', text: 'a', extra: 1 }] }] }), status: 400, code: 'invalid_request', param: 'messages[0].content[0].extra' },
  { name: 'chat: empty content-part array', path: CHAT, body: chat({ messages: [{ role: 'user', content: [] }] }), status: 400, code: 'invalid_request', param: /^messages\[0\]\.content/ },
  { name: 'chat: empty messages', path: CHAT, body: chat({ messages: [] }), status: 400, code: 'invalid_request', param: 'messages' },
  {
    name: 'chat: top_logprobs without logprobs',
    path: CHAT,
    body: chat({ top_logprobs: 5 }),
    status: 400,
    code: 'invalid_request',
    param: 'top_logprobs',
  },

  // --- super_weights body field ---
  { name: 'super_weights "maybe"', body: sw('maybe'), status: 400, code: 'invalid_request', param: 'super_weights' },
  { name: 'super_weights "ON" (the body field is case-sensitive)', body: sw('ON'), status: 400, code: 'invalid_request', param: 'super_weights' },
  { name: 'super_weights 5', body: sw(5), status: 400, code: 'invalid_request', param: 'super_weights' },
  { name: 'super_weights {scale: "x"}', body: sw({ scale: 'x' }), status: 400, code: 'invalid_request', param: /^super_weights/ },
  { name: 'super_weights {} (no scale)', body: sw({}), status: 400, code: 'invalid_request', param: /^super_weights/ },
  { name: 'super_weights scale 1e999 (Infinity)', body: '{"model":"tiny","prompt":"hi","max_tokens":1,"super_weights":{"scale":1e999}}', status: 400, code: 'invalid_request', param: /^super_weights/ },
  { name: 'super_weights select ["1:2"]', body: sw({ scale: 1, select: ['1:2'] }), status: 400, code: 'invalid_request', param: 'super_weights.select[0]' },
  { name: 'super_weights select ["-1:0:0"]', body: sw({ scale: 0, select: ['-1:0:0'] }), status: 400, code: 'invalid_request', param: 'super_weights.select[0]' },
  { name: 'super_weights select is a string', body: sw({ scale: 0, select: SW }), status: 400, code: 'invalid_request', param: /^super_weights/ },
  { name: 'super_weights select of 257 coordinates (at most 256)', body: sw({ scale: 0, select: Array.from({ length: 257 }, (_, i) => `0:${i % 64}:${Math.floor(i / 64)}`) }), status: 400, code: 'invalid_request', param: 'super_weights.select' },
  { name: 'super_weights select []', body: sw({ scale: 0, select: [] }), status: 400, code: 'invalid_request', param: 'super_weights.select' },
  { name: 'super_weights layer 9 (does not exist)', body: sw({ scale: 0, select: ['9:7:33'] }), status: 400, code: 'invalid_request', param: 'super_weights.select[0]', message: /layer 9/ },
  { name: 'super_weights layer 3 (one past the last)', body: sw({ scale: 0, select: ['3:0:0'] }), status: 400, code: 'invalid_request', param: 'super_weights.select[0]' },
  { name: 'super_weights row 64 (outside hidden 64)', body: sw({ scale: 0, select: ['1:64:0'] }), status: 400, code: 'invalid_request', param: 'super_weights.select[0]', message: /row 64/ },
  { name: 'super_weights col 128 (outside intermediate 128)', body: sw({ scale: 0, select: ['1:0:128'] }), status: 400, code: 'invalid_request', param: 'super_weights.select[0]', message: /128/ },
  { name: 'super_weights bad second coordinate', body: sw({ scale: 0, select: [SW, '1:99:0'] }), status: 400, code: 'invalid_request', param: 'super_weights.select[1]' },
  { name: 'super_weights huge layer number', body: sw({ scale: 0, select: ['99999999999999999999:0:0'] }), status: 400, code: 'invalid_request', param: 'super_weights.select[0]' },
  { name: 'super_weights duplicated coordinate', body: sw({ scale: 0, select: [SW, SW] }), status: 400, code: 'invalid_request', param: 'super_weights.select', message: /twice/ },
  { name: 'super_weights duplicated coordinate spelled with leading zeros', body: sw({ scale: 0, select: [SW, '01:007:033'] }), status: 400, code: 'invalid_request', param: 'super_weights.select' },
  { name: 'super_weights unknown key "restore"', body: sw({ scale: 0, restore: true }), status: 400, code: 'invalid_request', param: /^super_weights/, message: /restore/ },
  { name: 'super_weights scale 1e38 (times the planted weight, beyond float32)', body: sw({ scale: 1e38 }), status: 400, code: 'invalid_request', param: 'super_weights', message: /float32/ },
  { name: 'super_weights scale 1e300 on a selected coordinate', body: sw({ scale: 1e300, select: ['2:0:0'] }), status: 400, code: 'invalid_request', param: 'super_weights', message: /float32/ },
  { name: 'super_weights scale -1e308', body: sw({ scale: -1e308 }), status: 400, code: 'invalid_request', param: 'super_weights', message: /float32/ },
  { name: 'compare: a state whose scale overflows float32', path: COMPARE, body: { model: MODEL, prompt: 'Hi', states: ['on', { scale: 1e38 }] }, status: 400, code: 'invalid_request', param: 'states[1]', message: /float32/ },
  { name: 'super_weights restore_activation "yes"', body: sw({ scale: 0, restore_activation: 'yes' }), status: 400, code: 'invalid_request', param: /^super_weights/ },
  { name: 'chat: super_weights "maybe"', path: CHAT, body: chat({ super_weights: 'maybe' }), status: 400, code: 'invalid_request', param: 'super_weights' },
  { name: 'chat: super_weights layer 9', path: CHAT, body: chat({ super_weights: { scale: 0, select: ['9:0:0'] } }), status: 400, code: 'invalid_request', param: 'super_weights.select[0]' },

  // --- X-Super-Weights header ---
  { name: 'X-Super-Weights "scale=abc"', headers: { 'X-Super-Weights': 'scale=abc' }, body: cmp(), status: 400, code: 'invalid_request', param: 'X-Super-Weights' },
  { name: 'X-Super-Weights "sideways"', headers: { 'X-Super-Weights': 'sideways' }, body: cmp(), status: 400, code: 'invalid_request', param: 'X-Super-Weights' },
  { name: 'X-Super-Weights "scale="', headers: { 'X-Super-Weights': 'scale=' }, body: cmp(), status: 400, code: 'invalid_request', param: 'X-Super-Weights' },
  { name: 'X-Super-Weights "scale=1e38" (beyond float32 with the weight)', headers: { 'X-Super-Weights': 'scale=1e38' }, body: cmp(), status: 400, code: 'invalid_request', param: 'X-Super-Weights', message: /float32/ },
  { name: 'X-Super-Weights "scale=1e999"', headers: { 'X-Super-Weights': 'scale=1e999' }, body: cmp(), status: 400, code: 'invalid_request', param: 'X-Super-Weights' },
  { name: 'chat: X-Super-Weights "sideways"', path: CHAT, headers: { 'X-Super-Weights': 'sideways' }, body: chat(), status: 400, code: 'invalid_request', param: 'X-Super-Weights' },
];

const OK: OkRow[] = [
  {
    name: 'vLLM extras and an unknown field',
    body: cmp({ top_k: 5, min_p: 0.05, repetition_penalty: 1.1, ignore_eos: true, stop_token_ids: [257], min_tokens: 1, foo_bar: { anything: [1, 2] } }),
  },
  { name: 'chat: vLLM extras and an unknown field', path: CHAT, body: chat({ top_k: 5, min_p: 0.05, repetition_penalty: 1.1, ignore_eos: true, stop_token_ids: [257], min_tokens: 1, foo_bar: 'x' }) },
  { name: 'best_of 1', body: cmp({ best_of: 1 }) },
  { name: 'best_of null and suffix null', body: cmp({ best_of: null, suffix: null }) },
  { name: 'logprobs null', body: cmp({ logprobs: null }), check: (b) => assert.equal((b.choices as Json[])[0]!.logprobs, null) },
  { name: 'stop null', body: cmp({ stop: null }) },
  { name: 'every nullable sampling field null', body: cmp({ n: null, temperature: null, top_p: null, stream: null, stop: null, presence_penalty: null, frequency_penalty: null, logit_bias: null, seed: null, user: null, echo: null }) },
  {
    name: 'super_weights selecting a valid non-super-weight coordinate',
    body: sw({ scale: 1, select: ['2:0:0'] }),
    check: (b) => {
      const applied = b.super_weights as { mode: string; weights: { id: string }[] };
      assert.equal(applied.mode, 'original');
      assert.deepEqual(applied.weights.map((w) => w.id), ['2:0:0']);
    },
  },
  { name: 'super_weights "off"', body: sw('off'), check: (b) => assert.equal((b.super_weights as Json).mode, 'ablated') },
  { name: 'X-Super-Weights " OFF " (trimmed, case-insensitive)', headers: { 'X-Super-Weights': ' OFF ' }, body: cmp(), check: (b) => assert.equal((b.super_weights as Json).mode, 'ablated') },
  { name: 'X-Super-Weights "scale=0.5"', headers: { 'X-Super-Weights': 'scale=0.5' }, body: cmp(), check: (b) => assert.equal((b.super_weights as Json).mode, 'scaled') },
  { name: 'token-id prompt at the vocabulary edge', body: cmp({ prompt: [0, VOCAB - 1, 104] }) },
  { name: 'batch of prompts', body: cmp({ prompt: ['a', 'b'], n: 2 }), check: (b) => assert.equal((b.choices as Json[]).length, 4) },
  { name: 'Authorization header on a server without a key', headers: { Authorization: 'Bearer anything' }, body: cmp() },
  { name: 'chat: text content parts, name, assistant null content', path: CHAT, body: chat({ messages: [{ role: 'system', content: [{ type: 'text', text: 'Be brief.' }] }, { role: 'user', content: 'Hi', name: 'bob' }, { role: 'assistant', content: null }, { role: 'user', content: 'Again' }] }) },
  { name: 'chat: logprobs with top_logprobs 20', path: CHAT, body: chat({ logprobs: true, top_logprobs: 20 }) },
  {
    name: 'super_weights null (like every other nullable field)',
    body: sw(null),
  },
];

function send(url: string, method: Method, path: string, headers: Record<string, string> = {}, body?: BadRow['body']): request.Test {
  const agent = request(url);
  let req: request.Test;
  switch (method) {
    case 'GET':
      req = agent.get(path);
      break;
    case 'PUT':
      req = agent.put(path);
      break;
    case 'DELETE':
      req = agent.delete(path);
      break;
    case 'PATCH':
      req = agent.patch(path);
      break;
    default:
      req = agent.post(path);
  }
  req = req.timeout(15_000);
  const hasType = Object.keys(headers).some((h) => h.toLowerCase() === 'content-type');
  if ((typeof body === 'string' || Buffer.isBuffer(body) || headers['Content-Encoding']) && !hasType) req = req.set('Content-Type', 'application/json');
  req = req.set(headers);
  return body === undefined ? req : req.send(body as string | object);
}

function describeResponse(method: string, path: string, res: request.Response): string {
  return `${method} ${path} -> ${res.status} ${res.text?.slice(0, 400)}`;
}

function assertEnvelope(row: BadRow, method: string, path: string, res: request.Response): void {
  const detail = describeResponse(method, path, res);
  assert.ok(res.status < 500, `never a 5xx: ${detail}`);
  assert.equal(res.status, row.status, detail);
  assert.match(String(res.headers['content-type']), /application\/json/, detail);
  const body = res.body as { error?: Record<string, unknown> };
  assert.ok(body && typeof body.error === 'object' && body.error !== null, `error envelope: ${detail}`);
  const error = body.error;
  assert.deepEqual(Object.keys(error).sort(), ['code', 'message', 'param', 'type'], detail);
  assert.equal(typeof error.message, 'string', detail);
  assert.ok((error.message as string).length > 0, `non-empty message: ${detail}`);
  assert.equal(error.code, row.code, detail);
  assert.equal(error.type, TYPE_OF[row.code], detail);
  assert.ok(error.param === null || typeof error.param === 'string', `param is a string or null: ${detail}`);
  if (row.param === null) assert.equal(error.param, null, detail);
  else if (typeof row.param === 'string') assert.equal(error.param, row.param, detail);
  else if (row.param instanceof RegExp) assert.match(String(error.param), row.param, detail);
  if (row.message) assert.match(error.message as string, row.message, detail);
}

describe('bad input', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });

  it('the table is large enough', () => {
    assert.ok(BAD.length >= 60, `${BAD.length} bad rows`);
    assert.equal(new Set(BAD.map((r) => r.name)).size, BAD.length, 'row names are unique');
  });

  describe('is refused with the error envelope', () => {
    for (const row of BAD) {
      const method = row.method ?? 'POST';
      const path = row.path ?? COMPLETIONS;
      it(row.name, row.todo ? { todo: row.todo } : {}, async () => {
        const res = await send(server.url, method, path, row.headers, row.body);
        assertEnvelope(row, method, path, res);
      });
    }
  });

  describe('unusual but valid requests are accepted', () => {
    for (const row of OK) {
      const path = row.path ?? COMPLETIONS;
      it(row.name, row.todo ? { todo: row.todo } : {}, async () => {
        const res = await send(server.url, 'POST', path, row.headers, row.body);
        const detail = describeResponse('POST', path, res);
        assert.equal(res.status, 200, detail);
        const body = res.body as Json;
        assert.equal(body.object, path === CHAT ? 'chat.completion' : 'text_completion', detail);
        assert.ok(Array.isArray(body.choices) && body.choices.length >= 1, detail);
        row.check?.(body);
      });
    }
  });

  describe('afterwards', () => {
    it('still serves a normal completion and a normal chat completion', async () => {
      const res = await send(server.url, 'POST', COMPLETIONS, {}, cmp({ max_tokens: 4, ignore_eos: true }));
      assert.equal(res.status, 200, describeResponse('POST', COMPLETIONS, res));
      assert.equal((res.body as { usage: { completion_tokens: number } }).usage.completion_tokens, 4);
      const chatRes = await send(server.url, 'POST', CHAT, {}, chat({ max_tokens: 2 }));
      assert.equal(chatRes.status, 200, describeResponse('POST', CHAT, chatRes));
    });

    it('leaked no admission slots and no engine sequences', async () => {
      const res = await request(server.url).get('/ready');
      assert.equal(res.status, 200, res.text);
      assert.equal((res.body as { sequences_in_flight: number }).sequences_in_flight, 0, res.text);
      assert.equal(server.engine.inFlight, 0);
    });
  });
});
