// The scale sweep: perplexity as every super weight is scaled by s, against the original model, the
// super weights zeroed with the activation restored, and the N largest other weights zeroed.
import type { EvaluationResult } from '../evaluation.js';
import { renderFigure, type Series } from './line-chart.js';

// One panel, wide enough for its four legend entries in two rows.
const SWEEP_PANEL_WIDTH = 640;

export function sweepChart(result: EvaluationResult, modelName: string, largestCount: number): string {
  const scales = result.sweep.map((s) => s.scale);
  const flat = (name: string, color: string, value: number, dash: Series['dash']): Series => ({
    name,
    color,
    dash,
    points: [[Math.min(...scales), value], [Math.max(...scales), value]],
  });
  return renderFigure(`Super-weight scale sweep: ${modelName}`, [
    {
      title: `perplexity over ${result.windows} windows (${result.scoredTokens} tokens)`,
      xLabel: 'super-weight scale',
      yLabel: 'perplexity',
      logY: true,
      series: [
        { name: 'scaled super weights', color: '#c0392b', markers: true, points: result.sweep.map((s) => [s.scale, s.perplexity]) },
        flat('original', '#2c3e50', result.conditions.original.perplexity, 'dashed'),
        flat('zeroed + activation restored', '#8e44ad', result.conditions.zeroed_restored.perplexity, 'dotted'),
        flat(`${largestCount} largest others zeroed`, '#27ae60', result.conditions.largest_zeroed.perplexity, 'dashed'),
      ],
    },
  ], SWEEP_PANEL_WIDTH);
}
