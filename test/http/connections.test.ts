// Connections a well-behaved HTTP client would not make: requests Node's parser refuses get the OpenAI
// envelope (not Node's empty 400), a body dripped past the request timeout gets 408, a response the
// client never reads is dropped instead of held, and a listener that throws answers 500 without
// taking the process down.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ConnectionGuard } from '../../src/http/connections.js';
import { SseWriter } from '../../src/http/sse.js';
import { rawRequest, type RawResponse } from '../helpers/raw-http.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

// Hang guards only: each wait ends as soon as the behaviour happens.
const SLOW_ANSWER_WAIT_MS = 20_000;
const DROP_WAIT_MS = 30_000;

const COMPLETION = JSON.stringify({ model: 'tiny', prompt: 'Hello', max_tokens: 1 });

function post(headers: string, body = ''): string {
  return `POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n${headers}\r\n${body}`;
}

function assertEnvelope(response: RawResponse, status: number, code: string): void {
  assert.equal(response.status, status, response.text);
  const error = (response.json as { error?: Record<string, unknown> } | undefined)?.error;
  assert.ok(error, `an error envelope: ${response.text}`);
  assert.deepEqual(Object.keys(error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(error.code, code);
  assert.equal(error.type, 'invalid_request_error');
  assert.match(response.text, /\r\nContent-Type: application\/json/);
  assert.ok(response.closed, 'the server closes the connection');
}

describe('protocol errors', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ config: { connections: { requestTimeoutSeconds: 1 } } });
  });
  after(async () => server?.close());

  const cases: { name: string; bytes: string; end?: boolean; status: number; code: string }[] = [
    { name: 'Content-Length with Transfer-Encoding', bytes: post(`Content-Length: ${COMPLETION.length}\r\nTransfer-Encoding: chunked\r\n`, `${COMPLETION.length.toString(16)}\r\n${COMPLETION}\r\n0\r\n\r\n`), status: 400, code: 'invalid_request' },
    { name: 'a chunk size that is not hexadecimal', bytes: post('Transfer-Encoding: chunked\r\n', `zz\r\n${COMPLETION}\r\n`), status: 400, code: 'invalid_request' },
    { name: 'a chunked body cut off', bytes: post('Transfer-Encoding: chunked\r\n', `40\r\n${COMPLETION.slice(0, 10)}`), end: true, status: 400, code: 'invalid_request' },
    { name: 'a body shorter than its Content-Length', bytes: post('Content-Length: 400\r\n', COMPLETION), end: true, status: 400, code: 'invalid_request' },
    { name: 'a 20 KB header', bytes: `GET /health HTTP/1.1\r\nHost: localhost\r\nX-Padding: ${'a'.repeat(20_000)}\r\n\r\n`, status: 431, code: 'headers_too_large' },
    { name: 'a request line that is not HTTP', bytes: 'HELLO THERE\r\n\r\n', status: 400, code: 'invalid_request' },
    { name: 'a target no URL parser takes', bytes: 'GET http://[ HTTP/1.1\r\nHost: localhost\r\n\r\n', status: 400, code: 'invalid_request' },
    { name: 'a body dripped past the request timeout', bytes: post('Content-Length: 400\r\n', COMPLETION.slice(0, 5)), status: 408, code: 'request_timeout' },
  ];
  for (const c of cases) {
    it(`answers ${c.name} with ${c.status} ${c.code}`, async () => {
      assertEnvelope(await rawRequest(server.url, c.bytes, { end: c.end, waitMs: SLOW_ANSWER_WAIT_MS }), c.status, c.code);
    });
  }

  it('still serves afterwards', async () => {
    const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: COMPLETION });
    assert.equal(res.status, 200, await res.text());
  });
});

describe('the idle timeout', () => {
  let server: TestServer;
  before(async () => {
    // An idle bound far shorter than the generation below takes.
    server = await startTestServer({ config: { connections: { idleTimeoutSeconds: 0.05 } } });
  });
  after(async () => server?.close());

  it('spares a connection whose response is still being computed', async () => {
    const res = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', prompt: 'Hello', max_tokens: 300, n: 4, ignore_eos: true }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { usage: { completion_tokens: number } };
    assert.equal(body.usage.completion_tokens, 1200);
  });
});

/** A real HTTP server guarded as swserve's is, with the test's own handler. */
async function guardedServer(handler: http.RequestListener, idleTimeoutMs: number): Promise<{ server: http.Server; port: number; logged: string[] }> {
  const server = http.createServer();
  const logged: string[] = [];
  const guard = new ConnectionGuard(server, { requestTimeoutMs: 10_000, idleTimeoutMs }, (m) => logged.push(m));
  server.on('request', guard.listener(() => handler));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, port: (server.address() as AddressInfo).port, logged };
}

/** A client that sends a request and then never reads a byte. */
function neverReading(port: number, path: string): net.Socket {
  const socket = net.connect(port, '127.0.0.1');
  socket.pause();
  socket.on('error', () => {});
  socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  return socket;
}

function closed(socket: net.Socket, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} was not closed within ${DROP_WAIT_MS} ms`)), DROP_WAIT_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// More than any kernel's socket buffers take from a client that does not read.
const UNREADABLE_BYTES = 64 * 1024 * 1024;

describe('responses a client never reads', () => {
  it('a finished response stuck in the server is dropped after the idle time', async () => {
    let serverSide: net.Socket | undefined;
    let delivered = false;
    const { server, port } = await guardedServer((req, res) => {
      serverSide = req.socket;
      // Node also reports 'finish' when it throws the unsent bytes away with the socket.
      res.once('finish', () => (delivered = !req.socket.destroyed));
      res.end(Buffer.alloc(UNREADABLE_BYTES, 97));
    }, 200);
    const client = neverReading(port, '/');
    try {
      while (!serverSide) await new Promise((r) => setImmediate(r));
      await closed(serverSide, 'the stalled connection');
      assert.equal(delivered, false, 'dropped, not delivered');
    } finally {
      client.destroy();
      server.close();
    }
  });

  it('a stream is dropped once more than maxBufferedBytes wait for its client', async () => {
    let serverSide: net.Socket | undefined;
    let response: http.ServerResponse | undefined;
    // The idle timeout is out of reach: only the buffer bound can drop this stream.
    const { server, port } = await guardedServer((req, res) => {
      serverSide = req.socket;
      response = res;
      const sse = new SseWriter(res, { pingIntervalMs: 60_000, maxBufferedBytes: 256 * 1024, doneMarker: true });
      const event = 'x'.repeat(64 * 1024);
      for (let sent = 0; sent < UNREADABLE_BYTES; sent += event.length) sse.send({ data: event });
    }, 120_000);
    const client = neverReading(port, '/');
    try {
      while (!serverSide) await new Promise((r) => setImmediate(r));
      await closed(serverSide, 'the stalled stream');
      assert.equal(response!.writableEnded, false, 'dropped while the stream was open');
    } finally {
      client.destroy();
      server.close();
    }
  });

  it('a reading client gets the whole stream', async () => {
    const { server, port } = await guardedServer((_req, res) => {
      const sse = new SseWriter(res, { pingIntervalMs: 60_000, maxBufferedBytes: 64 * 1024, doneMarker: true });
      for (let i = 0; i < 1000; i++) sse.send({ data: { i, pad: 'y'.repeat(1000) } });
      sse.end();
    }, 60_000);
    try {
      const text = await (await fetch(`http://127.0.0.1:${port}/`)).text();
      assert.equal(text.split('\n\n').filter((e) => e.startsWith('data: {')).length, 1000);
      assert.ok(text.endsWith('data: [DONE]\n\n'));
    } finally {
      server.close();
    }
  });
});

describe('a listener that throws', () => {
  it('answers 500 in the envelope, logs, and the server keeps serving', async () => {
    let calls = 0;
    const { server, port, logged } = await guardedServer((_req, res) => {
      if (calls++ === 0) throw new Error('handler bug');
      res.end('ok');
    }, 60_000);
    try {
      const first = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(first.status, 500);
      assert.equal(((await first.json()) as { error: { code: string } }).error.code, 'internal_error');
      assert.match(logged.join('\n'), /handler bug/);
      const second = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(await second.text(), 'ok');
    } finally {
      server.close();
    }
  });
});
