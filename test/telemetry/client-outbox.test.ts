// The per-client outbox on a real `ws` server: a reading client gets every frame, its genuine pongs
// reopening the send window; a client that never reads but forges pongs acknowledges nothing (it is
// sent one window of frames, no more), and what the server holds for it (ring plus socket) stays
// within the byte bound while the rest is dropped.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { ClientOutbox } from '../../src/telemetry/client-outbox.js';
import { clientFrame, readServerFrames } from '../helpers/ws-frames.js';

const LIMITS = { frames: 1024, bytes: 512 * 1024 };
// client-outbox.ts: what a client may be sent before it acknowledges.
const UNACKNOWLEDGED_WINDOW_BYTES = 256 * 1024;
const FRAME = JSON.stringify({ type: 'step', pad: 'x'.repeat(2000) });
// Hang guard: a window that never reopens would stop the reading client's test here.
const DELIVERY_WAIT_MS = 20_000;

let wss: WebSocketServer;
let port: number;
const accepted: ((ws: WebSocket) => void)[] = [];

before(async () => {
  wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  wss.on('connection', (ws) => accepted.shift()?.(ws));
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  port = (wss.address() as AddressInfo).port;
});
after(() => {
  for (const ws of wss.clients) ws.terminate();
  wss.close();
});

/** The server side of the next connection, with an outbox on it. */
function nextOutbox(): Promise<{ ws: WebSocket; outbox: ClientOutbox; dropped: () => number }> {
  return new Promise((resolve) => {
    accepted.push((ws) => {
      let dropped = 0;
      const outbox = new ClientOutbox(ws, LIMITS, (n) => (dropped += n));
      ws.on('pong', (payload) => outbox.acknowledge(payload));
      resolve({ ws, outbox, dropped: () => dropped });
    });
  });
}

/** Text frames in a server-to-client byte stream (unmasked), up to its close frame. */
async function countTextFrames(socket: net.Socket): Promise<number> {
  let pending: Buffer = Buffer.alloc(0);
  let text = 0;
  for await (const chunk of socket) {
    const { frames, rest } = readServerFrames(Buffer.concat([pending, chunk as Buffer]));
    pending = rest;
    for (const f of frames) {
      if (f.opcode === 0x8) return text;
      if (f.opcode === 0x1) text++;
    }
  }
  return text;
}

/** A masked client-to-server pong frame with a payload the client made up. */
function forgedPong(): Buffer {
  return clientFrame(0xa, randomBytes(16));
}

describe('ClientOutbox', () => {
  it('delivers every frame to a client that reads, beyond the unacknowledged window', async () => {
    const server = nextOutbox();
    const client = new WebSocket(`ws://127.0.0.1:${port}`);
    let received = 0;
    client.on('message', () => received++);
    await new Promise((resolve) => client.once('open', resolve));
    const { outbox, dropped } = await server;
    // 8 batches of ~200 KB: 1.6 MB in all, far past the 256 KiB window, so pongs must reopen it.
    const BATCH = 100;
    for (let batch = 1; batch <= 8; batch++) {
      for (let i = 0; i < BATCH; i++) outbox.push(FRAME);
      const deadline = Date.now() + DELIVERY_WAIT_MS;
      while (received < batch * BATCH) {
        assert.ok(Date.now() < deadline, `batch ${batch}: ${received} of ${batch * BATCH} frames arrived`);
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    assert.equal(dropped(), 0);
    client.close();
  });

  it('keeps a never-reading client that forges pongs within its byte bound, dropping frames', async () => {
    const server = nextOutbox();
    // A raw client: completes the handshake, then never reads again and sends made-up pongs.
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    // Skip the handshake response; from here on the client reads nothing until the end.
    await new Promise((resolve) => socket.once('data', resolve));
    socket.pause();
    const { ws, outbox, dropped } = await server;
    const forging = setInterval(() => socket.write(forgedPong()), 1);
    try {
      let peak = 0;
      // 40 MB of frames, far more than a kernel buffers for a client that does not read, pushed across
      // event-loop turns so forged pongs keep arriving between them.
      for (let round = 0; round < 200; round++) {
        for (let i = 0; i < 100; i++) {
          outbox.push(FRAME);
          peak = Math.max(peak, outbox.queuedBytes);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.ok(peak <= LIMITS.bytes, `held ${peak} bytes for the client, bound ${LIMITS.bytes}`);
      assert.ok(dropped() > 0, 'frames were dropped rather than sent to a client that did not read them');
      // Now read what the server did send: one window's worth, as the forged pongs acknowledged nothing.
      clearInterval(forging);
      ws.close();
      socket.resume();
      const sent = await countTextFrames(socket);
      const window = Math.ceil(UNACKNOWLEDGED_WINDOW_BYTES / Buffer.byteLength(FRAME));
      assert.ok(sent >= 1 && sent <= window + 1, `a client that never read got ${sent} frames; one window is ${window}`);
    } finally {
      clearInterval(forging);
      socket.destroy();
    }
  });
});
