// The fuzzer: at least 1,000 hostile requests, generated from a fixed seed, over every POST route,
// the HTTP framing and the activation WebSocket, against `swserve serve` on the demo model in a child
// process. Every answer must be a success of the documented shape or a documented 4xx in the OpenAI
// envelope (never a 5xx, a reset or silence); WebSocket frames must get a documented close code or
// an error frame; the process must stay up, and a greedy request must give the same text afterwards.
// SWSERVE_FUZZ_SEED and SWSERVE_FUZZ_CASES change the run.
import assert from 'node:assert/strict';
import type http from 'node:http';
import net from 'node:net';
import { after, before, it } from 'node:test';
import { mulberry32 } from '../test/helpers/tiny-checkpoint.js';
import type { ChildServer } from '../test/helpers/child-server.js';
import { readServerFrames } from '../test/helpers/ws-frames.js';
import { fuzzCase, type FuzzCase } from './fuzz-cases.js';
import { envelopeProblem, exchange, figure, greedyText, startDemoServer } from './support.js';

const SEED = Number(process.env.SWSERVE_FUZZ_SEED ?? 20261201);
const CASES = Number(process.env.SWSERVE_FUZZ_CASES ?? 1200);
const CONCURRENCY = 8;
// Hang guard per case: an answer that takes longer is reported as silence.
const ANSWER_WAIT_MS = 20_000;
// Close codes the WebSocket answers malformed frames with (RFC 6455 7.4.1): protocol error, data it
// can not accept, invalid UTF-8, message too big.
const DOCUMENTED_CLOSE_CODES = new Set([1002, 1003, 1007, 1009]);

let server: ChildServer;
let before_: string;

before(async () => {
  server = await startDemoServer();
  before_ = await greedyText(server.url);
});
after(async () => {
  await server?.stop();
});

interface Outcome {
  /** 2xx, 4xx, 101, close:<code>, error-frame */
  answer: string;
  problem?: string;
}

/** Bytes on a fresh connection; resolves with the first complete HTTP response head and body (or what arrived before the close). */
function rawExchange(url: string, bytes: Buffer, end: boolean): Promise<{ status?: number; body: string; socket: net.Socket; rest: Buffer }> {
  const { port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    let received = Buffer.alloc(0);
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      const text = received.toString('latin1');
      const headEnd = text.indexOf('\r\n\r\n');
      const closed = socket.destroyed || socket.readableEnded;
      if (headEnd < 0 && !closed) return;
      const head = headEnd < 0 ? text : text.slice(0, headEnd);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]) || undefined;
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
      const bodyStart = headEnd + 4;
      if (headEnd >= 0 && status !== 101 && received.length < bodyStart + length && !closed) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, body: headEnd < 0 ? '' : received.subarray(bodyStart, bodyStart + length).toString('utf8'), socket, rest: headEnd < 0 ? Buffer.alloc(0) : received.subarray(bodyStart + (status === 101 ? 0 : length)) });
    };
    const timer = setTimeout(() => {
      settled = true;
      resolve({ status: undefined, body: '', socket, rest: Buffer.alloc(0) });
    }, ANSWER_WAIT_MS);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      settle();
    });
    socket.on('end', settle);
    socket.on('close', settle);
    socket.on('error', () => {});
    if (end) socket.end(bytes);
    else socket.write(bytes);
  });
}

/** Server frames from a WebSocket byte stream until a close frame (its code) or an error frame. */
function frameAnswer(socket: net.Socket, initial: Buffer): Promise<string | undefined> {
  return new Promise((resolve) => {
    let pending = initial;
    const done = (answer: string | undefined): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      resolve(answer);
    };
    const parse = (): void => {
      const { frames, rest } = readServerFrames(pending);
      pending = rest;
      for (const f of frames) {
        if (f.opcode === 0x8) return done(`close:${f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 'none'}`);
        if (f.opcode === 0x1 && f.payload.toString('utf8').includes('"type":"error"')) return done('error-frame');
      }
    };
    const onData = (chunk: Buffer): void => {
      pending = Buffer.concat([pending, chunk]);
      parse();
    };
    const timer = setTimeout(() => done(undefined), ANSWER_WAIT_MS);
    socket.on('data', onData);
    socket.once('close', () => done('closed without a close frame'));
    parse();
  });
}

/** Why a 503 from /ready is not its documented "full" answer (Retry-After and the admission numbers). */
function fullReadinessProblem(headers: http.IncomingHttpHeaders, body: string): string | undefined {
  if (headers['retry-after'] === undefined) return '/ready answered 503 without Retry-After';
  try {
    const ready = JSON.parse(body) as { status?: string; sequences_in_flight?: number; capacity?: number };
    if (ready.status === 'full' && typeof ready.sequences_in_flight === 'number' && typeof ready.capacity === 'number') return undefined;
  } catch {
    // Reported below with the body.
  }
  return `/ready answered 503 with ${body.slice(0, 200)}`;
}

async function run(url: string, c: FuzzCase): Promise<Outcome> {
  if (c.kind === 'http') {
    const res = await exchange(url, c.request);
    if ('error' in res) return { answer: 'no answer', problem: `connection error ${res.error}` };
    const body = res.body.toString('utf8');
    if (res.status >= 200 && res.status < 300) {
      const type = String(res.headers['content-type']);
      // Chat and completions end with [DONE]; the Responses API with its response.completed event.
      const ended = c.request.path === '/v1/responses' ? /event: response\.(completed|incomplete|failed)\n/.test(body) : body.endsWith('data: [DONE]\n\n');
      if (type.startsWith('text/event-stream') && !ended) return { answer: '2xx', problem: `a stream that did not end properly: ${body.slice(-200)}` };
      if (type.startsWith('application/json')) {
        try {
          JSON.parse(body);
        } catch {
          return { answer: '2xx', problem: `a 2xx body that is not JSON: ${body.slice(0, 200)}` };
        }
      }
      return { answer: '2xx' };
    }
    // The fuzzer's own concurrent requests can fill the server; /ready then says so (documented overload).
    if (c.request.path === '/ready' && res.status === 503) return { answer: '503', problem: fullReadinessProblem(res.headers, body) };
    return { answer: `${res.status}`, problem: envelopeProblem(res.status, body) };
  }
  if (c.kind === 'raw' || c.kind === 'ws-upgrade') {
    const res = await rawExchange(url, c.bytes, c.kind === 'raw' && c.end);
    res.socket.destroy();
    if (res.status === undefined) return { answer: 'no answer', problem: 'no HTTP response' };
    if (res.status === 101 && c.kind === 'ws-upgrade') return { answer: '101' };
    if (res.status >= 200 && res.status < 300) return { answer: '2xx' };
    return { answer: `${res.status}`, problem: envelopeProblem(res.status, res.body) };
  }
  // A good upgrade, then the frames.
  const key = Buffer.from(Array.from({ length: 16 }, (_, i) => i)).toString('base64');
  const upgrade = Buffer.from(`GET /v1/activations HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`);
  const res = await rawExchange(url, upgrade, false);
  if (res.status !== 101) {
    res.socket.destroy();
    return { answer: `${res.status}`, problem: `the good upgrade was answered ${res.status}` };
  }
  for (const f of c.frames) res.socket.write(f);
  const answer = await frameAnswer(res.socket, res.rest);
  res.socket.destroy();
  if (answer === 'error-frame') return { answer };
  const code = Number(answer?.slice('close:'.length));
  return { answer: answer ?? 'silence', problem: DOCUMENTED_CLOSE_CODES.has(code) ? undefined : `frames answered with ${answer ?? 'nothing'}` };
}

it(`answers ${CASES} hostile requests (seed ${SEED}) with documented answers, stays up, and generates the same text`, async () => {
  const rng = mulberry32(SEED);
  const cases = Array.from({ length: CASES }, () => fuzzCase(rng));
  const outcomes: Outcome[] = new Array(cases.length);
  let next = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < cases.length) {
        const i = next++;
        outcomes[i] = await run(server.url, cases[i]!);
      }
    }),
  );
  const count = (key: (i: number) => string): string => {
    const tally = new Map<string, number>();
    cases.forEach((_, i) => tally.set(key(i), (tally.get(key(i)) ?? 0) + 1));
    return [...tally.entries()].sort().map(([k, n]) => `${k} ${n}`).join(', ');
  };
  figure('fuzz cases', `${cases.length} (seed ${SEED}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  figure('fuzz cases by family', count((i) => cases[i]!.kind));
  figure('fuzz answers', count((i) => outcomes[i]!.answer));
  const problems = outcomes.map((o, i) => ({ o, c: cases[i]! })).filter(({ o }) => o.problem !== undefined);
  figure('fuzz undocumented answers', problems.length);
  assert.deepEqual(problems.slice(0, 10).map(({ o, c }) => `${c.kind} ${c.label.slice(0, 120)}: ${o.problem}`), [], `${problems.length} answers were not documented ones`);

  assert.equal(server.child.exitCode, null, 'the server process is still running');
  const health = await exchange(server.url, { method: 'GET', path: '/health' });
  assert.ok(!('error' in health) && health.status === 200, 'the server is healthy');
  assert.equal(await greedyText(server.url), before_, 'a greedy request gives the same text as before the fuzzer');
  figure('fuzz process', 'stayed up; the greedy request gave the same text');
});
