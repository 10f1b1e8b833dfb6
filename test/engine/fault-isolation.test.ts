// A fault outside session.run fails only the sequences it concerns: a request the engine cannot read
// is refused at submit, a sequence whose step output cannot be booked ends with an error, a sequence
// whose switch overflows float32 leaves nothing in the KV row the next one gets, a comparison that
// fails takes only its own states with it, and the engine (in-process and in its worker) keeps
// serving everyone else exactly.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EngineClient } from '../../src/engine/engine-client.js';
import type { GenerationRequest, SequenceEvent } from '../../src/engine/protocol.js';
import { switchPlan, type SwitchPlan } from '../../src/model/switch-plan.js';
import { generationRequest } from '../helpers/engine-harness.js';
import { startEngine, type EngineRunner } from '../helpers/engine-runner.js';
import { buildTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-faults-'));
let dir: string;
let runner: EngineRunner;

before(async () => {
  dir = buildTinyCheckpoint(path.join(root, 'm'), { arch: 'llama', numLayers: 2, seed: 4 }).dir;
  runner = await startEngine({ modelDir: dir });
});
after(async () => {
  await runner.engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

const good = (id: string): GenerationRequest => generationRequest({ id, prompt: { text: 'Summer is hot. Winter is' }, maxTokens: 8 });
// What a caller that bypasses the API could send across the worker boundary.
const unreadable = (id: string): GenerationRequest => ({ ...good(id), sampling: { ...good(id).sampling, logitBias: {} as unknown as Map<number, number> } });
const unbookable = (id: string): GenerationRequest => ({ ...good(id), stopTokenIds: null as unknown as number[] });

/**
 * Runs `body` on an engine over a checkpoint with a planted super weight; `overflow` scales it by 1e37:
 * the scaled weight is finite (2e38), the super activation it makes (about 30 times that) is not.
 */
async function withPlantedEngine(name: string, body: (local: EngineRunner, overflow: SwitchPlan) => Promise<void>): Promise<void> {
  const planted = buildTinyCheckpoint(path.join(root, name), { arch: 'llama', numLayers: 2, seed: 5, plantedSuperWeights: [{ layer: 0, row: 3, col: 5 }] });
  const sw = planted.plantedSuperWeights[0]!;
  const local = await startEngine({ modelDir: planted.dir, knownSuperWeights: [sw] });
  try {
    await body(local, switchPlan([{ ...sw, scale: 1e37 }]));
  } finally {
    await local.engine.close();
  }
}

/** State `index` of a two-state comparison `group`, on the good prompt. */
const member = (group: string, index: number, plan = switchPlan([])): GenerationRequest =>
  generationRequest({ ...good(`${group}-${index}`), switchPlan: plan, comparison: { group, index, size: 2, stopWordIds: [] } });

describe('fault isolation', () => {
  it('refuses a request it cannot read and serves the others', async () => {
    runner.engine.submit(good('before'));
    runner.engine.submit(unreadable('unreadable'));
    runner.engine.submit(good('after'));
    await runner.drain();
    const refused = runner.get('unreadable').events;
    assert.deepEqual(refused.map((e) => e.type), ['error']);
    assert.equal(refused[0]!.type === 'error' && refused[0]!.kind, 'engine_failure');
    assert.equal(runner.get('before').tokens.length, 8);
    assert.deepEqual(runner.get('after').tokens, runner.get('before').tokens);
  });

  it('fails only the sequence whose step output cannot be booked', async () => {
    runner.engine.submit(good('neighbour'));
    runner.engine.submit(unbookable('broken'));
    await runner.drain();
    const broken = runner.get('broken').events;
    assert.equal(broken[broken.length - 1]!.type, 'error');
    assert.ok(!broken.some((e) => e.type === 'token'), 'the failed step’s events for it are dropped');
    assert.deepEqual(runner.get('neighbour').tokens, runner.get('before').tokens);
    assert.equal(runner.engine.hasWork, false, 'nothing is left behind in the scheduler');
  });

  it('keeps the worker alive through both', async () => {
    const client = await EngineClient.start({ modelDir: dir, device: { kind: 'cpu' }, instrument: true, knownSuperWeights: [] });
    try {
      const collect = async (request: GenerationRequest): Promise<SequenceEvent[]> => {
        const events: SequenceEvent[] = [];
        for await (const e of client.generate(request)) events.push(e);
        return events;
      };
      const [bad, broken, fine] = await Promise.all([collect(unreadable('w-bad')), collect(unbookable('w-broken')), collect(good('w-good'))]);
      assert.equal(bad[bad.length - 1]!.type, 'error');
      assert.equal(broken[broken.length - 1]!.type, 'error');
      assert.deepEqual(fine.filter((e) => e.type === 'token').map((e) => (e.type === 'token' ? e.tokenId : -1)), runner.get('before').tokens);
      assert.equal(client.alive, true);
    } finally {
      await client.close();
    }
  });

  it('keeps a sequence whose switch overflows float32 out of the next sequence in its KV row', async () => {
    await withPlantedEngine('sw', async (local, plan) => {
      const overflow = generationRequest({ ...good('overflow'), switchPlan: plan });
      for (const request of [good('first'), overflow, good('second')]) {
        local.engine.submit(request);
        await local.drain();
      }
      const ended = local.get('overflow').events.at(-1)!;
      assert.ok(ended.type === 'error' && ended.kind === 'invalid_request' && ended.field === 'switch', `the overflowing sequence ends with a switch error: ${JSON.stringify(ended)}`);
      assert.match(ended.message, /overflowed float32/);
      assert.deepEqual(local.get('second').tokens, local.get('first').tokens);
      assert.deepEqual(local.get('second').logprobs, local.get('first').logprobs);
    });
  });

  // The API submits every state of a comparison at once, but the worker may run a step between two
  // submits: a state that fails or is cancelled in it must not leave the later states waiting forever.
  it('refuses the later states of a comparison whose first state failed or was cancelled before they arrived', async () => {
    await withPlantedEngine('cmp', async (local, overflow) => {
      local.engine.submit(member('failed', 0, overflow));
      await local.drain();
      local.engine.submit(member('cancelled', 0));
      await local.drain(1);
      local.engine.cancel('cancelled-0');
      await local.drain();
      for (const group of ['failed', 'cancelled']) {
        local.engine.submit(member(group, 1));
        await local.drain();
        const events = local.get(`${group}-1`).events;
        assert.deepEqual(events.map((e) => e.type), ['error'], `${group}: ${JSON.stringify(events)}`);
        assert.ok(events[0]!.type === 'error' && events[0]!.field === 'comparison', JSON.stringify(events[0]));
      }
      const echo = local.get('failed-1').events[0]!;
      assert.ok(echo.type === 'error' && /^state 0 failed: .*overflowed float32/.test(echo.message), JSON.stringify(echo));
      assert.equal(local.engine.hasWork, false, 'nothing is left waiting in the scheduler');
      // Once every state has been seen the group is forgotten: the same id starts afresh.
      local.engine.submit(member('failed', 0));
      local.engine.submit(member('failed', 1));
      await local.drain();
      for (const index of [0, 1]) assert.equal(local.get(`failed-${index}`).events.at(-1)!.type, 'finish', `state ${index} of the new comparison`);
    });
  });

  // In one step: state 0 computes the prompt two other requests share (they copy its cache), then
  // state 1 overflows and takes state 0 with it. The copies have their prompt and run on; before, they
  // were queued again with a cache row, and the second copied the first's, which has one already.
  it('keeps the sequences that copied a failing comparison member’s prompt in the same step, and voids what it booked for the member', async () => {
    await withPlantedEngine('shared', async (local, overflow) => {
      local.engine.submit(good('solo'));
      await local.drain();
      for (const request of [member('cmp', 0), member('cmp', 1, overflow), good('copy-a'), good('copy-b')]) local.engine.submit(request);
      await local.drain();
      for (const id of ['copy-a', 'copy-b']) {
        const events = local.get(id).events;
        assert.equal(events.at(-1)!.type, 'finish', `${id}: ${JSON.stringify(events.at(-1))}`);
        assert.deepEqual(local.get(id).tokens, local.get('solo').tokens, id);
      }
      const state0 = local.get('cmp-0').events;
      assert.ok(state0.at(-1)!.type === 'error', `state 0 ends with its group's error: ${JSON.stringify(state0.at(-1))}`);
      assert.ok(!state0.some((e) => e.type === 'token'), 'the token booked for state 0 before its group failed is not sent');
      assert.equal(local.engine.hasWork, false, 'nothing is left in the scheduler');
    });
  });

  // A submit is handled while a step awaits session.run: one refusing a comparison ends the state
  // that step is computing, and the step must not bring it back when it books its output.
  it('does not book a comparison state that a submit refused its group while the step ran', async () => {
    await withPlantedEngine('refused-mid-step', async (local, overflow) => {
      const unrepresentable = switchPlan(overflow.entries.map((e) => ({ ...e, scale: 1e39 })));
      local.engine.submit({ ...member('mid', 0), maxTokens: 1 });
      const step = local.engine.step();
      local.engine.submit(member('mid', 1, unrepresentable));
      await step;
      await local.drain();
      const state0 = local.get('mid-0').events;
      assert.equal(state0.at(-1)!.type, 'error', JSON.stringify(state0));
      assert.ok(!state0.some((e) => e.type === 'token'), 'no token booked after the refusal');
      assert.equal(local.engine.hasWork, false, 'the refused state is not held');
    });
  });
});
