// A real Prometheus (Debian's `prometheus`) scraping a real swserve: mixed traffic under every switch
// plan, then every query of the Grafana dashboard evaluated through Prometheus' HTTP API. Each returns
// data, and the super activation of each plan is its own series holding the value the requests had
// (the zeroed and the SA-restored ones are never averaged into one "ablated" number).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { skipUnlessInstalled } from '../helpers/required-tool.js';
import { PLANTED, startTestServer, type TestServer } from '../helpers/test-server.js';
import { complete, connectActivations, type ActivationClient } from './activation-client.js';
import type { StepFrame } from '../../src/telemetry/stream-frames.js';

const PROMETHEUS = '/usr/bin/prometheus';
const DASHBOARD = fileURLToPath(new URL('../../../config/grafana/dashboards/swserve.json', import.meta.url));
const PLANTED_ID = `${PLANTED.layer}:${PLANTED.row}:${PLANTED.col}`;
// Scrape often so the test waits seconds, not the 5 s of config/prometheus.yml.
const SCRAPE_INTERVAL = '1s';
// Waiting for Prometheus to start and to scrape; generous for a loaded machine (it only bounds a failure).
const WAIT_MS = 60_000;
const POLL_MS = 250;
// What Grafana substitutes before a query reaches Prometheus (the heatmap's plan: the default).
const GRAFANA_VARIABLES: Record<string, string> = { $__rate_interval: '1m', $__interval: '15s', $__range: '1h', $plan: 'original' };
// Every switch plan a client can ask for, and the label it must be counted under.
const TRAFFIC: { super_weights: unknown; plan: string }[] = [
  { super_weights: 'on', plan: 'original' },
  { super_weights: 'off', plan: 'zeroed' },
  { super_weights: { scale: 0, restore_activation: true }, plan: 'zeroed_sa_restored' },
  { super_weights: { scale: 0.5 }, plan: 'scaled_down' },
  { super_weights: { scale: 0.5, restore_activation: true }, plan: 'scaled_down_sa_restored' },
  { super_weights: { scale: 2 }, plan: 'scaled_up' },
  { super_weights: { scale: 2, restore_activation: true }, plan: 'scaled_up_sa_restored' },
  { super_weights: { scale: -1 }, plan: 'scaled_negative' },
  { super_weights: { scale: -1, restore_activation: true }, plan: 'scaled_negative_sa_restored' },
  { super_weights: { scale: 0, select: ['0:3:5'] }, plan: 'custom' },
];

interface Panel {
  title: string;
  targets?: { expr: string }[];
}
interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

const skip = skipUnlessInstalled(fs.existsSync(PROMETHEUS), 'Prometheus (Debian package prometheus)');
let server: TestServer;
let prometheus: ChildProcess | undefined;
let prometheusUrl: string;
let dir: string;
// plan -> |super activation| at prefill of each sequence run under it, as the activation stream saw them.
const seen = new Map<string, number[]>();
const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / values.length;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

async function query(expr: string): Promise<Sample[]> {
  const res = await fetch(`${prometheusUrl}/api/v1/query?${new URLSearchParams({ query: expr })}`);
  const body = (await res.json()) as { status: string; error?: string; data: { resultType: string; result: Sample[] } };
  assert.equal(body.status, 'success', `${expr}: ${body.error}`);
  assert.equal(body.data.resultType, 'vector', expr);
  return body.data.result;
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

const sampleValue = (s: Sample): number => Number(s.value[1]);

before(async () => {
  if (skip) return;
  server = await startTestServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-prometheus-'));
  const target = new URL(server.url).host;
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), `global:\n  scrape_interval: ${SCRAPE_INTERVAL}\nscrape_configs:\n  - job_name: swserve\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['${target}']\n`);
  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  prometheus = spawn(PROMETHEUS, [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
  // A first scrape before any traffic: the series initialised at start give every rate its zero.
  await until('the first scrape', async () => (await query('up{job="swserve"}')).some((s) => sampleValue(s) === 1) && (await query('swserve_requests_total')).length > 0);

  const stream: ActivationClient = await connectActivations(server.url, { decode_every: '0' });
  try {
    for (const { super_weights } of TRAFFIC) await complete(server.url, { model: server.modelId, prompt: 'Summer is hot. Winter is', max_tokens: 3, temperature: 0, super_weights });
    await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: server.modelId, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 }) });
    await fetch(`${server.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: server.modelId, input: 'Hi', max_output_tokens: 2, stream: true }) }).then((r) => r.text());
    await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: server.modelId, prompt: 'x', temperature: 9 }) });
    await stream.waitFor(() => stream.frames.filter((f) => f.type === 'end').length >= TRAFFIC.length + 2, 'every request ended');
    for (const f of stream.frames) {
      if (f.type !== 'step') continue;
      const step = f as StepFrame;
      const value = step.super_activations.find((a) => a.id === PLANTED_ID)?.value;
      if (step.phase === 'prefill' && value !== undefined) seen.set(step.switch.plan, [...(seen.get(step.switch.plan) ?? []), Math.abs(value)]);
    }
  } finally {
    await stream.close();
  }
  // Scraped after the traffic: the last plan's request is counted.
  await until('a scrape after the traffic', async () => (await query('swserve_requests_total{plan="custom"}')).some((s) => sampleValue(s) >= 1) && (await query('swserve_http_requests_total{status_class="4xx"}')).some((s) => sampleValue(s) >= 1));
});

after(async () => {
  prometheus?.kill('SIGTERM');
  if (prometheus && prometheus.exitCode === null) await new Promise((r) => prometheus!.once('exit', r));
  await server?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('Prometheus scraping swserve', { skip }, () => {
  it('evaluates every dashboard query to data', async () => {
    const panels = (JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] }).panels;
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: Object.entries(GRAFANA_VARIABLES).reduce((e, [k, v]) => e.replaceAll(k, v), t.expr) })));
    assert.ok(exprs.length >= 30, `${exprs.length} queries`);
    const empty: string[] = [];
    for (const { title, expr } of exprs) {
      const result = await query(expr);
      if (!result.some((s) => Number.isFinite(sampleValue(s)))) empty.push(`${title}: ${expr}`);
    }
    assert.deepEqual(empty, []);
  });

  it('keeps each switch plan in its own super-activation series, with the values its requests had', async () => {
    assert.deepEqual([...seen.keys()].sort(), TRAFFIC.map((t) => t.plan).sort());
    const panelExpr = 'sum by (super_weight, plan) (rate(swserve_super_activation_abs_sum[1m])) / sum by (super_weight, plan) (rate(swserve_super_activation_abs_count[1m]))';
    const series = new Map((await query(panelExpr)).filter((s) => Number.isFinite(sampleValue(s))).map((s) => [s.metric.plan!, sampleValue(s)]));
    for (const { plan } of TRAFFIC) {
      // One request per plan; the original plan also served the chat and responses requests.
      assert.equal(seen.get(plan)!.length, plan === 'original' ? 3 : 1, plan);
      const expected = mean(seen.get(plan)!);
      const got = series.get(plan);
      assert.ok(got !== undefined && Math.abs(got - expected) <= 1e-6 * Math.max(1, expected), `${plan}: Prometheus ${got}, the requests ${expected}`);
    }
    // The example: zeroed and zeroed-with-SA-restored are far apart, never one average.
    assert.ok(series.get('zeroed_sa_restored')! > 10 * series.get('zeroed')!, `restored ${series.get('zeroed_sa_restored')} vs zeroed ${series.get('zeroed')}`);
    assert.equal((await query(`swserve_super_activation_abs_count{plan="ablated"}`)).length, 0);
  });
});
