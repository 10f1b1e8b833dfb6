// One WebSocket client's outgoing frames. Frames wait in a bounded ring and move to the socket only
// while the client has acknowledged all but a window of what it was sent, so a client that stops
// reading never makes the server buffer without bound or wait: its oldest frames are dropped and
// counted, and the next frame it does get is preceded by a `dropped` notice.
//
// Acknowledgement is a WebSocket ping: its pong comes back only after the client has read everything
// sent before it. The socket's own buffer can not tell, because the kernel takes megabytes from a
// client that never reads before the socket reports any backlog.
import { FrameRing } from './frame-ring.js';
import type { ControlFrame } from './stream-frames.js';

/** The part of a `ws` WebSocket the outbox uses. */
export interface FrameSocket {
  readonly readyState: number;
  send(data: string): void;
  ping(): void;
}

// ws's OPEN readyState.
const OPEN = 1;
// Bytes a client may have been sent but not yet acknowledged: a few hundred frames, enough to keep a
// reading client busy across a round trip, small enough that a stalled one is noticed at once.
const UNACKNOWLEDGED_WINDOW_BYTES = 256 * 1024;
// A ping goes out once this much is unacknowledged, not after every frame.
const PING_AFTER_BYTES = UNACKNOWLEDGED_WINDOW_BYTES / 4;

export class ClientOutbox {
  private readonly ring: FrameRing;
  private unreported = 0;
  private droppedTotal = 0;
  private sentBytes = 0;
  private acknowledgedBytes = 0;
  /** sentBytes when the outstanding ping went out; null when none is outstanding. */
  private pingAt: number | null = null;

  constructor(
    private readonly socket: FrameSocket,
    capacity: number,
    private readonly onDrop: (count: number) => void,
  ) {
    this.ring = new FrameRing(capacity);
  }

  push(frame: string): void {
    if (this.ring.push(frame)) {
      this.unreported++;
      this.droppedTotal++;
      this.onDrop(1);
    }
    this.flush();
  }

  /** The client answered the outstanding ping: everything sent before it has been read. */
  acknowledge(): void {
    if (this.pingAt === null) return;
    this.acknowledgedBytes = this.pingAt;
    this.pingAt = null;
    this.flush();
  }

  private flush(): void {
    if (this.socket.readyState !== OPEN) return;
    while (this.ring.length > 0 && this.sentBytes - this.acknowledgedBytes < UNACKNOWLEDGED_WINDOW_BYTES) {
      if (this.unreported > 0) {
        const notice: ControlFrame = { type: 'dropped', count: this.unreported, total: this.droppedTotal };
        this.unreported = 0;
        this.write(JSON.stringify(notice));
      }
      this.write(this.ring.shift()!);
    }
    if (this.pingAt === null && this.sentBytes - this.acknowledgedBytes >= PING_AFTER_BYTES) {
      this.pingAt = this.sentBytes;
      this.socket.ping();
    }
  }

  private write(frame: string): void {
    this.sentBytes += Buffer.byteLength(frame);
    this.socket.send(frame);
  }
}
