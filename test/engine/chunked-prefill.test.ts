// Chunked prefill on the real engine: a long prompt is prefilled over several steps, each within the
// token budget, while a running sequence gets a token in every one of them (read from the step log,
// not from timings); and chunking changes no result (tokens, logprobs, prompt logprobs).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generationRequest } from '../helpers/engine-harness.js';
import { startEngine, type EngineRunner } from '../helpers/engine-runner.js';
import { buildTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

// Two float32 runs that differ only in how the prompt was cut into steps.
const LOGPROB_TOLERANCE = 1e-5;
const BUDGET = 16;
const LONG_PROMPT = Array.from({ length: 150 }, (_, i) => 32 + ((i * 7) % 90));

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-chunked-'));
let chunked: EngineRunner;
let whole: EngineRunner;

before(async () => {
  const ckpt = buildTinyCheckpoint(path.join(root, 'm'), { arch: 'llama', numLayers: 2, numKvHeads: 2, maxPositionEmbeddings: 512, seed: 21 });
  chunked = await startEngine({ modelDir: ckpt.dir, limits: { maxNumSeqs: 4, maxNumBatchedTokens: BUDGET } });
  whole = await startEngine({ modelDir: ckpt.dir, limits: { maxNumSeqs: 4, maxNumBatchedTokens: 4096 } });
});
after(async () => {
  await chunked.engine.close();
  await whole.engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('chunked prefill', () => {
  it('prefills a long prompt over several steps while a running sequence decodes in every one', async () => {
    chunked.engine.submit(generationRequest({ id: 'running', prompt: { text: 'Summer is hot.' }, maxTokens: 40 }));
    await chunked.drain(2);
    const from = chunked.updates.length;
    chunked.engine.submit(generationRequest({ id: 'long', prompt: { tokenIds: LONG_PROMPT }, maxTokens: 4 }));
    await chunked.drain();
    const steps = chunked.updates.slice(from).filter((u) => u.step);
    const prefillSteps = steps.filter((u) => u.step!.prefillTokens > 0);
    assert.ok(prefillSteps.length >= Math.ceil(LONG_PROMPT.length / BUDGET), `the prompt took ${prefillSteps.length} steps`);
    for (const u of prefillSteps) {
      const s = u.step!;
      assert.ok(s.decodeRows + s.prefillTokens <= BUDGET, `a step computed ${s.decodeRows + s.prefillTokens} tokens`);
      assert.equal(u.events.filter((e) => e.id === 'running' && e.type === 'token').length, 1, 'the running sequence got its token in this step');
    }
    assert.equal(prefillSteps.reduce((a, u) => a + u.step!.prefillTokens, 0), LONG_PROMPT.length);
  });

  it('gives the same tokens, logprobs and prompt logprobs as one whole prefill', async () => {
    const request = generationRequest({ id: 'echo', prompt: { tokenIds: LONG_PROMPT }, maxTokens: 6, promptLogprobs: 2 });
    for (const runner of [chunked, whole]) {
      runner.engine.submit(request);
      await runner.drain();
    }
    const [a, b] = [chunked.get('echo'), whole.get('echo')];
    assert.deepEqual(a.tokens, b.tokens);
    a.logprobs.forEach((lp, i) => assert.ok(Math.abs(lp - b.logprobs[i]!) < LOGPROB_TOLERANCE));
    const prompt = (r: EngineRunner) => r.get('echo').events.find((e) => e.type === 'prompt');
    const [pa, pb] = [prompt(chunked), prompt(whole)];
    assert.ok(pa?.type === 'prompt' && pb?.type === 'prompt');
    assert.equal(pa.promptLogprobs!.length, LONG_PROMPT.length);
    pa.promptLogprobs!.forEach((entry, t) => {
      const other = pb.promptLogprobs![t];
      if (t === 0) return assert.equal(entry, null);
      assert.ok(Math.abs(entry!.logprob - other!.logprob) < LOGPROB_TOLERANCE, `position ${t}`);
      assert.deepEqual(entry!.top.map((x) => x.tokenId), other!.top.map((x) => x.tokenId));
    });
    // The chunked run really was chunked.
    assert.ok(chunked.stats.filter((s) => s.prefillTokens > 0).length > whole.stats.filter((s) => s.prefillTokens > 0).length);
  });
});
