// swserve side by side with llama.cpp (F32/F16/Q8_0/Q4_0 GGUFs of the same checkpoint) and
// Transformers.js (its Optimum export): decode tokens/s at each batch size, load time and memory, each
// engine in its own process, engines alternating within every repeat, medians of the repeats.
// Usage: npm run bench:peers -- [--model llama-25m|random-100m|llama-1b|DIR] [--engines swserve,llama.cpp:F32,...]
//   [--batches 1,8] [--tokens 64] [--prompt 32] [--repeats 3] [--threads 2] [--peers-dir DIR] [--json FILE]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ensureModelShape, MODEL_SHAPES } from '../model-shapes.js';
import { runEngineProcess, type EngineProcessResult } from './engine-process.js';
import { ENGINE_NAMES, prepareArtifact, type EngineJob } from './engines.js';

const MIB = 1024 * 1024;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface Summary {
  engine: string;
  name: string;
  loadMs: number;
  rssAfterLoadMiB: number;
  peakRssMiB: number;
  /** batch -> median decode tok/s, median output tok/s, median TTFT */
  batches: Map<number, { decode: number; output: number; firstTokenMs: number; tokens: number[][] }>;
}

function summarize(runs: EngineProcessResult[]): Summary {
  const batches = new Map<number, { decode: number; output: number; firstTokenMs: number; tokens: number[][] }>();
  for (const b of runs[0]!.batches.map((x) => x.batch)) {
    const of = runs.map((r) => r.batches.find((x) => x.batch === b)!);
    batches.set(b, {
      decode: median(of.map((x) => x.decodeTokensPerSecond)),
      output: median(of.map((x) => x.outputTokensPerSecond)),
      firstTokenMs: median(of.map((x) => x.medianFirstTokenMs)),
      tokens: of[0]!.tokens,
    });
  }
  return {
    engine: runs[0]!.engine,
    name: runs[0]!.name,
    loadMs: median(runs.map((r) => r.loadMs)),
    rssAfterLoadMiB: median(runs.map((r) => r.rssAfterLoadBytes)) / MIB,
    peakRssMiB: median(runs.map((r) => r.peakRssBytes)) / MIB,
    batches,
  };
}

/** Index of the first generated token where two engines' greedy outputs differ, "=" when none does. */
function agreement(a: number[][], b: number[][]): string {
  for (let r = 0; r < a.length; r++) {
    const i = a[r]!.findIndex((t, k) => t !== b[r]![k]);
    if (i >= 0) return `request ${r} differs at token ${i}`;
  }
  return 'same tokens';
}

function printTable(summaries: Summary[], batches: number[]): void {
  const base = summaries.find((s) => s.engine === 'swserve') ?? summaries[0]!;
  const header = ['engine', 'load s', 'RSS after load MiB', 'peak RSS MiB', ...batches.flatMap((b) => [`b=${b} decode tok/s`, `b=${b} ${base.engine}/engine`]), `b=${batches[0]} TTFT ms`, `greedy vs ${base.engine} (b=${batches[0]})`];
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const s of summaries) {
    const cells = [s.name, (s.loadMs / 1000).toFixed(2), s.rssAfterLoadMiB.toFixed(0), s.peakRssMiB.toFixed(0)];
    for (const b of batches) {
      const rate = s.batches.get(b)!.decode;
      cells.push(rate.toFixed(1), (base.batches.get(b)!.decode / rate).toFixed(2) + 'x');
    }
    const first = s.batches.get(batches[0]!)!;
    cells.push(first.firstTokenMs.toFixed(0), s === base ? '-' : agreement(base.batches.get(batches[0]!)!.tokens, first.tokens));
    console.log(`| ${cells.join(' | ')} |`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      model: { type: 'string', default: 'llama-25m' },
      engines: { type: 'string', default: ENGINE_NAMES.filter((e) => e !== 'swserve-plain').join(',') },
      batches: { type: 'string', default: '1,8' },
      tokens: { type: 'string', default: '64' },
      prompt: { type: 'string', default: '32' },
      repeats: { type: 'string', default: '3' },
      threads: { type: 'string', default: '2' },
      'peers-dir': { type: 'string' },
      json: { type: 'string' },
    },
  });
  const modelDir = MODEL_SHAPES[values.model] ? ensureModelShape(values.model) : path.resolve(values.model);
  const engines = values.engines.split(',');
  const batches = values.batches.split(',').map(Number);
  const promptLength = Number(values.prompt);
  const maxTokens = Number(values.tokens);
  const config = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8')) as { bos_token_id?: number };
  const bosId = config.bos_token_id ?? 1;
  const settings = { threads: Number(values.threads), maxBatch: Math.max(...batches), maxPromptTokens: promptLength, maxTokens, peersDir: values['peers-dir'] };
  const jobs: EngineJob[] = engines.map((engine) => ({ engine, modelDir, artifact: prepareArtifact(engine, modelDir), settings }));

  const runs = new Map<string, EngineProcessResult[]>(engines.map((e) => [e, []]));
  for (let rep = 0; rep < Number(values.repeats); rep++) {
    for (const job of jobs) {
      const result = await runEngineProcess(job, batches, promptLength, bosId);
      runs.get(job.engine)!.push(result);
      const rates = result.batches.map((b) => `b=${b.batch} ${b.decodeTokensPerSecond.toFixed(1)} tok/s`).join(', ');
      process.stderr.write(`repeat ${rep + 1}: ${result.name}: load ${(result.loadMs / 1000).toFixed(2)} s, ${rates}, load average ${os.loadavg()[0]!.toFixed(2)}\n`);
    }
  }
  const summaries = engines.map((e) => summarize(runs.get(e)!));
  console.log(`\nmodel ${values.model} (${modelDir}), prompt ${promptLength} tokens, ${maxTokens} generated, ${values.threads} threads, median of ${values.repeats}`);
  printTable(summaries, batches);
  console.log(`\n${new Date().toISOString()}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  if (values.json) fs.writeFileSync(values.json, JSON.stringify({ model: values.model, modelDir, promptLength, maxTokens, runs: Object.fromEntries(runs) }, null, 2));
}

void main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
