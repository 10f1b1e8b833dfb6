// Shared prefixes on the real engine. n choices of one prompt are prefilled once and each choice
// continues from a copy of that cache; an A/B comparison scores the baseline's tokens on each state's
// own cached prompt. Both must give what computing everything separately gives, within 1e-5.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { GenerationRequest, SequenceEvent } from '../../src/engine/protocol.js';
import { ORIGINAL_SWITCH, scaledPlan, type SwitchPlan } from '../../src/model/switch-plan.js';
import { generationRequest, openHarness, type HarnessSession } from '../helpers/engine-harness.js';
import { startEngine, type EngineRunner } from '../helpers/engine-runner.js';
import { buildTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

// Float32 results of the same computation along two paths (shared cache or not).
const TOLERANCE = 1e-5;
const SW = { layer: 1, row: 7, col: 33 };
const STOP_IDS = [32, 101, 116];

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-prefix-'));
let runner: EngineRunner;
let harness: HarnessSession;

before(async () => {
  const ckpt = buildTinyCheckpoint(path.join(root, 'm'), { arch: 'llama', numLayers: 3, numKvHeads: 2, seed: 9, plantedSuperWeights: [SW] });
  runner = await startEngine({ modelDir: ckpt.dir, knownSuperWeights: [SW] });
  harness = await openHarness(ckpt.dir);
});
after(async () => {
  await runner.engine.close();
  await harness.release();
  fs.rmSync(root, { recursive: true, force: true });
});

const PROMPT = 'Summer is hot. Winter is';
const sampled = (id: string, streamIndex: number): GenerationRequest =>
  generationRequest({ id, prompt: { text: PROMPT }, maxTokens: 10, streamIndex, promptLogprobs: 1, sampling: { ...generationRequest({ id, prompt: { text: '' } }).sampling, temperature: 1, seed: 7, logprobs: 2 } });

const prefillTokens = (from: number): number => runner.stats.slice(from).reduce((a, s) => a + s.prefillTokens, 0);

describe('prefix sharing', () => {
  it('prefills n choices of one prompt once, each choice as if alone', async () => {
    // One at a time, they share nothing.
    for (const j of [0, 1, 2]) {
      runner.engine.submit(sampled(`solo-${j}`, j));
      await runner.drain();
    }
    const from = runner.stats.length;
    for (const j of [0, 1, 2]) runner.engine.submit(sampled(`shared-${j}`, j));
    await runner.drain();
    const accepted = runner.get('shared-0').events.find((e) => e.type === 'accepted')!;
    assert.equal(prefillTokens(from), accepted.type === 'accepted' ? accepted.promptTokens : -1, 'the prompt was computed once');
    const solo = [0, 1, 2].map((j) => runner.get(`solo-${j}`));
    [0, 1, 2].forEach((j) => {
      const shared = runner.get(`shared-${j}`);
      assert.deepEqual(shared.tokens, solo[j]!.tokens, `choice ${j}`);
      shared.logprobs.forEach((lp, i) => assert.ok(Math.abs(lp - solo[j]!.logprobs[i]!) < TOLERANCE, `choice ${j} token ${i}`));
      const [mine, theirs] = [promptLogprobs(shared.events), promptLogprobs(solo[j]!.events)];
      assert.equal(mine.length, theirs.length);
      mine.forEach((lp, t) => assert.ok(Math.abs(lp - theirs[t]!) < TOLERANCE, `choice ${j} prompt position ${t}`));
    });
    assert.notDeepEqual(runner.get('shared-0').tokens, runner.get('shared-1').tokens, 'the choices sample their own streams');
  });

  it('scores a comparison on each state’s cached prompt, equal to scoring from scratch', async () => {
    const states: SwitchPlan[] = [ORIGINAL_SWITCH, scaledPlan([SW], 0), scaledPlan([SW], 2), scaledPlan([SW], 0)];
    const from = runner.stats.length;
    states.forEach((plan, index) =>
      runner.engine.submit(generationRequest({ id: `cmp-${index}`, prompt: { text: PROMPT }, maxTokens: 8, switchPlan: plan, comparison: { group: 'cmp', index, size: states.length, stopWordIds: STOP_IDS } })),
    );
    await runner.drain();
    const finishes = states.map((_, i) => runner.get(`cmp-${i}`).events.find((e) => e.type === 'finish'));
    const scores = finishes.map((f) => (f?.type === 'finish' ? f.comparison! : assert.fail('no finish')));
    const promptIds = (runner.get('cmp-0').events.find((e) => e.type === 'prompt') as Extract<SequenceEvent, { type: 'prompt' }>).promptIds;
    const baseline = runner.get('cmp-0').tokens;
    assert.equal(scores[0]!.baselineTokenLogprobs.length, baseline.length);
    // Three distinct plans prefill the prompt once each; then every state scores the baseline's tokens.
    assert.equal(prefillTokens(from), promptIds.length * 3 + baseline.length * states.length);

    // The same numbers from scratch: the whole prompt + baseline under each plan, logits at every position.
    const fed = [...promptIds, ...baseline.slice(0, -1)];
    const logSoftmax = (row: Float32Array): Float64Array => {
      const max = Math.max(...row);
      const norm = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
      return Float64Array.from(row, (v) => v - norm);
    };
    const reference: Float64Array[][] = [];
    for (const plan of states) reference.push((await harness.run(fed, [], { plan, known: [SW] })).prefill.slice(promptIds.length - 1).map(logSoftmax));
    states.forEach((_, i) => {
      baseline.forEach((token, k) => {
        const p = reference[0]![k]!;
        const q = reference[i]![k]!;
        let kl = 0;
        for (let v = 0; v < p.length; v++) kl += Math.exp(p[v]!) * (p[v]! - q[v]!);
        const mass = STOP_IDS.reduce((a, id) => a + Math.exp(q[id]!), 0);
        assert.ok(Math.abs(scores[i]!.baselineTokenLogprobs[k]! - q[token]!) < TOLERANCE, `state ${i} token ${k} logprob`);
        assert.ok(Math.abs(scores[i]!.klDivergence[k]! - kl) < TOLERANCE, `state ${i} token ${k} KL ${scores[i]!.klDivergence[k]} vs ${kl}`);
        assert.ok(Math.abs(scores[i]!.stopWordMass[k]! - mass) < TOLERANCE, `state ${i} token ${k} stop-word mass`);
      });
    });
    assert.ok(scores[1]!.klDivergence.some((kl) => kl > 1e-3), 'zeroing the super weight changes the distributions');
    assert.deepEqual(scores[3], scores[1], 'equal states score equally');
  });
});

function promptLogprobs(events: SequenceEvent[]): number[] {
  const prompt = events.find((e) => e.type === 'prompt');
  return prompt?.type === 'prompt' ? prompt.promptLogprobs!.slice(1).map((p) => p!.logprob) : [];
}
