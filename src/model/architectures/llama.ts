// Llama layout, shared by Mistral and Qwen2 (whose q/k/v projections carry biases).
import type { ModelSpec } from '../hf-config.js';
import { layerPrefix, type Architecture, type DecoderLayout, type LayerLayout } from './layout.js';

export function describeLlamaLayout(spec: ModelSpec): DecoderLayout {
  const layers: LayerLayout[] = [];
  for (let l = 0; l < spec.numLayers; l++) {
    const p = layerPrefix(l);
    const bias = (proj: string): string | undefined => (spec.attentionBias ? `${p}.self_attn.${proj}_proj.bias` : undefined);
    layers.push({
      inputNorm: `${p}.input_layernorm.weight`,
      postAttentionNorm: `${p}.post_attention_layernorm.weight`,
      attention: {
        kind: 'separate',
        q: `${p}.self_attn.q_proj.weight`,
        k: `${p}.self_attn.k_proj.weight`,
        v: `${p}.self_attn.v_proj.weight`,
        qBias: bias('q'),
        kBias: bias('k'),
        vBias: bias('v'),
      },
      o: `${p}.self_attn.o_proj.weight`,
      mlp: { kind: 'separate', gate: `${p}.mlp.gate_proj.weight`, up: `${p}.mlp.up_proj.weight` },
      down: `${p}.mlp.down_proj.weight`,
    });
  }
  return {
    norm: 'rms',
    embedTokens: 'model.embed_tokens.weight',
    finalNorm: 'model.norm.weight',
    lmHead: spec.tieWordEmbeddings ? undefined : 'lm_head.weight',
    layers,
  };
}

export const llama: Architecture = { name: 'LlamaForCausalLM', describeLayout: describeLlamaLayout };
export const mistral: Architecture = { name: 'MistralForCausalLM', describeLayout: describeLlamaLayout };
export const qwen2: Architecture = { name: 'Qwen2ForCausalLM', describeLayout: describeLlamaLayout };
