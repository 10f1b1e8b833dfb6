// Renders a chat into the model's prompt with its own Jinja template (tokenizer_config.json),
// through @huggingface/jinja, the renderer transformers.js uses. A template the renderer cannot parse
// is found at load (logged, and shown in /v1/models); chat requests then get a 400 saying so, as they
// do when a template refuses a conversation.
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

export type ChatTemplateCheck = { status: 'ok'; compiled: Template } | { status: 'missing' } | { status: 'invalid'; error: string };

// Where a model's template comes from, for messages that name it.
const TEMPLATE_SOURCE = 'tokenizer_config.json chat_template';

const checked = new Map<string, ChatTemplateCheck>();

/** Parses a model's chat template once; the result is kept for every later request. */
export function checkChatTemplate(template: string | undefined): ChatTemplateCheck {
  if (!template) return { status: 'missing' };
  let check = checked.get(template);
  if (!check) {
    try {
      check = { status: 'ok', compiled: new Template(template) };
    } catch (err) {
      check = { status: 'invalid', error: (err as Error).message };
    }
    checked.set(template, check);
  }
  return check;
}

/** The log line for a template that can not serve chat, or undefined when it can. */
export function chatTemplateProblem(modelId: string, template: string | undefined): string | undefined {
  const check = checkChatTemplate(template);
  return check.status === 'invalid' ? `the chat template of ${modelId} (${TEMPLATE_SOURCE}) cannot be parsed: ${check.error}; chat requests will answer 400` : undefined;
}

export function renderChat(ctx: ChatTemplateContext, messages: ChatMessage[], addGenerationPrompt: boolean, extra: Record<string, unknown>): string {
  const check = checkChatTemplate(ctx.template);
  if (check.status === 'missing') {
    throw new ApiError('invalid_request', `${ctx.modelId} has no chat template (${TEMPLATE_SOURCE}); use /v1/completions`, ctx.param ?? 'messages');
  }
  if (check.status === 'invalid') {
    throw new ApiError('invalid_request', `the chat template of ${ctx.modelId} (${TEMPLATE_SOURCE}) cannot be parsed: ${check.error}; use /v1/completions`, ctx.param ?? 'messages');
  }
  try {
    return check.compiled.render({
      ...extra,
      messages: messages.map((m) => ({ ...m, content: typeof m.content === 'string' || m.content === null ? (m.content ?? '') : m.content.map((p) => p.text).join('') })),
      add_generation_prompt: addGenerationPrompt,
      bos_token: ctx.bosToken ?? '',
      eos_token: ctx.eosToken ?? '',
    });
  } catch (err) {
    // Templates refuse conversations they do not support (e.g. roles out of order) with raise_exception.
    throw new ApiError('invalid_request', `the chat template of ${ctx.modelId} (${TEMPLATE_SOURCE}) failed on these messages: ${(err as Error).message}`, ctx.param ?? 'messages');
  }
}
