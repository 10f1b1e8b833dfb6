// `swserve detect`: find a model's super weights data-free through the worker engine, print them (a
// table, or JSON usable as --super-weights FILE) and draw the per-layer maxima before and after.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EngineClient } from '../engine/engine-client.js';
import { DEFAULT_SCHEDULER_LIMITS } from '../engine/scheduler.js';
import { detectionChart } from '../superweights/charts/detection-chart.js';
import { DEFAULT_DETECTION_OPTIONS, detectSuperWeights, type DetectionOptions, type DetectionResult } from '../superweights/detection.js';
import { detectionJson, STOP_REASONS } from '../superweights/detection-report.js';
import { parseDevice } from '../engine/device.js';
import { resolveModelDir } from './model-location.js';
import { numberFlag } from './number-flag.js';
import { textTable } from './text-table.js';

export const DETECT_USAGE = `swserve detect --model DIR [--prompt TEXT]... [--json] [--chart FILE] [--spike-ratio R]
                 [--min-magnitude M] [--max-count N] [--device cpu|cuda[:N]]`;

const DEFAULT_CHART_FILE = 'swserve-detection.svg';

export async function runDetect(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
      chart: { type: 'string', default: DEFAULT_CHART_FILE },
      'spike-ratio': { type: 'string' },
      'min-magnitude': { type: 'string' },
      'max-count': { type: 'string' },
      device: { type: 'string', default: 'cpu' },
    },
  });
  if (!values.model) throw new Error(`usage: ${DETECT_USAGE}`);
  const modelDir = await resolveModelDir(values.model, (m) => process.stderr.write(`${m}\n`));
  const options: DetectionOptions = {
    prompts: values.prompt ?? DEFAULT_DETECTION_OPTIONS.prompts,
    spikeRatio: numberFlag(values['spike-ratio'], '--spike-ratio', DEFAULT_DETECTION_OPTIONS.spikeRatio),
    minMagnitude: numberFlag(values['min-magnitude'], '--min-magnitude', DEFAULT_DETECTION_OPTIONS.minMagnitude),
    maxSuperWeights: numberFlag(values['max-count'], '--max-count', DEFAULT_DETECTION_OPTIONS.maxSuperWeights, 'integer'),
  };
  // Data-free: the engine knows no super weights, so nothing but the detection's own switch applies.
  const engine = await EngineClient.start(
    { modelDir, device: parseDevice(values.device), instrument: true, limits: DEFAULT_SCHEDULER_LIMITS, knownSuperWeights: [] },
    (message) => process.stderr.write(`warning: ${message}\n`),
  );
  let result: DetectionResult;
  try {
    result = await detectSuperWeights(engine, options);
  } finally {
    await engine.close();
  }
  fs.writeFileSync(values.chart, detectionChart(result, path.basename(path.resolve(modelDir))));
  process.stderr.write(`chart: ${values.chart}\n`);
  process.stdout.write(values.json ? `${JSON.stringify(detectionJson(result), null, 2)}\n` : `${detectionText(result)}\n`);
}

export function detectionText(result: DetectionResult): string {
  const found = result.superWeights;
  const parts = [
    `${found.length} super weight${found.length === 1 ? '' : 's'} found; stopped because ${STOP_REASONS[result.stop]}.`,
    `A layer spikes when both its max |input| and max |output| reach ${result.options.spikeRatio}x the median over layers and ${result.options.minMagnitude}.`,
  ];
  if (found.length > 0) {
    parts.push(
      '',
      textTable(
        ['#', 'layer', 'row', 'col', 'input max', 'input ch', 'output max', 'position', 'contribution'],
        found.map((s, i) => [i + 1, s.layer, s.row, s.col, s.inputMax, s.inputChannel, s.outputMax, s.position, s.contribution]),
      ),
    );
  }
  if (result.cancelling.length > 0) {
    parts.push('', 'Late spikes cancelling a super activation (not super weights):');
    parts.push(textTable(['layer', 'channel', 'input ch', 'output max', 'written at layer'], result.cancelling.map((c) => [c.layer, c.channel, c.inputChannel, c.outputMax, c.writerLayer])));
  }
  if (result.unattributed.length > 0) {
    parts.push('', 'Spikes no single weight carries (not super weights):');
    parts.push(textTable(['layer', 'row', 'output max', 'largest one-weight share'], result.unattributed.map((u) => [u.layer, u.row, u.outputMax, u.largestContribution])));
  }
  parts.push('', 'Per-layer maxima, original and with the finds zeroed:');
  parts.push(
    textTable(
      ['layer', 'input max', 'input ch', 'output max', 'output ch', 'position', 'input after', 'output after'],
      result.before.map((b, i) => [b.layer, b.inputMax, b.inputChannel, b.outputMax, b.outputChannel, b.outputPosition, result.after[i]!.inputMax, result.after[i]!.outputMax]),
    ),
  );
  return parts.join('\n');
}
