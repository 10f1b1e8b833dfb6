import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeByteTokenizer } from './byte-tokenizer.js';
import { createReferenceModel } from './reference-forward.js';
import {
  dtypeByteSize,
  readSafetensors,
  roundToDtype,
  writeSafetensors,
  writeSafetensorsStreaming,
  type SafetensorsDtype,
  type StreamedTensor,
  type TensorSpec,
} from './safetensors-writer.js';

export type TinyArch = 'llama' | 'mistral' | 'qwen2' | 'phi3' | 'olmo';

export interface Llama3RopeScaling {
  rope_type: 'llama3';
  factor: number;
  low_freq_factor: number;
  high_freq_factor: number;
  original_max_position_embeddings: number;
}

export interface PlantedSuperWeight {
  layer: number;
  /** Hidden (output) channel of down_proj where the super activation appears. */
  row: number;
  /** Intermediate neuron that feeds it. */
  col: number;
  /** Value written to `down_proj.weight[row, col]` (default 20); the BOS activation at `col` is ~30. */
  strength?: number;
}

export interface DownProjEdit {
  layer: number;
  row: number;
  col: number;
  scale: number;
}

export interface TinyModelSpec {
  arch: TinyArch;
  hiddenSize?: number;
  intermediateSize?: number;
  numLayers?: number;
  numHeads?: number;
  numKvHeads?: number;
  vocabSize?: number;
  tieEmbeddings?: boolean;
  dtype?: SafetensorsDtype;
  seed?: number;
  ropeTheta?: number;
  ropeScaling?: Llama3RopeScaling;
  maxPositionEmbeddings?: number;
  rmsNormEps?: number;
  clipQkv?: number;
  slidingWindow?: number;
  shards?: number;
  plantedSuperWeights?: PlantedSuperWeight[];
  /** Std of the random projection weights. */
  weightScale?: number;
  /** Std of the random embedding rows. */
  embedScale?: number;
  bosId?: number;
  eosId?: number;
}

export type ResolvedTinySpec = Required<Omit<TinyModelSpec, 'ropeScaling' | 'clipQkv' | 'slidingWindow'>> &
  Pick<TinyModelSpec, 'ropeScaling' | 'clipQkv' | 'slidingWindow'>;

export interface WeightTensor {
  shape: number[];
  data: Float32Array;
}

/** config.json as written; known keys typed, the rest (dropout, versions, ...) open. */
export interface HfModelConfig {
  architectures: string[];
  model_type: TinyArch;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  vocab_size: number;
  max_position_embeddings: number;
  rope_theta: number;
  rope_scaling: Llama3RopeScaling | null;
  tie_word_embeddings: boolean;
  torch_dtype: 'float32' | 'float16' | 'bfloat16';
  bos_token_id: number;
  eos_token_id: number;
  hidden_act: 'silu';
  rms_norm_eps?: number;
  head_dim?: number;
  attention_bias?: boolean;
  clip_qkv?: number | null;
  sliding_window?: number | null;
  [key: string]: unknown;
}

export interface TinyCheckpoint {
  dir: string;
  arch: TinyArch;
  dtype: SafetensorsDtype;
  config: HfModelConfig;
  /** HF names and layout, values after dtype rounding (exactly what is on disk). */
  weights: Map<string, WeightTensor>;
  bosId: number;
  eosId: number;
  /** Planted super weights with their strength resolved. */
  plantedSuperWeights: Required<PlantedSuperWeight>[];
  /** Safetensors file names written, in shard order. */
  files: string[];
}

const ARCHITECTURES: Record<TinyArch, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  phi3: 'Phi3ForCausalLM',
  olmo: 'OlmoForCausalLM',
};

const TORCH_DTYPES: Record<SafetensorsDtype, HfModelConfig['torch_dtype']> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
};

const TRANSFORMERS_VERSION = '4.46.0';
const DEFAULT_PLANT_STRENGTH = 20;
// Targets for the planted neuron at BOS: gate = 6, up = 5, so act = silu(6) * 5 ~= 29.9.
const PLANT_GATE = 6;
const PLANT_UP = 5;
// A BOS row much longer than the others keeps the BOS residual (and so the planted neuron's input direction)
// nearly orthogonal to every other position's, even after attention mixes BOS values into them.
const BOS_EMBED_BOOST = 4;

export function resolveTinySpec(spec: TinyModelSpec): ResolvedTinySpec {
  const numHeads = spec.numHeads ?? 4;
  const resolved: ResolvedTinySpec = {
    arch: spec.arch,
    hiddenSize: spec.hiddenSize ?? 64,
    intermediateSize: spec.intermediateSize ?? 128,
    numLayers: spec.numLayers ?? 2,
    numHeads,
    numKvHeads: spec.numKvHeads ?? numHeads,
    vocabSize: spec.vocabSize ?? 258,
    tieEmbeddings: spec.tieEmbeddings ?? false,
    dtype: spec.dtype ?? 'F32',
    seed: spec.seed ?? 1,
    ropeTheta: spec.ropeTheta ?? 10000,
    ropeScaling: spec.ropeScaling,
    maxPositionEmbeddings: spec.maxPositionEmbeddings ?? 256,
    rmsNormEps: spec.rmsNormEps ?? 1e-5,
    clipQkv: spec.clipQkv,
    slidingWindow: spec.slidingWindow,
    shards: spec.shards ?? 1,
    plantedSuperWeights: spec.plantedSuperWeights ?? [],
    weightScale: spec.weightScale ?? 0.08,
    embedScale: spec.embedScale ?? 0.5,
    bosId: spec.bosId ?? 256,
    eosId: spec.eosId ?? 257,
  };
  validateSpec(resolved);
  return resolved;
}

function validateSpec(s: ResolvedTinySpec): void {
  if (s.hiddenSize % s.numHeads !== 0) throw new Error('hiddenSize must be divisible by numHeads');
  if (((s.hiddenSize / s.numHeads) % 2) !== 0) throw new Error('head dim must be even for RoPE');
  if (s.numHeads % s.numKvHeads !== 0) throw new Error('numHeads must be a multiple of numKvHeads');
  if (s.bosId >= s.vocabSize || s.eosId >= s.vocabSize) throw new Error('bosId/eosId must be < vocabSize');
  if (s.clipQkv !== undefined && s.arch !== 'olmo') throw new Error('clipQkv is OLMo-only');
  if (s.slidingWindow !== undefined && s.arch !== 'mistral' && s.arch !== 'phi3') {
    throw new Error('slidingWindow is supported for mistral and phi3 only');
  }
  if (!Number.isInteger(s.shards) || s.shards < 1) throw new Error('shards must be a positive integer');
  for (const p of s.plantedSuperWeights) {
    if (p.layer < 0 || p.layer >= s.numLayers || p.row < 0 || p.row >= s.hiddenSize || p.col < 0 || p.col >= s.intermediateSize) {
      throw new Error(`planted super weight out of range: ${JSON.stringify(p)}`);
    }
  }
}

/** mulberry32: tiny, deterministic, good enough for test weights. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normalSampler(seed: number): () => number {
  const uniform = mulberry32(seed);
  return () => {
    const u1 = Math.max(uniform(), 1e-12);
    const u2 = uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  };
}

export function buildConfig(s: ResolvedTinySpec): HfModelConfig {
  const headDim = s.hiddenSize / s.numHeads;
  const base: HfModelConfig = {
    architectures: [ARCHITECTURES[s.arch]],
    model_type: s.arch,
    attention_dropout: 0.0,
    bos_token_id: s.bosId,
    eos_token_id: s.eosId,
    hidden_act: 'silu',
    hidden_size: s.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: s.intermediateSize,
    max_position_embeddings: s.maxPositionEmbeddings,
    num_attention_heads: s.numHeads,
    num_hidden_layers: s.numLayers,
    num_key_value_heads: s.numKvHeads,
    rope_scaling: s.ropeScaling ?? null,
    rope_theta: s.ropeTheta,
    tie_word_embeddings: s.tieEmbeddings,
    torch_dtype: TORCH_DTYPES[s.dtype],
    transformers_version: TRANSFORMERS_VERSION,
    use_cache: true,
    vocab_size: s.vocabSize,
  };
  switch (s.arch) {
    case 'llama':
      return { ...base, attention_bias: false, head_dim: headDim, mlp_bias: false, pretraining_tp: 1, rms_norm_eps: s.rmsNormEps };
    case 'mistral':
      return { ...base, head_dim: headDim, rms_norm_eps: s.rmsNormEps, sliding_window: s.slidingWindow ?? null };
    case 'qwen2':
      return {
        ...base,
        max_window_layers: s.numLayers,
        rms_norm_eps: s.rmsNormEps,
        sliding_window: null,
        use_sliding_window: false,
      };
    case 'phi3':
      return {
        ...base,
        attention_bias: false,
        embd_pdrop: 0.0,
        original_max_position_embeddings: s.maxPositionEmbeddings,
        resid_pdrop: 0.0,
        rms_norm_eps: s.rmsNormEps,
        sliding_window: s.slidingWindow ?? null,
      };
    case 'olmo':
      return { ...base, attention_bias: false, clip_qkv: s.clipQkv ?? null };
  }
}

/** Tensor names and shapes in the order they are generated and written. */
export function tensorLayout(s: ResolvedTinySpec): [string, number[]][] {
  const { hiddenSize: H, intermediateSize: I, numHeads, numKvHeads, vocabSize: V } = s;
  const D = H / numHeads;
  const out: [string, number[]][] = [['model.embed_tokens.weight', [V, H]]];
  for (let l = 0; l < s.numLayers; l++) {
    const p = `model.layers.${l}.`;
    if (s.arch !== 'olmo') out.push([`${p}input_layernorm.weight`, [H]]);
    if (s.arch === 'phi3') {
      out.push([`${p}self_attn.qkv_proj.weight`, [(numHeads + 2 * numKvHeads) * D, H]]);
    } else {
      out.push([`${p}self_attn.q_proj.weight`, [numHeads * D, H]]);
      out.push([`${p}self_attn.k_proj.weight`, [numKvHeads * D, H]]);
      out.push([`${p}self_attn.v_proj.weight`, [numKvHeads * D, H]]);
      if (s.arch === 'qwen2') {
        out.push([`${p}self_attn.q_proj.bias`, [numHeads * D]]);
        out.push([`${p}self_attn.k_proj.bias`, [numKvHeads * D]]);
        out.push([`${p}self_attn.v_proj.bias`, [numKvHeads * D]]);
      }
    }
    out.push([`${p}self_attn.o_proj.weight`, [H, numHeads * D]]);
    if (s.arch !== 'olmo') out.push([`${p}post_attention_layernorm.weight`, [H]]);
    if (s.arch === 'phi3') {
      out.push([`${p}mlp.gate_up_proj.weight`, [2 * I, H]]);
    } else {
      out.push([`${p}mlp.gate_proj.weight`, [I, H]]);
      out.push([`${p}mlp.up_proj.weight`, [I, H]]);
    }
    out.push([`${p}mlp.down_proj.weight`, [H, I]]);
  }
  if (s.arch !== 'olmo') out.push(['model.norm.weight', [H]]);
  if (!s.tieEmbeddings) out.push(['lm_head.weight', [V, H]]);
  return out;
}

function randomTensor(name: string, shape: number[], s: ResolvedTinySpec, normal: () => number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  // Norm weights near (not at) 1 so a missing or misplaced norm weight changes the logits.
  const isNorm = name.endsWith('layernorm.weight') || name === 'model.norm.weight';
  const isBias = name.endsWith('.bias');
  const std = name === 'model.embed_tokens.weight' ? s.embedScale : isBias ? 2 * s.weightScale : s.weightScale;
  for (let i = 0; i < n; i++) data[i] = isNorm ? 1 + 0.1 * normal() : std * normal();
  return data;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc += a[i]! * b[i]!;
  return acc;
}

/** Removes from `v` its components along the (mutually orthonormal) `basis`. */
function projectOut(v: Float64Array, basis: Float64Array[]): void {
  for (const b of basis) {
    const k = dot(v, b);
    for (let i = 0; i < v.length; i++) v[i]! -= k * b[i]!;
  }
}

function unit(v: Float64Array): Float64Array {
  const n = Math.sqrt(dot(v, v));
  return v.map((x) => x / n);
}

/** Adds `v` to an orthonormal basis (Gram-Schmidt), skipping near-dependent vectors. */
function extendBasis(basis: Float64Array[], v: ArrayLike<number>): void {
  const w = Float64Array.from(v);
  projectOut(w, basis);
  if (Math.sqrt(dot(w, w)) > 1e-9) basis.push(unit(w));
}

/**
 * For each planted (layer, row, col): gate/up row `col` read a residual-stream direction `d` that only BOS
 * carries, scaled so act(gate) * up ~= 30 at BOS, and `strength` goes into down_proj[row, col].
 * `d` is the BOS embedding minus what other positions also receive from BOS (its attention outputs, which
 * attention mixes into every later position; for OLMo also the all-ones direction LayerNorm removes).
 * The row is `d / norm_weight`, so the RMSNorm weight cancels and gate(x_t) is proportional to d . h_t.
 * Afterwards every `d` is projected out of the non-BOS embeddings. Layers are planted in order because
 * earlier plants change the BOS residual of later layers.
 */
function plantSuperWeights(s: ResolvedTinySpec, config: HfModelConfig, weights: Map<string, WeightTensor>): Required<PlantedSuperWeight>[] {
  const planted = s.plantedSuperWeights.map((p) => ({ ...p, strength: p.strength ?? DEFAULT_PLANT_STRENGTH }));
  if (planted.length === 0) return planted;
  const { hiddenSize: H, intermediateSize: I } = s;
  const embed = weights.get('model.embed_tokens.weight')!;
  for (let i = s.bosId * H; i < (s.bosId + 1) * H; i++) embed.data[i]! *= BOS_EMBED_BOOST;
  embed.data = roundToDtype(embed.data, s.dtype);
  const bosEmbedding = embed.data.slice(s.bosId * H, (s.bosId + 1) * H);
  const plantDirections: Float64Array[] = [];
  const layers = [...new Set(planted.map((p) => p.layer))].sort((a, b) => a - b);
  for (const layer of layers) {
    const records = createReferenceModel({ config, weights }).forward([s.bosId]).downProj;
    const shared: Float64Array[] = [];
    if (s.arch === 'olmo') extendBasis(shared, new Float64Array(H).fill(1));
    let before: ArrayLike<number> = bosEmbedding;
    for (let l = 0; l <= layer; l++) {
      const residual = records[l]!.residual[0]!;
      extendBasis(shared, residual.map((v, i) => v - before[i]!));
      before = residual.map((v, i) => v + records[l]!.output[0]![i]!);
    }
    const d = Float64Array.from(bosEmbedding);
    projectOut(d, shared);
    plantDirections.push(unit(d));
    const p = `model.layers.${layer}.`;
    const normWeight = s.arch === 'olmo' ? null : weights.get(`${p}post_attention_layernorm.weight`)!.data;
    const row = d.map((v, i) => (normWeight === null ? v : v / normWeight[i]!));
    const atBos = dot(row, records[layer]!.mlpInput[0]!);
    const gateUp = s.arch === 'phi3' ? weights.get(`${p}mlp.gate_up_proj.weight`)!.data : null;
    const gate = gateUp !== null ? gateUp.subarray(0, I * H) : weights.get(`${p}mlp.gate_proj.weight`)!.data;
    const up = gateUp !== null ? gateUp.subarray(I * H) : weights.get(`${p}mlp.up_proj.weight`)!.data;
    const down = weights.get(`${p}mlp.down_proj.weight`)!.data;
    for (const plant of planted.filter((q) => q.layer === layer)) {
      for (let i = 0; i < H; i++) {
        gate[plant.col * H + i] = (PLANT_GATE * row[i]!) / atBos;
        up[plant.col * H + i] = (PLANT_UP * row[i]!) / atBos;
      }
      down[plant.row * I + plant.col] = plant.strength;
    }
    for (const name of [`${p}mlp.gate_up_proj.weight`, `${p}mlp.gate_proj.weight`, `${p}mlp.up_proj.weight`, `${p}mlp.down_proj.weight`]) {
      const t = weights.get(name);
      if (t !== undefined) t.data = roundToDtype(t.data, s.dtype);
    }
  }
  // Other tokens' embeddings never reach the BOS forward pass, so this leaves the planting above intact.
  const basis: Float64Array[] = [];
  for (const d of plantDirections) extendBasis(basis, d);
  for (let t = 0; t < s.vocabSize; t++) {
    if (t === s.bosId) continue;
    const rowData = embed.data.subarray(t * H, (t + 1) * H);
    const v = Float64Array.from(rowData);
    projectOut(v, basis);
    rowData.set(v);
  }
  embed.data = roundToDtype(embed.data, s.dtype);
  return planted;
}

export function shardFileName(index: number, count: number): string {
  const pad = (n: number): string => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/** Writes the tensors of `layout` in order, asking `values` for each as it is written (one tensor in memory at a time). */
function writeWeights(dir: string, layout: [string, number[]][], dtype: SafetensorsDtype, shards: number, values: (name: string) => Float32Array): string[] {
  if (shards > layout.length) throw new Error(`cannot split ${layout.length} tensors into ${shards} shards`);
  const spec = (chunk: [string, number[]][]): StreamedTensor[] => chunk.map(([name, shape]) => ({ name, dtype, shape }));
  if (shards === 1) {
    writeSafetensorsStreaming(join(dir, 'model.safetensors'), spec(layout), values, { format: 'pt' });
    return ['model.safetensors'];
  }
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (let i = 0; i < shards; i++) {
    const file = shardFileName(i, shards);
    const chunk = layout.slice(Math.floor((i * layout.length) / shards), Math.floor(((i + 1) * layout.length) / shards));
    writeSafetensorsStreaming(join(dir, file), spec(chunk), values, { format: 'pt' });
    for (const [n, shape] of chunk) {
      weightMap[n] = file;
      totalSize += shape.reduce((a, b) => a * b, 1) * dtypeByteSize(dtype);
    }
    files.push(file);
  }
  const sortedMap = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]!]));
  const index = { metadata: { total_size: totalSize }, weight_map: sortedMap };
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index, null, 2));
  return files;
}

function writeModelFiles(dir: string, s: ResolvedTinySpec, config: HfModelConfig): void {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const generationConfig = {
    _from_model_config: true,
    bos_token_id: s.bosId,
    eos_token_id: s.eosId,
    transformers_version: TRANSFORMERS_VERSION,
  };
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(generationConfig, null, 2));
  writeByteTokenizer(dir);
}

/** Writes config.json, generation_config.json, the byte tokenizer and safetensors weights into `dir`. */
export function buildTinyCheckpoint(dir: string, spec: TinyModelSpec): TinyCheckpoint {
  const s = resolveTinySpec(spec);
  mkdirSync(dir, { recursive: true });
  const config = buildConfig(s);
  const normal = normalSampler(s.seed);
  const weights = new Map<string, WeightTensor>();
  const layout = tensorLayout(s);
  for (const [name, shape] of layout) {
    weights.set(name, { shape, data: roundToDtype(randomTensor(name, shape, s, normal), s.dtype) });
  }
  const planted = plantSuperWeights(s, config, weights);
  writeModelFiles(dir, s, config);
  const files = writeWeights(dir, layout, s.dtype, s.shards, (name) => weights.get(name)!.data);
  return { dir, arch: s.arch, dtype: s.dtype, config, weights, bosId: s.bosId, eosId: s.eosId, plantedSuperWeights: planted, files };
}

/**
 * The checkpoint buildTinyCheckpoint writes for the same spec, byte for byte, but generated and written one
 * tensor at a time, so a 1B-parameter model needs its largest tensor in memory, not the model. Planting
 * needs every weight at once, so specs with planted super weights are refused.
 */
export function writeTinyCheckpoint(dir: string, spec: TinyModelSpec): { dir: string; config: HfModelConfig; files: string[] } {
  const s = resolveTinySpec(spec);
  if (s.plantedSuperWeights.length > 0) throw new Error('writeTinyCheckpoint cannot plant super weights; use buildTinyCheckpoint');
  mkdirSync(dir, { recursive: true });
  const config = buildConfig(s);
  const normal = normalSampler(s.seed);
  const layout = tensorLayout(s);
  const shapes = new Map(layout);
  writeModelFiles(dir, s, config);
  // writeWeights asks for tensors in layout order, the order buildTinyCheckpoint draws them in.
  const files = writeWeights(dir, layout, s.dtype, s.shards, (name) => roundToDtype(randomTensor(name, shapes.get(name)!, s, normal), s.dtype));
  return { dir, config, files };
}

/** Safetensors files of a checkpoint folder: the index's shards, or model.safetensors. */
export function checkpointWeightFiles(dir: string): { files: string[]; weightMap: Map<string, string> | null } {
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (!existsSync(indexPath)) return { files: ['model.safetensors'], weightMap: null };
  const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
  const weightMap = new Map(Object.entries(index.weight_map));
  return { files: [...new Set(weightMap.values())].sort(), weightMap };
}

/** Reads every tensor of a (single-file or sharded) checkpoint folder, decoded to float32. */
export function loadCheckpointWeights(dir: string): Map<string, TensorSpec> {
  const out = new Map<string, TensorSpec>();
  for (const file of checkpointWeightFiles(dir).files) {
    for (const [name, t] of readSafetensors(join(dir, file)).tensors) out.set(name, t);
  }
  return out;
}

/** Loads a checkpoint folder from disk (e.g. one produced by scaleWeightOnDisk) for the reference model. */
export function loadTinyCheckpoint(dir: string): TinyCheckpoint {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as HfModelConfig;
  const tensors = loadCheckpointWeights(dir);
  const weights = new Map<string, WeightTensor>();
  let dtype: SafetensorsDtype = 'F32';
  for (const [name, t] of tensors) {
    weights.set(name, { shape: t.shape, data: t.data });
    dtype = t.dtype;
  }
  return {
    dir,
    arch: config.model_type,
    dtype,
    config,
    weights,
    bosId: config.bos_token_id,
    eosId: config.eos_token_id,
    plantedSuperWeights: [],
    files: checkpointWeightFiles(dir).files,
  };
}

/**
 * Copies a checkpoint folder and multiplies `model.layers.{layer}.mlp.down_proj.weight[row, col]` by `scale`,
 * rewriting the affected safetensors file in its own dtype. The product is re-rounded to that dtype, so it
 * equals the reference's `downProjScale` exactly only when the scaled value is representable (e.g. scale 0 or 2).
 */
export function scaleWeightOnDisk(srcDir: string, dstDir: string, edits: DownProjEdit[]): void {
  mkdirSync(dstDir, { recursive: true });
  cpSync(srcDir, dstDir, { recursive: true });
  const { weightMap } = checkpointWeightFiles(dstDir);
  const byFile = new Map<string, DownProjEdit[]>();
  for (const edit of edits) {
    const name = `model.layers.${edit.layer}.mlp.down_proj.weight`;
    const file = weightMap === null ? 'model.safetensors' : weightMap.get(name);
    if (file === undefined) throw new Error(`scaleWeightOnDisk: ${name} not in the index`);
    byFile.set(file, [...(byFile.get(file) ?? []), edit]);
  }
  for (const [file, fileEdits] of byFile) {
    const path = join(dstDir, file);
    const { tensors, metadata } = readSafetensors(path);
    for (const edit of fileEdits) {
      const name = `model.layers.${edit.layer}.mlp.down_proj.weight`;
      const t = tensors.get(name);
      if (t === undefined) throw new Error(`scaleWeightOnDisk: ${name} missing from ${file}`);
      const [rows, cols] = t.shape as [number, number];
      if (edit.row < 0 || edit.row >= rows || edit.col < 0 || edit.col >= cols) {
        throw new Error(`scaleWeightOnDisk: edit out of range ${JSON.stringify(edit)}`);
      }
      t.data[edit.row * cols + edit.col]! *= edit.scale;
    }
    writeSafetensors(path, tensors, metadata);
  }
}
