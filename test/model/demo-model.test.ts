// The bundled demo model: it loads, its super activation sits at BOS in the listed layer and row, and
// zeroing the super weight removes more than 90% of it.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { ActivationFrame } from '../../src/engine/protocol.js';
import { readModelSuperWeights } from '../../src/superweights/model-super-weights.js';
import { generationRequest } from '../helpers/engine-harness.js';
import { startEngine, type EngineRunner } from '../helpers/engine-runner.js';

const DEMO = fileURLToPath(new URL('../../../models/demo', import.meta.url));
// The bar: zeroing must remove more than 90% of the super activation.
const MIN_DROP = 0.9;

let runner: EngineRunner;
const [sw] = readModelSuperWeights(DEMO);

before(async () => {
  runner = await startEngine({ modelDir: DEMO, knownSuperWeights: [sw!] });
});
after(() => runner.engine.close());

function prefillFrame(id: string): ActivationFrame {
  const event = runner.get(id).events.find((e) => e.type === 'token');
  assert.ok(event?.type === 'token' && event.frame);
  return event.frame;
}

describe('models/demo', () => {
  it('has its super activation at BOS in the listed layer and row, and loses >90% of it when zeroed', async () => {
    assert.ok(sw, 'models/demo/super_weights.json lists a super weight');
    runner.engine.submit(generationRequest({ id: 'on', prompt: { text: 'The city of' }, maxTokens: 1 }));
    runner.engine.submit(generationRequest({ id: 'off', prompt: { text: 'The city of' }, maxTokens: 1, switchPlan: { entries: [{ ...sw!, scale: 0 }], restoreActivation: false, activationPosition: 0 } }));
    await runner.drain();
    const on = prefillFrame('on');
    const layer = on.layers[sw!.layer]!;
    assert.deepEqual([layer.outputChannel, layer.outputPosition], [sw!.row, 0]);
    assert.deepEqual([layer.inputChannel, layer.inputPosition], [sw!.col, 0]);
    const original = on.superActivations.find((a) => a.row === sw!.row)!;
    assert.equal(original.position, 0);
    const zeroed = prefillFrame('off').superActivations.find((a) => a.row === sw!.row)!;
    assert.ok(Math.abs(zeroed.value) < (1 - MIN_DROP) * Math.abs(original.value), `${original.value} -> ${zeroed.value}`);
    // It is the largest down_proj output of any layer at prefill.
    assert.ok(on.layers.every((l) => l.outputMax <= layer.outputMax));
  });

  it('generates text from a prompt', async () => {
    runner.engine.submit(generationRequest({ id: 'text', prompt: { text: 'The city of' }, maxTokens: 12 }));
    await runner.drain();
    assert.match(runner.get('text').text, /[a-z]{3,}/);
  });
});
