// What one request does to the super weights: which down_proj entries it rescales and whether the
// super activation keeps its original value. Coordinates are Hugging Face [out, in]: layer:row:col.
// The engine takes a plan per sequence; the model's instrumentation applies it (a rank-K correction).

export interface SuperWeightCoordinate {
  layer: number;
  /** Output (hidden) channel, where the super activation appears. */
  row: number;
  /** Input (intermediate) channel. */
  col: number;
}

export interface SwitchEntry extends SuperWeightCoordinate {
  /** 0 zeroes the weight, 1 keeps it, 2 doubles it. */
  scale: number;
}

export interface SwitchPlan {
  entries: SwitchEntry[];
  /** Keep the correction off at `activationPosition` (the paper's "prune SW, +SA"). */
  restoreActivation: boolean;
  /** Token position of the super activation. */
  activationPosition: number;
}

// The super activation sits on the first token in every model studied (super-weights.md).
export const SUPER_ACTIVATION_POSITION = 0;

// The public code's detection prompt (github.com/mengxiayu/LLMSuperWeight); any text works, the spike is on the first token.
export const SUPER_ACTIVATION_PROMPT = 'Apple Inc. is a worldwide tech company.';

export function switchPlan(entries: SwitchEntry[], restoreActivation = false): SwitchPlan {
  return { entries, restoreActivation, activationPosition: SUPER_ACTIVATION_POSITION };
}

/** Every coordinate at one scale. */
export function scaledPlan(coordinates: readonly SuperWeightCoordinate[], scale: number, restoreActivation = false): SwitchPlan {
  return switchPlan(coordinates.map(({ layer, row, col }) => ({ layer, row, col, scale })), restoreActivation);
}

export const ORIGINAL_SWITCH: SwitchPlan = switchPlan([]);

export function coordinateId(c: SuperWeightCoordinate): string {
  return `${c.layer}:${c.row}:${c.col}`;
}

/** The down_proj shape a coordinate must fit. */
export interface DownProjShape {
  numLayers: number;
  /** down_proj output channels (rows). */
  hiddenSize: number;
  /** down_proj input channels (columns). */
  intermediateSize: number;
}

/** Why a coordinate does not fit the model, or undefined when it does. */
export function coordinateProblem(c: SuperWeightCoordinate, shape: DownProjShape): string | undefined {
  if (!Number.isInteger(c.layer) || c.layer < 0 || c.layer >= shape.numLayers) return `layer ${c.layer} does not exist (the model has ${shape.numLayers} layers)`;
  if (!Number.isInteger(c.row) || c.row < 0 || c.row >= shape.hiddenSize) return `row ${c.row} is outside down_proj's ${shape.hiddenSize} output channels`;
  if (!Number.isInteger(c.col) || c.col < 0 || c.col >= shape.intermediateSize) return `column ${c.col} is outside down_proj's ${shape.intermediateSize} input channels`;
  return undefined;
}

/** Problems with coordinates for this model, each naming the coordinate; empty when all fit. */
export function coordinateProblems(coordinates: readonly SuperWeightCoordinate[], shape: DownProjShape): string[] {
  return coordinates.flatMap((c) => {
    const problem = coordinateProblem(c, shape);
    return problem === undefined ? [] : [`${coordinateId(c)}: ${problem}`];
  });
}

/** Problems with a plan for this model, each naming the entry; empty when the plan is valid. */
export function switchPlanProblems(plan: SwitchPlan, shape: DownProjShape): string[] {
  const problems = coordinateProblems(plan.entries, shape);
  for (const e of plan.entries) if (!Number.isFinite(e.scale)) problems.push(`${coordinateId(e)}: scale ${e.scale} is not a finite number`);
  return problems;
}

// The largest finite float32: the graph computes the correction (s - 1) * W[r, c] in float32.
const FLOAT32_MAX = 3.4028234663852886e38;

/** Entries whose scale times the weight (or the correction (scale - 1) * weight) is beyond float32; empty when none. */
export function switchOverflowProblems(plan: SwitchPlan, weightValue: (c: SuperWeightCoordinate) => number): string[] {
  return plan.entries.flatMap((e) => {
    const w = weightValue(e);
    const beyond = (x: number): boolean => !(Math.abs(x) <= FLOAT32_MAX);
    return beyond(e.scale * w) || beyond((e.scale - 1) * w) ? [`scale ${e.scale} times ${coordinateId(e)} (${w}) is beyond float32's range (${FLOAT32_MAX.toPrecision(5)})`] : [];
  });
}

/** The coarse account responses have always given: nothing changed, all zeroed, or anything else. */
export type SwitchMode = 'original' | 'ablated' | 'scaled';

/**
 * What kind of experiment a plan is, as a bounded label for metrics, activation frames and
 * responses: traffic of different plans must never be averaged together (x0.5 with x2, or zeroed
 * with zeroed-but-activation-restored). `custom` is any plan that does not switch exactly the
 * model's known super weights at one scale (probes of other coordinates, subsets, mixed scales).
 */
export const SWITCH_PLAN_LABELS = [
  'original',
  'zeroed',
  'zeroed_sa_restored',
  'scaled_down',
  'scaled_down_sa_restored',
  'scaled_up',
  'scaled_up_sa_restored',
  'scaled_negative',
  'scaled_negative_sa_restored',
  'custom',
] as const;

export type SwitchPlanLabel = (typeof SWITCH_PLAN_LABELS)[number];

/** The entries that change a weight (scale 1 keeps it). */
function changedEntries(plan: SwitchPlan): SwitchEntry[] {
  return plan.entries.filter((e) => e.scale !== 1);
}

export function switchMode(plan: SwitchPlan): SwitchMode {
  const changed = changedEntries(plan);
  if (changed.length === 0) return 'original';
  return changed.every((e) => e.scale === 0) ? 'ablated' : 'scaled';
}

/** The one scale every entry shares (1 when nothing is switched), or null when they differ. */
export function switchScale(plan: SwitchPlan): number | null {
  const scales = new Set(plan.entries.map((e) => e.scale));
  if (scales.size === 0) return 1;
  return scales.size === 1 ? [...scales][0]! : null;
}

export function switchPlanLabel(plan: SwitchPlan, known: readonly SuperWeightCoordinate[]): SwitchPlanLabel {
  if (changedEntries(plan).length === 0) return 'original';
  const scale = switchScale(plan);
  const switched = new Set(plan.entries.map(coordinateId));
  const exactlyKnown = switched.size === known.length && known.every((c) => switched.has(coordinateId(c)));
  if (scale === null || !exactlyKnown) return 'custom';
  const base = scale === 0 ? 'zeroed' : scale < 0 ? 'scaled_negative' : scale < 1 ? 'scaled_down' : 'scaled_up';
  return plan.restoreActivation ? `${base}_sa_restored` : base;
}
