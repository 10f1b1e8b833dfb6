// Drives the real graph, session, KV cache and step packing for one sequence and returns raw logits,
// so tests can compare the engine with the reference forward pass number by number.
import { downProjElement, openCheckpoint, type Checkpoint } from '../../src/model/checkpoint.js';
import type { ComputeDtype } from '../../src/model/graph-context.js';
import type { DeviceRequest } from '../../src/engine/device.js';
import { TapAccumulator } from '../../src/engine/activation-frames.js';
import { HostKvCache } from '../../src/engine/kv-cache.js';
import type { ActivationFrame, GenerationRequest } from '../../src/engine/protocol.js';
import { analysisRequest } from '../../src/superweights/engine-run.js';
import { createModelSession, type ModelSession } from '../../src/engine/session.js';
import { prepareServedWeights, type ServedWeights } from '../../src/engine/served-weights.js';
import type { WeightOptions } from '../../src/model/quantize/weight-format.js';
import { packStep, type StepRow } from '../../src/engine/step-batch.js';
import { coordinateId, ORIGINAL_SWITCH, type SuperWeightCoordinate, type SwitchPlan } from '../../src/model/switch-plan.js';

export interface LogitsRun {
  /** Prefill: one [V] per prompt position; then one per decode step. */
  prefill: Float32Array[];
  decode: Float32Array[];
  /** The prompt's taps over all its chunks (instrumented graphs only). */
  prefillFrame?: ActivationFrame;
  coordinates: SuperWeightCoordinate[];
}

export interface RunOptions {
  plan?: SwitchPlan;
  known?: SuperWeightCoordinate[];
  /** Prefill the prompt in chunks of this many tokens (default: all at once). */
  chunk?: number;
}

export interface HarnessSession {
  checkpoint: Checkpoint;
  session: ModelSession;
  served: ServedWeights;
  /** Prefill `prompt` (through the prefill group), then feed `continuation` one token per step (the decode group). */
  run(prompt: number[], continuation: number[], options?: RunOptions): Promise<LogitsRun>;
  release(): Promise<void>;
}

/** Weights other than the checkpoint's float32: a precision and the super weights a quantized copy protects. */
export interface HarnessWeights {
  options: Partial<WeightOptions>;
  knownSuperWeights: SuperWeightCoordinate[];
}

/** `computeDtype` unset: the device's own choice (float32 on CPU). */
export async function openHarness(
  modelDir: string,
  instrument = true,
  computeDtype?: ComputeDtype,
  device: DeviceRequest = { kind: 'cpu' },
  weights?: HarnessWeights,
): Promise<HarnessSession> {
  const checkpoint = openCheckpoint(modelDir);
  const served = prepareServedWeights({ checkpoint, options: weights?.options ?? {}, device, knownSuperWeights: weights?.knownSuperWeights ?? [] });
  const session = await createModelSession(checkpoint, { device, instrument, computeDtype: served.computeDtype ?? computeDtype, quantized: served.quantized });
  const { spec } = checkpoint;
  const original = (c: SuperWeightCoordinate): number => downProjElement(checkpoint, c);
  const switchValues = { original, inGraph: (c: SuperWeightCoordinate) => served.inGraph(c, original(c)) };
  return {
    checkpoint,
    session,
    served,
    async run(prompt, continuation, { plan = ORIGINAL_SWITCH, known = [], chunk = prompt.length } = {}) {
      const ctx = { numLayers: spec.numLayers, knownSuperWeights: known, switchValues };
      const kv = new HostKvCache({ numLayers: spec.numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim, elements: session.info.computeDtype });
      kv.open('row');
      const split = (logits: Float32Array): Float32Array[] =>
        Array.from({ length: logits.length / spec.vocabSize }, (_, i) => logits.slice(i * spec.vocabSize, (i + 1) * spec.vocabSize));
      const taps = new TapAccumulator(spec.numLayers);
      let coordinates: SuperWeightCoordinate[] = [];
      const step = async (tokens: number[], start: number, decode: boolean): Promise<Float32Array[]> => {
        const row: StepRow = { kvId: 'row', tokens, startPosition: start, plan, logits: decode ? 'last' : 'all' };
        const { views } = kv.arrange(decode ? [['row'], []] : [[], ['row']], start + tokens.length);
        const packed = packStep(decode ? [row] : [], decode ? [] : [row], { decode: views[0]!, prefill: views[1]! }, kv.slots, ctx);
        const out = await session.run(packed.feeds, !decode);
        kv.write(out.present, packed.tokenKvIds, packed.tokenPositions);
        if (out.taps) taps.add(out.taps, 0, tokens.length, start, packed.coordinates);
        coordinates = packed.coordinates;
        return split(out.logits);
      };
      const prefill: Float32Array[] = [];
      for (let start = 0; start < prompt.length; start += chunk) prefill.push(...(await step(prompt.slice(start, start + chunk), start, false)));
      const reported = new Set([...known, ...plan.entries].map(coordinateId));
      const prefillFrame = session.info.instrumented ? taps.frame('prefill', 0, reported) : undefined;
      const decode: Float32Array[] = [];
      for (const [i, token] of continuation.entries()) decode.push(...(await step([token], prompt.length + i, true)));
      return { prefill, decode, prefillFrame, coordinates };
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
