// Turns the graph's per-token taps into per-sequence ActivationFrames: a decode token's frame, or a
// prompt's frame accumulated over the chunks it was prefilled in (per layer the largest value over
// all its tokens, the earliest token on ties, as one pass over the whole prompt would report).
import { coordinateId, type SuperWeightCoordinate } from '../model/switch-plan.js';
import type { ActivationFrame, LayerActivation, SuperActivationValue } from './protocol.js';
import type { StepTaps } from './session.js';

interface Peak {
  value: number;
  channel: number;
  position: number;
}

interface SignedPeak {
  coordinate: SuperWeightCoordinate;
  magnitude: number;
  value: number;
  position: number;
}

/** Maxima over a run of tokens, fed a step at a time. */
export class TapAccumulator {
  private readonly inputs: Peak[];
  private readonly outputs: Peak[];
  private readonly switched = new Map<string, SignedPeak>();
  private first = Infinity;
  private last = -Infinity;

  constructor(private readonly numLayers: number) {
    this.inputs = Array.from({ length: numLayers }, () => ({ value: -1, channel: 0, position: 0 }));
    this.outputs = Array.from({ length: numLayers }, () => ({ value: -1, channel: 0, position: 0 }));
  }

  /** Adds flat tokens [token, token + count) of a step, the first at `position`; `coordinates` is the step's switch order. */
  add(taps: StepTaps, token: number, count: number, position: number, coordinates: readonly SuperWeightCoordinate[]): void {
    const L = this.numLayers;
    const K = coordinates.length;
    for (let t = 0; t < count; t++) {
      const i = token + t;
      const p = position + t;
      for (let l = 0; l < L; l++) {
        const at = i * L + l;
        raise(this.inputs[l]!, taps.inMax[at]!, taps.inChannel[at]!, p);
        raise(this.outputs[l]!, taps.outMax[at]!, taps.outChannel[at]!, p);
      }
      for (let k = 0; k < K; k++) {
        const value = taps.switchValues[i * K + k]!;
        const id = coordinateId(coordinates[k]!);
        const peak = this.switched.get(id);
        if (!peak) this.switched.set(id, { coordinate: coordinates[k]!, magnitude: Math.abs(value), value, position: p });
        else if (Math.abs(value) > peak.magnitude) Object.assign(peak, { magnitude: Math.abs(value), value, position: p });
      }
    }
    this.first = Math.min(this.first, position);
    this.last = Math.max(this.last, position + count - 1);
  }

  /** The frame of everything added, reporting the signed values of `reported` coordinates. */
  frame(phase: 'prefill' | 'decode', step: number, reported: ReadonlySet<string>): ActivationFrame {
    const layers: LayerActivation[] = this.inputs.map((input, layer) => {
      const output = this.outputs[layer]!;
      return {
        layer,
        inputMax: input.value,
        inputChannel: input.channel,
        inputPosition: input.position,
        outputMax: output.value,
        outputChannel: output.channel,
        outputPosition: output.position,
      };
    });
    const superActivations: SuperActivationValue[] = [];
    for (const [id, peak] of this.switched) {
      if (reported.has(id)) superActivations.push({ ...peak.coordinate, value: peak.value, position: peak.position });
    }
    return { phase, step, positions: [this.first, this.last + 1], layers, superActivations };
  }
}

/** The frame of one decoded token (flat token `token` of the step). */
export function tokenFrame(taps: StepTaps, token: number, position: number, step: number, coordinates: readonly SuperWeightCoordinate[], reported: ReadonlySet<string>, numLayers: number): ActivationFrame {
  const layers: LayerActivation[] = [];
  for (let l = 0; l < numLayers; l++) {
    const at = token * numLayers + l;
    layers.push({
      layer: l,
      inputMax: taps.inMax[at]!,
      inputChannel: Number(taps.inChannel[at]),
      inputPosition: position,
      outputMax: taps.outMax[at]!,
      outputChannel: Number(taps.outChannel[at]),
      outputPosition: position,
    });
  }
  const superActivations: SuperActivationValue[] = [];
  coordinates.forEach((c, k) => {
    if (reported.has(coordinateId(c))) superActivations.push({ ...c, value: taps.switchValues[token * coordinates.length + k]!, position });
  });
  return { phase: 'decode', step, positions: [position, position + 1], layers, superActivations };
}

function raise(peak: Peak, value: number, channel: bigint, position: number): void {
  if (value > peak.value) {
    peak.value = value;
    peak.channel = Number(channel);
    peak.position = position;
  }
}
