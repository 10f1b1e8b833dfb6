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
import { EngineClient } from '../engine/engine-client.js';
import { quantizationChart } from '../superweights/charts/quantization-chart.js';
import { runQuantizationStudy, type ProtectMode, type StudyInput } from '../superweights/quantization-study.js';
import type { SuperWeightsInForce } from '../superweights/resolve-super-weights.js';
import { weightOptionProblems, type WeightOptions } from '../model/quantize/weight-format.js';
import { studyJson, studyText, type StudyContext } from './quantization-study-report.js';
import { resolveModelDir } from './model-location.js';
import { WEIGHT_FLAGS, weightOptionsFromFlags } from './weight-flags.js';
import { numberFlag } from './number-flag.js';
import { progressBar } from './progress-bar.js';
import { textTable } from './text-table.js';

// The paper scores 2048-token windows; 256 keeps a CPU run short and fits small models' training length.
const DEFAULT_WINDOW_TOKENS = 256;
// A model folder may ship its own evaluation text (the demo model does).
const MODEL_EVAL_TEXT = 'eval.txt';
const DEFAULT_CHART_FILE = 'swserve-sweep.svg';
const DEFAULT_STUDY_CHART_FILE = 'swserve-quantization.svg';

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
    chart: { type: 'string', value: 'FILE', default: DEFAULT_CHART_FILE, description: `Where to write the SVG chart of the scale sweep (the study's: ${DEFAULT_STUDY_CHART_FILE}).` },
    device: { type: 'string', value: DEVICE_CHOICES, default: 'cpu', description: 'Where the model runs.' },
    ...WEIGHT_FLAGS,
    'block-sizes': { type: 'string', value: 'N,N,...', description: 'Run the quantization study instead: perplexity and stop-word shift at each block size (with --weights int8|int4).' },
    protect: { type: 'string', value: 'on|off|both', default: 'both', description: 'In the study, quantize with the super weights protected, plain, or both.' },
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
  const weights = weightOptionsFromFlags(values);
  const study = values['block-sizes'] === undefined ? undefined : studyOptions(values['block-sizes'], values.protect, weights);
  const started = await startEngineWithSuperWeights({
    engine: { modelDir, device: parseDevice(values.device), instrument: true, limits: DEFAULT_SCHEDULER_LIMITS, weights: study ? { precision: 'float32' } : weights },
    superWeightsFile: values['super-weights'],
    aliases: [values.model],
    detectOnLoad: values.detect,
    onWarning: (m) => log(`warning: ${m}`),
    log,
  });
  const { engine, superWeights } = started;
  if (study) {
    await engine.close();
    const run = { modelDir, device: values.device, textFile, window: values.window, maxWindows: values['max-windows'], chart: values.chart, json: values.json, log };
    await runStudy(run, superWeights, study);
    return;
  }
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

interface StudyRun {
  modelDir: string;
  device: string;
  textFile: string;
  window?: string;
  maxWindows?: string;
  chart: string;
  json: boolean;
  log: (m: string) => void;
}

function studyOptions(blockSizes: string, protect: string, weights: Partial<WeightOptions>): Pick<StudyInput, 'blockSizes' | 'protect' | 'weights'> {
  if (weights.precision !== 'int8' && weights.precision !== 'int4') throw new UsageError('--block-sizes runs the quantization study: add --weights int8 or --weights int4');
  const sizes = blockSizes.split(',').map((s) => numberFlag(s.trim(), '--block-sizes', 0, 'integer'));
  const modes: Record<string, ProtectMode[]> = { on: ['on'], off: ['off'], both: ['off', 'on'] };
  if (!modes[protect]) throw new UsageError(`--protect ${protect}: expected on, off or both`);
  for (const blockSize of sizes) {
    const problems = weightOptionProblems({ ...(weights as WeightOptions), blockSize });
    if (problems.length > 0) throw new UsageError(problems.join('; '));
  }
  return { blockSizes: sizes, protect: modes[protect]!, weights };
}

async function runStudy(run: StudyRun, superWeights: SuperWeightsInForce, study: Pick<StudyInput, 'blockSizes' | 'protect' | 'weights'>): Promise<void> {
  const known = superWeights.superWeights.map(({ layer, row, col }) => ({ layer, row, col }));
  const start = (weights: Partial<WeightOptions>) =>
    EngineClient.start(
      { modelDir: run.modelDir, device: parseDevice(run.device), instrument: true, limits: DEFAULT_SCHEDULER_LIMITS, knownSuperWeights: known, weights },
      (m) => run.log(`warning: ${m}`),
      run.log,
    );
  const probe = await start({ precision: 'float32' });
  const info = probe.info;
  await probe.close();
  const windowTokens = numberFlag(run.window, '--window', Math.min(info.contextLength, DEFAULT_WINDOW_TOKENS), 'integer');
  const tokenizer = await loadTokenizer(run.modelDir);
  const ids = tokenizer.encode(fs.readFileSync(run.textFile, 'utf8'), { addSpecialTokens: false });
  const windows = cutWindows(ids, windowTokens, info.bosId, numberFlag(run.maxWindows, '--max-windows', Infinity, 'integer'));
  run.log(`${windows.length} windows of ${windowTokens} tokens from ${run.textFile}; block sizes ${study.blockSizes.join(', ')}`);
  const result = await runQuantizationStudy(start, { windows, superWeights: known, stopWordIds: info.stopWords.ids, ...study }, progressBar('study'));
  const ctx: StudyContext = {
    model: path.basename(path.resolve(run.modelDir)),
    textFile: run.textFile,
    windowTokens,
    superWeights: known.map(coordinateId),
    superWeightsFrom: superWeights.description,
    precision: study.weights.precision!,
  };
  const chart = run.chart === DEFAULT_CHART_FILE ? DEFAULT_STUDY_CHART_FILE : run.chart;
  fs.writeFileSync(chart, quantizationChart(result, ctx.model, ctx.precision));
  run.log(`chart: ${chart}`);
  process.stdout.write(run.json ? `${JSON.stringify(studyJson(result, ctx), null, 2)}\n` : `${studyText(result, ctx)}\n`);
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
