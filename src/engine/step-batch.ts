// Packs one batch step into the graph's inputs: token ids and positions padded to the longest row,
// the additive attention bias (causal, padding, empty KV slots, sliding window), which logits to
// compute, and the switch feeds.
import { MASKED } from '../model/graph-io.js';
import type { SuperWeightCoordinate, SwitchPlan } from '../model/switch-plan.js';
import type { BatchKvCache } from './kv-cache.js';
import type { StepFeeds } from './session.js';
import { buildSwitchFeeds, type SwitchWeightValues } from './switch-feeds.js';

export interface StepRow {
  /** Tokens fed this step (a whole prompt at prefill, one token at decode). */
  tokens: number[];
  /** Position of tokens[0]. */
  startPosition: number;
  plan: SwitchPlan;
  /** Logits for every fed token (prompt logprobs), not only the last. */
  allLogits: boolean;
}

export interface PackedStep {
  feeds: StepFeeds;
  /** Per row, the positions of the new slots (-1 for padding), for the KV cache. */
  newPositions: Int32Array[];
  /** Per row, the offset of its first logits row and how many it has. */
  logitRows: { first: number; count: number }[];
  coordinates: SuperWeightCoordinate[];
}

export interface StepContext {
  numLayers: number;
  slidingWindow?: number;
  knownSuperWeights: readonly SuperWeightCoordinate[];
  switchValues: SwitchWeightValues;
}

export function packStep(rows: StepRow[], kv: BatchKvCache, ctx: StepContext): PackedStep {
  const batch = rows.length;
  const tokens = Math.max(...rows.map((r) => r.tokens.length));
  const past = kv.slots;
  const slots = past + tokens;
  const inputIds = new BigInt64Array(batch * tokens);
  const positionIds = new BigInt64Array(batch * tokens);
  const tokenMask = new Float32Array(batch * tokens);
  const newPositions: Int32Array[] = [];
  const logitIndex: number[] = [];
  const logitRows: { first: number; count: number }[] = [];

  rows.forEach((row, b) => {
    const positions = new Int32Array(tokens).fill(-1);
    row.tokens.forEach((id, t) => {
      inputIds[b * tokens + t] = BigInt(id);
      positionIds[b * tokens + t] = BigInt(row.startPosition + t);
      tokenMask[b * tokens + t] = 1;
      positions[t] = row.startPosition + t;
    });
    newPositions.push(positions);
    const first = row.allLogits ? 0 : row.tokens.length - 1;
    logitRows.push({ first: logitIndex.length, count: row.tokens.length - first });
    for (let t = first; t < row.tokens.length; t++) logitIndex.push(b * tokens + t);
  });

  const attentionBias = new Float32Array(batch * tokens * slots).fill(MASKED);
  rows.forEach((_, b) => {
    const pastPositions = kv.slotPositions(b);
    const fresh = newPositions[b]!;
    for (let t = 0; t < tokens; t++) {
      const base = (b * tokens + t) * slots;
      const query = fresh[t]!;
      if (query < 0) {
        // Padding attends to itself only, so its softmax stays finite.
        attentionBias[base + past + t] = 0;
        continue;
      }
      for (let s = 0; s < past; s++) {
        if (visible(pastPositions[s]!, query, ctx.slidingWindow)) attentionBias[base + s] = 0;
      }
      for (let s = 0; s <= t; s++) {
        if (visible(fresh[s]!, query, ctx.slidingWindow)) attentionBias[base + past + s] = 0;
      }
    }
  });

  const switches = buildSwitchFeeds(
    rows.map((r) => r.plan),
    ctx.knownSuperWeights,
    ctx.numLayers,
    ctx.switchValues,
  );
  return {
    feeds: {
      batch,
      tokens,
      pastSlots: past,
      inputIds,
      positionIds,
      attentionBias,
      logitsIndex: BigInt64Array.from(logitIndex, BigInt),
      tokenMask,
      restorePosition: switches.restorePosition,
      past: kv.past,
      switches: switches.layers,
    },
    newPositions,
    logitRows,
    coordinates: switches.coordinates,
  };
}

/** Causal, non-empty, and inside the sliding window when there is one (key visible iff query - key < window). */
function visible(key: number, query: number, window: number | undefined): boolean {
  return key >= 0 && key <= query && (window === undefined || query - key < window);
}
