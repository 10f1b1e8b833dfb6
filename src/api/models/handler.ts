// GET /v1/models: the one served model, with llama.cpp-style `meta` carrying device and super-weight facts.
import type { RequestHandler } from 'express';
import type { ApiContext } from '../api-context.js';
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

export function modelsHandler(ctx: ApiContext, created: number): RequestHandler {
  return (_req, res) => {
    const info = ctx.engine.info;
    res.json({
      object: 'list',
      data: [
        {
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
            super_weights: info.knownSuperWeights.map((c) => ({ id: `${c.layer}:${c.row}:${c.col}`, layer: c.layer, row: c.row, col: c.col, value: c.originalValue })),
            weights: weightsMeta(info),
          },
        },
      ],
    });
  };
}
