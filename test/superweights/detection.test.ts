// Detection through the real worker engine on tiny checkpoints with planted super weights: it finds
// exactly the planted coordinates, largest first, and stops; on random weights it finds none.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { EngineClient } from '../../src/engine/engine-client.js';
import { detectionChart } from '../../src/superweights/charts/detection-chart.js';
import { DEFAULT_DETECTION_OPTIONS, DEFAULT_DETECTION_PROMPT, detectSuperWeights, type DetectionResult } from '../../src/superweights/detection.js';
import { detectionJson } from '../../src/superweights/detection-report.js';
import { detectionText } from '../../src/cli/detect-command.js';
import { coordinateId } from '../../src/model/switch-plan.js';
import { byteTokenIds } from '../helpers/byte-tokenizer.js';
import { createReferenceModel } from '../helpers/reference-forward.js';
import { buildTinyCheckpoint, loadTinyCheckpoint, type PlantedSuperWeight } from '../helpers/tiny-checkpoint.js';

// float32 graph vs float64 reference.
const MAXIMA_TOLERANCE = 1e-4;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-detect-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

async function detect(name: string, planted: PlantedSuperWeight[]): Promise<DetectionResult> {
  const dir = path.join(root, name);
  buildTinyCheckpoint(dir, { arch: 'llama', numLayers: 4, seed: 3, plantedSuperWeights: planted });
  const engine = await EngineClient.start({ modelDir: dir, device: { kind: 'cpu' }, instrument: true, limits: { maxNumSeqs: 16, maxNumBatchedTokens: 4096 }, knownSuperWeights: [] });
  try {
    return await detectSuperWeights(engine, DEFAULT_DETECTION_OPTIONS);
  } finally {
    await engine.close();
  }
}

const ids = (r: DetectionResult): string[] => r.superWeights.map(coordinateId);

describe('detection on planted checkpoints', () => {
  it('finds one planted super weight at the first token and stops', async () => {
    const r = await detect('one', [{ layer: 1, row: 7, col: 33 }]);
    assert.deepEqual(ids(r), ['1:7:33']);
    assert.equal(r.stop, 'no-spike');
    assert.equal(r.superWeights[0]!.position, 0);
    assert.equal(r.superWeights[0]!.inputChannel, 33);
    // The planted weight (20) times its neuron's activation (~30) is nearly all of the spike.
    assert.ok(r.superWeights[0]!.contribution > 0.95 * r.superWeights[0]!.outputMax);
    assert.ok(r.after[1]!.outputMax < r.thresholds.output, 'the spike is gone once it is zeroed');
  });

  it('finds two, the stronger first', async () => {
    const r = await detect('two', [
      { layer: 1, row: 20, col: 50, strength: 18 },
      { layer: 1, row: 7, col: 33, strength: 30 },
    ]);
    assert.deepEqual(ids(r), ['1:7:33', '1:20:50']);
    assert.equal(r.stop, 'no-spike');
  });

  it('finds three with two sharing a row, in order of magnitude', async () => {
    // Row 7 gets 30 + 12 (x ~30 each), row 20 gets 22: the input tap names one column for the
    // shared row, so the weaker one is only found through the switch once the stronger is zeroed.
    const r = await detect('three', [
      { layer: 1, row: 7, col: 90, strength: 12 },
      { layer: 1, row: 7, col: 33, strength: 30 },
      { layer: 1, row: 20, col: 50, strength: 22 },
    ]);
    assert.deepEqual(ids(r), ['1:7:33', '1:20:50', '1:7:90']);
    assert.equal(r.stop, 'no-spike');
    const contributions = r.superWeights.map((s) => s.contribution);
    assert.deepEqual([...contributions].sort((a, b) => b - a), contributions);
    assert.deepEqual(r.cancelling, []);
  });

  it('sets aside a spike that no single weight carries', async () => {
    // Two weak weights on one row: together a spike (~36), each alone (~18) under the bar of 20.
    const r = await detect('split', [
      { layer: 1, row: 7, col: 33, strength: 0.6 },
      { layer: 1, row: 7, col: 90, strength: 0.6 },
    ]);
    assert.deepEqual(ids(r), []);
    assert.deepEqual(r.unattributed.map((u) => [u.layer, u.row]), [[1, 7]]);
    assert.ok(r.unattributed[0]!.largestContribution < r.thresholds.output && r.unattributed[0]!.outputMax > r.thresholds.output);
  });

  it('finds none in random weights, whose per-layer maxima it reads as the reference forward pass computes them', async () => {
    const r = await detect('random', []);
    assert.deepEqual(ids(r), []);
    assert.equal(r.stop, 'no-spike');
    assert.deepEqual(r.unattributed, []);
    // Nothing was zeroed, so the last pass saw the plain model: its maxima over the prompt's tokens
    // are what the plain reference forward pass finds in the checkpoint on disk.
    const checkpoint = loadTinyCheckpoint(path.join(root, 'random'));
    const { downProj } = createReferenceModel(checkpoint).forward([checkpoint.bosId, ...byteTokenIds(DEFAULT_DETECTION_PROMPT)]);
    const maxAbs = (rows: Float32Array[]): number => Math.max(...rows.map((row) => Math.max(...Array.from(row, Math.abs))));
    assert.equal(r.after.length, downProj.length);
    r.after.forEach((layer, l) => {
      for (const [engine, reference, what] of [[layer.inputMax, maxAbs(downProj[l]!.input), 'input'], [layer.outputMax, maxAbs(downProj[l]!.output), 'output']] as const) {
        assert.ok(Math.abs(engine - reference) <= MAXIMA_TOLERANCE * reference, `layer ${l} ${what} max ${engine} vs reference ${reference}`);
      }
    });
  });

  it('stops at the maximum count', async () => {
    const dir = path.join(root, 'capped');
    buildTinyCheckpoint(dir, { arch: 'llama', numLayers: 4, seed: 3, plantedSuperWeights: [{ layer: 1, row: 7, col: 33, strength: 30 }, { layer: 1, row: 20, col: 50, strength: 18 }] });
    const engine = await EngineClient.start({ modelDir: dir, device: { kind: 'cpu' }, instrument: true, limits: { maxNumSeqs: 16, maxNumBatchedTokens: 4096 }, knownSuperWeights: [] });
    try {
      const r = await detectSuperWeights(engine, { ...DEFAULT_DETECTION_OPTIONS, maxSuperWeights: 1, prompts: ['Summer is hot.', 'Winter is'] });
      assert.deepEqual(ids(r), ['1:7:33']);
      assert.equal(r.stop, 'max-count');
      const json = detectionJson(r);
      assert.deepEqual(json.super_weights.map((s) => s.id), ['1:7:33']);
      assert.equal(json.layers.length, 4);
      const svg = detectionChart(r, 'capped');
      assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      // Per panel: original, zeroed and the spike bar.
      assert.equal(svg.match(/<path /g)?.length, 6);
      assert.ok(svg.includes('1:7:33'));
      const text = detectionText(r);
      assert.match(text, /^1 super weight found; stopped because reached the maximum count\./);
      assert.match(text, /\n1 +1 +7 +33 /);
    } finally {
      await engine.close();
    }
  });
});
