// GET /metrics from a real swserve after on/off/scaled traffic: parsed as Prometheus text, the
// vLLM-named serving metrics with vLLM's buckets, super-weight metrics by switch mode, bounded labels,
// process defaults, and `promtool check metrics` where promtool is installed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { TTFT_BUCKETS } from '../../src/telemetry/metric-buckets.js';
import { missingTool } from '../helpers/required-tool.js';
import { PLANTED, startTestServer, type TestServer } from '../helpers/test-server.js';
import { complete } from './activation-client.js';
import { fetchMetrics, parsePrometheusText, type Family, type MetricType } from './metrics-text.js';

const PLANTED_ID = `${PLANTED.layer}:${PLANTED.row}:${PLANTED.col}`;
const SWITCHES: { setting: unknown; mode: string }[] = [
  { setting: 'on', mode: 'original' },
  { setting: 'off', mode: 'ablated' },
  { setting: { scale: 2 }, mode: 'scaled' },
];
// Labels the exposition may carry: bounded sets only, never a request id.
const ALLOWED_LABELS = new Set(['finished_reason', 'kind', 'phase', 'mode', 'layer', 'super_weight', 'le']);

let server: TestServer;
let families: Map<string, Family>;
let text: string;
let contentType: string;
let promptTokens = 0;
let completionTokens = 0;
let sequences = 0;

before(async () => {
  server = await startTestServer();
  for (const { setting } of SWITCHES) {
    const r = await complete(server.url, { model: server.modelId, prompt: 'Winter is', max_tokens: 4, n: 2, super_weights: setting });
    const usage = r.usage as { prompt_tokens: number; completion_tokens: number };
    // Each of the n choices prefills its own copy of the prompt, and the counter counts prefilled tokens.
    promptTokens += 2 * usage.prompt_tokens;
    completionTokens += usage.completion_tokens;
    sequences += 2;
  }
  ({ families, text, contentType } = await fetchMetrics(server.url));
});
after(async () => server?.close());

function family(name: string, type: MetricType): Family {
  const f = families.get(name);
  assert.ok(f, `${name} is exported`);
  assert.equal(f.type, type, `${name} type`);
  return f;
}

/** The one sample of `series` (e.g. x_sum) in family `name` with these labels. */
function value(name: string, series: string, labels: Record<string, string> = {}): number {
  const matches = families.get(name)?.samples.filter((s) => s.name === series && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) ?? [];
  assert.equal(matches.length, 1, `${series} ${JSON.stringify(labels)}`);
  return matches[0]!.value;
}

const counter = (name: string, labels: Record<string, string> = {}): number => value(name, name, labels);

describe('GET /metrics', () => {
  it('is Prometheus text', () => {
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);
    assert.ok(families.size > 20);
    assert.throws(() => parsePrometheusText('swserve_undeclared 1\n'), /undeclared/);
  });

  it('has the vLLM-named serving metrics with LLM-sized buckets', () => {
    family('swserve_num_requests_running', 'gauge');
    family('swserve_num_requests_waiting', 'gauge');
    for (const name of ['swserve_inter_token_latency_seconds', 'swserve_e2e_request_latency_seconds', 'swserve_request_decode_time_seconds', 'swserve_request_prompt_tokens', 'swserve_request_generation_tokens']) {
      family(name, 'histogram');
    }
    const ttft = family('swserve_time_to_first_token_seconds', 'histogram');
    assert.deepEqual(ttft.samples.filter((s) => s.name.endsWith('_bucket')).map((s) => Number(s.labels.le === '+Inf' ? Infinity : s.labels.le)), [...TTFT_BUCKETS, Infinity]);
    assert.equal(value(ttft.name, `${ttft.name}_count`), sequences);
    assert.equal(counter('swserve_prompt_tokens_total'), promptTokens);
    assert.equal(counter('swserve_generation_tokens_total'), completionTokens);
    assert.equal(counter('swserve_request_success_total', { finished_reason: 'length' }), sequences);
    assert.equal(counter('swserve_num_requests_running'), 0);
    const batch = family('swserve_engine_batch_size', 'histogram');
    assert.deepEqual(new Set(batch.samples.map((s) => s.labels.phase)), new Set(['prefill', 'decode']));
    family('swserve_engine_step_duration_seconds', 'histogram');
  });

  it('has the super-weight metrics split by switch mode', () => {
    const sa = family('swserve_super_activation_abs', 'histogram');
    assert.deepEqual(new Set(sa.samples.map((s) => `${s.labels.super_weight} ${s.labels.mode}`)), new Set(SWITCHES.map((s) => `${PLANTED_ID} ${s.mode}`)));
    const sum = (mode: string): number => value(sa.name, `${sa.name}_sum`, { mode });
    assert.ok(sum('original') > 10 * sum('ablated'), `original ${sum('original')} vs ablated ${sum('ablated')}`);
    assert.ok(Math.abs(sum('scaled') - 2 * sum('original')) < 0.5 * sum('original'), 'scale 2 roughly doubles the super activation');
    const layers = family('swserve_down_proj_output_max_abs', 'histogram');
    assert.equal(layers.samples.filter((s) => s.name.endsWith('_count')).length, 3 * SWITCHES.length, 'one histogram per layer and mode');
    for (const { mode } of SWITCHES) assert.equal(counter('swserve_requests_total', { mode }), 2);
    family('swserve_websocket_clients', 'gauge');
    family('swserve_websocket_frames_dropped_total', 'counter');
  });

  it('has the process defaults, and swserve metrics carry only bounded labels', () => {
    family('nodejs_eventloop_lag_seconds', 'gauge');
    family('process_resident_memory_bytes', 'gauge');
    family('nodejs_heap_size_used_bytes', 'gauge');
    for (const f of families.values()) {
      if (!f.name.startsWith('swserve_')) continue;
      for (const s of f.samples) for (const label of Object.keys(s.labels)) assert.ok(ALLOWED_LABELS.has(label), `${f.name} has label ${label}`);
    }
  });

  it('passes promtool check metrics', (t) => {
    const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if ((run.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return t.skip(missingTool('promtool (Debian package prometheus)'));
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
  });
});
