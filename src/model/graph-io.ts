// Names and shapes of the decoder graph's inputs and outputs: the contract between the graph builder
// and the engine that feeds it. A step's tokens are flat: N = Bd + Np, first one token for each of
// the Bd decoding rows, then the Np prompt tokens of the Bp prefilling rows (row after row). Linear
// layers run on all N at once; attention runs per group (decode, prefill) against each row's cached
// slots. Slot s of a row holds position s, so a row's first `past_length` slots are its history;
// P is the cache's slot capacity (the same for both groups), D the head size.

export const INPUT = {
  /** int64 [N] */
  inputIds: 'input_ids',
  /** int64 [N]: RoPE positions. */
  positionIds: 'position_ids',
  /** int64 [Bd]: cached slots of each decoding row (its token's position). */
  decodePastLengths: 'decode.past_lengths',
  /** int64 [Bp]: cached slots of each prefilling row. */
  prefillPastLengths: 'prefill.past_lengths',
  /** int64 [Bp, Tp]: flat index of each row's t-th new token; padding repeats the row's last real token. */
  prefillTokenIndex: 'prefill.token_index',
  /** bool [Bp, Tp]: true for real tokens, false for padding. */
  prefillTokenMask: 'prefill.token_mask',
  /** int64 [Np]: where each prefill token (flat order) sits in the padded [Bp * Tp] layout. */
  prefillRealIndex: 'prefill.real_index',
  /** int64 [M]: flat tokens whose logits are wanted. */
  logitsIndex: 'logits_index',
  /** float32 [N, K]: per token, scale * W[row, col] - (the graph's value there) for each switched coordinate (layers in order); 0 leaves the weight as the graph holds it. */
  switchFactors: 'switch.factors',
  /** int64 [K]: output channels (HF row) of the switched coordinates. */
  switchRows: 'switch.rows',
  /** int64 [K]: input channels (HF column). */
  switchCols: 'switch.cols',
  /** int64 [L]: how many of the K coordinates each layer holds. */
  switchWidths: 'switch.widths',
} as const;

export const OUTPUT = {
  /** float32 [M, V] */
  logits: 'logits',
  /** float32 [M]: log(sum(exp(logits))) per row, so logprobs need no exp pass over the vocabulary in JS. */
  logitsLogSumExp: 'logits_logsumexp',
  /** float32 [N, L]: per token and layer, max |down_proj input| over channels. */
  tapInMax: 'taps.down_input_max',
  /** int64 [N, L]: the channel of that maximum. */
  tapInChannel: 'taps.down_input_channel',
  /** float32 [N, L]: max |down_proj output| (after the switch). */
  tapOutMax: 'taps.down_output_max',
  /** int64 [N, L] */
  tapOutChannel: 'taps.down_output_channel',
  /** float32 [N, K]: signed down_proj output at each switched coordinate's row. */
  tapSwitchValues: 'taps.switch_values',
} as const;

/** [Bd, kvH, P, D]: the decoding rows' cache, a view of the cache's first Bd rows. */
export const decodePastKey = (layer: number): string => `past.${layer}.decode.key`;
export const decodePastValue = (layer: number): string => `past.${layer}.decode.value`;
/** [Bp, kvH, P, D]: the prefilling rows' cache. */
export const prefillPastKey = (layer: number): string => `past.${layer}.prefill.key`;
export const prefillPastValue = (layer: number): string => `past.${layer}.prefill.value`;
/** [N, kvH, D]: the step's new keys (after RoPE) and values, for the engine to write into the cache. */
export const presentKey = (layer: number): string => `present.${layer}.key`;
export const presentValue = (layer: number): string => `present.${layer}.value`;

// Additive mask value: finite so a fully masked row can never produce NaN, and exp() of it is exactly 0 in float32.
export const MASKED = -1e9;
