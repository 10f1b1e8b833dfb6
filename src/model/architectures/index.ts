// The architectures swserve can build, by the `architectures` name in config.json.
import type { ArchitectureName } from '../hf-config.js';
import type { Architecture } from './layout.js';
import { llama, mistral, qwen2 } from './llama.js';
import { olmo } from './olmo.js';
import { phi3 } from './phi3.js';

export const ARCHITECTURES: Record<ArchitectureName, Architecture> = {
  LlamaForCausalLM: llama,
  MistralForCausalLM: mistral,
  Qwen2ForCausalLM: qwen2,
  Phi3ForCausalLM: phi3,
  OlmoForCausalLM: olmo,
};
