// Continuous batching on quantized copies: sequences with different switch states (on, off, scaled,
// restored, a probed coordinate) mixed in one batch give exactly what each gives alone, as on float32,
// with int8 activations (the default compute) and with float32 activations.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { GenerationRequest } from '../../src/engine/protocol.js';
import type { WeightOptions } from '../../src/model/quantize/weight-format.js';
import { scaledPlan, switchPlan, type SwitchPlan } from '../../src/model/switch-plan.js';
import { generationRequest } from '../helpers/engine-harness.js';
import { assertBatchedEqualsSolo, startEngine } from '../helpers/engine-runner.js';
import { buildTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

// Float32 activations: batch shapes change only summation order (as on float32 weights).
const LOGPROB_TOLERANCE = 1e-4;
// Int8 activations are rounded per row and block: an ulp of difference upstream (attention over a
// padded batch) can move one activation to the next code, a step far above float rounding. Measured
// up to 3e-4 here.
const INT8_ACTIVATION_LOGPROB_TOLERANCE = 2e-3;
// Float16 arithmetic: another summation order moves a value by a float16 ulp (2^-11 relative).
const FLOAT16_LOGPROB_TOLERANCE = 1e-2;
const SW = { layer: 1, row: 7, col: 33 };
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-qbatch-'));
let ckpt: TinyCheckpoint;

before(() => {
  ckpt = buildTinyCheckpoint(path.join(root, 'm'), { arch: 'llama', numLayers: 3, numKvHeads: 2, seed: 7, plantedSuperWeights: [{ ...SW, strength: 8 }] });
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

const plan = (scale: number, restoreActivation = false): SwitchPlan => scaledPlan([SW], scale, restoreActivation);

const REQUESTS: GenerationRequest[] = [
  generationRequest({ id: 'a', prompt: { text: 'Summer is hot. Winter is' }, maxTokens: 10 }),
  generationRequest({ id: 'b', prompt: { text: 'Hi' }, maxTokens: 9, switchPlan: plan(0) }),
  generationRequest({ id: 'c', prompt: { text: 'The quick brown fox jumps' }, maxTokens: 8, switchPlan: plan(2) }),
  generationRequest({ id: 'd', prompt: { text: 'Apple Inc. is a worldwide tech company.' }, maxTokens: 7, switchPlan: plan(0, true) }),
  generationRequest({ id: 'e', prompt: { text: 'x' }, maxTokens: 9, switchPlan: switchPlan([{ layer: 1, row: 20, col: 5, scale: 40 }]) }),
];

const CASES: [string, Partial<WeightOptions>][] = [
  ['int4, int8 activations', { precision: 'int4', blockSize: 32 }],
  ['int8 asymmetric, int8 activations', { precision: 'int8', blockSize: 64, scheme: 'asymmetric' }],
  ['int8, float32 activations', { precision: 'int8', blockSize: 32, compute: 'float32' }],
  ['int4, float32 activations', { precision: 'int4', blockSize: 128, compute: 'float32' }],
  ['float16 (the switch adds in float32: the CPU has no float16 ScatterElements add)', { precision: 'float16' }],
];

describe('mixed switch states in one batch on a quantized copy', () => {
  for (const [name, weights] of CASES) {
    it(`${name}: equal their solo results`, async () => {
      const runner = await startEngine({ modelDir: ckpt.dir, knownSuperWeights: [SW], weights: { ...weights, cacheDir: path.join(root, 'cache') } });
      try {
        assert.equal(runner.engine.info.weights.precision, weights.precision);
        const tolerance = weights.compute === 'float32' ? LOGPROB_TOLERANCE : weights.precision === 'float16' ? FLOAT16_LOGPROB_TOLERANCE : INT8_ACTIVATION_LOGPROB_TOLERANCE;
        const { solo, decodeSteps } = await assertBatchedEqualsSolo(runner, REQUESTS, [{ requests: 3, steps: 2 }], tolerance);
        assert.ok(decodeSteps.some((s) => s.switchedRows > 0 && s.switchedRows < s.batchSize), 'mixed switch states shared a step');
        assert.notDeepEqual(solo.get('a')!.tokens.slice(0, 9), solo.get('b')!.tokens);
      } finally {
        await runner.engine.close();
      }
    });
  }
});
