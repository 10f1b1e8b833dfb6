// GET /health: 200 once the model is loaded (503 before, from the loading app), with how many times a
// crashed engine worker was replaced; 503 while a replacement loads or once the engine is down.
// GET /ready: 200 while the server admits work, 503 when it is full or shutting down, with the numbers either way.
import type { RequestHandler } from 'express';
import type { ApiContext } from '../api-context.js';
import { ApiError, RETRY_AFTER_SECONDS, sendError } from '../../http/errors.js';

export function healthHandler(ctx: ApiContext): RequestHandler {
  return (_req, res) => {
    // vLLM answers 503 once its engine is dead; so does swserve, and while a new worker loads.
    const state = ctx.engine.state;
    if (state === 'restarting') return sendError(res, new ApiError('engine_failure', `the engine worker is restarting after a crash (${ctx.engine.restarts} restart(s) so far)`));
    if (state === 'stopped') return sendError(res, new ApiError('engine_failure', 'the engine worker has stopped'));
    res.json({ status: 'ok', engine_restarts: ctx.engine.restarts });
  };
}

export function readyHandler(ctx: ApiContext): RequestHandler {
  return (_req, res) => {
    const accepting = !ctx.shuttingDown() && ctx.admission.used < ctx.admission.limit;
    if (!accepting) res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
    res.status(accepting ? 200 : 503).json({
      status: ctx.shuttingDown() ? 'shutting_down' : accepting ? 'ready' : 'full',
      sequences_in_flight: ctx.admission.used,
      capacity: ctx.admission.limit,
      max_running: ctx.config.limits.maxNumSeqs,
      max_waiting: ctx.config.limits.maxWaiting,
    });
  };
}
