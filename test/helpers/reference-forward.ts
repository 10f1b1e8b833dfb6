// Plain typed-array forward pass following Hugging Face transformers' modeling code
// (modeling_llama / mistral / qwen2 / phi3 / olmo). Deliberately shares no code with the ONNX engine.
import type { DownProjEdit, HfModelConfig, Llama3RopeScaling, WeightTensor } from './tiny-checkpoint.js';

export interface ReferenceSource {
  config: HfModelConfig;
  weights: ReadonlyMap<string, WeightTensor>;
}

export interface ReferenceOptions {
  /** Multiplies `down_proj.weight[row, col]` of `layer` by `scale` (the "switch"). */
  downProjScale?: DownProjEdit[];
  /** Keeps the original (unscaled) down_proj output at absolute position 0 for each scaled (layer, row). */
  restoreSuperActivation?: boolean;
}

/** Keys (after RoPE) and values of every cached position: `keys[layer][position]` is `[numKvHeads * headDim]`. */
export interface ReferenceCache {
  readonly length: number;
  readonly keys: readonly (readonly Float64Array[])[];
  readonly values: readonly (readonly Float64Array[])[];
}

export interface DownProjRecord {
  layer: number;
  /** Per input position, the residual stream entering the MLP block (after attention) `[H]`. */
  residual: Float32Array[];
  /** Per input position, the post-norm MLP input `[H]`. */
  mlpInput: Float32Array[];
  /** Per input position, `act(gate) * up`, i.e. the down_proj input `[I]`. */
  input: Float32Array[];
  /** Per input position, the down_proj output `[H]` after the switch (and restore) is applied. */
  output: Float32Array[];
}

export interface ReferenceForwardResult {
  /** One `[V]` per input position. */
  logits: Float32Array[];
  cache: ReferenceCache;
  downProj: DownProjRecord[];
}

export interface ReferenceModel {
  readonly dims: ReferenceDims;
  forward(tokenIds: number[], cache?: ReferenceCache): ReferenceForwardResult;
  emptyCache(): ReferenceCache;
}

export interface ReferenceDims {
  arch: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
}

type Vec = Float64Array;
type Weights = ArrayLike<number>;

interface LayerWeights {
  norm1: Float32Array | null;
  norm2: Float32Array | null;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  qBias: Float32Array | null;
  kBias: Float32Array | null;
  vBias: Float32Array | null;
  o: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  down: Float64Array;
  downOriginal: Float32Array;
  restoreRows: number[];
}

function tensor(weights: ReadonlyMap<string, WeightTensor>, name: string, shape: number[]): Float32Array {
  const t = weights.get(name);
  if (t === undefined) throw new Error(`reference: missing tensor ${name}`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`reference: ${name} has shape [${t.shape.join(',')}], expected [${shape.join(',')}]`);
  }
  return t.data;
}

function optionalTensor(weights: ReadonlyMap<string, WeightTensor>, name: string, shape: number[]): Float32Array | null {
  return weights.has(name) ? tensor(weights, name, shape) : null;
}

/** y = W x (+ b) with W row-major `[rows, cols]`, accumulated in float64. */
function matVec(w: Weights, rows: number, cols: number, x: Vec, bias: Float32Array | null): Vec {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    const base = r * cols;
    for (let c = 0; c < cols; c++) acc += w[base + c]! * x[c]!;
    y[r] = bias === null ? acc : acc + bias[r]!;
  }
  return y;
}

function rmsNorm(x: Vec, weight: Float32Array, eps: number): Vec {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i]! * inv * weight[i]!;
  return y;
}

/** F.layer_norm without weight or bias: biased variance, eps 1e-5 (OlmoLayerNorm). */
function weightlessLayerNorm(x: Vec): Vec {
  let mean = 0;
  for (let i = 0; i < x.length; i++) mean += x[i]!;
  mean /= x.length;
  let variance = 0;
  for (let i = 0; i < x.length; i++) variance += (x[i]! - mean) ** 2;
  variance /= x.length;
  const inv = 1 / Math.sqrt(variance + 1e-5);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = (x[i]! - mean) * inv;
  return y;
}

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** HF computes inv_freq in float32; fround mirrors that. */
export function ropeInvFreq(headDim: number, theta: number, scaling: Llama3RopeScaling | null): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    inv[i] = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / headDim)));
  }
  if (scaling === null) return inv;
  if (scaling.rope_type !== 'llama3') throw new Error(`reference: unsupported rope_type ${String(scaling.rope_type)}`);
  // transformers' _compute_llama3_parameters.
  const { factor, low_freq_factor: lowFactor, high_freq_factor: highFactor } = scaling;
  const oldContext = scaling.original_max_position_embeddings;
  const lowFreqWavelen = oldContext / lowFactor;
  const highFreqWavelen = oldContext / highFactor;
  for (let i = 0; i < half; i++) {
    const f = inv[i]!;
    const wavelen = (2 * Math.PI) / f;
    const llama = wavelen > lowFreqWavelen ? f / factor : f;
    const smooth = (oldContext / wavelen - lowFactor) / (highFactor - lowFactor);
    const smoothed = ((1 - smooth) * llama) / factor + smooth * llama;
    const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
    inv[i] = Math.fround(isMedium ? smoothed : llama);
  }
  return inv;
}

/** rotate_half convention: pairs (i, i + D/2), cos/sin duplicated as [c, c]. Rotates each head in place. */
function applyRope(x: Vec, numHeads: number, headDim: number, position: number, invFreq: Float64Array): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const angle = Math.fround(position * invFreq[i]!);
    const c = Math.fround(Math.cos(angle));
    const s = Math.fround(Math.sin(angle));
    for (let h = 0; h < numHeads; h++) {
      const a = h * headDim + i;
      const b = a + half;
      const x1 = x[a]!;
      const x2 = x[b]!;
      x[a] = x1 * c - x2 * s;
      x[b] = x2 * c + x1 * s;
    }
  }
}

function clampInPlace(x: Vec, limit: number): void {
  for (let i = 0; i < x.length; i++) x[i] = Math.min(limit, Math.max(-limit, x[i]!));
}

function toF32(x: Vec): Float32Array {
  return Float32Array.from(x);
}

function readNumber(config: HfModelConfig, key: string, fallback?: number): number {
  const v = config[key];
  if (typeof v === 'number') return v;
  if ((v === undefined || v === null) && fallback !== undefined) return fallback;
  throw new Error(`reference: config.${key} must be a number, got ${JSON.stringify(v)}`);
}

function dimsOf(config: HfModelConfig): ReferenceDims {
  const hiddenSize = readNumber(config, 'hidden_size');
  const numHeads = readNumber(config, 'num_attention_heads');
  return {
    arch: config.model_type,
    hiddenSize,
    intermediateSize: readNumber(config, 'intermediate_size'),
    numLayers: readNumber(config, 'num_hidden_layers'),
    numHeads,
    numKvHeads: readNumber(config, 'num_key_value_heads', numHeads),
    headDim: readNumber(config, 'head_dim', Math.floor(hiddenSize / numHeads)),
    vocabSize: readNumber(config, 'vocab_size'),
  };
}

/** Sliding window as HF applies it: Mistral and Phi3 use `sliding_window` when set; Qwen2 only with use_sliding_window. */
function slidingWindowOf(config: HfModelConfig): number | null {
  const w = config.sliding_window;
  if (typeof w !== 'number') return null;
  if (config.model_type === 'mistral' || config.model_type === 'phi3') return w;
  if (config.model_type === 'qwen2' && config['use_sliding_window'] === true) {
    throw new Error('reference: qwen2 use_sliding_window is not supported');
  }
  return null;
}

function loadLayer(source: ReferenceSource, dims: ReferenceDims, layer: number): LayerWeights {
  const { weights, config } = source;
  const { hiddenSize: H, intermediateSize: I, numHeads, numKvHeads, headDim: D } = dims;
  const p = `model.layers.${layer}.`;
  const qRows = numHeads * D;
  const kvRows = numKvHeads * D;
  const olmo = config.model_type === 'olmo';
  const norm1 = olmo ? null : tensor(weights, `${p}input_layernorm.weight`, [H]);
  const norm2 = olmo ? null : tensor(weights, `${p}post_attention_layernorm.weight`, [H]);
  let q: Float32Array;
  let k: Float32Array;
  let v: Float32Array;
  let gate: Float32Array;
  let up: Float32Array;
  if (config.model_type === 'phi3') {
    const qkv = tensor(weights, `${p}self_attn.qkv_proj.weight`, [qRows + 2 * kvRows, H]);
    q = qkv.subarray(0, qRows * H);
    k = qkv.subarray(qRows * H, (qRows + kvRows) * H);
    v = qkv.subarray((qRows + kvRows) * H);
    const gateUp = tensor(weights, `${p}mlp.gate_up_proj.weight`, [2 * I, H]);
    gate = gateUp.subarray(0, I * H);
    up = gateUp.subarray(I * H);
  } else {
    q = tensor(weights, `${p}self_attn.q_proj.weight`, [qRows, H]);
    k = tensor(weights, `${p}self_attn.k_proj.weight`, [kvRows, H]);
    v = tensor(weights, `${p}self_attn.v_proj.weight`, [kvRows, H]);
    gate = tensor(weights, `${p}mlp.gate_proj.weight`, [I, H]);
    up = tensor(weights, `${p}mlp.up_proj.weight`, [I, H]);
  }
  const downOriginal = tensor(weights, `${p}mlp.down_proj.weight`, [H, I]);
  return {
    norm1,
    norm2,
    q,
    k,
    v,
    qBias: optionalTensor(weights, `${p}self_attn.q_proj.bias`, [qRows]),
    kBias: optionalTensor(weights, `${p}self_attn.k_proj.bias`, [kvRows]),
    vBias: optionalTensor(weights, `${p}self_attn.v_proj.bias`, [kvRows]),
    o: tensor(weights, `${p}self_attn.o_proj.weight`, [H, qRows]),
    gate,
    up,
    down: Float64Array.from(downOriginal),
    downOriginal,
    restoreRows: [],
  };
}

export function createReferenceModel(source: ReferenceSource, options: ReferenceOptions = {}): ReferenceModel {
  const { config, weights } = source;
  const dims = dimsOf(config);
  const { hiddenSize: H, intermediateSize: I, numLayers, numHeads, numKvHeads, headDim: D, vocabSize: V } = dims;
  if (numHeads % numKvHeads !== 0) throw new Error('reference: num_attention_heads must be a multiple of num_key_value_heads');
  const olmo = config.model_type === 'olmo';
  const eps = olmo ? 1e-5 : readNumber(config, 'rms_norm_eps', 1e-6);
  const invFreq = ropeInvFreq(D, readNumber(config, 'rope_theta', 10000), config.rope_scaling ?? null);
  const window = slidingWindowOf(config);
  const clip = olmo && typeof config.clip_qkv === 'number' ? config.clip_qkv : null;
  const embed = tensor(weights, 'model.embed_tokens.weight', [V, H]);
  const finalNorm = olmo ? null : tensor(weights, 'model.norm.weight', [H]);
  const lmHead = config.tie_word_embeddings === true ? embed : tensor(weights, 'lm_head.weight', [V, H]);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < numLayers; l++) layers.push(loadLayer(source, dims, l));
  for (const edit of options.downProjScale ?? []) {
    const layer = layers[edit.layer];
    if (layer === undefined || edit.row < 0 || edit.row >= H || edit.col < 0 || edit.col >= I) {
      throw new Error(`reference: down_proj edit out of range ${JSON.stringify(edit)}`);
    }
    layer.down[edit.row * I + edit.col]! *= edit.scale;
    if (options.restoreSuperActivation === true && !layer.restoreRows.includes(edit.row)) layer.restoreRows.push(edit.row);
  }
  const groupSize = numHeads / numKvHeads;
  const scale = 1 / Math.sqrt(D);

  const norm = (x: Vec, weight: Float32Array | null): Vec => (weight === null ? weightlessLayerNorm(x) : rmsNorm(x, weight, eps));

  function attend(query: Vec, position: number, keys: readonly Float64Array[], values: readonly Float64Array[]): Vec {
    const out = new Float64Array(numHeads * D);
    // HF sliding window: key j is visible to query p iff j <= p and j > p - window.
    const first = window === null ? 0 : Math.max(0, position - window + 1);
    for (let h = 0; h < numHeads; h++) {
      const g = Math.floor(h / groupSize);
      const scores = new Float64Array(position + 1 - first);
      let max = -Infinity;
      for (let j = first; j <= position; j++) {
        const key = keys[j]!;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += query[h * D + d]! * key[g * D + d]!;
        const s = dot * scale;
        scores[j - first] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let i = 0; i < scores.length; i++) {
        scores[i] = Math.exp(scores[i]! - max);
        sum += scores[i]!;
      }
      for (let j = first; j <= position; j++) {
        const w = scores[j - first]! / sum;
        const value = values[j]!;
        for (let d = 0; d < D; d++) out[h * D + d]! += w * value[g * D + d]!;
      }
    }
    return out;
  }

  function mlp(layer: LayerWeights, x: Vec, position: number): { input: Vec; output: Vec } {
    const g = matVec(layer.gate, I, H, x, null);
    const u = matVec(layer.up, I, H, x, null);
    const act = new Float64Array(I);
    for (let i = 0; i < I; i++) act[i] = silu(g[i]!) * u[i]!;
    const output = matVec(layer.down, H, I, act, null);
    if (position === 0) {
      for (const row of layer.restoreRows) {
        let acc = 0;
        for (let c = 0; c < I; c++) acc += layer.downOriginal[row * I + c]! * act[c]!;
        output[row] = acc;
      }
    }
    return { input: act, output };
  }

  function emptyCache(): ReferenceCache {
    return { length: 0, keys: layers.map(() => []), values: layers.map(() => []) };
  }

  function forward(tokenIds: number[], cache: ReferenceCache = emptyCache()): ReferenceForwardResult {
    const start = cache.length;
    const hidden: Vec[] = tokenIds.map((id) => {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`reference: token id ${id} out of range`);
      return Float64Array.from(embed.subarray(id * H, (id + 1) * H));
    });
    const newKeys: Float64Array[][] = [];
    const newValues: Float64Array[][] = [];
    const downProj: DownProjRecord[] = [];
    layers.forEach((layer, l) => {
      const keys = [...cache.keys[l]!];
      const values = [...cache.values[l]!];
      const queries: Vec[] = [];
      for (let t = 0; t < hidden.length; t++) {
        const x = norm(hidden[t]!, layer.norm1);
        const q = matVec(layer.q, numHeads * D, H, x, layer.qBias);
        const k = matVec(layer.k, numKvHeads * D, H, x, layer.kBias);
        const v = matVec(layer.v, numKvHeads * D, H, x, layer.vBias);
        if (clip !== null) {
          clampInPlace(q, clip);
          clampInPlace(k, clip);
          clampInPlace(v, clip);
        }
        applyRope(q, numHeads, D, start + t, invFreq);
        applyRope(k, numKvHeads, D, start + t, invFreq);
        queries.push(q);
        keys.push(k);
        values.push(v);
      }
      for (let t = 0; t < hidden.length; t++) {
        const attn = attend(queries[t]!, start + t, keys, values);
        const o = matVec(layer.o, H, numHeads * D, attn, null);
        const h = hidden[t]!;
        for (let i = 0; i < H; i++) h[i]! += o[i]!;
      }
      const record: DownProjRecord = { layer: l, residual: [], mlpInput: [], input: [], output: [] };
      for (let t = 0; t < hidden.length; t++) {
        const h = hidden[t]!;
        record.residual.push(toF32(h));
        const x = norm(h, layer.norm2);
        const { input, output } = mlp(layer, x, start + t);
        for (let i = 0; i < H; i++) h[i]! += output[i]!;
        record.mlpInput.push(toF32(x));
        record.input.push(toF32(input));
        record.output.push(toF32(output));
      }
      downProj.push(record);
      newKeys.push(keys);
      newValues.push(values);
    });
    const logits = hidden.map((h) => toF32(matVec(lmHead, V, H, norm(h, finalNorm), null)));
    return {
      logits,
      cache: { length: start + tokenIds.length, keys: newKeys, values: newValues },
      downProj,
    };
  }

  return { dims, forward, emptyCache };
}
