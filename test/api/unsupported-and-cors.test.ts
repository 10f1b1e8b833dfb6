// Fields asking for behaviour swserve does not have are refused by name on every generation
// endpoint while their defaults pass; CORS is off unless origins are allowed, and OPTIONS answers
// every listed path (a preflight with the CORS headers when the origin is allowed).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const ORIGIN = 'https://app.example';
const TOOL = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } };
const RESPONSES_TOOL = { type: 'function', name: 'get_weather', parameters: { type: 'object', properties: {} } };

let plain: TestServer;
let withCors: TestServer;

before(async () => {
  [plain, withCors] = await Promise.all([startTestServer(), startTestServer({ config: { allowedOrigins: [ORIGIN] } })]);
});
after(async () => {
  await Promise.all([plain?.close(), withCors?.close()]);
});

async function post(path: string, body: Record<string, unknown>): Promise<{ status: number; json: { error?: { code: string; param: string | null; message: string } } }> {
  const res = await fetch(`${plain.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: plain.modelId, ...body }) });
  return { status: res.status, json: (await res.json()) as { error?: { code: string; param: string | null; message: string } } };
}

const chat = { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 };
const completion = { prompt: 'Hi', max_tokens: 2 };
const responses = { input: 'Hi', max_output_tokens: 2 };

describe('fields swserve cannot honour', () => {
  const refused: [string, Record<string, unknown>, string][] = [
    ['/v1/chat/completions', { ...chat, tools: [TOOL] }, 'tools'],
    ['/v1/chat/completions', { ...chat, tools: [TOOL], tool_choice: 'required' }, 'tool_choice'],
    ['/v1/chat/completions', { ...chat, tools: [TOOL], tool_choice: 'auto' }, 'tool_choice'],
    ['/v1/chat/completions', { ...chat, tool_choice: { type: 'function', function: { name: 'get_weather' } } }, 'tool_choice'],
    ['/v1/chat/completions', { ...chat, parallel_tool_calls: true }, 'parallel_tool_calls'],
    ['/v1/chat/completions', { ...chat, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {} } } }, 'response_format'],
    ['/v1/chat/completions', { ...chat, response_format: { type: 'json_object' } }, 'response_format'],
    ['/v1/chat/completions', { ...chat, functions: [TOOL.function] }, 'functions'],
    ['/v1/chat/completions', { ...chat, modalities: ['text', 'audio'] }, 'modalities'],
    ['/v1/chat/completions', { ...chat, guided_json: {} }, 'guided_json'],
    ['/v1/completions', { ...completion, response_format: { type: 'json_object' } }, 'response_format'],
    ['/v1/completions', { ...completion, guided_regex: 'a+' }, 'guided_regex'],
    ['/v1/completions', { ...completion, best_of: 2 }, 'best_of'],
    ['/v1/completions', { ...completion, tools: [TOOL] }, 'tools'],
    ['/v1/responses', { ...responses, tools: [RESPONSES_TOOL] }, 'tools'],
    ['/v1/responses', { ...responses, tools: [RESPONSES_TOOL], tool_choice: 'required' }, 'tool_choice'],
    ['/v1/responses', { ...responses, parallel_tool_calls: false }, 'parallel_tool_calls'],
    ['/v1/responses', { ...responses, text: { format: { type: 'json_schema', name: 'x', schema: {} } } }, 'text.format'],
    ['/v1/responses', { ...responses, previous_response_id: 'resp-1' }, 'previous_response_id'],
    ['/v1/responses', { ...responses, store: true }, 'store'],
    ['/v1/responses', { ...responses, include: ['message.output_text.logprobs'] }, 'include'],
    ['/v1/responses', { ...responses, reasoning: { effort: 'high' } }, 'reasoning'],
  ];
  for (const [path, body, param] of refused) {
    it(`${path} refuses ${param} (${JSON.stringify(body[param.split('.')[0]!])})`, async () => {
      const r = await post(path, body);
      assert.equal(r.status, 400);
      assert.equal(r.json.error?.code, 'unsupported_parameter');
      assert.equal(r.json.error?.param, param);
    });
  }

  it('accepts the defaults those fields have', async () => {
    const accepted: [string, Record<string, unknown>][] = [
      ['/v1/chat/completions', { ...chat, tools: [TOOL], tool_choice: 'none' }],
      ['/v1/chat/completions', { ...chat, tool_choice: 'auto', response_format: { type: 'text' }, modalities: ['text'] }],
      ['/v1/chat/completions', { ...chat, tools: [TOOL], tool_choice: 'none', parallel_tool_calls: true }],
      ['/v1/completions', { ...completion, best_of: 1, response_format: { type: 'text' } }],
      ['/v1/responses', { ...responses, store: false, text: { format: { type: 'text' } }, tool_choice: 'none', truncation: 'disabled', include: [] }],
    ];
    for (const [path, body] of accepted) {
      const r = await post(path, body);
      assert.equal(r.status, 200, `${path} ${JSON.stringify(body)}: ${JSON.stringify(r.json)}`);
    }
  });
});

describe('CORS', () => {
  it('is off by default: no CORS headers, and OPTIONS answers with the methods', async () => {
    const res = await fetch(`${plain.url}/v1/models`, { headers: { origin: ORIGIN } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    const options = await fetch(`${plain.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'POST' } });
    assert.equal(options.status, 204);
    assert.equal(options.headers.get('allow'), 'POST, OPTIONS');
    assert.equal(options.headers.get('access-control-allow-origin'), null);
  });

  it('answers an allowed origin: preflight, then the request and its errors', async () => {
    const preflight = await fetch(`${withCors.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), ORIGIN);
    assert.equal(preflight.headers.get('access-control-allow-methods'), 'POST,OPTIONS');
    assert.equal(preflight.headers.get('access-control-allow-headers'), 'authorization, content-type');
    const res = await fetch(`${withCors.url}/v1/chat/completions`, { method: 'POST', headers: { origin: ORIGIN, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'nope', messages: [] }) });
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
    assert.match(res.headers.get('access-control-expose-headers') ?? '', /Retry-After/);
    const other = await fetch(`${withCors.url}/v1/models`, { headers: { origin: 'https://elsewhere.example' } });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  });
});
