// The paper's control: the N largest-magnitude down_proj weights that are not super weights, to zero
// while the super weights stay (Llama-7B: ~7000 of them hurt far less than its one super weight).
import { openCheckpoint } from '../model/checkpoint.js';
import { readTensorAsFloat32 } from '../model/safetensors.js';
import { coordinateId, type SuperWeightCoordinate } from './switch-plan.js';

// The paper's ~7000 weights out of Llama-7B's 32 x 4096 x 11008 down_proj weights.
const PAPER_LARGEST_COUNT = 7000;
const LLAMA_7B_DOWN_PROJ_WEIGHTS = 32 * 4096 * 11008;
// Below this the control zeroes too few weights to say anything on a small model.
const MIN_LARGEST_COUNT = 100;

/** The paper's share of down_proj weights for this model, at least MIN_LARGEST_COUNT. */
export function defaultLargestCount(numLayers: number, hiddenSize: number, intermediateSize: number): number {
  const share = (numLayers * hiddenSize * intermediateSize * PAPER_LARGEST_COUNT) / LLAMA_7B_DOWN_PROJ_WEIGHTS;
  return Math.max(MIN_LARGEST_COUNT, Math.round(share));
}

/** The `count` largest |W| over every layer's down_proj, skipping `exclude`; largest first. */
export function largestDownProjWeights(modelDir: string, count: number, exclude: readonly SuperWeightCoordinate[]): SuperWeightCoordinate[] {
  const checkpoint = openCheckpoint(modelDir);
  const skip = new Set(exclude.map(coordinateId));
  const heap = new MinHeap(count);
  checkpoint.layout.layers.forEach((layer, l) => {
    const entry = checkpoint.tensors.get(layer.down)!;
    const cols = entry.shape[1]!;
    const values = readTensorAsFloat32(checkpoint.dir, entry);
    for (let i = 0; i < values.length; i++) {
      const magnitude = Math.abs(values[i]!);
      if (!heap.wants(magnitude)) continue;
      const c = { layer: l, row: Math.floor(i / cols), col: i % cols };
      if (!skip.has(coordinateId(c))) heap.push(magnitude, c);
    }
  });
  return heap.drain().reverse();
}

/** A bounded min-heap keeping the `capacity` largest keys seen. */
class MinHeap {
  private readonly keys: number[] = [];
  private readonly items: SuperWeightCoordinate[] = [];

  constructor(private readonly capacity: number) {}

  wants(key: number): boolean {
    return this.capacity > 0 && (this.keys.length < this.capacity || key > this.keys[0]!);
  }

  push(key: number, item: SuperWeightCoordinate): void {
    if (this.keys.length < this.capacity) {
      this.keys.push(key);
      this.items.push(item);
      this.up(this.keys.length - 1);
    } else {
      this.keys[0] = key;
      this.items[0] = item;
      this.down(0);
    }
  }

  /** Items smallest key first, emptying the heap. */
  drain(): SuperWeightCoordinate[] {
    const out: SuperWeightCoordinate[] = [];
    while (this.keys.length > 0) {
      out.push(this.items[0]!);
      const lastKey = this.keys.pop()!;
      const lastItem = this.items.pop()!;
      if (this.keys.length > 0) {
        this.keys[0] = lastKey;
        this.items[0] = lastItem;
        this.down(0);
      }
    }
    return out;
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.keys[parent]! <= this.keys[i]!) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      if (l < this.keys.length && this.keys[l]! < this.keys[smallest]!) smallest = l;
      if (r < this.keys.length && this.keys[r]! < this.keys[smallest]!) smallest = r;
      if (smallest === i) return;
      this.swap(i, smallest);
      i = smallest;
    }
  }

  private swap(a: number, b: number): void {
    [this.keys[a], this.keys[b]] = [this.keys[b]!, this.keys[a]!];
    [this.items[a], this.items[b]] = [this.items[b]!, this.items[a]!];
  }
}
