// Backpressure: a WebSocket client that never reads costs the server bounded memory and never holds
// up generation. With a stalled client subscribed to all traffic, completions still run to their
// full length while the server drops the client's frames, and the client, once it reads again, learns
// how many it missed. (How much a stalled client slows the engine is measured by
// `npm run bench:slow-client`, not asserted here: timing claims belong in benchmarks.)
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { complete, connectActivations } from './activation-client.js';

const CLIENT_BUFFER_FRAMES = 32;
// Traffic that outruns the client's unacknowledged window and its ring.
const FILL_SEQUENCES = 8;
const FILL_TOKENS = 200;
// Hang guard: every fill request adds frames, so drops come after a bounded number of them.
const MAX_FILL_REQUESTS = 50;

let server: TestServer;

before(async () => {
  server = await startTestServer({ config: { telemetry: { maxClients: 4, clientBufferFrames: CLIENT_BUFFER_FRAMES } } });
});
after(async () => server?.close());

async function droppedTotal(): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/^swserve_websocket_frames_dropped_total (\S+)$/m.exec(text)?.[1]);
}

it('a client that never reads has its frames dropped, not generation held up, and is told what it missed', async () => {
  const stalled = await connectActivations(server.url);
  await stalled.waitFor((f) => f.type === 'subscribed', 'subscribed');
  stalled.ws.pause();
  let requests = 0;
  while ((await droppedTotal()) === 0) {
    assert.ok(requests++ < MAX_FILL_REQUESTS, 'the stalled client never made the server drop frames');
    const body = await complete(server.url, { model: server.modelId, prompt: 'fill', max_tokens: FILL_TOKENS, ignore_eos: true, n: FILL_SEQUENCES });
    // Generation is not held back by the client: every choice runs to its full length.
    assert.equal((body.usage as { completion_tokens: number }).completion_tokens, FILL_SEQUENCES * FILL_TOKENS);
  }
  const dropped = await droppedTotal();
  console.log(`# ${requests} requests of ${FILL_SEQUENCES} x ${FILL_TOKENS} tokens until frames were dropped; ${dropped} dropped`);

  stalled.ws.resume();
  const notice = (await stalled.waitFor((f) => f.type === 'dropped', 'dropped')) as { count: number; total: number };
  assert.ok(notice.count > 0 && notice.total >= notice.count);
  assert.ok(notice.total <= dropped);
  await stalled.close();
});
