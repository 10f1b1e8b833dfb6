// Which checkpoint tensors a quantized model stores as MatMulNBits weights (the linear layers, and
// lm_head on request) and which it keeps in float (embeddings, norms, biases, an unquantized lm_head).
import type { Checkpoint } from '../checkpoint.js';
import { expectedShapes } from '../architectures/layout.js';

export interface TensorPlan {
  /** [out, in] weights that become MatMulNBits inputs. */
  quantized: string[];
  /** Tensors the graph reads in float. */
  float: string[];
}

export function tensorPlan(checkpoint: Checkpoint, quantizeLmHead: boolean): TensorPlan {
  const { layout } = checkpoint;
  const quantized: string[] = [];
  for (const layer of layout.layers) {
    const a = layer.attention;
    quantized.push(...(a.kind === 'fused' ? [a.qkv] : [a.q, a.k, a.v]), layer.o);
    quantized.push(...(layer.mlp.kind === 'fused' ? [layer.mlp.gateUp] : [layer.mlp.gate, layer.mlp.up]), layer.down);
  }
  // Tied embeddings: the Gather keeps the float table and lm_head gets a quantized copy of it.
  if (quantizeLmHead) quantized.push(layout.lmHead ?? layout.embedTokens);
  const quantizedSet = new Set(quantized);
  const float = [...expectedShapes(checkpoint.spec, layout).keys()].filter((name) => !quantizedSet.has(name) || name === layout.embedTokens);
  return { quantized, float };
}
