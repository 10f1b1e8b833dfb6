// The manifest of a quantized copy: where each tensor's bytes sit in the copy's one data file, the
// settings and checkpoint fingerprint it was made from (its cache key), and a checksum of the data.
import { z } from 'zod';

const region = z.strictObject({ offset: z.number().int().min(0), length: z.number().int().min(0) });
const coordinate = z.strictObject({ layer: z.number().int().min(0), row: z.number().int().min(0), col: z.number().int().min(0) });

const quantizedTensor = z.strictObject({
  name: z.string(),
  /** Output features (N). */
  rows: z.number().int().positive(),
  /** Input features (K). */
  k: z.number().int().positive(),
  bits: z.union([z.literal(4), z.literal(8)]),
  blockSize: z.number().int().positive(),
  kernelBlock: z.number().int().positive(),
  codes: region,
  scales: region,
  zeroPoints: region.optional(),
  /** The clipping bounds applied (z-score clipping), when any. */
  clip: z.strictObject({ lo: z.number(), hi: z.number() }).optional(),
});

const floatTensor = z.strictObject({
  name: z.string(),
  dtype: z.enum(['F32', 'F16', 'BF16']),
  shape: z.array(z.number().int().min(0)),
  data: region,
  /** Quantized and dequantized back to float32: a block size no kernel block fits inside. */
  roundTrip: z.boolean().optional(),
});

// 3: float tensors are copied as they are (2 stored a float32 embedding table as float16).
export const QUANTIZED_FORMAT = 3;

export const manifestSchema = z.strictObject({
  format: z.number().int(),
  key: z.string(),
  keyMaterial: z.unknown(),
  scheme: z.enum(['symmetric', 'asymmetric']),
  protectedWeights: z.array(coordinate),
  dataFile: z.string(),
  dataBytes: z.number().int().min(0),
  dataCrc32: z.number().int().min(0),
  quantized: z.array(quantizedTensor),
  float: z.array(floatTensor),
  quantizeMs: z.number().min(0),
});

export type QuantizedManifest = z.infer<typeof manifestSchema>;
export type QuantizedTensorRecord = z.infer<typeof quantizedTensor>;
export type FloatTensorRecord = z.infer<typeof floatTensor>;
export type DataRegion = z.infer<typeof region>;

export const MANIFEST_FILE = 'manifest.json';
export const DATA_FILE = 'weights.bin';
