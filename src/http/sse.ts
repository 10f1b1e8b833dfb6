// The one SSE writer: `data:` events, `: ping` comments as keep-alives while the model computes,
// `data: [DONE]` at the end, and an error event that ends a stream which already started. A client
// that stops reading is dropped once more than `maxBufferedBytes` wait in the server for it.
import type { ServerResponse } from 'node:http';
import type { ApiError } from './errors.js';

export interface SseOptions {
  /** A stream quiet for this long gets a `: ping`. */
  pingIntervalMs: number;
  /** Bytes the server may hold for this client beyond what the kernel took; past it the connection is dropped. */
  maxBufferedBytes: number;
}

// How often a stream looks at what waits for its client. Not at every write: within one burst of
// writes Node holds them all until the next turn of the event loop, even for a client that reads.
// A stalled client can so be sent at most this long's worth of events beyond the bound.
const BUFFER_CHECK_INTERVAL_MS = 250;

const writers = new WeakMap<ServerResponse, SseWriter>();

/** The stream writing to `res`, if it is one (a shutdown ends streams with an error event, not a status). */
export function streamOf(res: ServerResponse): SseWriter | undefined {
  return writers.get(res);
}

export class SseWriter {
  private readonly timer: NodeJS.Timeout;
  private ended = false;
  private lastWrite = Date.now();

  constructor(
    private readonly res: ServerResponse,
    private readonly options: SseOptions,
  ) {
    res.statusCode = 200;
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-cache');
    if (!res.hasHeader('Connection')) res.setHeader('Connection', 'keep-alive');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    writers.set(res, this);
    this.timer = setInterval(() => this.check(), Math.min(BUFFER_CHECK_INTERVAL_MS, options.pingIntervalMs));
    res.once('close', () => this.stop());
  }

  send(data: unknown): void {
    this.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  done(): void {
    this.write('data: [DONE]\n\n');
    this.stop();
    if (!this.res.writableEnded && !this.res.destroyed) this.res.end();
  }

  fail(error: ApiError): void {
    this.send(error.toJSON());
    this.done();
  }

  private write(chunk: string): void {
    if (this.ended || this.res.writableEnded || this.res.destroyed) return;
    this.lastWrite = Date.now();
    this.res.write(chunk);
  }

  private check(): void {
    if (this.res.writableLength > this.options.maxBufferedBytes) {
      // A client this far behind is not reading: drop it, which also cancels its sequences.
      this.stop();
      this.res.destroy();
    } else if (Date.now() - this.lastWrite >= this.options.pingIntervalMs) {
      this.write(': ping\n\n');
    }
  }

  private stop(): void {
    this.ended = true;
    clearInterval(this.timer);
  }
}
