// What every handler may use: the engine client, the limits, and the model id clients send.
import type { IncomingMessage } from 'node:http';
import type { Request } from 'express';
import type { ApiError } from '../http/errors.js';
import type { Subscription } from '../telemetry/subscription.js';
import type { ServerConfig } from '../config/server-config.js';
import type { EngineClient } from '../engine/engine-client.js';
import type { SuperWeightsInForce } from '../superweights/resolve-super-weights.js';
import type { TelemetryMetrics } from '../telemetry/metrics.js';
import type { Admission } from './admission.js';

export interface ApiContext {
  engine: EngineClient;
  modelId: string;
  config: ServerConfig;
  admission: Admission;
  /** Resolves when the server starts shutting down (streams end, new work is refused). */
  shuttingDown: () => boolean;
  /** The Prometheus exposition behind GET /metrics. */
  metrics: Pick<TelemetryMetrics, 'render' | 'declareHttpRoutes' | 'countHttpResponse'>;
  /** What a WebSocket upgrade to /v1/activations would meet (its plain GET answers with it). */
  probeActivations: (req: IncomingMessage) => ApiError | Subscription;
  /** The super weights in force and where each came from (GET /v1/super_weights). */
  superWeights: SuperWeightsInForce;
}

/** Aborts when the client goes away before the response is complete. */
export function disconnectSignal(req: Request): AbortController {
  const controller = new AbortController();
  req.res!.once('close', () => {
    if (!req.res!.writableFinished) controller.abort();
  });
  return controller;
}

let counter = 0;
export function responseId(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}${(counter++).toString(36).padStart(4, '0')}`;
}
