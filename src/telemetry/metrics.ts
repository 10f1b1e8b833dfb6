// The /metrics registry: serving and super-weight metrics fed from engine updates, WebSocket stream
// health, and prom-client's process defaults (event-loop lag, memory, CPU). One registry per server,
// so several servers in one process (tests) never share series. prom-client stays out of the engine.
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { EngineInfo, EngineUpdate } from '../engine/protocol.js';
import { servingMetrics } from './serving-metrics.js';
import { superWeightMetrics } from './super-weight-metrics.js';
import { precisionMetrics } from './precision-metrics.js';

const MISNAMED_DEFAULT_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export interface TelemetryMetrics {
  handleUpdate(update: EngineUpdate): void;
  setWebSocketClients(count: number): void;
  countDroppedFrames(count: number): void;
  /** The exposition text and its content type. */
  render(): Promise<{ contentType: string; body: string }>;
}

// The alert's default share when no configuration sets one (config/server.json has 0.5).
const DEFAULT_MIN_SHARE = 0.5;

export function createMetrics(info: Pick<EngineInfo, 'contextLength' | 'knownSuperWeights' | 'weights' | 'superActivationReference'>, superActivationMinShare = DEFAULT_MIN_SHARE): TelemetryMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // prom-client exports these gauges with a counter's `_total` suffix, which promtool rejects.
  for (const name of MISNAMED_DEFAULT_GAUGES) registry.removeSingleMetric(name);
  const registers = [registry];
  const clients = new Gauge({ name: 'swserve_websocket_clients', help: 'Clients connected to the activation stream.', registers });
  const dropped = new Counter({ name: 'swserve_websocket_frames_dropped_total', help: 'Activation frames dropped because a client read too slowly.', registers });
  const observers = [servingMetrics(registry, info.contextLength), superWeightMetrics(registry, info.knownSuperWeights)];
  precisionMetrics(registry, info, superActivationMinShare);
  return {
    handleUpdate(update) {
      const now = performance.now() / 1000;
      for (const observe of observers) observe(update, now);
    },
    setWebSocketClients: (count) => clients.set(count),
    countDroppedFrames: (count) => dropped.inc(count),
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
