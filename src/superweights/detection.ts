// Data-free super-weight detection, iterated (the paper does the loop by hand, the public code not at
// all): run the prompts, read the down_proj taps, take the largest layer where input and output both
// spike, find the column behind it, zero that weight through the switch, run again; stop when no
// spike is left or at a maximum count. Late spikes that cancel a super activation are listed apart.
import { attributeColumn } from './column-attribution.js';
import { analysisId, analysisRequest, runSequence, type SequenceEngine } from './engine-run.js';
import { analyseSpikes, mergePrompts, type LayerMaxima, type SpikeThresholds } from './spike-analysis.js';
import { SUPER_ACTIVATION_PROMPT, switchPlan, type SuperWeightCoordinate, type SwitchEntry } from '../model/switch-plan.js';

export interface DetectionOptions extends SpikeThresholds {
  prompts: string[];
  /** Stop after this many super weights. */
  maxSuperWeights: number;
}

export const DEFAULT_DETECTION_PROMPT = SUPER_ACTIVATION_PROMPT;

export const DEFAULT_DETECTION_OPTIONS: DetectionOptions = {
  prompts: [DEFAULT_DETECTION_PROMPT],
  // Half an order of magnitude above the typical layer: random weights stay under 1.5x, the demo
  // model's planted super weight stands ~10x (input) and ~15x (output) above, Llama-7B's ~100x.
  spikeRatio: 5,
  // The public code flags |value| > 50 in 7B models; 20 keeps small models' weaker spikes in reach
  // while random weights (maxima of order 1) never reach it.
  minMagnitude: 20,
  // Phi-3-mini has the most listed (6); leave room for models with more.
  maxSuperWeights: 16,
};

export interface DetectedSuperWeight extends SuperWeightCoordinate {
  /** The layer's largest down_proj input when it was found (its channel may be an earlier find's). */
  inputMax: number;
  inputChannel: number;
  /** |down_proj output| at (position, row): the super activation. */
  outputMax: number;
  position: number;
  /** How much zeroing this weight alone shrinks that output. */
  contribution: number;
}

export interface CancellingSpike {
  layer: number;
  channel: number;
  inputChannel: number;
  outputMax: number;
  /** The earlier spiking layer that wrote this channel. */
  writerLayer: number;
}

/** A spiking (layer, row) that no single weight carries (e.g. a sum of many moderate terms). */
export interface UnattributedSpike {
  layer: number;
  row: number;
  outputMax: number;
  /** What the weight that carries most of it contributes. */
  largestContribution: number;
}

export type DetectionStop = 'no-spike' | 'max-count';

export interface DetectionResult {
  options: DetectionOptions;
  superWeights: DetectedSuperWeight[];
  cancelling: CancellingSpike[];
  unattributed: UnattributedSpike[];
  stop: DetectionStop;
  /** Per-layer maxima with nothing zeroed, and with every find zeroed. */
  before: LayerMaxima[];
  after: LayerMaxima[];
  /** The last pass's bars (input, output) that a layer had to clear. */
  thresholds: { input: number; output: number };
}

export async function detectSuperWeights(engine: SequenceEngine, options: DetectionOptions, signal?: AbortSignal): Promise<DetectionResult> {
  if (options.prompts.length === 0) throw new Error('detection needs at least one prompt');
  const found: DetectedSuperWeight[] = [];
  const cancelling = new Map<string, CancellingSpike>();
  const unattributed = new Map<string, UnattributedSpike>();
  const zeroed = (): SwitchEntry[] => found.map(({ layer, row, col }) => ({ layer, row, col, scale: 0 }));
  const before = await observe(engine, options.prompts, [], signal);
  let layers = before;
  let stop: DetectionStop;
  for (;;) {
    const report = analyseSpikes(layers, options);
    for (const { spike, writer } of report.cancelling) {
      cancelling.set(`${spike.layer}:${spike.outputChannel}`, {
        layer: spike.layer,
        channel: spike.outputChannel,
        inputChannel: spike.inputChannel,
        outputMax: spike.outputMax,
        writerLayer: writer.layer,
      });
    }
    const top = report.writers.find((w) => !unattributed.has(`${w.layer}:${w.outputChannel}`));
    if (top === undefined) {
      stop = 'no-spike';
      break;
    }
    if (found.length >= options.maxSuperWeights) {
      stop = 'max-count';
      break;
    }
    const site = { layer: top.layer, row: top.outputChannel, prompt: options.prompts[top.prompt]! };
    const attribution = await attributeColumn(engine, site, zeroed(), signal);
    // Not a super weight: set it aside and look at the next spike, on the same pass.
    if (attribution.contribution < report.outputThreshold) {
      unattributed.set(`${site.layer}:${site.row}`, { layer: site.layer, row: site.row, outputMax: top.outputMax, largestContribution: attribution.contribution });
      continue;
    }
    found.push({
      layer: top.layer,
      row: top.outputChannel,
      col: attribution.col,
      inputMax: top.inputMax,
      inputChannel: top.inputChannel,
      outputMax: top.outputMax,
      position: top.outputPosition,
      contribution: attribution.contribution,
    });
    layers = await observe(engine, options.prompts, zeroed(), signal);
  }
  const thresholds = analyseSpikes(layers, options);
  // A channel later found to hold a super weight of its own is not a canceller (OLMo-7B: row 269 at layers 1, 2, 7, 24).
  const sw = new Set(found.map((f) => `${f.layer}:${f.row}`));
  return {
    options,
    superWeights: found,
    cancelling: [...cancelling.values()].filter((c) => !sw.has(`${c.layer}:${c.channel}`)).sort((a, b) => a.layer - b.layer),
    unattributed: [...unattributed.values()],
    stop,
    before,
    after: layers,
    thresholds: { input: thresholds.inputThreshold, output: thresholds.outputThreshold },
  };
}

/** One prefill per prompt (batched by the engine) with `entries` applied; per-layer maxima over prompts. */
async function observe(engine: SequenceEngine, prompts: string[], entries: SwitchEntry[], signal?: AbortSignal): Promise<LayerMaxima[]> {
  const frames = await Promise.all(
    prompts.map(async (text) => {
      const request = analysisRequest({ id: analysisId('detect'), prompt: { text }, maxTokens: 1, switchPlan: switchPlan(entries) });
      const { frame } = await runSequence(engine, request, signal);
      if (frame === undefined) throw new Error('the engine reported no activation taps; detection needs the instrumented graph');
      return frame.layers;
    }),
  );
  return mergePrompts(frames);
}
