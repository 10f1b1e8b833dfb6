// A detection run as JSON (snake_case, the same for `swserve detect --json` and the HTTP route).
// Its `super_weights` list is the plain format `--super-weights FILE` reads, so the output can be saved and used.
import type { DetectionResult } from './detection.js';
import type { LayerMaxima } from './spike-analysis.js';
import { coordinateId } from '../model/switch-plan.js';

export interface DetectionJson {
  prompts: string[];
  spike_ratio: number;
  min_magnitude: number;
  max_super_weights: number;
  stop: DetectionResult['stop'];
  thresholds: { input: number; output: number };
  super_weights: {
    id: string;
    layer: number;
    row: number;
    col: number;
    input_max: number;
    input_channel: number;
    output_max: number;
    position: number;
    contribution: number;
  }[];
  cancelling: { layer: number; channel: number; input_channel: number; output_max: number; writer_layer: number }[];
  unattributed: { layer: number; row: number; output_max: number; largest_contribution: number }[];
  layers: {
    layer: number;
    input_max: number;
    input_channel: number;
    output_max: number;
    output_channel: number;
    output_position: number;
    input_max_after: number;
    output_max_after: number;
  }[];
}

export function detectionJson(result: DetectionResult): DetectionJson {
  const { options } = result;
  return {
    prompts: options.prompts,
    spike_ratio: options.spikeRatio,
    min_magnitude: options.minMagnitude,
    max_super_weights: options.maxSuperWeights,
    stop: result.stop,
    thresholds: result.thresholds,
    super_weights: result.superWeights.map((s) => ({
      id: coordinateId(s),
      layer: s.layer,
      row: s.row,
      col: s.col,
      input_max: s.inputMax,
      input_channel: s.inputChannel,
      output_max: s.outputMax,
      position: s.position,
      contribution: s.contribution,
    })),
    cancelling: result.cancelling.map((c) => ({ layer: c.layer, channel: c.channel, input_channel: c.inputChannel, output_max: c.outputMax, writer_layer: c.writerLayer })),
    unattributed: result.unattributed.map((u) => ({ layer: u.layer, row: u.row, output_max: u.outputMax, largest_contribution: u.largestContribution })),
    layers: result.before.map((b: LayerMaxima, i) => ({
      layer: b.layer,
      input_max: b.inputMax,
      input_channel: b.inputChannel,
      output_max: b.outputMax,
      output_channel: b.outputChannel,
      output_position: b.outputPosition,
      input_max_after: result.after[i]!.inputMax,
      output_max_after: result.after[i]!.outputMax,
    })),
  };
}

/** Why detection stopped, in words. */
export const STOP_REASONS: Record<DetectionResult['stop'], string> = {
  'no-spike': 'no layer spikes any more',
  'max-count': 'reached the maximum count',
};
