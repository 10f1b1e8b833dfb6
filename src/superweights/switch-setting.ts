// The short switch settings a terminal flag or the X-Super-Weights header carries: "on", "off" or
// "scale=<x>", applied to every known super weight.
import { ORIGINAL_SWITCH, scaledPlan, type SuperWeightCoordinate, type SwitchPlan } from '../model/switch-plan.js';

/** The scale a setting stands for, or undefined when it is none of on, off, scale=<decimal>. */
export function switchSettingScale(setting: string): number | undefined {
  const value = setting.trim().toLowerCase();
  if (value === 'on') return 1;
  if (value === 'off') return 0;
  // A plain decimal only: Number() would also read "0x10" or "" as numbers.
  const match = /^scale=(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)$/.exec(value);
  const scale = match ? Number(match[1]) : NaN;
  return Number.isFinite(scale) ? scale : undefined;
}

export function parseSwitchSetting(setting: string, known: readonly SuperWeightCoordinate[]): SwitchPlan {
  const scale = switchSettingScale(setting);
  if (scale === undefined) throw new Error(`super-weight setting "${setting}" is not one of on, off, scale=<number>`);
  return scale === 1 ? ORIGINAL_SWITCH : scaledPlan(known, scale);
}
