// GET /v1/super_weights and POST /v1/super_weights/detect on a real server over loopback, and
// detection on load for a model no file or registry entry knows.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PLANTED, startTestServer, type TestServer } from '../helpers/test-server.js';
import { loadCheckpointWeights } from '../helpers/tiny-checkpoint.js';

const PLANTED_ID = `${PLANTED.layer}:${PLANTED.row}:${PLANTED.col}`;

let server: TestServer;
let detecting: TestServer;

before(async () => {
  // The second server's super_weights.json lists nothing, so it must detect on load.
  [server, detecting] = await Promise.all([startTestServer(), startTestServer({ superWeights: [], config: { detectOnLoad: true } })]);
});
after(async () => {
  await Promise.all([server?.close(), detecting?.close()]);
});

async function call(s: TestServer, method: string, route: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${s.url}${route}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('GET /v1/super_weights', () => {
  it('lists the model file\'s super weights with their source and value', async () => {
    const { status, json } = await call(server, 'GET', '/v1/super_weights');
    assert.equal(status, 200);
    assert.equal(json.origin, 'model-file');
    const [sw] = json.data as { id: string; original_value: number; source: string }[];
    assert.equal(sw!.id, PLANTED_ID);
    assert.match(sw!.source, /super_weights\.json$/);
    // The value as the test's own safetensors reader finds it in the file on disk.
    const down = loadCheckpointWeights(server.checkpoint.dir).get(`model.layers.${PLANTED.layer}.mlp.down_proj.weight`)!;
    assert.equal(sw!.original_value, down.data[PLANTED.row * down.shape[1]! + PLANTED.col]);
    assert.ok(Math.abs(sw!.original_value) > 1, 'the planted weight, not an ordinary one');
  });

  it('says the detected ones came from detection on load, and the engine uses them', async () => {
    const { json } = await call(detecting, 'GET', '/v1/super_weights');
    assert.equal(json.origin, 'detected');
    const data = json.data as { id: string; source: string }[];
    assert.deepEqual(data.map((d) => d.id), [PLANTED_ID]);
    assert.match(data[0]!.source, /^detected on load \(prompt "Apple Inc\./);
    assert.deepEqual(detecting.engine.info.knownSuperWeights.map((c) => `${c.layer}:${c.row}:${c.col}`), [PLANTED_ID]);
    // "off" needs known super weights: it works now.
    const off = await call(detecting, 'POST', '/v1/completions', { model: detecting.modelId, prompt: 'Winter is', max_tokens: 2, super_weights: 'off' });
    assert.equal(off.status, 200);
  });
});

describe('POST /v1/super_weights/detect', () => {
  it('finds the planted super weight, with the chart on request', async () => {
    const { status, json } = await call(server, 'POST', '/v1/super_weights/detect', { model: server.modelId, prompt: ['Winter is', 'Summer is hot.'], chart: true });
    assert.equal(status, 200);
    assert.equal(json.object, 'super_weights.detection');
    assert.deepEqual((json.super_weights as { id: string }[]).map((s) => s.id), [PLANTED_ID]);
    assert.equal(json.stop, 'no-spike');
    assert.match(json.chart_svg as string, /^<svg /);
  });

  it('refuses bad fields by name and an unknown model', async () => {
    const bad = await call(server, 'POST', '/v1/super_weights/detect', { model: server.modelId, spike_ratio: -1 });
    assert.equal(bad.status, 400);
    assert.equal((bad.json.error as { param: string }).param, 'spike_ratio');
    const unknown = await call(server, 'POST', '/v1/super_weights/detect', { model: 'nope' });
    assert.equal(unknown.status, 404);
  });
});
