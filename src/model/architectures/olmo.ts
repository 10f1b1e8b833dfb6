// OLMo (v1, OlmoForCausalLM): Llama tensor names, LayerNorm without weights, optional clip_qkv.
import type { ModelSpec } from '../hf-config.js';
import type { Architecture, DecoderLayout } from './layout.js';
import { describeLlamaLayout } from './llama.js';

function describeOlmoLayout(spec: ModelSpec): DecoderLayout {
  const base = describeLlamaLayout({ ...spec, attentionBias: false });
  return {
    ...base,
    norm: 'layer-norm-without-affine',
    finalNorm: undefined,
    layers: base.layers.map(({ inputNorm: _in, postAttentionNorm: _post, ...rest }) => rest),
  };
}

export const olmo: Architecture = { name: 'OlmoForCausalLM', describeLayout: describeOlmoLayout };
