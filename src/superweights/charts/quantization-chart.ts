// The quantization study's figure (the paper's Figure 7 shape): perplexity against block size, the
// super weights protected and plain, with float32 as the reference line; and the stop-word shift.
import type { StudyResult } from '../quantization-study.js';
import { renderFigure, type Series } from './line-chart.js';

const COLORS = { on: '#c0392b', off: '#2c3e50', float: '#27ae60' };

export function quantizationChart(result: StudyResult, modelName: string, precision: string): string {
  const sizes = [...new Set(result.points.map((p) => p.blockSize))].map(Math.log2);
  const flat = (value: number): [number, number][] => [[Math.min(...sizes), value], [Math.max(...sizes), value]];
  const line = (protect: 'on' | 'off', value: (p: StudyResult['points'][number]) => number): Series[] => {
    const points = result.points.filter((p) => p.protect === protect);
    if (points.length === 0) return [];
    return [{ name: protect === 'on' ? 'super weights protected' : 'plain round-to-nearest', color: COLORS[protect], markers: true, points: points.map((p) => [Math.log2(p.blockSize), value(p)]) }];
  };
  return renderFigure(`${precision} block quantization: ${modelName}`, [
    {
      title: `perplexity over ${result.windows} windows (${result.scoredTokens} tokens)`,
      xLabel: 'log2 of the block size (elements)',
      yLabel: 'perplexity',
      logY: true,
      series: [...line('on', (p) => p.perplexity), ...line('off', (p) => p.perplexity), { name: 'float32', color: COLORS.float, dash: 'dashed', points: flat(result.float.perplexity) }],
    },
    {
      title: `mean KL to float32 over ${result.klWindows} windows`,
      xLabel: 'log2 of the block size (elements)',
      yLabel: 'KL (nats)',
      logY: true,
      series: [...line('on', (p) => p.klToFloat), ...line('off', (p) => p.klToFloat)],
    },
    {
      title: 'stop-word probability with the super weights zeroed / original',
      xLabel: 'log2 of the block size (elements)',
      yLabel: 'ratio',
      series: [
        ...line('on', (p) => p.stopWords.zeroed / p.stopWords.original),
        ...line('off', (p) => p.stopWords.zeroed / p.stopWords.original),
        { name: 'float32', color: COLORS.float, dash: 'dashed', points: flat(result.float.stopWords.zeroed / result.float.stopWords.original) },
      ],
    },
  ]);
}
