// Runs an in-process EngineCore to completion and collects each sequence's events.
import { EngineCore, type EngineOptions } from '../../src/engine/engine-core.js';
import assert from 'node:assert/strict';
import type { EngineUpdate, GenerationRequest, SequenceEvent, StepStats } from '../../src/engine/protocol.js';

export interface CollectedSequence {
  tokens: number[];
  logprobs: number[];
  text: string;
  events: SequenceEvent[];
}

export interface EngineRunner {
  engine: EngineCore;
  stats: StepStats[];
  /** Every update in order: the step log (a step's update carries its stats and its events). */
  updates: EngineUpdate[];
  sequences: Map<string, CollectedSequence>;
  /** Steps until idle (or `maxSteps`). */
  drain(maxSteps?: number): Promise<number>;
  get(id: string): CollectedSequence;
}

export async function startEngine(options: Partial<EngineOptions> & Pick<EngineOptions, 'modelDir'>): Promise<EngineRunner> {
  const stats: StepStats[] = [];
  const updates: EngineUpdate[] = [];
  const sequences = new Map<string, CollectedSequence>();
  const engine = await EngineCore.load(
    { device: { kind: 'cpu' }, instrument: true, limits: { maxNumSeqs: 16, maxNumBatchedTokens: 4096 }, knownSuperWeights: [], ...options },
    (update) => {
      const { events, step } = update;
      updates.push(update);
      if (step) stats.push(step);
      for (const e of events) {
        let seq = sequences.get(e.id);
        if (!seq) sequences.set(e.id, (seq = { tokens: [], logprobs: [], text: '', events: [] }));
        seq.events.push(e);
        if (e.type === 'token') {
          seq.tokens.push(e.tokenId);
          seq.logprobs.push(e.logprob);
          seq.text += e.text;
        }
        if (e.type === 'finish') seq.text += e.text;
      }
    },
  );
  return {
    engine,
    stats,
    updates,
    sequences,
    async drain(maxSteps = Infinity) {
      let steps = 0;
      while (steps < maxSteps && (await engine.step())) steps++;
      return steps;
    },
    get(id) {
      const seq = sequences.get(id);
      if (!seq) throw new Error(`no events for ${id}`);
      return seq;
    },
  };
}

/**
 * Runs every request alone, then all of them again joining the running batch in waves (`waves[i]`
 * requests submitted, then up to `steps[i]` steps), and checks each batched sequence against its solo
 * run: the same tokens, log-probabilities within `tolerance`. Returns the solo results and the batched
 * run's decode steps.
 */
export async function assertBatchedEqualsSolo(
  runner: EngineRunner,
  requests: GenerationRequest[],
  waves: { requests: number; steps: number }[],
  tolerance: number,
): Promise<{ solo: Map<string, CollectedSequence>; decodeSteps: StepStats[] }> {
  const solo = new Map<string, CollectedSequence>();
  for (const r of requests) {
    runner.engine.submit({ ...r, id: `solo-${r.id}` });
    await runner.drain();
    solo.set(r.id, runner.get(`solo-${r.id}`));
  }
  const statsBefore = runner.stats.length;
  let next = 0;
  for (const wave of waves) {
    for (const r of requests.slice(next, next + wave.requests)) runner.engine.submit(r);
    next += wave.requests;
    await runner.drain(wave.steps);
  }
  for (const r of requests.slice(next)) runner.engine.submit(r);
  await runner.drain();
  for (const r of requests) {
    const batched = runner.get(r.id);
    const alone = solo.get(r.id)!;
    assert.deepEqual(batched.tokens, alone.tokens, `tokens of ${r.id}`);
    batched.logprobs.forEach((lp, i) => assert.ok(Math.abs(lp - alone.logprobs[i]!) < tolerance, `${r.id} logprob ${i}: ${lp} vs ${alone.logprobs[i]}`));
  }
  return { solo, decodeSteps: runner.stats.slice(statsBefore).filter((s) => s.phase === 'decode') };
}
