// Activation frames reach JS only when someone needs them: every sequence's prefill frame (the
// metrics read it), decode frames only while a subscriber asked for them (the `frames` message).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generationRequest } from '../helpers/engine-harness.js';
import { startEngine, type EngineRunner } from '../helpers/engine-runner.js';
import { buildTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const SW = { layer: 1, row: 7, col: 33 };
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-frames-'));
let runner: EngineRunner;

before(async () => {
  const ckpt = buildTinyCheckpoint(path.join(root, 'm'), { arch: 'llama', numLayers: 3, seed: 6, plantedSuperWeights: [SW] });
  runner = await startEngine({ modelDir: ckpt.dir, knownSuperWeights: [SW] });
});
after(async () => {
  await runner.engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

const frames = (id: string) => runner.get(id).events.flatMap((e) => (e.type === 'token' ? [e.frame] : []));

describe('decode frames on demand', () => {
  it('sends the prefill frame always and decode frames only while they are wanted', async () => {
    runner.engine.submit(generationRequest({ id: 'quiet', prompt: { text: 'Summer is hot.' }, maxTokens: 5 }));
    await runner.drain();
    const quiet = frames('quiet');
    assert.equal(quiet[0]?.phase, 'prefill');
    assert.deepEqual(quiet[0]?.superActivations.map((a) => a.layer), [SW.layer]);
    assert.deepEqual(quiet.slice(1), [undefined, undefined, undefined, undefined]);

    runner.engine.setDecodeFrames(true);
    runner.engine.submit(generationRequest({ id: 'watched', prompt: { text: 'Summer is hot.' }, maxTokens: 5 }));
    await runner.drain();
    const watched = frames('watched');
    const promptLength = quiet[0]!.positions[1];
    assert.deepEqual(watched.slice(1).map((f) => [f?.phase, ...f!.positions]), [1, 2, 3, 4].map((i) => ['decode', promptLength + i - 1, promptLength + i]));
    assert.ok(watched.slice(1).every((f) => f!.layers.length === 3 && f!.superActivations.length === 1));

    runner.engine.setDecodeFrames(false);
    runner.engine.submit(generationRequest({ id: 'quiet-again', prompt: { text: 'Summer is hot.' }, maxTokens: 3 }));
    await runner.drain();
    assert.deepEqual(frames('quiet-again').slice(1), [undefined, undefined]);
  });
});
