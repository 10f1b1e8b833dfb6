// A fixed-capacity FIFO of serialized frames that never grows: pushing onto a full ring drops the
// oldest frame and counts it, so a stalled WebSocket client costs bounded memory. It keeps the bytes
// it holds, so its owner can bound it in bytes too.
export class FrameRing {
  private readonly slots: (string | undefined)[];
  private readonly sizes: number[];
  private head = 0;
  private size = 0;
  private heldBytes = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`frame ring capacity must be a positive integer, got ${capacity}`);
    this.slots = new Array<string | undefined>(capacity);
    this.sizes = new Array<number>(capacity).fill(0);
  }

  get length(): number {
    return this.size;
  }

  /** UTF-8 bytes of the frames held. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Appends a frame; returns true when the oldest frame had to be dropped to make room. */
  push(frame: string): boolean {
    const dropped = this.size === this.capacity;
    if (dropped) this.shift();
    const at = (this.head + this.size) % this.capacity;
    this.slots[at] = frame;
    this.sizes[at] = Buffer.byteLength(frame);
    this.heldBytes += this.sizes[at]!;
    this.size++;
    return dropped;
  }

  shift(): string | undefined {
    if (this.size === 0) return undefined;
    const frame = this.slots[this.head];
    this.slots[this.head] = undefined;
    this.heldBytes -= this.sizes[this.head]!;
    this.head = (this.head + 1) % this.capacity;
    this.size--;
    return frame;
  }
}
