// Turns the batch rows' switch plans into the graph's per-layer switch inputs: the union of the
// coordinates any row switches plus the known super weights (so their activations are always
// tapped), and a [B, K] factor table holding (scale - 1) * W[row, col] where a row switches.
import { coordinateId, type SuperWeightCoordinate, type SwitchPlan } from '../model/switch-plan.js';

export interface LayerSwitchFeeds {
  rows: BigInt64Array;
  cols: BigInt64Array;
  factors: Float32Array;
}

export interface SwitchFeeds {
  layers: LayerSwitchFeeds[];
  /** Coordinates in output order (layer by layer), as the switch-value tap reports them. */
  coordinates: SuperWeightCoordinate[];
  restorePosition: BigInt64Array;
}

export function buildSwitchFeeds(
  plans: SwitchPlan[],
  known: readonly SuperWeightCoordinate[],
  numLayers: number,
  weightValue: (c: SuperWeightCoordinate) => number,
): SwitchFeeds {
  const perLayer: Map<string, SuperWeightCoordinate>[] = Array.from({ length: numLayers }, () => new Map());
  for (const c of known) perLayer[c.layer]!.set(coordinateId(c), c);
  for (const plan of plans) for (const e of plan.entries) perLayer[e.layer]!.set(coordinateId(e), e);

  const batch = plans.length;
  const coordinates: SuperWeightCoordinate[] = [];
  const layers = perLayer.map((coords) => {
    const list = [...coords.values()];
    const slot = new Map([...coords.keys()].map((id, k) => [id, k]));
    coordinates.push(...list.map(({ layer, row, col }) => ({ layer, row, col })));
    const factors = new Float32Array(batch * list.length);
    plans.forEach((plan, b) => {
      for (const e of plan.entries) {
        const k = slot.get(coordinateId(e));
        if (k !== undefined) factors[b * list.length + k] = (e.scale - 1) * weightValue(e);
      }
    });
    return {
      rows: BigInt64Array.from(list, (c) => BigInt(c.row)),
      cols: BigInt64Array.from(list, (c) => BigInt(c.col)),
      factors,
    };
  });
  const restorePosition = BigInt64Array.from(plans, (p) => BigInt(p.restoreActivation ? p.activationPosition : -1));
  return { layers, coordinates, restorePosition };
}
