// Turns an Optimum-layout ONNX export into a graph with swserve's contract (graph-io.ts), edited in memory
// (the file on disk and its external weights are never rewritten): attention_mask is derived from
// attention_bias, logits are gathered at logits_index with their log-sum-exp, and after every down_proj
// MatMul the same switch and taps as in swserve's own graph (instrumentation.ts) are spliced in, so one
// engine, one KV cache and one batching path serve both.
import { clone, create, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, StringStringEntryProtoSchema, type GraphProto, type NodeProto } from 'onnx-buf';
import type { Checkpoint } from './checkpoint.js';
import type { DecoderGraph, DecoderGraphOptions } from './decoder-graph.js';
import { toFloat32, type GraphContext } from './graph-context.js';
import { INPUT, MASKED, OUTPUT } from './graph-io.js';
import { addInstrumentationInputs, addTapOutputs, switchAndTap } from './instrumentation.js';
import { externalField, isExternal } from './onnx-export.js';
import { GraphBuilder } from './onnx-graph.js';

const EXPORT_LOGITS = 'export.logits';
const EXPORT_MASK_INPUT = 'attention_mask';
// ScatterElements(reduction=add) in the switch needs opset 16; 17 is what swserve's own graph uses.
const INSTRUMENTED_OPSET = 17;
const MIN_IR_VERSION = 8n;

export function buildExportGraph(checkpoint: Checkpoint, options: DecoderGraphOptions): DecoderGraph {
  const exported = checkpoint.onnx!;
  const model = clone(ModelProtoSchema, exported.model);
  const graph = model.graph!;
  const g = new GraphBuilder();
  const ctx: GraphContext = { g, checkpoint, dtype: exported.computeDtype, weights: new Map() };

  // Weights stay where they are; only their paths are put relative to the folder onnxruntime is given.
  for (const t of graph.initializer.filter(isExternal)) {
    const location = t.externalData.find((e) => e.key === 'location')!;
    location.value = checkpoint.dataLocations.get(externalField(t, 'location')!)!;
  }
  const original = graph.node;
  renameOutput(original, graph, 'logits', EXPORT_LOGITS);
  graph.input = graph.input.filter((i) => i.name !== EXPORT_MASK_INPUT);
  g.reserve([...original.flatMap((n) => [n.name, ...n.output]), ...graph.input.map((i) => i.name), ...graph.initializer.map((t) => t.name)]);

  // The export masks from attention_mask [B, S]; a slot is valid where some query of the row may read it.
  const bias = g.input(INPUT.attentionBias, 'float32', ['batch', 1, 'tokens', 'slots']);
  const readable = g.op('Cast', [g.op('Greater', [bias, g.constant({ dtype: 'float32', dims: [], values: [MASKED / 2] }, 'masked')])], { to: 1 });
  const mask = g.op('Cast', [g.op('ReduceMax', [readable], { axes: [1, 2], keepdims: 0 })], { to: 7 });
  replaceUses(original, EXPORT_MASK_INPUT, mask);
  const logitsIndex = g.input(INPUT.logitsIndex, 'int64', ['logit_rows']);
  const inst = options.instrument ? addInstrumentationInputs(ctx, INPUT.positionIds) : undefined;
  const head = g.drain();

  // By node name: the export was cloned, so its node objects are not the ones openOnnxExport found.
  const spliced = new Map<string, NodeProto[]>();
  const added = [head];
  if (inst) {
    for (const { layer, node } of exported.downProj) {
      const output = node.output[0]!;
      const switched = switchAndTap(ctx, inst, layer, node.input[0]!, output);
      replaceUses(original, output, switched);
      const part = g.drain();
      spliced.set(node.name, part.nodes);
      added.push(part);
    }
  }

  const { vocabSize, numLayers } = checkpoint.spec;
  const selected = g.op('Gather', [g.op('Reshape', [EXPORT_LOGITS, g.int64s([-1, vocabSize])]), logitsIndex], { axis: 0 });
  const logits32 = toFloat32(ctx, selected);
  g.output(logits32, OUTPUT.logits, 'float32', ['logit_rows', vocabSize]);
  g.output(g.op('ReduceLogSumExp', [logits32], { axes: [-1], keepdims: 0 }), OUTPUT.logitsLogSumExp, 'float32', ['logit_rows']);
  if (inst) addTapOutputs(ctx, inst, numLayers);
  const tail = g.drain();
  added.push(tail);

  graph.node = [...head.nodes, ...original.flatMap((n) => [n, ...(spliced.get(n.name) ?? [])]), ...tail.nodes];
  graph.input = [...graph.input, ...added.flatMap((p) => p.inputs)];
  graph.output = [...graph.output.filter((o) => o.name !== EXPORT_LOGITS), ...added.flatMap((p) => p.outputs)];
  graph.initializer = [...graph.initializer, ...added.flatMap((p) => p.initializers)];
  for (const o of model.opsetImport) {
    // Ops decoders use kept their meaning from opset 14 to 17 (openOnnxExport refuses later opsets).
    if ((o.domain === '' || o.domain === 'ai.onnx') && o.version < BigInt(INSTRUMENTED_OPSET)) o.version = BigInt(INSTRUMENTED_OPSET);
  }
  if (model.irVersion < MIN_IR_VERSION) model.irVersion = MIN_IR_VERSION;
  model.metadataProps.push(create(StringStringEntryProtoSchema, { key: 'swserve_instrumented', value: String(options.instrument) }));
  return { bytes: toBinary(ModelProtoSchema, model), computeDtype: exported.computeDtype, instrumented: options.instrument, nodeCount: graph.node.length };
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
