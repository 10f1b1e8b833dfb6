// GET /v1/models: the one served model, with llama.cpp-style `meta` carrying device and super-weight
// facts. GET /v1/models/{model}: that model, or 404 for any other id (the SDKs' models.retrieve).
import type { RequestHandler } from 'express';
import type { ApiContext } from '../api-context.js';
import { ApiError } from '../../http/errors.js';
import type { EngineInfo } from '../../engine/protocol.js';

function weightsMeta(info: EngineInfo): Record<string, unknown> {
  const w = info.weights;
  const reference = info.superActivationReference;
  return {
    precision: w.precision,
    compute: w.compute,
    block_size: w.blockSize,
    kernel_block_sizes: w.kernelBlockSizes,
    scheme: w.scheme,
    quantize_lm_head: w.quantizeLmHead,
    clip_outliers: w.clipOutliers,
    protected_super_weights: w.protectedSuperWeights,
    round_trip_tensors: w.roundTripTensors,
    bytes: w.bytes,
    cache: w.cache?.state ?? null,
    super_activation_reference: reference
      ? { prompt: reference.prompt, values: reference.values.map((v) => ({ id: v.id, float32: v.float32, served: v.served })) }
      : null,
  };
}
import { checkChatTemplate } from '../chat/template.js';

function servedModel(ctx: ApiContext, created: number): object {
  const info = ctx.engine.info;
  const template = checkChatTemplate(info.chatTemplate);
  return {
    id: ctx.modelId,
    object: 'model',
    created,
    owned_by: 'swserve',
    meta: {
      architecture: info.architecture,
      context_length: info.contextLength,
      parameters: info.parameterCount,
      vocab_size: info.vocabSize,
      layers: info.numLayers,
      hidden_size: info.hiddenSize,
      intermediate_size: info.intermediateSize,
      device: info.session.device,
      device_id: info.session.deviceId ?? null,
      compute_dtype: info.session.computeDtype,
      device_fallback_reason: info.session.fallbackReason ?? null,
      chat_template: template.status,
      chat_template_error: template.status === 'invalid' ? template.error : null,
      super_weights: info.knownSuperWeights.map((c) => ({ id: `${c.layer}:${c.row}:${c.col}`, layer: c.layer, row: c.row, col: c.col, value: c.originalValue })),
      weights: weightsMeta(info),
    },
  };
}

export function modelsHandler(ctx: ApiContext, created: number): RequestHandler {
  return (_req, res) => {
    res.json({ object: 'list', data: [servedModel(ctx, created)] });
  };
}

export function modelHandler(ctx: ApiContext, created: number): RequestHandler {
  return (req, res) => {
    // The route's `*model` wildcard: an id with slashes (org/name) arrives as its segments.
    const segments = req.params.model as unknown as string[];
    const id = segments.join('/');
    if (id !== ctx.modelId) throw new ApiError('model_not_found', `model "${id}" is not served here; this server serves "${ctx.modelId}"`, 'model');
    res.json(servedModel(ctx, created));
  };
}
