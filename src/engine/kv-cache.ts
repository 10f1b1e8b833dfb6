// The running batch's KV cache: per layer [B, kvHeads, P, D], one row per sequence.
// Every step appends its T new slots to every row (the graph concatenates), so rows of different
// lengths carry empty slots, recorded as position -1 and masked out. Rows join by merging a prefill
// batch's cache and leave by compaction; neither happens on a plain decode step, whose present
// outputs become the next step's inputs without a copy. With a KvTransfer (WebGPU) the layers live on
// the device between decode steps; a join or a leave brings them to the host, rebuilds the batch
// there, and the next step takes it back up.
import { isDeviceKv, type KvData, type KvTransfer, type LayerKv } from './session.js';

export interface KvGeometry {
  numLayers: number;
  kvHeads: number;
  headDim: number;
  /** Element type of the graph's KV tensors. */
  elements: 'float32' | 'float16';
}

export class BatchKvCache {
  private rowIds: string[] = [];
  private layers: LayerKv[];
  /** Per row, the token position held in each slot, -1 for an empty slot. */
  private positions: Int32Array[] = [];
  private slotCount = 0;

  constructor(
    private readonly geometry: KvGeometry,
    private readonly transfer?: KvTransfer,
  ) {
    this.layers = this.emptyLayers();
  }

  /** Sequence ids in row order. */
  get rows(): readonly string[] {
    return this.rowIds;
  }

  get slots(): number {
    return this.slotCount;
  }

  get past(): LayerKv[] {
    return this.layers;
  }

  slotPositions(row: number): Int32Array {
    return this.positions[row]!;
  }

  /** Starts an empty cache for these sequences (a prefill batch). */
  static empty(geometry: KvGeometry, rowIds: string[], transfer?: KvTransfer): BatchKvCache {
    const cache = new BatchKvCache(geometry, transfer);
    cache.rowIds = [...rowIds];
    cache.positions = rowIds.map(() => new Int32Array(0));
    return cache;
  }

  /** Takes a step's present tensors (P + T slots); `newPositions[row]` holds T positions, -1 for padding. */
  commit(present: LayerKv[], newPositions: Int32Array[]): void {
    const added = newPositions[0]?.length ?? 0;
    // The step has read the old layers; on a device they are freed now, not when the collector runs.
    this.transfer?.release(this.layers);
    this.layers = present;
    this.positions = this.positions.map((old, row) => {
      const next = new Int32Array(old.length + added);
      next.set(old);
      next.set(newPositions[row]!, old.length);
      return next;
    });
    this.slotCount += added;
  }

  /** Appends another cache's rows (a finished prefill) to this batch. */
  async merge(other: BatchKvCache): Promise<void> {
    await this.bringToHost();
    await other.bringToHost();
    const slots = Math.max(this.slotCount, other.slotCount);
    const sources = [
      ...this.rowIds.map((_, r) => ({ cache: this as BatchKvCache, row: r })),
      ...other.rowIds.map((_, r) => ({ cache: other, row: r })),
    ];
    this.rebuild(sources, slots, (src) => Array.from({ length: src.cache.slotCount }, (_, s) => s));
    this.rowIds = [...this.rowIds, ...other.rowIds];
  }

  /** Drops finished rows, then every slot that no remaining row uses. */
  async remove(ids: ReadonlySet<string>): Promise<void> {
    if (!this.rowIds.some((id) => ids.has(id))) return;
    if (this.rowIds.every((id) => ids.has(id))) {
      this.transfer?.release(this.layers);
      this.layers = this.emptyLayers();
      this.rowIds = [];
      this.positions = [];
      this.slotCount = 0;
      return;
    }
    await this.bringToHost();
    const keptRows = this.rowIds.map((id, row) => ({ id, row })).filter(({ id }) => !ids.has(id));
    const usedSlots: number[] = [];
    for (let s = 0; s < this.slotCount; s++) {
      if (keptRows.some(({ row }) => this.positions[row]![s]! >= 0)) usedSlots.push(s);
    }
    this.rebuild(
      keptRows.map(({ row }) => ({ cache: this as BatchKvCache, row })),
      usedSlots.length,
      () => usedSlots,
    );
    this.rowIds = keptRows.map(({ id }) => id);
  }

  /** Whether the layers are on the device (WebGPU between decode steps). */
  get onDevice(): boolean {
    return this.layers.some((l) => isDeviceKv(l.key));
  }

  private async bringToHost(): Promise<void> {
    if (this.transfer && this.onDevice) this.layers = await this.transfer.toHost(this.layers);
  }

  private emptyLayers(): LayerKv[] {
    return Array.from({ length: this.geometry.numLayers }, () => ({ key: this.alloc(0), value: this.alloc(0) }));
  }

  private rebuild(sources: { cache: BatchKvCache; row: number }[], slots: number, slotMap: (src: { cache: BatchKvCache; row: number }) => number[]): void {
    const { kvHeads, headDim } = this.geometry;
    const rows = sources.length;
    const maps = sources.map(slotMap);
    const runs = maps.map(contiguousRuns);
    this.layers = this.layers.map((_, l) => {
      const key = this.alloc(rows * kvHeads * slots * headDim);
      const value = this.alloc(rows * kvHeads * slots * headDim);
      sources.forEach((src, r) => {
        const from = src.cache.layers[l]! as { key: KvData; value: KvData };
        const srcSlots = src.cache.slotCount;
        for (const [start, dst, length] of runs[r]!) {
          for (let h = 0; h < kvHeads; h++) {
            const at = ((src.row * kvHeads + h) * srcSlots + start) * headDim;
            const to = ((r * kvHeads + h) * slots + dst) * headDim;
            key.set(from.key.subarray(at, at + length * headDim), to);
            value.set(from.value.subarray(at, at + length * headDim), to);
          }
        }
      });
      return { key, value };
    });
    this.positions = sources.map((src, r) => {
      const next = new Int32Array(slots).fill(-1);
      maps[r]!.forEach((s, dst) => (next[dst] = src.cache.positions[src.row]![s]!));
      return next;
    });
    this.slotCount = slots;
  }

  private alloc(length: number): KvData {
    return this.geometry.elements === 'float32' ? new Float32Array(length) : new Uint16Array(length);
  }
}

/** [sourceStart, destinationStart, length] runs of consecutive slots, so copies move whole blocks. */
function contiguousRuns(map: number[]): [number, number, number][] {
  const runs: [number, number, number][] = [];
  map.forEach((s, dst) => {
    const last = runs[runs.length - 1];
    if (last && last[0] + last[2] === s) last[2]++;
    else runs.push([s, dst, 1]);
  });
  return runs;
}
