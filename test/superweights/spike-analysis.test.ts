// The spike rule on hand-made per-layer maxima: ratio to the median over layers, the floor, and
// late spikes that land in an earlier super activation's channel counted as cancelling.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analyseSpikes, median, mergePrompts, type LayerMaxima } from '../../src/superweights/spike-analysis.js';

const layer = (l: number, inputMax: number, outputMax: number, outputChannel = l, inputChannel = 100 + l): LayerMaxima => ({
  layer: l,
  inputMax,
  inputChannel,
  inputPosition: 0,
  outputMax,
  outputChannel,
  outputPosition: 0,
  prompt: 0,
});

describe('analyseSpikes', () => {
  const thresholds = { spikeRatio: 10, minMagnitude: 20 };

  it('needs both input and output to clear ratio x median and the floor', () => {
    const layers = [layer(0, 2, 1), layer(1, 560, 1313, 3968, 7003), layer(2, 3, 900), layer(3, 300, 2), layer(4, 2, 1), layer(5, 1, 1)];
    const report = analyseSpikes(layers, thresholds);
    assert.equal(report.inputThreshold, 25);
    assert.equal(report.outputThreshold, 20);
    assert.deepEqual(report.writers.map((w) => w.layer), [1]);
  });

  it('applies the floor when every layer is small', () => {
    const report = analyseSpikes([layer(0, 0.1, 0.1), layer(1, 5, 5), layer(2, 0.1, 0.1)], thresholds);
    assert.deepEqual(report.writers, []);
  });

  it('counts a later spike in a written channel as cancelling, and orders writers by size', () => {
    const layers = [layer(0, 1, 1), layer(1, 500, 800, 42), layer(2, 400, 1200, 9), layer(3, 1, 1), layer(4, 1, 1), layer(5, 1, 1), layer(6, 300, 790, 42)];
    const report = analyseSpikes(layers, thresholds);
    assert.deepEqual(report.writers.map((w) => w.layer), [2, 1]);
    assert.deepEqual(report.cancelling.map((c) => [c.spike.layer, c.writer.layer]), [[6, 1]]);
  });

  it('median of odd and even lengths', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
  });

  it('merges prompts per layer, keeping the prompt of the larger output', () => {
    const a = [layer(0, 5, 1), layer(1, 1, 9)];
    const b = [layer(0, 2, 7), layer(1, 3, 2)];
    const merged = mergePrompts([a, b]);
    assert.deepEqual(merged.map((m) => [m.inputMax, m.outputMax, m.prompt]), [[5, 7, 1], [3, 9, 0]]);
  });
});
