// What the super weights do to live traffic: each sequence's prefill super activation and per-layer
// max |down_proj output|, split by switch plan, and sequences by switch plan. Labels stay bounded:
// only the model's known super weights (a request may probe any coordinate), layers, and the closed
// set of plan labels; a plan is labelled from what the engine applies, so untagged work (detection)
// is never counted as original traffic.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { ActivationFrame, EngineUpdate } from '../engine/protocol.js';
import { coordinateId, SWITCH_PLAN_LABELS, switchPlanLabel, type SuperWeightCoordinate, type SwitchPlanLabel } from '../model/switch-plan.js';
import { ACTIVATION_BUCKETS } from './metric-buckets.js';
import type { UpdateObserver } from './serving-metrics.js';

export interface SuperWeightMetricsShape {
  knownSuperWeights: readonly SuperWeightCoordinate[];
  numLayers: number;
}

export function superWeightMetrics(registry: Registry, shape: SuperWeightMetricsShape): UpdateObserver {
  const registers = [registry];
  const known = shape.knownSuperWeights;
  const superActivation = new Histogram({
    name: 'swserve_super_activation_abs',
    help: "|super activation| in each sequence's prefill: the down_proj output at a known super weight's row, by switch plan.",
    labelNames: ['super_weight', 'plan'],
    buckets: ACTIVATION_BUCKETS,
    registers,
  });
  const layerPeak = new Histogram({
    name: 'swserve_down_proj_output_max_abs',
    help: "Max |down_proj output| per layer in each sequence's prefill, by switch plan.",
    labelNames: ['layer', 'plan'],
    buckets: ACTIVATION_BUCKETS,
    registers,
  });
  const byPlan = new Counter({ name: 'swserve_requests_total', help: 'Sequences accepted, by switch plan.', labelNames: ['plan'], registers });

  // Series a dashboard plots from the first scrape. Per-layer peaks start at the original plan only:
  // layers x plans x buckets would be thousands of zero lines on a large model.
  for (const plan of SWITCH_PLAN_LABELS) {
    byPlan.inc({ plan }, 0);
    for (const c of known) superActivation.zero({ super_weight: coordinateId(c), plan });
  }
  for (let layer = 0; layer < shape.numLayers; layer++) layerPeak.zero({ layer: String(layer), plan: 'original' });

  const knownIds = new Set(known.map(coordinateId));
  // Sequence id -> plan label, from acceptance until its prefill frame.
  const plans = new Map<string, SwitchPlanLabel>();
  const observePrefill = (frame: ActivationFrame, plan: SwitchPlanLabel): void => {
    for (const a of frame.superActivations) {
      const id = coordinateId(a);
      if (knownIds.has(id)) superActivation.observe({ super_weight: id, plan }, Math.abs(a.value));
    }
    for (const l of frame.layers) layerPeak.observe({ layer: String(l.layer), plan }, Math.abs(l.outputMax));
  };

  return (update: EngineUpdate) => {
    for (const event of update.events) {
      if (event.type === 'accepted') {
        const plan = switchPlanLabel(event.switchPlan, known);
        byPlan.inc({ plan });
        plans.set(event.id, plan);
      } else if (event.type === 'token') {
        const plan = plans.get(event.id);
        if (plan !== undefined && event.frame?.phase === 'prefill') observePrefill(event.frame, plan);
        plans.delete(event.id);
      } else if (event.type === 'finish' || event.type === 'error') {
        plans.delete(event.id);
      }
    }
  };
}
