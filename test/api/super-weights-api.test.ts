// The super-weight switch over HTTP: "off" equals the checkpoint zeroed on disk, mixed requests share
// batches and still match their solo results, and the A/B comparison endpoint.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PLANTED, startTestServer, type TestServer } from '../helpers/test-server.js';
import { scaleWeightOnDisk } from '../helpers/tiny-checkpoint.js';

const LOGPROB_TOLERANCE = 1e-4;
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
    // Long enough that every request is still decoding when the last one arrives, even on a loaded
    // machine (10 tokens of the tiny model take a few milliseconds).
    const long = { max_tokens: 200, ignore_eos: true };
    const variants: Record<string, unknown>[] = [
      { ...long },
      { ...long, super_weights: 'off' },
      { ...long, super_weights: { scale: 2 } },
      { ...long, super_weights: { scale: 0, restore_activation: true } },
      { ...long, super_weights: { scale: 0, select: ['2:3:4'] } },
    ];
    const solo: Completion[] = [];
    for (const v of variants) solo.push(await complete(server, v));
    const steps: { batchSize: number; switchedRows: number }[] = [];
    const off = server.engine.onUpdate((u) => u.step?.phase === 'decode' && steps.push(u.step));
    const together = await Promise.all(variants.map((v) => complete(server, v)));
    off();
    together.forEach((r, i) => assertSameGeneration(r, solo[i]!));
    assert.ok(steps.some((s) => s.batchSize >= 4 && s.switchedRows > 0 && s.switchedRows < s.batchSize), JSON.stringify(steps.slice(0, 5)));
    assert.equal(together[3]!.super_weights.restore_activation, true);
  });
});

describe('POST /v1/ablations/compare', () => {
  it('returns both states, the baseline logprobs, KL per step and stop-word mass', async () => {
    const res = await fetch(`${server.url}/v1/ablations/compare`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: server.modelId, prompt: PROMPT, max_tokens: 6 }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      states: { super_weights: { mode: string }; token_ids: number[]; baseline_token_logprobs: number[]; kl_divergence: number[]; stop_word_mass: number[] }[];
    };
    const [on, off] = body.states;
    assert.deepEqual([on!.super_weights.mode, off!.super_weights.mode], ['original', 'ablated']);
    // The baseline scored under its own state: KL 0 and its own sampled logprobs.
    assert.ok(on!.kl_divergence.every((k) => Math.abs(k) < 1e-6));
    const plain = await complete(server, { max_tokens: 6 });
    on!.baseline_token_logprobs.forEach((lp, i) => assert.ok(Math.abs(lp - plain.choices[0]!.logprobs.token_logprobs[i]!) < LOGPROB_TOLERANCE));
    // Under "off" the same tokens are scored by the zeroed model: compare with the on-disk checkpoint.
    const reference = await fetch(`${zeroed.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: zeroed.modelId, prompt: [[...(await tokenIds(PROMPT)), ...on!.token_ids]], max_tokens: 0, echo: true, logprobs: 0 }),
    }).then((r) => r.json() as Promise<Completion>);
    const scored = reference.choices[0]!.logprobs.token_logprobs.slice(-on!.token_ids.length);
    off!.baseline_token_logprobs.forEach((lp, i) => assert.ok(Math.abs(lp - scored[i]!) < LOGPROB_TOLERANCE, `step ${i}`));
    assert.ok(off!.kl_divergence.some((k) => k > 1e-4));
    assert.equal(off!.stop_word_mass.length, 6);
  });
});

/** The byte tokenizer of the test checkpoint: BOS then UTF-8 bytes. */
async function tokenIds(text: string): Promise<number[]> {
  return [server.checkpoint.bosId, ...Buffer.from(text)];
}
