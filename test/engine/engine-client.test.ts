// The engine in its worker thread: events stream back per sequence, an aborted signal cancels the
// sequence at the next step, and the main thread stays responsive while the worker computes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EngineClient } from '../../src/engine/engine-client.js';
import type { SequenceEvent } from '../../src/engine/protocol.js';
import { generationRequest } from '../helpers/engine-harness.js';
import { buildTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-client-'));
let client: EngineClient;

before(async () => {
  // Wide enough that one step takes measurable time.
  const ckpt = buildTinyCheckpoint(path.join(root, 'm'), { arch: 'llama', hiddenSize: 256, intermediateSize: 1024, numLayers: 4, maxPositionEmbeddings: 4096, seed: 3 });
  client = await EngineClient.start({ modelDir: ckpt.dir, device: { kind: 'cpu' }, instrument: true, limits: { maxNumSeqs: 8, maxNumBatchedTokens: 4096 }, knownSuperWeights: [] });
});
after(async () => {
  await client.close();
  fs.rmSync(root, { recursive: true, force: true });
});

async function collect(events: AsyncIterable<SequenceEvent>): Promise<SequenceEvent[]> {
  const all: SequenceEvent[] = [];
  for await (const e of events) all.push(e);
  return all;
}

describe('EngineClient', () => {
  it('streams prompt, token and finish events', async () => {
    const events = await collect(client.generate(generationRequest({ id: 'one', prompt: { text: 'Hello' }, maxTokens: 5 })));
    assert.deepEqual(events.map((e) => e.type), ['accepted', 'prompt', 'token', 'token', 'token', 'token', 'token', 'finish']);
    assert.equal(client.inFlight, 0);
  });

  it('cancels a sequence when its signal aborts', async () => {
    const controller = new AbortController();
    const events: SequenceEvent[] = [];
    for await (const e of client.generate(generationRequest({ id: 'abort', prompt: { text: 'Hello' }, maxTokens: 3000 }), controller.signal)) {
      events.push(e);
      if (events.filter((x) => x.type === 'token').length === 3) controller.abort();
    }
    const finish = events[events.length - 1]!;
    assert.equal(finish.type === 'finish' && finish.reason, 'abort');
    // Cancelled, not run out: how many steps ran before the cancel landed depends on the machine.
    assert.ok(events.filter((x) => x.type === 'token').length < 3000);
  });

  it('stops a sequence whose reader goes away', async () => {
    let finish: SequenceEvent | undefined;
    let running: number | undefined;
    const off = client.onUpdate((u) => {
      running = u.load.running;
      finish ??= u.events.find((e) => e.type === 'finish' && e.id === 'walk-away');
    });
    for await (const e of client.generate(generationRequest({ id: 'walk-away', prompt: { text: 'Hello' }, maxTokens: 3000 }))) {
      if (e.type === 'token') break;
    }
    // Hang guard only: the cancel lands at the worker's next step.
    const deadline = Date.now() + 30_000;
    while (finish === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    off();
    assert.ok(finish?.type === 'finish', 'the sequence finished');
    assert.equal(finish.reason, 'abort');
    assert.ok(finish.completionTokens < 3000, `cancelled after ${finish.completionTokens} tokens, not run out`);
    assert.equal(running, 0);
  });

  it('keeps the main thread responsive during a long prefill', async () => {
    // The main thread spins its event loop between the worker's `accepted` (sent before the step)
    // and the prefill's first token. Each turn takes microseconds and the 2000-token prefill far
    // longer, so only a main thread blocked by the model could count as few as this bound.
    let ticks = 0;
    let computing = false;
    const spin = async (): Promise<void> => {
      while (computing) {
        ticks++;
        await new Promise((r) => setImmediate(r));
      }
    };
    for await (const e of client.generate(generationRequest({ id: 'long', prompt: { tokenIds: Array(2000).fill(65) }, maxTokens: 2 }))) {
      if (e.type === 'accepted') {
        computing = true;
        void spin();
      } else if (e.type === 'token') {
        computing = false;
      }
    }
    assert.ok(ticks > 3, `the main thread turned its event loop ${ticks} times during the prefill`);
  });

  it('reports a bad request as an error event', async () => {
    const events = await collect(client.generate(generationRequest({ id: 'bad', prompt: { tokenIds: [100000] } })));
    assert.equal(events.length, 1);
    assert.equal(events[0]!.type, 'error');
  });
});
