// Pure analysis of one detection pass: which layers' down_proj input and output both spike, and which
// of those write a super activation versus cancel one that an earlier layer wrote.
import type { LayerActivation } from '../engine/protocol.js';

export interface SpikeThresholds {
  /** A layer spikes when its maximum is at least this multiple of the median maximum over layers. */
  spikeRatio: number;
  /** ...and at least this large in absolute value. */
  minMagnitude: number;
}

/** A layer's maxima as the taps saw them, with the prompt that produced them. */
export interface LayerMaxima extends LayerActivation {
  prompt: number;
}

export interface SpikeReport {
  /** The bars a layer's input and output maxima had to clear in this pass. */
  inputThreshold: number;
  outputThreshold: number;
  /** Spiking layers that write a new super activation, largest output first. */
  writers: LayerMaxima[];
  /** Later spiking layers whose output lands in a channel an earlier spiking layer wrote. */
  cancelling: { spike: LayerMaxima; writer: LayerMaxima }[];
}

export function analyseSpikes(layers: readonly LayerMaxima[], thresholds: SpikeThresholds): SpikeReport {
  const bar = (values: number[]): number => Math.max(thresholds.spikeRatio * median(values), thresholds.minMagnitude);
  const inputThreshold = bar(layers.map((l) => l.inputMax));
  const outputThreshold = bar(layers.map((l) => l.outputMax));
  const spiking = layers.filter((l) => l.inputMax >= inputThreshold && l.outputMax >= outputThreshold).sort((a, b) => a.layer - b.layer);
  const writers: LayerMaxima[] = [];
  const cancelling: SpikeReport['cancelling'] = [];
  for (const spike of spiking) {
    const writer = writers.find((w) => w.outputChannel === spike.outputChannel);
    if (writer) cancelling.push({ spike, writer });
    else writers.push(spike);
  }
  writers.sort((a, b) => b.outputMax - a.outputMax);
  return { inputThreshold, outputThreshold, writers, cancelling };
}

/** Per layer, the prompt whose maxima are largest (input and output chosen independently). */
export function mergePrompts(perPrompt: readonly LayerActivation[][]): LayerMaxima[] {
  return perPrompt[0]!.map((_, l) => {
    let input = { ...perPrompt[0]![l]!, prompt: 0 };
    let output = input;
    perPrompt.forEach((layers, prompt) => {
      if (layers[l]!.inputMax > input.inputMax) input = { ...layers[l]!, prompt };
      if (layers[l]!.outputMax > output.outputMax) output = { ...layers[l]!, prompt };
    });
    return {
      layer: l,
      inputMax: input.inputMax,
      inputChannel: input.inputChannel,
      inputPosition: input.inputPosition,
      outputMax: output.outputMax,
      outputChannel: output.outputChannel,
      outputPosition: output.outputPosition,
      prompt: output.prompt,
    };
  });
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
