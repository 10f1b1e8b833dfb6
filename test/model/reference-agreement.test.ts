// The engine's logits against the independent reference forward pass, for every supported
// architecture and dtype: prefill (all positions) and 20 KV-cached decode steps.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { argmax } from '../../src/engine/sampler.js';
import { maxAbsDiff, openHarness } from '../helpers/engine-harness.js';
import { createReferenceModel } from '../helpers/reference-forward.js';
import { buildTinyCheckpoint, type TinyModelSpec } from '../helpers/tiny-checkpoint.js';

// Float32 graph vs float64 reference: differences are accumulated rounding, far below this.
const LOGIT_TOLERANCE = 1e-4;
const DECODE_STEPS = 20;

const CASES: [string, TinyModelSpec][] = [
  ['llama with GQA', { arch: 'llama', numHeads: 4, numKvHeads: 2, seed: 11 }],
  ['llama tied embeddings + llama3 rope scaling', { arch: 'llama', tieEmbeddings: true, seed: 12, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } }],
  ['mistral with a sliding window of 6', { arch: 'mistral', numKvHeads: 1, slidingWindow: 6, seed: 13 }],
  ['qwen2 with q/k/v biases, tied', { arch: 'qwen2', numKvHeads: 2, tieEmbeddings: true, seed: 14 }],
  ['phi3 fused qkv and gate_up, sliding window 5', { arch: 'phi3', slidingWindow: 5, seed: 15 }],
  ['olmo with clip_qkv', { arch: 'olmo', clipQkv: 0.5, seed: 16 }],
  ['llama bf16, 3 shards', { arch: 'llama', dtype: 'BF16', shards: 3, numKvHeads: 2, seed: 17 }],
  ['qwen2 f16', { arch: 'qwen2', dtype: 'F16', seed: 18 }],
  ['llama with a planted super weight', { arch: 'llama', numLayers: 3, seed: 19, plantedSuperWeights: [{ layer: 1, row: 7, col: 33 }] }],
];

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-ref-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

describe('engine logits equal the reference forward pass', () => {
  for (const [name, spec] of CASES) {
    it(name, async () => {
      const dir = path.join(root, name.replace(/\W+/g, '-'));
      const ckpt = buildTinyCheckpoint(dir, spec);
      const reference = createReferenceModel(ckpt);
      const prompt = [ckpt.bosId, ...Buffer.from('The cat sat')];
      const ref = reference.forward(prompt);
      // Decode follows the reference's own greedy choices, so both see the same tokens.
      const continuation: number[] = [];
      const refDecode: Float32Array[] = [];
      let cache = ref.cache;
      let last = ref.logits[ref.logits.length - 1]!;
      for (let i = 0; i < DECODE_STEPS; i++) {
        const token = argmax(last);
        continuation.push(token);
        const step = reference.forward([token], cache);
        cache = step.cache;
        last = step.logits[0]!;
        refDecode.push(last);
      }
      const harness = await openHarness(dir);
      try {
        // Whole, and in chunks of 3 (each chunk attends to the cached ones through the same masks).
        for (const chunk of [prompt.length, 3]) {
          const run = await harness.run(prompt, continuation, { chunk });
          assert.equal(run.prefill.length, prompt.length);
          run.prefill.forEach((logits, t) => assert.ok(maxAbsDiff(logits, ref.logits[t]!) < LOGIT_TOLERANCE, `chunk ${chunk}, prefill position ${t}: ${maxAbsDiff(logits, ref.logits[t]!)}`));
          run.decode.forEach((logits, i) => assert.ok(maxAbsDiff(logits, refDecode[i]!) < LOGIT_TOLERANCE, `chunk ${chunk}, decode step ${i}: ${maxAbsDiff(logits, refDecode[i]!)}`));
        }
      } finally {
        await harness.release();
      }
    });
  }
});

describe('the float16 graph (what CUDA runs), executed on CPU', () => {
  // Half precision keeps ~3 significant digits; logits of these tiny models are O(1).
  const HALF_TOLERANCE = 3e-2;
  it('agrees with the reference within half-precision error, planted super weight included', async () => {
    const dir = path.join(root, 'half');
    const ckpt = buildTinyCheckpoint(dir, { arch: 'llama', numLayers: 3, numKvHeads: 2, dtype: 'BF16', seed: 23, plantedSuperWeights: [{ layer: 1, row: 7, col: 33 }] });
    const prompt = [ckpt.bosId, ...Buffer.from('The cat sat')];
    const ref = createReferenceModel(ckpt).forward(prompt);
    const harness = await openHarness(dir, true, 'float16');
    try {
      assert.equal(harness.session.info.computeDtype, 'float16');
      const run = await harness.run(prompt, [65, 66, 67]);
      run.prefill.forEach((logits, t) => assert.ok(maxAbsDiff(logits, ref.logits[t]!) < HALF_TOLERANCE, `position ${t}: ${maxAbsDiff(logits, ref.logits[t]!)}`));
      const reference = createReferenceModel(ckpt);
      let cache = reference.forward(prompt).cache;
      [65, 66, 67].forEach((token, i) => {
        const step = reference.forward([token], cache);
        cache = step.cache;
        assert.ok(maxAbsDiff(run.decode[i]!, step.logits[0]!) < HALF_TOLERANCE, `decode ${i}: ${maxAbsDiff(run.decode[i]!, step.logits[0]!)}`);
      });
      const spike = ref.downProj[1]!.output[0]![7]!;
      assert.ok(Math.abs(run.prefillFrame!.layers[1]!.outputMax - Math.abs(spike)) / Math.abs(spike) < 1e-2);
    } finally {
      await harness.release();
    }
  });
});
