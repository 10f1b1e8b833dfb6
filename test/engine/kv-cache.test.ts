// The KV cache contract, as a suite any implementation must pass: rows keep their own slots (and
// positions) through commits, merges and removals.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchKvCache, type KvGeometry } from '../../src/engine/kv-cache.js';
import type { LayerKv } from '../../src/engine/session.js';

const GEOMETRY: KvGeometry = { numLayers: 2, kvHeads: 2, headDim: 3, elements: 'float32' };

/** A value that encodes where it came from, so every copy can be checked. */
const tag = (layer: number, kind: number, rowId: number, head: number, position: number, d: number): number =>
  layer * 1e6 + kind * 1e5 + rowId * 1e4 + head * 1e3 + position * 10 + d;

/** Builds present tensors: the cache's past slots followed by `fresh[row]` new positions. */
function present(cache: BatchKvCache, rowIds: number[], fresh: Int32Array[]): LayerKv[] {
  const { numLayers, kvHeads, headDim } = GEOMETRY;
  const past = cache.slots;
  const slots = past + fresh[0]!.length;
  return Array.from({ length: numLayers }, (_, l) => {
    const make = (kind: number): Float32Array => {
      const data = new Float32Array(rowIds.length * kvHeads * slots * headDim);
      const old = (kind === 0 ? cache.past[l]!.key : cache.past[l]!.value) as Float32Array;
      rowIds.forEach((id, r) => {
        for (let h = 0; h < kvHeads; h++) {
          for (let s = 0; s < slots; s++) {
            for (let d = 0; d < headDim; d++) {
              const at = ((r * kvHeads + h) * slots + s) * headDim + d;
              data[at] = s < past ? old[((r * kvHeads + h) * past + s) * headDim + d]! : tag(l, kind, id, h, fresh[r]![s - past]!, d);
            }
          }
        }
      });
      return data;
    };
    return { key: make(0), value: make(1) };
  });
}

/** Checks that row `r` holds exactly the tagged values of `positions` in its valid slots. */
function assertRow(cache: BatchKvCache, r: number, rowId: number, positions: number[]): void {
  const slotPositions = [...cache.slotPositions(r)];
  assert.deepEqual(slotPositions.filter((p) => p >= 0), positions);
  const { numLayers, kvHeads, headDim } = GEOMETRY;
  for (let l = 0; l < numLayers; l++) {
    slotPositions.forEach((p, s) => {
      if (p < 0) return;
      for (let h = 0; h < kvHeads; h++) {
        for (let d = 0; d < headDim; d++) {
          const at = ((r * kvHeads + h) * cache.slots + s) * headDim + d;
          assert.equal((cache.past[l]!.key as Float32Array)[at], tag(l, 0, rowId, h, p, d));
          assert.equal((cache.past[l]!.value as Float32Array)[at], tag(l, 1, rowId, h, p, d));
        }
      }
    });
  }
}

function prefill(ids: number[], lengths: number[]): BatchKvCache {
  const cache = BatchKvCache.empty(GEOMETRY, ids.map(String));
  const width = Math.max(...lengths);
  const fresh = lengths.map((n) => Int32Array.from({ length: width }, (_, t) => (t < n ? t : -1)));
  cache.commit(present(cache, ids, fresh), fresh);
  return cache;
}

function decode(cache: BatchKvCache, ids: number[]): void {
  const fresh = ids.map((_, r) => Int32Array.of(Math.max(...cache.slotPositions(r)) + 1));
  cache.commit(present(cache, ids, fresh), fresh);
}

describe('BatchKvCache', () => {
  it('keeps padded prefill rows apart and appends decode slots', () => {
    const cache = prefill([1, 2], [4, 2]);
    assert.equal(cache.slots, 4);
    decode(cache, [1, 2]);
    assertRow(cache, 0, 1, [0, 1, 2, 3, 4]);
    assertRow(cache, 1, 2, [0, 1, 2]);
  });

  it('merges a prefill batch into a running batch of a different length', async () => {
    const running = prefill([1], [3]);
    decode(running, [1]);
    await running.merge(prefill([2, 3], [6, 1]));
    assert.deepEqual(running.rows, ['1', '2', '3']);
    assert.equal(running.slots, 6);
    assertRow(running, 0, 1, [0, 1, 2, 3]);
    assertRow(running, 1, 2, [0, 1, 2, 3, 4, 5]);
    assertRow(running, 2, 3, [0]);
    decode(running, [1, 2, 3]);
    assertRow(running, 2, 3, [0, 1]);
  });

  it('removes rows and drops slots nobody uses', async () => {
    const cache = prefill([1, 2], [7, 2]);
    decode(cache, [1, 2]);
    await cache.remove(new Set(['1']));
    assert.deepEqual(cache.rows, ['2']);
    assert.equal(cache.slots, 3);
    assertRow(cache, 0, 2, [0, 1, 2]);
    await cache.remove(new Set(['2']));
    assert.equal(cache.rows.length, 0);
    assert.equal(cache.slots, 0);
  });

  it('ignores removal of ids it does not hold', async () => {
    const cache = prefill([1], [2]);
    const before = cache.past;
    await cache.remove(new Set(['9']));
    assert.equal(cache.past, before);
  });
});
