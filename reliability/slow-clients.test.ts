// Clients that never read: WebSocket clients that stop reading, WebSocket clients that never read but
// forge pongs every 5 ms, and SSE clients that never read their streams, all while traffic runs. The
// server's memory must stay bounded (no steady growth), their activation frames are dropped, and the
// SSE connections are dropped once their responses can not be delivered.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, it } from 'node:test';
import WebSocket from 'ws';
import type { ChildServer } from '../test/helpers/child-server.js';
import { clientFrame } from '../test/helpers/ws-frames.js';
import { exchange, figure, MIB, MODEL, postJson, rssBytes, serverMetric, startDemoServer, until } from './support.js';

const PAUSED_WS = 6;
const FORGING_WS = 6;
const SSE_CLIENTS = 4;
// A short idle bound, so the streams nobody reads are dropped within this test.
const IDLE_TIMEOUT_SECONDS = 5;
const WARM_UP_MS = 10_000;
const SLOW_PHASE_MS = 30_000;
const SAMPLE_MS = 2000;
// What the server may hold for these clients: 12 WebSocket clients x (1 MiB ring + 256 KiB in the
// socket) and 4 streams x 1 MiB, ~19 MiB, plus allocator slack. Before the byte bounds, one pong-forging
// client grew the server by ~94 MiB a minute.
const RSS_GROWTH_BOUND = 64 * MIB;
// No steady growth: the last third of the samples stays this close to the middle third, or to the
// warm-up's peak when the middle third dipped below it (a collection; seen at -16 MiB on a loaded machine).
const RSS_DRIFT_BOUND = 16 * MIB;
const WAIT_MS = 60_000;

let server: ChildServer;
before(async () => {
  server = await startDemoServer(['--idle-timeout-seconds', String(IDLE_TIMEOUT_SECONDS)]);
});
after(async () => {
  await server?.stop();
});

/** Two workers sending completions of 8 choices until `stop` is set. */
function traffic(state: { stop: boolean; requests: number }): Promise<void[]> {
  return Promise.all(
    [0, 1].map(async () => {
      while (!state.stop) {
        const res = await postJson(server.url, '/v1/completions', { model: MODEL, prompt: 'The city of', max_tokens: 128, n: 8, ignore_eos: true });
        if ('error' in res || res.status !== 200) throw new Error(`traffic failed: ${JSON.stringify('error' in res ? res : res.status)}`);
        state.requests++;
      }
    }),
  );
}

async function sample(ms: number, into: number[]): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    into.push(await rssBytes(server.url));
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
  }
}

function rawSocket(port: number): net.Socket {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  return socket;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const mib = (x: number): string => `${(x / MIB).toFixed(1)} MiB`;

const streamBody = JSON.stringify({ model: MODEL, prompt: 'The city of', max_tokens: 400, n: 8, logprobs: 5, ignore_eos: true, stream: true });

it('never-reading and pong-forging WebSocket clients and never-reading SSE clients cost bounded memory', async () => {
  const port = Number(new URL(server.url).port);
  const sockets = async (): Promise<number> => (await serverMetric(server.url, 'nodejs_active_handles', { type: 'Socket' })) ?? 0;
  const load = { stop: false, requests: 0 };
  const running = traffic(load);
  // The warm-up runs what the slow phase runs, read normally: the same streams bring the engine to
  // the same working set (onnxruntime's arenas grow to the longest contexts seen and stay there).
  const read = Array.from({ length: SSE_CLIENTS }, () => postJson(server.url, '/v1/completions', JSON.parse(streamBody)));
  const warmUp: number[] = [];
  await sample(WARM_UP_MS, warmUp);
  await Promise.all(read);
  await sample(SAMPLE_MS, warmUp);
  const baseline = Math.max(...warmUp);
  const idleSockets = await sockets();

  const paused: WebSocket[] = [];
  for (let i = 0; i < PAUSED_WS; i++) {
    const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/activations`);
    ws.on('error', () => {});
    await new Promise((resolve) => ws.once('open', resolve));
    ws.pause();
    paused.push(ws);
  }
  const forging: net.Socket[] = [];
  for (let i = 0; i < FORGING_WS; i++) {
    const socket = rawSocket(port);
    socket.write(`GET /v1/activations HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`);
    await new Promise((resolve) => socket.once('data', resolve));
    socket.pause();
    forging.push(socket);
  }
  const forge = setInterval(() => {
    for (const s of forging) s.write(clientFrame(0xa, randomBytes(16)));
  }, 5);
  const streams: net.Socket[] = [];
  for (let i = 0; i < SSE_CLIENTS; i++) {
    const socket = rawSocket(port);
    socket.pause();
    socket.write(`POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(streamBody)}\r\n\r\n${streamBody}`);
    streams.push(socket);
  }
  const withSlow = await sockets();
  const droppedBefore = (await serverMetric(server.url, 'swserve_websocket_frames_dropped_total')) ?? 0;

  const slow: number[] = [];
  load.requests = 0;
  await sample(SLOW_PHASE_MS, slow);
  clearInterval(forge);
  load.stop = true;
  await running;
  const dropped = ((await serverMetric(server.url, 'swserve_websocket_frames_dropped_total')) ?? 0) - droppedBefore;

  // The streams nobody reads end or are dropped; the server then lets go of their connections.
  const drained = await until(async () => {
    const ready = await exchange(server.url, { method: 'GET', path: '/ready' });
    return !('error' in ready) && (JSON.parse(ready.body.toString()) as { sequences_in_flight: number }).sequences_in_flight === 0;
  }, WAIT_MS, 'the unread streams to end');
  const streamsDroppedAfter = await until(async () => (await sockets()) <= withSlow - SSE_CLIENTS, WAIT_MS, 'the unread streams\' connections to close');

  const third = Math.floor(slow.length / 3);
  const peak = Math.max(...slow);
  figure('slow clients', `${PAUSED_WS} WebSocket clients not reading, ${FORGING_WS} not reading and forging pongs every 5 ms, ${SSE_CLIENTS} SSE streams (8 x 400 tokens, logprobs 5) not read; ${load.requests} traffic requests of 8 x 128 tokens over ${SLOW_PHASE_MS / 1000} s`);
  figure('slow clients RSS', `baseline ${mib(baseline)} (peak of the same traffic and streams, read), peak with the slow clients ${mib(peak)} (${peak >= baseline ? '+' : ''}${mib(peak - baseline)}), last third ${mib(mean(slow.slice(2 * third)))} vs middle third ${mib(mean(slow.slice(third, 2 * third)))}`);
  figure('slow clients frames dropped', dropped);
  figure('slow clients unread streams', `ended ${drained} ms after the traffic stopped; their connections closed by the server ${streamsDroppedAfter} ms after that (idle timeout ${IDLE_TIMEOUT_SECONDS} s)`);
  assert.ok(peak - baseline < RSS_GROWTH_BOUND, `RSS grew by ${mib(peak - baseline)}`);
  const driftFrom = Math.max(mean(slow.slice(third, 2 * third)), baseline);
  assert.ok(mean(slow.slice(2 * third)) - driftFrom < RSS_DRIFT_BOUND, `RSS keeps growing: last third ${mib(mean(slow.slice(2 * third)))} against ${mib(driftFrom)}`);
  assert.ok(dropped > 0, 'frames were dropped for the clients that do not read');
  assert.ok(withSlow >= idleSockets + PAUSED_WS + FORGING_WS, 'the WebSocket clients were connected');

  for (const ws of paused) ws.terminate();
  for (const s of [...forging, ...streams]) s.destroy();
});
