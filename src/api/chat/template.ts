// Renders a chat into the model's prompt with its own Jinja template (tokenizer_config.json),
// through @huggingface/jinja, the renderer transformers.js uses.
import { Template } from '@huggingface/jinja';
import { ApiError } from '../../http/errors.js';
import type { ChatMessage } from './schema.js';

export interface ChatTemplateContext {
  template: string | undefined;
  bosToken?: string;
  eosToken?: string;
  modelId: string;
  /** The request field a refused conversation is blamed on (default `messages`). */
  param?: string;
}

const compiled = new Map<string, Template>();

export function renderChat(ctx: ChatTemplateContext, messages: ChatMessage[], addGenerationPrompt: boolean, extra: Record<string, unknown>): string {
  if (!ctx.template) {
    throw new ApiError('invalid_request', `${ctx.modelId} has no chat template (tokenizer_config.json chat_template); use /v1/completions`, ctx.param ?? 'messages');
  }
  let template = compiled.get(ctx.template);
  if (!template) {
    template = new Template(ctx.template);
    compiled.set(ctx.template, template);
  }
  try {
    return template.render({
      ...extra,
      messages: messages.map((m) => ({ ...m, content: typeof m.content === 'string' || m.content === null ? (m.content ?? '') : m.content.map((p) => p.text).join('') })),
      add_generation_prompt: addGenerationPrompt,
      bos_token: ctx.bosToken ?? '',
      eos_token: ctx.eosToken ?? '',
    });
  } catch (err) {
    // Templates raise for conversations they do not support (e.g. roles out of order).
    throw new ApiError('invalid_request', `the chat template refused these messages: ${(err as Error).message}`, ctx.param ?? 'messages');
  }
}
