// Turns the step rows' switch plans into the graph's switch inputs: the union of the coordinates any
// row switches plus the known super weights (so their activations are always tapped), layer by
// layer, and a per-token factor table. A token's factor is s * W[r, c] - G[r, c]: the weight its row
// wants (its scale s times the checkpoint's value W) minus what the graph's down_proj holds (G). G is
// W on float graphs, 0 for a super weight a quantized copy protects, the dequantized value for other
// quantized coordinates. Known super weights take s = 1 in rows that do not switch them, so "on"
// always means the checkpoint's value; other coordinates are left as the graph holds them. A row's
// restore position (its super-activation token) takes the original model's factors (1 * W - G for
// known super weights, 0 elsewhere).
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

export interface SwitchWeightValues {
  /** The checkpoint's value at a down_proj coordinate. */
  original(c: SuperWeightCoordinate): number;
  /** The value the graph's down_proj holds there. */
  inGraph(c: SuperWeightCoordinate): number;
}

export function buildSwitchFeeds(
  rows: readonly SwitchRow[],
  known: readonly SuperWeightCoordinate[],
  numLayers: number,
  values: SwitchWeightValues,
): SwitchFeeds {
  const perLayer: Map<string, SuperWeightCoordinate>[] = Array.from({ length: numLayers }, () => new Map());
  for (const c of known) perLayer[c.layer]!.set(coordinateId(c), c);
  for (const { plan } of rows) for (const e of plan.entries) perLayer[e.layer]!.set(coordinateId(e), e);
  const coordinates = perLayer.flatMap((coords) => [...coords.values()].map(({ layer, row, col }) => ({ layer, row, col })));
  const knownIds = new Set(known.map(coordinateId));
  const factor = (c: SuperWeightCoordinate, scale: number): number => scale * values.original(c) - values.inGraph(c);
  // The original model's factors, taken at a restore position.
  const restoreFactors = Float32Array.from(coordinates, (c) => (knownIds.has(coordinateId(c)) ? factor(c, 1) : 0));
  const K = coordinates.length;
  const tokens = rows.reduce((a, r) => a + r.positions.length, 0);
  const factors = new Float32Array(tokens * K);
  let token = 0;
  for (const { plan, positions } of rows) {
    const scales = new Map(plan.entries.map((e) => [coordinateId(e), e.scale]));
    const rowFactors = Float32Array.from(coordinates, (c) => {
      const id = coordinateId(c);
      const scale = scales.get(id) ?? (knownIds.has(id) ? 1 : undefined);
      return scale === undefined ? 0 : factor(c, scale);
    });
    for (const position of positions) {
      factors.set(plan.restoreActivation && position === plan.activationPosition ? restoreFactors : rowFactors, token * K);
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
