// At load, the super activation of the detection prompt as the served weights produce it and as
// float32 weights do: the reference a quantized (or fine-tuned) deployment's live super activation
// is watched against (swserve_super_activation_reference, config/prometheus/alerts.yml). The float32
// value comes from a graph of only the layers up to the last super weight's (always an early one),
// so no float32 copy of the model is ever loaded.
import type { Checkpoint } from '../model/checkpoint.js';
import { coordinateId, ORIGINAL_SWITCH, SUPER_ACTIVATION_PROMPT, type SuperWeightCoordinate } from '../model/switch-plan.js';
import { HostKvCache } from './kv-cache.js';
import { createModelSession, type ModelSession } from './session.js';
import { packStep, type StepContext } from './step-batch.js';

export interface SuperActivationReference {
  prompt: string;
  /** The served weights' precision (float32, float16, int8, int4). */
  precision: string;
  values: { id: string; float32: number; served: number }[];
}

export interface ReferenceInput {
  checkpoint: Checkpoint;
  session: ModelSession;
  /** Whether the served graph already computes in float32 from the checkpoint's weights. */
  servedIsFloat32: boolean;
  precision: string;
  promptIds: number[];
  known: readonly SuperWeightCoordinate[];
  stepContext: StepContext;
  kvElements: 'float32' | 'float16';
  intraOpThreads?: number;
}

export async function measureSuperActivationReference(input: ReferenceInput): Promise<SuperActivationReference | undefined> {
  if (input.known.length === 0) return undefined;
  const served = await superActivations(input.session, input, input.kvElements);
  let float32 = served;
  if (!input.servedIsFloat32) {
    const layers = Math.max(...input.known.map((c) => c.layer)) + 1;
    const early = await createModelSession(input.checkpoint, {
      device: { kind: 'cpu' },
      instrument: true,
      computeDtype: 'float32',
      layers,
      intraOpThreads: input.intraOpThreads,
    });
    try {
      // The early graph holds the checkpoint's own weights: no correction in an original-mode row.
      const original = input.stepContext.switchValues.original;
      const floatContext: StepContext = { ...input.stepContext, switchValues: { original, inGraph: original } };
      float32 = await superActivations(early, { ...input, stepContext: floatContext }, 'float32');
    } finally {
      await early.release();
    }
  }
  return {
    prompt: SUPER_ACTIVATION_PROMPT,
    precision: input.precision,
    values: input.known.map((c) => ({ id: coordinateId(c), float32: float32.get(coordinateId(c))!, served: served.get(coordinateId(c))! })),
  };
}

/** The signed switch-value tap at each known super weight after one prefill of the prompt, at the token where its magnitude peaks. */
async function superActivations(session: ModelSession, input: ReferenceInput, elements: 'float32' | 'float16'): Promise<Map<string, number>> {
  const { spec } = input.checkpoint;
  const numLayers = session.info.layers;
  const kv = new HostKvCache({ numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim, elements });
  kv.open('reference');
  const { views } = kv.arrange([[], ['reference']], input.promptIds.length);
  const row = { kvId: 'reference', tokens: input.promptIds, startPosition: 0, plan: ORIGINAL_SWITCH, logits: 'none' as const };
  const packed = packStep([], [row], { decode: views[0]!, prefill: views[1]! }, kv.slots, input.stepContext);
  const out = await session.run(packed.feeds, true);
  const switchValues = out.taps!.switchValues;
  const K = packed.coordinates.length;
  const values = new Map<string, number>();
  packed.coordinates.forEach((c, k) => {
    let peak = 0;
    for (let t = 0; t < packed.feeds.tokens; t++) {
      const v = switchValues[t * K + k]!;
      if (Math.abs(v) > Math.abs(peak)) peak = v;
    }
    values.set(coordinateId(c), peak);
  });
  return values;
}
