// The auth matrix: every route openapi.yaml documents (which openapi-agreement.test.ts keeps equal to
// the route table) and the activation WebSocket, against a server started with an API key of digits
// through SWSERVE_API_KEY, each without a key, with a wrong one, with another scheme, and with the
// right one. Routes behind the key answer 401 invalid_api_key without it and serve with it; open
// routes serve either way.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import WebSocket from 'ws';
import type { ChildServer } from '../test/helpers/child-server.js';
import { openApiDocument } from '../test/helpers/openapi-validator.js';
import { envelopeProblem, exchange, figure, MODEL, startDemoServer } from './support.js';

// All digits: it used to be read as a number and stop the server from starting.
const API_KEY = '123456';
const CREDENTIALS: Record<string, Record<string, string>> = {
  'no key': {},
  'a wrong key': { authorization: 'Bearer 654321' },
  'a key one digit short': { authorization: 'Bearer 12345' },
  'another scheme': { authorization: `Basic ${API_KEY}` },
  'the right key': { authorization: `Bearer ${API_KEY}` },
};
// A valid, small body for each POST route; a route without one fails the test, so new routes are covered.
const BODIES: Record<string, unknown> = {
  '/v1/completions': { model: MODEL, prompt: 'The city of', max_tokens: 2 },
  '/v1/chat/completions': { model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 },
  '/v1/responses': { model: MODEL, input: 'Hi', max_output_tokens: 2 },
  '/v1/ablations/compare': { model: MODEL, prompt: 'The city of', max_tokens: 2 },
  '/v1/super_weights/detect': { model: MODEL, max_super_weights: 1 },
};

let server: ChildServer;
before(async () => {
  server = await startDemoServer([], { SWSERVE_API_KEY: API_KEY });
});
after(async () => {
  await server?.stop();
});

function documentedRoutes(): { method: string; path: string; auth: boolean }[] {
  const doc = openApiDocument() as { paths: Record<string, Record<string, { security?: unknown[]; responses?: Record<string, unknown> }>>; security?: unknown[] };
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => ['get', 'post', 'put', 'delete', 'patch'].includes(method))
      // Path parameters take the served model (the only {model} there is). A route needs the key when
      // its security says so, or when it checks the key itself (the WebSocket's probe documents a 401).
      .map(([method, op]) => ({ method: method.toUpperCase(), path: path.replace('{model}', MODEL), auth: (op.security ?? doc.security ?? []).length > 0 || '401' in (op.responses ?? {}) })),
  );
}

function wsStatus(query: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/activations${query}`, { headers });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      resolve(101);
      ws.terminate();
    });
    ws.on('error', () => {});
  });
}

it('every route and the WebSocket: 401 without the right key where the key is needed, served otherwise', async () => {
  const routes = documentedRoutes();
  const rows: string[] = [];
  const problems: string[] = [];
  for (const route of routes) {
    if (route.method === 'POST') assert.ok(route.path in BODIES, `no request body for ${route.path}: add one to BODIES`);
    const cells: string[] = [];
    for (const [who, headers] of Object.entries(CREDENTIALS)) {
      const body = route.method === 'POST' ? JSON.stringify(BODIES[route.path]) : undefined;
      const res = await exchange(server.url, { method: route.method, path: route.path, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) }, body });
      if ('error' in res) {
        problems.push(`${route.method} ${route.path} with ${who}: ${res.error}`);
        continue;
      }
      cells.push(`${who} ${res.status}`);
      const allowed = !route.auth || who === 'the right key';
      if (allowed && res.status !== 200) problems.push(`${route.method} ${route.path} with ${who}: ${res.status} ${res.body.toString().slice(0, 200)}`);
      if (!allowed) {
        const problem = res.status === 401 ? envelopeProblem(401, res.body.toString()) : `${res.status}`;
        if (problem) problems.push(`${route.method} ${route.path} with ${who}: ${problem}`);
      }
    }
    rows.push(`${route.method} ${route.path} (${route.auth ? 'key' : 'open'}): ${cells.join(', ')}`);
  }
  const wsCases: [string, string, Record<string, string>, number][] = [
    ['no key', '', {}, 401],
    ['a wrong key', '', { authorization: 'Bearer 654321' }, 401],
    ['a wrong ?api_key', '?api_key=654321', {}, 401],
    ['the right key', '', { authorization: `Bearer ${API_KEY}` }, 101],
    ['the right ?api_key', `?api_key=${API_KEY}`, {}, 101],
  ];
  const wsCells: string[] = [];
  for (const [who, query, headers, expected] of wsCases) {
    const status = await wsStatus(query, headers);
    wsCells.push(`${who} ${status}`);
    if (status !== expected) problems.push(`WebSocket with ${who}: ${status}, expected ${expected}`);
  }
  rows.push(`WebSocket /v1/activations (key): ${wsCells.join(', ')}`);
  for (const row of rows) figure('auth', row);
  figure('auth matrix', `${routes.length} routes x ${Object.keys(CREDENTIALS).length} credentials and ${wsCases.length} WebSocket cases, key ${API_KEY} from SWSERVE_API_KEY`);
  assert.deepEqual(problems, []);
});
