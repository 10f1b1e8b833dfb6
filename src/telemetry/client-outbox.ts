// One WebSocket client's outgoing frames. Frames wait in a ring bounded in frames and in bytes, and
// move to the socket only while the client has acknowledged all but a window of what it was sent and
// the socket itself holds less than that window; so a client that stops reading never makes the server
// buffer without bound or wait: its oldest frames are dropped and counted, and the next frame it does
// get is preceded by a `dropped` notice.
//
// Acknowledgement is a WebSocket ping with a payload only the server knows: its pong comes back only
// after the client has read everything sent before the ping. A pong with any other payload (one the
// client made up without reading) acknowledges nothing. The socket's own buffer alone can not tell,
// because the kernel takes megabytes from a client that never reads before the socket reports any
// backlog; it still bounds what waits in the server's memory, whatever the client answers.
import { randomBytes } from 'node:crypto';
import { FrameRing } from './frame-ring.js';
import type { ControlFrame } from './stream-frames.js';

/** The part of a `ws` WebSocket the outbox uses. */
export interface FrameSocket {
  readonly readyState: number;
  /** Bytes accepted by send() that have not reached the kernel yet. */
  readonly bufferedAmount: number;
  send(data: string): void;
  ping(data: Buffer): void;
}

// ws's OPEN readyState.
const OPEN = 1;
// Bytes a client may have been sent but not yet acknowledged, and may have waiting in the socket: a
// few hundred frames, enough to keep a reading client busy across a round trip, small enough that a
// stalled one is noticed at once.
const UNACKNOWLEDGED_WINDOW_BYTES = 256 * 1024;
// A ping goes out once this much is unacknowledged, not after every frame.
const PING_AFTER_BYTES = UNACKNOWLEDGED_WINDOW_BYTES / 4;
// Unguessable: a client must have read the ping to answer it.
const PING_NONCE_BYTES = 16;

export interface OutboxLimits {
  /** Frames that may wait in the ring. */
  frames: number;
  /** Bytes that may wait in the ring and the socket together. */
  bytes: number;
}

export class ClientOutbox {
  private readonly ring: FrameRing;
  private unreported = 0;
  private droppedTotal = 0;
  private sentBytes = 0;
  private acknowledgedBytes = 0;
  /** The outstanding ping: its payload and sentBytes when it went out; null when none is outstanding. */
  private ping: { payload: Buffer; at: number } | null = null;

  constructor(
    private readonly socket: FrameSocket,
    private readonly limits: OutboxLimits,
    private readonly onDrop: (count: number) => void,
  ) {
    this.ring = new FrameRing(limits.frames);
  }

  /** Bytes this client costs the server now: frames in the ring plus what the socket holds. */
  get queuedBytes(): number {
    return this.ring.bytes + this.socket.bufferedAmount;
  }

  push(frame: string): void {
    if (this.ring.push(frame)) this.dropped(1);
    let over = 0;
    while (this.ring.length > 0 && this.queuedBytes > this.limits.bytes) {
      this.ring.shift();
      over++;
    }
    if (over > 0) this.dropped(over);
    this.flush();
  }

  /** A pong arrived: if it carries the outstanding ping's payload, everything sent before that ping has been read. */
  acknowledge(payload: Buffer): void {
    if (this.ping === null || !payload.equals(this.ping.payload)) return;
    this.acknowledgedBytes = this.ping.at;
    this.ping = null;
    this.flush();
  }

  private dropped(count: number): void {
    this.unreported += count;
    this.droppedTotal += count;
    this.onDrop(count);
  }

  private flush(): void {
    if (this.socket.readyState !== OPEN) return;
    while (this.ring.length > 0 && this.sentBytes - this.acknowledgedBytes < UNACKNOWLEDGED_WINDOW_BYTES && this.socket.bufferedAmount < UNACKNOWLEDGED_WINDOW_BYTES) {
      if (this.unreported > 0) {
        const notice: ControlFrame = { type: 'dropped', count: this.unreported, total: this.droppedTotal };
        this.unreported = 0;
        this.write(JSON.stringify(notice));
      }
      this.write(this.ring.shift()!);
    }
    if (this.ping === null && this.sentBytes - this.acknowledgedBytes >= PING_AFTER_BYTES) {
      this.ping = { payload: randomBytes(PING_NONCE_BYTES), at: this.sentBytes };
      this.socket.ping(this.ping.payload);
    }
  }

  private write(frame: string): void {
    this.sentBytes += Buffer.byteLength(frame);
    this.socket.send(frame);
  }
}
