// The bounded frame ring: FIFO order, drop-oldest when full, and its reports of drops.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { FrameRing } from '../../src/telemetry/frame-ring.js';

it('keeps the newest frames in order and reports each drop', () => {
  const ring = new FrameRing(3);
  assert.deepEqual(['a', 'b', 'c', 'd', 'e'].map((f) => ring.push(f)), [false, false, false, true, true]);
  assert.equal(ring.length, 3);
  assert.deepEqual([ring.shift(), ring.shift()], ['c', 'd']);
  assert.equal(ring.push('f'), false);
  assert.deepEqual([ring.shift(), ring.shift(), ring.shift()], ['e', 'f', undefined]);
  assert.equal(ring.length, 0);
});

it('counts the UTF-8 bytes it holds', () => {
  const ring = new FrameRing(2);
  ring.push('abc');
  ring.push('é');
  assert.equal(ring.bytes, 5);
  ring.push('xyzw'); // drops 'abc'
  assert.equal(ring.bytes, 6);
  ring.shift();
  ring.shift();
  assert.equal(ring.bytes, 0);
});

it('refuses a capacity that could not hold a frame', () => {
  for (const capacity of [0, -1, 1.5]) assert.throws(() => new FrameRing(capacity), /positive integer/);
});
