// What the served weights are, as metrics: bytes per precision, and the super activation the
// detection prompt gave at load in float32 and in the served precision. The alert rule in
// config/prometheus/alerts.yml compares live traffic's super activation with the float32 value, at
// the share swserve_super_activation_min_share (telemetry.superActivationMinShare).
import { Gauge, type Registry } from 'prom-client';
import type { EngineInfo } from '../engine/protocol.js';

export function precisionMetrics(registry: Registry, info: Pick<EngineInfo, 'weights' | 'superActivationReference'>, minShare: number): void {
  const registers = [registry];
  const bytes = new Gauge({ name: 'swserve_weight_bytes', help: 'Bytes of the served weights as the session holds them, by precision.', labelNames: ['precision'], registers });
  bytes.set({ precision: info.weights.precision }, info.weights.bytes);
  const reference = new Gauge({
    name: 'swserve_super_activation_reference',
    help: '|super activation| of the detection prompt at load, per known super weight, in float32 weights and in the served precision.',
    labelNames: ['super_weight', 'precision'],
    registers,
  });
  const ref = info.superActivationReference;
  for (const v of ref?.values ?? []) {
    reference.set({ super_weight: v.id, precision: 'float32' }, Math.abs(v.float32));
    if (ref!.precision !== 'float32') reference.set({ super_weight: v.id, precision: ref!.precision }, Math.abs(v.served));
  }
  const share = new Gauge({
    name: 'swserve_super_activation_min_share',
    help: 'Share of the float32 reference below which live original-traffic super activations count as collapsed (telemetry.superActivationMinShare).',
    registers,
  });
  share.set(minShare);
}
