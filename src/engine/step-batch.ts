// Packs one step into the graph's inputs (graph-io.ts): decode rows' tokens first, then the prefill
// rows' chunks, flat; the prefill group's padded layout; which tokens need logits; the switch feeds.
// No mask is built here: the graph derives it from the rows' cached lengths and positions.
import type { SuperWeightCoordinate, SwitchPlan } from '../model/switch-plan.js';
import type { LayerKv, StepFeeds } from './session.js';
import { buildSwitchFeeds, type SwitchWeightValues } from './switch-feeds.js';

export interface StepRow {
  /** The sequence whose cache row this is. */
  kvId: string;
  /** Tokens fed this step (one at decode, a chunk at prefill). */
  tokens: readonly number[];
  /** Position of tokens[0], which is also the row's cached length. */
  startPosition: number;
  plan: SwitchPlan;
  /** Which of its tokens need logits: all (prompt scoring), the last (it samples next), or none (a mid-prompt chunk). */
  logits: 'all' | 'last' | 'none';
}

export interface PackedRow {
  /** Its first flat token. */
  token: number;
  /** Its first logits row and how many it has. */
  logit: number;
  logits: number;
}

export interface PackedStep {
  feeds: StepFeeds;
  /** Per flat token, its cache row's sequence and position (for the cache write). */
  tokenKvIds: string[];
  tokenPositions: Int32Array;
  /** Decode rows, then prefill rows, in the order given. */
  rows: PackedRow[];
  coordinates: SuperWeightCoordinate[];
}

export interface StepContext {
  numLayers: number;
  knownSuperWeights: readonly SuperWeightCoordinate[];
  switchValues: SwitchWeightValues;
}

/** `past` holds the decode rows' and the prefill rows' cache views, in the rows' order; `slots` is their P. */
export function packStep(decode: readonly StepRow[], prefill: readonly StepRow[], past: { decode: LayerKv[]; prefill: LayerKv[] }, slots: number, ctx: StepContext): PackedStep {
  const all = [...decode, ...prefill];
  const tokens = all.reduce((a, r) => a + r.tokens.length, 0);
  const chunk = Math.max(1, ...prefill.map((r) => r.tokens.length));
  const inputIds = new BigInt64Array(tokens);
  const positionIds = new BigInt64Array(tokens);
  const tokenKvIds: string[] = [];
  const tokenPositions = new Int32Array(tokens);
  const logitsIndex: number[] = [];
  const rows: PackedRow[] = [];
  let token = 0;
  for (const row of all) {
    const firstLogit = logitsIndex.length;
    row.tokens.forEach((id, t) => {
      inputIds[token + t] = BigInt(id);
      positionIds[token + t] = BigInt(row.startPosition + t);
      tokenPositions[token + t] = row.startPosition + t;
      tokenKvIds.push(row.kvId);
    });
    const n = row.tokens.length;
    if (row.logits === 'all') for (let t = 0; t < n; t++) logitsIndex.push(token + t);
    else if (row.logits === 'last') logitsIndex.push(token + n - 1);
    rows.push({ token, logit: firstLogit, logits: logitsIndex.length - firstLogit });
    token += n;
  }

  const prefillTokenIndex = new BigInt64Array(prefill.length * chunk);
  const prefillTokenMask = new Uint8Array(prefill.length * chunk);
  const prefillRealIndex = new BigInt64Array(tokens - decode.length);
  let real = 0;
  prefill.forEach((row, b) => {
    const first = rows[decode.length + b]!.token;
    for (let t = 0; t < chunk; t++) {
      const present = t < row.tokens.length;
      prefillTokenIndex[b * chunk + t] = BigInt(first + (present ? t : row.tokens.length - 1));
      prefillTokenMask[b * chunk + t] = present ? 1 : 0;
      if (present) prefillRealIndex[real++] = BigInt(b * chunk + t);
    }
  });

  const switches = buildSwitchFeeds(
    all.map((r) => ({ plan: r.plan, positions: r.tokens.map((_, t) => r.startPosition + t) })),
    ctx.knownSuperWeights,
    ctx.numLayers,
    ctx.switchValues,
  );
  return {
    feeds: {
      tokens,
      decodeRows: decode.length,
      prefillRows: prefill.length,
      chunk,
      slots,
      inputIds,
      positionIds,
      decodePastLengths: BigInt64Array.from(decode, (r) => BigInt(r.startPosition)),
      prefillPastLengths: BigInt64Array.from(prefill, (r) => BigInt(r.startPosition)),
      prefillTokenIndex,
      prefillTokenMask,
      prefillRealIndex,
      logitsIndex: BigInt64Array.from(logitsIndex, BigInt),
      past,
      switches: switches.inputs,
    },
    tokenKvIds,
    tokenPositions,
    rows,
    coordinates: switches.coordinates,
  };
}
