// The JSON frames of the /v1/activations WebSocket. Step and end frames are the fixed contract;
// the others tell a client about its own connection (subscription, drops, bad messages).
import type { ActivationFrame, FinishReason } from '../engine/protocol.js';
import { coordinateId, switchMode, switchPlanLabel, switchScale, type SuperWeightCoordinate, type SwitchMode, type SwitchPlan, type SwitchPlanLabel } from '../model/switch-plan.js';

// A prefill frame names at most this many prompt tokens (the first ones: the super activation sits at
// position 0) and counts the rest, so one long prompt can not make every client's frame huge.
export const MAX_FRAME_INPUT_TOKENS = 64;

export interface TokenRef {
  id: number;
  text: string;
}

export interface WireLayer {
  layer: number;
  /** Largest |down_proj input| in the step, its intermediate channel and token position. */
  input_max: number;
  input_channel: number;
  input_position: number;
  /** Largest |down_proj output| in the step, its hidden channel and token position. */
  output_max: number;
  output_channel: number;
  output_position: number;
}

export interface StepFrame {
  type: 'step';
  request_id: string;
  choice: number;
  phase: 'prefill' | 'decode';
  step: number;
  /** First and one-past-last token position fed this step. */
  positions: [number, number];
  /** Tokens fed this step: the prompt at prefill (its first MAX_FRAME_INPUT_TOKENS), the previous token at decode. */
  input_tokens: TokenRef[];
  /** Tokens fed this step that input_tokens leaves out. */
  input_tokens_omitted: number;
  /** The token this step sampled. */
  token: TokenRef;
  /** The applied switch: its plan label and scale, the switched weights with their scales, restore_activation. */
  switch: WireSwitch;
  layers: WireLayer[];
  /** Signed down_proj output at each reported super weight's row ("<layer>:<row>:<col>"). */
  super_activations: { id: string; value: number; position: number }[];
}

export interface EndFrame {
  type: 'end';
  request_id: string;
  choice: number;
  finish_reason: FinishReason | 'error';
  prompt_tokens: number;
  completion_tokens: number;
  error?: string;
}

export type ControlFrame =
  | { type: 'subscribed'; subscription: unknown }
  /** Frames this client lost because its buffer was full: since the last notice, and in all. */
  | { type: 'dropped'; count: number; total: number }
  | { type: 'error'; message: string };

export interface WireSwitch {
  /** Tells the experiments apart (SWITCH_PLAN_LABELS). */
  plan: SwitchPlanLabel;
  /** The scale every switched weight shares (1 when none is switched), null when they differ. */
  scale: number | null;
  /** The coarse original / ablated / scaled account, kept for existing clients. */
  mode: SwitchMode;
  restore_activation: boolean;
  weights: { id: string; scale: number }[];
}

export function wireSwitch(plan: SwitchPlan, known: readonly SuperWeightCoordinate[]): WireSwitch {
  return {
    plan: switchPlanLabel(plan, known),
    scale: switchScale(plan),
    mode: switchMode(plan),
    restore_activation: plan.restoreActivation,
    weights: plan.entries.map((e) => ({ id: coordinateId(e), scale: e.scale })),
  };
}

/** Who a sequence belongs to, as the `accepted` event's tags said. */
export interface SequenceIdentity {
  requestId: string;
  choice: number;
  switch: WireSwitch;
}

export function stepFrame(who: SequenceIdentity, frame: ActivationFrame, input: { tokens: TokenRef[]; omitted: number }, token: TokenRef, layers: ReadonlySet<number> | null): StepFrame {
  return {
    type: 'step',
    request_id: who.requestId,
    choice: who.choice,
    phase: frame.phase,
    step: frame.step,
    positions: frame.positions,
    input_tokens: input.tokens,
    input_tokens_omitted: input.omitted,
    token,
    switch: who.switch,
    layers: frame.layers
      .filter((l) => layers === null || layers.has(l.layer))
      .map((l) => ({
        layer: l.layer,
        input_max: l.inputMax,
        input_channel: l.inputChannel,
        input_position: l.inputPosition,
        output_max: l.outputMax,
        output_channel: l.outputChannel,
        output_position: l.outputPosition,
      })),
    super_activations: frame.superActivations.map((a) => ({ id: coordinateId(a), value: a.value, position: a.position })),
  };
}
