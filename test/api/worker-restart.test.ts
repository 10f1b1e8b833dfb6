// If the engine worker dies anyway, swserve says so, fails the requests in flight with an
// engine_failure envelope (an error event and [DONE] on a stream), tells telemetry (end frames, the
// failure counter, gauges back to 0), starts a new worker and serves again: /health shows the restart
// and a greedy request gives the text it gave before the crash. A finished sequence sends no cancel.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { connectActivations } from '../telemetry/activation-client.js';
import { metricValue } from '../telemetry/metrics-text.js';

// Hang guard for waits that end as soon as their condition holds.
const WAIT_MS = 30_000;
const GREEDY = { model: 'tiny', prompt: 'Summer is hot. Winter is', max_tokens: 12, temperature: 0 };
// Long enough to be mid-generation when the worker is killed: 4000 decode steps.
const LONG = { model: 'tiny', prompt: 'Hello', max_tokens: 4000, ignore_eos: true };

let server: TestServer;
const logged: string[] = [];

before(async () => {
  server = await startTestServer({ spec: { maxPositionEmbeddings: 4096 }, config: { limits: { maxTokens: 4000 } }, log: (m) => logged.push(m) });
});
after(async () => server?.close());

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`no ${what} within ${WAIT_MS} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function text(body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 200);
  return ((await res.json()) as { choices: { text: string }[] }).choices[0]!.text;
}

async function metrics(): Promise<string> {
  return (await fetch(`${server.url}/metrics`)).text();
}

describe('a dead engine worker', () => {
  it('fails what was in flight with envelopes, restarts, and serves the same text again', async () => {
    const before = await text(GREEDY);
    const failuresBefore = metricValue(await metrics(), 'swserve_request_failure_total', { kind: 'engine_failure' }) ?? 0;
    const watcher = await connectActivations(server.url, { decode_every: '0' });

    const streamed = fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...LONG, stream: true }) });
    const plain = fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...LONG, n: 2 }) });
    await until(() => watcher.frames.filter((f) => f.type === 'step').length === 3, 'all three sequences generating');
    await server.engine.crashWorker();

    const stream = await streamed;
    assert.equal(stream.status, 200);
    const events = (await stream.text()).split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice('data: '.length));
    assert.equal(events[events.length - 1], '[DONE]');
    assert.equal((JSON.parse(events[events.length - 2]!) as { error: { code: string } }).error.code, 'engine_failure');
    const answer = await plain;
    assert.equal(answer.status, 503);
    assert.equal(answer.headers.get('retry-after'), '1');
    assert.equal(((await answer.json()) as { error: { code: string } }).error.code, 'engine_failure');

    // Telemetry heard of every sequence's end, so nothing of theirs is left behind.
    const failedEnds = (): number => watcher.frames.filter((f) => f.type === 'end' && (f as { finish_reason: string }).finish_reason === 'error').length;
    await until(() => failedEnds() === 3, 'an error end frame for each of the three sequences');
    await watcher.close();

    await until(async () => (await fetch(`${server.url}/health`)).status === 200, 'a healthy engine again');
    assert.deepEqual(await (await fetch(`${server.url}/health`)).json(), { status: 'ok', engine_restarts: 1 });
    assert.match(logged.join('\n'), /engine worker died .*failing 3 sequence\(s\) in flight and starting a new worker/);
    assert.match(logged.join('\n'), /engine worker restarted \(1 restart/);

    assert.equal(await text(GREEDY), before);
    const after = await metrics();
    assert.equal(metricValue(after, 'swserve_request_failure_total', { kind: 'engine_failure' }), failuresBefore + 3);
    assert.equal(metricValue(after, 'swserve_num_requests_running'), 0);
    assert.equal(metricValue(after, 'swserve_num_requests_waiting'), 0);
    const ready = (await (await fetch(`${server.url}/ready`)).json()) as { sequences_in_flight: number };
    assert.equal(ready.sequences_in_flight, 0);
  });
});

describe('cancellation', () => {
  it('a sequence read to its end sends no cancel; one abandoned mid-way sends one', async () => {
    const start = server.engine.cancelsSent;
    await text({ ...GREEDY, n: 3 });
    assert.equal(server.engine.cancelsSent, start, 'no cancel for finished sequences');
    const controller = new AbortController();
    const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...LONG, stream: true }), signal: controller.signal });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    await until(() => server.engine.cancelsSent === start + 1, 'the abandoned sequence cancelled');
  });
});
