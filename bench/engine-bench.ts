// Engine throughput: decode tokens/s at several batch sizes, with and without instrumentation, and
// the share of decode step time spent outside session.run (input packing, KV handling, sampling).
// Usage: npm run bench:engine -- [--models demo,random-100m] [--batches 1,4,16] [--tokens 64] [--prompt 32] [--repeats 3]
// Plain and instrumented runs alternate and each figure is the median of the repeats, because single
// runs on a shared 2-core machine vary by more than the effect being measured.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readModelSuperWeights } from '../src/superweights/model-super-weights.js';
import { measure, medianRun, type Measurement } from './engine-measure.js';
import { ensureModelShape, MODEL_SHAPES } from './model-shapes.js';

const DEMO_DIR = 'models/demo';

interface Result extends Measurement {
  model: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      models: { type: 'string', default: 'demo,random-100m' },
      batches: { type: 'string', default: '1,4,16' },
      tokens: { type: 'string', default: '64' },
      prompt: { type: 'string', default: '32' },
      repeats: { type: 'string', default: '3' },
    },
  });
  const results: Result[] = [];
  for (const name of values.models.split(',')) {
    let dir: string;
    let label = name;
    if (name === 'demo' && fs.existsSync(path.join(DEMO_DIR, 'model.safetensors'))) {
      dir = DEMO_DIR;
    } else {
      const shape = name === 'demo' ? 'random-demo-size' : name;
      if (!MODEL_SHAPES[shape]) throw new Error(`unknown model ${name}; use demo or ${Object.keys(MODEL_SHAPES).join(', ')}`);
      if (name === 'demo') label = 'random-demo-size (models/demo not trained yet)';
      dir = ensureModelShape(shape);
    }
    const known = readModelSuperWeights(dir);
    for (const batch of values.batches.split(',').map(Number)) {
      const runs: Record<string, Measurement[]> = { false: [], true: [] };
      for (let rep = 0; rep < Number(values.repeats); rep++) {
        for (const instrument of [false, true]) {
          const r = await measure({ modelDir: dir, known, instrument, batch, tokens: Number(values.tokens), promptLength: Number(values.prompt) });
          runs[String(instrument)]!.push(r);
          process.stderr.write(`${label} batch=${batch} instrumented=${instrument}: ${r.decodeTokensPerSecond.toFixed(1)} tok/s\n`);
        }
      }
      for (const instrument of [false, true]) results.push({ model: label, ...medianRun(runs[String(instrument)]!) });
    }
  }
  console.log('| model | batch | tok/s plain | tok/s instrumented | instrumentation cost | outside session.run (instrumented) | prefill ms |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of results.filter((x) => x.instrumented)) {
    const plain = results.find((x) => !x.instrumented && x.model === r.model && x.batch === r.batch)!;
    const cost = 1 - r.decodeTokensPerSecond / plain.decodeTokensPerSecond;
    console.log(
      `| ${r.model} | ${r.batch} | ${plain.decodeTokensPerSecond.toFixed(1)} | ${r.decodeTokensPerSecond.toFixed(1)} | ${(cost * 100).toFixed(1)}% | ${(r.outsideRunShare * 100).toFixed(1)}% | ${r.prefillMs.toFixed(0)} |`,
    );
  }
  console.log(`\n${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), node ${process.version}`);
}

void main();
