// The graph a session runs: built from a safetensors checkpoint, or an existing ONNX export brought to
// the same contract (graph-io.ts); the engine cannot tell them apart.
import type { Checkpoint } from './checkpoint.js';
import { buildDecoderGraph, type DecoderGraph, type DecoderGraphOptions } from './decoder-graph.js';
import { buildExportGraph } from './onnx-export-graph.js';

export function buildServingGraph(checkpoint: Checkpoint, options: DecoderGraphOptions): DecoderGraph {
  // An export computes in its own element type, whatever the device would otherwise pick.
  return checkpoint.onnx ? buildExportGraph(checkpoint, options) : buildDecoderGraph(checkpoint, options);
}
