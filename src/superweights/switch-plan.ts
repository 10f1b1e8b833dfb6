// What one request does to the super weights: which down_proj entries it rescales and whether the
// super activation keeps its original value. Coordinates are Hugging Face [out, in]: layer:row:col.
import type { ModelSpec } from '../model/hf-config.js';

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
  /** Token position of the super activation; the first token in every model studied. */
  activationPosition: number;
}

export const ORIGINAL_SWITCH: SwitchPlan = { entries: [], restoreActivation: false, activationPosition: 0 };

export function coordinateId(c: SuperWeightCoordinate): string {
  return `${c.layer}:${c.row}:${c.col}`;
}

/** Problems with a plan for this model, each naming the entry; empty when the plan is valid. */
export function switchPlanProblems(plan: SwitchPlan, spec: ModelSpec): string[] {
  const problems: string[] = [];
  for (const e of plan.entries) {
    const id = coordinateId(e);
    if (!Number.isInteger(e.layer) || e.layer < 0 || e.layer >= spec.numLayers) {
      problems.push(`${id}: layer ${e.layer} does not exist (the model has ${spec.numLayers} layers)`);
    } else if (!Number.isInteger(e.row) || e.row < 0 || e.row >= spec.hiddenSize) {
      problems.push(`${id}: row ${e.row} is outside down_proj's ${spec.hiddenSize} output channels`);
    } else if (!Number.isInteger(e.col) || e.col < 0 || e.col >= spec.intermediateSize) {
      problems.push(`${id}: column ${e.col} is outside down_proj's ${spec.intermediateSize} input channels`);
    }
    if (!Number.isFinite(e.scale)) problems.push(`${id}: scale ${e.scale} is not a finite number`);
  }
  return problems;
}
