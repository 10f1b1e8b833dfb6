// The GGUF writer and the safetensors -> GGUF converter (bench/peers): exact header bytes, a round trip
// through our reader, llama.cpp's tensor names, types and metadata, the tokenizer padded to vocab_size,
// and the Q/K permutation checked by what it is for: llama.cpp's adjacent-pair RoPE on the permuted rows
// gives the same attention scores as Hugging Face's rotate-half RoPE on the original rows.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { convertToGguf, permuteForLlamaRope } from '../../bench/peers/convert-to-gguf.js';
import { decodeGgml, encodeGgml } from '../../bench/peers/ggml-blocks.js';
import { readGguf, readGgufTensorBytes, u32, writeGguf, type GgufValue } from '../../bench/peers/gguf-file.js';
import { writeFileSync } from 'node:fs';
import { byteTokenizerJson } from '../helpers/byte-tokenizer.js';
import { buildTinyCheckpoint, mulberry32 } from '../helpers/tiny-checkpoint.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-gguf-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

function value(meta: Map<string, GgufValue>, key: string): unknown {
  const v = meta.get(key);
  assert.ok(v, `metadata ${key}`);
  return v.kind === 'array' ? v.values : v.value;
}

describe('GGUF writer', () => {
  it('writes the v3 header byte for byte: magic, counts, a u32 key, a tensor entry with reversed dims, aligned data', () => {
    const file = path.join(root, 'exact.gguf');
    const data = Float32Array.from([1, 2, 3, 4, 5, 6]);
    writeGguf(file, [['a.b', u32(7)]], [{ name: 't', shape: [2, 3], type: 'F32', encode: () => encodeGgml('F32', data) }]);
    const bytes = fs.readFileSync(file);
    const expected = Buffer.concat([
      Buffer.from('GGUF'),
      Buffer.from([3, 0, 0, 0]), // version
      Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), // tensor count
      Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), // metadata count
      Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('a.b'), Buffer.from([4, 0, 0, 0]), Buffer.from([7, 0, 0, 0]), // "a.b": u32 7
      Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('t'), Buffer.from([2, 0, 0, 0]), // name, n_dims
      Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), // ne[0] = 3 (innermost), ne[1] = 2
      Buffer.from([0, 0, 0, 0]), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]), // type F32, offset 0
    ]);
    assert.deepEqual(bytes.subarray(0, expected.length), expected);
    const dataStart = Math.ceil(expected.length / 32) * 32;
    assert.ok(bytes.subarray(expected.length, dataStart).every((b) => b === 0), 'zero padding to 32 bytes');
    assert.deepEqual(new Float32Array(bytes.buffer.slice(bytes.byteOffset + dataStart, bytes.byteOffset + dataStart + 24)), data);
  });

  it('round-trips every metadata kind and tensor type through the reader, tensor data 32-byte aligned', () => {
    const file = path.join(root, 'round-trip.gguf');
    const next = mulberry32(3);
    const tensors = (['F32', 'F16', 'Q8_0', 'Q4_0'] as const).map((type, i) => {
      const values = Float32Array.from({ length: 64 * (i + 1) }, () => next() - 0.5);
      return { name: `w.${type}`, shape: [i + 1, 64], type, values, encode: () => encodeGgml(type, values) };
    });
    const metadata: [string, GgufValue][] = [
      ['k.u32', u32(4000000000)],
      ['k.i32', { kind: 'i32', value: -5 }],
      ['k.f32', { kind: 'f32', value: 0.5 }],
      ['k.bool', { kind: 'bool', value: true }],
      ['k.str', { kind: 'string', value: 'résumé' }],
      ['k.strs', { kind: 'array', element: 'string', values: ['a', '', 'Ġthe'] }],
      ['k.ints', { kind: 'array', element: 'i32', values: [1, -2, 3] }],
    ];
    writeGguf(file, metadata, tensors);
    const read = readGguf(file);
    assert.equal(read.version, 3);
    assert.deepEqual([...read.metadata.entries()], metadata);
    assert.deepEqual(read.tensors.map((t) => [t.name, t.shape, t.type]), tensors.map((t) => [t.name, t.shape, t.type]));
    for (const [i, info] of read.tensors.entries()) {
      assert.equal(info.fileOffset % 32, 0, `${info.name} aligned`);
      const bytes = readGgufTensorBytes(file, info);
      assert.deepEqual(bytes, Buffer.from(tensors[i]!.encode()));
      assert.equal(decodeGgml(info.type, bytes, tensors[i]!.values.length).length, tensors[i]!.values.length);
    }
  });
});

describe('safetensors -> GGUF converter', () => {
  it('writes llama.cpp names, F32 norms in a Q8_0 file, the llama.* keys and the tokenizer padded to vocab_size', () => {
    const dir = path.join(root, 'ckpt');
    const ckpt = buildTinyCheckpoint(dir, { arch: 'llama', hiddenSize: 64, intermediateSize: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 260, seed: 5 });
    writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(byteTokenizerJson({ merges: [['Ġ', 't']] })));
    const file = path.join(root, 'ckpt-q8.gguf');
    convertToGguf(dir, file, 'Q8_0');
    const gguf = readGguf(file);
    const types = new Map(gguf.tensors.map((t) => [t.name, t.type]));
    const perLayer = ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down'];
    const names = ['token_embd.weight', ...[0, 1].flatMap((l) => perLayer.map((n) => `blk.${l}.${n}.weight`)), 'output_norm.weight', 'output.weight'];
    assert.deepEqual(gguf.tensors.map((t) => t.name), names);
    for (const name of names) assert.equal(types.get(name), name.includes('norm') ? 'F32' : 'Q8_0', name);
    assert.deepEqual(gguf.tensors.find((t) => t.name === 'blk.0.attn_k.weight')!.shape, [32, 64]);
    const m = gguf.metadata;
    assert.equal(value(m, 'general.architecture'), 'llama');
    assert.equal(value(m, 'general.file_type'), 7);
    assert.equal(value(m, 'general.alignment'), 32);
    for (const [key, expected] of [['context_length', 256], ['embedding_length', 64], ['block_count', 2], ['feed_forward_length', 96], ['attention.head_count', 4], ['attention.head_count_kv', 2], ['rope.dimension_count', 16], ['vocab_size', 260]] as const) {
      assert.equal(m.get(`llama.${key}`)?.kind, 'u32', key);
      assert.equal(value(m, `llama.${key}`), expected, key);
    }
    assert.equal(m.get('llama.attention.layer_norm_rms_epsilon')?.kind, 'f32');
    assert.equal(value(m, 'llama.rope.freq_base'), 10000);
    assert.equal(value(m, 'tokenizer.ggml.model'), 'gpt2');
    assert.equal(value(m, 'tokenizer.ggml.pre'), 'gpt-2');
    const tokens = value(m, 'tokenizer.ggml.tokens') as string[];
    const tokenTypes = value(m, 'tokenizer.ggml.token_type') as number[];
    assert.equal(tokens.length, 260);
    assert.equal(tokens[32], 'Ġ');
    assert.deepEqual([tokens[256], tokenTypes[256]], ['<s>', 3], 'BOS is a control token');
    assert.deepEqual([tokens[258], tokenTypes[258]], ['Ġt', 1], 'merged token');
    assert.deepEqual([tokens[259], tokenTypes[259]], ['[PAD259]', 5], 'id beyond the tokenizer is an unused pad');
    assert.deepEqual(value(m, 'tokenizer.ggml.merges'), ['Ġ t']);
    assert.equal(value(m, 'tokenizer.ggml.bos_token_id'), ckpt.bosId);
    assert.equal(value(m, 'tokenizer.ggml.eos_token_id'), ckpt.eosId);
    assert.equal(value(m, 'tokenizer.ggml.add_bos_token'), true);
  });

  it('F32 tensors hold the checkpoint values; tied embeddings leave output.weight out', () => {
    const dir = path.join(root, 'tied');
    const ckpt = buildTinyCheckpoint(dir, { arch: 'llama', tieEmbeddings: true, seed: 6 });
    const file = path.join(root, 'tied.gguf');
    convertToGguf(dir, file, 'F32');
    const gguf = readGguf(file);
    assert.ok(!gguf.tensors.some((t) => t.name === 'output.weight'));
    const down = gguf.tensors.find((t) => t.name === 'blk.1.ffn_down.weight')!;
    assert.deepEqual(decodeGgml('F32', readGgufTensorBytes(file, down), ckpt.weights.get('model.layers.1.mlp.down_proj.weight')!.data.length), ckpt.weights.get('model.layers.1.mlp.down_proj.weight')!.data);
  });

  it('the Q/K permutation turns rotate-half RoPE into adjacent-pair RoPE with the same attention scores', () => {
    const [heads, headDim, cols] = [2, 8, 5];
    const next = mulberry32(11);
    const wq = Float32Array.from({ length: heads * headDim * cols }, () => next() - 0.5);
    const wk = Float32Array.from({ length: heads * headDim * cols }, () => next() - 0.5);
    const x = [Float32Array.from({ length: cols }, () => next()), Float32Array.from({ length: cols }, () => next())];
    const project = (w: Float32Array, v: Float32Array): Float64Array => Float64Array.from({ length: heads * headDim }, (_, r) => v.reduce((a, xv, c) => a + w[r * cols + c]! * xv, 0));
    const half = headDim / 2;
    const angle = (pos: number, i: number): number => pos * 10000 ** (-(2 * i) / headDim);
    // Pairs (i, i + D/2) rotate together in Hugging Face; (2i, 2i + 1) in llama.cpp's LLAMA_ROPE_TYPE_NORM.
    const rotate = (y: Float64Array, pos: number, pair: (i: number) => [number, number]): Float64Array => {
      const out = Float64Array.from(y);
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < half; i++) {
          const [a, b] = pair(i).map((k) => h * headDim + k) as [number, number];
          const [c, s] = [Math.cos(angle(pos, i)), Math.sin(angle(pos, i))];
          out[a] = y[a]! * c - y[b]! * s;
          out[b] = y[b]! * c + y[a]! * s;
        }
      }
      return out;
    };
    const hf = (i: number): [number, number] => [i, i + half];
    const llama = (i: number): [number, number] => [2 * i, 2 * i + 1];
    const scores = (q: Float64Array, k: Float64Array): number[] => Array.from({ length: heads }, (_, h) => q.slice(h * headDim, (h + 1) * headDim).reduce((a, v, d) => a + v * k[h * headDim + d]!, 0));
    const [pq, pk] = [permuteForLlamaRope(wq, heads * headDim, cols, heads), permuteForLlamaRope(wk, heads * headDim, cols, heads)];
    const expected = scores(rotate(project(wq, x[0]!), 7, hf), rotate(project(wk, x[1]!), 3, hf));
    const actual = scores(rotate(project(pq, x[0]!), 7, llama), rotate(project(pk, x[1]!), 3, llama));
    actual.forEach((v, h) => assert.ok(Math.abs(v - expected[h]!) < 1e-9, `head ${h}: ${v} vs ${expected[h]}`));
    // Without the permutation the scores differ, so the check can fail.
    const unpermuted = scores(rotate(project(wq, x[0]!), 7, llama), rotate(project(wk, x[1]!), 3, llama));
    assert.ok(unpermuted.some((v, h) => Math.abs(v - expected[h]!) > 1e-3));
  });
});
