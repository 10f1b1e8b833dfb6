// The /v1/activations WebSocket on the HTTP server's `upgrade` event: checks the path, the API key
// (Authorization: Bearer, or ?api_key= for browsers, which cannot set headers on a WebSocket), the
// client cap and the subscription in the query string, then registers the client with the hub.
// Client messages replace the subscription; a bad one gets an error frame and the connection stays.
// A plain GET of the same URL meets the same checks and says what an upgrade would get (the live page
// asks, because a browser's WebSocket reports a refused upgrade without its status or reason).
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData } from 'ws';
import { apiKeyMatches, bearerToken } from '../http/api-key.js';
import { guarded, requestUrl } from '../http/connections.js';
import { ApiError, rawErrorResponse } from '../http/errors.js';
import type { ActivationHub, HubClient } from './activation-hub.js';
import { parseSubscribeMessage, parseSubscriptionQuery, type Subscription, type SubscriptionFilter } from './subscription.js';

export const ACTIVATIONS_PATH = '/v1/activations';

// Subscription messages are tiny; anything bigger is a confused or hostile client.
const MAX_MESSAGE_BYTES = 64 * 1024;

export interface ActivationSocketOptions {
  maxClients: number;
  apiKey?: string;
  numLayers: number;
  shuttingDown: () => boolean;
  /** Told about a fault while handling an upgrade (a bug, not a bad client: those get a 4xx). */
  onError?: (err: Error) => void;
}

export interface ActivationSocket {
  /** Why an upgrade of this request would be refused, or the subscription it would get. */
  probe(req: http.IncomingMessage): ApiError | Subscription;
  /** Closes every client connection (shutdown). */
  close(): void;
}

export function attachActivationSocket(server: http.Server, hub: ActivationHub, options: ActivationSocketOptions): ActivationSocket {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  // A handshake ws refuses (no or a bad Sec-WebSocket-Key, an unknown version, a method other than
  // GET) gets the envelope too, not ws's plain-text answer.
  wss.on('wsClientError', (err: Error, socket: Duplex, req: http.IncomingMessage) => {
    const error = req.method !== 'GET' ? new ApiError('method_not_allowed', `a WebSocket upgrade must be a GET, not ${req.method}`) : new ApiError('invalid_request', `not a valid WebSocket upgrade: ${err.message}`);
    reject(socket, error);
  });
  // Nothing a client sends may throw out of these listeners: an exception there would end the process.
  const onFault = (err: unknown): void => options.onError?.(err as Error);
  const onUpgrade = guarded(
    (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
      socket.on('error', () => socket.destroy());
      upgrade(req, socket, head);
    },
    (err, _req, socket) => {
      onFault(err);
      reject(socket, new ApiError('internal_error', 'internal server error'));
    },
  );
  const admit = (req: http.IncomingMessage): ApiError | SubscriptionFilter => {
    const url = requestUrl(req.url);
    if (url === undefined) return new ApiError('invalid_request', 'the request target is not a valid URL path');
    const refusal = refuse(url, req, hub, options);
    if (refusal) return refusal;
    const parsed = parseSubscriptionQuery(url.searchParams, options.numLayers);
    return parsed.ok ? parsed.filter : new ApiError('invalid_request', parsed.message);
  };
  const upgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    const admitted = admit(req);
    if (admitted instanceof ApiError) return reject(socket, admitted);
    wss.handleUpgrade(req, socket, head, (ws) => {
      const client = hub.addClient(ws, admitted);
      hub.send(client, { type: 'subscribed', subscription: admitted.spec });
      const terminate = (err: unknown): void => {
        onFault(err);
        ws.terminate();
      };
      ws.on('message', guarded((data: RawData, isBinary: boolean) => onMessage(hub, client, data, isBinary, options.numLayers), terminate));
      ws.on('pong', guarded((payload: Buffer) => client.outbox.acknowledge(payload), terminate));
      // Malformed frames (bad opcode, unmasked, oversized, invalid UTF-8): ws is already closing the
      // connection with the matching close code (1002, 1007, 1009); the listener only keeps the error from being thrown.
      ws.on('error', () => {});
      ws.on('close', () => hub.removeClient(client));
    });
  };
  server.on('upgrade', onUpgrade);
  return {
    probe(req) {
      const admitted = admit(req);
      return admitted instanceof ApiError ? admitted : admitted.spec;
    },
    close() {
      server.off('upgrade', onUpgrade);
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    },
  };
}

function refuse(url: URL, req: http.IncomingMessage, hub: ActivationHub, options: ActivationSocketOptions): ApiError | undefined {
  if (url.pathname !== ACTIVATIONS_PATH) return new ApiError('route_not_found', `no WebSocket at ${url.pathname}; connect to ${ACTIVATIONS_PATH}`);
  if (options.shuttingDown()) return new ApiError('shutting_down', 'the server is shutting down');
  if (options.apiKey !== undefined) {
    const given = bearerToken(req.headers.authorization) ?? url.searchParams.get('api_key');
    if (!apiKeyMatches(given, options.apiKey)) return new ApiError('invalid_api_key', given === null ? 'missing API key: send Authorization: Bearer <key> or ?api_key=<key>' : 'the API key is not valid');
  }
  if (hub.clientCount >= options.maxClients) return new ApiError('too_many_requests', `the activation stream already has ${options.maxClients} clients`);
  return undefined;
}

function reject(socket: Duplex, error: ApiError): void {
  socket.end(rawErrorResponse(error), () => socket.destroy());
}

function onMessage(hub: ActivationHub, client: HubClient, data: RawData, isBinary: boolean, numLayers: number): void {
  const parsed = isBinary ? { ok: false as const, message: 'messages must be JSON text' } : parseSubscribeMessage(data.toString(), numLayers);
  if (!parsed.ok) return hub.send(client, { type: 'error', message: parsed.message });
  hub.subscribe(client, parsed.filter);
  hub.send(client, { type: 'subscribed', subscription: parsed.filter.spec });
}
