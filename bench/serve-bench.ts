// `npm run bench:serve`: a load generator in the style of `vllm bench serve` against swserve: streaming
// /v1/completions at fixed concurrency and at a Poisson rate over a prompt-length mix with long
// prompts, plus the scenarios of issue 11 (mixed switch states, instrumented vs plain graph, long
// prompts joining running streams, growth with prompt length and model size). Results go to
// bench/results/ as JSON, markdown and SVG. Not part of npm test.
// Usage: npm run bench:serve -- [--models demo,llama-25m,random-100m,llama-1b | --url URL] [--scenarios ...]
//   [--concurrency 1,2,4,8,16,32] [--output-tokens 64] [--requests-per-level 4] [--repeats 3] [--rate R]
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { declaredSuperWeightsFile, ensureModelShape, MODEL_SHAPES } from './model-shapes.js';
import { concurrencySweep, instrumentation, longPrompts, poissonRate, promptLength, switchMix, type BenchContext, type ScenarioResult } from './serve/scenarios.js';
import { startServerProcess, type ServerProcess } from './serve/server-process.js';
import { writeReport } from './serve/report.js';

const SCENARIOS = ['concurrency', 'poisson', 'switch-mix', 'instrumentation', 'long-prompts', 'prompt-length'];
const RESULTS_DIR = new URL('../../bench/results/', import.meta.url);
const DEMO_DIR = 'models/demo';
// Poisson runs at this share of the throughput the sweep measured at concurrency 8 (a busy, not saturated, server).
const POISSON_LOAD = 0.7;
const PROMPT_LENGTHS = [128, 512, 2048];

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      models: { type: 'string', default: 'demo,random-100m' },
      url: { type: 'string' },
      scenarios: { type: 'string', default: SCENARIOS.join(',') },
      concurrency: { type: 'string', default: '1,2,4,8,16,32' },
      'output-tokens': { type: 'string', default: '64' },
      'requests-per-level': { type: 'string', default: '4' },
      repeats: { type: 'string', default: '3' },
      rate: { type: 'string' },
      // Extra serve flags for every server the bench starts, as k=v,k=v.
      flags: { type: 'string', default: '' },
    },
  });
  const scenarios = new Set(values.scenarios.split(','));
  const extraFlags = Object.fromEntries(values.flags.split(',').filter(Boolean).map((kv) => kv.split('=') as [string, string]));
  const log = (m: string): void => void process.stderr.write(`${m}\n`);
  const results: ScenarioResult[] = [];
  const models: Record<string, string> = {};
  const targets = values.url ? [{ name: 'external', flags: undefined }] : values.models.split(',').map((name) => ({ name, flags: modelFlags(name) }));
  for (const { name, flags: modelFlagSet } of targets) {
    let server: ServerProcess | undefined;
    const serverFlags = { ...modelFlagSet, ...extraFlags };
    if (modelFlagSet) {
      log(`${name}: starting swserve on ${modelFlagSet.model}`);
      server = await startServerProcess(serverFlags);
      log(`  healthy after ${server.secondsToHealthy.toFixed(2)} s, RSS ${(server.memory().rss / 2 ** 20).toFixed(0)} MiB`);
    }
    const url = server?.url ?? values.url!;
    const meta = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string; meta: { context_length: number; parameters: number } }[] };
    const model = meta.data[0]!;
    models[name] = `${model.id}, ${(model.meta.parameters / 1e6).toFixed(1)}M parameters, context ${model.meta.context_length}${server ? `, healthy after ${server.secondsToHealthy.toFixed(2)} s` : ''}`;
    const ctx: BenchContext = {
      model: name,
      target: { url, model: model.id },
      server,
      contextLength: model.meta.context_length,
      outputTokens: Number(values['output-tokens']),
      requestsPerLevel: Number(values['requests-per-level']),
      repeats: Number(values.repeats),
      variant: modelFlagSet ? (flags) => startServerProcess({ ...serverFlags, ...flags }) : undefined,
      log,
    };
    try {
      let sweep: ScenarioResult | undefined;
      if (scenarios.has('concurrency')) results.push((sweep = await concurrencySweep(ctx, values.concurrency.split(',').map(Number))));
      if (scenarios.has('poisson')) {
        const at8 = sweep?.rows.find((r) => r.concurrency === 8)?.['req/s'] as number | undefined;
        const rate = values.rate ? Number(values.rate) : (at8 ?? 1) * POISSON_LOAD;
        results.push(await poissonRate(ctx, rate, Math.max(16, 4 * Number(values['requests-per-level']) * 4)));
      }
      if (scenarios.has('switch-mix')) results.push(await switchMix(ctx));
      if (scenarios.has('instrumentation')) {
        const r = await instrumentation(ctx);
        if (r) results.push(r);
      }
      if (scenarios.has('long-prompts')) results.push(await longPrompts(ctx));
      if (scenarios.has('prompt-length')) results.push(await promptLength(ctx, PROMPT_LENGTHS));
    } finally {
      await server?.stop();
    }
  }
  const cpus = os.cpus();
  const header = {
    date: new Date().toISOString(),
    machine: `${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, load average at the end ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`,
    command: `npm run bench:serve -- ${process.argv.slice(2).join(' ')}`.trim(),
    models,
  };
  const files = writeReport(fileURLToPath(RESULTS_DIR), header, results);
  for (const r of results) for (const c of r.checks) log(`${r.model} ${r.scenario}: ${c.name} = ${c.value.toFixed(3)} (target ${c.atMost ? '<=' : '>='} ${c.limit}: ${c.met ? 'met' : 'missed'})`);
  console.log(fs.readFileSync(files.markdown, 'utf8'));
  log(`wrote ${files.json}, ${files.markdown}, ${files.svg}`);
}

/**
 * The serve flags for a model: the demo, or a random checkpoint of a named shape (written once into the
 * model cache) with one coordinate declared a super weight, so "off" requests switch a real weight
 * (random weights have no super weight; the bench measures what the switch costs, not what it does).
 */
function modelFlags(name: string): Record<string, string> {
  if (name === 'demo') return { model: DEMO_DIR };
  if (!MODEL_SHAPES[name]) throw new Error(`unknown model ${name}: use demo, ${Object.keys(MODEL_SHAPES).join(', ')} or --url`);
  return { model: ensureModelShape(name), 'super-weights': declaredSuperWeightsFile() };
}

void main();
