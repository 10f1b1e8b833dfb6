// Engine throughput: decode tokens/s at several batch sizes, with and without instrumentation, and
// the share of decode step time spent outside session.run (input packing, KV handling, sampling).
// Usage: npm run bench:engine -- [--models demo,random-100m] [--batches 1,4,16] [--tokens 64] [--prompt 32] [--repeats 3]
// Plain and instrumented runs alternate and each figure is the median of the repeats, because single
// runs on a shared 2-core machine vary by more than the effect being measured.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EngineCore } from '../src/engine/engine-core.js';
import type { StepStats } from '../src/engine/protocol.js';
import { readModelSuperWeights } from '../src/superweights/model-super-weights.js';
import type { SuperWeightCoordinate } from '../src/model/switch-plan.js';
import { generationRequest } from '../test/helpers/engine-harness.js';
import { buildTinyCheckpoint, type TinyModelSpec } from '../test/helpers/tiny-checkpoint.js';

const DEMO_DIR = 'models/demo';

// A random Llama of about 100M parameters (issue 2's benchmark shape), and a demo-sized stand-in
// for when models/demo has not been trained yet.
const RANDOM_MODELS: Record<string, TinyModelSpec> = {
  'random-100m': { arch: 'llama', hiddenSize: 768, intermediateSize: 2048, numLayers: 12, numHeads: 12, numKvHeads: 4, vocabSize: 8192, maxPositionEmbeddings: 2048, seed: 1 },
  'random-demo-size': { arch: 'llama', hiddenSize: 256, intermediateSize: 768, numLayers: 6, numHeads: 8, numKvHeads: 4, vocabSize: 4096, maxPositionEmbeddings: 1024, seed: 1 },
};

interface Result {
  model: string;
  instrumented: boolean;
  batch: number;
  decodeTokensPerSecond: number;
  outsideRunShare: number;
  prefillMs: number;
}

async function measure(modelDir: string, known: SuperWeightCoordinate[], instrument: boolean, batch: number, tokens: number, promptLength: number): Promise<Omit<Result, 'model'>> {
  const steps: StepStats[] = [];
  const engine = await EngineCore.load(
    { modelDir, device: { kind: 'cpu' }, instrument, limits: { maxNumSeqs: batch, maxNumBatchedTokens: batch * promptLength }, knownSuperWeights: known },
    ({ step }) => step && steps.push(step),
  );
  const prompt = Array.from({ length: promptLength }, (_, i) => 65 + (i % 26));
  // One warm-up sequence so allocator and kernel selection settle before timing.
  engine.submit(generationRequest({ id: 'warm', prompt: { tokenIds: prompt }, maxTokens: 4 }));
  while (await engine.step());
  steps.length = 0;
  for (let b = 0; b < batch; b++) {
    engine.submit(generationRequest({ id: `r${b}`, prompt: { tokenIds: prompt.map((t) => t + (b % 3)) }, maxTokens: tokens }));
  }
  while (await engine.step());
  await engine.close();
  const decode = steps.filter((s) => s.phase === 'decode');
  const decodeMs = decode.reduce((a, s) => a + s.totalMs, 0);
  const outsideMs = decode.reduce((a, s) => a + (s.totalMs - s.runMs), 0);
  const decodeTokens = decode.reduce((a, s) => a + s.batchSize, 0);
  return {
    instrumented: instrument,
    batch,
    decodeTokensPerSecond: decodeTokens / (decodeMs / 1000),
    outsideRunShare: outsideMs / decodeMs,
    prefillMs: steps.filter((s) => s.phase === 'prefill').reduce((a, s) => a + s.totalMs, 0),
  };
}

/** The run with the median decode rate (its other figures come with it). */
function medianRun(runs: Omit<Result, 'model'>[]): Omit<Result, 'model'> {
  const sorted = [...runs].sort((a, b) => a.decodeTokensPerSecond - b.decodeTokensPerSecond);
  return sorted[Math.floor(sorted.length / 2)]!;
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
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-bench-'));
  const results: Result[] = [];
  try {
    for (const name of values.models.split(',')) {
      let dir: string;
      let label = name;
      if (name === 'demo' && fs.existsSync(path.join(DEMO_DIR, 'model.safetensors'))) {
        dir = DEMO_DIR;
      } else {
        const spec = RANDOM_MODELS[name === 'demo' ? 'random-demo-size' : name];
        if (!spec) throw new Error(`unknown model ${name}; use demo or ${Object.keys(RANDOM_MODELS).join(', ')}`);
        if (name === 'demo') label = 'random-demo-size (models/demo not trained yet)';
        dir = path.join(scratch, name);
        buildTinyCheckpoint(dir, spec);
      }
      const known = readModelSuperWeights(dir);
      for (const batch of values.batches.split(',').map(Number)) {
        const runs: Record<string, Omit<Result, 'model'>[]> = { false: [], true: [] };
        for (let rep = 0; rep < Number(values.repeats); rep++) {
          for (const instrument of [false, true]) {
            const r = await measure(dir, known, instrument, batch, Number(values.tokens), Number(values.prompt));
            runs[String(instrument)]!.push(r);
            process.stderr.write(`${label} batch=${batch} instrumented=${instrument}: ${r.decodeTokensPerSecond.toFixed(1)} tok/s\n`);
          }
        }
        for (const instrument of [false, true]) results.push({ model: label, ...medianRun(runs[String(instrument)]!) });
      }
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
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
