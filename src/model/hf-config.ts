// config.json of a Hugging Face causal LM, validated with zod and normalized into the numbers the
// graph builder needs. Defaults follow transformers' config classes.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { CheckpointError } from './checkpoint-error.js';
import { describeZodError } from '../util/zod-issue.js';

const positiveInt = z.number().int().positive();

const llama3RopeScalingSchema = z.object({
  rope_type: z.literal('llama3'),
  factor: z.number().positive(),
  low_freq_factor: z.number().positive(),
  high_freq_factor: z.number().positive(),
  original_max_position_embeddings: positiveInt,
});

const hfConfigSchema = z.looseObject({
  architectures: z.array(z.string()).min(1),
  model_type: z.string().optional(),
  hidden_size: positiveInt,
  intermediate_size: positiveInt,
  num_hidden_layers: positiveInt,
  num_attention_heads: positiveInt,
  num_key_value_heads: positiveInt.optional(),
  head_dim: positiveInt.nullish(),
  vocab_size: positiveInt,
  rms_norm_eps: z.number().positive().optional(),
  rope_theta: z.number().positive().optional(),
  rope_scaling: z.looseObject({ rope_type: z.string().optional(), type: z.string().optional() }).nullish(),
  max_position_embeddings: positiveInt.optional(),
  tie_word_embeddings: z.boolean().optional(),
  attention_bias: z.boolean().optional(),
  hidden_act: z.string().optional(),
  sliding_window: positiveInt.nullish(),
  use_sliding_window: z.boolean().optional(),
  clip_qkv: z.number().positive().nullish(),
  partial_rotary_factor: z.number().optional(),
  bos_token_id: z.number().int().nullish(),
  eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).nullish(),
  torch_dtype: z.string().optional(),
  _name_or_path: z.string().optional(),
});

export type Llama3RopeScaling = z.infer<typeof llama3RopeScalingSchema>;

export const SUPPORTED_ARCHITECTURES = [
  'LlamaForCausalLM',
  'MistralForCausalLM',
  'Qwen2ForCausalLM',
  'Phi3ForCausalLM',
  'OlmoForCausalLM',
] as const;

export type ArchitectureName = (typeof SUPPORTED_ARCHITECTURES)[number];

/** The shape and numerics of a decoder-only model, independent of how its tensors are named. */
export interface ModelSpec {
  architecture: ArchitectureName;
  /** The Hugging Face id or path recorded in config.json, when present. */
  nameOrPath?: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  normEps: number;
  ropeTheta: number;
  ropeScaling?: Llama3RopeScaling;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  slidingWindow?: number;
  clipQkv?: number;
  bosTokenId?: number;
  eosTokenIds: number[];
}

// transformers' defaults where config.json leaves a field out.
const DEFAULT_ROPE_THETA = 10000;
const DEFAULT_RMS_NORM_EPS = 1e-6;
// OlmoLayerNorm is F.layer_norm with a fixed eps of 1e-5 (modeling_olmo.py).
const OLMO_LAYER_NORM_EPS = 1e-5;
const DEFAULT_MAX_POSITIONS = 2048;

export function readModelSpec(modelDir: string): ModelSpec {
  const file = path.join(modelDir, 'config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CheckpointError(file, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file is missing' : 'not valid JSON');
  }
  return parseModelSpec(raw, file);
}

export function parseModelSpec(raw: unknown, file = 'config.json'): ModelSpec {
  const parsed = hfConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new CheckpointError(file, `field ${describeZodError(parsed.error)}`);
  }
  const c = parsed.data;
  const architecture = c.architectures.find((a): a is ArchitectureName =>
    (SUPPORTED_ARCHITECTURES as readonly string[]).includes(a),
  );
  if (!architecture) {
    throw new CheckpointError(file, `unknown architecture ${c.architectures.join(', ')}; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`);
  }
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') {
    throw new CheckpointError(file, `hidden_act ${c.hidden_act} is not supported (SwiGLU with silu only)`);
  }
  if (c.partial_rotary_factor !== undefined && c.partial_rotary_factor !== 1) {
    throw new CheckpointError(file, `partial_rotary_factor ${c.partial_rotary_factor} is not supported`);
  }
  const numHeads = c.num_attention_heads;
  const numKvHeads = c.num_key_value_heads ?? numHeads;
  if (numHeads % numKvHeads !== 0) {
    throw new CheckpointError(file, `num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  const headDim = c.head_dim ?? c.hidden_size / numHeads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new CheckpointError(file, `head dimension ${headDim} must be an even integer`);
  }
  const eos = c.eos_token_id;
  return {
    architecture,
    nameOrPath: c._name_or_path,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: c.vocab_size,
    normEps: architecture === 'OlmoForCausalLM' ? OLMO_LAYER_NORM_EPS : (c.rms_norm_eps ?? DEFAULT_RMS_NORM_EPS),
    ropeTheta: c.rope_theta ?? DEFAULT_ROPE_THETA,
    ropeScaling: parseRopeScaling(c.rope_scaling, file),
    maxPositionEmbeddings: c.max_position_embeddings ?? DEFAULT_MAX_POSITIONS,
    tieWordEmbeddings: c.tie_word_embeddings ?? false,
    attentionBias: architecture === 'Qwen2ForCausalLM' || (c.attention_bias ?? false),
    slidingWindow: slidingWindowOf(architecture, c.sliding_window ?? undefined, c.use_sliding_window, file),
    clipQkv: architecture === 'OlmoForCausalLM' ? (c.clip_qkv ?? undefined) : undefined,
    bosTokenId: c.bos_token_id ?? undefined,
    eosTokenIds: eos === null || eos === undefined ? [] : Array.isArray(eos) ? eos : [eos],
  };
}

function parseRopeScaling(raw: Record<string, unknown> | null | undefined, file: string): Llama3RopeScaling | undefined {
  if (!raw) return undefined;
  const kind = raw.rope_type ?? raw.type;
  if (kind === 'default') return undefined;
  const parsed = llama3RopeScalingSchema.safeParse({ ...raw, rope_type: kind });
  if (!parsed.success) {
    throw new CheckpointError(file, `rope_scaling ${JSON.stringify(raw)} is not supported (only rope_type "llama3")`);
  }
  return parsed.data;
}

function slidingWindowOf(arch: ArchitectureName, window: number | undefined, useSliding: boolean | undefined, file: string): number | undefined {
  // Qwen2 carries sliding_window but applies it only with use_sliding_window, and then per layer.
  if (arch === 'Qwen2ForCausalLM' && useSliding) {
    throw new CheckpointError(file, 'use_sliding_window (per-layer sliding attention) is not supported for Qwen2');
  }
  // Mistral and Phi-3 apply sliding_window whenever it is set (transformers' masking_utils).
  if (arch === 'MistralForCausalLM' || arch === 'Phi3ForCausalLM') return window;
  return undefined;
}
