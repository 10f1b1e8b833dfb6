// Phi-3: Llama numerics with fused qkv_proj (rows q, k, v) and gate_up_proj (rows gate, up).
import type { ModelSpec } from '../hf-config.js';
import { layerPrefix, type Architecture, type DecoderLayout } from './layout.js';
import { describeLlamaLayout } from './llama.js';

function describePhi3Layout(spec: ModelSpec): DecoderLayout {
  const base = describeLlamaLayout({ ...spec, attentionBias: false });
  return {
    ...base,
    layers: base.layers.map((layer, l) => ({
      ...layer,
      attention: { kind: 'fused', qkv: `${layerPrefix(l)}.self_attn.qkv_proj.weight` },
      mlp: { kind: 'fused', gateUp: `${layerPrefix(l)}.mlp.gate_up_proj.weight` },
    })),
  };
}

export const phi3: Architecture = { name: 'Phi3ForCausalLM', describeLayout: describePhi3Layout };
