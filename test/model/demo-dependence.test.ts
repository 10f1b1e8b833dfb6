// The bundled demo model depends on its super weight, through the real engine (worker thread,
// onnxruntime session, the per-row switch): on eval.txt, zeroing it raises perplexity by at least the
// factor its model card reports (rounded down), restoring the super activation takes most of that
// back, and the stop-word probability rises (the paper's direction). Greedy prefill scoring only.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { EngineClient } from '../../src/engine/engine-client.js';
import { loadTokenizer } from '../../src/engine/tokenizer.js';
import { cutWindows } from '../../src/superweights/eval-windows.js';
import { evaluate, type EvaluationResult } from '../../src/superweights/evaluation.js';
import { readModelSuperWeights } from '../../src/superweights/model-super-weights.js';

const DEMO = fileURLToPath(new URL('../../../models/demo', import.meta.url));
// models/demo/README.md: on eval.txt in 256-token windows (as `swserve eval` scores it) zeroing takes
// perplexity from 120.8 to 348.9, x2.89; this is that factor rounded down to one decimal.
const MIN_ZEROED_FACTOR = 2.8;
// Restored, the perplexity keeps at most this share of the zeroing's increase.
const MAX_RESTORED_SHARE = 0.25;
const WINDOW_TOKENS = 256;

let engine: EngineClient;
let result: EvaluationResult;

before(async () => {
  const superWeights = readModelSuperWeights(DEMO).map(({ layer, row, col }) => ({ layer, row, col }));
  engine = await EngineClient.start({ modelDir: DEMO, device: { kind: 'cpu' }, instrument: true, knownSuperWeights: superWeights });
  const tokenizer = await loadTokenizer(DEMO);
  const ids = tokenizer.encode(fs.readFileSync(path.join(DEMO, 'eval.txt'), 'utf8'), { addSpecialTokens: false });
  result = await evaluate(engine, {
    windows: cutWindows(ids, WINDOW_TOKENS, engine.info.bosId),
    superWeights,
    largest: [],
    sweepScales: [],
    stopWordIds: engine.info.stopWords.ids,
  });
});
after(() => engine.close());

describe('models/demo depends on its super weight', () => {
  it(`zeroing it raises eval.txt perplexity at least ${MIN_ZEROED_FACTOR}x`, () => {
    const { original, zeroed } = result.conditions;
    assert.ok(zeroed.perplexity >= MIN_ZEROED_FACTOR * original.perplexity, `${original.perplexity} -> ${zeroed.perplexity}`);
  });

  it('restoring the super activation takes most of the loss back', () => {
    const { original, zeroed, zeroed_restored } = result.conditions;
    const kept = (zeroed_restored.perplexity - original.perplexity) / (zeroed.perplexity - original.perplexity);
    assert.ok(kept <= MAX_RESTORED_SHARE, `restored ${zeroed_restored.perplexity} keeps ${(kept * 100).toFixed(0)}% of ${original.perplexity} -> ${zeroed.perplexity}`);
  });

  it('the stop-word probability rises when it is zeroed', () => {
    assert.ok(result.stopWords.zeroed > result.stopWords.original, `${result.stopWords.original} -> ${result.stopWords.zeroed}`);
  });
});
