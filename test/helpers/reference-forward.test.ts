import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { byteTokenIds, writeByteTokenizer } from './byte-tokenizer.js';
import { createReferenceModel, ropeInvFreq, type ReferenceModel } from './reference-forward.js';
import {
  bf16BitsToFloat32,
  float32ToBf16Bits,
  float32ToHalfBits,
  halfBitsToFloat32,
  readSafetensors,
  roundToDtype,
  writeSafetensors,
} from './safetensors-writer.js';
import {
  buildTinyCheckpoint,
  loadCheckpointWeights,
  loadTinyCheckpoint,
  scaleWeightOnDisk,
  type TinyCheckpoint,
  type TinyModelSpec,
  type WeightTensor,
} from './tiny-checkpoint.js';

const root = mkdtempSync(join(tmpdir(), 'swserve-ref-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirCounter = 0;
const freshDir = (): string => join(root, `d${dirCounter++}`);

const PROMPT = [256, ...byteTokenIds('Hello, world!')];

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  a.forEach((row, i) => {
    const other = b[i]!;
    assert.equal(row.length, other.length);
    for (let j = 0; j < row.length; j++) m = Math.max(m, Math.abs(row[j]! - other[j]!));
  });
  return m;
}

function prefillThenDecode(model: ReferenceModel, tokens: number[], prefill: number): Float32Array[] {
  const first = model.forward(tokens.slice(0, prefill));
  const logits = [...first.logits];
  let cache = first.cache;
  for (const t of tokens.slice(prefill)) {
    const step = model.forward([t], cache);
    assert.equal(step.cache.length, cache.length + 1);
    logits.push(step.logits[0]!);
    cache = step.cache;
  }
  return logits;
}

describe('safetensors writer', () => {
  it('writes a padded header, contiguous offsets and dtype-rounded data', () => {
    const path = join(root, 'rt.safetensors');
    const data = Float32Array.from([1 / 3, -2.5, 65519, 1e-8, 3.14159, -0, 1 + 2 ** -11, 70000]);
    writeSafetensors(
      path,
      {
        a: { dtype: 'F32', shape: [2, 4], data },
        b: { dtype: 'F16', shape: [8], data },
        c: { dtype: 'BF16', shape: [4, 2], data },
      },
      { format: 'pt' },
    );
    const buf = readFileSync(path);
    const n = Number(buf.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
    assert.deepEqual(header['__metadata__'], { format: 'pt' });
    assert.deepEqual(header['a'], { dtype: 'F32', shape: [2, 4], data_offsets: [0, 32] });
    assert.deepEqual(header['b'], { dtype: 'F16', shape: [8], data_offsets: [32, 48] });
    assert.deepEqual(header['c'], { dtype: 'BF16', shape: [4, 2], data_offsets: [48, 64] });
    assert.equal(buf.length, 8 + n + 64);
    assert.equal(buf.readUInt16LE(8 + n + 32), 0x3555); // 1/3 in half precision
    const back = readSafetensors(path);
    assert.deepEqual([...back.tensors.keys()], ['a', 'b', 'c']);
    assert.deepEqual(back.tensors.get('a')!.data, data);
    assert.deepEqual(back.tensors.get('b')!.data, roundToDtype(data, 'F16'));
    assert.deepEqual(back.tensors.get('c')!.data, roundToDtype(data, 'BF16'));
    const f16 = roundToDtype(data, 'F16');
    assert.equal(f16[2], 65504); // just below the overflow midpoint
    assert.equal(f16[7], Infinity);
    assert.equal(f16[6], 1); // exact tie rounds to even
    assert.equal(roundToDtype(Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8]), 'BF16').join(), [1, 1 + 2 ** -6].join());
  });

  it('round-trips every half and bfloat16 bit pattern and rounds midpoints to even', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const h = halfBitsToFloat32(bits);
      if (!Number.isNaN(h)) assert.equal(float32ToHalfBits(h), bits);
      const b = bf16BitsToFloat32(bits);
      if (!Number.isNaN(b)) assert.equal(float32ToBf16Bits(b), bits);
    }
    // Midpoints between consecutive halves: normal, subnormal, and the smallest subnormal.
    assert.equal(float32ToHalfBits(1 + 2 ** -11), 0x3c00);
    assert.equal(float32ToHalfBits(1 + 3 * 2 ** -11), 0x3c02);
    assert.equal(float32ToHalfBits(2 ** -25), 0x0000);
    assert.equal(float32ToHalfBits(2 ** -25 * 1.5), 0x0001);
    assert.equal(float32ToHalfBits(3 * 2 ** -25), 0x0002);
    assert.equal(float32ToHalfBits(65520), 0x7c00);
  });
});

describe('byte tokenizer', () => {
  it('loads in @huggingface/tokenizers and round-trips text', () => {
    const dir = freshDir();
    buildTinyCheckpoint(dir, { arch: 'llama', numLayers: 1 });
    const tok = new Tokenizer(
      JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as object,
      JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as object,
    );
    assert.deepEqual(tok.encode('Hello').ids, [256, 72, 101, 108, 108, 111]);
    for (const text of ['Hello', 'héllo ✓', ' two  spaces\n\ttab . , ']) {
      const ids = tok.encode(text).ids;
      assert.deepEqual(ids, [256, ...byteTokenIds(text)]);
      assert.equal(tok.decode(ids, { skip_special_tokens: true }), text);
      assert.equal(tok.decode(ids.slice(1)), text);
    }
    assert.deepEqual(tok.encode('a</s>').ids, [256, 97, 257]);
    const tokDir = freshDir();
    mkdirSync(tokDir);
    const info = writeByteTokenizer(tokDir);
    assert.deepEqual(info, { bosId: 256, eosId: 257, vocabSize: 258 });
    const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as { chat_template: string };
    const rendered = new Template(config.chat_template).render({
      messages: [{ role: 'user', content: 'hi' }],
      add_generation_prompt: true,
    });
    assert.equal(rendered, 'user: hi\nassistant:');
  });
});

describe('tiny checkpoint', () => {
  it('is deterministic per seed and writes HF names, config and no norm weights for OLMo', () => {
    const a = buildTinyCheckpoint(freshDir(), { arch: 'phi3', numKvHeads: 2, seed: 7 });
    const b = buildTinyCheckpoint(freshDir(), { arch: 'phi3', numKvHeads: 2, seed: 7 });
    const c = buildTinyCheckpoint(freshDir(), { arch: 'phi3', numKvHeads: 2, seed: 8 });
    assert.deepEqual(a.weights, b.weights);
    assert.notDeepEqual(a.weights.get('model.embed_tokens.weight'), c.weights.get('model.embed_tokens.weight'));
    assert.deepEqual(a.weights.get('model.layers.0.self_attn.qkv_proj.weight')!.shape, [128, 64]);
    assert.deepEqual(a.weights.get('model.layers.1.mlp.gate_up_proj.weight')!.shape, [256, 64]);
    const config = JSON.parse(readFileSync(join(a.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(config['architectures'], ['Phi3ForCausalLM']);
    assert.equal(config['num_key_value_heads'], 2);

    const olmo = buildTinyCheckpoint(freshDir(), { arch: 'olmo', clipQkv: 0.4, tieEmbeddings: true });
    assert.ok([...olmo.weights.keys()].every((n) => !n.includes('norm')));
    assert.ok(!olmo.weights.has('lm_head.weight'));
    assert.equal(olmo.config.clip_qkv, 0.4);
    const unclipped = createReferenceModel({ config: { ...olmo.config, clip_qkv: null }, weights: olmo.weights });
    assert.ok(maxAbsDiff(unclipped.forward(PROMPT).logits, createReferenceModel(olmo).forward(PROMPT).logits) > 1e-3);
    const qwen = buildTinyCheckpoint(freshDir(), { arch: 'qwen2' });
    assert.deepEqual(qwen.weights.get('model.layers.1.self_attn.k_proj.bias')!.shape, [64]);
  });

  it('gives identical weights single-file and sharded, and matches what is on disk', () => {
    const spec: TinyModelSpec = { arch: 'llama', numKvHeads: 2, dtype: 'BF16', plantedSuperWeights: [{ layer: 0, row: 3, col: 9 }] };
    const single = buildTinyCheckpoint(freshDir(), spec);
    const sharded = buildTinyCheckpoint(freshDir(), { ...spec, shards: 3 });
    assert.deepEqual(sharded.files, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    const index = JSON.parse(readFileSync(join(sharded.dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    assert.equal(Object.keys(index.weight_map).length, single.weights.size);
    assert.deepEqual(single.weights, sharded.weights);
    for (const ckpt of [single, sharded]) {
      const onDisk = loadCheckpointWeights(ckpt.dir);
      assert.equal(onDisk.size, ckpt.weights.size);
      for (const [name, t] of ckpt.weights) {
        assert.equal(onDisk.get(name)!.dtype, 'BF16');
        assert.deepEqual(onDisk.get(name)!.data, t.data, name);
      }
    }
  });
});

function outputsOf(ckpt: TinyCheckpoint, tokens: number[], options?: Parameters<typeof createReferenceModel>[1]) {
  return createReferenceModel(ckpt, options).forward(tokens);
}

describe('planted super weight', () => {
  const plant = { layer: 1, row: 5, col: 17 };
  for (const arch of ['llama', 'phi3', 'olmo'] as const) {
    it(`${arch}: BOS down_proj output spikes at [row] and the switch removes it`, () => {
      const ckpt = buildTinyCheckpoint(freshDir(), { arch, numLayers: 3, numKvHeads: 2, plantedSuperWeights: [plant] });
      const base = outputsOf(ckpt, PROMPT);
      const layer = base.downProj[plant.layer]!;
      const spike = layer.output[0]![plant.row]!;
      assert.ok(spike > 200, `spike ${spike}`);
      let others = 0;
      layer.output.forEach((row, t) => row.forEach((v, ch) => {
        if (t !== 0 || ch !== plant.row) others = Math.max(others, Math.abs(v));
      }));
      assert.ok(spike >= 10 * others, `spike ${spike} vs next ${others}`);
      assert.ok(layer.input[0]![plant.col]! > 20);

      const zeroed = outputsOf(ckpt, PROMPT, { downProjScale: [{ ...plant, scale: 0 }] });
      const zOut = zeroed.downProj[plant.layer]!.output;
      assert.ok(Math.abs(zOut[0]![plant.row]!) < spike / 50);
      assert.ok(maxAbsDiff(zeroed.logits, base.logits) > 0.1);
      assert.deepEqual(zeroed.downProj[0], base.downProj[0]);

      const restored = outputsOf(ckpt, PROMPT, { downProjScale: [{ ...plant, scale: 0 }], restoreSuperActivation: true });
      const rOut = restored.downProj[plant.layer]!.output;
      assert.ok(Math.abs(rOut[0]![plant.row]! - spike) < 1e-3);
      assert.deepEqual(rOut.slice(1), zOut.slice(1));
      assert.deepEqual(restored.logits[0], base.logits[0]);
    });
  }

  it('supports several planted weights sharing a row or a column', () => {
    const plants = [
      { layer: 0, row: 2, col: 4 },
      { layer: 0, row: 2, col: 30 },
      { layer: 1, row: 40, col: 8 },
      { layer: 1, row: 41, col: 8 },
    ];
    const ckpt = buildTinyCheckpoint(freshDir(), { arch: 'mistral', numLayers: 2, plantedSuperWeights: plants, dtype: 'F16' });
    const out = outputsOf(ckpt, PROMPT).downProj;
    assert.ok(out[0]!.output[0]![2]! > 800);
    assert.ok(out[1]!.output[0]![40]! > 200 && out[1]!.output[0]![41]! > 200);
  });
});

describe('reference forward', () => {
  const specs: TinyModelSpec[] = [
    { arch: 'llama', numKvHeads: 2, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 } },
    { arch: 'mistral', slidingWindow: 4 },
    { arch: 'qwen2', numKvHeads: 1, tieEmbeddings: true },
    { arch: 'phi3', numKvHeads: 2, dtype: 'BF16' },
    { arch: 'olmo', clipQkv: 0.5, dtype: 'F16' },
  ];
  for (const spec of specs) {
    it(`${spec.arch}: cached decode equals full prefill`, () => {
      const ckpt = buildTinyCheckpoint(freshDir(), { ...spec, plantedSuperWeights: [{ layer: 0, row: 1, col: 2 }] });
      const tokens = [256, ...byteTokenIds('Summer')];
      assert.equal(tokens.length, 7);
      tokens.push(104);
      const model = createReferenceModel(ckpt, { downProjScale: [{ layer: 0, row: 1, col: 2, scale: 0.5 }], restoreSuperActivation: true });
      const full = model.forward(tokens).logits;
      const cached = prefillThenDecode(model, tokens, 5);
      assert.ok(maxAbsDiff(full, cached) < 1e-5);
      const spread = Math.max(...full[7]!) - Math.min(...full[7]!);
      assert.ok(spread > 0.5 && spread < 100, `logit spread ${spread}`);
    });
  }

  it('maps GQA query heads to kv head floor(h / group) like repeat_kv', () => {
    const gqa = buildTinyCheckpoint(freshDir(), { arch: 'llama', numKvHeads: 2 });
    const D = 16;
    const weights = new Map<string, WeightTensor>(gqa.weights);
    for (let l = 0; l < 2; l++) {
      for (const proj of ['k_proj', 'v_proj']) {
        const name = `model.layers.${l}.self_attn.${proj}.weight`;
        const src = gqa.weights.get(name)!.data;
        const data = new Float32Array(64 * 64);
        for (let h = 0; h < 4; h++) data.set(src.subarray(Math.floor(h / 2) * D * 64, (Math.floor(h / 2) + 1) * D * 64), h * D * 64);
        weights.set(name, { shape: [64, 64], data });
      }
    }
    const mha = createReferenceModel({ config: { ...gqa.config, num_key_value_heads: 4 }, weights });
    assert.ok(maxAbsDiff(mha.forward(PROMPT).logits, createReferenceModel(gqa).forward(PROMPT).logits) < 1e-9);
  });

  it('mistral sliding window: a query sees exactly the last W positions', () => {
    // One layer: keys depend only on their own token, and RoPE scores depend only on relative position,
    // so the last position's logits equal those of the last-W-token suffix on its own.
    const ckpt = buildTinyCheckpoint(freshDir(), { arch: 'mistral', numLayers: 1, slidingWindow: 3 });
    const tokens = [256, ...byteTokenIds('abcdef')];
    const model = createReferenceModel(ckpt);
    const full = model.forward(tokens).logits.at(-1)!;
    const suffix = model.forward(tokens.slice(-3)).logits.at(-1)!;
    const longer = model.forward(tokens.slice(-4)).logits.at(-1)!;
    assert.ok(maxAbsDiff([full], [suffix]) < 1e-5);
    assert.ok(maxAbsDiff([full], [longer]) < 1e-5);
    const shorter = model.forward(tokens.slice(-2)).logits.at(-1)!;
    assert.ok(maxAbsDiff([full], [shorter]) > 1e-3);
    const noWindow = createReferenceModel({ config: { ...ckpt.config, sliding_window: null }, weights: ckpt.weights });
    assert.ok(maxAbsDiff([noWindow.forward(tokens).logits.at(-1)!], [full]) > 1e-3);
  });

  it('llama3 rope scaling keeps high, divides low and blends medium frequencies', () => {
    const scaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } as const;
    const plain = ropeInvFreq(16, 10000, null);
    const scaled = ropeInvFreq(16, 10000, scaling);
    let kinds = 0;
    plain.forEach((f, i) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < 16) assert.equal(scaled[i], f);
      else if (wavelen > 64) assert.equal(scaled[i], Math.fround(f / 8));
      else {
        const smooth = (64 / wavelen - 1) / 3;
        assert.ok(Math.abs(scaled[i]! - ((1 - smooth) * f / 8 + smooth * f)) < 1e-7);
        kinds++;
      }
    });
    assert.ok(kinds > 0);
  });

  it('scaleWeightOnDisk equals downProjScale (single and sharded, BF16)', () => {
    for (const shards of [1, 2]) {
      const plant = { layer: 1, row: 6, col: 11 };
      const ckpt = buildTinyCheckpoint(freshDir(), { arch: 'qwen2', dtype: 'BF16', shards, plantedSuperWeights: [plant] });
      for (const scale of [0, 2]) {
        const dst = freshDir();
        scaleWeightOnDisk(ckpt.dir, dst, [{ ...plant, scale }]);
        const edited = loadTinyCheckpoint(dst);
        assert.equal(edited.dtype, 'BF16');
        const fromDisk = createReferenceModel(edited).forward(PROMPT).logits;
        const switched = createReferenceModel(ckpt, { downProjScale: [{ ...plant, scale }] }).forward(PROMPT).logits;
        assert.ok(maxAbsDiff(fromDisk, switched) < 1e-6);
        assert.ok(maxAbsDiff(fromDisk, createReferenceModel(ckpt).forward(PROMPT).logits) > 1e-3);
      }
    }
  });
});
