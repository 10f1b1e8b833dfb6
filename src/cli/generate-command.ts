// `swserve generate`: one completion from the terminal through the same worker engine the server uses.
import { parseArgs } from 'node:util';
import { EngineClient } from '../engine/engine-client.js';
import type { ActivationFrame } from '../engine/protocol.js';
import { GREEDY_SAMPLING } from '../engine/sampler.js';
import { DEFAULT_SCHEDULER_LIMITS } from '../engine/scheduler.js';
import { openCheckpoint } from '../model/checkpoint.js';
import { resolveSuperWeights } from '../superweights/resolve-super-weights.js';
import { coordinateId } from '../model/switch-plan.js';
import { parseSwitchSetting } from '../superweights/switch-setting.js';
import { parseDevice } from '../engine/device.js';
import { resolveModelDir } from './model-location.js';

export const GENERATE_USAGE = `swserve generate --model DIR --prompt TEXT [--max-tokens N] [--super-weights on|off|scale=X]
                 [--device cpu|cuda[:N]] [--temperature T] [--top-p P] [--seed S]`;

export async function runGenerate(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string' },
      'max-tokens': { type: 'string', default: '64' },
      'super-weights': { type: 'string', default: 'on' },
      device: { type: 'string', default: 'cpu' },
      temperature: { type: 'string', default: '0' },
      'top-p': { type: 'string', default: '1' },
      seed: { type: 'string' },
    },
  });
  if (!values.model || values.prompt === undefined) throw new Error(`usage: ${GENERATE_USAGE}`);
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
