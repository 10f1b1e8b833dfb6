// How the served weights are stored: float32, float16, or block-quantized int8/int4 run through
// onnxruntime's MatMulNBits, and the settings that decide a quantized copy (the cache key covers them).
import type { SuperWeightCoordinate } from '../switch-plan.js';

export type WeightsPrecision = 'float32' | 'float16' | 'int8' | 'int4';
export const WEIGHTS_PRECISIONS: readonly WeightsPrecision[] = ['float32', 'float16', 'int8', 'int4'];

/** Symmetric: one scale per block, zero at the middle code (llama.cpp Q8_0/Q4_0); asymmetric adds a zero point (Q4_1). */
export type QuantScheme = 'symmetric' | 'asymmetric';
export const QUANT_SCHEMES: readonly QuantScheme[] = ['symmetric', 'asymmetric'];

/** MatMulNBits arithmetic: float32 activations (accuracy_level 0) or int8 activations per block (accuracy_level 4). */
export type ComputePrecision = 'float32' | 'int8';
export const COMPUTE_PRECISIONS: readonly ComputePrecision[] = ['float32', 'int8'];

export interface WeightOptions {
  precision: WeightsPrecision;
  /** Elements per quantization block along the input dimension. */
  blockSize: number;
  scheme: QuantScheme;
  /** Keep the known super weights out of their blocks and add them back exactly through the switch. */
  protectSuperWeights: boolean;
  quantizeLmHead: boolean;
  /** Clip weights beyond this many standard deviations of their tensor before quantizing (super weights exempt). */
  clipOutliers?: number;
  /** Defaults to int8 for quantized weights: onnxruntime's fast CPU kernels need it for 8-bit weights. */
  compute?: ComputePrecision;
  /** Where quantized copies are kept; defaults to $SWSERVE_CACHE/quantized or ~/.cache/swserve/quantized. */
  cacheDir?: string;
}

// llama.cpp's Q8_0/Q4_0 block, and what onnxruntime's own quantizer defaults to.
export const DEFAULT_BLOCK_SIZE = 32;

export const FLOAT32_WEIGHTS: WeightOptions = {
  precision: 'float32',
  blockSize: DEFAULT_BLOCK_SIZE,
  scheme: 'symmetric',
  protectSuperWeights: true,
  quantizeLmHead: false,
};

const SMALLEST_BLOCK = 16;

export type QuantizedPrecision = 'int8' | 'int4';

export function isQuantized(precision: WeightsPrecision): precision is QuantizedPrecision {
  return precision === 'int8' || precision === 'int4';
}

export function precisionBits(precision: QuantizedPrecision): 4 | 8 {
  return precision === 'int4' ? 4 : 8;
}

export function computePrecision(options: WeightOptions): ComputePrecision {
  return options.compute ?? (isQuantized(options.precision) ? 'int8' : 'float32');
}

/** Why the options cannot be served, each problem a sentence; empty when they can. */
export function weightOptionProblems(options: WeightOptions): string[] {
  const problems: string[] = [];
  const b = options.blockSize;
  if (!Number.isInteger(b) || b < SMALLEST_BLOCK || (b & (b - 1)) !== 0) problems.push(`block size ${b} must be a power of two of at least ${SMALLEST_BLOCK}`);
  if (options.clipOutliers !== undefined && !(options.clipOutliers > 0)) problems.push(`--clip-outliers ${options.clipOutliers} must be a positive number of standard deviations`);
  if (options.compute === 'int8' && !isQuantized(options.precision)) problems.push(`--compute int8 needs --weights int8 or int4 (MatMulNBits); ${options.precision} weights compute in ${options.precision}`);
  return problems;
}

/** Everything that decides the bytes of a quantized copy (the cache key covers all of it). */
export interface QuantizationSettings {
  bits: 4 | 8;
  blockSize: number;
  scheme: QuantScheme;
  /** Coordinates left out of their block's scale and stored as 0. */
  protectedWeights: SuperWeightCoordinate[];
  /** Exempt from clipping (the known super weights, protected or not). */
  clipExempt: SuperWeightCoordinate[];
  clipOutliers: number | null;
  quantizeLmHead: boolean;
}

export function quantizationSettings(options: WeightOptions, knownSuperWeights: readonly SuperWeightCoordinate[]): QuantizationSettings {
  if (!isQuantized(options.precision)) throw new Error(`${options.precision} weights are not quantized`);
  const plain = knownSuperWeights.map(({ layer, row, col }) => ({ layer, row, col }));
  return {
    bits: precisionBits(options.precision),
    blockSize: options.blockSize,
    scheme: options.scheme,
    protectedWeights: options.protectSuperWeights ? plain : [],
    clipExempt: plain,
    clipOutliers: options.clipOutliers ?? null,
    quantizeLmHead: options.quantizeLmHead,
  };
}
