// The paper's weight-quantization study as one run: for each block size, the model quantized with
// the super weights protected and plain (the super weight in its block), scored like `eval`:
// perplexity over the same windows, the stop-word shift (original vs super weights zeroed), and the
// super activation on the detection prompt; against float32 weights as the reference.
import type { WeightsInfo } from '../engine/served-weights.js';
import type { WeightOptions } from '../model/quantize/weight-format.js';
import { ORIGINAL_SWITCH, coordinateId, scaledPlan, type SuperWeightCoordinate } from '../model/switch-plan.js';
import { DEFAULT_DETECTION_OPTIONS } from './detection.js';
import { analysisId, analysisRequest, runSequence, type SequenceEngine } from './engine-run.js';
import { klDivergence } from './distribution-compare.js';
import { scoreWindows, type WindowScore } from './eval-windows.js';

// Windows scored at once, as in `evaluate`.
const WINDOW_CONCURRENCY = 16;
// float32 log-distributions kept for the KL of every point to float32 (256 MiB of float32).
const KL_BUDGET_VALUES = 64 * 2 ** 20;

export type ProtectMode = 'on' | 'off';

export interface StudyEngine extends SequenceEngine {
  close(): Promise<void>;
}

/** Starts an engine on the model with these weights and these super weights known. */
export type StudyEngineFactory = (weights: Partial<WeightOptions>) => Promise<StudyEngine>;

export interface StudyInput {
  windows: number[][];
  superWeights: SuperWeightCoordinate[];
  stopWordIds: number[];
  /** Precision, scheme, clipping, compute: shared by every point; block size and protection vary. */
  weights: Partial<WeightOptions>;
  blockSizes: number[];
  protect: ProtectMode[];
  /** The detection prompt, whose first token carries the super activation. */
  activationPrompt?: string;
}

export interface StudyMeasure {
  /** Mean KL(float32 || this) of the next-token distributions over the first `klWindows` windows (0 for float32). */
  klToFloat: number;
  perplexity: number;
  meanNll: number;
  /** Perplexity with the super weights zeroed. */
  zeroedPerplexity: number;
  /** Mean next-token probability on the stop words, original vs super weights zeroed. */
  stopWords: { original: number; zeroed: number };
  /** Signed super activation on the detection prompt, per super weight. */
  superActivations: { id: string; value: number }[];
  weights: WeightsInfo;
}

export interface StudyPoint extends StudyMeasure {
  blockSize: number;
  protect: ProtectMode;
}

export interface StudyResult {
  float: StudyMeasure;
  points: StudyPoint[];
  windows: number;
  scoredTokens: number;
  /** Windows the KL to float32 is taken over (as many as KL_BUDGET_VALUES allows). */
  klWindows: number;
}

export async function runQuantizationStudy(start: StudyEngineFactory, input: StudyInput, onProgress?: (done: number, total: number) => void): Promise<StudyResult> {
  if (input.superWeights.length === 0) throw new Error('no super weights are known for this model; pass --super-weights FILE or --detect');
  const total = 1 + input.blockSizes.length * input.protect.length;
  let done = 0;
  const float = await measure(start, { precision: 'float32' }, input);
  onProgress?.(++done, total);
  const points: StudyPoint[] = [];
  for (const blockSize of input.blockSizes) {
    for (const protect of input.protect) {
      const m = await measure(start, { ...input.weights, blockSize, protectSuperWeights: protect === 'on' }, input, float.distributions);
      points.push({ blockSize, protect, ...m.measure });
      onProgress?.(++done, total);
    }
  }
  return {
    float: float.measure,
    points,
    windows: input.windows.length,
    scoredTokens: input.windows.reduce((a, w) => a + w.length - 1, 0),
    klWindows: float.distributions.length,
  };
}

async function measure(
  start: StudyEngineFactory,
  weights: Partial<WeightOptions>,
  input: StudyInput,
  reference?: Float32Array[][],
): Promise<{ measure: StudyMeasure; distributions: Float32Array[][] }> {
  const engine = await start(weights);
  try {
    const perWindow = (input.windows[0]?.length ?? 1) * engine.info.vocabSize;
    const keepDistributions = reference?.length ?? Math.floor(KL_BUDGET_VALUES / perWindow);
    const options = { concurrency: WINDOW_CONCURRENCY, stopWordIds: input.stopWordIds };
    const original = await scoreWindows(engine, input.windows, ORIGINAL_SWITCH, { ...options, keepDistributions });
    const distributions = original.slice(0, keepDistributions).map((s) => s.distributions!);
    const zeroed = await scoreWindows(engine, input.windows, scaledPlan(input.superWeights, 0), options);
    const { frame } = await runSequence(
      engine,
      analysisRequest({ id: analysisId('study'), prompt: { text: input.activationPrompt ?? DEFAULT_DETECTION_OPTIONS.prompts[0]! }, maxTokens: 1 }),
    );
    const ids = new Set(input.superWeights.map(coordinateId));
    const measure: StudyMeasure = {
      klToFloat: reference ? meanKl(reference, distributions) : 0,
      perplexity: Math.exp(meanNll(original)),
      meanNll: meanNll(original),
      zeroedPerplexity: Math.exp(meanNll(zeroed)),
      stopWords: { original: stopWordMean(original), zeroed: stopWordMean(zeroed) },
      superActivations: (frame?.superActivations ?? []).filter((a) => ids.has(coordinateId(a))).map((a) => ({ id: coordinateId(a), value: a.value })),
      weights: engine.info.weights,
    };
    return { measure, distributions };
  } finally {
    await engine.close();
  }
}

function meanKl(reference: Float32Array[][], distributions: Float32Array[][]): number {
  let sum = 0;
  let count = 0;
  reference.forEach((window, w) =>
    window.forEach((p, t) => {
      sum += klDivergence(p, distributions[w]![t]!);
      count++;
    }),
  );
  return count === 0 ? 0 : sum / count;
}

function meanNll(scores: WindowScore[]): number {
  return scores.reduce((a, s) => a + s.nll, 0) / scores.reduce((a, s) => a + s.tokens, 0);
}

function stopWordMean(scores: WindowScore[]): number {
  return scores.reduce((a, s) => a + s.stopWordMass, 0) / scores.reduce((a, s) => a + s.tokens, 0);
}
