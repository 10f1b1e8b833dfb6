// Runs an in-process EngineCore to completion and collects each sequence's events.
import { EngineCore, type EngineOptions } from '../../src/engine/engine-core.js';
import type { EngineUpdate, SequenceEvent, StepStats } from '../../src/engine/protocol.js';

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
