// HTTP handlers for telemetry: the Prometheus exposition and the live page's static files, served
// from the source tree as they are (no build step).
import type { RequestHandler } from 'express';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage } from 'node:http';
import { ApiError, sendError } from '../http/errors.js';
import type { TelemetryMetrics } from './metrics.js';
import type { Subscription } from './subscription.js';

// From dist/src/telemetry/ back to the source tree, which ships with the package.
const LIVE_PAGE_DIR = fileURLToPath(new URL('../../../src/telemetry/live-page/', import.meta.url));

export function metricsHandler(metrics: Pick<TelemetryMetrics, 'render'>): RequestHandler {
  return async (_req, res) => {
    const { contentType, body } = await metrics.render();
    res.setHeader('Content-Type', contentType);
    res.end(body);
  };
}

/** The query parameters the live page reads (it passes them on to the activation stream). */
export const LIVE_PAGE_QUERY = ['api_key', 'request_ids', 'plans', 'modes', 'layers'] as const;

/** GET /v1/activations without an upgrade: the refusal an upgrade would get, or the subscription. */
export function activationProbeHandler(probe: (req: IncomingMessage) => ApiError | Subscription): RequestHandler {
  return (req, res) => {
    const outcome = probe(req);
    if (outcome instanceof ApiError) return sendError(res, outcome);
    res.json({ object: 'activation.subscription', subscription: outcome, upgrade: 'send this request with Upgrade: websocket to receive the frames' });
  };
}

/** One file of the live page (index.html, live.js). */
export function livePageHandler(file: string): RequestHandler {
  return (_req, res, next) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(file, { root: LIVE_PAGE_DIR }, (err) => err && next(err));
  };
}
