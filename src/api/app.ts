// The express app: one route table listing every path, JSON bodies with a size limit, API-key auth
// on /v1, CORS for the origins the operator allows (none by default), every answer counted by route
// and status class, and the OpenAI error envelope for everything that goes wrong.
import cors from 'cors';
import express, { type Express, type RequestHandler } from 'express';
import type { ApiContext } from './api-context.js';
import { requireApiKey } from '../http/api-key.js';
import { refuseDeepJson } from '../http/json-depth.js';
import { ablationCompareHandler } from './ablations/handler.js';
import { chatCompletionsHandler } from './chat/handler.js';
import { completionsHandler } from './completions/handler.js';
import { ApiError, errorMiddleware, sendError } from '../http/errors.js';
import { healthHandler, readyHandler } from './health/handler.js';
import { modelHandler, modelsHandler } from './models/handler.js';
import { responsesHandler } from './responses/handler.js';
import { superWeightsDetectHandler, superWeightsListHandler } from './super-weights/handler.js';
import { UNMATCHED_ROUTE } from '../telemetry/metrics.js';
import { activationProbeHandler, LIVE_PAGE_QUERY, livePageHandler, metricsHandler } from '../telemetry/telemetry-routes.js';

export interface Route {
  method: 'get' | 'post';
  /** express syntax; `*name` matches one or more segments. */
  path: string;
  handler: RequestHandler;
  /** Behind the API key when one is configured. */
  auth: boolean;
  /** Pages and probes: the query parameters they read; any other answers 400 (nothing sent is ignored). */
  query?: readonly string[];
}

// How long a browser may reuse a CORS preflight answer.
const CORS_MAX_AGE_SECONDS = 600;

export function routeTable(ctx: ApiContext): Route[] {
  const started = Math.floor(Date.now() / 1000);
  return [
    { method: 'get', path: '/health', handler: healthHandler(ctx), auth: false, query: [] },
    { method: 'get', path: '/ready', handler: readyHandler(ctx), auth: false, query: [] },
    { method: 'get', path: '/metrics', handler: metricsHandler(ctx.metrics), auth: false, query: [] },
    { method: 'get', path: '/', handler: livePageHandler('index.html'), auth: false, query: LIVE_PAGE_QUERY },
    { method: 'get', path: '/dashboard', handler: livePageHandler('index.html'), auth: false, query: LIVE_PAGE_QUERY },
    { method: 'get', path: '/dashboard/live.js', handler: livePageHandler('live.js'), auth: false, query: [] },
    { method: 'get', path: '/v1/models', handler: modelsHandler(ctx, started), auth: true },
    { method: 'get', path: '/v1/models/*model', handler: modelHandler(ctx, started), auth: true },
    { method: 'post', path: '/v1/completions', handler: completionsHandler(ctx), auth: true },
    { method: 'post', path: '/v1/chat/completions', handler: chatCompletionsHandler(ctx), auth: true },
    { method: 'post', path: '/v1/responses', handler: responsesHandler(ctx), auth: true },
    { method: 'post', path: '/v1/ablations/compare', handler: ablationCompareHandler(ctx), auth: true },
    { method: 'get', path: '/v1/super_weights', handler: superWeightsListHandler(ctx), auth: true },
    { method: 'post', path: '/v1/super_weights/detect', handler: superWeightsDetectHandler(ctx), auth: true },
    // The key is checked by the probe itself, as the upgrade does (browsers send it as ?api_key=).
    { method: 'get', path: '/v1/activations', handler: activationProbeHandler(ctx.probeActivations), auth: false },
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
  ctx.metrics.declareHttpRoutes(routes.map(({ method, path }) => ({ method, path })));
  app.use((req, res, next) => {
    res.once('close', () => ctx.metrics.countHttpResponse((res.locals.route as string | undefined) ?? UNMATCHED_ROUTE, req.method, res.statusCode));
    next();
  });
  const methodsOf = new Map<string, string[]>();
  for (const route of routes) methodsOf.set(route.path, [...(methodsOf.get(route.path) ?? []), route.method.toUpperCase()]);
  const corsFor = (path: string): RequestHandler[] => (ctx.config.allowedOrigins.length === 0 ? [] : [corsMiddleware(ctx.config.allowedOrigins, methodsOf.get(path)!)]);

  for (const route of routes) {
    const chain: RequestHandler[] = [labelRoute(route.path), ...corsFor(route.path)];
    if (route.query) chain.push(onlyQuery(route.query));
    // During a shutdown drain the API refuses new work; probes and metrics still answer.
    if (route.auth) chain.push(auth, refuseWhileStopping);
    if (route.method === 'post') chain.push(requireJson, json, refuseDeepJson);
    app[route.method](route.path, ...chain, route.handler);
  }
  // OPTIONS on every path: the CORS preflight when origins are allowed, else just the methods.
  for (const [path, methods] of methodsOf) {
    app.options(path, labelRoute(path), (_req, res, next) => {
      res.setHeader('Allow', [...methods, 'OPTIONS'].join(', '));
      next();
    }, ...corsFor(path), (_req, res) => {
      res.status(204).end();
    });
  }
  app.use((req, res) => {
    const route = routes.find((r) => r.path === req.path);
    if (route) {
      const allowed = [...methodsOf.get(route.path)!, 'OPTIONS'];
      res.locals.route = route.path;
      res.setHeader('Allow', allowed.join(', '));
      sendError(res, new ApiError('method_not_allowed', `${req.method} is not allowed on ${req.path}; use ${allowed.join(', ')}`));
      return;
    }
    sendError(res, new ApiError('route_not_found', `no route ${req.method} ${req.path}`));
  });
  app.use(errorMiddleware);
  return app;
}

/** Remembers the matched route for the HTTP metrics (the table's path, never the client's). */
function labelRoute(path: string): RequestHandler {
  return (_req, res, next) => {
    res.locals.route = path;
    next();
  };
}

function onlyQuery(allowed: readonly string[]): RequestHandler {
  return (req, _res, next) => {
    const unknown = [...new URLSearchParams(req.url.split('?')[1] ?? '').keys()].find((key) => !allowed.includes(key));
    if (unknown === undefined) return next();
    const takes = allowed.length === 0 ? 'takes no query parameters' : `takes only ${allowed.join(', ')}`;
    next(new ApiError('invalid_request', `unknown query parameter "${unknown}": ${req.path} ${takes}`, unknown));
  };
}

/** The `cors` package for one path: the allowed origins (or `*`), that path's methods, Retry-After readable. */
function corsMiddleware(origins: readonly string[], methods: string[]): RequestHandler {
  return cors({
    origin: origins.includes('*') ? '*' : [...origins],
    methods: [...methods, 'OPTIONS'],
    exposedHeaders: ['Retry-After'],
    maxAge: CORS_MAX_AGE_SECONDS,
    preflightContinue: true,
  });
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
