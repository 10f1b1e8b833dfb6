// The short switch settings a terminal or header carries: "on", "off" or "scale=<x>", applied to
// every known super weight.
import type { SuperWeightCoordinate, SwitchPlan } from './switch-plan.js';

export function parseSwitchSetting(setting: string, known: readonly SuperWeightCoordinate[]): SwitchPlan {
  const value = setting.trim().toLowerCase();
  let scale: number;
  if (value === 'on') scale = 1;
  else if (value === 'off') scale = 0;
  else if (value.startsWith('scale=') && value.length > 6 && Number.isFinite(Number(value.slice(6)))) scale = Number(value.slice(6));
  else throw new Error(`super-weight setting "${setting}" is not one of on, off, scale=<number>`);
  return {
    entries: scale === 1 ? [] : known.map((c) => ({ ...c, scale })),
    restoreActivation: false,
    activationPosition: 0,
  };
}
