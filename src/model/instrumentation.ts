// The super-weight switch and the activation taps, built around each layer's unchanged down_proj.
// Switch: y[t, r] += (s * W[r, c] - G[r, c]) * x[t, c], an exact rank-K correction (super-weights.md;
// G is what the graph holds: W on float graphs, 0 or the dequantized value on quantized ones), with
// the factor given per token (the engine gives the original model's where the activation is restored);
// taps: per token and layer, the channel of max |down_proj input| and |output|, reduced in the graph
// so only [N, L]-sized tensors leave it. The engine reduces them per sequence when someone needs it.
import { INPUT, OUTPUT } from './graph-io.js';
import { toCompute, toFloat32, type GraphContext } from './graph-context.js';

export interface Instrumentation {
  /** Per layer: [K_l] rows and columns, [N, K_l] factors. */
  rows: string[];
  cols: string[];
  factors: string[];
  inMax: string[];
  inChannel: string[];
  outMax: string[];
  outChannel: string[];
  switchValues: string[];
}

export function addInstrumentationInputs(ctx: GraphContext, numLayers: number): Instrumentation {
  const { g } = ctx;
  const factors = g.input(INPUT.switchFactors, 'float32', ['tokens', 'switch_total']);
  const rows = g.input(INPUT.switchRows, 'int64', ['switch_total']);
  const cols = g.input(INPUT.switchCols, 'int64', ['switch_total']);
  const widths = g.input(INPUT.switchWidths, 'int64', [numLayers]);
  // Copies: the engine's export path replaces entries, which must not rename the Split's outputs.
  const split = (value: string, axis: number): string[] => (numLayers === 1 ? [value] : [...g.node('Split', [value, widths], { axis }, numLayers)]);
  return {
    rows: split(rows, 0),
    cols: split(cols, 0),
    factors: split(toCompute(ctx, factors), 1),
    inMax: [],
    inChannel: [],
    outMax: [],
    outChannel: [],
    switchValues: [],
  };
}

/** Applies layer `layer`'s switch to down_proj output `y` [N, H] (input `x` [N, I]), records the taps, returns the switched output. */
export function switchAndTap(ctx: GraphContext, inst: Instrumentation, layer: number, x: string, y: string): string {
  const { g } = ctx;
  const rows = inst.rows[layer]!;
  const update = g.op('Mul', [g.op('Gather', [x, inst.cols[layer]!], { axis: 1 }), inst.factors[layer]!]);
  const index = g.op('Expand', [g.op('Unsqueeze', [rows, g.int64s([0])]), g.op('Shape', [update])]);
  // onnxruntime's CPU ScatterElements has no float16 kernel with reduction 'add': float16 graphs add in float32.
  const switched =
    ctx.dtype === 'float32'
      ? g.op('ScatterElements', [y, index, update], { axis: 1, reduction: 'add' })
      : toCompute(ctx, g.op('ScatterElements', [toFloat32(ctx, y), index, toFloat32(ctx, update)], { axis: 1, reduction: 'add' }));

  const [inMax, inChannel] = maxOverChannels(ctx, x);
  const [outMax, outChannel] = maxOverChannels(ctx, switched);
  inst.inMax.push(inMax);
  inst.inChannel.push(inChannel);
  inst.outMax.push(outMax);
  inst.outChannel.push(outChannel);
  inst.switchValues.push(toFloat32(ctx, g.op('Gather', [switched, rows], { axis: 1 })));
  return switched;
}

/** Per token: max |v| over channels [N, 1] (float32) and its channel [N, 1]. */
function maxOverChannels(ctx: GraphContext, v: string): [string, string] {
  const { g } = ctx;
  const magnitude = g.op('Abs', [v]);
  const channel = g.op('ArgMax', [magnitude], { axis: 1, keepdims: 1 });
  return [toFloat32(ctx, g.op('GatherElements', [magnitude, channel], { axis: 1 })), channel];
}

export function addTapOutputs(ctx: GraphContext, inst: Instrumentation, numLayers: number): void {
  const { g } = ctx;
  const concat = (values: string[]): string => (values.length === 1 ? values[0]! : g.op('Concat', values, { axis: 1 }));
  g.output(concat(inst.inMax), OUTPUT.tapInMax, 'float32', ['tokens', numLayers]);
  g.output(concat(inst.inChannel), OUTPUT.tapInChannel, 'int64', ['tokens', numLayers]);
  g.output(concat(inst.outMax), OUTPUT.tapOutMax, 'float32', ['tokens', numLayers]);
  g.output(concat(inst.outChannel), OUTPUT.tapOutChannel, 'int64', ['tokens', numLayers]);
  g.output(concat(inst.switchValues), OUTPUT.tapSwitchValues, 'float32', ['tokens', 'switch_total']);
}
