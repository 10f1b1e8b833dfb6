// GET /metrics from a real swserve after on/off/scaled traffic: parsed as Prometheus text, the
// vLLM-named serving metrics with vLLM's buckets, super-weight metrics by switch plan, HTTP answers
// by route and status class, series that exist before any traffic, bounded labels, process defaults
// (event-loop lag finer than 10 ms), and `promtool check metrics` where promtool is installed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { SWITCH_PLAN_LABELS } from '../../src/model/switch-plan.js';
import { TTFT_BUCKETS } from '../../src/telemetry/metric-buckets.js';
import { missingTool } from '../helpers/required-tool.js';
import { PLANTED, startTestServer, type TestServer } from '../helpers/test-server.js';
import { complete } from './activation-client.js';
import { fetchMetrics, parsePrometheusText, type Family, type MetricType } from './metrics-text.js';

const PLANTED_ID = `${PLANTED.layer}:${PLANTED.row}:${PLANTED.col}`;
const SWITCHES: { setting: unknown; plan: string }[] = [
  { setting: 'on', plan: 'original' },
  { setting: 'off', plan: 'zeroed' },
  { setting: { scale: 0, restore_activation: true }, plan: 'zeroed_sa_restored' },
  { setting: { scale: 0.5 }, plan: 'scaled_down' },
  { setting: { scale: 2 }, plan: 'scaled_up' },
];
// Labels the exposition may carry: bounded sets only, never a request id or a client's path
// (precision: the four --weights values).
const ALLOWED_LABELS = new Set(['finished_reason', 'kind', 'phase', 'plan', 'layer', 'super_weight', 'precision', 'le', 'route', 'method', 'status_class']);
// prom-client's default event-loop sampling resolution, which swserve refines.
const DEFAULT_EVENT_LOOP_RESOLUTION_SECONDS = 0.01;

let server: TestServer;
let families: Map<string, Family>;
let text: string;
let contentType: string;
let promptTokens = 0;
let completionTokens = 0;
let sequences = 0;
let fresh: Map<string, Family>;

before(async () => {
  server = await startTestServer();
  fresh = (await fetchMetrics(server.url)).families;
  for (const { setting } of SWITCHES) {
    const r = await complete(server.url, { model: server.modelId, prompt: 'Winter is', max_tokens: 4, n: 2, ignore_eos: true, super_weights: setting });
    const usage = r.usage as { prompt_tokens: number; completion_tokens: number };
    // Each of the n choices prefills its own copy of the prompt, and the counter counts prefilled tokens.
    promptTokens += 2 * usage.prompt_tokens;
    completionTokens += usage.completion_tokens;
    sequences += 2;
  }
  // One refused request and one unknown path, for the HTTP answers by status class.
  await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: server.modelId, prompt: 'x', temperature: 9 }) });
  await fetch(`${server.url}/no/such/path`);
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

  it('has the super-weight metrics split by switch plan, never averaging two plans', () => {
    const sa = family('swserve_super_activation_abs', 'histogram');
    assert.deepEqual(new Set(sa.samples.map((s) => `${s.labels.super_weight} ${s.labels.plan}`)), new Set(SWITCH_PLAN_LABELS.map((plan) => `${PLANTED_ID} ${plan}`)));
    const count = (plan: string): number => value(sa.name, `${sa.name}_count`, { plan });
    const mean = (plan: string): number => value(sa.name, `${sa.name}_sum`, { plan }) / count(plan);
    for (const plan of SWITCH_PLAN_LABELS) assert.equal(count(plan), SWITCHES.some((s) => s.plan === plan) ? 2 : 0, plan);
    assert.ok(mean('original') > 10 * mean('zeroed'), `original ${mean('original')} vs zeroed ${mean('zeroed')}`);
    // Restoring the super activation gives back the original value: its own series, not zeroed's.
    assert.ok(Math.abs(mean('zeroed_sa_restored') - mean('original')) < 1e-3 * mean('original'), `restored ${mean('zeroed_sa_restored')} vs original ${mean('original')}`);
    assert.ok(mean('scaled_down') < mean('original') && mean('original') < mean('scaled_up'), 'x0.5 and x2 apart');
    const layers = family('swserve_down_proj_output_max_abs', 'histogram');
    assert.equal(layers.samples.filter((s) => s.name.endsWith('_count')).length, 3 * SWITCHES.length, 'one histogram per layer and plan seen');
    for (const plan of SWITCH_PLAN_LABELS) assert.equal(counter('swserve_requests_total', { plan }), SWITCHES.some((s) => s.plan === plan) ? 2 : 0, plan);
    family('swserve_websocket_clients', 'gauge');
    family('swserve_websocket_frames_dropped_total', 'counter');
  });

  it('counts HTTP answers by route, method and status class', () => {
    const http = (route: string, method: string, status_class: string): number => counter('swserve_http_requests_total', { route, method, status_class });
    assert.equal(http('/v1/completions', 'POST', '2xx'), SWITCHES.length);
    assert.equal(http('/v1/completions', 'POST', '4xx'), 1);
    assert.equal(http('unmatched', 'GET', '4xx'), 1);
    assert.equal(http('/v1/chat/completions', 'POST', '5xx'), 0);
  });

  it('has the series a dashboard plots before the first request', () => {
    const has = (name: string, labels: Record<string, string>): boolean => fresh.get(name)?.samples.some((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v)) ?? false;
    for (const plan of SWITCH_PLAN_LABELS) {
      assert.ok(has('swserve_requests_total', { plan }), `requests_total{plan=${plan}}`);
      assert.ok(has('swserve_super_activation_abs', { super_weight: PLANTED_ID, plan }), `super_activation_abs{plan=${plan}}`);
    }
    for (const layer of ['0', '1', '2']) assert.ok(has('swserve_down_proj_output_max_abs', { layer, plan: 'original' }));
    for (const finished_reason of ['stop', 'length', 'abort']) assert.ok(has('swserve_request_success_total', { finished_reason }));
    for (const kind of ['invalid_request', 'context_length_exceeded', 'engine_failure']) assert.ok(has('swserve_request_failure_total', { kind }));
    for (const phase of ['prefill', 'decode']) assert.ok(has('swserve_engine_step_duration_seconds', { phase }));
    for (const status_class of ['2xx', '4xx', '5xx']) assert.ok(has('swserve_http_requests_total', { route: '/v1/completions', method: 'POST', status_class }));
  });

  it('has the process defaults, and swserve metrics carry only bounded labels', () => {
    family('nodejs_eventloop_lag_seconds', 'gauge');
    // Delays are sampled at the monitor's resolution, so the smallest one seen is never below it.
    const lagMin = counter('nodejs_eventloop_lag_min_seconds');
    assert.ok(lagMin > 0 && lagMin < DEFAULT_EVENT_LOOP_RESOLUTION_SECONDS, `min event-loop lag ${lagMin} s`);
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
