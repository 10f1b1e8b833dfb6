// The `super_weights` body field and `X-Super-Weights` header: parsed with zod, resolved against the
// loaded model's known super weights into a SwitchPlan, and described back in every response.
import { z } from 'zod';
import type { EngineInfo } from '../engine/protocol.js';
import { coordinateId, coordinateProblem, switchMode, switchPlan, switchPlanLabel, type SwitchEntry, type SwitchMode, type SwitchPlan, type SwitchPlanLabel } from '../model/switch-plan.js';
import { switchSettingScale } from '../superweights/switch-setting.js';
import { ApiError } from '../http/errors.js';

const COORDINATE = /^(\d+):(\d+):(\d+)$/;
// Coordinates one request may switch. Far above any model's super weights (Phi-3-mini has 6), and it
// bounds what a request costs: the correction's width per step and every activation frame's size.
export const MAX_SWITCH_SELECT = 256;

export const superWeightsFieldSchema = z.union([
  z.enum(['on', 'off']),
  z.strictObject({
    scale: z.number().describe('multiplies the selected super weights: 0 zeroes, 1 keeps, 2 doubles'),
    select: z.array(z.string().regex(COORDINATE, 'expected "<layer>:<row>:<col>"')).min(1).max(MAX_SWITCH_SELECT).optional(),
    restore_activation: z.boolean().optional(),
  }),
], { error: (issue) => (issue.code === 'invalid_union' ? 'expected "on", "off" or {"scale": number, "select"?: ["<layer>:<row>:<col>"], "restore_activation"?: boolean}' : undefined) });

export type SuperWeightsField = z.infer<typeof superWeightsFieldSchema>;

/** What a response reports as applied. */
export interface AppliedSwitch {
  /** The coarse account kept for existing clients; `plan` tells the experiments apart. */
  mode: SwitchMode;
  plan: SwitchPlanLabel;
  scale: number;
  restore_activation: boolean;
  weights: { id: string; layer: number; row: number; col: number; scale: number; original_value: number; effective_value: number }[];
}

/** `X-Super-Weights: off | on | scale=<x>` as the body field it stands for. */
function parseSwitchHeader(value: string): SuperWeightsField {
  const scale = switchSettingScale(value);
  if (scale === undefined) throw new ApiError('invalid_request', `X-Super-Weights "${value}" is not one of on, off, scale=<number>`, 'X-Super-Weights');
  return { scale };
}

export interface ResolvedSwitch {
  plan: SwitchPlan;
  mode: SwitchMode;
  label: SwitchPlanLabel;
  /** The coordinates the response reports (the selection, or the known super weights). */
  coordinates: { layer: number; row: number; col: number }[];
  scale: number;
  /** Where the switch came from, for errors about it: the body field, or the header. */
  param: string;
}

/** Body wins over header; neither means the original model. */
export function resolveSwitch(field: SuperWeightsField | null | undefined, header: string | undefined, info: EngineInfo, param = 'super_weights'): ResolvedSwitch {
  const chosen = field ?? (header === undefined ? 'on' : parseSwitchHeader(header));
  const spec = typeof chosen === 'string' ? { scale: chosen === 'on' ? 1 : 0 } : chosen;
  if (!Number.isFinite(spec.scale)) throw new ApiError('invalid_request', `${param}.scale must be a finite number`, `${param}.scale`);
  const known = info.knownSuperWeights;
  let coordinates: { layer: number; row: number; col: number }[];
  if (typeof chosen !== 'string' && chosen.select) {
    coordinates = chosen.select.map((id, i) => checkCoordinate(id, info, `${param}.select[${i}]`));
  } else {
    if (known.length === 0 && spec.scale !== 1) {
      throw new ApiError('invalid_request', `${info.modelId} has no known super weights; name coordinates in ${param}.select ("<layer>:<row>:<col>")`, param);
    }
    coordinates = known.map(({ layer, row, col }) => ({ layer, row, col }));
  }
  const seen = new Set<string>();
  for (const c of coordinates) {
    const id = coordinateId(c);
    if (seen.has(id)) throw new ApiError('invalid_request', `${param}.select names ${id} twice`, `${param}.select`);
    seen.add(id);
  }
  const restore = typeof chosen === 'string' ? false : (chosen.restore_activation ?? false);
  // An explicit selection stays in the plan even at scale 1, so the engine reports its values.
  const selected = typeof chosen !== 'string' && chosen.select !== undefined;
  const entries: SwitchEntry[] = spec.scale === 1 && !selected ? [] : coordinates.map((c) => ({ ...c, scale: spec.scale }));
  const plan = switchPlan(entries, restore);
  const source = field == null && header !== undefined ? 'X-Super-Weights' : param;
  return { plan, mode: switchMode(plan), label: switchPlanLabel(plan, known), coordinates, scale: spec.scale, param: source };
}

/** The response's account of the switch, with the weights' values as the engine read them. */
export function describeSwitch(resolved: ResolvedSwitch, originals: Readonly<Record<string, number>>): AppliedSwitch {
  return {
    mode: resolved.mode,
    plan: resolved.label,
    scale: resolved.scale,
    restore_activation: resolved.plan.restoreActivation,
    weights: resolved.coordinates.map((c) => {
      const id = coordinateId(c);
      const original = originals[id]!;
      return { id, ...c, scale: resolved.scale, original_value: original, effective_value: original * resolved.scale };
    }),
  };
}

function checkCoordinate(id: string, info: EngineInfo, param: string): { layer: number; row: number; col: number } {
  const [, l, r, c] = COORDINATE.exec(id)!;
  const coordinate = { layer: Number(l), row: Number(r), col: Number(c) };
  const problem = coordinateProblem(coordinate, info);
  if (problem !== undefined) throw new ApiError('invalid_request', `${param} "${id}": ${problem}`, param);
  return coordinate;
}
