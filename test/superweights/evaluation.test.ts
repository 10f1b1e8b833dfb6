// `evaluate` through the real worker engine against direct computations: each condition's perplexity
// equals the plain reference forward pass on a checkpoint modified on disk (the activation-restored
// condition has no on-disk form; the reference implements its definition), every scale of the sweep
// (1 included) equals its checkpoint scaled on disk, and the stop-word probabilities match too.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EngineClient } from '../../src/engine/engine-client.js';
import { sweepChart } from '../../src/superweights/charts/sweep-chart.js';
import { cutWindows } from '../../src/superweights/eval-windows.js';
import { evaluate, PAPER_SWEEP_SCALES, type EvaluationResult } from '../../src/superweights/evaluation.js';
import { defaultLargestCount, largestDownProjWeights } from '../../src/superweights/largest-weights.js';
import { rankDownProjWeights, zeroLargestOnDisk } from '../helpers/down-proj-ranking.js';
import { referencePerplexity } from '../helpers/reference-perplexity.js';
import { buildTinyCheckpoint, loadTinyCheckpoint, scaleWeightOnDisk, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

// float32 engine vs float64 reference, averaged over every scored token.
const RELATIVE_TOLERANCE = 1e-4;
const WINDOW_TOKENS = 33;
const LARGEST = 40;
const SUPER_WEIGHTS = [
  { layer: 1, row: 7, col: 33 },
  { layer: 1, row: 7, col: 90 },
];
const TEXT =
  'Summer is hot. Winter is cold. The river runs to the sea, and the sea is wide. ' +
  'In the morning the market opens, and by noon it is full of people, fruit and noise. ' +
  'She wrote the letter, sealed it, and walked to the post office before it rained.';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-eval-'));
let ckpt: TinyCheckpoint;
let engine: EngineClient;
let windows: number[][];
let result: EvaluationResult;
const progress: [number, number][] = [];
let stopIds: number[];

before(async () => {
  ckpt = buildTinyCheckpoint(path.join(root, 'planted'), {
    arch: 'llama',
    numLayers: 4,
    seed: 3,
    plantedSuperWeights: [{ ...SUPER_WEIGHTS[0]!, strength: 30 }, { ...SUPER_WEIGHTS[1]!, strength: 12 }],
  });
  engine = await EngineClient.start({ modelDir: ckpt.dir, device: { kind: 'cpu' }, instrument: true, limits: { maxNumSeqs: 16, maxNumBatchedTokens: 4096 }, knownSuperWeights: SUPER_WEIGHTS });
  windows = cutWindows([...Buffer.from(TEXT)], WINDOW_TOKENS, ckpt.bosId);
  stopIds = engine.info.stopWords.ids;
  const largest = largestDownProjWeights(ckpt.dir, LARGEST, SUPER_WEIGHTS);
  result = await evaluate(engine, { windows, superWeights: SUPER_WEIGHTS, largest, sweepScales: PAPER_SWEEP_SCALES, stopWordIds: stopIds }, (done, total) => progress.push([done, total]));
});
after(async () => {
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

function assertClose(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= RELATIVE_TOLERANCE * Math.abs(expected), `${what}: ${actual} vs ${expected}`);
}

const onDisk = (name: string, scale: number): TinyCheckpoint => {
  const dir = path.join(root, name);
  scaleWeightOnDisk(ckpt.dir, dir, SUPER_WEIGHTS.map((c) => ({ ...c, scale })));
  return loadTinyCheckpoint(dir);
};

describe('evaluation against checkpoints modified on disk', () => {
  it('cuts full windows that start with BOS', () => {
    assert.equal(windows.length, Math.floor(Buffer.byteLength(TEXT) / (WINDOW_TOKENS - 1)));
    for (const w of windows) {
      assert.equal(w.length, WINDOW_TOKENS);
      assert.equal(w[0], ckpt.bosId);
    }
    assert.equal(result.scoredTokens, windows.length * (WINDOW_TOKENS - 1));
  });

  it('original and zeroed perplexity and stop-word probability', () => {
    const original = referencePerplexity(loadTinyCheckpoint(ckpt.dir), windows, stopIds);
    assertClose(result.conditions.original.perplexity, original.perplexity, 'original');
    assertClose(result.stopWords.original, original.stopWordProbability, 'stop words, original');
    const zeroed = referencePerplexity(onDisk('zeroed', 0), windows, stopIds);
    assertClose(result.conditions.zeroed.perplexity, zeroed.perplexity, 'zeroed');
    assertClose(result.stopWords.zeroed, zeroed.stopWordProbability, 'stop words, zeroed');
    assert.ok(Math.abs(result.conditions.zeroed.perplexity - result.conditions.original.perplexity) > 1e-3 * result.conditions.original.perplexity, 'zeroing changes the perplexity');
  });

  it('zeroed with the super activation restored', () => {
    const restored = referencePerplexity(loadTinyCheckpoint(ckpt.dir), windows, stopIds, {
      downProjScale: SUPER_WEIGHTS.map((c) => ({ ...c, scale: 0 })),
      restoreSuperActivation: true,
    });
    assertClose(result.conditions.zeroed_restored.perplexity, restored.perplexity, 'restored');
  });

  it('the N largest other down_proj weights zeroed', () => {
    const dir = path.join(root, 'largest');
    const zeroedSites = zeroLargestOnDisk(ckpt.dir, dir, LARGEST, SUPER_WEIGHTS);
    assert.deepEqual(largestDownProjWeights(ckpt.dir, LARGEST, SUPER_WEIGHTS), zeroedSites);
    const largest = referencePerplexity(loadTinyCheckpoint(dir), windows, stopIds);
    assertClose(result.conditions.largest_zeroed.perplexity, largest.perplexity, 'largest zeroed');
  });

  // Scale 1 too: the sweep runs it as an explicit switch, which must leave the model as it is on disk.
  for (const scale of PAPER_SWEEP_SCALES) {
    it(`sweep at scale ${scale}`, () => {
      const sweep = result.sweep.find((s) => s.scale === scale)!;
      assertClose(sweep.perplexity, referencePerplexity(onDisk(`scale-${scale}`, scale), windows, stopIds).perplexity, `scale ${scale}`);
    });
  }

  it('reports progress up to every window of every condition', () => {
    const total = (4 + PAPER_SWEEP_SCALES.length) * windows.length;
    assert.deepEqual(progress[progress.length - 1], [total, total]);
    assert.equal(progress.length, total);
  });

  it('refuses to run without super weights', async () => {
    await assert.rejects(evaluate(engine, { windows, superWeights: [], largest: [], sweepScales: [1], stopWordIds: stopIds }), /no super weights are known/);
  });

  it('draws the sweep', () => {
    const svg = sweepChart(result, 'planted', LARGEST);
    assert.match(svg, /^<svg /);
    assert.equal(svg.match(/<circle /g)?.length, PAPER_SWEEP_SCALES.length);
  });
});

describe('largest down_proj weights', () => {
  it('ranks like a plain sort, skipping the super weights', () => {
    const ranked = rankDownProjWeights(ckpt.dir, 25, SUPER_WEIGHTS);
    assert.deepEqual(largestDownProjWeights(ckpt.dir, 25, SUPER_WEIGHTS), ranked);
    assert.ok(!ranked.some((r) => SUPER_WEIGHTS.some((s) => s.layer === r.layer && s.row === r.row && s.col === r.col)));
  });

  it('defaults to the paper share of down_proj weights, at least 100', () => {
    assert.equal(defaultLargestCount(32, 4096, 11008), 7000);
    assert.equal(defaultLargestCount(4, 64, 128), 100);
  });
});
