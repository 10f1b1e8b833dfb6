// `swserve generate`: one completion from the terminal through the same worker engine the server uses.
import { EngineClient } from '../engine/engine-client.js';
import type { ActivationFrame } from '../engine/protocol.js';
import { GREEDY_SAMPLING } from '../engine/sampler.js';
import { DEFAULT_SCHEDULER_LIMITS } from '../engine/scheduler.js';
import { openCheckpoint } from '../model/checkpoint.js';
import { resolveSuperWeights } from '../superweights/resolve-super-weights.js';
import { coordinateId } from '../model/switch-plan.js';
import { parseSwitchSetting } from '../superweights/switch-setting.js';
import { DEVICE_CHOICES, parseDevice } from '../engine/device.js';
import { parseCommandLine, UsageError, type CommandSpec, type FlagTable } from './command-line.js';
import { resolveModelDir } from './model-location.js';

export const GENERATE_COMMAND = {
  name: 'generate',
  summary: 'one completion from the terminal, through the same engine the server uses',
  flags: {
    model: { type: 'string', value: 'DIR|ORG/NAME', description: 'Model folder (Hugging Face layout) or hub repository id; required.' },
    prompt: { type: 'string', value: 'TEXT', description: 'Prompt text (the model\'s BOS is added); required.' },
    'max-tokens': { type: 'string', value: 'N', default: '64', description: 'Tokens to generate at most.' },
    'super-weights': { type: 'string', value: 'on|off|scale=X', default: 'on', description: 'What to do with the known super weights: keep, zero, or scale them.' },
    device: { type: 'string', value: DEVICE_CHOICES, default: 'cpu', description: 'Where the model runs.' },
    temperature: { type: 'string', value: 'T', default: '0', description: 'Sampling temperature; 0 is greedy.' },
    'top-p': { type: 'string', value: 'P', default: '1', description: 'Nucleus sampling mass.' },
    seed: { type: 'string', value: 'S', description: 'Random seed for sampling (default: a random one).' },
  },
} as const satisfies CommandSpec<FlagTable>;

export async function runGenerate(argv: string[]): Promise<void> {
  const parsed = parseCommandLine(GENERATE_COMMAND, argv);
  if (!parsed) return;
  const { values } = parsed;
  if (!values.model || values.prompt === undefined) throw new UsageError('--model and --prompt are required; see `swserve generate --help`');
  const asGiven = values.model;
  values.model = await resolveModelDir(values.model, (m) => process.stderr.write(`${m}\n`));
  // The model's own super_weights.json, else the registry by id or shapes.
  const inForce = resolveSuperWeights({ modelDir: values.model, spec: openCheckpoint(values.model).spec, aliases: [asGiven] });
  const known = inForce.superWeights.map(({ layer, row, col }) => ({ layer, row, col }));
  const switchPlan = parseSwitchSetting(values['super-weights'], known);
  const engine = await EngineClient.start({
    modelDir: values.model,
    device: parseDevice(values.device),
    instrument: true,
    limits: DEFAULT_SCHEDULER_LIMITS,
    knownSuperWeights: known,
  }, (message) => process.stderr.write(`warning: ${message}\n`));
  const { session } = engine.info;
  process.stderr.write(`${engine.info.architecture}, ${(engine.info.parameterCount / 1e6).toFixed(2)}M parameters on ${session.device}${session.fallbackReason ? ` (${session.fallbackReason})` : ''}\n`);
  const started = performance.now();
  let firstTokenAt = 0;
  let prefill: ActivationFrame | undefined;
  try {
    for await (const event of engine.generate({
      id: 'cli',
      prompt: { text: values.prompt },
      maxTokens: Number(values['max-tokens']),
      sampling: {
        ...GREEDY_SAMPLING,
        temperature: Number(values.temperature),
        topP: Number(values['top-p']),
        seed: values.seed === undefined ? undefined : Number(values.seed),
      },
      streamIndex: 0,
      stop: [],
      stopTokenIds: [],
      ignoreEos: false,
      minTokens: 0,
      promptLogprobs: null,
      switchPlan,
    })) {
      if (event.type === 'prompt') process.stdout.write(values.prompt);
      if (event.type === 'token') {
        firstTokenAt ||= performance.now();
        if (event.frame?.phase === 'prefill') prefill = event.frame;
        process.stdout.write(event.text);
      }
      if (event.type === 'error') throw new Error(event.message);
      if (event.type === 'finish') {
        process.stdout.write(`${event.text}\n`);
        const seconds = (performance.now() - started) / 1000;
        process.stderr.write(
          `finish=${event.reason} prompt=${event.promptTokens} completion=${event.completionTokens} ` +
            `ttft=${(firstTokenAt - started).toFixed(0)}ms ${(event.completionTokens / seconds).toFixed(1)} tok/s\n`,
        );
      }
    }
    for (const sa of prefill?.superActivations ?? []) {
      process.stderr.write(`super activation ${coordinateId(sa)}: ${sa.value.toFixed(2)} at position ${sa.position}\n`);
    }
  } finally {
    await engine.close();
  }
}
