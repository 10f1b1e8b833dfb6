// How swserve's HTTP server treats connections. Nothing a client sends may throw out of a listener
// (Node would end the process); protocol errors Node's parser finds (cut chunked bodies, Content-Length
// with Transfer-Encoding, oversized headers, a request that takes too long to arrive) are answered in
// the OpenAI envelope; every connection is bounded in time; and the responses in flight are known, so
// a shutdown can end each one properly.
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { ApiError, rawErrorResponse, sendError } from './errors.js';
import { streamOf } from './sse.js';

export interface ConnectionLimits {
  /** Headers and body must have arrived within this (408 otherwise). */
  requestTimeoutMs: number;
  /** A connection that moves no bytes for this long is closed, unless its response is still being computed. */
  idleTimeoutMs: number;
}

// How often Node checks the request timeout. Its default (30 s) would let a dripped body live that
// much past the limit; a check per second costs a walk over the open connections.
const TIMEOUT_CHECK_INTERVAL_MS = 1000;

/** Options for http.createServer that enforce the request timeout. */
export function serverOptions(limits: ConnectionLimits): http.ServerOptions {
  return {
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: Math.min(TIMEOUT_CHECK_INTERVAL_MS, limits.requestTimeoutMs),
  };
}

/** Wraps a listener so that what it throws goes to `onFault`, never into Node's event emitter. */
export function guarded<A extends unknown[]>(listener: (...args: A) => void, onFault: (err: unknown, ...args: A) => void): (...args: A) => void {
  return (...args) => {
    try {
      listener(...args);
    } catch (err) {
      try {
        onFault(err, ...args);
      } catch {
        // The fault handler only answers or destroys a socket; if even that fails there is nothing left to do.
      }
    }
  };
}

export class ConnectionGuard {
  /** The response each socket is serving now (unset between keep-alive requests). */
  private readonly current = new WeakMap<Duplex, http.ServerResponse>();
  private readonly open = new Set<http.ServerResponse>();
  private draining = false;

  constructor(
    server: http.Server,
    private readonly limits: ConnectionLimits,
    private readonly log: (message: string) => void,
  ) {
    server.timeout = limits.idleTimeoutMs;
    server.on('clientError', guarded((err: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(err, socket), this.fault('clientError')));
    server.on('timeout', guarded((socket: Duplex) => this.onIdle(socket), this.fault('timeout')));
  }

  /** The server's request listener: tracks the response and hands it to the current handler. */
  listener(handler: () => http.RequestListener): http.RequestListener {
    return guarded(
      (req: http.IncomingMessage, res: http.ServerResponse) => {
        this.track(req.socket, res);
        if (this.draining) res.setHeader('Connection', 'close');
        // A target no URL parser takes (`http://[`) would leave the router without a path.
        if (requestUrl(req.url) === undefined) return sendError(res, new ApiError('invalid_request', 'the request target is not a valid URL path'), { Connection: 'close' });
        handler()(req, res);
      },
      (err, _req, res) => {
        this.log(`request listener: ${(err as Error).stack ?? String(err)}`);
        if (res.headersSent) res.destroy();
        else sendError(res, new ApiError('internal_error', 'internal server error'));
      },
    );
  }

  /** From now on responses ask the client to close the connection (the server is going away); returns the responses in flight. */
  drain(): http.ServerResponse[] {
    this.draining = true;
    return [...this.open];
  }

  /**
   * Ends every response not yet ended with `error`: a stream gets it as an error event and [DONE], a
   * response not started gets the envelope. Returns how many it ended.
   */
  endAll(error: ApiError): number {
    let ended = 0;
    for (const res of this.open) {
      if (res.writableEnded || res.destroyed) continue;
      ended++;
      const stream = streamOf(res);
      if (stream) stream.fail(error);
      else if (!res.headersSent) sendError(res, error, { Connection: 'close' });
      else res.destroy();
    }
    return ended;
  }

  private track(socket: Duplex, res: http.ServerResponse): void {
    // Node resets the socket timeout between keep-alive requests; each request gets the idle bound again.
    (socket as Duplex & { setTimeout?: (ms: number) => void }).setTimeout?.(this.limits.idleTimeoutMs);
    this.current.set(socket, res);
    this.open.add(res);
    const done = (): void => {
      this.open.delete(res);
      if (this.current.get(socket) === res) this.current.delete(socket);
    };
    res.once('finish', done);
    res.once('close', done);
  }

  /** No bytes moved for the idle time: keep a connection whose response is being computed, close the rest. */
  private onIdle(socket: Duplex): void {
    const res = this.current.get(socket);
    if (res && !res.writableEnded) {
      // Look again after another idle period (Node arms the timer only on activity).
      (socket as Duplex & { setTimeout: (ms: number) => void }).setTimeout(this.limits.idleTimeoutMs);
      return;
    }
    socket.destroy();
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const res = this.current.get(socket);
    // A reset or a response already under way leaves nothing to answer on.
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || !socket.writable || res?.headersSent) {
      socket.destroy();
      return;
    }
    socket.end(rawErrorResponse(protocolError(err)), () => socket.destroy());
  }

  private fault(where: string): (err: unknown, ...args: unknown[]) => void {
    return (err, ...args) => {
      this.log(`${where} listener: ${(err as Error).stack ?? String(err)}`);
      const socket = args.find((a): a is Duplex => typeof (a as Duplex | undefined)?.destroy === 'function');
      socket?.destroy();
    };
  }
}

/** The request target as a URL, or undefined when it cannot be one (e.g. `//[`, `http://[`). */
export function requestUrl(target: string | undefined): URL | undefined {
  try {
    return new URL(target ?? '/', 'http://localhost');
  } catch {
    return undefined;
  }
}

/** What Node's HTTP parser refused, as the error the client is told. */
export function protocolError(err: NodeJS.ErrnoException & { reason?: string }): ApiError {
  if (err.code === 'HPE_HEADER_OVERFLOW') return new ApiError('headers_too_large', 'the request headers are larger than the server accepts');
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return new ApiError('request_timeout', 'the request did not arrive in time');
  return new ApiError('invalid_request', `the request is not valid HTTP/1.1: ${err.reason ?? err.message}`);
}
