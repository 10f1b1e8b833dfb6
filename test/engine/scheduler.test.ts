// The scheduler's bookkeeping with fake sequences: no model, no onnxruntime. Each test drives
// schedule() / update() as the engine does and checks the step log.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Scheduler, type Schedulable, type ScheduledStep, type SchedulerLimits } from '../../src/engine/scheduler.js';

interface Fake extends Schedulable {
  prompt: string;
  /** Tokens it still generates after its prompt. */
  decodes: number;
}

const seq = (id: string, promptLength: number, decodes = 100, options: Partial<Pick<Fake, 'chunkLimit' | 'width' | 'prompt'>> = {}): Fake => ({
  id,
  promptLength,
  computed: 0,
  cancelled: false,
  width: options.width ?? 1,
  chunkLimit: options.chunkLimit ?? Infinity,
  prompt: options.prompt ?? id,
  decodes,
  canFollow(leader) {
    return (leader as Fake).prompt === this.prompt;
  },
});

interface LoggedStep {
  decode: string[];
  prefill: [string, number][];
}

/** Runs `steps` steps, finishing sequences once their decodes are spent; returns the step log. */
function drive(s: Scheduler<Fake>, steps: number, arrivals: Map<number, Fake[]> = new Map()): LoggedStep[] {
  const log: LoggedStep[] = [];
  for (let i = 0; i < steps; i++) {
    for (const f of arrivals.get(i) ?? []) s.add(f);
    const step = s.schedule();
    log.push({ decode: step.decode.map((f) => f.id), prefill: step.prefill.map((c) => [c.sequence.id, c.tokens]) });
    s.update(step, finishedBy(s, step));
  }
  return log;
}

function finishedBy(s: Scheduler<Fake>, step: ScheduledStep<Fake>): Set<string> {
  const done = new Set<string>();
  const sample = (f: Fake): void => {
    f.decodes--;
    if (f.decodes <= 0) done.add(f.id);
  };
  for (const f of step.decode) sample(f);
  for (const { sequence, tokens } of step.prefill) {
    if (sequence.computed + tokens < sequence.promptLength) continue;
    sample(sequence);
    for (const follower of s.followersOf(sequence.id)) sample(follower as Fake);
  }
  return done;
}

const limits = (maxNumSeqs: number, maxNumBatchedTokens: number): SchedulerLimits => ({ maxNumSeqs, maxNumBatchedTokens });

describe('Scheduler', () => {
  it('decodes first and gives the rest of the budget to prompt chunks', () => {
    const s = new Scheduler<Fake>(limits(8, 16));
    const log = drive(s, 3, new Map([[0, [seq('a', 4), seq('b', 30)]]]));
    assert.deepEqual(log[0], { decode: [], prefill: [['a', 4], ['b', 12]] });
    assert.deepEqual(log[1], { decode: ['a'], prefill: [['b', 15]] });
    assert.deepEqual(log[2], { decode: ['a'], prefill: [['b', 3]] });
  });

  it('chunked prefill: a long prompt never delays a running decode by more than one chunk step', () => {
    const budget = 32;
    const s = new Scheduler<Fake>(limits(8, budget));
    const arrivals = new Map([
      [0, [seq('running', 3)]],
      [2, [seq('long', 500, 5)]],
      [5, [seq('late', 2)]],
    ]);
    const log = drive(s, 30, arrivals);
    const longSteps = log.filter((step) => step.prefill.some(([id]) => id === 'long'));
    assert.ok(longSteps.length >= 500 / budget, `the long prompt took ${longSteps.length} steps`);
    for (const step of log.slice(1)) {
      // The running sequence decodes in every step after its prefill ...
      assert.ok(step.decode.includes('running'), JSON.stringify(step));
      // ... and every step computes at most one budget of tokens.
      assert.ok(step.decode.length + step.prefill.reduce((a, [, n]) => a + n, 0) <= budget, JSON.stringify(step));
    }
    // A sequence arriving behind the long prompt waits for it (first come, first served) ...
    const lateStart = log.findIndex((step) => step.prefill.some(([id]) => id === 'late'));
    const longEnd = log.length - 1 - [...log].reverse().findIndex((step) => step.prefill.some(([id]) => id === 'long'));
    assert.ok(lateStart >= longEnd, `late started at ${lateStart}, long ended at ${longEnd}`);
    // ... but shares the step where the long prompt's last chunk leaves budget over.
    assert.ok(lateStart <= longEnd + 1);
  });

  it('bounds the sequences holding rows by maxNumSeqs', () => {
    const s = new Scheduler<Fake>(limits(2, 64));
    const log = drive(s, 4, new Map([[0, [seq('a', 2, 2), seq('b', 2, 3), seq('c', 2)]]]));
    assert.deepEqual(log[0]!.prefill.map(([id]) => id), ['a', 'b']);
    assert.deepEqual(log[1]!.decode, ['a', 'b']);
    // a finished after its second token, so c joins.
    assert.deepEqual(log[2], { decode: ['b'], prefill: [['c', 2]] });
  });

  it('caps a chunk at the sequence chunk limit and charges a lockstep group per row', () => {
    const s = new Scheduler<Fake>(limits(8, 40));
    const log = drive(s, 2, new Map([[0, [seq('scored', 100, 1, { chunkLimit: 8 }), seq('group', 30, 1, { width: 4 })]]]));
    assert.deepEqual(log[0]!.prefill, [
      ['scored', 8],
      ['group', 8],
    ]);
  });

  it('prefills a shared prompt once; the followers join when it completes', () => {
    const s = new Scheduler<Fake>(limits(8, 10));
    const same = { prompt: 'shared' };
    const log = drive(s, 1, new Map([[0, [seq('n0', 15, 5, same), seq('n1', 15, 5, same), seq('n2', 15, 5, same), seq('other', 3)]]]));
    assert.deepEqual(log[0]!.prefill, [['n0', 10]]);
    assert.equal(s.waitingCount, 3, 'two followers and the other prompt wait');
    log.push(...drive(s, 2));
    assert.deepEqual(log[1]!.prefill, [
      ['n0', 5],
      ['other', 3],
    ]);
    assert.deepEqual(log[2]!.decode, ['n0', 'other', 'n1', 'n2']);
  });

  it('gives a cancelled leader’s followers back to the queue, and drops cancelled sequences', () => {
    const s = new Scheduler<Fake>(limits(8, 10));
    const leader = seq('lead', 20, 5, { prompt: 'p' });
    const follower = seq('follow', 20, 5, { prompt: 'p' });
    s.add(leader);
    s.add(follower);
    s.update(s.schedule(), new Set());
    leader.cancelled = true;
    assert.deepEqual(s.takeCancelled().map((f) => f.id), ['lead']);
    const next = s.schedule();
    assert.deepEqual(next.prefill.map((c) => [c.sequence.id, c.tokens]), [['follow', 10]]);
    assert.equal(s.find('lead'), undefined);
  });

  it('runs the followers that already copied a leader’s prompt when the leader leaves in that step', () => {
    const s = new Scheduler<Fake>(limits(8, 64));
    const [leader, copied, waiting] = [seq('lead', 10, 5, { prompt: 'p' }), seq('copied', 10, 5, { prompt: 'p' }), seq('waiting', 10, 5, { prompt: 'p' })];
    for (const q of [leader, copied, waiting]) s.add(q);
    const step = s.schedule();
    assert.deepEqual(step.prefill.map((c) => c.sequence.id), ['lead']);
    // The booking copied the prompt to one follower, then the leader failed (its comparison did).
    copied.computed = copied.promptLength;
    s.remove('lead');
    const next = s.schedule();
    assert.deepEqual(next.decode.map((q) => q.id), ['copied']);
    assert.deepEqual(next.prefill.map((c) => [c.sequence.id, c.tokens]), [['waiting', 10]]);
  });

  it('holds finished rows until resumed as one lockstep sequence', () => {
    const s = new Scheduler<Fake>(limits(3, 16));
    const [a, b] = [seq('a', 2, 1), seq('b', 2, 1)];
    s.add(a);
    s.add(b);
    const first = s.schedule();
    s.update(first, new Set());
    s.hold(a);
    s.hold(b);
    assert.equal(s.runningCount, 2);
    s.add(seq('c', 2));
    s.add(seq('d', 2));
    assert.deepEqual(s.schedule().prefill.map((c) => c.sequence.id), ['c'], 'held rows still count toward maxNumSeqs');
    const group = seq('scoring', 4, 1, { width: 2 });
    s.resume(group, ['a', 'b']);
    assert.equal(s.runningCount, 3);
  });

  it('caps the prompt tokens of a step that carries decodes, and of none that does not', () => {
    const s = new Scheduler<Fake>({ maxNumSeqs: 8, maxNumBatchedTokens: 64, maxPrefillTokensWhileDecoding: 4 });
    const log = drive(s, 3, new Map([[0, [seq('first', 100)]], [1, [seq('second', 100)]]]));
    // Nothing decodes yet: the whole budget.
    assert.deepEqual(log[0]!.prefill, [['first', 64]]);
    assert.deepEqual(log[1]!.prefill, [
      ['first', 36],
      ['second', 28],
    ]);
    // first decodes now: second trickles in.
    assert.deepEqual(log[2], { decode: ['first'], prefill: [['second', 4]] });
    const wide = new Scheduler<Fake>({ maxNumSeqs: 8, maxNumBatchedTokens: 64, maxPrefillTokensWhileDecoding: 2 });
    const lockstep = seq('lockstep', 10, 1, { width: 4 });
    const steps = drive(wide, 3, new Map([[0, [seq('decoding', 1)]], [1, [lockstep]]]));
    assert.deepEqual(steps[1]!.prefill, [['lockstep', 1]], 'a group wider than the cap still advances a token a row');
  });

  it('refuses a budget smaller than the batch', () => {
    assert.throws(() => new Scheduler<Fake>(limits(16, 8)), /at least maxNumSeqs/);
  });
});
