// Telemetry's one entry point: subscribes metrics and the activation hub to the engine's updates and
// puts the /v1/activations WebSocket on the HTTP server. A fault here is logged, never thrown into
// the engine client's message handler, so telemetry can not take the server down.
import type http from 'node:http';
import type { EngineClient } from '../engine/engine-client.js';
import type { EngineUpdate } from '../engine/protocol.js';
import type { ApiError } from '../http/errors.js';
import type { Subscription } from './subscription.js';
import { ActivationHub } from './activation-hub.js';
import { attachActivationSocket } from './activation-socket.js';
import { createMetrics, type TelemetryMetrics } from './metrics.js';

export interface TelemetryOptions {
  maxClients: number;
  clientBufferFrames: number;
  /** Share of the float32 super activation below which the alert rule counts live traffic as collapsed. */
  superActivationMinShare?: number;
  clientBufferBytes: number;
  apiKey?: string;
  shuttingDown: () => boolean;
  log: (message: string) => void;
}

export interface Telemetry {
  metrics: TelemetryMetrics;
  /** What a WebSocket upgrade of this request would meet (GET /v1/activations without an upgrade). */
  probeActivations(req: http.IncomingMessage): ApiError | Subscription;
  close(): void;
}

export function startTelemetry(engine: Pick<EngineClient, 'info' | 'onUpdate' | 'setDecodeFrames'>, server: http.Server, options: TelemetryOptions): Telemetry {
  const metrics = createMetrics(engine.info, options.superActivationMinShare);
  const hub = new ActivationHub({
    clientBufferFrames: options.clientBufferFrames,
    clientBufferBytes: options.clientBufferBytes,
    knownSuperWeights: engine.info.knownSuperWeights,
    onClients: (count) => metrics.setWebSocketClients(count),
    onDropped: (count) => metrics.countDroppedFrames(count),
    onDecodeDemand: (wanted) => engine.setDecodeFrames(wanted),
  });
  const socket = attachActivationSocket(server, hub, {
    maxClients: options.maxClients,
    apiKey: options.apiKey,
    numLayers: engine.info.numLayers,
    shuttingDown: options.shuttingDown,
    onError: (err) => options.log(`activation socket: ${err.stack ?? err.message}`),
  });
  let failed = false;
  const unsubscribe = engine.onUpdate((update: EngineUpdate) => {
    try {
      metrics.handleUpdate(update);
      hub.handleUpdate(update);
    } catch (err) {
      // Once is enough: the same fault would repeat on every step.
      if (!failed) options.log(`telemetry: ${(err as Error).stack ?? String(err)}`);
      failed = true;
    }
  });
  return {
    metrics,
    probeActivations: (req) => socket.probe(req),
    close() {
      unsubscribe();
      socket.close();
    },
  };
}
