// Turns the batch rows' switch plans into the graph's per-layer switch inputs: the union of the
// coordinates any row switches plus the known super weights (so their activations are always
// tapped), and a [B, K] factor table. A row's factor is s * W[r, c] - G[r, c]: the weight it wants
// (its scale s times the checkpoint's value W) minus what the graph's down_proj holds (G). G is W
// on float graphs, 0 for a super weight a quantized copy protects, the dequantized value for other
// quantized coordinates. Known super weights take s = 1 in rows that do not switch them, so "on"
// always means the checkpoint's value; other coordinates are left as the graph holds them. A row's
// restore position takes the original model's factors (1 * W - G for known super weights).
import { coordinateId, type SuperWeightCoordinate, type SwitchPlan } from '../model/switch-plan.js';

export interface LayerSwitchFeeds {
  rows: BigInt64Array;
  cols: BigInt64Array;
  factors: Float32Array;
  restoreFactors: Float32Array;
}

export interface SwitchFeeds {
  layers: LayerSwitchFeeds[];
  /** Coordinates in output order (layer by layer), as the switch-value tap reports them. */
  coordinates: SuperWeightCoordinate[];
  restorePosition: BigInt64Array;
}

export interface SwitchWeightValues {
  /** The checkpoint's value at a down_proj coordinate. */
  original(c: SuperWeightCoordinate): number;
  /** The value the graph's down_proj holds there. */
  inGraph(c: SuperWeightCoordinate): number;
}

export function buildSwitchFeeds(
  plans: SwitchPlan[],
  known: readonly SuperWeightCoordinate[],
  numLayers: number,
  values: SwitchWeightValues,
): SwitchFeeds {
  const perLayer: Map<string, SuperWeightCoordinate>[] = Array.from({ length: numLayers }, () => new Map());
  for (const c of known) perLayer[c.layer]!.set(coordinateId(c), c);
  for (const plan of plans) for (const e of plan.entries) perLayer[e.layer]!.set(coordinateId(e), e);
  const knownIds = new Set(known.map(coordinateId));
  const rowScales = plans.map((plan) => new Map(plan.entries.map((e) => [coordinateId(e), e.scale])));

  const batch = plans.length;
  const coordinates: SuperWeightCoordinate[] = [];
  const layers = perLayer.map((coords) => {
    const list = [...coords.values()].map(({ layer, row, col }) => ({ layer, row, col }));
    coordinates.push(...list);
    const factor = (c: SuperWeightCoordinate, scale: number): number => scale * values.original(c) - values.inGraph(c);
    const factors = new Float32Array(batch * list.length);
    rowScales.forEach((scales, b) => {
      list.forEach((c, k) => {
        const id = coordinateId(c);
        const scale = scales.get(id) ?? (knownIds.has(id) ? 1 : undefined);
        if (scale !== undefined) factors[b * list.length + k] = factor(c, scale);
      });
    });
    return {
      rows: BigInt64Array.from(list, (c) => BigInt(c.row)),
      cols: BigInt64Array.from(list, (c) => BigInt(c.col)),
      factors,
      restoreFactors: Float32Array.from(list, (c) => (knownIds.has(coordinateId(c)) ? factor(c, 1) : 0)),
    };
  });
  const restorePosition = BigInt64Array.from(plans, (p) => BigInt(p.restoreActivation ? p.activationPosition : -1));
  return { layers, coordinates, restorePosition };
}
