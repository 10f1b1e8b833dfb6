// The /metrics registry: serving and super-weight metrics fed from engine updates, HTTP answers by
// route and status class, WebSocket stream health, and prom-client's process defaults (event-loop
// lag, memory, CPU). One registry per server, so several servers in one process (tests) never share
// series. prom-client stays out of the engine.
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { EngineInfo, EngineUpdate } from '../engine/protocol.js';
import { servingMetrics } from './serving-metrics.js';
import { superWeightMetrics } from './super-weight-metrics.js';

const MISNAMED_DEFAULT_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
// prom-client samples event-loop delay every 10 ms by default, which hides stalls shorter than a
// sample; a decode step of a small model takes a few milliseconds, so sample every millisecond.
const EVENT_LOOP_RESOLUTION_MS = 1;
// Methods a route label is kept for; anything else is counted as `other` (the label stays bounded).
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const STATUS_CLASSES = ['2xx', '3xx', '4xx', '5xx'];
/** The route label of a request no route matched (its path is client-chosen, so never a label). */
export const UNMATCHED_ROUTE = 'unmatched';

export interface HttpRoute {
  method: string;
  path: string;
}

export interface TelemetryMetrics {
  handleUpdate(update: EngineUpdate): void;
  setWebSocketClients(count: number): void;
  countDroppedFrames(count: number): void;
  /** Starts each route's answer counts at zero, so they are plotted before the first request. */
  declareHttpRoutes(routes: readonly HttpRoute[]): void;
  countHttpResponse(route: string, method: string, status: number): void;
  /** The exposition text and its content type. */
  render(): Promise<{ contentType: string; body: string }>;
}

export function createMetrics(info: Pick<EngineInfo, 'contextLength' | 'knownSuperWeights' | 'numLayers'>): TelemetryMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_RESOLUTION_MS });
  // prom-client exports these gauges with a counter's `_total` suffix, which promtool rejects.
  for (const name of MISNAMED_DEFAULT_GAUGES) registry.removeSingleMetric(name);
  const registers = [registry];
  const clients = new Gauge({ name: 'swserve_websocket_clients', help: 'Clients connected to the activation stream.', registers });
  const dropped = new Counter({ name: 'swserve_websocket_frames_dropped_total', help: 'Activation frames dropped because a client read too slowly.', registers });
  const http = new Counter({
    name: 'swserve_http_requests_total',
    help: `HTTP answers by route (as in the route table; "${UNMATCHED_ROUTE}" for any other path), method and status class.`,
    labelNames: ['route', 'method', 'status_class'],
    registers,
  });
  const observers = [servingMetrics(registry, info.contextLength), superWeightMetrics(registry, { knownSuperWeights: info.knownSuperWeights, numLayers: info.numLayers })];
  return {
    handleUpdate(update) {
      const now = performance.now() / 1000;
      for (const observe of observers) observe(update, now);
    },
    setWebSocketClients: (count) => clients.set(count),
    countDroppedFrames: (count) => dropped.inc(count),
    declareHttpRoutes(routes) {
      for (const { method, path } of routes) for (const status_class of STATUS_CLASSES) http.inc({ route: path, method: method.toUpperCase(), status_class }, 0);
    },
    countHttpResponse(route, method, status) {
      const m = method.toUpperCase();
      http.inc({ route, method: HTTP_METHODS.has(m) ? m : 'other', status_class: `${Math.floor(status / 100)}xx` });
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
