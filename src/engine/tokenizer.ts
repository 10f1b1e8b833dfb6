// Text <-> token ids for a Hugging Face model folder, wrapping @huggingface/tokenizers with the bits of
// transformers/vLLM behaviour the server relies on: add_bos_token, eos ids from generation_config.json,
// special-token skipping, chat templates, and the per-token text shown in logprobs.

import { readFile } from "node:fs/promises";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { isPlainObject } from "../util/plain-object.js";

export interface EncodeOptions {
  /** Add BOS/EOS as the post-processor and `add_bos_token` say (default true, as in transformers). */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (added tokens marked special, plus bos/eos/unk/pad/additional_special_tokens). Default false. */
  skipSpecialTokens?: boolean;
}

export interface TextTokenizer {
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** The text of one token as a client sees it in logprobs (vLLM: decode([id])); may be "\uFFFD" for a partial character. */
  tokenText(id: number): string;
  isSpecialToken(id: number): boolean;
  readonly bosId: number | undefined;
  /** Tokens that end generation: the tokenizer's eos_token first, then generation_config.json eos_token_id. */
  readonly eosIds: readonly number[];
  readonly padId: number | undefined;
  /** One past the largest token id (added tokens included); the model's logit width may be larger. */
  readonly vocabSize: number;
  readonly chatTemplate: string | undefined;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  readonly padToken: string | undefined;
  readonly unkToken: string | undefined;
}

/** Parsed contents of the model folder's tokenizer files (the optional ones may be absent). */
export interface TokenizerFiles {
  tokenizerJson: unknown;
  tokenizerConfig?: unknown;
  generationConfig?: unknown;
  /** Contents of chat_template.jinja, which newer transformers versions save instead of tokenizer_config's chat_template. */
  chatTemplateFile?: string;
}

export const TOKENIZER_FILE = "tokenizer.json";
export const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";
export const GENERATION_CONFIG_FILE = "generation_config.json";
export const CHAT_TEMPLATE_FILE = "chat_template.jinja";
/** The entry transformers picks from a list of named chat templates when none is requested. */
const DEFAULT_CHAT_TEMPLATE_NAME = "default";

type JsonObject = Record<string, unknown>;

/** Reads tokenizer.json (required), tokenizer_config.json, generation_config.json and chat_template.jinja (optional). */
export async function loadTokenizer(modelDir: string): Promise<TextTokenizer> {
  const tokenizerPath = path.join(modelDir, TOKENIZER_FILE);
  const tokenizerText = await readOptionalFile(tokenizerPath);
  if (tokenizerText === undefined) {
    throw new Error(`${tokenizerPath} not found: the model folder needs a Hugging Face fast-tokenizer file`);
  }
  const files: TokenizerFiles = {
    tokenizerJson: requireObject(parseJsonFile(tokenizerPath, tokenizerText), tokenizerPath),
    tokenizerConfig: await readOptionalJsonObject(path.join(modelDir, TOKENIZER_CONFIG_FILE)),
    generationConfig: await readOptionalJsonObject(path.join(modelDir, GENERATION_CONFIG_FILE)),
    chatTemplateFile: await readOptionalFile(path.join(modelDir, CHAT_TEMPLATE_FILE)),
  };
  try {
    return createTextTokenizer(files);
  } catch (error) {
    throw new Error(`${tokenizerPath}: cannot build the tokenizer: ${errorMessage(error)}`);
  }
}

/** Builds a tokenizer from already-parsed files (tests and callers that hold the JSON in memory). */
export function createTextTokenizer(files: TokenizerFiles): TextTokenizer {
  const tokenizerJson = requireObject(files.tokenizerJson, TOKENIZER_FILE);
  const config = files.tokenizerConfig === undefined ? {} : requireObject(files.tokenizerConfig, TOKENIZER_CONFIG_FILE);
  const generationConfig =
    files.generationConfig === undefined ? {} : requireObject(files.generationConfig, GENERATION_CONFIG_FILE);
  const inner = new Tokenizer(tokenizerJson, config);
  const idOf = (token: string | undefined): number | undefined => (token === undefined ? undefined : inner.token_to_id(token));

  const bosToken = specialTokenString(config.bos_token);
  const eosToken = specialTokenString(config.eos_token);
  const padToken = specialTokenString(config.pad_token);
  const unkToken = specialTokenString(config.unk_token);
  const bosId = idOf(bosToken) ?? tokenIds(generationConfig.bos_token_id)[0];
  const padId = idOf(padToken) ?? tokenIds(generationConfig.pad_token_id)[0];
  const eosIds = unique([...optional(idOf(eosToken)), ...tokenIds(generationConfig.eos_token_id)]);

  const specialIds = collectSpecialIds(inner, config, [bosId, padId, idOf(unkToken), ...eosIds]);
  const vocabSize = largestId(inner.get_vocab(true).values()) + 1;
  const fixBos = bosFixer(inner, bosId, config.add_bos_token);

  // clean_up_tokenization_spaces is always off: vLLM's streamed text does not apply it, and the incremental
  // detokenizer needs decode() to be stable under appending tokens.
  const decode = (ids: readonly number[], options: DecodeOptions = {}): string => {
    const kept = options.skipSpecialTokens ? ids.filter((id) => !specialIds.has(id)) : ids;
    return kept.length === 0 ? "" : inner.decode([...kept], { clean_up_tokenization_spaces: false });
  };

  const tokenTextCache = new Map<number, string>();
  const tokenText = (id: number): string => {
    let text = tokenTextCache.get(id);
    if (text === undefined) {
      text = decode([id]);
      tokenTextCache.set(id, text);
    }
    return text;
  };

  return {
    encode: (text, options = {}) => {
      const addSpecialTokens = options.addSpecialTokens ?? true;
      const ids = inner.encode(text, { add_special_tokens: addSpecialTokens }).ids;
      return addSpecialTokens ? fixBos(ids) : ids;
    },
    decode,
    tokenText,
    isSpecialToken: (id) => specialIds.has(id),
    bosId,
    eosIds,
    padId,
    vocabSize,
    chatTemplate: files.chatTemplateFile ?? chatTemplateFromConfig(config.chat_template),
    bosToken: bosToken ?? (bosId === undefined ? undefined : inner.id_to_token(bosId)),
    eosToken: eosToken ?? (eosIds.length === 0 ? undefined : inner.id_to_token(eosIds[0])),
    padToken,
    unkToken,
  };
}

/**
 * transformers (Llama/Gemma fast tokenizers, and PreTrainedTokenizerFast in recent versions) rebuilds the
 * post-processor from `add_bos_token`; emulate that by adding or removing the BOS the post-processor produces.
 */
function bosFixer(inner: Tokenizer, bosId: number | undefined, addBosToken: unknown): (ids: number[]) => number[] {
  if (bosId === undefined || typeof addBosToken !== "boolean") return (ids) => ids;
  const postProcessorAddsBos = inner.encode("", { add_special_tokens: true }).ids[0] === bosId;
  if (addBosToken && !postProcessorAddsBos) return (ids) => [bosId, ...ids];
  if (!addBosToken && postProcessorAddsBos) return (ids) => (ids[0] === bosId ? ids.slice(1) : ids);
  return (ids) => ids;
}

/** Ids transformers counts as special: added tokens flagged special, named special tokens, additional_special_tokens. */
function collectSpecialIds(inner: Tokenizer, config: JsonObject, namedIds: readonly (number | undefined)[]): Set<number> {
  const ids = new Set<number>();
  for (const [id, token] of inner.get_added_tokens_decoder()) if (token.special) ids.add(id);
  for (const id of namedIds) if (id !== undefined) ids.add(id);
  const additional = Array.isArray(config.additional_special_tokens) ? config.additional_special_tokens : [];
  for (const entry of additional) {
    const id = inner.token_to_id(specialTokenString(entry) ?? "");
    if (id !== undefined) ids.add(id);
  }
  return ids;
}

/** tokenizer_config.json writes special tokens as a string or as an AddedToken object `{content, ...}`. */
function specialTokenString(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (isPlainObject(value) && typeof value.content === "string") return value.content;
  return undefined;
}

/** `chat_template` is a string, or a list of `{name, template}` from which transformers takes "default". */
function chatTemplateFromConfig(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (!Array.isArray(value)) return undefined;
  for (const entry of value) {
    if (isPlainObject(entry) && entry.name === DEFAULT_CHAT_TEMPLATE_NAME && typeof entry.template === "string") {
      return entry.template;
    }
  }
  return undefined;
}

/** generation_config.json ids may be a number, a list of numbers, or null. */
function tokenIds(value: unknown): number[] {
  const values = Array.isArray(value) ? value : [value];
  return values.filter((id): id is number => Number.isInteger(id) && (id as number) >= 0);
}

/** A loop, not Math.max(...ids): spreading a 150k-entry vocabulary would overflow the call stack. */
function largestId(ids: Iterable<number>): number {
  let largest = -1;
  for (const id of ids) if (id > largest) largest = id;
  return largest;
}

function optional<T>(value: T | undefined): T[] {
  return value === undefined ? [] : [value];
}

function unique(values: readonly number[]): number[] {
  return [...new Set(values)];
}

function requireObject(value: unknown, fileName: string): JsonObject {
  if (!isPlainObject(value)) throw new Error(`${fileName} must hold a JSON object`);
  return value;
}

async function readOptionalFile(filePath: string): Promise<string | undefined> {
  try {
    return await readFile(filePath, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`cannot read ${filePath}: ${errorMessage(error)}`);
  }
}

async function readOptionalJsonObject(filePath: string): Promise<JsonObject | undefined> {
  const text = await readOptionalFile(filePath);
  return text === undefined ? undefined : requireObject(parseJsonFile(filePath, text), filePath);
}

function parseJsonFile(filePath: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(`${filePath} is not valid JSON: ${errorMessage(error)}`);
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
