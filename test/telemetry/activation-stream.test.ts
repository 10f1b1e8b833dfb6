// The /v1/activations WebSocket with real `ws` clients against a real swserve: the fixed frame
// fields, the switch seen in the prefill super activation (equal to a checkpoint zeroed on disk),
// subscriptions by query and by message, bad messages, API key and client cap.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { MAX_FRAME_INPUT_TOKENS, type EndFrame, type StepFrame } from '../../src/telemetry/stream-frames.js';
import { PLANTED, startTestServer, type TestServer } from '../helpers/test-server.js';
import { scaleWeightOnDisk } from '../helpers/tiny-checkpoint.js';
import { activationUrl, complete, connectActivations, refusedStatus, type Frame } from './activation-client.js';

const PROMPT = 'Summer is hot. Winter is';
const MAX_TOKENS = 6;
const PLANTED_ID = `${PLANTED.layer}:${PLANTED.row}:${PLANTED.col}`;
// float32 graphs of the same weights agree to rounding.
const VALUE_TOLERANCE = 1e-3;

let server: TestServer;
let zeroed: TestServer;
let requestCounter = 0;

before(async () => {
  server = await startTestServer();
  // The planted weight zeroed on disk; it stays a known super weight so its row is still reported.
  const zeroDir = `${server.checkpoint.dir}-zeroed`;
  scaleWeightOnDisk(server.checkpoint.dir, zeroDir, [{ ...PLANTED, scale: 0 }]);
  zeroed = await startTestServer({ config: { model: zeroDir } });
});
after(async () => {
  await server?.close();
  await zeroed?.close();
});

function nextRequestId(): string {
  return `telemetry-test-${process.pid}-${requestCounter++}`;
}

const isStep = (f: Frame): f is StepFrame & { type: 'step' } => f.type === 'step';
const isEnd = (f: Frame): f is EndFrame & { type: 'end' } => f.type === 'end';

/** One completion watched by a client subscribed to its X-Request-Id; returns that request's frames. */
async function watched(target: TestServer, body: Record<string, unknown> = {}, query: Record<string, string> = {}): Promise<{ steps: StepFrame[]; end: EndFrame; response: Record<string, unknown> }> {
  const requestId = nextRequestId();
  const client = await connectActivations(target.url, { request_ids: requestId, ...query });
  try {
    const response = await complete(target.url, { model: target.modelId, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, ...body }, { 'x-request-id': requestId });
    const end = (await client.waitFor((f) => isEnd(f) && f.request_id === requestId, 'end')) as EndFrame;
    return { steps: client.frames.filter(isStep), end, response };
  } finally {
    await client.close();
  }
}

function prefillValue(steps: StepFrame[]): number {
  const prefill = steps.find((s) => s.phase === 'prefill');
  assert.ok(prefill, 'a prefill frame');
  const sa = prefill.super_activations.find((a) => a.id === PLANTED_ID);
  assert.ok(sa, `the prefill frame reports ${PLANTED_ID}`);
  return sa.value;
}

describe('activation stream frames', () => {
  it('carry the fixed fields for every step, then an end frame', async () => {
    const { steps, end, response } = await watched(server);
    const usage = response.usage as { prompt_tokens: number; completion_tokens: number };
    assert.equal(steps.length, MAX_TOKENS, 'one step frame per generated token');
    steps.forEach((s, i) => {
      assert.equal(s.type, 'step');
      assert.equal(typeof s.request_id, 'string');
      assert.equal(s.choice, 0);
      assert.equal(s.phase, i === 0 ? 'prefill' : 'decode');
      assert.equal(s.step, i);
      assert.deepEqual(s.switch, { plan: 'original', scale: 1, mode: 'original', restore_activation: false, weights: [] });
      assert.equal(typeof s.token.id, 'number');
      assert.equal(s.input_tokens.length, i === 0 ? usage.prompt_tokens : 1);
      assert.equal(s.input_tokens_omitted, 0);
      // A decode step feeds the token the previous step sampled.
      if (i > 0) assert.equal(s.input_tokens[0]!.id, steps[i - 1]!.token.id);
      assert.deepEqual(s.layers.map((l) => l.layer), [0, 1, 2]);
      for (const l of s.layers) {
        for (const key of ['input_max', 'input_channel', 'output_max', 'output_channel', 'output_position'] as const) assert.equal(typeof l[key], 'number', key);
      }
      assert.deepEqual(s.super_activations.map((a) => a.id), [PLANTED_ID]);
    });
    assert.equal(steps[0]!.input_tokens[0]!.id, server.checkpoint.bosId);
    // The planted super weight: layer 1's output spikes at its row, on the first token.
    const layer1 = steps[0]!.layers[1]!;
    assert.equal(layer1.output_channel, PLANTED.row);
    assert.equal(layer1.output_position, 0);
    assert.equal(end.finish_reason, 'length');
    assert.equal(end.prompt_tokens, usage.prompt_tokens);
    assert.equal(end.completion_tokens, usage.completion_tokens);
  });

  it('name at most the first 64 prompt tokens of a long prompt and count the rest', async () => {
    const prompt = 'The river runs to the sea. '.repeat(12);
    const { steps, response } = await watched(server, { prompt, max_tokens: 2 });
    const promptTokens = (response.usage as { prompt_tokens: number }).prompt_tokens;
    assert.ok(promptTokens > MAX_FRAME_INPUT_TOKENS);
    assert.equal(steps[0]!.input_tokens.length, MAX_FRAME_INPUT_TOKENS);
    assert.equal(steps[0]!.input_tokens_omitted, promptTokens - MAX_FRAME_INPUT_TOKENS);
    // The ones named are the prompt's first tokens (BOS, then its bytes), where the super activation sits.
    assert.deepEqual(steps[0]!.input_tokens.map((t) => t.id), [server.checkpoint.bosId, ...Buffer.from(prompt).subarray(0, MAX_FRAME_INPUT_TOKENS - 1)]);
    assert.deepEqual([steps[1]!.input_tokens.length, steps[1]!.input_tokens_omitted], [1, 0]);
  });

  it('name the response id when the client sent no X-Request-Id', async () => {
    const client = await connectActivations(server.url);
    try {
      const response = await complete(server.url, { model: server.modelId, prompt: PROMPT, max_tokens: 2, n: 2 });
      const ends = await Promise.all([0, 1].map((choice) => client.waitFor((f) => isEnd(f) && f.request_id === response.id && f.choice === choice, `end of choice ${choice}`)));
      assert.equal(ends.length, 2);
    } finally {
      await client.close();
    }
  });

  it('show the switch: "off" drops the prefill super activation to the zeroed checkpoint\'s value', async () => {
    const original = prefillValue((await watched(server)).steps);
    const off = await watched(server, { super_weights: 'off' });
    const reference = prefillValue((await watched(zeroed)).steps);
    assert.deepEqual(off.steps[0]!.switch, { plan: 'zeroed', scale: 0, mode: 'ablated', restore_activation: false, weights: [{ id: '1:7:33', scale: 0 }] });
    const value = prefillValue(off.steps);
    assert.ok(Math.abs(value - reference) <= VALUE_TOLERANCE * Math.max(1, Math.abs(reference)), `off ${value} vs zeroed checkpoint ${reference}`);
    assert.ok(Math.abs(original) > 10 * Math.abs(value), `original ${original} should dwarf ablated ${value}`);
  });
});

describe('activation stream subscriptions', () => {
  it('send a layer subset and every N-th decode step', async () => {
    const { steps } = await watched(server, {}, { layers: '1', decode_every: '2' });
    assert.deepEqual(steps.map((s) => s.step), [0, 2, 4]);
    for (const s of steps) assert.deepEqual(s.layers.map((l) => l.layer), [1]);
    const prefillOnly = await watched(server, {}, { decode_every: '0' });
    assert.deepEqual(prefillOnly.steps.map((s) => s.phase), ['prefill']);
  });

  it('change by message; only ablated traffic when asked', async () => {
    const client = await connectActivations(server.url);
    try {
      client.send({ type: 'subscribe', modes: ['ablated'], decode_every: 0 });
      await client.waitFor((f) => f.type === 'subscribed' && (f.subscription as { modes?: string[] }).modes?.[0] === 'ablated', 'subscribed');
      const [on, off] = await Promise.all([complete(server.url, { model: server.modelId, prompt: PROMPT, max_tokens: 2 }), complete(server.url, { model: server.modelId, prompt: PROMPT, max_tokens: 2, super_weights: 'off' })]);
      await client.waitFor((f) => isEnd(f) && f.request_id === off.id, 'end of the ablated request');
      assert.ok(!client.frames.some((f) => (isStep(f) || isEnd(f)) && f.request_id === on.id), 'no frame of the original request');
      assert.deepEqual(client.frames.filter(isStep).map((s) => [s.switch.mode, s.phase]), [['ablated', 'prefill']]);
    } finally {
      await client.close();
    }
  });

  it('tell the switch plans apart: only zeroed-with-SA-restored traffic when asked, with its scale', async () => {
    const client = await connectActivations(server.url);
    try {
      client.send({ type: 'subscribe', plans: ['zeroed_sa_restored'], decode_every: 0 });
      await client.waitFor((f) => f.type === 'subscribed' && (f.subscription as { plans?: string[] }).plans?.[0] === 'zeroed_sa_restored', 'subscribed');
      const settings = ['off', { scale: 0, restore_activation: true }, { scale: 2 }];
      const answers = await Promise.all(settings.map((super_weights) => complete(server.url, { model: server.modelId, prompt: PROMPT, max_tokens: 2, super_weights })));
      const restored = answers[1]!;
      const applied = restored.super_weights as { plan: string; scale: number; mode: string };
      assert.deepEqual([applied.plan, applied.scale, applied.mode], ['zeroed_sa_restored', 0, 'ablated']);
      await client.waitFor((f) => isEnd(f) && f.request_id === restored.id, 'end of the restored request');
      const steps = client.frames.filter(isStep);
      assert.deepEqual(steps.map((s) => [s.request_id, s.switch.plan, s.switch.scale, s.switch.restore_activation]), [[restored.id, 'zeroed_sa_restored', 0, true]]);
    } finally {
      await client.close();
    }
  });

  it('answer bad messages with an error frame and keep serving', async () => {
    const client = await connectActivations(server.url);
    try {
      const bad: (string | Record<string, unknown>)[] = ['not json', { type: 'unsubscribe' }, { type: 'subscribe', layers: [99] }, { type: 'subscribe', decode_every: -1 }, { type: 'subscribe', extra: 1 }];
      for (const message of bad) client.send(message);
      client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
      const errors = () => client.frames.filter((f) => f.type === 'error');
      await client.waitFor(() => errors().length === bad.length + 1, 'six error');
      assert.match((errors()[2] as { message: string }).message, /layer 99 does not exist/);
      const requestId = nextRequestId();
      client.send({ type: 'subscribe', request_ids: [requestId] });
      await complete(server.url, { model: server.modelId, prompt: PROMPT, max_tokens: 1 }, { 'x-request-id': requestId });
      await client.waitFor((f) => isEnd(f) && f.request_id === requestId, 'end after the bad messages');
    } finally {
      await client.close();
    }
  });

  it('refuse a bad query string at connect with 400', async () => {
    assert.equal(await refusedStatus(activationUrl(server.url, { decode_every: 'often' })), 400);
    assert.equal(await refusedStatus(activationUrl(server.url, { modes: 'sideways' })), 400);
    assert.equal(await refusedStatus(`${server.url.replace(/^http/, 'ws')}/v1/other-socket`), 404);
  });
});

describe('activation stream access', () => {
  const API_KEY = 'telemetry-key';
  let keyed: TestServer;
  before(async () => {
    keyed = await startTestServer({ config: { apiKey: API_KEY, telemetry: { maxClients: 1, clientBufferFrames: 16 } } });
  });
  after(async () => keyed?.close());

  it('needs the API key (header or query) and caps the clients', async () => {
    assert.equal(await refusedStatus(activationUrl(keyed.url)), 401);
    assert.equal(await refusedStatus(activationUrl(keyed.url, { api_key: 'wrong' })), 401);
    const first = await connectActivations(keyed.url, {}, { authorization: `Bearer ${API_KEY}` });
    assert.equal(await refusedStatus(activationUrl(keyed.url, { api_key: API_KEY })), 429);
    const metrics = await (await fetch(`${keyed.url}/metrics`)).text();
    assert.match(metrics, /^swserve_websocket_clients 1$/m);
    await first.close();
    const second = await connectActivations(keyed.url, { api_key: API_KEY });
    await second.waitFor((f) => f.type === 'subscribed', 'subscribed');
    await second.close();
  });
});

const LIVE_PAGE_DIR = new URL('../../../src/telemetry/live-page/', import.meta.url);

// The page files the server sends are the ones in the source tree.
it('serves the live page files without a build step', async () => {
  for (const [route, file, type] of [
    ['/', 'index.html', /text\/html/],
    ['/dashboard', 'index.html', /text\/html/],
    ['/dashboard/live.js', 'live.js', /javascript/],
  ] as const) {
    const res = await fetch(`${server.url}${route}`);
    assert.equal(res.status, 200, route);
    assert.match(res.headers.get('content-type') ?? '', type);
    assert.equal(await res.text(), fs.readFileSync(new URL(file, LIVE_PAGE_DIR), 'utf8'));
  }
});
