// The weight-precision flags every model-loading command takes (serve maps them to config keys):
// --weights, --block-size, --quant-scheme, --protect-super-weights / --no-protect-super-weights,
// --quantize-lm-head, --clip-outliers, --compute, --quantized-cache.
import {
  COMPUTE_PRECISIONS,
  DEFAULT_BLOCK_SIZE,
  QUANT_SCHEMES,
  WEIGHTS_PRECISIONS,
  weightOptionProblems,
  type ComputePrecision,
  type QuantScheme,
  type WeightOptions,
  type WeightsPrecision,
} from '../model/quantize/weight-format.js';
import { UsageError, type FlagTable } from './command-line.js';
import { numberFlag } from './number-flag.js';

export const WEIGHT_FLAGS = {
  weights: { type: 'string', value: WEIGHTS_PRECISIONS.join('|'), description: 'How the weights are stored and run: float32, float16, or block-quantized int8/int4 (CPU).', defaultNote: 'float32 on CPU, float16 on CUDA' },
  'block-size': { type: 'string', value: 'N', default: String(DEFAULT_BLOCK_SIZE), description: 'Elements per quantization block along the input dimension (a power of two; above a row, blocks span rows).' },
  'quant-scheme': { type: 'string', value: QUANT_SCHEMES.join('|'), default: 'symmetric', description: 'Round-to-nearest with one scale per block, or a scale and a zero point.' },
  'protect-super-weights': { type: 'boolean', description: 'Keep the known super weights out of their blocks and add them back exactly (on by default).' },
  'no-protect-super-weights': { type: 'boolean', description: 'Quantize the super weights with their blocks, to compare.' },
  'quantize-lm-head': { type: 'boolean', description: 'Quantize lm_head too (the embeddings stay float).' },
  'clip-outliers': { type: 'string', value: 'Z', description: 'Clip weights beyond Z standard deviations of their tensor before quantizing; super weights are exempt.' },
  compute: { type: 'string', value: COMPUTE_PRECISIONS.join('|'), description: "Activations in quantized layers: float32, or int8 per block (onnxruntime's fast path; 8-bit weights need it).", defaultNote: 'int8 for int8/int4 weights' },
  'quantized-cache': { type: 'string', value: 'DIR', description: 'Where quantized copies are kept.', defaultNote: '$SWSERVE_CACHE/quantized or ~/.cache/swserve/quantized' },
} as const satisfies FlagTable;

type WeightFlagValues = { [K in keyof typeof WEIGHT_FLAGS]?: (typeof WEIGHT_FLAGS)[K]['type'] extends 'boolean' ? boolean : string };

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], flag: string): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`${flag} ${value}: expected ${allowed.join(', ')}`);
  return value as T;
}

/** The weight options a command line asks for; settings it leaves out keep their defaults. */
export function weightOptionsFromFlags(values: WeightFlagValues): Partial<WeightOptions> {
  if (values['protect-super-weights'] && values['no-protect-super-weights']) throw new UsageError('--protect-super-weights and --no-protect-super-weights contradict each other');
  const options: Partial<WeightOptions> = {
    precision: oneOf<WeightsPrecision>(values.weights, WEIGHTS_PRECISIONS, '--weights'),
    blockSize: numberFlag(values['block-size'], '--block-size', DEFAULT_BLOCK_SIZE, 'integer'),
    scheme: oneOf<QuantScheme>(values['quant-scheme'], QUANT_SCHEMES, '--quant-scheme') ?? 'symmetric',
    protectSuperWeights: !values['no-protect-super-weights'],
    quantizeLmHead: values['quantize-lm-head'] ?? false,
    clipOutliers: values['clip-outliers'] === undefined ? undefined : numberFlag(values['clip-outliers'], '--clip-outliers', 0),
    compute: oneOf<ComputePrecision>(values.compute, COMPUTE_PRECISIONS, '--compute'),
    cacheDir: values['quantized-cache'],
  };
  const problems = weightOptionProblems({ ...options, precision: options.precision ?? 'float32' } as WeightOptions);
  if (problems.length > 0) throw new UsageError(problems.join('; '));
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<WeightOptions>;
}

