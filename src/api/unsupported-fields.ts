// Request fields of the OpenAI (and vLLM) APIs that ask for behaviour swserve does not have: tool
// calls, constrained output, stored responses. Each is refused with 400 unsupported_parameter
// naming it, rather than ignored, so a client never takes plain text for the answer it asked for.
// Their defaults (tool_choice "none", response_format {"type": "text"}, ...) stay accepted, and the
// rest of the body's unknown fields are still accepted: benchmark clients send many.
import { ApiError } from '../http/errors.js';

type Body = Record<string, unknown>;

/** One rule: the field it is about and, when the body asks for what swserve lacks, why not. */
export type UnsupportedRule = (body: Body) => { param: string; message: string } | undefined;

const isSet = (value: unknown): boolean => value !== undefined && value !== null;
const isNonEmptyList = (value: unknown): boolean => Array.isArray(value) && value.length > 0;
const show = (value: unknown): string => JSON.stringify(value);

/** tools / tool_choice / parallel_tool_calls: swserve has no tool-call parser, so it never calls a tool. */
export const toolCalls: UnsupportedRule = (body) => {
  const choice = body.tool_choice;
  if (isNonEmptyList(body.tools) && choice !== 'none') {
    return isSet(choice)
      ? { param: 'tool_choice', message: `tool_choice ${show(choice)} asks for tool calls, which swserve does not make; send tool_choice "none" or no tools` }
      : { param: 'tools', message: 'tools are callable by default (tool_choice "auto"), and swserve makes no tool calls; send tool_choice "none" or no tools' };
  }
  if (isSet(choice) && choice !== 'none' && choice !== 'auto') {
    return { param: 'tool_choice', message: `tool_choice ${show(choice)} asks for a tool call, which swserve does not make` };
  }
  // As OpenAI: the setting only means something with tools.
  if (isSet(body.parallel_tool_calls) && !isNonEmptyList(body.tools)) {
    return { param: 'parallel_tool_calls', message: 'parallel_tool_calls is only allowed with tools, and swserve makes no tool calls' };
  }
  return undefined;
};

/** The legacy function-calling fields of chat completions. */
export const functionCalls: UnsupportedRule = (body) =>
  isNonEmptyList(body.functions) && body.function_call !== 'none'
    ? { param: 'functions', message: 'functions (legacy function calling) are not supported; swserve makes no function calls' }
    : undefined;

/** A format other than plain text, in `param` (response_format, or text.format for the Responses API). */
export function textFormat(param: 'response_format' | 'text.format'): UnsupportedRule {
  return (body) => {
    const format = param === 'response_format' ? body.response_format : (body.text as Body | null | undefined)?.format;
    if (!isSet(format) || (format as Body).type === 'text') return undefined;
    return { param, message: `${param} ${show((format as Body).type ?? format)} asks for constrained output, which swserve does not do; only {"type": "text"} is supported` };
  };
}

/** vLLM's structured-output extras. */
export const guidedDecoding: UnsupportedRule = (body) => {
  const field = ['guided_json', 'guided_regex', 'guided_choice', 'guided_grammar', 'structured_outputs'].find((f) => isSet(body[f]));
  return field ? { param: field, message: `${field} (structured output) is not supported` } : undefined;
};

/** A field refused whenever it is set to anything but null (or `allowed`). */
export function refusedUnless(param: string, why: string, allowed: readonly unknown[] = []): UnsupportedRule {
  return (body) => (isSet(body[param]) && !allowed.some((a) => JSON.stringify(a) === JSON.stringify(body[param])) ? { param, message: `${param} ${show(body[param])}: ${why}` } : undefined);
}

/** Throws the first refusal the rules find. */
export function refuseUnsupported(body: object, rules: readonly UnsupportedRule[]): void {
  for (const rule of rules) {
    const refusal = rule(body as Body);
    if (refusal) throw new ApiError('unsupported_parameter', refusal.message, refusal.param);
  }
}

/** What chat completions refuse. */
export const CHAT_UNSUPPORTED: readonly UnsupportedRule[] = [
  toolCalls,
  functionCalls,
  textFormat('response_format'),
  guidedDecoding,
  refusedUnless('audio', 'audio output is not supported'),
  refusedUnless('modalities', 'only text output is supported', [['text']]),
  refusedUnless('prediction', 'predicted outputs are not supported'),
  refusedUnless('web_search_options', 'web search is not supported'),
];

/** What text completions refuse; vLLM refuses suffix too, and dropped best_of. */
export const COMPLETION_UNSUPPORTED: readonly UnsupportedRule[] = [
  (body) => (typeof body.best_of === 'number' && body.best_of > 1 ? { param: 'best_of', message: 'best_of > 1 is not supported; use n and rank the choices by their logprobs' } : undefined),
  (body) => (body.suffix ? { param: 'suffix', message: 'suffix (insertion) is not supported' } : undefined),
  toolCalls,
  textFormat('response_format'),
  guidedDecoding,
];
