// `swserve eval`: the paper's ablations as perplexity over a text file, through the worker engine:
// original, super weights zeroed, zeroed with the activation restored, the N largest other down_proj
// weights zeroed, a scale sweep, and the stop-word probability shift; a table or JSON, and a sweep chart.
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_SCHEDULER_LIMITS } from '../engine/scheduler.js';
import { loadTokenizer } from '../engine/tokenizer.js';
import { sweepChart } from '../superweights/charts/sweep-chart.js';
import { startEngineWithSuperWeights } from '../superweights/engine-startup.js';
import { cutWindows } from '../superweights/eval-windows.js';
import { evaluate, PAPER_SWEEP_SCALES, type EvaluationResult } from '../superweights/evaluation.js';
import { evaluationJson, type EvaluationContext } from '../superweights/evaluation-report.js';
import { defaultLargestCount, largestDownProjWeights } from '../superweights/largest-weights.js';
import { coordinateId } from '../model/switch-plan.js';
import { DEVICE_CHOICES, parseDevice } from '../engine/device.js';
import { parseCommandLine, UsageError, type CommandSpec, type FlagTable } from './command-line.js';
import { resolveModelDir } from './model-location.js';
import { numberFlag } from './number-flag.js';
import { progressBar } from './progress-bar.js';
import { textTable } from './text-table.js';

// The paper scores 2048-token windows; 256 keeps a CPU run short and fits small models' training length.
const DEFAULT_WINDOW_TOKENS = 256;
// A model folder may ship its own evaluation text (the demo model does).
const MODEL_EVAL_TEXT = 'eval.txt';
const DEFAULT_CHART_FILE = 'swserve-sweep.svg';

export const EVAL_COMMAND = {
  name: 'eval',
  summary: "the paper's ablations as perplexity over a text: original, zeroed, SA restored, the largest-weights control, a scale sweep",
  flags: {
    model: { type: 'string', value: 'DIR|ORG/NAME', description: 'Model folder (Hugging Face layout) or hub repository id; required.' },
    text: { type: 'string', value: 'FILE', description: 'Text to score.', defaultNote: `${MODEL_EVAL_TEXT} in the model folder` },
    window: { type: 'string', value: 'N', description: 'Tokens per scored window (each starts with BOS).', defaultNote: `${DEFAULT_WINDOW_TOKENS}, or the context if shorter` },
    'max-windows': { type: 'string', value: 'N', description: 'Score at most this many windows.', defaultNote: 'all' },
    largest: { type: 'string', value: 'N', description: 'How many of the largest other down_proj weights the control zeroes.', defaultNote: "the paper's share of down_proj weights, at least 100" },
    'super-weights': { type: 'string', value: 'FILE', description: 'Super-weight coordinates to use instead of the model\'s own or the registry\'s.' },
    detect: { type: 'boolean', default: false, description: 'Detect the super weights first when nothing else knows them.' },
    json: { type: 'boolean', default: false, description: 'Print JSON instead of a table.' },
    chart: { type: 'string', value: 'FILE', default: DEFAULT_CHART_FILE, description: 'Where to write the SVG chart of the scale sweep.' },
    device: { type: 'string', value: DEVICE_CHOICES, default: 'cpu', description: 'Where the model runs.' },
  },
} as const satisfies CommandSpec<FlagTable>;

export async function runEval(argv: string[]): Promise<void> {
  const parsed = parseCommandLine(EVAL_COMMAND, argv);
  if (!parsed) return;
  const { values } = parsed;
  if (!values.model) throw new UsageError('--model is required; see `swserve eval --help`');
  const log = (m: string): void => {
    process.stderr.write(`${m}\n`);
  };
  const modelDir = await resolveModelDir(values.model, log);
  const textFile = values.text ?? path.join(modelDir, MODEL_EVAL_TEXT);
  if (!fs.existsSync(textFile)) throw new Error(`${textFile} does not exist; pass --text FILE`);
  const started = await startEngineWithSuperWeights({
    engine: { modelDir, device: parseDevice(values.device), instrument: true, limits: DEFAULT_SCHEDULER_LIMITS },
    superWeightsFile: values['super-weights'],
    aliases: [values.model],
    detectOnLoad: values.detect,
    onWarning: (m) => log(`warning: ${m}`),
    log,
  });
  const { engine, superWeights } = started;
  try {
    const info = engine.info;
    log(`super weights: ${superWeights.superWeights.map(coordinateId).join(', ') || 'none'} (${superWeights.description})`);
    const windowTokens = numberFlag(values.window, '--window', Math.min(info.contextLength, DEFAULT_WINDOW_TOKENS), 'integer');
    if (windowTokens > info.contextLength) throw new Error(`--window ${windowTokens} is longer than the model's context (${info.contextLength} tokens)`);
    const tokenizer = await loadTokenizer(modelDir);
    const ids = tokenizer.encode(fs.readFileSync(textFile, 'utf8'), { addSpecialTokens: false });
    const windows = cutWindows(ids, windowTokens, info.bosId, numberFlag(values['max-windows'], '--max-windows', Infinity, 'integer'));
    const largestCount = numberFlag(values.largest, '--largest', defaultLargestCount(info.numLayers, info.hiddenSize, info.intermediateSize), 'integer');
    const largest = largestDownProjWeights(modelDir, largestCount, superWeights.superWeights);
    log(`${windows.length} windows of ${windowTokens} tokens from ${textFile}; ${largest.length} largest non-super down_proj weights for the control`);
    const result = await evaluate(
      engine,
      { windows, superWeights: superWeights.superWeights, largest, sweepScales: PAPER_SWEEP_SCALES, stopWordIds: info.stopWords.ids },
      progressBar('eval'),
    );
    const ctx: EvaluationContext = {
      model: path.basename(path.resolve(modelDir)),
      textFile,
      windowTokens,
      superWeights: superWeights.superWeights,
      superWeightsFrom: superWeights.description,
      largestCount: largest.length,
      stopWords: info.stopWords.words,
    };
    fs.writeFileSync(values.chart, sweepChart(result, ctx.model, largest.length));
    log(`chart: ${values.chart}`);
    process.stdout.write(values.json ? `${JSON.stringify(evaluationJson(result, ctx), null, 2)}\n` : `${evaluationText(result, ctx)}\n`);
  } finally {
    await engine.close();
  }
}

export function evaluationText(result: EvaluationResult, ctx: EvaluationContext): string {
  const { original, zeroed, zeroed_restored, largest_zeroed } = result.conditions;
  const rows: [string, { perplexity: number; meanNll: number }][] = [
    ['original', original],
    ['super weights zeroed', zeroed],
    ['zeroed, super activation restored', zeroed_restored],
    [`${ctx.largestCount} largest other down_proj weights zeroed`, largest_zeroed],
    ...result.sweep.map((s): [string, typeof s] => [`super weights x${s.scale}`, s]),
  ];
  const { original: before, zeroed: after } = result.stopWords;
  return [
    `${ctx.model}: ${result.windows} windows of ${ctx.windowTokens} tokens (${result.scoredTokens} scored) from ${ctx.textFile}`,
    `super weights ${ctx.superWeights.map(coordinateId).join(', ')} (${ctx.superWeightsFrom})`,
    '',
    textTable(['condition', 'perplexity', 'mean NLL'], rows.map(([name, r]) => [name, r.perplexity, r.meanNll])),
    '',
    `stop-word probability (mean next-token probability of ${ctx.stopWords.map((w) => JSON.stringify(w)).join(' ')}):`,
    `  original ${before.toFixed(4)}, super weights zeroed ${after.toFixed(4)} (x${(after / before).toFixed(2)})`,
  ].join('\n');
}
