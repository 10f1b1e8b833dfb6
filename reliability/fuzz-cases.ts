// Hostile requests, generated from a seed: JSON bodies for every POST route with fields replaced by
// wrong types, extreme numbers (1e308, 1e999), lone surrogates, NUL, deep nesting, duplicate keys, huge
// strings, bad switch coordinates; bodies in bad encodings, invalid UTF-8, 10 MB; requests HTTP/1.1
// does not allow (cut bodies, bad chunks, Content-Length with Transfer-Encoding, oversized headers);
// malformed WebSocket upgrades, and malformed frames after a good one.
import { randomBytes } from 'node:crypto';
import { clientFrame as frame } from '../test/helpers/ws-frames.js';
import { MODEL, type Sent } from './support.js';

export type FuzzCase =
  | { kind: 'http'; label: string; request: Sent }
  | { kind: 'raw'; label: string; bytes: Buffer; end: boolean }
  | { kind: 'ws-upgrade'; label: string; bytes: Buffer }
  | { kind: 'ws-frames'; label: string; frames: Buffer[] };

export type Rng = () => number;

const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;

// Generation stays small in the valid bases, so a mutation that leaves a request valid is cheap.
const ROUTES: { path: string; base: () => Record<string, unknown>; fields: string[] }[] = [
  {
    path: '/v1/completions',
    base: () => ({ model: MODEL, prompt: 'The city of', max_tokens: 4, temperature: 0 }),
    fields: ['model', 'prompt', 'max_tokens', 'temperature', 'top_p', 'n', 'stream', 'stream_options', 'stop', 'presence_penalty', 'frequency_penalty', 'logit_bias', 'seed', 'user', 'top_k', 'min_p', 'repetition_penalty', 'ignore_eos', 'stop_token_ids', 'min_tokens', 'super_weights', 'logprobs', 'echo', 'best_of', 'suffix', 'unknown_field'],
  },
  {
    path: '/v1/chat/completions',
    base: () => ({ model: MODEL, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4, temperature: 0 }),
    fields: ['model', 'messages', 'max_tokens', 'max_completion_tokens', 'logprobs', 'top_logprobs', 'n', 'stream', 'stop', 'temperature', 'super_weights', 'chat_template_kwargs', 'add_generation_prompt', 'seed', 'unknown_field'],
  },
  {
    path: '/v1/responses',
    base: () => ({ model: MODEL, input: 'Hello', max_output_tokens: 4, temperature: 0 }),
    fields: ['model', 'input', 'instructions', 'max_output_tokens', 'temperature', 'top_p', 'stream', 'metadata', 'user', 'seed', 'top_k', 'super_weights', 'tools', 'store', 'text', 'unknown_field'],
  },
  {
    path: '/v1/ablations/compare',
    base: () => ({ model: MODEL, prompt: 'The city of', max_tokens: 3 }),
    fields: ['model', 'prompt', 'max_tokens', 'temperature', 'top_p', 'seed', 'states', 'unknown_field'],
  },
  {
    path: '/v1/super_weights/detect',
    // One super weight at most: detection's cost grows with every find.
    base: () => ({ model: MODEL, prompt: 'Hello there', max_super_weights: 1 }),
    fields: ['model', 'prompt', 'max_super_weights', 'chart', 'unknown_field'],
  },
];

/** A value written into the JSON text as it is (not valid JSON, or not what JSON.stringify would write). */
interface Raw {
  raw: string;
}

const nested = (open: string, close: string, depth: number, inner = '1'): Raw => ({ raw: `${open.repeat(depth)}${inner}${close.repeat(depth)}` });

const HOSTILE_VALUES: (unknown | Raw)[] = [
  1e308, -1e308, 5e-324, -0, 2 ** 53 + 2, -1, 0, 0.5, 1e6, 4096,
  { raw: '1e999' }, { raw: '-1e999' }, { raw: 'NaN' }, { raw: 'Infinity' }, { raw: '01' }, { raw: '1.' },
  { raw: '"\\ud800"' }, { raw: '"\\udfff\\ud800x"' }, { raw: '"a\\u0000b"' }, { raw: '["\\ud83d"]' },
  nested('[', ']', 5000), nested('[', ']', 100_000), nested('{"a":', '}', 5000), nested('[', ']', 50, '"x"'),
  '', 'x'.repeat(100_000), '😀'.repeat(2000), 'é', '\u202e\u0000', {}, [], [[]], null, true, false, [1e308], ['a'], [-1], [99_999_999], { model: MODEL }, { scale: 1e308 },
];

const SWITCHES: unknown[] = [
  'maybe', 'OFF', 5, {}, { scale: 1e308 }, { scale: -1e308 }, { scale: 1e38 }, { raw: '{"scale":1e999}' } as Raw, { scale: 'x' }, { scale: 0, select: [] },
  { scale: 0, select: ['99:0:0'] }, { scale: 0, select: ['-1:0:0'] }, { scale: 0, select: ['1:99999:0'] }, { scale: 0, select: ['0:0:0:0'] }, { scale: 0, select: ['a:b:c'] },
  { scale: 0, select: ['1:97:333', '1:97:333'] }, { scale: 0, select: ['1:97:333', '01:097:0333'] }, { scale: 0, select: ['99999999999999999999:0:0'] },
  { scale: 0, select: Array.from({ length: 300 }, (_, i) => `0:${i}:0`) }, { scale: 0, restore_activation: 'yes' }, { scale: 0, restore: true }, { scale: 2, select: ['5:191:511'] },
];

const HEADER_SWITCHES = ['sideways', 'scale=', 'scale=abc', 'scale=1e999', 'scale=1e38', 'scale=-1e308', ' OFF ', 'on', 'scale=0.5', 'scale=NaN'];

/** The JSON text of `body`, with Raw values written as they are. */
function jsonText(body: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(body, (_key, value: unknown) => {
    if (value !== null && typeof value === 'object' && 'raw' in value && typeof (value as Raw).raw === 'string' && Object.keys(value).length === 1) {
      raws.push((value as Raw).raw);
      return `@@raw${raws.length - 1}@@`;
    }
    return value;
  });
  return text.replace(/"@@raw(\d+)@@"/g, (_m, i: string) => raws[Number(i)]!);
}

function mutatedJson(rng: Rng): FuzzCase {
  const route = pick(rng, ROUTES);
  const body = route.base();
  const mutations = 1 + Math.floor(rng() * 3);
  const done: string[] = [];
  for (let m = 0; m < mutations; m++) {
    const field = pick(rng, route.fields);
    const value = field === 'super_weights' || field === 'states' ? (field === 'states' ? [pick(rng, SWITCHES)] : pick(rng, SWITCHES)) : pick(rng, HOSTILE_VALUES);
    body[field] = value;
    done.push(field);
  }
  // Now and then inside a message, where chat reads text.
  if (route.path === '/v1/chat/completions' && rng() < 0.3) {
    body.messages = [{ role: pick(rng, ['user', 'system', 'assistant', 'tool', 'wizard', 5]), content: pick(rng, HOSTILE_VALUES) }];
    done.push('messages[0]');
  }
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (rng() < 0.15) headers['x-super-weights'] = pick(rng, HEADER_SWITCHES);
  let text = jsonText(body);
  if (rng() < 0.1) {
    // Duplicate keys: JSON.parse keeps the last.
    text = `{"model":${pick(rng, ['5', '"demo"', 'null', '"other"'])},${text.slice(1)}`;
    done.push('duplicate model');
  }
  return { kind: 'http', label: `${route.path} with ${done.join(', ')}`, request: { path: route.path, headers, body: text } };
}

function badBody(rng: Rng): FuzzCase {
  const route = pick(rng, ROUTES);
  const valid = JSON.stringify(route.base());
  const variants: (() => { label: string; headers: Record<string, string>; body: Buffer })[] = [
    () => ({ label: 'invalid UTF-8 in a string', headers: { 'content-type': 'application/json' }, body: Buffer.concat([Buffer.from(valid.slice(0, -1).replace(/"model":"demo"/, '"model":"demo","user":"')), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82]), Buffer.from('"}')]) }),
    () => ({ label: 'invalid UTF-8 as the body', headers: { 'content-type': 'application/json' }, body: randomBytes(64) }),
    () => ({ label: 'gzip that is not gzip', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: Buffer.from(valid) }),
    () => ({ label: 'deflate that is not deflate', headers: { 'content-type': 'application/json', 'content-encoding': 'deflate' }, body: Buffer.from(valid) }),
    () => ({ label: 'br that is not brotli', headers: { 'content-type': 'application/json', 'content-encoding': 'br' }, body: randomBytes(32) }),
    () => ({ label: 'an unknown content encoding', headers: { 'content-type': 'application/json', 'content-encoding': pick(rng, ['zstd', 'compress', 'gzip, br', 'x-bogus']) }, body: Buffer.from(valid) }),
    () => ({ label: 'an unknown charset', headers: { 'content-type': `application/json; charset=${pick(rng, ['latin-9', 'utf-7', 'ebcdic', 'x'])}` }, body: Buffer.from(valid) }),
    () => ({ label: 'UTF-16 JSON', headers: { 'content-type': 'application/json; charset=utf-16' }, body: Buffer.from(valid, 'utf16le') }),
    () => ({ label: 'not JSON at all', headers: { 'content-type': 'application/json' }, body: Buffer.from(pick(rng, ['{', '}{', '[1,', 'null', '"x"', '{"model":"demo",}', '\u0000', ''])) }),
    () => ({ label: 'another content type', headers: { 'content-type': pick(rng, ['text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'application/jsonx']) }, body: Buffer.from(valid) }),
    () => ({ label: 'no content type', headers: {}, body: Buffer.from(valid) }),
    () => ({ label: 'a 10 MB body', headers: { 'content-type': 'application/json' }, body: Buffer.from(`{"model":"demo","prompt":"${'a'.repeat(10 * 1024 * 1024)}"}`) }),
    () => ({ label: 'a 900 KB prompt', headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ ...route.base(), prompt: 'word '.repeat(180_000) })) }),
  ];
  const v = pick(rng, variants)();
  return { kind: 'http', label: `${route.path}: ${v.label}`, request: { path: route.path, headers: v.headers, body: v.body } };
}

function badRoute(rng: Rng): FuzzCase {
  const method = pick(rng, ['GET', 'PUT', 'DELETE', 'PATCH', 'POST', 'OPTIONS']);
  const path = pick(rng, ['/v1/completions', '/v1/embeddings', '/v1/models/demo', '/v1/models/other/name', '/v1/models/%zz', '/v1/activations', '/v1/../etc/passwd', '/v1/completions%zz', '/%', '/health?x=%zz', '/v1/completions?'.padEnd(4000, 'q'), '/v1//completions', '/ready', '/metrics']);
  return { kind: 'http', label: `${method} ${path.slice(0, 40)}`, request: { method, path, headers: { 'content-type': 'application/json' }, body: method === 'GET' ? undefined : '{}' } };
}

const CRLF = '\r\n';

function post(headers: string[], body: string): string {
  return ['POST /v1/completions HTTP/1.1', 'Host: 127.0.0.1', 'Content-Type: application/json', ...headers, '', body].join(CRLF);
}

function badProtocol(rng: Rng): FuzzCase {
  const body = JSON.stringify({ model: MODEL, prompt: 'Hi', max_tokens: 1 });
  const variants: (() => { label: string; bytes: string; end: boolean })[] = [
    () => ({ label: 'Content-Length with Transfer-Encoding', bytes: post([`Content-Length: ${body.length}`, 'Transfer-Encoding: chunked'], `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`), end: false }),
    () => ({ label: 'a bad chunk size', bytes: post(['Transfer-Encoding: chunked'], `${pick(rng, ['zz', '-1', 'ffffffffffffffffff', ''])}\r\n${body}\r\n`), end: false }),
    () => ({ label: 'a chunked body cut off', bytes: post(['Transfer-Encoding: chunked'], `40\r\n${body.slice(0, Math.floor(rng() * body.length))}`), end: true }),
    () => ({ label: 'a body shorter than its length', bytes: post([`Content-Length: ${body.length + 1 + Math.floor(rng() * 1000)}`], body), end: true }),
    () => ({ label: 'two Content-Lengths', bytes: post([`Content-Length: ${body.length}`, `Content-Length: ${body.length + 1}`], body), end: false }),
    () => ({ label: 'a 20 KB header', bytes: post([`X-Padding: ${'a'.repeat(20_000)}`, `Content-Length: ${body.length}`], body), end: false }),
    () => ({ label: 'a NUL in a header', bytes: post(['X-Bad: a\u0000b', `Content-Length: ${body.length}`], body), end: false }),
    () => ({ label: 'a request line that is not HTTP', bytes: `${pick(rng, ['HELLO', 'GET', 'GET /', 'GET / HTTP/9.9', '\u0000\u0001\u0002', 'POST /v1/completions HTTP/1.1 extra'])}\r\n\r\n`, end: false }),
    () => ({ label: 'an absolute-form target', bytes: `GET ${pick(rng, ['http://[', '//[', 'http://x/v1/models', '*'])} HTTP/1.1\r\nHost: x\r\n\r\n`, end: false }),
    () => ({ label: 'a header line without a colon', bytes: post(['NoColonHere', `Content-Length: ${body.length}`], body), end: false }),
  ];
  const v = pick(rng, variants)();
  return { kind: 'raw', label: v.label, bytes: Buffer.from(v.bytes, 'latin1'), end: v.end };
}

function upgradeRequest(target: string, extra: string[] = [], drop: string[] = []): Buffer {
  const headers = ['Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`].filter((h) => !drop.some((d) => h.startsWith(d)));
  return Buffer.from([`GET ${target} HTTP/1.1`, ...headers, ...extra, '', ''].join(CRLF), 'latin1');
}

function badUpgrade(rng: Rng): FuzzCase {
  const variants: (() => { label: string; bytes: Buffer })[] = [
    () => {
      const target = pick(rng, ['//[', 'http://[', '//[::1', 'http://%zz/v1/activations', '/v1/activations?layers=abc', '/v1/activations?layers=99', '/v1/activations?decode_every=-1', '/v1/activations?modes=bogus', '/v1/activations?request_ids=', '/v1/activations?unknown=1', '/v1/other', '/v1/activations?' + 'request_ids=x,'.repeat(400), '/v1/activations?layers=1e308']);
      return { label: `upgrade to ${target.slice(0, 40)}`, bytes: upgradeRequest(target) };
    },
    () => ({ label: 'upgrade without a key', bytes: upgradeRequest('/v1/activations', [], ['Sec-WebSocket-Key']) }),
    () => ({ label: 'upgrade with a bad key', bytes: upgradeRequest('/v1/activations', ['Sec-WebSocket-Key: not-base64'], ['Sec-WebSocket-Key']) }),
    () => ({ label: 'upgrade with version 12', bytes: upgradeRequest('/v1/activations', ['Sec-WebSocket-Version: 12'], ['Sec-WebSocket-Version']) }),
    () => ({ label: 'upgrade to something else', bytes: upgradeRequest('/v1/activations', ['Upgrade: h2c'], ['Upgrade']) }),
    () => ({ label: 'upgrade with a bad extension header', bytes: upgradeRequest('/v1/activations', ['Sec-WebSocket-Extensions: permessage-deflate; x=;;']) }),
  ];
  const v = pick(rng, variants)();
  return { kind: 'ws-upgrade', label: v.label, bytes: v.bytes };
}

function badFrames(rng: Rng): FuzzCase {
  const text = (s: string): Buffer => Buffer.from(s, 'utf8');
  const variants: (() => { label: string; frames: Buffer[] })[] = [
    () => ({ label: 'an unmasked frame', frames: [frame(0x1, text('{"type":"subscribe"}'), { masked: false })] }),
    () => ({ label: 'a reserved opcode', frames: [frame(pick(rng, [0x3, 0x4, 0xb, 0xf]), text('x'))] }),
    () => ({ label: 'RSV bits without an extension', frames: [frame(0x1, text('{}'), { rsv: 4 })] }),
    () => ({ label: 'invalid UTF-8 in a text frame', frames: [frame(0x1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))] }),
    () => ({ label: 'a 100 KB message (over 64 KiB)', frames: [frame(0x1, Buffer.alloc(100 * 1024, 0x61))] }),
    () => ({ label: 'a continuation without a start', frames: [frame(0x0, text('x'))] }),
    () => ({ label: 'a 200-byte ping', frames: [frame(0x9, Buffer.alloc(200, 1))] }),
    () => ({ label: 'a fragmented ping', frames: [frame(0x9, text('x'), { fin: false })] }),
    () => ({ label: 'a close with code 999', frames: [frame(0x8, Buffer.from([0x03, 0xe7]))] }),
    () => ({ label: 'a binary message', frames: [frame(0x2, randomBytes(16))] }),
    () => ({ label: 'a text message that is not JSON', frames: [frame(0x1, text(pick(rng, ['hello', '{', '[]', 'null', '"\\ud800"'])))] }),
    () => ({ label: 'a subscription with bad fields', frames: [frame(0x1, text(JSON.stringify(pick(rng, [{ type: 'subscribe', layers: [99] }, { type: 'subscribe', decode_every: 1e308 }, { type: 'subscribe', modes: ['x'] }, { type: 'unsubscribe' }, { type: 'subscribe', request_ids: [] }, { type: 'subscribe', extra: 1 }]))))] }),
  ];
  const v = pick(rng, variants)();
  return { kind: 'ws-frames', label: v.label, frames: v.frames };
}

// How often each family comes up: mostly JSON mutations, every other family well represented.
const FAMILIES: [number, (rng: Rng) => FuzzCase][] = [
  [0.5, mutatedJson],
  [0.14, badBody],
  [0.08, badRoute],
  [0.12, badProtocol],
  [0.08, badUpgrade],
  [0.08, badFrames],
];

export function fuzzCase(rng: Rng): FuzzCase {
  let r = rng();
  for (const [weight, make] of FAMILIES) {
    if (r < weight) return make(rng);
    r -= weight;
  }
  return mutatedJson(rng);
}
