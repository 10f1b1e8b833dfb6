// Names and shapes of the decoder graph's inputs and outputs: the contract between the graph builder
// and the engine that feeds it. B = batch rows, T = new tokens per row, P = cached slots, S = P + T.

export const INPUT = {
  /** int64 [B, T] */
  inputIds: 'input_ids',
  /** int64 [B, T]: RoPE positions; padding slots may hold anything. */
  positionIds: 'position_ids',
  /** float32 [B, 1, T, S]: 0 where a query may read a key slot, a large negative number elsewhere. */
  attentionBias: 'attention_bias',
  /** int64 [N]: rows of the flattened [B*T] hidden states whose logits are wanted. */
  logitsIndex: 'logits_index',
  /** float32 [B, T]: 1 for real tokens, 0 for padding (keeps padding out of the taps). */
  tokenMask: 'token_mask',
  /** int64 [B]: the position whose super activation keeps its original value, -1 for none. */
  restorePosition: 'switch_restore_position',
} as const;

export const OUTPUT = {
  /** float32 [N, V] */
  logits: 'logits',
  /** float32 [N]: log(sum(exp(logits))) per row, so logprobs need no exp pass over the vocabulary in JS. */
  logitsLogSumExp: 'logits_logsumexp',
  /** float32 [B, L]: max |down_proj input| over the row's new tokens, per layer. */
  tapInMax: 'taps.down_input_max',
  /** int64 [B, L]: flat index t * intermediate + channel of that maximum. */
  tapInArg: 'taps.down_input_argmax',
  tapOutMax: 'taps.down_output_max',
  /** int64 [B, L]: flat index t * hidden + channel. */
  tapOutArg: 'taps.down_output_argmax',
  /** float32 [B, K]: signed down_proj output at each switch coordinate's row (layers in order), at its largest |value|. */
  tapSwitchValues: 'taps.switch_values',
  /** int64 [B, K]: index of the new token where that value was taken. */
  tapSwitchPeaks: 'taps.switch_peaks',
} as const;

export const pastKey = (layer: number): string => `past_key_values.${layer}.key`;
export const pastValue = (layer: number): string => `past_key_values.${layer}.value`;
export const presentKey = (layer: number): string => `present.${layer}.key`;
export const presentValue = (layer: number): string => `present.${layer}.value`;
/** int64 [K_l]: output channels (HF row) of the switched weights in this layer. */
export const switchRows = (layer: number): string => `switch.${layer}.rows`;
/** int64 [K_l]: input channels (HF column). */
export const switchCols = (layer: number): string => `switch.${layer}.cols`;
/** float32 [B, K_l]: scale * W[row, col] - (the graph's value there) per batch row; 0 leaves the weight as the graph holds it. */
export const switchFactors = (layer: number): string => `switch.${layer}.factors`;
/** float32 [K_l]: the factors at a row's restore position, where the weight is as in the original model (0 on float graphs). */
export const switchRestoreFactors = (layer: number): string => `switch.${layer}.restore_factors`;

// Additive mask value: finite so a fully masked row can never produce NaN, and exp() of it is exactly 0 in float32.
export const MASKED = -1e9;
