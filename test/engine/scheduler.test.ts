// The scheduler's bookkeeping with fake sequences: no model, no onnxruntime.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Scheduler, type Schedulable } from '../../src/engine/scheduler.js';

const seq = (id: string, promptLength = 4): Schedulable => ({ id, promptLength, cancelled: false });

describe('Scheduler', () => {
  it('prefills waiting sequences, then decodes the running batch', () => {
    const s = new Scheduler({ maxBatch: 4, maxPrefillTokens: 100 });
    assert.equal(s.schedule().kind, 'idle');
    s.add(seq('a'));
    s.add(seq('b'));
    const first = s.schedule();
    assert.deepEqual(first.kind === 'prefill' && first.sequences.map((x) => x.id), ['a', 'b']);
    s.update(first, new Set());
    const second = s.schedule();
    assert.deepEqual(second.kind === 'decode' && second.sequences.map((x) => x.id), ['a', 'b']);
  });

  it('lets new sequences join between decode steps, up to the batch limit', () => {
    const s = new Scheduler({ maxBatch: 3, maxPrefillTokens: 100 });
    for (const id of ['a', 'b']) s.add(seq(id));
    s.update(s.schedule(), new Set());
    for (const id of ['c', 'd']) s.add(seq(id));
    const join = s.schedule();
    assert.deepEqual(join.kind === 'prefill' && join.sequences.map((x) => x.id), ['c']);
    s.update(join, new Set());
    assert.equal(s.schedule().kind, 'decode');
    assert.equal(s.waitingCount, 1);
  });

  it('bounds a prefill by padded tokens but always admits one', () => {
    const s = new Scheduler({ maxBatch: 8, maxPrefillTokens: 20 });
    s.add(seq('long', 50));
    s.add(seq('short', 2));
    const first = s.schedule();
    assert.deepEqual(first.kind === 'prefill' && first.sequences.map((x) => x.id), ['long']);
    s.update(first, new Set());
    s.add(seq('x', 9));
    const second = s.schedule();
    assert.deepEqual(second.kind === 'prefill' && second.sequences.map((x) => x.id), ['short', 'x']);
  });

  it('drops finished and cancelled sequences', () => {
    const s = new Scheduler({ maxBatch: 4, maxPrefillTokens: 100 });
    const a = seq('a');
    const b = seq('b');
    const c = seq('c');
    for (const x of [a, b, c]) s.add(x);
    const step = s.schedule();
    s.update(step, new Set(['a']));
    assert.equal(s.runningCount, 2);
    b.cancelled = true;
    assert.deepEqual(s.takeCancelled().map((x) => x.id), ['b']);
    const next = s.schedule();
    assert.deepEqual(next.kind === 'decode' && next.sequences.map((x) => x.id), ['c']);
    assert.equal(s.find('b'), undefined);
  });
});
