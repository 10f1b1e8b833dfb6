// What the super weights do to live traffic: each sequence's prefill super activation and per-layer
// max |down_proj output|, split by switch mode, and sequences by switch mode. Labels stay bounded:
// only the model's known super weights (a request may probe any coordinate), layers, modes.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { ActivationFrame, EngineUpdate } from '../engine/protocol.js';
import { coordinateId, type SuperWeightCoordinate } from '../model/switch-plan.js';
import { ACTIVATION_BUCKETS } from './metric-buckets.js';
import type { UpdateObserver } from './serving-metrics.js';
import { SWITCH_MODES } from './subscription.js';

export function superWeightMetrics(registry: Registry, known: readonly SuperWeightCoordinate[]): UpdateObserver {
  const registers = [registry];
  const superActivation = new Histogram({
    name: 'swserve_super_activation_abs',
    help: "|super activation| in each sequence's prefill: the down_proj output at a known super weight's row, by switch mode.",
    labelNames: ['super_weight', 'mode'],
    buckets: ACTIVATION_BUCKETS,
    registers,
  });
  const layerPeak = new Histogram({
    name: 'swserve_down_proj_output_max_abs',
    help: "Max |down_proj output| per layer in each sequence's prefill, by switch mode.",
    labelNames: ['layer', 'mode'],
    buckets: ACTIVATION_BUCKETS,
    registers,
  });
  const byMode = new Counter({ name: 'swserve_requests_total', help: 'Sequences accepted, by switch mode.', labelNames: ['mode'], registers });

  const knownIds = new Set(known.map(coordinateId));
  // Sequence id -> switch mode, from acceptance until its prefill frame.
  const modes = new Map<string, string>();
  const observePrefill = (frame: ActivationFrame, mode: string): void => {
    for (const a of frame.superActivations) {
      const id = coordinateId(a);
      if (knownIds.has(id)) superActivation.observe({ super_weight: id, mode }, Math.abs(a.value));
    }
    for (const l of frame.layers) layerPeak.observe({ layer: String(l.layer), mode }, Math.abs(l.outputMax));
  };

  return (update: EngineUpdate) => {
    for (const event of update.events) {
      if (event.type === 'accepted') {
        const mode = boundedMode(event.tags?.switchMode);
        byMode.inc({ mode });
        modes.set(event.id, mode);
      } else if (event.type === 'token') {
        const mode = modes.get(event.id);
        if (mode !== undefined && event.frame?.phase === 'prefill') observePrefill(event.frame, mode);
        modes.delete(event.id);
      } else if (event.type === 'finish' || event.type === 'error') {
        modes.delete(event.id);
      }
    }
  };
}

/** A label value from the closed set (tags are free text across the worker boundary). */
function boundedMode(mode: string | undefined): string {
  return (SWITCH_MODES as readonly string[]).includes(mode ?? 'original') ? (mode ?? 'original') : 'other';
}
