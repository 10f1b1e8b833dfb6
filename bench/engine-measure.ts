// One engine throughput measurement, shared by the CPU and GPU benchmarks: a warm-up sequence, then
// `batch` sequences decoded together, timed from the engine's own step statistics.
import type { DeviceRequest } from '../src/engine/device.js';
import { EngineCore } from '../src/engine/engine-core.js';
import type { StepStats } from '../src/engine/protocol.js';
import type { SuperWeightCoordinate } from '../src/model/switch-plan.js';
import { generationRequest } from '../test/helpers/engine-harness.js';

export interface Measurement {
  instrumented: boolean;
  batch: number;
  decodeTokensPerSecond: number;
  outsideRunShare: number;
  prefillMs: number;
  /** Where it ran, and why not where asked (a device that could not start). */
  device: string;
  computeDtype: string;
  fallbackReason?: string;
}

export interface MeasureOptions {
  modelDir: string;
  known: SuperWeightCoordinate[];
  instrument: boolean;
  batch: number;
  tokens: number;
  promptLength: number;
  device?: DeviceRequest;
}

export async function measure(o: MeasureOptions): Promise<Measurement> {
  const steps: StepStats[] = [];
  const engine = await EngineCore.load(
    { modelDir: o.modelDir, device: o.device ?? { kind: 'cpu' }, instrument: o.instrument, limits: { maxNumSeqs: o.batch, maxNumBatchedTokens: o.batch * o.promptLength }, knownSuperWeights: o.known },
    ({ step }) => step && steps.push(step),
  );
  const prompt = Array.from({ length: o.promptLength }, (_, i) => 65 + (i % 26));
  // One warm-up sequence so allocator and kernel selection settle before timing.
  engine.submit(generationRequest({ id: 'warm', prompt: { tokenIds: prompt }, maxTokens: 4 }));
  while (await engine.step());
  steps.length = 0;
  for (let b = 0; b < o.batch; b++) {
    engine.submit(generationRequest({ id: `r${b}`, prompt: { tokenIds: prompt.map((t) => t + (b % 3)) }, maxTokens: o.tokens }));
  }
  while (await engine.step());
  const { session } = engine.info;
  await engine.close();
  const decode = steps.filter((s) => s.phase === 'decode');
  const decodeMs = decode.reduce((a, s) => a + s.totalMs, 0);
  const outsideMs = decode.reduce((a, s) => a + (s.totalMs - s.runMs), 0);
  const decodeTokens = decode.reduce((a, s) => a + s.batchSize, 0);
  return {
    instrumented: o.instrument,
    batch: o.batch,
    decodeTokensPerSecond: decodeTokens / (decodeMs / 1000),
    outsideRunShare: outsideMs / decodeMs,
    prefillMs: steps.filter((s) => s.phase === 'prefill').reduce((a, s) => a + s.totalMs, 0),
    device: session.device,
    computeDtype: session.computeDtype,
    fallbackReason: session.fallbackReason,
  };
}

/** The run with the median decode rate (its other figures come with it). */
export function medianRun(runs: Measurement[]): Measurement {
  const sorted = [...runs].sort((a, b) => a.decodeTokensPerSecond - b.decodeTokensPerSecond);
  return sorted[Math.floor(sorted.length / 2)]!;
}
