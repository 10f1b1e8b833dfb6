// The k largest keys of a stream, each with a numeric id, in one bounded min-heap: the sampler's
// top-k cut and top logprobs, and the largest-weights control, share it. Among equal keys the lower
// id is kept, so scanning in id order gives a deterministic result.
export class TopK {
  private readonly keys: Float64Array;
  private readonly ids: Float64Array;
  private size = 0;

  constructor(readonly capacity: number) {
    this.keys = new Float64Array(Math.max(0, capacity));
    this.ids = new Float64Array(Math.max(0, capacity));
  }

  get count(): number {
    return this.size;
  }

  /** The smallest kept key: the k-th largest once k keys are in. */
  get smallestKey(): number {
    return this.size === 0 ? -Infinity : this.keys[0]!;
  }

  /** Whether `push(key, ...)` would keep the key (equal keys never displace a kept one). */
  wants(key: number): boolean {
    return this.capacity > 0 && (this.size < this.capacity || key > this.keys[0]!);
  }

  push(key: number, id: number): void {
    if (this.size < this.capacity) {
      this.keys[this.size] = key;
      this.ids[this.size] = id;
      this.up(this.size++);
    } else if (this.capacity > 0 && key > this.keys[0]!) {
      this.keys[0] = key;
      this.ids[0] = id;
      this.down(0);
    }
  }

  /** Kept ids, largest key first, equal keys by lower id. */
  sortedIds(): number[] {
    const order = Array.from({ length: this.size }, (_, i) => i);
    order.sort((a, b) => this.keys[b]! - this.keys[a]! || this.ids[a]! - this.ids[b]!);
    return order.map((i) => this.ids[i]!);
  }

  /** Slot a belongs above slot b: a smaller key, or an equal key with a higher id. */
  private weaker(a: number, b: number): boolean {
    const ka = this.keys[a]!;
    const kb = this.keys[b]!;
    return ka < kb || (ka === kb && this.ids[a]! > this.ids[b]!);
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.weaker(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let weakest = i;
      if (left < this.size && this.weaker(left, weakest)) weakest = left;
      if (right < this.size && this.weaker(right, weakest)) weakest = right;
      if (weakest === i) return;
      this.swap(i, weakest);
      i = weakest;
    }
  }

  private swap(a: number, b: number): void {
    const key = this.keys[a]!;
    this.keys[a] = this.keys[b]!;
    this.keys[b] = key;
    const id = this.ids[a]!;
    this.ids[a] = this.ids[b]!;
    this.ids[b] = id;
  }
}
