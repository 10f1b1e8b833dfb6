// Which down_proj column makes a spiking output channel. The input tap names only a layer's single
// largest input; when several super weights share a row (Llama-13B, Llama-30B) that input is already
// zeroed on the second pass. So the column is found through the switch itself: zero one group of the
// row's columns per request (one batch), keep the group whose removal shrinks the spike most, repeat.
import { analysisId, analysisRequest, runSequence, type SequenceEngine } from './engine-run.js';
import { coordinateId, switchPlan, type SwitchEntry } from '../model/switch-plan.js';

// Requests per round: one engine batch, and log16 rounds (4 for an 11008-wide Llama-7B row).
export const ATTRIBUTION_GROUPS = 16;

export interface SpikeSite {
  layer: number;
  row: number;
  prompt: string;
}

export interface Attribution {
  col: number;
  /** |output| at the spike's row with the earlier finds zeroed. */
  spike: number;
  /** How much zeroing this one weight shrinks it: |W[row, col] * x[col]| when one column dominates. */
  contribution: number;
}

export async function attributeColumn(engine: SequenceEngine, site: SpikeSite, zeroed: readonly SwitchEntry[], signal?: AbortSignal): Promise<Attribution> {
  const { layer, row } = site;
  const taken = new Set(zeroed.map(coordinateId));
  let candidates = Array.from({ length: engine.info.intermediateSize }, (_, col) => col).filter((col) => !taken.has(coordinateId({ layer, row, col })));
  if (candidates.length === 0) throw new Error(`every column of ${layer}:${row} is already zeroed`);
  // A scale-1 entry changes nothing but makes the engine report the row's value.
  const spike = await rowMagnitude(engine, site, [...zeroed, { layer, row, col: candidates[0]!, scale: 1 }], signal);
  let contribution: number;
  do {
    const size = Math.ceil(candidates.length / ATTRIBUTION_GROUPS);
    const groups = Array.from({ length: Math.ceil(candidates.length / size) }, (_, g) => candidates.slice(g * size, (g + 1) * size));
    const remaining = await Promise.all(
      groups.map((group) => rowMagnitude(engine, site, [...zeroed, ...group.map((col) => ({ layer, row, col, scale: 0 }))], signal)),
    );
    const best = remaining.indexOf(Math.min(...remaining));
    candidates = groups[best]!;
    contribution = spike - remaining[best]!;
  } while (candidates.length > 1);
  return { col: candidates[0]!, spike, contribution };
}

/** |down_proj output| at the site's row (at the token where it peaks) under `entries`. */
async function rowMagnitude(engine: SequenceEngine, site: SpikeSite, entries: SwitchEntry[], signal?: AbortSignal): Promise<number> {
  const { frame } = await runSequence(
    engine,
    analysisRequest({ id: analysisId('attribute'), prompt: { text: site.prompt }, maxTokens: 1, switchPlan: switchPlan(entries) }),
    signal,
  );
  const value = frame?.superActivations.find((a) => a.layer === site.layer && a.row === site.row);
  if (value === undefined) throw new Error('the engine reported no activation taps; detection needs the instrumented graph');
  return Math.abs(value.value);
}
