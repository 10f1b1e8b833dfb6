// A Hugging Face Llama checkpoint (read through swserve's own checkpoint code) -> a llama.cpp GGUF with
// the same weights, following convert_hf_to_gguf.py's LlamaModel: tensor names, the Q/K row permutation
// for llama.cpp's RoPE, 1-D tensors (norms) in F32, the llama.* hyperparameters and the tokenizer.
// Usage: node dist/bench/peers/convert-to-gguf.js MODEL_DIR OUT.gguf [F32|F16|Q8_0|Q4_0]
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCheckpoint, type Checkpoint } from '../../src/model/checkpoint.js';
import { readTensorAsFloat32 } from '../../src/model/safetensors.js';
import { ropeInverseFrequencies } from '../../src/model/rope.js';
import { encodeGgml, GGML_BLOCK, type GgmlType } from './ggml-blocks.js';
import { f32, GGUF_ALIGNMENT, str, u32, writeGguf, type GgufTensorSource, type GgufValue } from './gguf-file.js';
import { ggufTokenizerMetadata } from './gguf-tokenizer.js';

/** llama_ftype (llama.h): what the file's 2-D tensors mostly are. */
const FILE_TYPE: Record<GgmlType, number> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7 };
/** GGML_QNT_VERSION, written by gguf-py into every file. */
const QUANTIZATION_VERSION = 2;

const CONVERTIBLE = new Set(['LlamaForCausalLM', 'MistralForCausalLM']);

/** Rows of a q/k projection reordered from rotate-half pairs (i, i + D/2) to adjacent pairs (2i, 2i + 1). */
export function permuteForLlamaRope(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const headDim = rows / heads;
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * headDim + j * half + i) * cols;
        out.set(w.subarray(from, from + cols), (h * headDim + 2 * i + j) * cols);
      }
    }
  }
  return out;
}

function llamaMetadata(checkpoint: Checkpoint, type: GgmlType): [string, GgufValue][] {
  const { spec } = checkpoint;
  const meta: [string, GgufValue][] = [
    ['general.architecture', str('llama')],
    ['general.name', str(path.basename(checkpoint.dir))],
    ['general.alignment', u32(GGUF_ALIGNMENT)],
    ['general.file_type', u32(FILE_TYPE[type])],
    ['general.quantization_version', u32(QUANTIZATION_VERSION)],
    ['llama.vocab_size', u32(spec.vocabSize)],
    ['llama.context_length', u32(spec.maxPositionEmbeddings)],
    ['llama.embedding_length', u32(spec.hiddenSize)],
    ['llama.block_count', u32(spec.numLayers)],
    ['llama.feed_forward_length', u32(spec.intermediateSize)],
    ['llama.attention.head_count', u32(spec.numHeads)],
    ['llama.attention.head_count_kv', u32(spec.numKvHeads)],
    ['llama.attention.layer_norm_rms_epsilon', f32(spec.normEps)],
    ['llama.rope.freq_base', f32(spec.ropeTheta)],
    ['llama.rope.dimension_count', u32(spec.headDim)],
  ];
  if (spec.headDim !== spec.hiddenSize / spec.numHeads) {
    meta.push(['llama.attention.key_length', u32(spec.headDim)], ['llama.attention.value_length', u32(spec.headDim)]);
  }
  return meta;
}

/** The GGUF tensors of a Llama checkpoint, each read, permuted and encoded only when written. */
function llamaTensors(checkpoint: Checkpoint, type: GgmlType): GgufTensorSource[] {
  const { spec, layout, tensors } = checkpoint;
  const source = (name: string, ggufName: string, permuteHeads?: number): GgufTensorSource => {
    const entry = tensors.get(name)!;
    // Norms and other 1-D tensors stay F32; a row that does not fill whole blocks falls back to F16 (as convert_hf_to_gguf.py does).
    const rowLength = entry.shape[entry.shape.length - 1]!;
    const tensorType: GgmlType = entry.shape.length < 2 ? 'F32' : rowLength % GGML_BLOCK[type].elements === 0 ? type : 'F16';
    return {
      name: ggufName,
      shape: entry.shape,
      type: tensorType,
      encode: () => {
        const values = readTensorAsFloat32(checkpoint.dir, entry);
        const [rows, cols] = entry.shape as [number, number];
        return encodeGgml(tensorType, permuteHeads === undefined ? values : permuteForLlamaRope(values, rows, cols, permuteHeads));
      },
    };
  };
  const out: GgufTensorSource[] = [source(layout.embedTokens, 'token_embd.weight')];
  if (spec.ropeScaling) out.push(ropeFactors(checkpoint));
  layout.layers.forEach((layer, l) => {
    const blk = `blk.${l}`;
    if (layer.attention.kind !== 'separate' || layer.mlp.kind !== 'separate' || !layer.inputNorm || !layer.postAttentionNorm) {
      throw new Error(`${checkpoint.dir}: layer ${l} is not in the Llama layout`);
    }
    out.push(
      source(layer.inputNorm, `${blk}.attn_norm.weight`),
      source(layer.attention.q, `${blk}.attn_q.weight`, spec.numHeads),
      source(layer.attention.k, `${blk}.attn_k.weight`, spec.numKvHeads),
      source(layer.attention.v, `${blk}.attn_v.weight`),
      source(layer.o, `${blk}.attn_output.weight`),
      source(layer.postAttentionNorm, `${blk}.ffn_norm.weight`),
      source(layer.mlp.gate, `${blk}.ffn_gate.weight`),
      source(layer.mlp.up, `${blk}.ffn_up.weight`),
      source(layer.down, `${blk}.ffn_down.weight`),
    );
  });
  out.push(source(layout.finalNorm!, 'output_norm.weight'));
  // Tied embeddings: llama.cpp reuses token_embd when output.weight is absent.
  if (layout.lmHead) out.push(source(layout.lmHead, 'output.weight'));
  return out;
}

/**
 * Llama 3 RoPE scaling as llama.cpp takes it: rope_freqs.weight holds a divisor per frequency
 * (convert_hf_to_gguf.py's generate_extra_tensors), here the unscaled over the scaled inverse frequency.
 */
function ropeFactors(checkpoint: Checkpoint): GgufTensorSource {
  const { headDim, ropeTheta, ropeScaling } = checkpoint.spec;
  const plain = ropeInverseFrequencies(headDim, ropeTheta);
  const scaled = ropeInverseFrequencies(headDim, ropeTheta, ropeScaling);
  return { name: 'rope_freqs.weight', shape: [headDim / 2], type: 'F32', encode: () => encodeGgml('F32', plain.map((v, i) => v / scaled[i]!)) };
}

export interface GgufConversion {
  path: string;
  type: GgmlType;
  tensorCount: number;
}

/** Converts the checkpoint in `modelDir` to a GGUF at `outPath` whose 2-D weights are `type`. */
export function convertToGguf(modelDir: string, outPath: string, type: GgmlType): GgufConversion {
  const checkpoint = openCheckpoint(modelDir);
  const { spec } = checkpoint;
  if (!CONVERTIBLE.has(spec.architecture) || spec.attentionBias || spec.slidingWindow !== undefined) {
    throw new Error(`${modelDir}: ${spec.architecture} is not converted; this converter writes Llama-layout models without biases or sliding windows`);
  }
  const metadata = [...llamaMetadata(checkpoint, type), ...ggufTokenizerMetadata(checkpoint.dir, spec.vocabSize, spec)];
  const tensors = llamaTensors(checkpoint, type);
  writeGguf(outPath, metadata, tensors);
  return { path: outPath, type, tensorCount: tensors.length };
}

export const GGUF_TYPES: readonly GgmlType[] = ['F32', 'F16', 'Q8_0', 'Q4_0'];

function main(): void {
  const [modelDir, outPath, type = 'F32'] = process.argv.slice(2);
  if (!modelDir || !outPath || !GGUF_TYPES.includes(type as GgmlType)) {
    console.error(`usage: convert-to-gguf MODEL_DIR OUT.gguf [${GGUF_TYPES.join('|')}]`);
    process.exit(2);
  }
  const result = convertToGguf(modelDir, outPath, type as GgmlType);
  console.log(`wrote ${result.path}: ${result.tensorCount} tensors, ${result.type}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
