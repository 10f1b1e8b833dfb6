// What a stalled activation-stream client costs a concurrent stream: the token rate of one streamed
// completion on the demo model with a WebSocket client subscribed to all traffic that never reads
// (its window and ring full, so every frame for it is dropped), against the same client subscribed to
// nothing. Usage: npm run bench:slow-client -- [--repeats 5] [--tokens 200]
// The two sides alternate and each figure is the median of the repeats: single runs on a shared
// 2-core machine vary by more than the effect being measured.
import os from 'node:os';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { loadServerConfig } from '../src/config/server-config.js';
import { startServer } from '../src/server.js';

const { values } = parseArgs({ options: { repeats: { type: 'string', default: '5' }, tokens: { type: 'string', default: '200' } } });
const REPEATS = Number(values.repeats);
const TOKENS = Number(values.tokens);

const config = loadServerConfig({ env: {}, flags: { port: 0, telemetry: { maxClients: 4, clientBufferFrames: 32 } } });
const server = await startServer(config, () => {});
await server.ready;
const model = 'demo';

/** Decode tokens per second of one streamed completion, first token to last. */
async function streamRate(): Promise<number> {
  const res = await fetch(`${server.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: 'The city of', max_tokens: TOKENS, temperature: 0, ignore_eos: true, stream: true }),
  });
  const times: number[] = [];
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of res.body!) {
    pending += decoder.decode(chunk, { stream: true });
    const events = pending.split('\n\n');
    pending = events.pop()!;
    const now = performance.now();
    for (const event of events) if (event.startsWith('data: {') && event.includes('"text"')) times.push(now);
  }
  return ((times.length - 1) / (times[times.length - 1]! - times[0]!)) * 1000;
}

async function subscribe(ws: WebSocket, message: Record<string, unknown>): Promise<void> {
  ws.send(JSON.stringify({ type: 'subscribe', ...message }));
  await new Promise((resolve) => setTimeout(resolve, 50));
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const stalled = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/activations`);
await new Promise((resolve) => stalled.once('open', resolve));
stalled.pause();
// Fill its window and ring first, so the runs below measure the steady state: every frame dropped.
for (let i = 0; i < 3; i++) await streamRate();

const withStalled: number[] = [];
const without: number[] = [];
for (let i = 0; i < REPEATS; i++) {
  await subscribe(stalled, {});
  withStalled.push(await streamRate());
  await subscribe(stalled, { request_ids: ['none'] });
  without.push(await streamRate());
}
const slowdown = 1 - median(withStalled) / median(without);
console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`token rate, ${TOKENS} tokens, median of ${REPEATS} alternating runs:`);
console.log(`  no frames for the stalled client: ${median(without).toFixed(0)} tok/s (${without.map((r) => r.toFixed(0)).join(', ')})`);
console.log(`  every frame for the stalled client: ${median(withStalled).toFixed(0)} tok/s (${withStalled.map((r) => r.toFixed(0)).join(', ')})`);
console.log(`  slowdown ${(slowdown * 100).toFixed(1)}%`);
stalled.terminate();
await server.shutdown();
