// Where each checkpoint tensor goes in the decoder. Every architecture file maps Hugging Face tensor
// names onto this one layout; the graph builder and the checkpoint check read only the layout.
import type { ArchitectureName, ModelSpec } from '../hf-config.js';

export type NormKind = 'rms' | 'layer-norm-without-affine';

export type AttentionProjections =
  | { kind: 'separate'; q: string; k: string; v: string; qBias?: string; kBias?: string; vBias?: string }
  | { kind: 'fused'; qkv: string };

export type MlpProjections = { kind: 'separate'; gate: string; up: string } | { kind: 'fused'; gateUp: string };

export interface LayerLayout {
  /** Absent for OLMo, whose LayerNorm has no weights. */
  inputNorm?: string;
  postAttentionNorm?: string;
  attention: AttentionProjections;
  o: string;
  mlp: MlpProjections;
  /** `down_proj.weight`, [hidden, intermediate] in Hugging Face [out, in] layout. */
  down: string;
}

export interface DecoderLayout {
  norm: NormKind;
  embedTokens: string;
  finalNorm?: string;
  /** Absent when the embeddings are tied. */
  lmHead?: string;
  layers: LayerLayout[];
}

export interface Architecture {
  name: ArchitectureName;
  describeLayout(spec: ModelSpec): DecoderLayout;
}

/** Expected [out, in] shape of every tensor named in the layout, derived from the spec. */
export function expectedShapes(spec: ModelSpec, layout: DecoderLayout): Map<string, number[]> {
  const { hiddenSize: h, intermediateSize: i, numHeads, numKvHeads, headDim: d, vocabSize: v } = spec;
  const q = numHeads * d;
  const kv = numKvHeads * d;
  const shapes = new Map<string, number[]>([[layout.embedTokens, [v, h]]]);
  if (layout.finalNorm) shapes.set(layout.finalNorm, [h]);
  if (layout.lmHead) shapes.set(layout.lmHead, [v, h]);
  for (const layer of layout.layers) {
    if (layer.inputNorm) shapes.set(layer.inputNorm, [h]);
    if (layer.postAttentionNorm) shapes.set(layer.postAttentionNorm, [h]);
    const a = layer.attention;
    if (a.kind === 'fused') {
      shapes.set(a.qkv, [q + 2 * kv, h]);
    } else {
      shapes.set(a.q, [q, h]).set(a.k, [kv, h]).set(a.v, [kv, h]);
      if (a.qBias) shapes.set(a.qBias, [q]);
      if (a.kBias) shapes.set(a.kBias, [kv]);
      if (a.vBias) shapes.set(a.vBias, [kv]);
    }
    shapes.set(layer.o, [h, q]);
    if (layer.mlp.kind === 'fused') shapes.set(layer.mlp.gateUp, [2 * i, h]);
    else shapes.set(layer.mlp.gate, [i, h]).set(layer.mlp.up, [i, h]);
    shapes.set(layer.down, [h, i]);
  }
  return shapes;
}

export function layerPrefix(index: number): string {
  return `model.layers.${index}`;
}
