// The super-weight switch over HTTP: "off" equals the checkpoint zeroed on disk, mixed requests share
// batches and still match their solo results, and the A/B comparison endpoint against the plain
// reference forward pass.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PLANTED, startTestServer, type TestServer } from '../helpers/test-server.js';
import { createReferenceModel } from '../helpers/reference-forward.js';
import { logSoftmax } from '../helpers/reference-perplexity.js';
import { scaleWeightOnDisk } from '../helpers/tiny-checkpoint.js';

const LOGPROB_TOLERANCE = 1e-4;
// float32 engine vs float64 reference: KL and probability mass agree to this, absolutely or relatively.
const DISTRIBUTION_TOLERANCE = 1e-4;
const PROMPT = 'Summer is hot. Winter is';

let server: TestServer;
let zeroed: TestServer;

before(async () => {
  server = await startTestServer();
  // The same checkpoint with the super weight zeroed on disk, served by a second server.
  const zeroDir = `${server.checkpoint.dir}-zeroed`;
  scaleWeightOnDisk(server.checkpoint.dir, zeroDir, [{ ...PLANTED, scale: 0 }]);
  fs.rmSync(path.join(zeroDir, 'super_weights.json'), { force: true });
  zeroed = await startTestServer({ config: { model: zeroDir }, superWeights: [] });
});
after(async () => {
  await server.close();
  await zeroed.close();
});

interface Completion {
  choices: { text: string; logprobs: { tokens: string[]; token_logprobs: number[] } }[];
  super_weights: { mode: string; restore_activation: boolean; weights: { id: string; original_value: number; effective_value: number }[] };
}

async function complete(target: TestServer, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<Completion> {
  const res = await fetch(`${target.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: target.modelId, prompt: PROMPT, max_tokens: 10, temperature: 0, logprobs: 1, ...extra }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as Completion;
}

function assertSameGeneration(a: Completion, b: Completion): void {
  assert.deepEqual(a.choices[0]!.logprobs.tokens, b.choices[0]!.logprobs.tokens);
  a.choices[0]!.logprobs.token_logprobs.forEach((lp, i) => assert.ok(Math.abs(lp - b.choices[0]!.logprobs.token_logprobs[i]!) < LOGPROB_TOLERANCE, `token ${i}`));
}

describe('super_weights over HTTP', () => {
  it('"off", {scale: 0} and X-Super-Weights: off equal the checkpoint zeroed on disk', async () => {
    const reference = await complete(zeroed);
    const off = await complete(server, { super_weights: 'off' });
    assertSameGeneration(off, reference);
    assertSameGeneration(await complete(server, { super_weights: { scale: 0 } }), reference);
    assertSameGeneration(await complete(server, {}, { 'X-Super-Weights': 'off' }), reference);
    assert.deepEqual(off.super_weights.weights.map((w) => [w.id, w.effective_value]), [['1:7:33', 0]]);
    assert.ok(Math.abs(off.super_weights.weights[0]!.original_value) > 1);
    // And the switch matters: the original model generates something else.
    const on = await complete(server);
    assert.notDeepEqual(on.choices[0]!.logprobs.token_logprobs, off.choices[0]!.logprobs.token_logprobs);
  });

  it('lets the body win over the header', async () => {
    const r = await complete(server, { super_weights: 'on' }, { 'X-Super-Weights': 'off' });
    assert.equal(r.super_weights.mode, 'original');
    const scaled = await complete(server, {}, { 'X-Super-Weights': 'scale=2' });
    assert.equal(scaled.super_weights.mode, 'scaled');
    assert.equal(scaled.super_weights.weights[0]!.effective_value, 2 * scaled.super_weights.weights[0]!.original_value);
  });

  it('batches concurrent on/off/scaled requests together and keeps each exact', async () => {
    const variants: { super_weights?: unknown }[] = [
      {},
      { super_weights: 'off' },
      { super_weights: { scale: 2 } },
      { super_weights: { scale: 0, restore_activation: true } },
      { super_weights: { scale: 0, select: ['2:3:4'] } },
    ];
    const tokens = 30;
    const solo: Completion[] = [];
    for (const v of variants) solo.push(await complete(server, { ...v, max_tokens: tokens }));
    // Concurrent requests: however they happen to be batched, each equals its solo run.
    const together = await Promise.all(variants.map((v) => complete(server, { ...v, max_tokens: tokens })));
    together.forEach((r, i) => assertSameGeneration(r, solo[i]!));
    assert.equal(together[3]!.super_weights.restore_activation, true);
    // One comparison submits all five states at once, so they decode together: one session.run
    // with four switched rows and one original. Each state's tokens are still its solo tokens.
    const steps: { batchSize: number; switchedRows: number }[] = [];
    const off = server.engine.onUpdate((u) => u.step?.phase === 'decode' && steps.push(u.step));
    const compared = await compare({ max_tokens: tokens, states: variants.map((v) => v.super_weights ?? 'on') });
    off();
    assert.ok(steps.some((s) => s.batchSize === variants.length && s.switchedRows === variants.length - 1), JSON.stringify(steps.slice(0, 5)));
    compared.states.forEach((state, i) => assert.deepEqual(state.tokens, solo[i]!.choices[0]!.logprobs.tokens, `state ${i}`));
  });

  it('refuses a scale whose activations overflow float32 with a 400 naming the switch, and serves the next request as before', async () => {
    const before = await complete(server);
    // The planted weight times 1e37 is finite (the API takes it); the super activation it makes is not.
    const assertRefused = async (res: Response, param: string, what: string): Promise<void> => {
      const body = (await res.json()) as { error: { param: string; message: string } };
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(body.error.param, param, what);
      assert.match(body.error.message, /overflowed float32/);
    };
    for (const [extra, headers, param] of [
      [{ super_weights: { scale: 1e37 } }, {}, 'super_weights'],
      [{}, { 'X-Super-Weights': 'scale=1e37' }, 'X-Super-Weights'],
    ] as const) {
      await assertRefused(await post('/v1/completions', { max_tokens: 10, ...extra }, headers), param, param);
    }
    const streamed = await (await post('/v1/completions', { max_tokens: 10, super_weights: { scale: 1e37 }, stream: true })).text();
    assert.match(streamed, /"param":"super_weights"/);
    // In a comparison every state ends with it; the error names the state that overflowed.
    for (const states of [['on', { scale: 1e37 }], [{ scale: 1e37 }, 'off'], ['on', 'off', { scale: 1e37 }]]) {
      await assertRefused(await post('/v1/ablations/compare', { max_tokens: 4, states }), `states[${states.findIndex((s) => typeof s === 'object')}]`, JSON.stringify(states));
    }
    assertSameGeneration(await complete(server), before);
  });
});

interface Comparison {
  states: { super_weights: { mode: string }; tokens: string[]; token_ids: number[]; baseline_token_logprobs: number[]; kl_divergence: number[]; stop_word_mass: number[] }[];
}

/** A JSON POST to the test server, the model and prompt filled in. */
function post(path: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: server.modelId, prompt: PROMPT, ...body }),
  });
}

async function compare(body: Record<string, unknown>): Promise<Comparison> {
  const res = await post('/v1/ablations/compare', body);
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as Comparison;
}

function assertNear(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= DISTRIBUTION_TOLERANCE * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);
}


describe('POST /v1/ablations/compare', () => {
  it('returns both states, the baseline logprobs, KL per step and stop-word mass, as the reference forward pass computes them', async () => {
    const body = await compare({ max_tokens: 6 });
    const [on, off] = body.states;
    assert.deepEqual([on!.super_weights.mode, off!.super_weights.mode], ['original', 'ablated']);
    // The same baseline tokens scored by two plain forward passes that share no code with the engine:
    // the checkpoint as it is, and with the planted super weight zeroed.
    const promptIds = await tokenIds(PROMPT);
    const sequence = [...promptIds, ...on!.token_ids];
    const original = createReferenceModel(server.checkpoint).forward(sequence).logits;
    const zeroedRef = createReferenceModel(server.checkpoint, { downProjScale: [{ ...PLANTED, scale: 0 }] }).forward(sequence).logits;
    const stopIds = server.engine.info.stopWords.ids;
    assert.ok(stopIds.length > 0, 'the byte tokenizer has single-token stop words');
    on!.token_ids.forEach((id, k) => {
      const p = logSoftmax(original[promptIds.length - 1 + k]!);
      const q = logSoftmax(zeroedRef[promptIds.length - 1 + k]!);
      let kl = 0;
      for (let v = 0; v < p.length; v++) kl += Math.exp(p[v]!) * (p[v]! - q[v]!);
      const mass = (d: Float64Array): number => stopIds.reduce((m, i) => m + Math.exp(d[i]!), 0);
      assertNear(on!.baseline_token_logprobs[k]!, p[id]!, `on: logprob of baseline token ${k}`);
      assertNear(off!.baseline_token_logprobs[k]!, q[id]!, `off: logprob of baseline token ${k}`);
      assertNear(off!.kl_divergence[k]!, kl, `off: KL at step ${k}`);
      assertNear(on!.stop_word_mass[k]!, mass(p), `on: stop-word mass at step ${k}`);
      assertNear(off!.stop_word_mass[k]!, mass(q), `off: stop-word mass at step ${k}`);
    });
    assert.ok(off!.kl_divergence.some((k) => k > 1e-4), 'zeroing the planted weight moves the distribution');
    // The greedy baseline is what /v1/completions generates.
    const plain = await complete(server, { max_tokens: 6 });
    assert.deepEqual(on!.tokens, plain.choices[0]!.logprobs.tokens);
  });
});

/** The byte tokenizer of the test checkpoint: BOS then UTF-8 bytes. */
async function tokenIds(text: string): Promise<number[]> {
  return [server.checkpoint.bosId, ...Buffer.from(text)];
}
