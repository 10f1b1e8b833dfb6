// The N largest-magnitude down_proj weights of a checkpoint on disk, ranked by a plain sort (no heap,
// no engine), and a copy of the checkpoint with them zeroed: the paper's "next-largest weights" control.
import { loadCheckpointWeights, scaleWeightOnDisk } from './tiny-checkpoint.js';

export interface WeightSite {
  layer: number;
  row: number;
  col: number;
}

export function rankDownProjWeights(dir: string, count: number, exclude: WeightSite[]): WeightSite[] {
  const skip = new Set(exclude.map((e) => `${e.layer}:${e.row}:${e.col}`));
  const all: (WeightSite & { magnitude: number })[] = [];
  for (const [name, t] of loadCheckpointWeights(dir)) {
    const match = /^model\.layers\.(\d+)\.mlp\.down_proj\.weight$/.exec(name);
    if (!match) continue;
    const cols = t.shape[1]!;
    t.data.forEach((v, i) => {
      const site = { layer: Number(match[1]), row: Math.floor(i / cols), col: i % cols };
      if (!skip.has(`${site.layer}:${site.row}:${site.col}`)) all.push({ ...site, magnitude: Math.abs(v) });
    });
  }
  all.sort((a, b) => b.magnitude - a.magnitude);
  return all.slice(0, count).map(({ layer, row, col }) => ({ layer, row, col }));
}

export function zeroLargestOnDisk(src: string, dst: string, count: number, exclude: WeightSite[]): WeightSite[] {
  const sites = rankDownProjWeights(src, count, exclude);
  scaleWeightOnDisk(src, dst, sites.map((s) => ({ ...s, scale: 0 })));
  return sites;
}
