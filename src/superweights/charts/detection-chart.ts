// The paper's detection figure: per-layer max |down_proj input| and max |down_proj output| before
// detection and with every super weight it found zeroed, the spike bar, and the finds labelled.
import { coordinateId } from '../../model/switch-plan.js';
import type { DetectionResult } from '../detection.js';
import { renderFigure, type Panel } from './line-chart.js';

const BEFORE = '#c0392b';
const AFTER = '#2471a3';
const BAR = '#7f8c8d';

export function detectionChart(result: DetectionResult, modelName: string): string {
  const panel = (side: 'input' | 'output'): Panel => {
    const value = (l: DetectionResult['before'][number]): number => (side === 'input' ? l.inputMax : l.outputMax);
    const layers = result.before.map((l) => l.layer);
    const bar = side === 'input' ? result.thresholds.input : result.thresholds.output;
    return {
      title: `down_proj ${side}: max |${side === 'input' ? 'x' : 'y'}| per layer`,
      xLabel: 'layer',
      yLabel: `max |${side}|`,
      logY: true,
      series: [
        { name: 'original', color: BEFORE, markers: true, points: result.before.map((l) => [l.layer, value(l)]) },
        { name: 'super weights zeroed', color: AFTER, markers: true, dash: 'dashed', points: result.after.map((l) => [l.layer, value(l)]) },
        { name: 'spike bar (last pass)', color: BAR, dash: 'dotted', points: [[layers[0]!, bar], [layers[layers.length - 1]!, bar]] },
      ],
      labels: side === 'output' ? labels(result) : undefined,
    };
  };
  return renderFigure(`Super-weight detection: ${modelName}`, [panel('input'), panel('output')]);
}

/** One label per layer with finds, at the original output maximum. */
function labels(result: DetectionResult): Panel['labels'] {
  const byLayer = new Map<number, string[]>();
  for (const sw of result.superWeights) byLayer.set(sw.layer, [...(byLayer.get(sw.layer) ?? []), coordinateId(sw)]);
  return [...byLayer].map(([layer, ids]) => ({ x: layer, y: result.before[layer]!.outputMax, text: ids.join(', ') }));
}
