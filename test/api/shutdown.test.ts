// Shutdown drains: the listener stays open and new API requests get 503 shutting_down with
// Retry-After, requests in flight may finish, and at the end of the grace period each one still open
// is ended properly (a stream with an error event and [DONE], anything else with a 503 envelope).
// Then `swserve serve` exits 0 on SIGTERM.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { spawnServer } from '../helpers/child-server.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { buildTinyCheckpoint } from '../helpers/tiny-checkpoint.js';
import { refusedStatus, activationUrl } from '../telemetry/activation-client.js';

type Json = Record<string, unknown>;
// Hang guard for waits that end as soon as their condition holds.
const WAIT_MS = 30_000;
// A generation no CPU finishes within the short grace periods below: 4000 decode steps of 8 rows.
const LONG = { max_tokens: 4000, n: 8, ignore_eos: true };

interface Exchange {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface Posted {
  response: Promise<Exchange>;
  received: () => string;
  /** With `hold`: resolves once the server has the request (it answered 100 Continue). */
  arrived: Promise<void>;
  release: () => void;
}

/** A POST on its own connection; `hold` sends all but the body's last byte until `release()` is called. */
function post(url: string, body: Json, hold = false): Posted {
  const payload = Buffer.from(JSON.stringify({ model: 'tiny', prompt: 'Hello', ...body }));
  let received = '';
  const headers = { 'content-type': 'application/json', 'content-length': payload.length, ...(hold ? { expect: '100-continue' } : {}) };
  const req = http.request(`${url}/v1/completions`, { method: 'POST', agent: false, headers });
  const arrived = new Promise<void>((resolve) => req.once('continue', () => resolve()));
  const response = new Promise<Exchange>((resolve, reject) => {
    req.once('response', (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (received += chunk));
      res.once('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: received }));
    });
    req.once('error', reject);
  });
  response.catch(() => {});
  if (hold) void arrived.then(() => req.write(payload.subarray(0, -1)));
  else req.end(payload);
  return { response, received: () => received, arrived, release: () => req.end(payload.subarray(-1)) };
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`no ${what} within ${WAIT_MS} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function errorCode(body: string): string | undefined {
  return (JSON.parse(body) as { error?: { code?: string } }).error?.code;
}

function dataEvents(text: string): string[] {
  return text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice('data: '.length));
}

function connectionRefused(url: string): Promise<boolean> {
  return fetch(`${url}/health`).then(
    () => false,
    (err: { cause?: { code?: string } }) => err.cause?.code === 'ECONNREFUSED',
  );
}

describe('during the drain', () => {
  let server: TestServer;
  after(async () => server?.close());

  it('answers new API requests 503 shutting_down with Retry-After, keeps the probes, and lets the request in flight finish', async () => {
    server = await startTestServer({ config: { shutdownGraceSeconds: 30 } });
    // In flight from the server's point of view, and it cannot finish until the test lets it.
    const uploading = post(server.url, { max_tokens: 3 }, true);
    await uploading.arrived;
    const shutdown = server.server.shutdown();

    const refused = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', prompt: 'Hi', max_tokens: 1 }) });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.equal(refused.headers.get('connection'), 'close');
    assert.equal(errorCode(await refused.text()), 'shutting_down');
    const models = await fetch(`${server.url}/v1/models`);
    assert.equal(models.status, 503);
    assert.equal(errorCode(await models.text()), 'shutting_down');
    const ready = await fetch(`${server.url}/ready`);
    assert.equal(ready.status, 503);
    assert.equal(((await ready.json()) as { status: string }).status, 'shutting_down');
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
    assert.equal(await refusedStatus(activationUrl(server.url)), 503);

    uploading.release();
    const done = await uploading.response;
    assert.equal(done.status, 200, done.body);
    assert.equal((JSON.parse(done.body) as { usage: { completion_tokens: number } }).usage.completion_tokens, 3);
    await shutdown;
    assert.ok(await connectionRefused(server.url), 'the listener closes once the drain is over');
  });
});

describe('at the end of the grace period', () => {
  let server: TestServer;
  after(async () => server?.close());

  it('ends a stream with a shutting_down error event and [DONE], and a plain request with a 503 envelope', async () => {
    server = await startTestServer({ spec: { maxPositionEmbeddings: 4096 }, config: { shutdownGraceSeconds: 0.2, limits: { maxTokens: 4000 } } });
    const stream = post(server.url, { ...LONG, stream: true });
    const plain = post(server.url, LONG);
    const uploading = post(server.url, { max_tokens: 1 }, true);
    await uploading.arrived;
    await until(() => dataEvents(stream.received()).length >= 2 && server.engine.inFlight === 16, 'both requests generating');
    await server.server.shutdown();

    const streamed = await stream.response;
    assert.equal(streamed.status, 200);
    const events = dataEvents(streamed.body);
    assert.equal(events[events.length - 1], '[DONE]');
    assert.equal(errorCode(events[events.length - 2]!), 'shutting_down');
    for (const answered of [await plain.response, await uploading.response]) {
      assert.equal(answered.status, 503, answered.body);
      assert.equal(answered.headers['retry-after'], '1');
      assert.equal(errorCode(answered.body), 'shutting_down');
    }
    assert.equal(server.engine.alive, false, 'the engine stopped after the responses ended');
  });
});

describe('swserve serve on SIGTERM', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-sigterm-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('ends the open stream with an error event and [DONE], logs it, and exits 0', async () => {
    const dir = path.join(root, 'tiny');
    buildTinyCheckpoint(dir, { arch: 'llama', numLayers: 2, seed: 5, maxPositionEmbeddings: 4096 });
    const child = await spawnServer(['--model', dir, '--served-model-name', 'tiny', '--shutdown-grace-seconds', '0.2', '--max-tokens', '4000']);
    const stream = post(child.url, { ...LONG, stream: true });
    await until(() => dataEvents(stream.received()).length >= 2, 'the stream to start');
    child.child.kill('SIGTERM');
    const { code, signal } = await child.exited;
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, child.log());
    const events = dataEvents((await stream.response).body);
    assert.deepEqual([errorCode(events[events.length - 2]!), events[events.length - 1]], ['shutting_down', '[DONE]']);
    assert.match(child.log(), /SIGTERM: finishing in-flight requests/);
    assert.match(child.log(), /ended 1 request\(s\) with shutting_down/);
  });
});
