// Weights benchmark: decode tokens/s at batch 1 and 8, RSS, and load time (first, quantizing; then
// from the cached copy) for float32, float16, int8 and int4 weights of the same checkpoint. Every
// measurement runs in a fresh process; precisions alternate within each repeat; figures are medians.
// Usage: npm run bench:weights -- --model DIR|demo|random-100m [--weights float32,float16,int8,int4]
//   [--batches 1,8] [--tokens 64] [--prompt 32] [--repeats 3] [--threads N] [--block-size 32] [--compute int8]
//   [--cache DIR] [--json FILE]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { WEIGHTS_PRECISIONS, type ComputePrecision, type WeightOptions, type WeightsPrecision } from '../src/model/quantize/weight-format.js';
import { buildTinyCheckpoint, type TinyModelSpec } from '../test/helpers/tiny-checkpoint.js';
import type { WeightsRunJob, WeightsRunResult } from './weights-run.js';

const RUNNER = fileURLToPath(new URL('./weights-run.js', import.meta.url));
const DEMO_DIR = 'models/demo';
// Issue 2's ~100M benchmark shape, built here when no folder is given.
const RANDOM_100M: TinyModelSpec = { arch: 'llama', hiddenSize: 768, intermediateSize: 2048, numLayers: 12, numHeads: 12, numKvHeads: 4, vocabSize: 8192, maxPositionEmbeddings: 2048, seed: 1 };

interface Row {
  weights: WeightsPrecision;
  runs: WeightsRunResult[];
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);

function run(job: WeightsRunJob): WeightsRunResult {
  const out = execFileSync(process.execPath, [RUNNER, JSON.stringify(job)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!) as WeightsRunResult;
}

function main(): void {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      model: { type: 'string', default: 'demo' },
      weights: { type: 'string', default: WEIGHTS_PRECISIONS.join(',') },
      batches: { type: 'string', default: '1,8' },
      tokens: { type: 'string', default: '64' },
      prompt: { type: 'string', default: '32' },
      repeats: { type: 'string', default: '3' },
      threads: { type: 'string' },
      'block-size': { type: 'string', default: '32' },
      compute: { type: 'string' },
      cache: { type: 'string' },
      json: { type: 'string' },
    },
  });
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-weights-bench-'));
  let modelDir = values.model;
  if (values.model === 'demo') modelDir = DEMO_DIR;
  if (values.model === 'random-100m') {
    modelDir = path.join(scratch, 'random-100m');
    buildTinyCheckpoint(modelDir, RANDOM_100M);
  }
  // A fresh cache: the first repeat of a quantized precision quantizes, later ones load the copy.
  const cacheDir = values.cache ?? path.join(scratch, 'quantized');
  const precisions = values.weights.split(',') as WeightsPrecision[];
  const rows: Row[] = precisions.map((weights) => ({ weights, runs: [] }));
  try {
    for (let rep = 0; rep < Number(values.repeats); rep++) {
      for (const row of rows) {
        const weights: Partial<WeightOptions> = { precision: row.weights, blockSize: Number(values['block-size']), cacheDir, compute: values.compute as ComputePrecision | undefined };
        if (row.weights === 'float32' || row.weights === 'float16') delete weights.compute;
        const job: WeightsRunJob = { modelDir, weights, batches: values.batches.split(',').map(Number), tokens: Number(values.tokens), prompt: Number(values.prompt), threads: values.threads ? Number(values.threads) : undefined };
        const r = run(job);
        row.runs.push(r);
        process.stderr.write(`${row.weights} repeat ${rep}: ${r.decode.map((d) => `b${d.batch} ${d.tokensPerSecond.toFixed(1)} tok/s`).join(', ')}, rss ${mib(r.rss)} MiB, load ${r.loadSeconds.toFixed(1)} s${r.quantizeSeconds > 0 ? `, quantized in ${r.quantizeSeconds.toFixed(1)} s` : ''} (load avg ${os.loadavg()[0]!.toFixed(2)})\n`);
      }
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  const base = rows.find((r) => r.weights === 'float32');
  const rate = (row: Row, batch: number): number => median(row.runs.map((r) => r.decode.find((d) => d.batch === batch)!.tokensPerSecond));
  const batches = values.batches.split(',').map(Number);
  console.log(`| weights | ${batches.map((b) => `tok/s b${b}${base ? ' (x float32)' : ''}`).join(' | ')} | RSS MiB${base ? ' (share of float32)' : ''} | weight MiB | load s (first / cached) | quantize s, peak RSS MiB |`);
  console.log(`|---|${batches.map(() => '---').join('|')}|---|---|---|---|`);
  for (const row of rows) {
    const rss = median(row.runs.map((r) => r.rss));
    const first = row.runs[0]!;
    const cached = row.runs.slice(1).map((r) => r.loadSeconds);
    const cells = batches.map((b) => `${rate(row, b).toFixed(1)}${base ? ` (${(rate(row, b) / rate(base, b)).toFixed(2)}x)` : ''}`);
    const rssCell = `${mib(rss)}${base ? ` (${((100 * rss) / median(base.runs.map((r) => r.rss))).toFixed(0)}%)` : ''}`;
    const load = `${(first.loadSeconds + first.quantizeSeconds).toFixed(1)} / ${cached.length ? median(cached).toFixed(1) : '-'}`;
    const quantize = first.quantizeSeconds > 0 ? `${first.quantizeSeconds.toFixed(1)}, ${mib(first.quantizePeakRss)}` : '-';
    console.log(`| ${row.weights} | ${cells.join(' | ')} | ${rssCell} | ${mib(row.runs[0]!.weightBytes)} | ${load} | ${quantize} |`);
  }
  console.log(`\n${modelDir}; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), node ${process.version}; medians of ${values.repeats} repeats, each in a fresh process`);
  if (values.json) fs.writeFileSync(values.json, JSON.stringify(rows, null, 2));
}

main();
