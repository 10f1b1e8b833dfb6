// The express app: one route table listing every path, JSON bodies with a size limit, API-key auth
// on /v1, the OpenAI error envelope for everything that goes wrong.
import express, { type Express, type RequestHandler } from 'express';
import type { ApiContext } from './api-context.js';
import { requireApiKey } from '../http/api-key.js';
import { ablationCompareHandler } from './ablations/handler.js';
import { chatCompletionsHandler } from './chat/handler.js';
import { completionsHandler } from './completions/handler.js';
import { ApiError, errorMiddleware, sendError } from '../http/errors.js';
import { healthHandler, readyHandler } from './health/handler.js';
import { modelsHandler } from './models/handler.js';
import { superWeightsDetectHandler, superWeightsListHandler } from './super-weights/handler.js';
import { livePageHandler, metricsHandler } from '../telemetry/telemetry-routes.js';

interface Route {
  method: 'get' | 'post';
  path: string;
  handler: RequestHandler;
  /** Behind the API key when one is configured. */
  auth: boolean;
}

export function routeTable(ctx: ApiContext): Route[] {
  return [
    { method: 'get', path: '/health', handler: healthHandler(ctx), auth: false },
    { method: 'get', path: '/ready', handler: readyHandler(ctx), auth: false },
    { method: 'get', path: '/metrics', handler: metricsHandler(ctx.metrics), auth: false },
    { method: 'get', path: '/', handler: livePageHandler('index.html'), auth: false },
    { method: 'get', path: '/dashboard', handler: livePageHandler('index.html'), auth: false },
    { method: 'get', path: '/dashboard/live.js', handler: livePageHandler('live.js'), auth: false },
    { method: 'get', path: '/v1/models', handler: modelsHandler(ctx, Math.floor(Date.now() / 1000)), auth: true },
    { method: 'post', path: '/v1/completions', handler: completionsHandler(ctx), auth: true },
    { method: 'post', path: '/v1/chat/completions', handler: chatCompletionsHandler(ctx), auth: true },
    { method: 'post', path: '/v1/ablations/compare', handler: ablationCompareHandler(ctx), auth: true },
    { method: 'get', path: '/v1/super_weights', handler: superWeightsListHandler(ctx), auth: true },
    { method: 'post', path: '/v1/super_weights/detect', handler: superWeightsDetectHandler(ctx), auth: true },
  ];
}

export function createApp(ctx: ApiContext): Express {
  const app = express();
  app.disable('x-powered-by');
  const auth = requireApiKey(ctx.config.apiKey);
  const json = express.json({ limit: ctx.config.limits.maxBodyBytes });
  const refuseWhileStopping: RequestHandler = (_req, _res, next) =>
    next(ctx.shuttingDown() ? new ApiError('shutting_down', 'the server is shutting down') : undefined);
  const requireJson: RequestHandler = (req, _res, next) =>
    next(req.is('application/json') ? undefined : new ApiError('invalid_request', 'the request body must be JSON (Content-Type: application/json)'));
  const routes = routeTable(ctx);
  for (const route of routes) {
    // During a shutdown drain the API refuses new work; probes and metrics still answer.
    const chain: RequestHandler[] = route.auth ? [auth, refuseWhileStopping] : [];
    if (route.method === 'post') chain.push(requireJson, json);
    app[route.method](route.path, ...chain, route.handler);
  }
  app.use((req, res) => {
    const allowed = routes.filter((r) => r.path === req.path).map((r) => r.method.toUpperCase());
    if (allowed.length > 0) {
      res.setHeader('Allow', allowed.join(', '));
      sendError(res, new ApiError('method_not_allowed', `${req.method} is not allowed on ${req.path}; use ${allowed.join(', ')}`));
      return;
    }
    sendError(res, new ApiError('route_not_found', `no route ${req.method} ${req.path}`));
  });
  app.use(errorMiddleware);
  return app;
}

/** The app that answers while the model loads: health says 503, everything else too. */
export function createLoadingApp(state: () => 'loading' | 'failed'): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res) => {
    const failed = state() === 'failed';
    sendError(res, new ApiError(failed ? 'engine_failure' : 'model_loading', failed ? 'the model failed to load' : 'the model is loading'));
  });
  return app;
}
