// `npm run bench:memory`: the peak memory one request can take, measured on a 32k-vocabulary,
// 4k-context model (issue 9: the demo's 4k vocabulary hides it). Each request kind runs alone on a
// fresh server; the figure is the server's peak RSS (VmHWM) minus its RSS once warm and idle.
// Usage: npm run bench:memory -- [--prompt 4000]
import os from 'node:os';
import { parseArgs } from 'node:util';
import { declaredSuperWeightsFile, ensureModelShape, MODEL_SHAPES } from './model-shapes.js';
import { startServerProcess } from './serve/server-process.js';
import { workload } from './serve/workload.js';

interface RequestKind {
  name: string;
  path: string;
  body: (prompt: number[], model: string) => Record<string, unknown>;
}

const KINDS: RequestKind[] = [
  { name: 'completion, 16 tokens', path: '/v1/completions', body: (prompt, model) => ({ model, prompt, max_tokens: 16, ignore_eos: true }) },
  { name: 'echo + logprobs 5', path: '/v1/completions', body: (prompt, model) => ({ model, prompt, max_tokens: 1, echo: true, logprobs: 5 }) },
  { name: 'n = 8, 64 tokens', path: '/v1/completions', body: (prompt, model) => ({ model, prompt, max_tokens: 64, n: 8, temperature: 1, ignore_eos: true }) },
  {
    name: 'ablations/compare, 8 states, 64 tokens',
    path: '/v1/ablations/compare',
    body: (prompt, model) => ({ model, prompt, max_tokens: 64, states: ['on', 'off', { scale: 0.5 }, { scale: 2 }, { scale: 0 }, { scale: 1.5 }, { scale: 3 }, { scale: 0.2 }] }),
  },
];

const MIB = 2 ** 20;

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      prompt: { type: 'string', default: '4000' },
    },
  });
  const dir = ensureModelShape('random-32k-vocab');
  const promptLength = Number(values.prompt);
  console.log(`| request (prompt ${promptLength} tokens) | status | idle RSS MiB | peak RSS MiB | peak per request MiB |`);
  console.log('|---|---|---|---|---|');
  for (const kind of KINDS) {
    const server = await startServerProcess({ model: dir, 'max-tokens': '4096', 'super-weights': declaredSuperWeightsFile() });
    try {
      const [warm] = workload({ count: 1, mix: [[16, 1]], outputTokens: 4, contextLength: 4096, seed: 1 });
      await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: server.model, prompt: warm!.prompt, max_tokens: 4 }) });
      const idle = server.memory().rss;
      const [job] = workload({ count: 1, mix: [[promptLength, 1]], outputTokens: 64, contextLength: 4096, seed: 2 });
      const res = await fetch(`${server.url}${kind.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(kind.body(job!.prompt, server.model)) });
      const answer = await res.text();
      const { peak } = server.memory();
      if (!res.ok) process.stderr.write(`${kind.name}: ${res.status} ${answer}\n`);
      console.log(`| ${kind.name} | ${res.status} | ${(idle / MIB).toFixed(0)} | ${(peak / MIB).toFixed(0)} | ${((peak - idle) / MIB).toFixed(0)} |`);
    } finally {
      await server.stop();
    }
  }
  console.log(`\n${os.cpus().length} cores, node ${process.version}; model ${dir} (${JSON.stringify(MODEL_SHAPES['random-32k-vocab'])})`);
}

void main();
