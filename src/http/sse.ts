// The one SSE writer: `data:` events (with an `event:` name where the API names them), `: ping`
// comments as keep-alives while the model computes, the end of the stream (with `data: [DONE]` for
// the chat and completions APIs), and the error event that ends a stream which already started (a
// shutdown ends streams through it too). A client that stops reading is dropped once more than
// `maxBufferedBytes` wait in the server for it.
import type { ServerResponse } from 'node:http';
import { ApiError } from './errors.js';

export interface SseEvent {
  /** The `event:` field; absent for unnamed events. */
  event?: string;
  data: unknown;
}

export interface SseOptions {
  /** A stream quiet for this long gets a `: ping`. */
  pingIntervalMs: number;
  /** Bytes the server may hold for this client beyond what the kernel took; past it the connection is dropped. */
  maxBufferedBytes: number;
  /** Chat and completions end with `data: [DONE]`; the Responses API does not. */
  doneMarker: boolean;
  /** The event that reports an error after the stream started (the envelope by default). */
  failure?: (error: ApiError) => SseEvent;
}

// An event name is one line of plain characters (a line break would start another field).
const EVENT_NAME = /^[\w.-]+$/;
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

  send({ event, data }: SseEvent): void {
    if (event !== undefined && !EVENT_NAME.test(event)) throw new Error(`SSE event name ${JSON.stringify(event)} is not one plain line`);
    this.write(`${event === undefined ? '' : `event: ${event}\n`}data: ${JSON.stringify(data)}\n\n`);
  }

  /** Ends the stream, after `data: [DONE]` when the API has it. */
  end(): void {
    if (this.options.doneMarker) this.write('data: [DONE]\n\n');
    this.stop();
    if (!this.res.writableEnded && !this.res.destroyed) this.res.end();
  }

  /** Reports `error` as the stream's error event and ends it. */
  fail(error: ApiError): void {
    this.send(this.options.failure?.(error) ?? { data: error.toJSON() });
    this.end();
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
