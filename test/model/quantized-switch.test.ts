// The super-weight switch on a quantized copy keeps its exact meaning: "on" is the checkpoint's
// value (the protected weight is stored as 0 and added back), off/scale/restore equal the reference
// on the dequantized weights with the super weight changed accordingly, and a probed coordinate
// the copy does not protect is switched from its dequantized value.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ORIGINAL_SWITCH, scaledPlan, switchPlan, type SwitchPlan } from '../../src/model/switch-plan.js';
import { maxAbsDiff, openHarness, type HarnessSession } from '../helpers/engine-harness.js';
import { dequantizedCheckpoint } from '../helpers/dequantized-weights.js';
import { createReferenceModel, type ReferenceOptions } from '../helpers/reference-forward.js';
import { buildTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

// A float32 graph against the float64 reference on the same (dequantized) weights.
const LOGIT_TOLERANCE = 1e-4;
const SW = { layer: 1, row: 7, col: 33 };
// An ordinary down_proj weight of the same layer, not protected.
const PROBE = { layer: 1, row: 20, col: 5 };
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-qswitch-'));
let ckpt: TinyCheckpoint;
let deq: TinyCheckpoint;
let harness: HarnessSession;
const ids = (bos: number): number[] => [bos, ...Buffer.from('Summer is hot. Winter is')];

before(async () => {
  ckpt = buildTinyCheckpoint(path.join(root, 'planted'), { arch: 'llama', numLayers: 3, numKvHeads: 2, seed: 5, plantedSuperWeights: [{ ...SW, strength: 8 }] });
  harness = await openHarness(ckpt.dir, true, 'float32', { kind: 'cpu' }, {
    options: { precision: 'int4', blockSize: 64, compute: 'float32', cacheDir: path.join(root, 'cache') },
    knownSuperWeights: [SW],
  });
  deq = dequantizedCheckpoint(ckpt, harness.served.quantized!.weights, [SW]);
});
after(async () => {
  await harness.release();
  fs.rmSync(root, { recursive: true, force: true });
});

async function assertMatches(plan: SwitchPlan, reference: ReferenceOptions, weights: TinyCheckpoint = deq): Promise<void> {
  const prompt = ids(ckpt.bosId);
  const run = await harness.run(prompt, [], { plan, known: [SW] });
  const ref = createReferenceModel(weights, reference).forward(prompt);
  const worst = Math.max(...run.prefill.map((l, t) => maxAbsDiff(l, ref.logits[t]!)));
  assert.ok(worst < LOGIT_TOLERANCE, `max logit difference ${worst}`);
}

describe('the switch on an int4 copy', () => {
  it('stores the protected super weight as 0 and serves it at the checkpoint value', async () => {
    assert.equal(harness.served.inGraph(SW, 8), 0);
    await assertMatches(ORIGINAL_SWITCH, {});
  });

  for (const scale of [0, 0.5, 2]) {
    it(`scale ${scale} equals the dequantized reference with the super weight scaled`, async () => {
      await assertMatches(scaledPlan([SW], scale), { downProjScale: [{ ...SW, scale }] });
    });
  }

  it('restore_activation equals the dequantized reference that keeps the super activation', async () => {
    await assertMatches(scaledPlan([SW], 0, true), { downProjScale: [{ ...SW, scale: 0 }], restoreSuperActivation: true });
  });

  it('switches a probed, unprotected coordinate from its dequantized value to s times the checkpoint value', async () => {
    const original = ckpt.weights.get('model.layers.1.mlp.down_proj.weight')!.data[PROBE.row * 128 + PROBE.col]!;
    const inGraph = harness.served.inGraph(PROBE, original);
    assert.notEqual(inGraph, original, 'the probe is not exactly representable, so its quantized value differs');
    // Not switched: the graph's dequantized value stands.
    await assertMatches(ORIGINAL_SWITCH, {});
    // Scale 3: the reference's weight there becomes 3 * the checkpoint value.
    const weights = new Map(deq.weights);
    const down = weights.get('model.layers.1.mlp.down_proj.weight')!;
    const edited = Float32Array.from(down.data);
    edited[PROBE.row * 128 + PROBE.col] = 3 * original;
    weights.set('model.layers.1.mlp.down_proj.weight', { shape: down.shape, data: edited });
    await assertMatches(switchPlan([{ ...PROBE, scale: 3 }]), {}, { ...deq, weights });
  });
});
