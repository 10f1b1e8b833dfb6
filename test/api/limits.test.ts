// Servers with small limits: admission (429 + Retry-After, /ready 503), the API key, and clients that
// go away mid-request (the engine stops their sequences). Shutdown has its own file (shutdown.test.ts).
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import type { EngineUpdate, FinishReason } from '../../src/engine/protocol.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const MODEL = 'tiny';
// A generation far longer than any check a test makes while it runs: 4000 decode steps take seconds
// on any CPU, so "still running" holds however fast or loaded the machine is.
const LONG_TOKENS = 4000;
const LONG_CONTEXT = { spec: { maxPositionEmbeddings: 4096 } };
const LONG_LIMITS = { maxTokens: LONG_TOKENS };
// Hang guard for waits that end as soon as their condition holds.
const WAIT_MS = 30_000;

type Json = Record<string, unknown>;

function cmp(extra: Json = {}): Json {
  return { model: MODEL, prompt: 'Hello', max_tokens: 1, ...extra };
}

function chat(extra: Json = {}): Json {
  return { model: MODEL, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 1, ...extra };
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function assertEnvelope(res: request.Response, status: number, code: string, type: string): void {
  const detail = `${res.status} ${res.text}`;
  assert.equal(res.status, status, detail);
  const error = (res.body as { error?: Record<string, unknown> }).error;
  assert.ok(error, detail);
  assert.deepEqual(Object.keys(error).sort(), ['code', 'message', 'param', 'type'], detail);
  assert.equal(error.code, code, detail);
  assert.equal(error.type, type, detail);
  assert.ok(typeof error.message === 'string' && error.message.length > 0, detail);
}

/** A raw request on its own connection, so the test can stop reading it or drop it. */
interface RawRequest {
  req: http.ClientRequest;
  /** Resolves with the response head. */
  response: Promise<http.IncomingMessage>;
  /** Everything received so far. */
  text(): string;
  /** Resolves with the whole body once the response ends; rejects if the connection breaks. */
  done: Promise<string>;
}

function rawPost(url: string, path: string, body: Json): RawRequest {
  const payload = JSON.stringify(body);
  const req = http.request(`${url}${path}`, {
    method: 'POST',
    agent: false,
    headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
  });
  let received = '';
  let resolveDone!: (text: string) => void;
  let rejectDone!: (err: Error) => void;
  const done = new Promise<string>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  done.catch(() => {});
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    req.once('response', (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (received += chunk));
      res.once('end', () => resolveDone(received));
      res.once('error', rejectDone);
      res.once('aborted', () => rejectDone(new Error('aborted')));
      resolve(res);
    });
    req.once('error', (err) => {
      reject(err);
      rejectDone(err);
    });
  });
  response.catch(() => {});
  req.end(payload);
  return { req, response, text: () => received, done };
}

function sseEvents(text: string): string[] {
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice('data: '.length));
}

/** Records the engine's reported load and every finish event. */
function watchEngine(server: TestServer): { running: () => number | undefined; finishes: { id: string; reason: FinishReason; completionTokens: number }[]; stop: () => void } {
  let last: number | undefined;
  const finishes: { id: string; reason: FinishReason; completionTokens: number }[] = [];
  const stop = server.engine.onUpdate((u: EngineUpdate) => {
    last = u.load.running;
    for (const e of u.events) if (e.type === 'finish') finishes.push({ id: e.id, reason: e.reason, completionTokens: e.completionTokens });
  });
  return { running: () => last, finishes, stop };
}

describe('overload: maxNumSeqs 1, maxWaiting 0', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ ...LONG_CONTEXT, config: { limits: { maxNumSeqs: 1, maxWaiting: 0, ...LONG_LIMITS } } });
  });
  after(async () => {
    await server.close();
  });

  it('answers 429 with Retry-After while full, /ready 503 with its numbers, and admits again once the stream ends', async () => {
    const ready = await request(server.url).get('/ready');
    assert.equal(ready.status, 200, ready.text);
    assert.deepEqual(ready.body, { status: 'ready', sequences_in_flight: 0, capacity: 1, max_running: 1, max_waiting: 0 });

    // One long stream, which the test then stops reading.
    const first = rawPost(server.url, '/v1/completions', cmp({ max_tokens: LONG_TOKENS, ignore_eos: true, stream: true }));
    const head = await first.response;
    assert.equal(head.statusCode, 200);
    await waitFor(() => sseEvents(first.text()).length >= 1, WAIT_MS, 'the first chunk');
    head.pause();

    const second = await request(server.url).post('/v1/completions').send(cmp());
    assertEnvelope(second, 429, 'too_many_requests', 'rate_limit_error');
    assert.match(String(second.headers['retry-after']), /^\d+$/, 'Retry-After is a number of seconds');
    assert.ok(Number(second.headers['retry-after']) >= 1);

    const secondChat = await request(server.url).post('/v1/chat/completions').send(chat());
    assertEnvelope(secondChat, 429, 'too_many_requests', 'rate_limit_error');
    assert.ok(secondChat.headers['retry-after']);

    // Validation comes before admission: a bad request is still a 400, not a 429.
    const bad = await request(server.url).post('/v1/completions').send(cmp({ temperature: 9 }));
    assertEnvelope(bad, 400, 'invalid_request', 'invalid_request_error');

    const full = await request(server.url).get('/ready');
    assert.equal(full.status, 503, full.text);
    assert.ok(full.headers['retry-after'], 'Retry-After on /ready 503');
    assert.deepEqual(full.body, { status: 'full', sequences_in_flight: 1, capacity: 1, max_running: 1, max_waiting: 0 });

    const health = await request(server.url).get('/health');
    assert.equal(health.status, 200, 'health stays 200 while full');

    // The first client goes away; its slot comes back.
    first.req.destroy();
    await waitFor(async () => (await request(server.url).get('/ready')).status === 200, WAIT_MS, '/ready to answer 200 again');
    const again = await request(server.url).post('/v1/completions').send(cmp({ max_tokens: 2 }));
    assert.equal(again.status, 200, again.text);
  });

  it('admits the next request once a stream finished normally', async () => {
    const first = rawPost(server.url, '/v1/completions', cmp({ max_tokens: 5, ignore_eos: true, stream: true }));
    const text = await first.done;
    assert.ok(text.trimEnd().endsWith('data: [DONE]'), text);
    const next = await request(server.url).post('/v1/completions').send(cmp({ max_tokens: 2 }));
    assert.equal(next.status, 200, next.text);
    const ready = await request(server.url).get('/ready');
    assert.equal(ready.status, 200, ready.text);
    assert.equal((ready.body as { sequences_in_flight: number }).sequences_in_flight, 0);
  });
});

describe('API key', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ config: { apiKey: 'secret' } });
  });
  after(async () => {
    await server.close();
  });

  it('refuses a request without a key with 401 invalid_api_key', async () => {
    const res = await request(server.url).post('/v1/completions').send(cmp());
    assertEnvelope(res, 401, 'invalid_api_key', 'invalid_request_error');
    const models = await request(server.url).get('/v1/models');
    assertEnvelope(models, 401, 'invalid_api_key', 'invalid_request_error');
  });

  it('refuses a wrong key, a different scheme and an empty bearer with 401', async () => {
    for (const authorization of ['Bearer wrong', 'Bearer secret2', 'Bearer secre', 'Basic secret', 'secret', 'Bearer ']) {
      const res = await request(server.url).post('/v1/chat/completions').set('Authorization', authorization).send(chat());
      assertEnvelope(res, 401, 'invalid_api_key', 'invalid_request_error');
    }
  });

  it('checks the key before the body: a bad body without a key is 401, not 400', async () => {
    const res = await request(server.url).post('/v1/completions').set('Content-Type', 'application/json').send('{not json');
    assertEnvelope(res, 401, 'invalid_api_key', 'invalid_request_error');
  });

  it('serves the right key', async () => {
    const res = await request(server.url).post('/v1/completions').set('Authorization', 'Bearer secret').send(cmp());
    assert.equal(res.status, 200, res.text);
    const models = await request(server.url).get('/v1/models').set('Authorization', 'Bearer secret');
    assert.equal(models.status, 200, models.text);
    const chatRes = await request(server.url).post('/v1/chat/completions').set('Authorization', 'Bearer secret').send(chat());
    assert.equal(chatRes.status, 200, chatRes.text);
  });

  it('leaves /health and /ready open', async () => {
    const health = await request(server.url).get('/health');
    assert.equal(health.status, 200, health.text);
    const ready = await request(server.url).get('/ready');
    assert.equal(ready.status, 200, ready.text);
  });
});

describe('client disconnects', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ ...LONG_CONTEXT, config: { limits: LONG_LIMITS } });
  });
  after(async () => {
    await server.close();
  });

  /** The sequence ended as cancelled, long before its max_tokens, and gave its admission slot back. */
  async function assertStopped(watch: ReturnType<typeof watchEngine>, idPrefix = ''): Promise<void> {
    await waitFor(() => watch.finishes.some((f) => f.id.startsWith(idPrefix)), WAIT_MS, 'the sequence to finish');
    const finish = watch.finishes.find((f) => f.id.startsWith(idPrefix))!;
    assert.equal(finish.reason, 'abort', `finish events: ${JSON.stringify(watch.finishes)}`);
    assert.ok(finish.completionTokens < LONG_TOKENS, `stopped after ${finish.completionTokens} of ${LONG_TOKENS} tokens`);
    await waitFor(() => watch.running() === 0, WAIT_MS, 'the engine to report running 0');
    await waitFor(async () => ((await request(server.url).get('/ready')).body as { sequences_in_flight: number }).sequences_in_flight === 0, WAIT_MS, 'the admission slot back');
  }

  it('a stream dropped after two chunks stops its sequence', async () => {
    const watch = watchEngine(server);
    try {
      const stream = rawPost(server.url, '/v1/completions', cmp({ max_tokens: LONG_TOKENS, ignore_eos: true, stream: true }));
      const head = await stream.response;
      assert.equal(head.statusCode, 200);
      await waitFor(() => sseEvents(stream.text()).length >= 2, WAIT_MS, 'two chunks');
      const id = (JSON.parse(sseEvents(stream.text())[0]!) as { id: string }).id;
      assert.equal(watch.running(), 1, 'the sequence is running when the client leaves');
      stream.req.destroy();
      await assertStopped(watch, id);
    } finally {
      watch.stop();
    }
  });

  it('a non-streaming request dropped by its client stops its sequence', async () => {
    const watch = watchEngine(server);
    try {
      const pending = rawPost(server.url, '/v1/completions', cmp({ max_tokens: LONG_TOKENS, ignore_eos: true }));
      await waitFor(() => (watch.running() ?? 0) >= 1 && server.engine.inFlight === 1, WAIT_MS, 'the sequence to run');
      pending.req.destroy();
      await assertStopped(watch);
      assert.equal(watch.finishes.length, 1);
    } finally {
      watch.stop();
    }
  });

  it('a chat stream dropped mid-way stops its sequence too', async () => {
    const watch = watchEngine(server);
    try {
      const stream = rawPost(server.url, '/v1/chat/completions', chat({ max_tokens: LONG_TOKENS, ignore_eos: true, stream: true }));
      await stream.response;
      await waitFor(() => sseEvents(stream.text()).length >= 2, WAIT_MS, 'two chunks');
      stream.req.destroy();
      await assertStopped(watch);
      assert.equal(watch.finishes.length, 1);
    } finally {
      watch.stop();
    }
  });

  it('still serves afterwards', async () => {
    const res = await request(server.url).post('/v1/completions').send(cmp({ max_tokens: 3 }));
    assert.equal(res.status, 200, res.text);
    assert.equal(server.engine.inFlight, 0);
  });
});
