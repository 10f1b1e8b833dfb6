// `swserve detect`: find a model's super weights data-free through the worker engine, print them (a
// table, or JSON usable as --super-weights FILE) and draw the per-layer maxima before and after.
import fs from 'node:fs';
import path from 'node:path';
import { EngineClient } from '../engine/engine-client.js';
import { DEFAULT_SCHEDULER_LIMITS } from '../engine/scheduler.js';
import { detectionChart } from '../superweights/charts/detection-chart.js';
import { DEFAULT_DETECTION_OPTIONS, detectSuperWeights, type DetectionOptions, type DetectionResult } from '../superweights/detection.js';
import { detectionJson, STOP_REASONS } from '../superweights/detection-report.js';
import { DEVICE_CHOICES, parseDevice } from '../engine/device.js';
import { parseCommandLine, UsageError, type CommandSpec, type FlagTable } from './command-line.js';
import { resolveModelDir } from './model-location.js';
import { numberFlag } from './number-flag.js';
import { textTable } from './text-table.js';

const DEFAULT_CHART_FILE = 'swserve-detection.svg';

export const DETECT_COMMAND = {
  name: 'detect',
  summary: "find a model's super weights data-free (activation spikes, attributed through the switch)",
  flags: {
    model: { type: 'string', value: 'DIR|ORG/NAME', description: 'Model folder (Hugging Face layout) or hub repository id; required.' },
    prompt: { type: 'string', multiple: true, value: 'TEXT', description: 'Detection prompt.', defaultNote: JSON.stringify(DEFAULT_DETECTION_OPTIONS.prompts[0]) },
    json: { type: 'boolean', default: false, description: 'Print JSON (usable as a --super-weights file) instead of tables.' },
    chart: { type: 'string', value: 'FILE', default: DEFAULT_CHART_FILE, description: 'Where to write the SVG chart of per-layer maxima before and after.' },
    'spike-ratio': { type: 'string', value: 'R', description: 'A layer spikes when max |input| and |output| reach R times the median over layers.', defaultNote: String(DEFAULT_DETECTION_OPTIONS.spikeRatio) },
    'min-magnitude': { type: 'string', value: 'M', description: 'And when both reach this magnitude.', defaultNote: String(DEFAULT_DETECTION_OPTIONS.minMagnitude) },
    'max-count': { type: 'string', value: 'N', description: 'Stop after this many super weights.', defaultNote: String(DEFAULT_DETECTION_OPTIONS.maxSuperWeights) },
    device: { type: 'string', value: DEVICE_CHOICES, default: 'cpu', description: 'Where the model runs.' },
  },
} as const satisfies CommandSpec<FlagTable>;

export async function runDetect(argv: string[]): Promise<void> {
  const parsed = parseCommandLine(DETECT_COMMAND, argv);
  if (!parsed) return;
  const { values } = parsed;
  if (!values.model) throw new UsageError('--model is required; see `swserve detect --help`');
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
