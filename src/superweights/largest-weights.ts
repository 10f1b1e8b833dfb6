// The paper's control: the N largest-magnitude down_proj weights that are not super weights, to zero
// while the super weights stay (Llama-7B: ~7000 of them hurt far less than its one super weight).
import { downProjWeights, openCheckpoint } from '../model/checkpoint.js';
import { coordinateId, type SuperWeightCoordinate } from '../model/switch-plan.js';
import { TopK } from '../util/top-k.js';

// The paper's ~7000 weights out of Llama-7B's 32 x 4096 x 11008 down_proj weights.
const PAPER_LARGEST_COUNT = 7000;
const LLAMA_7B_DOWN_PROJ_WEIGHTS = 32 * 4096 * 11008;
// Below this the control zeroes too few weights to say anything on a small model.
const MIN_LARGEST_COUNT = 100;

/** The paper's share of down_proj weights for this model, at least MIN_LARGEST_COUNT. */
export function defaultLargestCount(numLayers: number, hiddenSize: number, intermediateSize: number): number {
  const share = (numLayers * hiddenSize * intermediateSize * PAPER_LARGEST_COUNT) / LLAMA_7B_DOWN_PROJ_WEIGHTS;
  return Math.max(MIN_LARGEST_COUNT, Math.round(share));
}

/** The `count` largest |W| over every layer's down_proj, skipping `exclude`; largest first. */
export function largestDownProjWeights(modelDir: string, count: number, exclude: readonly SuperWeightCoordinate[]): SuperWeightCoordinate[] {
  const checkpoint = openCheckpoint(modelDir);
  const skip = new Set(exclude.map(coordinateId));
  const { hiddenSize, intermediateSize } = checkpoint.spec;
  const perLayer = hiddenSize * intermediateSize;
  const top = new TopK(count);
  checkpoint.layout.layers.forEach((_, l) => {
    const values = downProjWeights(checkpoint, l);
    for (let i = 0; i < values.length; i++) {
      const magnitude = Math.abs(values[i]!);
      if (top.wants(magnitude) && !skip.has(coordinateId(coordinateAt(l * perLayer + i, perLayer, intermediateSize)))) top.push(magnitude, l * perLayer + i);
    }
  });
  return top.sortedIds().map((id) => coordinateAt(id, perLayer, intermediateSize));
}

/** A flat index over all layers' [hidden, intermediate] down_proj weights as a coordinate. */
function coordinateAt(id: number, perLayer: number, cols: number): SuperWeightCoordinate {
  const within = id % perLayer;
  return { layer: Math.floor(id / perLayer), row: Math.floor(within / cols), col: within % cols };
}
