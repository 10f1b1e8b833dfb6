// Turns an Optimum-layout ONNX export into a graph with swserve's contract (graph-io.ts), edited in memory
// (the file on disk and its external weights are never rewritten). The contract's flat tokens are laid
// out in the export's batch shape ([rows, T]: decode rows then prefill rows, each padded to the step's
// chunk), its two cache views joined into the export's one past, attention_mask derived from the rows'
// cached lengths; the export's logits and the new slots of its present outputs are gathered back to
// the flat tokens. After every down_proj MatMul the same switch and taps as in swserve's own graph
// (instrumentation.ts) are spliced in, so one engine, one KV cache and one batching path serve both.
import { clone, create, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, StringStringEntryProtoSchema, type GraphProto, type NodeProto } from 'onnx-buf';
import type { Checkpoint } from './checkpoint.js';
import type { DecoderGraph, DecoderGraphOptions } from './decoder-graph.js';
import { int64Range as range } from './attention.js';
import { addLogitsOutputs, scalar, toFloat32, type GraphContext } from './graph-context.js';
import { decodePastKey, decodePastValue, INPUT, prefillPastKey, prefillPastValue, presentKey, presentValue } from './graph-io.js';
import { addInstrumentationInputs, addTapOutputs, switchAndTap, type Instrumentation } from './instrumentation.js';
import { externalField, isExternal } from './onnx-export.js';
import { GraphBuilder } from './onnx-graph.js';

const EXPORT_PREFIX = 'export.';
const EXPORT_MASK_INPUT = 'attention_mask';
// ScatterElements(reduction=add) in the switch needs opset 16; 17 is what swserve's own graph uses.
const INSTRUMENTED_OPSET = 17;
const MIN_IR_VERSION = 8n;
const INT64 = 7;

export function buildExportGraph(checkpoint: Checkpoint, options: DecoderGraphOptions): DecoderGraph {
  const exported = checkpoint.onnx!;
  const model = clone(ModelProtoSchema, exported.model);
  const graph = model.graph!;
  const g = new GraphBuilder();
  const ctx: GraphContext = { g, checkpoint, dtype: exported.computeDtype, weights: new Map() };
  const { vocabSize, numLayers, numKvHeads, headDim, hiddenSize, intermediateSize } = checkpoint.spec;

  // Weights stay where they are; only their paths are put relative to the folder onnxruntime is given.
  for (const t of graph.initializer.filter(isExternal)) {
    const location = t.externalData.find((e) => e.key === 'location')!;
    location.value = checkpoint.dataLocations.get(externalField(t, 'location')!)!;
  }
  const original = graph.node;
  // The export's own inputs and outputs move aside: the contract's names are taken by other shapes.
  const pastNames = Array.from({ length: numLayers }, (_, l) => [`past_key_values.${l}.key`, `past_key_values.${l}.value`]).flat();
  for (const name of ['input_ids', 'position_ids', ...pastNames]) replaceUses(original, name, EXPORT_PREFIX + name);
  for (const name of ['logits', ...Array.from({ length: numLayers }, (_, l) => [presentKey(l), presentValue(l)]).flat()]) renameOutput(original, graph, name, EXPORT_PREFIX + name);
  graph.input = graph.input.filter((i) => ![EXPORT_MASK_INPUT, 'input_ids', 'position_ids', ...pastNames].includes(i.name));
  g.reserve([...original.flatMap((n) => [n.name, ...n.output]), ...graph.input.map((i) => i.name), ...graph.initializer.map((t) => t.name), ...pastNames.map((n) => EXPORT_PREFIX + n)]);

  const layout = batchLayout(ctx);
  const decodeCache = ['decode_rows', numKvHeads, 'slots', headDim];
  const prefillCache = ['prefill_rows', numKvHeads, 'slots', headDim];
  for (let l = 0; l < numLayers; l++) {
    for (const [name, decodeName, prefillName] of [
      [`past_key_values.${l}.key`, decodePastKey(l), prefillPastKey(l)],
      [`past_key_values.${l}.value`, decodePastValue(l), prefillPastValue(l)],
    ] as const) {
      const joined = g.op('Concat', [g.input(decodeName, ctx.dtype, decodeCache), g.input(prefillName, ctx.dtype, prefillCache)], { axis: 0 });
      replaceUses(original, EXPORT_PREFIX + name, joined);
    }
  }
  const pastSlots = g.op('Gather', [g.op('Shape', [decodePastKey(0)]), g.int64s([2])], { axis: 0 });
  const pastValid = g.op('Less', [g.op('Unsqueeze', [range(ctx, pastSlots), g.int64s([0])]), g.op('Unsqueeze', [layout.pastLengths, g.int64s([1])])]);
  replaceUses(original, EXPORT_MASK_INPUT, g.op('Cast', [g.op('Concat', [pastValid, layout.real], { axis: 1 })], { to: INT64 }));
  replaceUses(original, EXPORT_PREFIX + 'input_ids', g.op('Gather', [INPUT.inputIds, layout.slotToken], { axis: 0 }));
  replaceUses(original, EXPORT_PREFIX + 'position_ids', g.op('Gather', [INPUT.positionIds, layout.slotToken], { axis: 0 }));
  const logitsIndex = g.input(INPUT.logitsIndex, 'int64', ['logit_rows']);
  const inst = options.instrument ? addInstrumentationInputs(ctx, numLayers) : undefined;
  const head = g.drain();

  // By node name: the export was cloned, so its node objects are not the ones openOnnxExport found.
  const spliced = new Map<string, NodeProto[]>();
  const added = [head];
  if (inst) {
    for (const { layer, node } of exported.downProj) {
      const output = node.output[0]!;
      const switched = paddedSwitchAndTap(ctx, inst, layer, layout, node.input[0]!, output, intermediateSize, hiddenSize);
      replaceUses(original, output, switched);
      const part = g.drain();
      spliced.set(node.name, part.nodes);
      added.push(part);
    }
  }

  const rows = (value: string, width: number): string => g.op('Gather', [g.op('Reshape', [value, g.int64s([-1, width])]), layout.tokenSlot], { axis: 0 });
  const selected = g.op('Gather', [g.op('Reshape', [EXPORT_PREFIX + 'logits', g.int64s([-1, vocabSize])]), g.op('Gather', [layout.tokenSlot, logitsIndex], { axis: 0 })], { axis: 0 });
  const logits32 = toFloat32(ctx, selected);
  addLogitsOutputs(g, logits32, vocabSize);
  for (let l = 0; l < numLayers; l++) {
    for (const name of [presentKey(l), presentValue(l)]) {
      // The export's present is [B, kvH, P + T, D]: its last T slots are the step's new tokens.
      const fresh = g.op('Slice', [EXPORT_PREFIX + name, pastSlots, g.op('Add', [pastSlots, layout.chunk]), g.int64s([2])]);
      const flat = rows(g.op('Transpose', [fresh], { perm: [0, 2, 1, 3] }), numKvHeads * headDim);
      g.output(g.op('Reshape', [flat, g.int64s([-1, numKvHeads, headDim])]), name, ctx.dtype, ['tokens', numKvHeads, headDim]);
    }
  }
  if (inst) addTapOutputs(ctx, inst, numLayers);
  const tail = g.drain();
  added.push(tail);

  const exportOutputs = new Set([EXPORT_PREFIX + 'logits', ...Array.from({ length: numLayers }, (_, l) => [EXPORT_PREFIX + presentKey(l), EXPORT_PREFIX + presentValue(l)]).flat()]);
  graph.node = [...head.nodes, ...original.flatMap((n) => [n, ...(spliced.get(n.name) ?? [])]), ...tail.nodes];
  graph.input = [...graph.input, ...added.flatMap((p) => p.inputs)];
  graph.output = [...graph.output.filter((o) => !exportOutputs.has(o.name)), ...added.flatMap((p) => p.outputs)];
  graph.valueInfo = graph.valueInfo.filter((v) => !exportOutputs.has(v.name));
  graph.initializer = [...graph.initializer, ...added.flatMap((p) => p.initializers)];
  for (const o of model.opsetImport) {
    // Ops decoders use kept their meaning from opset 14 to 17 (openOnnxExport refuses later opsets).
    if ((o.domain === '' || o.domain === 'ai.onnx') && o.version < BigInt(INSTRUMENTED_OPSET)) o.version = BigInt(INSTRUMENTED_OPSET);
  }
  if (model.irVersion < MIN_IR_VERSION) model.irVersion = MIN_IR_VERSION;
  model.metadataProps.push(create(StringStringEntryProtoSchema, { key: 'swserve_instrumented', value: String(options.instrument) }));
  return {
    bytes: toBinary(ModelProtoSchema, model),
    computeDtype: exported.computeDtype,
    instrumented: options.instrument,
    nodeCount: graph.node.length,
    layers: checkpoint.spec.numLayers,
    logits: true,
    externalDataFolder: checkpoint.externalDataDir,
  };
}

interface BatchLayout {
  /** [B, T]: the flat token in each slot of the export's batch (padding repeats its row's token). */
  slotToken: string;
  /** [B, T] bool: real tokens. */
  real: string;
  /** [N]: the slot (in the flattened [B * T]) of each flat token. */
  tokenSlot: string;
  /** [B]: cached slots per row. */
  pastLengths: string;
  /** [1]: T. */
  chunk: string;
}

/** The export's [rows, T] view of the contract's flat tokens: decode rows (a token each, padded), then prefill rows. */
function batchLayout(ctx: GraphContext): BatchLayout {
  const { g } = ctx;
  const decodeLengths = g.input(INPUT.decodePastLengths, 'int64', ['decode_rows']);
  const prefillLengths = g.input(INPUT.prefillPastLengths, 'int64', ['prefill_rows']);
  const tokenIndex = g.input(INPUT.prefillTokenIndex, 'int64', ['prefill_rows', 'chunk']);
  const tokenMask = g.input(INPUT.prefillTokenMask, 'bool', ['prefill_rows', 'chunk']);
  const realIndex = g.input(INPUT.prefillRealIndex, 'int64', ['prefill_tokens']);
  g.input(INPUT.inputIds, 'int64', ['tokens']);
  g.input(INPUT.positionIds, 'int64', ['tokens']);
  const decodeRows = g.op('Shape', [decodeLengths]);
  const chunk = g.op('Gather', [g.op('Shape', [tokenIndex]), g.int64s([1])], { axis: 0 });
  const shape = g.op('Concat', [decodeRows, chunk], { axis: 0 });
  const decodeSlots = g.op('Expand', [g.op('Unsqueeze', [range(ctx, decodeRows), g.int64s([1])]), shape]);
  const decodeReal = g.op('Expand', [g.op('Unsqueeze', [g.op('Equal', [range(ctx, chunk), g.int64s([0])]), g.int64s([0])]), shape]);
  const decodeTokenSlots = g.op('Mul', [range(ctx, decodeRows), chunk]);
  return {
    slotToken: g.op('Concat', [decodeSlots, tokenIndex], { axis: 0 }),
    real: g.op('Concat', [decodeReal, tokenMask], { axis: 0 }),
    tokenSlot: g.op('Concat', [decodeTokenSlots, g.op('Add', [realIndex, g.op('Mul', [decodeRows, chunk])])], { axis: 0 }),
    pastLengths: g.op('Concat', [decodeLengths, prefillLengths], { axis: 0 }),
    chunk,
  };
}

/**
 * The switch and taps on the export's [B, T, channels] down_proj: factors are spread from the flat
 * tokens to the padded slots (0 on padding), the taps are gathered back to the flat tokens.
 */
function paddedSwitchAndTap(ctx: GraphContext, inst: Instrumentation, layer: number, layout: BatchLayout, x: string, y: string, inputs: number, outputs: number): string {
  const { g } = ctx;
  const factors = inst.factors[layer]!;
  const withZero = g.op('Concat', [factors, g.op('Mul', [g.op('Slice', [factors, g.int64s([0]), g.int64s([1]), g.int64s([0])]), scalar(ctx, 0)])], { axis: 0 });
  const tokens = g.op('Gather', [g.op('Shape', [factors]), g.int64s([0])], { axis: 0 });
  const slotFactor = g.op('Where', [layout.real, layout.slotToken, tokens]);
  inst.factors[layer] = g.op('Gather', [withZero, g.op('Reshape', [slotFactor, g.int64s([-1])])], { axis: 0 });
  const switched = switchAndTap(ctx, inst, layer, g.op('Reshape', [x, g.int64s([-1, inputs])]), g.op('Reshape', [y, g.int64s([-1, outputs])]));
  for (const taps of [inst.inMax, inst.inChannel, inst.outMax, inst.outChannel, inst.switchValues]) {
    taps.push(g.op('Gather', [taps.pop()!, layout.tokenSlot], { axis: 0 }));
  }
  return g.op('Reshape', [switched, g.op('Shape', [y])]);
}

/** Points every node input reading `from` at `to`. */
function replaceUses(nodes: NodeProto[], from: string, to: string): void {
  for (const node of nodes) node.input = node.input.map((i) => (i === from ? to : i));
}

/** Renames a value the export produces, with its graph output and shape annotations. */
function renameOutput(nodes: NodeProto[], graph: GraphProto, from: string, to: string): void {
  for (const node of nodes) node.output = node.output.map((o) => (o === from ? to : o));
  replaceUses(nodes, from, to);
  for (const info of [...graph.output, ...graph.valueInfo]) if (info.name === from) info.name = to;
}
