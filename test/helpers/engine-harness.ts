// Drives the real graph, session, KV cache and step packing for one sequence and returns raw logits,
// so tests can compare the engine with the reference forward pass number by number.
import { downProjElement, openCheckpoint, type Checkpoint } from '../../src/model/checkpoint.js';
import type { ComputeDtype } from '../../src/model/graph-context.js';
import { BatchKvCache } from '../../src/engine/kv-cache.js';
import type { DeviceRequest } from '../../src/engine/device.js';
import type { GenerationRequest } from '../../src/engine/protocol.js';
import { analysisRequest } from '../../src/superweights/engine-run.js';
import { createModelSession, type ModelSession, type StepTaps } from '../../src/engine/session.js';
import { packStep } from '../../src/engine/step-batch.js';
import { ORIGINAL_SWITCH, type SuperWeightCoordinate, type SwitchPlan } from '../../src/model/switch-plan.js';

export interface LogitsRun {
  /** Prefill: one [V] per prompt position; then one per decode step. */
  prefill: Float32Array[];
  decode: Float32Array[];
  prefillTaps?: StepTaps;
  coordinates: SuperWeightCoordinate[];
}

export interface HarnessSession {
  checkpoint: Checkpoint;
  session: ModelSession;
  /** Prefill `prompt`, then feed `continuation` one token per step. */
  run(prompt: number[], continuation: number[], plan?: SwitchPlan, known?: SuperWeightCoordinate[]): Promise<LogitsRun>;
  release(): Promise<void>;
}

/** `computeDtype` unset: the device's own choice (float32 on CPU). */
export async function openHarness(modelDir: string, instrument = true, computeDtype?: ComputeDtype, device: DeviceRequest = { kind: 'cpu' }): Promise<HarnessSession> {
  const checkpoint = openCheckpoint(modelDir);
  const session = await createModelSession(checkpoint, { device, instrument, computeDtype });
  const { spec } = checkpoint;
  const weightValue = (c: SuperWeightCoordinate): number => downProjElement(checkpoint, c);
  return {
    checkpoint,
    session,
    async run(prompt, continuation, plan = ORIGINAL_SWITCH, known = []) {
      const ctx = { numLayers: spec.numLayers, slidingWindow: spec.slidingWindow, knownSuperWeights: known, weightValue };
      const kv = BatchKvCache.empty(
        { numLayers: spec.numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim, elements: session.info.computeDtype },
        ['row'],
        session.kvTransfer,
      );
      const split = (logits: Float32Array): Float32Array[] =>
        Array.from({ length: logits.length / spec.vocabSize }, (_, i) => logits.slice(i * spec.vocabSize, (i + 1) * spec.vocabSize));
      const first = packStep([{ tokens: prompt, startPosition: 0, plan, allLogits: true }], kv, ctx);
      const out = await session.run(first.feeds);
      kv.commit(out.present, first.newPositions);
      const decode: Float32Array[] = [];
      for (const [i, token] of continuation.entries()) {
        const step = packStep([{ tokens: [token], startPosition: prompt.length + i, plan, allLogits: false }], kv, ctx);
        const stepOut = await session.run(step.feeds);
        kv.commit(stepOut.present, step.newPositions);
        decode.push(...split(stepOut.logits));
      }
      return { prefill: split(out.logits), decode, prefillTaps: out.taps, coordinates: first.coordinates };
    },
    release: () => session.release(),
  };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}


/** A greedy request of 8 tokens unless overridden (the engine's analysis request with a test default). */
export function generationRequest(overrides: Partial<GenerationRequest> & Pick<GenerationRequest, 'id' | 'prompt'>): GenerationRequest {
  return analysisRequest({ maxTokens: 8, ...overrides });
}
