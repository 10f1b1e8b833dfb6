// The one SSE writer: `data:` events (with an `event:` name where the API names them), `: ping`
// comments as keep-alives while the model computes, and the end of the stream (with `data: [DONE]`
// for the chat and completions APIs).
import type { Response } from 'express';

export interface SseEvent {
  /** The `event:` field; absent for unnamed events. */
  event?: string;
  data: unknown;
}

// An event name is one line of plain characters (a line break would start another field).
const EVENT_NAME = /^[\w.-]+$/;

export class SseWriter {
  private readonly ping: NodeJS.Timeout;
  private ended = false;

  constructor(
    private readonly res: Response,
    pingIntervalMs: number,
  ) {
    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('Connection', 'keep-alive');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    this.ping = setInterval(() => this.write(': ping\n\n'), pingIntervalMs);
    res.once('close', () => this.stop());
  }

  send({ event, data }: SseEvent): void {
    if (event !== undefined && !EVENT_NAME.test(event)) throw new Error(`SSE event name ${JSON.stringify(event)} is not one plain line`);
    this.write(`${event === undefined ? '' : `event: ${event}\n`}data: ${JSON.stringify(data)}\n\n`);
  }

  /** Ends the stream, after `data: [DONE]` when `doneMarker`. */
  end(doneMarker: boolean): void {
    if (doneMarker) this.write('data: [DONE]\n\n');
    this.stop();
    this.res.end();
  }

  private write(chunk: string): void {
    if (!this.ended && !this.res.writableEnded) this.res.write(chunk);
  }

  private stop(): void {
    this.ended = true;
    clearInterval(this.ping);
  }
}
