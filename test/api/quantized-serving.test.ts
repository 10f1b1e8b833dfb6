// A server started with --weights int4: /v1/models says what it serves (precision, blocks, the
// protected super weight, bytes, the super activation reference), /metrics carries the reference in
// float32 and int4, and the switch works over HTTP on the quantized copy.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertMatchesOpenApi } from '../helpers/openapi-validator.js';
import { PLANTED, startTestServer, type TestServer } from '../helpers/test-server.js';
import { fetchMetrics } from '../telemetry/metrics-text.js';

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-qserve-'));
let server: TestServer;
let float: TestServer;

before(async () => {
  server = await startTestServer({ config: { weights: { precision: 'int4', blockSize: 32, scheme: 'symmetric', protectSuperWeights: true, quantizeLmHead: true, cacheDir } } });
  float = await startTestServer();
});
after(async () => {
  await server.close();
  await float.close();
  fs.rmSync(cacheDir, { recursive: true, force: true });
});

interface WeightsMeta {
  precision: string;
  compute: string;
  block_size: number;
  protected_super_weights: string[];
  bytes: number;
  cache: string;
  super_activation_reference: { values: { id: string; float32: number; served: number }[] };
}

async function weightsMeta(url: string): Promise<WeightsMeta> {
  const res = await fetch(`${url}/v1/models`);
  const body = (await res.json()) as { data: { meta: { weights: WeightsMeta } }[] };
  assertMatchesOpenApi('GET', '/v1/models', res.status, body);
  return body.data[0]!.meta.weights;
}

describe('serving an int4 copy', () => {
  it('describes its weights in /v1/models', async () => {
    const q = await weightsMeta(server.url);
    const f = await weightsMeta(float.url);
    assert.deepEqual([q.precision, q.compute, q.block_size, q.cache], ['int4', 'int8', 32, 'built']);
    assert.deepEqual(q.protected_super_weights, ['1:7:33']);
    assert.equal(f.precision, 'float32');
    // 4 bits and a float32 scale per 32 weights for every linear layer, lm_head included.
    assert.ok(q.bytes < 0.4 * f.bytes, `${q.bytes} vs ${f.bytes}`);
    const [qa] = q.super_activation_reference.values;
    const [fa] = f.super_activation_reference.values;
    assert.equal(qa!.id, '1:7:33');
    assert.ok(Math.abs(qa!.float32 - fa!.float32) < 1e-3, 'the float32 reference does not depend on the served precision');
    assert.ok(Math.abs(qa!.served / qa!.float32 - 1) < 0.2, `int4 ${qa!.served} vs float32 ${qa!.float32}`);
  });

  it('exports the super activation reference in both precisions', async () => {
    const { families } = await fetchMetrics(server.url);
    const reference = families.get('swserve_super_activation_reference')!;
    const byPrecision = new Map(reference.samples.map((s) => [s.labels.precision, s]));
    assert.deepEqual([...byPrecision.keys()].sort(), ['float32', 'int4']);
    for (const s of reference.samples) assert.equal(s.labels.super_weight, `${PLANTED.layer}:${PLANTED.row}:${PLANTED.col}`);
    assert.equal(families.get('swserve_super_activation_min_share')!.samples[0]!.value, 0.5);
    assert.ok(families.get('swserve_weight_bytes')!.samples.some((s) => s.labels.precision === 'int4'));
  });

  it('switches the protected super weight over HTTP', async () => {
    const complete = async (superWeights: unknown): Promise<{ choices: { text: string; logprobs: { token_logprobs: number[] } }[] }> => {
      const res = await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny', prompt: 'Summer is hot. Winter is', max_tokens: 6, temperature: 0, logprobs: 0, super_weights: superWeights }),
      });
      assert.equal(res.status, 200);
      return (await res.json()) as never;
    };
    const on = await complete('on');
    const off = await complete('off');
    assert.notDeepEqual(on.choices[0]!.logprobs.token_logprobs, off.choices[0]!.logprobs.token_logprobs);
  });
});
