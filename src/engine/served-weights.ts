// The weights a session serves, settled at load: float32 or float16 from the checkpoint, or a
// quantized copy (made now or taken from the cache); what the graph holds at each switchable
// coordinate; and the facts /v1/models reports (precision, block size, protected weights, bytes).
import { parameterCount, type Checkpoint } from '../model/checkpoint.js';
import type { ComputeDtype, QuantizedGraphWeights } from '../model/graph-context.js';
import { openQuantizedWeights, type CacheState, type QuantizedWeights } from '../model/quantize/quantized-cache.js';
import type { QuantizeProgress } from '../model/quantize/quantized-copy.js';
import {
  computePrecision,
  isQuantized,
  quantizationSettings,
  weightOptionProblems,
  type ComputePrecision,
  type QuantScheme,
  type WeightOptions,
  type WeightsPrecision,
} from '../model/quantize/weight-format.js';
import { DTYPE_BYTES } from '../model/safetensors.js';
import { coordinateId, type SuperWeightCoordinate } from '../model/switch-plan.js';
import type { DeviceRequest } from './device.js';

/** What /v1/models and the CLI report about the served weights. */
export interface WeightsInfo {
  precision: WeightsPrecision;
  /** Arithmetic of the linear layers: float32/float16, or int8 activations in MatMulNBits. */
  compute: ComputePrecision | 'float16';
  blockSize: number | null;
  /** The blocks MatMulNBits runs (at most 256; a larger block runs as pieces that carry its scale). */
  kernelBlockSizes: number[];
  /** Linear weights whose blocks no kernel block fits inside, served as float32 after a quantize-dequantize round trip. */
  roundTripTensors: number;
  scheme: QuantScheme | null;
  quantizeLmHead: boolean;
  clipOutliers: number | null;
  /** Super weights left out of their blocks and restored exactly through the switch. */
  protectedSuperWeights: string[];
  /** Bytes of the weights as the session holds them (quantized codes, scales and zero points, float tensors in compute dtype). */
  bytes: number;
  /** The quantized copy: where it is and whether this load made it. */
  cache: { dir: string; state: CacheState; reason?: string; quantizeMs: number } | null;
}

export interface ServedWeights {
  info: WeightsInfo;
  /** Graph compute dtype, or undefined for the device's default. */
  computeDtype?: ComputeDtype;
  quantized?: QuantizedGraphWeights;
  /** The value the graph's down_proj holds at a coordinate, given the checkpoint's value there. */
  inGraph(c: SuperWeightCoordinate, original: number): number;
}

export interface ServedWeightsInput {
  checkpoint: Checkpoint;
  options: Partial<WeightOptions>;
  device: DeviceRequest;
  knownSuperWeights: readonly SuperWeightCoordinate[];
  log?: (message: string) => void;
  onProgress?: QuantizeProgress;
}

export function prepareServedWeights(input: ServedWeightsInput): ServedWeights {
  const { checkpoint, device } = input;
  const options: WeightOptions = {
    blockSize: 32,
    scheme: 'symmetric',
    protectSuperWeights: true,
    quantizeLmHead: false,
    ...input.options,
    precision: input.options.precision ?? (device.kind === 'cuda' ? 'float16' : 'float32'),
  };
  const problems = weightOptionProblems(options);
  if (problems.length > 0) throw new Error(problems.join('; '));
  if (!isQuantized(options.precision)) {
    const dtype: ComputeDtype = options.precision === 'float16' ? 'float16' : 'float32';
    // Measured (npm run bench:weights): on x86-64 onnxruntime 1.30 runs float16 MatMul through float32
    // kernels, so float16 weights take the same memory as float32 and decode no faster.
    if (dtype === 'float16' && device.kind === 'cpu') input.log?.('float16 weights do not pay on this CPU build of onnxruntime (float32 memory, no faster); int8 or int4 do');
    return {
      info: floatWeightsInfo(checkpoint, dtype),
      computeDtype: input.options.precision ? dtype : undefined,
      inGraph: (_c, original) => original,
    };
  }
  if (device.kind !== 'cpu') throw new Error(`--weights ${options.precision} runs on CPU only (onnxruntime's MatMulNBits); use --device cpu`);
  if (checkpoint.onnx) throw new Error(`--weights ${options.precision} quantizes safetensors checkpoints; ${checkpoint.dir} is an ONNX export`);
  const settings = quantizationSettings(options, input.knownSuperWeights);
  const weights = openQuantizedWeights(checkpoint, settings, { cacheDir: options.cacheDir, log: input.log, onProgress: input.onProgress });
  const compute = computePrecision(options);
  const downNames = checkpoint.layout.layers.map((layer) => layer.down);
  return {
    info: {
      precision: options.precision,
      compute,
      blockSize: options.blockSize,
      kernelBlockSizes: [...new Set(weights.manifest.quantized.map((t) => t.kernelBlock))].sort((a, b) => a - b),
      roundTripTensors: weights.manifest.float.filter((t) => t.roundTrip).length,
      scheme: options.scheme,
      quantizeLmHead: options.quantizeLmHead,
      clipOutliers: options.clipOutliers ?? null,
      protectedSuperWeights: settings.protectedWeights.map(coordinateId),
      bytes: quantizedBytes(checkpoint, weights),
      cache: { dir: weights.dir, state: weights.cache.state, reason: weights.cache.reason, quantizeMs: weights.manifest.quantizeMs },
    },
    computeDtype: 'float32',
    quantized: { weights, compute, heldOut: compute === 'int8' ? heldOutChannels(checkpoint, input.knownSuperWeights, weights) : undefined },
    inGraph: (c) => weights.elementValue(downNames[c.layer]!, c.row, c.col),
  };
}

/**
 * Input channels kept out of int8 activations: the super activation's hidden channels (each known
 * super weight's row) in every layer reading the residual stream, and each super weight's column in
 * its layer's down_proj, whose first-token input there is the huge intermediate activation.
 */
function heldOutChannels(checkpoint: Checkpoint, known: readonly SuperWeightCoordinate[], weights: QuantizedWeights): Map<string, number[]> {
  const held = new Map<string, number[]>();
  if (known.length === 0) return held;
  const rows = [...new Set(known.map((c) => c.row))].sort((a, b) => a - b);
  const { layout } = checkpoint;
  const readers = layout.layers.flatMap((layer) => [
    ...(layer.attention.kind === 'fused' ? [layer.attention.qkv] : [layer.attention.q, layer.attention.k, layer.attention.v]),
    ...(layer.mlp.kind === 'fused' ? [layer.mlp.gateUp] : [layer.mlp.gate, layer.mlp.up]),
  ]);
  readers.push(layout.lmHead ?? layout.embedTokens);
  for (const name of readers) if (weights.quantized.has(name)) held.set(name, rows);
  for (const c of known) {
    const down = layout.layers[c.layer]!.down;
    if (weights.quantized.has(down)) held.set(down, [...new Set([...(held.get(down) ?? []), c.col])].sort((a, b) => a - b));
  }
  return held;
}

/** Float weights as the session computes them (the device may choose the dtype: WebGPU without shader-f16 stays float32). */
export function floatWeightsInfo(checkpoint: Checkpoint, dtype: ComputeDtype): WeightsInfo {
  return {
    precision: dtype,
    compute: dtype,
    blockSize: null,
    kernelBlockSizes: [],
    roundTripTensors: 0,
    scheme: null,
    quantizeLmHead: false,
    clipOutliers: null,
    protectedSuperWeights: [],
    bytes: parameterCount(checkpoint) * (dtype === 'float16' ? 2 : 4),
    cache: null,
  };
}

/** Quantized regions as stored, float tensors as the float32 graph casts them (a float16/bfloat16 embedding table stays as it is). */
function quantizedBytes(checkpoint: Checkpoint, weights: QuantizedWeights): number {
  const quantized = weights.manifest.quantized.reduce((sum, t) => sum + t.codes.length + t.scales.length + (t.zeroPoints?.length ?? 0), 0);
  const { embedTokens, lmHead } = checkpoint.layout;
  const float = weights.manifest.float.reduce((sum, t) => {
    const float32 = (t.data.length / DTYPE_BYTES[t.dtype]) * 4;
    if (t.name !== embedTokens || t.dtype === 'F32') return sum + float32;
    // A tied lm_head left in float reads the table as float32 too.
    return sum + t.data.length + (lmHead === undefined && !weights.quantized.has(embedTokens) ? float32 : 0);
  }, 0);
  return quantized + float;
}

/** "int4 (blocks of 32, symmetric, 1 super weight protected, int8 activations)", or the float precision. */
export function describeWeights(w: WeightsInfo): string {
  if (w.blockSize === null) return `${w.precision} weights`;
  const parts = [`blocks of ${w.blockSize}`, w.scheme!, `${w.protectedSuperWeights.length} super weight${w.protectedSuperWeights.length === 1 ? '' : 's'} protected`, `${w.compute} activations`];
  if (w.clipOutliers !== null) parts.push(`clipped at ${w.clipOutliers} sigma`);
  if (w.roundTripTensors > 0) parts.push(`${w.roundTripTensors} tensors as a float32 round trip`);
  return `${w.precision} weights (${parts.join(', ')}; ${w.cache!.state === 'hit' ? 'cached copy' : `quantized in ${(w.cache!.quantizeMs / 1000).toFixed(1)} s`})`;
}
