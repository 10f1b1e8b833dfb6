// HTTP handlers for telemetry: the Prometheus exposition and the live page's static files, served
// from the source tree as they are (no build step).
import type { RequestHandler } from 'express';
import { fileURLToPath } from 'node:url';
import type { TelemetryMetrics } from './metrics.js';

// From dist/src/telemetry/ back to the source tree, which ships with the package.
const LIVE_PAGE_DIR = fileURLToPath(new URL('../../../src/telemetry/live-page/', import.meta.url));

export function metricsHandler(metrics: Pick<TelemetryMetrics, 'render'>): RequestHandler {
  return async (_req, res) => {
    const { contentType, body } = await metrics.render();
    res.setHeader('Content-Type', contentType);
    res.end(body);
  };
}

/** One file of the live page (index.html, live.js). */
export function livePageHandler(file: string): RequestHandler {
  return (_req, res, next) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(file, { root: LIVE_PAGE_DIR }, (err) => err && next(err));
  };
}
