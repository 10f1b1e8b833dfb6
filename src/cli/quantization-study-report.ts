// `swserve eval --block-sizes`: the quantization study as a table or JSON (snake_case).
import type { StudyMeasure, StudyResult } from '../superweights/quantization-study.js';
import { scoredTextJson, type ScoredTextContext } from '../superweights/evaluation-report.js';
import { textTable, type Cell } from './text-table.js';

export interface StudyContext extends ScoredTextContext {
  superWeights: string[];
  superWeightsFrom: string;
  precision: string;
}

/** How a point's linear weights were served: all by MatMulNBits, or some as a float32 round trip. */
function servedAs(m: StudyMeasure): string {
  const kernel = `MatMulNBits (kernel blocks ${m.weights.kernelBlockSizes.join('/')})`;
  return m.weights.roundTripTensors > 0 ? `${m.weights.roundTripTensors} tensors quantize-dequantized to float32, the rest ${kernel}` : kernel;
}

function measureJson(m: StudyMeasure): Record<string, unknown> {
  return {
    kl_to_float32: m.klToFloat,
    perplexity: m.perplexity,
    mean_nll: m.meanNll,
    zeroed_perplexity: m.zeroedPerplexity,
    stop_words: m.stopWords,
    super_activations: m.superActivations,
    weight_bytes: m.weights.bytes,
    served_as: m.weights.blockSize === null ? m.weights.precision : servedAs(m),
  };
}

export function studyJson(result: StudyResult, ctx: StudyContext): Record<string, unknown> {
  const w = result.points[0]?.weights;
  return {
    ...scoredTextJson(ctx, result),
    kl_windows: result.klWindows,
    super_weights: ctx.superWeights,
    super_weights_from: ctx.superWeightsFrom,
    weights: ctx.precision,
    scheme: w?.scheme ?? null,
    compute: w?.compute ?? null,
    clip_outliers: w?.clipOutliers ?? null,
    float32: measureJson(result.float),
    points: result.points.map((p) => ({ block_size: p.blockSize, protect: p.protect, ...measureJson(p) })),
  };
}

export function studyText(result: StudyResult, ctx: StudyContext): string {
  const w = result.points[0]?.weights;
  const shift = (m: StudyMeasure): number => m.stopWords.zeroed / m.stopWords.original;
  const sa = (m: StudyMeasure): string => m.superActivations.map((a) => a.value.toFixed(1)).join(' ');
  const row = (label: Cell, protect: string, m: StudyMeasure): Cell[] => [label, protect, m.klToFloat, m.perplexity, m.zeroedPerplexity, shift(m), sa(m), m.weights.roundTripTensors > 0 ? 'round trip' : 'kernel'];
  const rows: Cell[][] = [['float32', '-', 0, result.float.perplexity, result.float.zeroedPerplexity, shift(result.float), sa(result.float), 'float']];
  for (const p of result.points) rows.push(row(p.blockSize, p.protect === 'on' ? 'protected' : 'plain', p));
  const notes = result.points.filter((p) => p.weights.roundTripTensors > 0).map((p) => `  block ${p.blockSize} (${p.protect}): ${servedAs(p)}`);
  return [
    `${ctx.model}: ${result.windows} windows of ${ctx.windowTokens} tokens (${result.scoredTokens} scored) from ${ctx.textFile}`,
    `${ctx.precision} weights, ${w?.scheme ?? ''}, ${w?.compute ?? ''} activations${w?.clipOutliers != null ? `, clipped at ${w.clipOutliers} sigma` : ''}; super weights ${ctx.superWeights.join(', ')} (${ctx.superWeightsFrom})`,
    '',
    textTable(['block size', 'super weights', `KL to float32 (${result.klWindows} windows)`, 'perplexity', 'ppl zeroed', 'stop-word x (zeroed/orig)', 'super activation', 'served'], rows),
    ...(notes.length > 0 ? ['', 'Round trips (no 16..256 kernel block fits inside these blocks):', ...notes] : []),
  ].join('\n');
}
