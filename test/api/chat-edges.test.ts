// Chat edges: without max_tokens a chat runs to the end of the context but never past the server's
// limits.maxTokens; a chat template the renderer cannot parse is reported at load (log, /v1/models)
// and chat answers 400 naming it, as it does when a template refuses a conversation.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const LIMIT = 5;
const CHAT = { model: 'tiny', messages: [{ role: 'user', content: 'Hello' }], ignore_eos: true };

async function post(server: TestServer, route: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${server.url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** A test server whose tokenizer_config.json carries `template` as its chat template. */
function withTemplate(template: string, log: string[]): Promise<TestServer> {
  return startTestServer({
    log: (m) => log.push(m),
    beforeStart: (modelDir) => {
      const file = path.join(modelDir, 'tokenizer_config.json');
      fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), chat_template: template }));
    },
  });
}

describe('chat without max_tokens', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ config: { limits: { maxTokens: LIMIT } } });
  });
  after(async () => server?.close());

  it('stops at limits.maxTokens, streamed or not', async () => {
    const { status, json } = await post(server, '/v1/chat/completions', CHAT);
    assert.equal(status, 200);
    assert.equal((json.usage as { completion_tokens: number }).completion_tokens, LIMIT);
    assert.equal((json.choices as { finish_reason: string }[])[0]!.finish_reason, 'length');
    const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...CHAT, stream: true, stream_options: { include_usage: true } }) });
    const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)) as { usage?: { completion_tokens: number } | null });
    assert.equal(events[events.length - 1]!.usage?.completion_tokens, LIMIT);
  });

  it('still refuses an explicit max_tokens above the limit', async () => {
    const { status, json } = await post(server, '/v1/chat/completions', { ...CHAT, max_tokens: LIMIT + 1 });
    assert.equal(status, 400);
    assert.equal((json.error as { param: string }).param, 'max_tokens');
  });
});

describe('a chat template the renderer cannot parse', () => {
  const log: string[] = [];
  let server: TestServer;
  before(async () => {
    server = await withTemplate("{% for m in messages %}{{ m['content'] }", log);
  });
  after(async () => server?.close());

  it('is reported at load and in /v1/models', async () => {
    assert.match(log.join('\n'), /warning: the chat template of tiny \(tokenizer_config\.json chat_template\) cannot be parsed: .+; chat requests will answer 400/);
    const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { meta: { chat_template: string; chat_template_error: string | null } }[] };
    assert.equal(models.data[0]!.meta.chat_template, 'invalid');
    assert.ok(models.data[0]!.meta.chat_template_error);
  });

  it('makes chat a 400 naming the template, while completions serve', async () => {
    const { status, json } = await post(server, '/v1/chat/completions', { ...CHAT, max_tokens: 2 });
    assert.equal(status, 400);
    const error = json.error as { code: string; param: string; message: string };
    assert.deepEqual([error.code, error.param], ['invalid_request', 'messages']);
    assert.match(error.message, /chat template of tiny \(tokenizer_config\.json chat_template\) cannot be parsed/);
    assert.equal((await post(server, '/v1/completions', { model: 'tiny', prompt: 'Hi', max_tokens: 2 })).status, 200);
  });
});

describe('a chat template that refuses a conversation', () => {
  let server: TestServer;
  before(async () => {
    const template = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('conversations must start with a user message') }}{% endif %}{% for m in messages %}{{ m['content'] }}\n{% endfor %}";
    server = await withTemplate(template, []);
  });
  after(async () => server?.close());

  it('answers 400 naming the template and its reason; a conversation it accepts is served', async () => {
    const refused = await post(server, '/v1/chat/completions', { ...CHAT, max_tokens: 2, messages: [{ role: 'assistant', content: 'Hi' }] });
    assert.equal(refused.status, 400);
    assert.match((refused.json.error as { message: string }).message, /chat template of tiny \(tokenizer_config\.json chat_template\) failed on these messages: conversations must start with a user message/);
    assert.equal((await post(server, '/v1/chat/completions', { ...CHAT, max_tokens: 2 })).status, 200);
  });
});
