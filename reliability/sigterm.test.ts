// SIGTERM under load, to a real `swserve serve` process: while it drains, new requests get 503
// shutting_down with Retry-After (probes keep answering); at the end of the grace period every stream
// still open gets a shutting_down error event and [DONE] and every other request a 503 envelope; then
// the process exits 0.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, it } from 'node:test';
import type { ChildServer } from '../test/helpers/child-server.js';
import { exchange, figure, MODEL, postJson, sseEvents, startDemoServer } from './support.js';

const GRACE_SECONDS = 0.5;
// 8 streams of 4 choices (32 sequences for 16 batch rows) and 2 requests of 8 more: some of them need
// 1000 decode steps or more, which no CPU runs in the grace period; the plain ones wait behind the streams.
const STREAMS = 8;
const PLAIN = 2;
const LONG = { model: MODEL, prompt: 'The city of', max_tokens: 500, ignore_eos: true };
const WAIT_MS = 60_000;

let server: ChildServer;
before(async () => {
  server = await startDemoServer(['--shutdown-grace-seconds', String(GRACE_SECONDS)]);
});
after(async () => {
  await server?.stop();
});

function stream(url: string): { first: Promise<void>; done: Promise<string> } {
  let onFirst!: () => void;
  const first = new Promise<void>((resolve) => (onFirst = resolve));
  const done = new Promise<string>((resolve, reject) => {
    const payload = JSON.stringify({ ...LONG, n: 4, stream: true });
    const req = http.request(`${url}/v1/completions`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (text.includes('data: {')) onFirst();
      });
      res.on('end', () => resolve(text));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
  return { first, done };
}

const code = (body: string): string | undefined => (JSON.parse(body) as { error?: { code?: string } }).error?.code;

it('drains on SIGTERM under load: 503 shutting_down for new work, error events and 503 envelopes at the deadline, exit 0', async () => {
  const streams = Array.from({ length: STREAMS }, () => stream(server.url));
  await Promise.all(streams.map((s) => s.first));
  const plain = Array.from({ length: PLAIN }, () => postJson(server.url, '/v1/completions', { ...LONG, n: 8 }));

  const signalled = Date.now();
  server.child.kill('SIGTERM');
  // Probes on fresh connections until the listener closes: the answers before the drain started are
  // ordinary ones; from the first 503 on, each must be the drain's answer.
  const probes: string[] = [];
  let draining = false;
  const problems: string[] = [];
  for (;;) {
    const [completion, models, ready, health] = await Promise.all([
      postJson(server.url, '/v1/completions', { model: MODEL, prompt: 'Hi', max_tokens: 1 }),
      exchange(server.url, { method: 'GET', path: '/v1/models' }),
      exchange(server.url, { method: 'GET', path: '/ready' }),
      exchange(server.url, { method: 'GET', path: '/health' }),
    ]);
    if ('error' in completion) {
      probes.push(`refused (${completion.error})`);
      break;
    }
    draining ||= completion.status === 503;
    if (!draining) continue;
    for (const [what, res, status] of [['completion', completion, 503], ['models', models, 503], ['ready', ready, 503], ['health', health, 200]] as const) {
      if ('error' in res) continue; // the listener closed between the probes
      // On a connection accepted just before the deadline, /health may already see the engine stopped.
      const engineStopped = what === 'health' && res.status === 503 && code(res.body.toString()) === 'engine_failure';
      if (res.status !== status && !engineStopped) problems.push(`${what} during the drain answered ${res.status}: ${res.body.toString().slice(0, 200)}`);
      if (status === 503 && what !== 'ready' && (code(res.body.toString()) !== 'shutting_down' || res.headers['retry-after'] !== '1')) problems.push(`${what} during the drain: ${res.body.toString().slice(0, 200)}`);
    }
    probes.push('503 shutting_down');
    if (Date.now() - signalled > WAIT_MS) throw new Error('the listener never closed');
  }
  const exit = await server.exited;
  const exitMs = Date.now() - signalled;

  let streamsEnded = 0;
  let streamsFinished = 0;
  for (const s of streams) {
    const events = sseEvents(await s.done);
    assert.equal(events[events.length - 1], '[DONE]', 'every stream ends with [DONE]');
    if (code(events[events.length - 2]!) === 'shutting_down') streamsEnded++;
    else if (events.slice(0, -1).every((e) => !e.includes('"error"'))) streamsFinished++;
    else problems.push(`a stream ended with ${events[events.length - 2]}`);
  }
  let plain503 = 0;
  for (const p of plain) {
    const res = await p;
    if (!('error' in res) && res.status === 503 && code(res.body.toString()) === 'shutting_down' && res.headers['retry-after'] === '1') plain503++;
    else problems.push(`a plain request at the deadline: ${JSON.stringify('error' in res ? res : { status: res.status, body: res.body.toString().slice(0, 200) })}`);
  }
  const drainAnswers = probes.filter((p) => p.startsWith('503')).length;
  figure('sigterm load', `${STREAMS} streams x 4 choices and ${PLAIN} requests x 8 choices of 500 tokens, grace ${GRACE_SECONDS} s`);
  figure('sigterm streams', `${streamsEnded} ended with a shutting_down error event and [DONE], ${streamsFinished} finished before the deadline`);
  figure('sigterm plain requests', `${plain503} of ${PLAIN} answered 503 shutting_down with Retry-After`);
  figure('sigterm new requests during the drain', `${drainAnswers} probe rounds answered 503 shutting_down (/health 200), then ${probes[probes.length - 1]}`);
  figure('sigterm exit', `code ${exit.code}, ${exitMs} ms after the signal`);
  assert.deepEqual(problems.slice(0, 10), []);
  assert.deepEqual(exit, { code: 0, signal: null }, server.log());
  assert.ok(streamsEnded >= 1, 'at least one stream was still open at the deadline');
  assert.equal(plain503, PLAIN);
  assert.ok(drainAnswers >= 1, 'the listener stayed open during the drain');
});
