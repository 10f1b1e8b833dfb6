// Turns one step's tap tensors into per-sequence ActivationFrames: flat argmax indices become
// (token position, channel), and switch-value taps are kept for the coordinates this row cares about.
import { coordinateId, type SuperWeightCoordinate } from '../model/switch-plan.js';
import type { ActivationFrame, LayerActivation, SuperActivationValue } from './protocol.js';
import type { StepTaps } from './session.js';

export interface FrameGeometry {
  numLayers: number;
  hiddenSize: number;
  intermediateSize: number;
}

export interface FrameRow {
  phase: 'prefill' | 'decode';
  step: number;
  /** Position of each fed token, -1 for padding. */
  positions: Int32Array;
  /** Coordinates whose signed value this row reports (known super weights and its own switches). */
  reported: ReadonlySet<string>;
}

export function activationFrame(
  taps: StepTaps,
  b: number,
  row: FrameRow,
  coordinates: readonly SuperWeightCoordinate[],
  geometry: FrameGeometry,
): ActivationFrame {
  const { numLayers, hiddenSize, intermediateSize } = geometry;
  const layers: LayerActivation[] = [];
  for (let l = 0; l < numLayers; l++) {
    const at = b * numLayers + l;
    const inArg = Number(taps.inArg[at]);
    const outArg = Number(taps.outArg[at]);
    layers.push({
      layer: l,
      inputMax: taps.inMax[at]!,
      inputChannel: inArg % intermediateSize,
      inputPosition: row.positions[Math.floor(inArg / intermediateSize)]!,
      outputMax: taps.outMax[at]!,
      outputChannel: outArg % hiddenSize,
      outputPosition: row.positions[Math.floor(outArg / hiddenSize)]!,
    });
  }
  const superActivations: SuperActivationValue[] = [];
  coordinates.forEach((c, k) => {
    if (!row.reported.has(coordinateId(c))) return;
    const at = b * coordinates.length + k;
    superActivations.push({ ...c, value: taps.switchValues[at]!, position: row.positions[Number(taps.switchPeaks[at])]! });
  });
  const real = [...row.positions].filter((p) => p >= 0);
  return { phase: row.phase, step: row.step, positions: [real[0]!, real[real.length - 1]! + 1], layers, superActivations };
}
