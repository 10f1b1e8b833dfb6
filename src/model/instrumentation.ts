// The super-weight switch and the activation taps, built around each layer's unchanged down_proj.
// Switch: y[t, r] += (s * W[r, c] - G[r, c]) * x[t, c], an exact rank-K correction (super-weights.md;
// G is what the graph holds: W on float graphs, 0 or the dequantized value on quantized ones);
// taps: per-row maxima reduced in the graph so only [B, L]-sized tensors leave it.
import { OUTPUT, INPUT, switchCols, switchFactors, switchRestoreFactors, switchRows } from './graph-io.js';
import { scalar, toCompute, toFloat32, type GraphContext } from './graph-context.js';

export interface Instrumentation {
  /** [B, T, 1]: 0 at the row's restore position, 1 elsewhere. */
  keep: string;
  /** [B, T, 1]: 1 at the row's restore position, 0 elsewhere. */
  atRestore: string;
  /** [B, T, 1]: 1 for real tokens, 0 for padding. */
  tokenMask: string;
  inMax: string[];
  inArg: string[];
  outMax: string[];
  outArg: string[];
  switchValues: string[];
  switchPeaks: string[];
}

export function addInstrumentationInputs(ctx: GraphContext, positionIds: string): Instrumentation {
  const { g } = ctx;
  const restore = g.input(INPUT.restorePosition, 'int64', ['batch']);
  const isRestore = g.op('Equal', [positionIds, g.op('Unsqueeze', [restore, g.int64s([1])])]);
  const atRestore = g.op('Unsqueeze', [toCompute(ctx, g.op('Cast', [isRestore], { to: 1 })), g.int64s([2])]);
  const mask = g.input(INPUT.tokenMask, 'float32', ['batch', 'tokens']);
  return {
    keep: g.op('Sub', [scalar(ctx, 1), atRestore]),
    atRestore,
    tokenMask: toCompute(ctx, g.op('Unsqueeze', [mask, g.int64s([2])])),
    inMax: [],
    inArg: [],
    outMax: [],
    outArg: [],
    switchValues: [],
    switchPeaks: [],
  };
}

/** Applies layer `layer`'s switch to down_proj output `y` (input `x`), records the taps, returns the switched output. */
export function switchAndTap(ctx: GraphContext, inst: Instrumentation, layer: number, x: string, y: string): string {
  const { g } = ctx;
  const rows = g.input(switchRows(layer), 'int64', [`switch_${layer}`]);
  const cols = g.input(switchCols(layer), 'int64', [`switch_${layer}`]);
  const factors = g.input(switchFactors(layer), 'float32', ['batch', `switch_${layer}`]);
  const restoreFactors = g.input(switchRestoreFactors(layer), 'float32', [`switch_${layer}`]);
  const gathered = g.op('Gather', [x, cols], { axis: 2 });
  const perRow = g.op('Unsqueeze', [toCompute(ctx, factors), g.int64s([1])]);
  // [B, T, K]: the row's factors, and the original model's at its restore position.
  const perToken = g.op('Add', [g.op('Mul', [perRow, inst.keep]), g.op('Mul', [toCompute(ctx, restoreFactors), inst.atRestore])]);
  const update = g.op('Mul', [gathered, perToken]);
  const index = g.op('Expand', [rows, g.op('Shape', [update])]);
  // onnxruntime's CPU ScatterElements has no float16 kernel with reduction 'add': float16 graphs add in float32.
  const switched =
    ctx.dtype === 'float32'
      ? g.op('ScatterElements', [y, index, update], { axis: 2, reduction: 'add' })
      : toCompute(ctx, g.op('ScatterElements', [toFloat32(ctx, y), index, toFloat32(ctx, update)], { axis: 2, reduction: 'add' }));

  const [inMax, inArg] = maskedMaxOverRow(ctx, inst, x);
  const [outMax, outArg] = maskedMaxOverRow(ctx, inst, switched);
  inst.inMax.push(inMax);
  inst.inArg.push(inArg);
  inst.outMax.push(outMax);
  inst.outArg.push(outArg);

  // Signed value at each switched row, taken at the token where its magnitude peaks.
  const atRows = g.op('Gather', [switched, rows], { axis: 2 });
  const peak = g.op('ArgMax', [toFloat32(ctx, g.op('Mul', [g.op('Abs', [atRows]), inst.tokenMask]))], { axis: 1, keepdims: 1 });
  const signed = g.op('GatherElements', [atRows, peak], { axis: 1 });
  inst.switchValues.push(toFloat32(ctx, g.op('Squeeze', [signed, g.int64s([1])])));
  inst.switchPeaks.push(g.op('Squeeze', [peak, g.int64s([1])]));
  return switched;
}

/** max |v| over a row's real tokens and channels, with its flat index t * channels + c. */
function maskedMaxOverRow(ctx: GraphContext, inst: Instrumentation, v: string): [string, string] {
  const { g } = ctx;
  const magnitude = toFloat32(ctx, g.op('Mul', [g.op('Abs', [v]), inst.tokenMask]));
  const flat = g.op('Reshape', [magnitude, g.int64s([0, -1])]);
  return [g.op('ReduceMax', [flat], { axes: [1], keepdims: 1 }), g.op('ArgMax', [flat], { axis: 1, keepdims: 1 })];
}

export function addTapOutputs(ctx: GraphContext, inst: Instrumentation, numLayers: number): void {
  const { g } = ctx;
  const concat = (values: string[]): string => (values.length === 1 ? values[0]! : g.op('Concat', values, { axis: 1 }));
  g.output(concat(inst.inMax), OUTPUT.tapInMax, 'float32', ['batch', numLayers]);
  g.output(concat(inst.inArg), OUTPUT.tapInArg, 'int64', ['batch', numLayers]);
  g.output(concat(inst.outMax), OUTPUT.tapOutMax, 'float32', ['batch', numLayers]);
  g.output(concat(inst.outArg), OUTPUT.tapOutArg, 'int64', ['batch', numLayers]);
  g.output(concat(inst.switchValues), OUTPUT.tapSwitchValues, 'float32', ['batch', 'switch_total']);
  g.output(concat(inst.switchPeaks), OUTPUT.tapSwitchPeaks, 'int64', ['batch', 'switch_total']);
}
