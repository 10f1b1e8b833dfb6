// The KV cache behind a short interface (a device-resident cache can replace the host one once the
// Node binding keeps outputs on the device). One row per sequence; slot s of a row holds position s.
// The graph reads each step's groups of rows as views ([rows, kvH, slots, D] per layer) and returns
// only the new tokens' keys and values, which `write` puts in place: a decode step copies B tokens,
// a join or a leave moves at most the rows that must change place, never the batch.
import type { KvData, LayerKv } from './session.js';

export interface KvGeometry {
  numLayers: number;
  kvHeads: number;
  headDim: number;
  /** Element type of the graph's KV tensors. */
  elements: 'float32' | 'float16';
}

export interface KvCache {
  /** Slots per row: the P of the graph's past inputs. */
  readonly slots: number;
  /** Rows in use. */
  readonly size: number;
  has(id: string): boolean;
  /** Positions cached for a sequence (so its next position). */
  length(id: string): number;
  /** Gives a new sequence an empty row. */
  open(id: string): void;
  /** Frees a sequence's row. */
  close(id: string): void;
  /** Forgets a sequence's positions from `length` on, so they can be computed again. */
  truncate(id: string, length: number): void;
  /** Opens `to` with a copy of `from`'s first `length` positions (a shared prefix). */
  fork(from: string, to: string, length: number): void;
  /**
   * Places each group's rows next to each other, with room for `needed` slots in every row, and
   * returns each group's sequences in row order with the views the graph reads. Views stay valid
   * until the next call that changes the cache.
   */
  arrange(groups: readonly (readonly string[])[], needed: number): { order: string[][]; views: LayerKv[][] };
  /** Writes a step's new keys and values: token i goes to sequence `ids[i]` at position `positions[i]`. */
  write(present: readonly LayerKv[], ids: readonly string[], positions: Int32Array): void;
}

// Slot and row capacities grow by doubling from these, so growth copies the cache O(log) times;
// they shrink once a quarter would do, so one long sequence does not leave every row long.
export const MIN_SLOTS = 64;
const MIN_ROWS = 1;
const SHRINK_FACTOR = 4;

/** The cache in host memory: per layer, one buffer of [rows, kvH, slots, D] for keys and one for values. */
export class HostKvCache implements KvCache {
  private layers: LayerKv[] = [];
  private rowCapacity = 0;
  private slotCapacity = 0;
  private readonly rowOf = new Map<string, number>();
  private readonly lengths = new Map<string, number>();
  /** Sequence id per row, undefined for a free row. */
  private occupant: (string | undefined)[] = [];
  /**
   * Sequences that wrote a non-finite key or value (a switch scale can overflow float32). A row's
   * slots past its length are masked in attention, but a masked Inf or NaN still turns the row's
   * softmax and its zero-weighted value sum into NaN, so a row such a sequence leaves is zeroed
   * before anyone else gets it: one request's overflow never reaches another's output.
   */
  private readonly nonFinite = new Set<string>();

  constructor(private readonly geometry: KvGeometry) {
    this.resize(MIN_ROWS, MIN_SLOTS);
  }

  get slots(): number {
    return this.slotCapacity;
  }

  get size(): number {
    return this.rowOf.size;
  }

  has(id: string): boolean {
    return this.rowOf.has(id);
  }

  length(id: string): number {
    return this.lengths.get(id) ?? 0;
  }

  open(id: string): void {
    if (this.rowOf.has(id)) throw new Error(`sequence ${id} already has a KV row`);
    if (this.rowOf.size === this.rowCapacity) this.resize(this.rowCapacity * 2, this.slotCapacity);
    const row = this.occupant.findIndex((o) => o === undefined);
    this.place(id, row);
    this.lengths.set(id, 0);
  }

  close(id: string): void {
    const row = this.rowOf.get(id);
    if (row === undefined) return;
    this.rowOf.delete(id);
    this.lengths.delete(id);
    this.occupant[row] = undefined;
    if (this.nonFinite.delete(id)) this.clearRow(row);
  }

  truncate(id: string, length: number): void {
    this.lengths.set(id, Math.min(this.length(id), length));
  }

  fork(from: string, to: string, length: number): void {
    this.open(to);
    this.copyRow(this.rowOf.get(from)!, this.rowOf.get(to)!, length);
    this.lengths.set(to, length);
    if (this.nonFinite.has(from)) this.nonFinite.add(to);
  }

  arrange(groups: readonly (readonly string[])[], needed: number): { order: string[][]; views: LayerKv[][] } {
    this.fitCapacity(needed);
    let start = 0;
    const ranges = groups.map((ids) => {
      const range = { start, end: start + ids.length };
      start = range.end;
      return range;
    });
    const inRanges = (row: number): boolean => row < start;
    groups.forEach((ids, g) => {
      const { start: from, end } = ranges[g]!;
      const members = new Set(ids);
      const vacant: number[] = [];
      for (let row = from; row < end; row++) if (!members.has(this.occupant[row]!)) vacant.push(row);
      for (const id of ids) {
        const row = this.rowOf.get(id)!;
        if (row >= from && row < end) continue;
        const target = vacant.pop()!;
        const outsider = this.occupant[target];
        if (outsider !== undefined) this.moveRow(outsider, this.freeRowOutside(inRanges));
        this.moveRow(id, target);
      }
    });
    const order = groups.map((_, g) => this.occupant.slice(ranges[g]!.start, ranges[g]!.end) as string[]);
    return { order, views: ranges.map(({ start: from, end }) => this.views(from, end)) };
  }

  write(present: readonly LayerKv[], ids: readonly string[], positions: Int32Array): void {
    const { kvHeads, headDim } = this.geometry;
    const slots = this.slotCapacity;
    // A sequence closed while its step ran (its comparison refused by a submit meanwhile) has no row.
    const rows = ids.map((id) => this.rowOf.get(id));
    const token = kvHeads * headDim;
    this.layers.forEach((layer, l) => {
      const { key, value } = present[l]!;
      for (let i = 0; i < ids.length; i++) {
        if (rows[i] === undefined) continue;
        // x * 0 is 0 for a finite float32 and NaN for Inf or NaN: summed during the copy, the check
        // costs nothing measurable. float16 data are bits, checked after the copy.
        let poison = 0;
        for (let h = 0; h < kvHeads; h++) {
          const to = ((rows[i]! * kvHeads + h) * slots + positions[i]!) * headDim;
          const from = (i * kvHeads + h) * headDim;
          for (let d = 0; d < headDim; d++) {
            const k = key[from + d]!;
            const v = value[from + d]!;
            layer.key[to + d] = k;
            layer.value[to + d] = v;
            poison += k * 0 + v * 0;
          }
        }
        const halvesOk = !(key instanceof Uint16Array) || (finiteHalves(key, i * token, token) && finiteHalves(value, i * token, token));
        if (poison !== 0 || !halvesOk) this.nonFinite.add(ids[i]!);
      }
    });
    ids.forEach((id, i) => {
      if (rows[i] !== undefined) this.lengths.set(id, Math.max(this.length(id), positions[i]! + 1));
    });
  }

  private views(from: number, end: number): LayerKv[] {
    const stride = this.rowStride();
    return this.layers.map(({ key, value }) => ({ key: key.subarray(from * stride, end * stride), value: value.subarray(from * stride, end * stride) }));
  }

  private fitCapacity(needed: number): void {
    const longest = Math.max(needed, ...this.lengths.values());
    let slots = this.slotCapacity;
    if (longest > slots) slots = nextPowerOfTwo(longest);
    else if (slots > MIN_SLOTS && longest * SHRINK_FACTOR <= slots) slots = Math.max(MIN_SLOTS, nextPowerOfTwo(longest));
    let rows = this.rowCapacity;
    if (rows > MIN_ROWS && this.rowOf.size * SHRINK_FACTOR <= rows) rows = Math.max(MIN_ROWS, nextPowerOfTwo(this.rowOf.size + 1));
    if (slots !== this.slotCapacity || rows !== this.rowCapacity) this.resize(rows, slots);
  }

  /** New buffers of the given capacity; sequences keep their rows when they fit, else move to the lowest free ones. */
  private resize(rows: number, slots: number): void {
    const { numLayers } = this.geometry;
    const oldLayers = this.layers;
    const oldSlots = this.slotCapacity;
    const oldRows = new Map(this.rowOf);
    const stride = this.geometry.kvHeads * slots * this.geometry.headDim;
    this.layers = Array.from({ length: numLayers }, () => ({ key: this.alloc(rows * stride), value: this.alloc(rows * stride) }));
    this.rowCapacity = rows;
    this.slotCapacity = slots;
    this.occupant = new Array<string | undefined>(rows).fill(undefined);
    this.rowOf.clear();
    // In row order, so a sequence that must move (its row is past the new capacity) never takes a row a later one keeps.
    for (const [id, oldRow] of [...oldRows].sort((a, b) => a[1] - b[1])) {
      const row = oldRow < rows ? oldRow : this.occupant.findIndex((o) => o === undefined);
      this.place(id, row);
      this.copyBetween(oldLayers, oldSlots, oldRow, row, this.length(id));
    }
  }

  private freeRowOutside(inRanges: (row: number) => boolean): number {
    let row = this.occupant.findIndex((o, r) => o === undefined && !inRanges(r));
    if (row < 0) {
      this.resize(this.rowCapacity * 2, this.slotCapacity);
      row = this.occupant.findIndex((o, r) => o === undefined && !inRanges(r));
    }
    return row;
  }

  private moveRow(id: string, to: number): void {
    const from = this.rowOf.get(id)!;
    this.copyRow(from, to, this.length(id));
    this.occupant[from] = undefined;
    if (this.nonFinite.has(id)) this.clearRow(from);
    this.place(id, to);
  }

  private clearRow(row: number): void {
    const stride = this.rowStride();
    for (const { key, value } of this.layers) {
      key.fill(0, row * stride, (row + 1) * stride);
      value.fill(0, row * stride, (row + 1) * stride);
    }
  }

  private place(id: string, row: number): void {
    this.rowOf.set(id, row);
    this.occupant[row] = id;
  }

  /** Copies the first `length` positions of row `from` to row `to`, within the current buffers. */
  private copyRow(from: number, to: number, length: number): void {
    const { kvHeads, headDim } = this.geometry;
    const slots = this.slotCapacity;
    for (const { key, value } of this.layers) {
      for (let h = 0; h < kvHeads; h++) {
        const src = (from * kvHeads + h) * slots * headDim;
        const dst = (to * kvHeads + h) * slots * headDim;
        key.copyWithin(dst, src, src + length * headDim);
        value.copyWithin(dst, src, src + length * headDim);
      }
    }
  }

  private copyBetween(source: LayerKv[], sourceSlots: number, from: number, to: number, length: number): void {
    const { kvHeads, headDim } = this.geometry;
    this.layers.forEach((layer, l) => {
      for (let h = 0; h < kvHeads; h++) {
        const src = (from * kvHeads + h) * sourceSlots * headDim;
        const dst = (to * kvHeads + h) * this.slotCapacity * headDim;
        layer.key.set(source[l]!.key.subarray(src, src + length * headDim), dst);
        layer.value.set(source[l]!.value.subarray(src, src + length * headDim), dst);
      }
    });
  }

  private rowStride(): number {
    return this.geometry.kvHeads * this.slotCapacity * this.geometry.headDim;
  }

  private alloc(length: number): KvData {
    return this.geometry.elements === 'float32' ? new Float32Array(length) : new Uint16Array(length);
  }
}

// IEEE half precision: all exponent bits set is Inf or NaN.
const HALF_EXPONENT = 0x7c00;

/** Whether data[from, from + length), float16 bits, holds no Inf or NaN. */
function finiteHalves(data: KvData, from: number, length: number): boolean {
  for (let j = from; j < from + length; j++) if ((data[j]! & HALF_EXPONENT) === HALF_EXPONENT) return false;
  return true;
}

function nextPowerOfTwo(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}
