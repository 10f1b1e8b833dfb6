// The super activation reference measured at load: the detection prompt's super activation as the
// served weights give it and as float32 weights do, the latter from a graph of only the early layers.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SUPER_ACTIVATION_PROMPT } from '../../src/model/switch-plan.js';
import { startEngine } from '../helpers/engine-runner.js';
import { createReferenceModel } from '../helpers/reference-forward.js';
import { buildTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

// Float32 graph against the float64 reference, on a value of a few hundred.
const ACTIVATION_TOLERANCE = 1e-2;
const SW = { layer: 1, row: 7, col: 33 };
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-saref-'));
let ckpt: TinyCheckpoint;
let expected: number;

before(() => {
  ckpt = buildTinyCheckpoint(path.join(root, 'm'), { arch: 'llama', numLayers: 4, numKvHeads: 2, seed: 4, plantedSuperWeights: [SW] });
  const ids = [ckpt.bosId, ...Buffer.from(SUPER_ACTIVATION_PROMPT)];
  const out = createReferenceModel(ckpt).forward(ids).downProj[SW.layer]!.output;
  // The switch-value tap reports the signed value where |value| peaks over the prompt: position 0.
  expected = out[0]![SW.row]!;
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

describe('super activation reference', () => {
  it('is the float32 value on a float32 model, served and reference alike', async () => {
    const runner = await startEngine({ modelDir: ckpt.dir, knownSuperWeights: [SW] });
    try {
      const ref = runner.engine.info.superActivationReference!;
      assert.equal(ref.precision, 'float32');
      assert.equal(ref.values.length, 1);
      assert.ok(Math.abs(ref.values[0]!.float32 - expected) < ACTIVATION_TOLERANCE, `${ref.values[0]!.float32} vs ${expected}`);
      assert.equal(ref.values[0]!.served, ref.values[0]!.float32);
    } finally {
      await runner.engine.close();
    }
  });

  for (const protectSuperWeights of [true, false]) {
    it(`on an int4 copy (${protectSuperWeights ? 'protected' : 'plain'}, 4096-element blocks), keeps the float32 value beside the quantized one`, async () => {
      const runner = await startEngine({
        modelDir: ckpt.dir,
        knownSuperWeights: [SW],
        weights: { precision: 'int4', blockSize: 4096, compute: 'float32', protectSuperWeights, cacheDir: path.join(root, 'cache') },
      });
      try {
        const ref = runner.engine.info.superActivationReference!;
        assert.equal(ref.precision, 'int4');
        const v = ref.values[0]!;
        assert.ok(Math.abs(v.float32 - expected) < ACTIVATION_TOLERANCE, `float32 reference ${v.float32} vs ${expected}`);
        assert.notEqual(v.served, v.float32);
        assert.ok(Math.abs(v.served / v.float32 - 1) < 0.5, `served ${v.served} vs ${v.float32}`);
      } finally {
        await runner.engine.close();
      }
    });
  }

  it('is absent when no super weights are known', async () => {
    const runner = await startEngine({ modelDir: ckpt.dir, knownSuperWeights: [] });
    try {
      assert.equal(runner.engine.info.superActivationReference, undefined);
    } finally {
      await runner.engine.close();
    }
  });
});
