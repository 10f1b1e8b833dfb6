// Continuous batching: sequences with different prompts and switch states, joining mid-way, give
// exactly what each gives alone.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { GenerationRequest } from '../../src/engine/protocol.js';
import { scaledPlan, switchPlan, type SwitchPlan } from '../../src/model/switch-plan.js';
import { generationRequest } from '../helpers/engine-harness.js';
import { assertBatchedEqualsSolo, startEngine, type EngineRunner } from '../helpers/engine-runner.js';
import { buildTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const LOGPROB_TOLERANCE = 1e-4;
const SW = { layer: 1, row: 7, col: 33 };
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-batch-'));
let runner: EngineRunner;

before(async () => {
  const ckpt = buildTinyCheckpoint(path.join(root, 'm'), { arch: 'llama', numLayers: 3, numKvHeads: 2, seed: 7, plantedSuperWeights: [SW] });
  runner = await startEngine({ modelDir: ckpt.dir, knownSuperWeights: [SW] });
});
after(async () => {
  await runner.engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

const plan = (scale: number, restoreActivation = false): SwitchPlan => scaledPlan([SW], scale, restoreActivation);

const REQUESTS: GenerationRequest[] = [
  generationRequest({ id: 'a', prompt: { text: 'Summer is hot. Winter is' }, maxTokens: 12 }),
  generationRequest({ id: 'b', prompt: { text: 'Hi' }, maxTokens: 9, switchPlan: plan(0) }),
  generationRequest({ id: 'c', prompt: { text: 'The quick brown fox jumps' }, maxTokens: 10, switchPlan: plan(2) }),
  generationRequest({ id: 'd', prompt: { text: 'Apple Inc. is a worldwide tech company.' }, maxTokens: 7, switchPlan: plan(0, true) }),
  generationRequest({ id: 'e', prompt: { text: 'x' }, maxTokens: 11, switchPlan: plan(0.5) }),
  generationRequest({ id: 'f', prompt: { text: 'Zeroing it moved perplexity' }, maxTokens: 6 }),
];

describe('continuous batching', () => {
  it('gives every sequence its solo tokens and logprobs, with joins mid-way', async () => {
    const { solo, decodeSteps } = await assertBatchedEqualsSolo(runner, REQUESTS, [{ requests: 3, steps: 3 }, { requests: 2, steps: 2 }], LOGPROB_TOLERANCE);
    assert.ok(Math.max(...decodeSteps.map((s) => s.batchSize)) >= 5, 'sequences shared decode steps');
    assert.ok(decodeSteps.some((s) => s.switchedRows > 0 && s.switchedRows < s.batchSize), 'mixed switch states shared a step');
    // The switch really changed tokens somewhere, so equality above is not trivial.
    assert.notDeepEqual(solo.get('a')!.tokens.slice(0, 9), solo.get('b')!.tokens);
  });

  it('cancels a running sequence at the next step and keeps the others exact', async () => {
    runner.engine.submit(generationRequest({ id: 'keep', prompt: { text: 'Summer is hot. Winter is' }, maxTokens: 12 }));
    runner.engine.submit(generationRequest({ id: 'drop', prompt: { text: 'Hi' }, maxTokens: 50 }));
    await runner.drain(3);
    runner.engine.cancel('drop');
    await runner.drain();
    const dropped = runner.get('drop');
    const finish = dropped.events.find((e) => e.type === 'finish');
    assert.equal(finish?.type === 'finish' && finish.reason, 'abort');
    assert.equal(dropped.tokens.length, 3);
    assert.deepEqual(runner.get('keep').tokens, runner.get('a').tokens);
  });

  it('reproduces sampled output for the same seed and differs for another', async () => {
    const sampling = { ...REQUESTS[0]!.sampling, temperature: 1, topP: 0.9, seed: 1234 };
    runner.engine.submit(generationRequest({ id: 's1', prompt: { text: 'Winter' }, maxTokens: 16, sampling }));
    runner.engine.submit(generationRequest({ id: 's2', prompt: { text: 'Winter' }, maxTokens: 16, sampling }));
    runner.engine.submit(generationRequest({ id: 's3', prompt: { text: 'Winter' }, maxTokens: 16, sampling: { ...sampling, seed: 99 } }));
    await runner.drain();
    assert.deepEqual(runner.get('s1').tokens, runner.get('s2').tokens);
    assert.notDeepEqual(runner.get('s1').tokens, runner.get('s3').tokens);
  });

  it('stops at a stop string without showing it, and at the context length', async () => {
    const base = runner.get('a');
    const stop = base.text.slice(3, 5);
    runner.engine.submit(generationRequest({ id: 'stop', prompt: { text: 'Summer is hot. Winter is' }, maxTokens: 12, stop: [stop] }));
    await runner.drain();
    const stopped = runner.get('stop');
    assert.equal(stopped.text, base.text.slice(0, base.text.indexOf(stop)));
    const finish = stopped.events.find((e) => e.type === 'finish');
    assert.deepEqual(finish?.type === 'finish' && [finish.reason, finish.stopString], ['stop', stop]);

    const contextLength = runner.engine.info.contextLength;
    runner.engine.submit(generationRequest({ id: 'long', prompt: { tokenIds: Array(contextLength - 3).fill(65) }, maxTokens: null }));
    await runner.drain();
    const long = runner.get('long');
    const end = long.events.find((e) => e.type === 'finish');
    assert.deepEqual(end?.type === 'finish' && [end.reason, end.completionTokens], ['length', 3]);
  });

  it('stops at a stop token id, but not before min_tokens', async () => {
    const first = runner.get('a').tokens[0]!;
    runner.engine.submit(generationRequest({ id: 'stop-id', prompt: { text: 'Summer is hot. Winter is' }, maxTokens: 12, stopTokenIds: [first] }));
    runner.engine.submit(generationRequest({ id: 'min-tokens', prompt: { text: 'Summer is hot. Winter is' }, maxTokens: 12, stopTokenIds: [first], minTokens: 3 }));
    await runner.drain();
    assert.deepEqual(runner.get('stop-id').tokens, [first]);
    const held = runner.get('min-tokens').tokens;
    assert.ok(held.length >= 3);
    assert.ok(!held.slice(0, 3).includes(first), 'the stop token is banned until min_tokens');
  });

  it('refuses bad requests with a message and keeps serving', async () => {
    const cases: [GenerationRequest, RegExp][] = [
      [generationRequest({ id: 'bad-token', prompt: { tokenIds: [1, 99999] } }), /outside the vocabulary/],
      [generationRequest({ id: 'too-long', prompt: { tokenIds: Array(runner.engine.info.contextLength).fill(1) } }), /context length/],
      [generationRequest({ id: 'bad-layer', prompt: { text: 'x' }, switchPlan: switchPlan([{ layer: 9, row: 0, col: 0, scale: 0 }]) }), /9:0:0.*layer 9/],
      [generationRequest({ id: 'bad-row', prompt: { text: 'x' }, switchPlan: switchPlan([{ layer: 0, row: 64, col: 0, scale: 0 }]) }), /row 64/],
      [generationRequest({ id: 'bad-scale', prompt: { text: 'x' }, switchPlan: switchPlan([{ layer: 0, row: 0, col: 0, scale: Infinity }]) }), /finite/],
      [generationRequest({ id: 'empty', prompt: { tokenIds: [] } }), /empty/],
    ];
    for (const [request, message] of cases) {
      runner.engine.submit(request);
      const error = runner.get(request.id).events[0]!;
      assert.equal(runner.get(request.id).events.length, 1);
      assert.equal(error.type, 'error');
      assert.match(error.type === 'error' ? error.message : '', message);
    }
    runner.engine.submit(generationRequest({ id: 'after-errors', prompt: { text: 'Summer is hot. Winter is' }, maxTokens: 12 }));
    await runner.drain();
    assert.deepEqual(runner.get('after-errors').tokens, runner.get('a').tokens);
  });
});
