// config/: the Grafana dashboard is well-formed dashboard JSON whose every PromQL query parses and
// names only metrics a running swserve exports; prometheus.yml scrapes swserve; the compose file wires
// the three services and the provisioning together.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parser } from '@prometheus-io/lezer-promql';
import { parse as parseYaml } from 'yaml';
import { missingTool } from '../helpers/required-tool.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { complete } from './activation-client.js';
import { fetchMetrics, storedSeriesNames } from './metrics-text.js';

const CONFIG_DIR = fileURLToPath(new URL('../../../config/', import.meta.url));
const DASHBOARD_FILE = path.join(CONFIG_DIR, 'grafana/dashboards/swserve.json');
// Grafana 9.x wrote 36-37; 10.x and 11.x write 38-39. Older schemas predate the heatmap panel used here.
const MIN_SCHEMA_VERSION = 36;
const GRID_COLUMNS = 24;
const PANEL_TYPES = new Set(['row', 'timeseries', 'heatmap', 'stat', 'gauge', 'bargauge', 'piechart', 'table', 'text']);
// What Grafana substitutes before a query reaches Prometheus.
const GRAFANA_VARIABLES: Record<string, string> = { $__rate_interval: '1m', $__interval: '15s', $__range: '1h', $plan: 'original' };

interface Target {
  refId: string;
  expr: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string; current?: { value: string } }[] };
}

const dashboard = JSON.parse(fs.readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
const queryPanels = dashboard.panels.filter((p) => p.type !== 'row');

let server: TestServer;
before(async () => {
  server = await startTestServer();
  for (const super_weights of ['on', 'off']) await complete(server.url, { model: server.modelId, prompt: 'Winter is', max_tokens: 2, super_weights });
});
after(async () => server?.close());

function substitute(expr: string): string {
  return Object.entries(GRAFANA_VARIABLES).reduce((e, [name, value]) => e.replaceAll(name, value), expr);
}

/** Metric names a PromQL expression selects; throws where the grammar does not parse it. */
function selectedMetrics(expr: string): string[] {
  const tree = parser.parse(expr);
  const names: string[] = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError) throw new Error(`PromQL syntax error at ${node.from} in ${expr}`);
      if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') names.push(expr.slice(node.from, node.to));
    },
  });
  return names;
}

describe('Grafana dashboard', () => {
  it('is dashboard JSON Grafana loads: schema version, unique ids, a 24-column grid without overlaps', () => {
    assert.equal(typeof dashboard.uid, 'string');
    assert.equal(typeof dashboard.title, 'string');
    assert.ok(Number.isInteger(dashboard.schemaVersion) && dashboard.schemaVersion >= MIN_SCHEMA_VERSION, `schemaVersion ${dashboard.schemaVersion}`);
    assert.equal(new Set(dashboard.panels.map((p) => p.id)).size, dashboard.panels.length, 'panel ids are unique');
    for (const p of dashboard.panels) {
      assert.ok(PANEL_TYPES.has(p.type), `${p.title}: panel type ${p.type}`);
      const { x, y, w, h } = p.gridPos;
      assert.ok([x, y, w, h].every(Number.isInteger) && x >= 0 && w > 0 && h > 0 && x + w <= GRID_COLUMNS, `${p.title}: gridPos ${JSON.stringify(p.gridPos)}`);
    }
    for (const [i, a] of dashboard.panels.entries()) {
      for (const b of dashboard.panels.slice(i + 1)) {
        const overlap = a.gridPos.x < b.gridPos.x + b.gridPos.w && b.gridPos.x < a.gridPos.x + a.gridPos.w && a.gridPos.y < b.gridPos.y + b.gridPos.h && b.gridPos.y < a.gridPos.y + a.gridPos.h;
        assert.ok(!overlap, `${a.title} overlaps ${b.title}`);
      }
    }
    for (const p of queryPanels) {
      assert.equal(p.datasource?.type, 'prometheus', `${p.title}: datasource`);
      assert.ok(p.targets && p.targets.length > 0, `${p.title}: has queries`);
      assert.equal(new Set(p.targets.map((t) => t.refId)).size, p.targets.length, `${p.title}: refIds are unique`);
    }
    const variables = new Set(dashboard.templating.list.map((v) => v.name));
    for (const t of queryPanels.flatMap((p) => p.targets!)) {
      for (const [, name] of t.expr.matchAll(/\$(?!__)(\w+)/g)) assert.ok(variables.has(name!), `$${name} is not a dashboard variable`);
    }
  });

  it('queries only metrics that swserve exports, in PromQL that parses', async () => {
    const exported = storedSeriesNames((await fetchMetrics(server.url)).families);
    for (const p of queryPanels) {
      for (const t of p.targets!) {
        const names = selectedMetrics(substitute(t.expr));
        assert.ok(names.length > 0, `${p.title}: ${t.expr} selects no metric`);
        for (const name of names) assert.ok(exported.has(name), `${p.title}: ${name} is not in /metrics`);
      }
    }
  });

  it('has the panels the issue asks for', () => {
    const panelUsing = (type: string | null, pattern: RegExp): Panel | undefined => queryPanels.find((p) => (type === null || p.type === type) && p.targets!.some((t) => pattern.test(t.expr)));
    const wanted: [string, string | null, RegExp][] = [
      ['requests per second', null, /rate\(swserve_requests_total/],
      ['tokens per second', null, /rate\(swserve_generation_tokens_total/],
      ['TTFT quantiles', null, /histogram_quantile\(0\.9, .*swserve_time_to_first_token_seconds_bucket/],
      ['inter-token latency quantiles', null, /histogram_quantile\(0\.9, .*swserve_inter_token_latency_seconds_bucket/],
      ['queue depth', null, /swserve_num_requests_waiting/],
      ['batch size', null, /swserve_engine_batch_size/],
      ['super activation by switch plan', 'timeseries', /by \(super_weight, plan\) \(rate\(swserve_super_activation_abs_sum/],
      ['per-layer heatmap', 'heatmap', /by \(layer\) .*swserve_down_proj_output_max_abs/],
      ['traffic share by switch plan', null, /sum by \(plan\) \(rate\(swserve_requests_total.*\/ ignoring \(plan\)/],
      ['HTTP answers by route and status class', null, /sum by \(route, status_class\) \(rate\(swserve_http_requests_total/],
    ];
    for (const [what, type, pattern] of wanted) assert.ok(panelUsing(type, pattern), `no panel for ${what}`);
  });
});

describe('Prometheus and compose files', () => {
  const compose = parseYaml(fs.readFileSync(path.join(CONFIG_DIR, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, { volumes?: string[]; command?: string[]; ports?: string[]; environment?: Record<string, string> }>;
  };
  const prometheus = parseYaml(fs.readFileSync(path.join(CONFIG_DIR, 'prometheus.yml'), 'utf8')) as {
    global: { scrape_interval: string };
    scrape_configs: { job_name: string; metrics_path: string; static_configs: { targets: string[] }[] }[];
  };
  /** Bind mounts of a service: host path (resolved from config/) to container path. */
  const mounts = (service: string): Map<string, string> =>
    new Map((compose.services[service]!.volumes ?? []).map((v) => v.split(':')).map(([host, container]) => [container!, path.resolve(CONFIG_DIR, host!)]));

  it('prometheus.yml scrapes swserve /metrics every 5 s', (t) => {
    const job = prometheus.scrape_configs.find((j) => j.job_name === 'swserve');
    assert.ok(job);
    assert.equal(job.metrics_path, '/metrics');
    assert.deepEqual(job.static_configs[0]!.targets, ['swserve:8000']);
    assert.equal(prometheus.global.scrape_interval, '5s');
    const run = spawnSync('promtool', ['check', 'config', path.join(CONFIG_DIR, 'prometheus.yml')], { encoding: 'utf8' });
    if ((run.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return t.skip(missingTool('promtool (Debian package prometheus)'));
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
  });

  it('compose starts swserve, Prometheus and Grafana with the dashboard provisioned', () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ['grafana', 'prometheus', 'swserve']);
    assert.ok(compose.services.swserve!.ports!.includes('8000:8000'));
    for (const service of ['prometheus', 'grafana']) for (const host of mounts(service).values()) assert.ok(fs.existsSync(host), `${service} mounts missing ${host}`);
    const promConfig = compose.services.prometheus!.command!.find((a) => a.startsWith('--config.file='))!.split('=')[1]!;
    assert.equal(mounts('prometheus').get(promConfig), path.join(CONFIG_DIR, 'prometheus.yml'));
    const grafana = mounts('grafana');
    const provisioning = grafana.get('/etc/grafana/provisioning')!;
    const provider = parseYaml(fs.readFileSync(path.join(provisioning, 'dashboards/swserve.yml'), 'utf8')) as { providers: { options: { path: string } }[] };
    const dashboardsDir = grafana.get(provider.providers[0]!.options.path);
    assert.equal(dashboardsDir && path.join(dashboardsDir, 'swserve.json'), DASHBOARD_FILE, 'the provider loads the dashboard folder');
    const home = compose.services.grafana!.environment!.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH!;
    assert.equal(path.join(grafana.get(path.dirname(home))!, path.basename(home)), DASHBOARD_FILE);
    const datasources = parseYaml(fs.readFileSync(path.join(provisioning, 'datasources/prometheus.yml'), 'utf8')) as { datasources: { uid: string; url: string }[] };
    const dsVariable = dashboard.templating.list.find((v) => v.type === 'datasource')!;
    assert.equal(datasources.datasources[0]!.uid, dsVariable.current!.value, "the dashboard's default datasource is the provisioned one");
    assert.equal(datasources.datasources[0]!.url, 'http://prometheus:9090');
  });
});
