// One measurement of `npm run bench:weights` in its own process (so RSS and load time are its own):
// load a model with the given weights, then decode at each batch size. Prints one JSON line.
// Usage: node dist/bench/weights-run.js '{"modelDir": ..., "weights": {...}, "batches": [1, 8], "tokens": 64, "prompt": 32}'
import fs from 'node:fs';
import { EngineCore } from '../src/engine/engine-core.js';
import type { StepStats } from '../src/engine/protocol.js';
import { prepareServedWeights } from '../src/engine/served-weights.js';
import { openCheckpoint } from '../src/model/checkpoint.js';
import type { WeightOptions } from '../src/model/quantize/weight-format.js';
import { readModelSuperWeights } from '../src/superweights/model-super-weights.js';
import { generationRequest } from '../test/helpers/engine-harness.js';

export interface WeightsRunJob {
  modelDir: string;
  weights: Partial<WeightOptions>;
  batches: number[];
  tokens: number;
  prompt: number;
  threads?: number;
}

export interface WeightsRunResult {
  /** Seconds to quantize (0 when the copy was cached or the weights are float). */
  quantizeSeconds: number;
  /** Peak RSS while quantizing, bytes. */
  quantizePeakRss: number;
  cacheState: string | null;
  /** Seconds from EngineCore.load to ready (the quantized copy already made). */
  loadSeconds: number;
  /** RSS once loaded, and the process's peak, bytes. */
  rss: number;
  peakRss: number;
  weightBytes: number;
  decode: { batch: number; tokensPerSecond: number }[];
}

function peakRss(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

async function main(job: WeightsRunJob): Promise<WeightsRunResult> {
  const known = readModelSuperWeights(job.modelDir);
  const started = performance.now();
  // Quantizing on its own first, so its time and memory are not mixed with the session's.
  const served = prepareServedWeights({ checkpoint: openCheckpoint(job.modelDir), options: job.weights, device: { kind: 'cpu' }, knownSuperWeights: known });
  const quantizeSeconds = served.info.cache?.state === 'hit' || !served.info.cache ? 0 : (performance.now() - started) / 1000;
  const quantizePeakRss = peakRss();
  const maxBatch = Math.max(...job.batches);
  const steps: StepStats[] = [];
  const loadStarted = performance.now();
  const engine = await EngineCore.load(
    { modelDir: job.modelDir, device: { kind: 'cpu' }, instrument: true, limits: { maxNumSeqs: maxBatch, maxNumBatchedTokens: maxBatch * job.prompt }, knownSuperWeights: known, weights: job.weights, intraOpThreads: job.threads },
    ({ step }) => step && steps.push(step),
  );
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const rss = process.memoryUsage().rss;
  const prompt = Array.from({ length: job.prompt }, (_, i) => 65 + (i % 26));
  engine.submit(generationRequest({ id: 'warm', prompt: { tokenIds: prompt }, maxTokens: 4 }));
  while (await engine.step());
  const decode: WeightsRunResult['decode'] = [];
  for (const batch of job.batches) {
    steps.length = 0;
    for (let b = 0; b < batch; b++) engine.submit(generationRequest({ id: `b${batch}-${b}`, prompt: { tokenIds: prompt.map((t) => t + (b % 3)) }, maxTokens: job.tokens }));
    while (await engine.step());
    const d = steps.filter((s) => s.phase === 'decode');
    decode.push({ batch, tokensPerSecond: d.reduce((a, s) => a + s.batchSize, 0) / (d.reduce((a, s) => a + s.totalMs, 0) / 1000) });
  }
  const info = engine.info.weights;
  await engine.close();
  return { quantizeSeconds, quantizePeakRss, cacheState: served.info.cache?.state ?? null, loadSeconds, rss, peakRss: peakRss(), weightBytes: info.bytes, decode };
}

main(JSON.parse(process.argv[2]!) as WeightsRunJob).then(
  (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
  (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
