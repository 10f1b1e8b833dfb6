// The one SSE writer: `data:` events, `: ping` comments as keep-alives while the model computes,
// `data: [DONE]` at the end, and an error event that ends a stream which already started.
import type { Response } from 'express';
import type { ApiError } from './errors.js';

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

  send(data: unknown): void {
    this.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  done(): void {
    this.write('data: [DONE]\n\n');
    this.stop();
    this.res.end();
  }

  fail(error: ApiError): void {
    this.send(error.toJSON());
    this.done();
  }

  private write(chunk: string): void {
    if (!this.ended && !this.res.writableEnded) this.res.write(chunk);
  }

  private stop(): void {
    this.ended = true;
    clearInterval(this.ping);
  }
}
