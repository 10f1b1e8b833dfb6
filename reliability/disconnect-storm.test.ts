// A disconnect storm: 200 clients start streamed completions and vanish at moments drawn from a seed
// (before the response, after the first chunk, a few chunks in). The engine must stop their work:
// the running/waiting gauges and the admission count return to 0, the sockets close, the process's
// memory comes back near where it was, and the server still generates the same text.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, it } from 'node:test';
import { mulberry32 } from '../test/helpers/tiny-checkpoint.js';
import type { ChildServer } from '../test/helpers/child-server.js';
import { exchange, figure, greedyText, MIB, MODEL, rssBytes, serverMetric, startDemoServer, until } from './support.js';

const CLIENTS = 200;
const SEED = 7;
// Room for every client, so all 200 reach the engine (16 running, 184 waiting).
const FLAGS = ['--max-num-seqs', '16', '--max-waiting', String(CLIENTS - 16)];
// Each would run far longer than the storm if it were not cancelled.
const STREAM = { model: MODEL, prompt: 'The city of', max_tokens: 400, ignore_eos: true, stream: true };
// Bounds that only a leak or a stuck sequence would break. The engine cancels at its next step
// (milliseconds). The first storm grows the process by ~95 MiB once (onnxruntime's and malloc's
// arenas at a full batch, heap used stays ~20-40 MiB); so the baseline is taken after a warm-up
// storm, and five storms in a row then stayed within 12 MiB of it here.
const BACK_TO_ZERO_MS = 30_000;
const RSS_GROWTH_BOUND = 48 * MIB;

let server: ChildServer;
before(async () => {
  server = await startDemoServer(FLAGS);
});
after(async () => {
  await server?.stop();
});

/** One client: starts the stream and destroys its connection at the moment `when` says. */
function vanishingClient(url: string, when: { kind: 'before-response' | 'after-chunks'; chunks: number }): Promise<string> {
  return new Promise((resolve) => {
    const payload = JSON.stringify(STREAM);
    const req = http.request(`${url}/v1/completions`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } });
    req.on('error', () => {});
    req.on('close', () => resolve(when.kind));
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        res.on('end', () => resolve(`status ${res.statusCode}`));
        return;
      }
      let chunks = 0;
      res.on('data', () => {
        if (++chunks >= when.chunks) req.destroy();
      });
    });
    req.end(payload);
    if (when.kind === 'before-response') setImmediate(() => req.destroy());
  });
}

async function gaugesAtZero(url: string): Promise<boolean> {
  const [running, waiting] = await Promise.all([serverMetric(url, 'swserve_num_requests_running'), serverMetric(url, 'swserve_num_requests_waiting')]);
  const ready = await exchange(url, { method: 'GET', path: '/ready' });
  const inFlight = 'error' in ready ? -1 : (JSON.parse(ready.body.toString()) as { sequences_in_flight: number }).sequences_in_flight;
  return running === 0 && waiting === 0 && inFlight === 0;
}

it(`${CLIENTS} clients vanishing mid-request leave nothing behind`, async () => {
  const text = await greedyText(server.url);
  const sockets = async (): Promise<number> => (await serverMetric(server.url, 'nodejs_active_handles', { type: 'Socket' })) ?? 0;
  const baselineSockets = await sockets();
  const rng = mulberry32(SEED);
  const storm = (): { kind: 'before-response' | 'after-chunks'; chunks: number }[] =>
    Array.from({ length: CLIENTS }, () => (rng() < 0.25 ? { kind: 'before-response' as const, chunks: 0 } : { kind: 'after-chunks' as const, chunks: 1 + Math.floor(rng() * 20) }));
  // The warm-up storm brings the engine to its full-batch working set.
  await Promise.all(storm().map((p) => vanishingClient(server.url, p)));
  await until(() => gaugesAtZero(server.url), BACK_TO_ZERO_MS, 'the warm-up storm to drain');
  const abortsBefore = (await serverMetric(server.url, 'swserve_request_success_total', { finished_reason: 'abort' })) ?? 0;
  const baseline = await rssBytes(server.url);
  const plans = storm();
  const started = Date.now();
  const ends = await Promise.all(plans.map((p) => vanishingClient(server.url, p)));
  const vanished = Date.now();
  const zeroAfter = await until(() => gaugesAtZero(server.url), BACK_TO_ZERO_MS, 'running, waiting and in-flight back to 0');
  const socketsBackAfter = await until(async () => (await sockets()) <= baselineSockets, BACK_TO_ZERO_MS, 'the sockets closed');
  const aborted = ((await serverMetric(server.url, 'swserve_request_success_total', { finished_reason: 'abort' })) ?? 0) - abortsBefore;
  const peakAfter = await rssBytes(server.url);

  const tally = new Map<string, number>();
  for (const e of ends) tally.set(e, (tally.get(e) ?? 0) + 1);
  figure('storm clients', `${CLIENTS} (${[...tally.entries()].map(([k, n]) => `${n} ${k}`).join(', ')}), all gone after ${((vanished - started) / 1000).toFixed(1)} s`);
  figure('storm sequences cancelled by the engine', aborted);
  figure('storm gauges and admission back to 0 after the last client left', `${zeroAfter} ms`);
  figure('storm server sockets back to the baseline', `${socketsBackAfter} ms (baseline ${baselineSockets})`);
  figure('storm RSS', `after a warm-up storm ${(baseline / MIB).toFixed(1)} MiB, after the storm ${(peakAfter / MIB).toFixed(1)} MiB (${((peakAfter - baseline) / MIB).toFixed(1)} MiB)`);
  assert.ok(!ends.some((e) => e.startsWith('status')), `every client was admitted: ${JSON.stringify([...tally])}`);
  assert.ok(aborted > CLIENTS / 2, `the engine cancelled the vanished clients' sequences (${aborted})`);
  assert.ok(peakAfter - baseline < RSS_GROWTH_BOUND, `RSS grew by ${((peakAfter - baseline) / MIB).toFixed(1)} MiB`);
  assert.equal(await greedyText(server.url), text, 'the same greedy text afterwards');
});
