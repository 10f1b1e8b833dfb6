// Grouped-query attention of one step's tokens against the slot cache, per row group: decoding rows
// (one token each) and prefilling rows (a chunk each, padded to the longest). The masks are built in
// the graph from each row's cached length and its tokens' positions, once per step for all layers,
// so the engine sends O(B + N) numbers and never a [T, S] bias. New keys and values join the scores
// beside the cached ones instead of being concatenated into a copy of the cache.
import { scalar, toCompute, type GraphContext } from './graph-context.js';
import { INPUT, MASKED } from './graph-io.js';

export interface AttentionGroup {
  kind: 'decode' | 'prefill';
  /** [1]: new tokens per row: 1 for decode, the padded chunk length for prefill. */
  newSlots: string;
  /** Additive masks in compute dtype: cached slots [B, 1, 1, T, P], new tokens [B, 1, 1, T, T]. */
  pastMask: string;
  newMask?: string;
  /** decode: [1] end of the group's tokens in the flat order. */
  tokenCount?: string;
  /** prefill: [Bp, Tp] and [Np] (see graph-io.ts). */
  tokenIndex?: string;
  realIndex?: string;
}

export interface AttentionGroups {
  decode: AttentionGroup;
  prefill: AttentionGroup;
  /** [1]: the cache's slot capacity P. */
  pastSlots: string;
}

/** Declares the group inputs and builds both groups' masks; `pastKeyInput` is any [B, kvH, P, D] cache input. */
export function attentionGroups(ctx: GraphContext, positionIds: string, pastKeyInput: string): AttentionGroups {
  const { g } = ctx;
  const window = ctx.checkpoint.spec.slidingWindow;
  const decodeLengths = g.input(INPUT.decodePastLengths, 'int64', ['decode_rows']);
  const prefillLengths = g.input(INPUT.prefillPastLengths, 'int64', ['prefill_rows']);
  const tokenIndex = g.input(INPUT.prefillTokenIndex, 'int64', ['prefill_rows', 'chunk']);
  const tokenMask = g.input(INPUT.prefillTokenMask, 'bool', ['prefill_rows', 'chunk']);
  const realIndex = g.input(INPUT.prefillRealIndex, 'int64', ['prefill_tokens']);

  const pastSlots = g.op('Gather', [g.op('Shape', [pastKeyInput]), g.int64s([2])], { axis: 0 });
  const slots = int64Range(ctx, pastSlots);
  const zero = scalar(ctx, 0);
  const masked = scalar(ctx, MASKED);
  const additive = (visible: string): string => g.op('Where', [visible, zero, masked]);
  const inWindow = (query: string, key: string): string | undefined =>
    window === undefined ? undefined : g.op('Less', [g.op('Sub', [query, key]), g.int64s([window])]);
  const both = (a: string, b: string | undefined): string => (b === undefined ? a : g.op('And', [a, b]));

  // Decode rows: the group is the first Bd flat tokens; each sees its row's cached slots and itself.
  const decodeRows = g.op('Shape', [decodeLengths]);
  const decodePositions = g.op('Slice', [positionIds, g.int64s([0]), decodeRows, g.int64s([0])]);
  const decodeVisible = both(
    g.op('Less', [g.op('Unsqueeze', [slots, g.int64s([0])]), g.op('Unsqueeze', [decodeLengths, g.int64s([1])])]),
    inWindow(g.op('Unsqueeze', [decodePositions, g.int64s([1])]), g.op('Unsqueeze', [slots, g.int64s([0])])),
  );
  const decodeMask = g.op('Unsqueeze', [additive(decodeVisible), g.int64s([1, 2, 3])]);

  // Prefill rows: cached slots below the row's length (and in the window), then the chunk causally.
  const chunk = g.op('Gather', [g.op('Shape', [tokenIndex]), g.int64s([1])], { axis: 0 });
  const positions = g.op('Gather', [positionIds, tokenIndex], { axis: 0 });
  const queryPositions = g.op('Unsqueeze', [positions, g.int64s([2])]);
  const pastVisible = both(
    g.op('Less', [g.op('Unsqueeze', [slots, g.int64s([0, 1])]), g.op('Unsqueeze', [prefillLengths, g.int64s([1, 2])])]),
    inWindow(queryPositions, g.op('Unsqueeze', [slots, g.int64s([0, 1])])),
  );
  const steps = int64Range(ctx, chunk);
  const queryStep = g.op('Unsqueeze', [steps, g.int64s([1])]);
  const keyStep = g.op('Unsqueeze', [steps, g.int64s([0])]);
  const causal = g.op('And', [g.op('LessOrEqual', [keyStep, queryStep]), g.op('Unsqueeze', [tokenMask, g.int64s([1])])]);
  const windowed = both(causal, inWindow(queryPositions, g.op('Unsqueeze', [positions, g.int64s([1])])));
  // A padding query also sees itself, so its softmax stays finite (its output is dropped).
  const newVisible = g.op('Or', [windowed, g.op('Equal', [keyStep, queryStep])]);
  return {
    pastSlots,
    decode: { kind: 'decode', newSlots: g.int64s([1]), tokenCount: decodeRows, pastMask: decodeMask },
    prefill: {
      kind: 'prefill',
      newSlots: chunk,
      tokenIndex,
      realIndex,
      pastMask: g.op('Unsqueeze', [additive(pastVisible), g.int64s([1, 2])]),
      newMask: g.op('Unsqueeze', [additive(newVisible), g.int64s([1, 2])]),
    },
  };
}

/**
 * One group's attention output [group tokens, heads * D] in flat order. `q` [N, heads, D] is already
 * scaled by 1/sqrt(D); `k`, `v` [N, kvH, D] are the step's new keys and values.
 */
export function groupAttention(ctx: GraphContext, group: AttentionGroup, groups: AttentionGroups, q: string, k: string, v: string, pastKey: string, pastValue: string): string {
  const { g } = ctx;
  const { numHeads, numKvHeads, headDim } = ctx.checkpoint.spec;
  const perGroup = numHeads / numKvHeads;
  let query: string;
  let key: string;
  let value: string;
  if (group.kind === 'decode') {
    const take = (x: string): string => g.op('Slice', [x, g.int64s([0]), group.tokenCount!, g.int64s([0])]);
    // [Bd, heads, D] -> [Bd, kvH, group, 1, D]; keys and values [Bd, kvH, 1, 1, D].
    query = g.op('Reshape', [take(q), g.int64s([-1, numKvHeads, perGroup, 1, headDim])]);
    key = g.op('Reshape', [take(k), g.int64s([-1, numKvHeads, 1, 1, headDim])]);
    value = g.op('Reshape', [take(v), g.int64s([-1, numKvHeads, 1, 1, headDim])]);
  } else {
    const padded = (x: string): string => g.op('Gather', [x, group.tokenIndex!], { axis: 0 });
    // [Bp, Tp, heads, D] -> [Bp, kvH, group, Tp, D]; keys and values [Bp, kvH, 1, Tp, D].
    const grouped = g.op('Reshape', [padded(q), g.int64s([0, 0, numKvHeads, perGroup, headDim])]);
    query = g.op('Transpose', [grouped], { perm: [0, 2, 3, 1, 4] });
    key = g.op('Unsqueeze', [g.op('Transpose', [padded(k)], { perm: [0, 2, 1, 3] }), g.int64s([2])]);
    value = g.op('Unsqueeze', [g.op('Transpose', [padded(v)], { perm: [0, 2, 1, 3] }), g.int64s([2])]);
  }
  const cachedKeys = g.op('Transpose', [g.op('Unsqueeze', [pastKey, g.int64s([2])])], { perm: [0, 1, 2, 4, 3] });
  const pastScores = g.op('Add', [g.op('MatMul', [query, cachedKeys]), group.pastMask]);
  const newScores = g.op('MatMul', [query, g.op('Transpose', [key], { perm: [0, 1, 2, 4, 3] })]);
  const scores = g.op('Concat', [pastScores, group.newMask ? g.op('Add', [newScores, group.newMask]) : newScores], { axis: -1 });
  const probs = g.op('Softmax', [scores], { axis: -1 });
  const [pastProbs, newProbs] = g.node('Split', [probs, g.op('Concat', [groups.pastSlots, group.newSlots], { axis: 0 })], { axis: -1 }, 2) as [string, string];
  const context = g.op('Add', [
    g.op('MatMul', [pastProbs, g.op('Unsqueeze', [pastValue, g.int64s([2])])]),
    g.op('MatMul', [newProbs, value]),
  ]);
  if (group.kind === 'decode') return g.op('Reshape', [context, g.int64s([-1, numHeads * headDim])]);
  const rows = g.op('Reshape', [g.op('Transpose', [context], { perm: [0, 3, 1, 2, 4] }), g.int64s([-1, numHeads * headDim])]);
  return g.op('Gather', [rows, group.realIndex!], { axis: 0 });
}

/** int64 [n] = 0, 1, ..., n - 1 for a [1]-shaped n. */
export function int64Range(ctx: GraphContext, count: string): string {
  const { g } = ctx;
  const scalarOf = (values: string): string => g.op('Squeeze', [values, g.int64s([0])]);
  return g.op('Range', [scalarOf(g.int64s([0])), scalarOf(count), scalarOf(g.int64s([1]))]);
}

/** The scale 1/sqrt(D) as a compute-dtype constant (folded into the query's RoPE tables). */
export function attentionScale(ctx: GraphContext): string {
  return toCompute(ctx, ctx.g.constant({ dtype: 'float32', dims: [], values: [1 / Math.sqrt(ctx.checkpoint.spec.headDim)] }, 'attn_scale'));
}
