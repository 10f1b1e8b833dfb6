// The KV cache contract, as a suite every implementation must pass: a sequence's positions keep their
// values through writes, arrangements (joins and leaves), forks, truncation and growth, and an
// arrangement moves only the rows that must change place.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HostKvCache, MIN_SLOTS, type KvCache, type KvGeometry } from '../../src/engine/kv-cache.js';
import type { KvData, LayerKv } from '../../src/engine/session.js';

const GEOMETRY: KvGeometry = { numLayers: 2, kvHeads: 2, headDim: 3, elements: 'float32' };

/** A value that encodes where it came from (sequence, position, layer, key/value, head, element), exact in float32. */
const tag = (seq: number, position: number, layer: number, kind: number, head: number, d: number): number =>
  ((((seq * 256 + position) * 2 + layer) * 2 + kind) * 2 + head) * 4 + d;

/** The graph's present output for tokens (sequence number, position), flat [N, kvH, D] per layer. */
function present(tokens: [number, number][]): LayerKv[] {
  const { numLayers, kvHeads, headDim } = GEOMETRY;
  return Array.from({ length: numLayers }, (_, l) => {
    const make = (kind: number): Float32Array => {
      const data = new Float32Array(tokens.length * kvHeads * headDim);
      tokens.forEach(([seq, p], i) => {
        for (let h = 0; h < kvHeads; h++) for (let d = 0; d < headDim; d++) data[(i * kvHeads + h) * headDim + d] = tag(seq, p, l, kind, h, d);
      });
      return data;
    };
    return { key: make(0), value: make(1) };
  });
}

function write(cache: KvCache, tokens: [number, number][]): void {
  cache.write(present(tokens), tokens.map(([seq]) => String(seq)), Int32Array.from(tokens, ([, p]) => p));
}

/** Writes positions [from, length) of `seq`, arranging first as the engine does (room for the new slots). */
function prefill(cache: KvCache, seq: number, length: number, from = 0): void {
  if (!cache.has(String(seq))) cache.open(String(seq));
  cache.arrange([[String(seq)], []], length);
  write(cache, Array.from({ length: length - from }, (_, i) => [seq, from + i]));
}

/** `seq`'s whole row (every slot, the keys and values of every layer) in the views `arrange(groups)` returns. */
function rowData(cache: KvCache, groups: string[][], seq: string): KvData[] {
  const { order, views } = cache.arrange(groups, 8);
  const g = order.findIndex((ids) => ids.includes(seq));
  const row = order[g]!.indexOf(seq);
  const stride = GEOMETRY.kvHeads * cache.slots * GEOMETRY.headDim;
  return views[g]!.flatMap((l) => [l.key, l.value].map((data) => data.subarray(row * stride, (row + 1) * stride)));
}

/** Checks, through the views `arrange` returns, that `seq` holds its own tagged values at positions [0, length). */
function assertHolds(cache: KvCache, groups: string[][], seq: number, length: number, expectSeq = seq): void {
  const { order, views } = cache.arrange(groups, length);
  const g = order.findIndex((ids) => ids.includes(String(seq)));
  const row = order[g]!.indexOf(String(seq));
  const { kvHeads, headDim } = GEOMETRY;
  assert.equal(cache.length(String(seq)), length, `length of ${seq}`);
  views[g]!.forEach((layer, l) => {
    for (let p = 0; p < length; p++) {
      for (let h = 0; h < kvHeads; h++) {
        for (let d = 0; d < headDim; d++) {
          const at = ((row * kvHeads + h) * cache.slots + p) * headDim + d;
          assert.equal(layer.key[at], tag(expectSeq, p, l, 0, h, d), `key of ${seq} at ${p}`);
          assert.equal(layer.value[at], tag(expectSeq, p, l, 1, h, d), `value of ${seq} at ${p}`);
        }
      }
    }
  });
}

export function kvCacheContract(name: string, create: (geometry: KvGeometry) => KvCache): void {
  describe(`${name}: the KV cache contract`, () => {
    it('keeps each sequence its own positions through prefill and decode writes', () => {
      const cache = create(GEOMETRY);
      prefill(cache, 1, 4);
      prefill(cache, 2, 2);
      cache.arrange([['1', '2'], []], 5);
      write(cache, [
        [1, 4],
        [2, 2],
      ]);
      assertHolds(cache, [['1', '2'], []], 1, 5);
      assertHolds(cache, [['1', '2'], []], 2, 3);
    });

    it('lays each group out contiguously, whatever order rows were opened in', () => {
      const cache = create(GEOMETRY);
      for (const seq of [1, 2, 3, 4]) prefill(cache, seq, seq + 1);
      const { order, views } = cache.arrange([['4', '2'], ['3']], 8);
      assert.deepEqual(order.map((ids) => [...ids].sort()), [['2', '4'], ['3']]);
      assert.equal(views[0]![0]!.key.length, 2 * GEOMETRY.kvHeads * cache.slots * GEOMETRY.headDim);
      assert.equal(views[1]![0]!.key.length, 1 * GEOMETRY.kvHeads * cache.slots * GEOMETRY.headDim);
      for (const seq of [2, 3, 4]) assertHolds(cache, [['4', '2'], ['3']], seq, seq + 1);
      assertHolds(cache, [['1'], []], 1, 2);
    });

    it('moves only the rows that must change place when one leaves', () => {
      const cache = create(GEOMETRY);
      for (const seq of [1, 2, 3, 4]) prefill(cache, seq, 3);
      const before = cache.arrange([['1', '2', '3', '4'], []], 4).order[0]!;
      cache.close('2');
      const after = cache.arrange([['1', '3', '4'], []], 4).order[0]!;
      const stayed = after.filter((id, row) => before[row] === id);
      assert.ok(stayed.length >= 2, `rows that kept their place: ${stayed.join(',')}`);
      for (const seq of [1, 3, 4]) assertHolds(cache, [['1', '3', '4'], []], seq, 3);
    });

    it('forks a prefix into a new sequence and truncates one for recomputation', () => {
      const cache = create(GEOMETRY);
      prefill(cache, 1, 5);
      cache.fork('1', '7', 5);
      assertHolds(cache, [['1', '7'], []], 7, 5, 1);
      cache.truncate('1', 2);
      assert.equal(cache.length('1'), 2);
      prefill(cache, 1, 5, 2);
      assertHolds(cache, [['1'], []], 1, 5);
    });

    it('grows rows and slots without losing what it holds, and shrinks back', () => {
      const cache = create(GEOMETRY);
      for (let seq = 1; seq <= 9; seq++) prefill(cache, seq, 3);
      prefill(cache, 1, MIN_SLOTS * 2 + 5, 3);
      assert.ok(cache.slots >= MIN_SLOTS * 2 + 5);
      const ids = Array.from({ length: 9 }, (_, i) => String(i + 1));
      assertHolds(cache, [ids, []], 1, MIN_SLOTS * 2 + 5);
      for (let seq = 2; seq <= 9; seq++) assertHolds(cache, [ids, []], seq, 3);
      cache.close('1');
      cache.arrange([ids.slice(1), []], 4);
      assert.equal(cache.slots, MIN_SLOTS);
      for (let seq = 2; seq <= 9; seq++) assertHolds(cache, [ids.slice(1), []], seq, 3);
    });

    it('frees rows for reuse', () => {
      const cache = create(GEOMETRY);
      prefill(cache, 1, 2);
      cache.close('1');
      assert.equal(cache.size, 0);
      assert.equal(cache.has('1'), false);
      prefill(cache, 2, 2);
      assertHolds(cache, [[], ['2']], 2, 2);
    });

    it('leaves no Inf or NaN of a sequence in a row it gave up (closed or moved), even past its length', () => {
      const cache = create(GEOMETRY);
      const overflowed = (tokens: [number, number][]): LayerKv[] =>
        present(tokens).map(({ key, value }) => ({ key: key.map((_, i) => (i % 2 ? Infinity : NaN)), value: value.fill(-Infinity) }));
      const allFinite = (groups: string[][], seq: string): boolean => rowData(cache, groups, seq).every((data) => data.every(Number.isFinite));
      // Closed: the next sequence opened gets the same row.
      cache.open('1');
      cache.arrange([['1'], []], 8);
      cache.write(overflowed([[1, 0], [1, 1], [1, 2]]), ['1', '1', '1'], Int32Array.from([0, 1, 2]));
      cache.close('1');
      prefill(cache, 2, 2);
      assert.ok(allFinite([[], ['2']], '2'), 'the row sequence 1 left');
      // Moved: sequence 3 overflows, then an arrangement moves it out of the row sequence 4 then takes.
      prefill(cache, 3, 1);
      cache.arrange([['3'], ['2']], 8);
      cache.write(overflowed([[3, 1], [3, 2]]), ['3', '3'], Int32Array.from([1, 2]));
      prefill(cache, 4, 2);
      cache.arrange([['2', '4'], ['3']], 8);
      assert.ok(allFinite([['2', '4'], ['3']], '4') && allFinite([['2', '4'], ['3']], '2'), 'the rows sequence 3 moved out of');
    });
  });
}

kvCacheContract('HostKvCache', (geometry) => new HostKvCache(geometry));

describe('HostKvCache holding float16 (GPU graphs)', () => {
  // IEEE half bits: exponent all ones is Inf (mantissa 0) or NaN; 0x3c00 is 1.0.
  const HALF_INF = 0x7c00;
  const HALF_NAN = 0x7e00;
  const HALF_ONE = 0x3c00;
  const geometry: KvGeometry = { ...GEOMETRY, elements: 'float16' };
  const halves = (tokens: number, bits: (i: number) => number): LayerKv[] =>
    Array.from({ length: geometry.numLayers }, () => {
      const make = (): Uint16Array => Uint16Array.from({ length: tokens * geometry.kvHeads * geometry.headDim }, (_, i) => bits(i));
      return { key: make(), value: make() };
    });
  const rowBits = (cache: HostKvCache, seq: string): number[] => rowData(cache, [[], [seq]], seq).flatMap((data) => [...data]);

  it('leaves no Inf or NaN bits of a sequence in the row it closed', () => {
    const cache = new HostKvCache(geometry);
    cache.open('1');
    cache.arrange([[], ['1']], 3);
    // Only a value element overflowed: the check reads the bits of keys and values alike.
    const written = halves(3, () => HALF_ONE).map(({ key, value }) => ({ key, value: value.map((b, i) => (i === 4 ? HALF_NAN : i === 7 ? HALF_INF : b)) }));
    cache.write(written, ['1', '1', '1'], Int32Array.from([0, 1, 2]));
    cache.close('1');
    cache.open('2');
    cache.arrange([[], ['2']], 1);
    cache.write(halves(1, () => HALF_ONE), ['2'], Int32Array.from([0]));
    assert.ok(rowBits(cache, '2').every((b) => (b & HALF_INF) !== HALF_INF), 'the row sequence 1 left holds Inf or NaN');
  });

  it('keeps a finite sequence’s row as written when it closes', () => {
    const cache = new HostKvCache(geometry);
    cache.open('1');
    cache.arrange([[], ['1']], 2);
    cache.write(halves(2, (i) => HALF_ONE + i), ['1', '1'], Int32Array.from([0, 1]));
    cache.close('1');
    cache.open('2');
    cache.arrange([[], ['2']], 1);
    // The row is not cleared: sequence 1's second position is still there, past sequence 2's length.
    const bits = rowBits(cache, '2');
    assert.ok(bits.some((b) => b > HALF_ONE), 'a row left by a finite sequence was cleared (costs a fill per close)');
  });
});
