// The Optimum-layout ONNX export (test/helpers/optimum-export.ts) run by onnxruntime-node: its logits equal
// the reference forward pass for every architecture swserve reads, prefill and cached decode, and a
// left-padded batch row equals the same prompt alone; names and weight layout are Optimum's.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';
import { argmax } from '../../src/engine/sampler.js';
import { maxAbsDiff } from '../helpers/engine-harness.js';
import { exportOptimumOnnx } from '../helpers/optimum-export.js';
import { createReferenceModel } from '../helpers/reference-forward.js';
import { buildTinyCheckpoint, type TinyModelSpec } from '../helpers/tiny-checkpoint.js';

// Float32 graph vs float64 reference, as in reference-agreement.test.ts.
const LOGIT_TOLERANCE = 1e-4;
const DECODE_STEPS = 6;

const CASES: [string, TinyModelSpec][] = [
  ['llama with GQA', { arch: 'llama', numHeads: 4, numKvHeads: 2, seed: 31 }],
  ['llama tied embeddings + llama3 rope scaling', { arch: 'llama', tieEmbeddings: true, seed: 32, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } }],
  ['mistral with a sliding window of 6', { arch: 'mistral', numKvHeads: 1, slidingWindow: 6, seed: 33 }],
  ['qwen2 with q/k/v biases', { arch: 'qwen2', numKvHeads: 2, seed: 34 }],
  ['phi3 fused qkv and gate_up', { arch: 'phi3', seed: 35 }],
  ['olmo with clip_qkv', { arch: 'olmo', clipQkv: 0.5, seed: 36 }],
  ['llama bf16', { arch: 'llama', dtype: 'BF16', numKvHeads: 2, seed: 37 }],
];

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-optimum-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

interface Step {
  logits: Float32Array[][];
  present: Map<string, ort.Tensor>;
}

/** One session.run of the export: rows of token ids (all the same length), their masks and positions. */
async function runExport(session: ort.InferenceSession, layers: number, kv: [number, number], rows: number[][], mask: number[][], positions: number[][], past?: Map<string, ort.Tensor>): Promise<Step> {
  const batch = rows.length;
  const tokens = rows[0]!.length;
  const int64 = (values: number[][]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(values.flat(), BigInt), [batch, values[0]!.length]);
  const feeds: Record<string, ort.Tensor> = { input_ids: int64(rows), attention_mask: int64(mask), position_ids: int64(positions) };
  for (let l = 0; l < layers; l++) {
    for (const part of ['key', 'value']) {
      feeds[`past_key_values.${l}.${part}`] = past?.get(`present.${l}.${part}`) ?? new ort.Tensor('float32', new Float32Array(0), [batch, kv[0], 0, kv[1]]);
    }
  }
  const out = await session.run(feeds);
  const logits = out.logits!;
  const vocab = logits.dims[2]!;
  const data = logits.data as Float32Array;
  const split = Array.from({ length: batch }, (_, b) => Array.from({ length: tokens }, (_, t) => data.slice((b * tokens + t) * vocab, (b * tokens + t + 1) * vocab)));
  const present = new Map(Object.entries(out).filter(([name]) => name.startsWith('present.')));
  return { logits: split, present };
}

describe('Optimum-layout ONNX export', () => {
  for (const [name, spec] of CASES) {
    it(`${name}: logits equal the reference, prefill and cached decode`, async () => {
      const dir = path.join(root, name.replace(/\W+/g, '-'));
      const ckpt = buildTinyCheckpoint(dir, spec);
      const exported = exportOptimumOnnx(dir, path.join(dir, 'optimum'));
      const reference = createReferenceModel(ckpt);
      const prompt = [ckpt.bosId, ...Buffer.from('The cat sat on')];
      const ref = reference.forward(prompt);
      const session = await ort.InferenceSession.create(exported.modelPath);
      try {
        const { numLayers, numKvHeads, headDim } = { numLayers: ckpt.config.num_hidden_layers, numKvHeads: ckpt.config.num_key_value_heads, headDim: ckpt.config.hidden_size / ckpt.config.num_attention_heads };
        const positions = prompt.map((_, i) => i);
        let step = await runExport(session, numLayers, [numKvHeads, headDim], [prompt], [prompt.map(() => 1)], [positions]);
        step.logits[0]!.forEach((logits, t) => assert.ok(maxAbsDiff(logits, ref.logits[t]!) < LOGIT_TOLERANCE, `prefill ${t}: ${maxAbsDiff(logits, ref.logits[t]!)}`));
        let cache = ref.cache;
        let last = ref.logits[prompt.length - 1]!;
        for (let i = 0; i < DECODE_STEPS; i++) {
          const token = argmax(last);
          const refStep = reference.forward([token], cache);
          cache = refStep.cache;
          last = refStep.logits[0]!;
          const seen = prompt.length + i + 1;
          step = await runExport(session, numLayers, [numKvHeads, headDim], [[token]], [Array<number>(seen).fill(1)], [[seen - 1]], step.present);
          const diff = maxAbsDiff(step.logits[0]![0]!, last);
          assert.ok(diff < LOGIT_TOLERANCE, `decode ${i}: ${diff}`);
        }
      } finally {
        await session.release();
      }
    });
  }

  it('a left-padded row of a batch equals that prompt alone (attention_mask and position_ids as Transformers.js sends them)', async () => {
    const dir = path.join(root, 'padding');
    const ckpt = buildTinyCheckpoint(dir, { arch: 'llama', numKvHeads: 2, seed: 38 });
    const exported = exportOptimumOnnx(dir, path.join(dir, 'optimum'));
    const reference = createReferenceModel(ckpt);
    const long = [ckpt.bosId, ...Buffer.from('Long prompt')];
    const short = [ckpt.bosId, ...Buffer.from('Short')];
    const pad = long.length - short.length;
    const session = await ort.InferenceSession.create(exported.modelPath);
    try {
      const spec = ckpt.config;
      const kv: [number, number] = [spec.num_key_value_heads, spec.hidden_size / spec.num_attention_heads];
      // Padded positions get position 1, as transformers' cumsum - 1 with masked_fill(mask == 0, 1).
      const shortPositions = [...Array<number>(pad).fill(1), ...short.map((_, i) => i)];
      const step = await runExport(session, spec.num_hidden_layers, kv, [long, [...Array<number>(pad).fill(0), ...short]], [long.map(() => 1), [...Array<number>(pad).fill(0), ...short.map(() => 1)]], [long.map((_, i) => i), shortPositions]);
      const refShort = reference.forward(short).logits;
      short.forEach((_, t) => assert.ok(maxAbsDiff(step.logits[1]![pad + t]!, refShort[t]!) < LOGIT_TOLERANCE, `padded row position ${t}`));
      const refLong = reference.forward(long).logits;
      long.forEach((_, t) => assert.ok(maxAbsDiff(step.logits[0]![t]!, refLong[t]!) < LOGIT_TOLERANCE, `full row position ${t}`));
    } finally {
      await session.release();
    }
  });

  it('names nodes as Optimum does and stores MatMul weights transposed [in, out] in model.onnx_data', () => {
    const dir = path.join(root, 'layout');
    const ckpt = buildTinyCheckpoint(dir, { arch: 'llama', numLayers: 2, seed: 39 });
    const exported = exportOptimumOnnx(dir, path.join(dir, 'optimum'));
    const model = fromBinary(ModelProtoSchema, fs.readFileSync(exported.modelPath));
    const graph = model.graph!;
    assert.deepEqual(graph.input.slice(0, 3).map((i) => i.name), ['input_ids', 'attention_mask', 'position_ids']);
    assert.ok(graph.input.some((i) => i.name === 'past_key_values.1.value'));
    assert.deepEqual(graph.output.map((o) => o.name).slice(-1), ['logits']);
    assert.ok(graph.output.some((o) => o.name === 'present.1.key'));
    const down = graph.node.find((n) => n.name === '/model/layers.1/mlp/down_proj/MatMul');
    assert.ok(down, 'down_proj MatMul named as Optimum names it');
    const weightName = down.input[1]!;
    assert.match(weightName, /^onnx::MatMul_\d+$/);
    const init = graph.initializer.find((t) => t.name === weightName)!;
    const [rows, cols] = [ckpt.config.hidden_size, ckpt.config.intermediate_size];
    assert.deepEqual(init.dims.map(Number), [cols, rows]);
    const ext = Object.fromEntries(init.externalData.map((e) => [e.key, e.value]));
    assert.equal(ext.location, 'model.onnx_data');
    const bytes = fs.readFileSync(exported.dataPath).subarray(Number(ext.offset), Number(ext.offset) + Number(ext.length));
    const stored = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const original = ckpt.weights.get('model.layers.1.mlp.down_proj.weight')!.data;
    // stored[c, r] = W[r, c]
    assert.equal(stored[5 * rows + 3], original[3 * cols + 5]);
    for (const file of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(fs.existsSync(path.join(dir, 'optimum', file)), file);
    // optimum-cli's own layout keeps model.onnx next to config.json.
    const flat = exportOptimumOnnx(dir, path.join(dir, 'optimum-cli'), { onnxSubfolder: '' });
    assert.equal(flat.modelPath, path.join(dir, 'optimum-cli', 'model.onnx'));
    assert.ok(fs.existsSync(path.join(dir, 'optimum-cli', 'model.onnx_data')));
  });
});
