// GET /v1/super_weights: the super weights in force for the served model and where each came from.
// POST /v1/super_weights/detect: runs detection on the served model (reporting only; what is in force
// is fixed at load: save the result as a --super-weights file, or start with --detect-on-load).
import { setMaxListeners } from 'node:events';
import type { Request, RequestHandler, Response } from 'express';
import { detectionChart } from '../../superweights/charts/detection-chart.js';
import { ATTRIBUTION_GROUPS } from '../../superweights/column-attribution.js';
import { DEFAULT_DETECTION_OPTIONS, detectSuperWeights, type DetectionOptions } from '../../superweights/detection.js';
import { detectionJson } from '../../superweights/detection-report.js';
import { SequenceFailed } from '../../superweights/engine-run.js';
import { ApiError } from '../../http/errors.js';
import { coordinateId } from '../../model/switch-plan.js';
import { disconnectSignal, type ApiContext } from '../api-context.js';
import { superWeightsDetectSchema } from './schema.js';
import { parseRequestBody } from '../request-body.js';

export function superWeightsListHandler(ctx: ApiContext): RequestHandler {
  return (_req, res) => {
    const values = new Map(ctx.engine.info.knownSuperWeights.map((c) => [coordinateId(c), c.originalValue]));
    const { origin, description, superWeights } = ctx.superWeights;
    res.json({
      object: 'list',
      model: ctx.modelId,
      origin,
      description,
      data: superWeights.map((c) => ({ id: coordinateId(c), layer: c.layer, row: c.row, col: c.col, original_value: values.get(coordinateId(c)) ?? null, source: c.source })),
    });
  };
}

export function superWeightsDetectHandler(ctx: ApiContext): RequestHandler {
  return async (req: Request, res: Response) => {
    const body = parseRequestBody(ctx, superWeightsDetectSchema, req.body);
    const defaults: DetectionOptions = { ...DEFAULT_DETECTION_OPTIONS, ...ctx.config.detection };
    const options: DetectionOptions = {
      prompts: body.prompt == null ? defaults.prompts : typeof body.prompt === 'string' ? [body.prompt] : body.prompt,
      spikeRatio: body.spike_ratio ?? defaults.spikeRatio,
      minMagnitude: body.min_magnitude ?? defaults.minMagnitude,
      maxSuperWeights: body.max_super_weights ?? defaults.maxSuperWeights,
    };
    // At most this many sequences run at once (a pass over the prompts, or one attribution round);
    // capped at the server's capacity, since the engine queues whatever does not fit a batch.
    const concurrent = Math.max(options.prompts.length, ATTRIBUTION_GROUPS);
    const release = ctx.admission.acquire(Math.min(concurrent, ctx.admission.limit), 'prompt');
    const signal = disconnectSignal(req).signal;
    // Every sequence in flight listens for the client going away.
    setMaxListeners(concurrent + 1, signal);
    try {
      const result = await detectSuperWeights(ctx.engine, options, signal).catch((err: unknown) => {
        // What the engine refuses about a prompt (too long, ...) is the client's 400, as on /v1/completions.
        if (err instanceof SequenceFailed) throw new ApiError(err.kind, err.message, err.kind === 'engine_failure' ? null : 'prompt');
        throw err;
      });
      res.json({
        object: 'super_weights.detection',
        model: ctx.modelId,
        ...detectionJson(result),
        ...(body.chart ? { chart_svg: detectionChart(result, ctx.modelId) } : {}),
      });
    } finally {
      release();
    }
  };
}
