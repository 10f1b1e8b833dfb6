// The runtime switch against checkpoints modified on disk, "restore super activation" against the
// reference's definition, and the taps on a planted super weight.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { scaledPlan, type SwitchPlan } from '../../src/model/switch-plan.js';
import { maxAbsDiff, openHarness, type HarnessSession } from '../helpers/engine-harness.js';
import { createReferenceModel } from '../helpers/reference-forward.js';
import { buildTinyCheckpoint, scaleWeightOnDisk, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

// Two float32 graphs that differ only in summation order around one weight.
const SWITCH_TOLERANCE = 1e-5;
const REFERENCE_TOLERANCE = 1e-4;
const SW = { layer: 1, row: 7, col: 33 };

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-switch-'));
let ckpt: TinyCheckpoint;
let harness: HarnessSession;
const prompt = (bos: number): number[] => [bos, ...Buffer.from('Summer is hot. Winter is')];
const continuation = [...Buffer.from(' cold and dark')];

before(async () => {
  ckpt = buildTinyCheckpoint(path.join(root, 'planted'), { arch: 'llama', numLayers: 3, numKvHeads: 2, seed: 5, plantedSuperWeights: [SW] });
  harness = await openHarness(ckpt.dir);
});
after(async () => {
  await harness.release();
  fs.rmSync(root, { recursive: true, force: true });
});

const plan = (scale: number, restoreActivation = false): SwitchPlan => scaledPlan([SW], scale, restoreActivation);

describe('super-weight switch', () => {
  for (const scale of [0, 0.5, 2]) {
    it(`scale ${scale} equals the checkpoint with that weight scaled on disk`, async () => {
      const dir = path.join(root, `scaled-${scale}`);
      scaleWeightOnDisk(ckpt.dir, dir, [{ ...SW, scale }]);
      const onDisk = await openHarness(dir);
      try {
        const expected = await onDisk.run(prompt(ckpt.bosId), continuation);
        const switched = await harness.run(prompt(ckpt.bosId), continuation, { plan: plan(scale) });
        const worst = Math.max(
          ...switched.prefill.map((l, t) => maxAbsDiff(l, expected.prefill[t]!)),
          ...switched.decode.map((l, t) => maxAbsDiff(l, expected.decode[t]!)),
        );
        assert.ok(worst < SWITCH_TOLERANCE, `max logit difference ${worst}`);
        // And the switch really changes something.
        const original = await harness.run(prompt(ckpt.bosId), continuation);
        assert.ok(maxAbsDiff(original.prefill[3]!, switched.prefill[3]!) > 1e-2);
      } finally {
        await onDisk.release();
      }
    });
  }

  it('restore_activation matches the reference that keeps only the super activation', async () => {
    const reference = createReferenceModel(ckpt, { downProjScale: [{ ...SW, scale: 0 }], restoreSuperActivation: true });
    const ids = prompt(ckpt.bosId);
    const ref = reference.forward(ids);
    const restored = await harness.run(ids, [], { plan: plan(0, true), known: [SW] });
    restored.prefill.forEach((l, t) => assert.ok(maxAbsDiff(l, ref.logits[t]!) < REFERENCE_TOLERANCE, `position ${t}`));
    // The reference's down_proj output differs from plain zeroing only at (position 0, row).
    const zeroed = createReferenceModel(ckpt, { downProjScale: [{ ...SW, scale: 0 }] }).forward(ids);
    const layerRef = ref.downProj[SW.layer]!;
    const layerZero = zeroed.downProj[SW.layer]!;
    layerRef.output.forEach((out, t) =>
      out.forEach((v, c) => {
        const differs = Math.abs(v - layerZero.output[t]![c]!) > 1e-6;
        assert.equal(differs, t === 0 && c === SW.row, `position ${t} channel ${c}`);
      }),
    );
    // The switch-value tap shows the original super activation, not the zeroed one.
    const tapped = restored.prefillFrame!.superActivations.find((a) => a.row === SW.row)!.value;
    assert.ok(Math.abs(tapped - layerRef.output[0]![SW.row]!) < 1e-2, `tap ${tapped}`);
  });
});

describe('taps on a planted super weight', () => {
  it('report the layer, row, column and position 0 at prefill', async () => {
    const run = await harness.run(prompt(ckpt.bosId), [], { known: [SW] });
    const frame = run.prefillFrame!;
    const { numLayers } = harness.checkpoint.spec;
    const outMax = frame.layers.map((l) => l.outputMax);
    const peakLayer = outMax.indexOf(Math.max(...outMax));
    assert.equal(peakLayer, SW.layer);
    const layer = frame.layers[SW.layer]!;
    assert.deepEqual([layer.outputPosition, layer.outputChannel], [0, SW.row]);
    assert.deepEqual([layer.inputPosition, layer.inputChannel], [0, SW.col]);
    assert.equal(frame.layers.length, numLayers);
    // The values equal the reference's down_proj maxima.
    const ref = createReferenceModel(ckpt).forward(prompt(ckpt.bosId));
    const refOut = ref.downProj[SW.layer]!.output[0]![SW.row]!;
    assert.ok(Math.abs(layer.outputMax - Math.abs(refOut)) < 1e-2);
    const activation = frame.superActivations[0]!;
    assert.ok(Math.abs(activation.value - refOut) < 1e-2);
    assert.equal(activation.position, 0);
    assert.ok(Math.abs(refOut) > 10 * Math.max(...outMax.filter((_, l) => l !== SW.layer)));
  });

  it('are the same when the prompt is prefilled in chunks', async () => {
    const whole = (await harness.run(prompt(ckpt.bosId), [], { known: [SW] })).prefillFrame!;
    const chunked = (await harness.run(prompt(ckpt.bosId), [], { known: [SW], chunk: 4 })).prefillFrame!;
    assert.deepEqual(
      chunked.layers.map((l) => [l.inputChannel, l.inputPosition, l.outputChannel, l.outputPosition]),
      whole.layers.map((l) => [l.inputChannel, l.inputPosition, l.outputChannel, l.outputPosition]),
    );
    chunked.layers.forEach((l, i) => assert.ok(Math.abs(l.outputMax - whole.layers[i]!.outputMax) < 1e-4));
    assert.deepEqual(chunked.positions, [0, prompt(ckpt.bosId).length]);
  });

  it('fall to ordinary values when the super weight is zeroed', async () => {
    // Zeroed: the spike is gone, so the tap's maximum must come from real tokens only.
    const run = await harness.run(prompt(ckpt.bosId), [], { plan: plan(0), known: [SW] });
    assert.ok(run.prefillFrame!.layers[SW.layer]!.outputMax < 50);
  });
});
