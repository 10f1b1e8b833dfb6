// deploy/kubernetes without a cluster: both kustomizations rendered here (resources, labels, images and
// JSON 6902 patches: the kustomize features they use), every object validated against the Kubernetes
// schemas (kubernetes-models; the Prometheus operator's CRD schemas for the PodMonitor), and the wiring
// between them checked: probes, ports, selectors, the cache volume, the Secret, the autoscaler's metric.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parser as promqlParser } from '@prometheus-io/lezer-promql';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Service } from 'kubernetes-models/v1/Service';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseCommandLine } from '../../src/cli/command-line.js';
import { serveCommand } from '../../src/cli/serve-command.js';
import { readDefaultConfig } from '../../src/config/server-config.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const KUBE = path.join(ROOT, 'deploy', 'kubernetes');
const HPA_METRIC = 'swserve_num_requests_waiting';
const DEFAULTS = readDefaultConfig() as { port: number; shutdownGraceSeconds: number };

type Obj = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; spec: any };

interface Kustomization {
  resources: string[];
  labels?: { pairs: Record<string, string>; includeSelectors?: boolean }[];
  images?: { name: string; newName?: string; newTag?: string }[];
  patches?: { target: { kind: string; name: string }; patch: string }[];
}

/** Renders a kustomization folder the way `kubectl kustomize` does for the features used here. */
function render(dir: string): Obj[] {
  const k = parseYaml(fs.readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization;
  let objects: Obj[] = k.resources.flatMap((r) => {
    const full = path.join(dir, r);
    if (fs.statSync(full).isDirectory()) return render(full);
    return parseAllDocuments(fs.readFileSync(full, 'utf8')).map((d) => d.toJSON() as Obj);
  });
  for (const { pairs } of k.labels ?? []) for (const o of objects) o.metadata.labels = { ...o.metadata.labels, ...pairs };
  for (const image of k.images ?? []) {
    for (const c of objects.flatMap((o) => o.spec?.template?.spec?.containers ?? [])) {
      const [name] = c.image.split(':');
      if (name === image.name) c.image = `${image.newName ?? name}:${image.newTag}`;
    }
  }
  for (const { target, patch } of k.patches ?? []) {
    const matching = objects.filter((o) => o.kind === target.kind && o.metadata.name === target.name);
    assert.equal(matching.length, 1, `patch target ${target.kind}/${target.name}`);
    objects = objects.map((o) => (matching.includes(o) ? applyJsonPatch(o, parseYaml(patch) as JsonPatchOp[]) : o));
  }
  return objects;
}

type JsonPatchOp = { op: 'add' | 'replace'; path: string; value: unknown };

function applyJsonPatch<T>(doc: T, ops: JsonPatchOp[]): T {
  const copy = structuredClone(doc) as Record<string, unknown>;
  for (const { op, path: pointer, value } of ops) {
    const keys = pointer.split('/').slice(1).map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = keys.pop()!;
    const parent = keys.reduce<any>((node, key) => node?.[key], copy);
    assert.ok(parent !== undefined, `${op} ${pointer}: no parent`);
    if (op === 'replace') assert.ok(last in parent, `replace ${pointer}: nothing there`);
    if (Array.isArray(parent) && last === '-') parent.push(value);
    else parent[last] = value;
  }
  return copy as T;
}

const VALIDATORS: Record<string, (o: Obj) => { validate(): void }> = {
  Deployment: (o) => new Deployment(o as never),
  Service: (o) => new Service(o as never),
  PersistentVolumeClaim: (o) => new PersistentVolumeClaim(o as never),
  HorizontalPodAutoscaler: (o) => new HorizontalPodAutoscaler(o as never),
  PodMonitor: (o) => new PodMonitor(o as never),
};

const one = (objects: Obj[], kind: string): Obj => {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, kind);
  return found[0]!;
};

for (const variant of ['base', 'gpu']) {
  describe(`deploy/kubernetes/${variant}`, () => {
    const objects = render(path.join(KUBE, variant));
    const deployment = one(objects, 'Deployment');
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];

    it('is valid against the Kubernetes schemas (and the Prometheus operator CRD for the PodMonitor)', () => {
      assert.deepEqual(objects.map((o) => o.kind).sort(), ['Deployment', 'HorizontalPodAutoscaler', 'PersistentVolumeClaim', 'PodMonitor', 'Service']);
      for (const o of objects) VALIDATORS[o.kind]!(o).validate();
    });

    it('gets readiness from /ready, liveness from /health, and time to load first', () => {
      const http = container.ports.find((p: { name: string }) => p.name === 'http');
      assert.equal(http.containerPort, DEFAULTS.port);
      assert.equal(container.readinessProbe.httpGet.path, '/ready');
      assert.equal(container.livenessProbe.httpGet.path, '/health');
      assert.equal(container.startupProbe.httpGet.path, '/health');
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) assert.equal(container[probe].httpGet.port, 'http');
      assert.ok(pod.terminationGracePeriodSeconds > DEFAULTS.shutdownGraceSeconds, 'SIGKILL only after the drain');
    });

    it('runs swserve serve with flags it accepts, as the image user, with the hub cache on the claim', () => {
      const [command, ...flags] = container.args;
      assert.equal(command, 'serve');
      assert.ok(parseCommandLine(serveCommand(), flags));
      assert.equal(pod.securityContext.runAsUser, 1000);
      assert.ok(pod.securityContext.runAsNonRoot);
      const claim = pod.volumes.find((v: { persistentVolumeClaim?: unknown }) => v.persistentVolumeClaim);
      assert.equal(claim.persistentVolumeClaim.claimName, one(objects, 'PersistentVolumeClaim').metadata.name);
      // HF_HOME in the image (Dockerfile) is where the claim is mounted.
      const hfHome = /HF_HOME=(\S+)/.exec(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))![1];
      assert.equal(container.volumeMounts.find((m: { name: string }) => m.name === claim.name).mountPath, hfHome);
    });

    it('takes the API key from the Secret the README tells you to create', () => {
      const key = container.env.find((e: { name: string }) => e.name === 'SWSERVE_API_KEY').valueFrom.secretKeyRef;
      const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
      assert.ok(readme.includes(`kubectl create secret generic ${key.name} --from-literal=${key.key}=`), `${key.name}/${key.key}`);
    });

    it('is reached by its Service and scraped by its PodMonitor', () => {
      const labels = pod.metadata?.labels ?? deployment.spec.template.metadata.labels;
      const matches = (selector: Record<string, string>): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);
      const service = one(objects, 'Service');
      assert.ok(matches(service.spec.selector));
      assert.equal(service.spec.ports[0].targetPort, 'http');
      const monitor = one(objects, 'PodMonitor');
      assert.ok(matches(monitor.spec.selector.matchLabels));
      assert.deepEqual(monitor.spec.podMetricsEndpoints.map((e: { port: string; path: string }) => [e.port, e.path]), [['http', '/metrics']]);
      assert.ok(matches(deployment.spec.selector.matchLabels));
    });

    it("scales the Deployment on the queue depth prometheus-adapter serves", () => {
      const hpa = one(objects, 'HorizontalPodAutoscaler');
      assert.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name);
      assert.equal(hpa.spec.metrics[0].pods.metric.name, HPA_METRIC);
      const values = parseYaml(fs.readFileSync(path.join(KUBE, 'prometheus-adapter', 'values.yaml'), 'utf8')) as {
        rules: { custom: { seriesQuery: string; name: { as: string }; metricsQuery: string; resources: { overrides: Record<string, { resource: string }> } }[] };
      };
      const rule = values.rules.custom.find((r) => r.name.as === HPA_METRIC)!;
      assert.ok(rule, 'an adapter rule exposes the metric');
      assert.ok(rule.seriesQuery.startsWith(`${HPA_METRIC}{`));
      assert.equal(rule.resources.overrides.pod!.resource, 'pod');
      // The adapter's template, filled as it fills it, is PromQL Prometheus accepts.
      const query = rule.metricsQuery.replace('<<.Series>>', HPA_METRIC).replace('<<.LabelMatchers>>', 'namespace="default",pod=~"swserve-.*"').replace('<<.GroupBy>>', 'pod');
      promqlParser.parse(query).iterate({
        enter(node) {
          assert.ok(!node.type.isError, `PromQL syntax error at ${node.from} in ${query}`);
        },
      });
      // ... and a metric swserve exports.
      assert.match(fs.readFileSync(path.join(ROOT, 'src', 'telemetry', 'serving-metrics.ts'), 'utf8'), new RegExp(`name: '${HPA_METRIC}'`));
    });
  });
}

describe('the GPU variant', () => {
  it('requests a GPU, uses the cuda image, runs --device cuda and tolerates the GPU taint', () => {
    const container = one(render(path.join(KUBE, 'gpu')), 'Deployment').spec.template.spec;
    assert.equal(container.containers[0].resources.limits['nvidia.com/gpu'], 1);
    assert.equal(container.containers[0].image, 'swserve:cuda');
    assert.deepEqual(container.containers[0].args.slice(-2), ['--device', 'cuda']);
    assert.ok(container.tolerations.some((t: { key: string }) => t.key === 'nvidia.com/gpu'));
    assert.match(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'), /AS cuda$/m);
  });
});
