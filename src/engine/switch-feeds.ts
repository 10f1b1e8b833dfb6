// Turns the step rows' switch plans into the graph's switch inputs: the union of the coordinates any
// row switches plus the known super weights (so their activations are always tapped), layer by
// layer, and a per-token factor table holding (scale - 1) * W[row, col] where a row switches it
// (0 at the super-activation position when the row restores it).
import { coordinateId, type SuperWeightCoordinate, type SwitchPlan } from '../model/switch-plan.js';
import type { SwitchInputs } from './session.js';

export interface SwitchRow {
  plan: SwitchPlan;
  /** Positions of the row's tokens this step, in flat order. */
  positions: readonly number[];
}

export interface SwitchFeeds {
  inputs: SwitchInputs;
  /** Coordinates in input order (layer by layer), as the switch-value tap reports them. */
  coordinates: SuperWeightCoordinate[];
}

export function buildSwitchFeeds(
  rows: readonly SwitchRow[],
  known: readonly SuperWeightCoordinate[],
  numLayers: number,
  weightValue: (c: SuperWeightCoordinate) => number,
): SwitchFeeds {
  const perLayer: Map<string, SuperWeightCoordinate>[] = Array.from({ length: numLayers }, () => new Map());
  for (const c of known) perLayer[c.layer]!.set(coordinateId(c), c);
  for (const { plan } of rows) for (const e of plan.entries) perLayer[e.layer]!.set(coordinateId(e), e);
  const coordinates = perLayer.flatMap((coords) => [...coords.values()].map(({ layer, row, col }) => ({ layer, row, col })));
  const slot = new Map(coordinates.map((c, k) => [coordinateId(c), k]));
  const K = coordinates.length;
  const tokens = rows.reduce((a, r) => a + r.positions.length, 0);
  const factors = new Float32Array(tokens * K);
  let token = 0;
  for (const { plan, positions } of rows) {
    const switched = plan.entries.filter((e) => e.scale !== 1).map((e) => ({ k: slot.get(coordinateId(e))!, factor: (e.scale - 1) * weightValue(e) }));
    for (const position of positions) {
      if (!(plan.restoreActivation && position === plan.activationPosition)) {
        for (const { k, factor } of switched) factors[token * K + k] = factor;
      }
      token++;
    }
  }
  return {
    coordinates,
    inputs: {
      factors,
      rows: BigInt64Array.from(coordinates, (c) => BigInt(c.row)),
      cols: BigInt64Array.from(coordinates, (c) => BigInt(c.col)),
      widths: BigInt64Array.from(perLayer, (coords) => BigInt(coords.size)),
    },
  };
}
