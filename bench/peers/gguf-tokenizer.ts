// tokenizer.json -> llama.cpp's tokenizer.ggml.* keys for byte-level BPE tokenizers ("gpt2" model), as
// convert_hf_to_gguf.py's get_vocab_base does: one token per id up to config.json's vocab_size
// ([PADn] for ids the tokenizer lacks), token types, merges as "left right", BOS/EOS and add_bos.
import fs from 'node:fs';
import path from 'node:path';
import { bool, str, u32, type GgufValue } from './gguf-file.js';

/** llama.cpp's llama_token_type (and gguf-py's TokenType). */
const TOKEN_TYPE = { normal: 1, control: 3, userDefined: 4, unused: 5 } as const;

// The pre-tokenizers llama.cpp knows by name (llama-vocab.cpp) that a byte-level BPE tokenizer.json maps
// onto: GPT-2's ByteLevel regex, and Llama 3's Split regex followed by a regex-free ByteLevel.
const GPT2_PRE = 'gpt-2';
const LLAMA3_PRE = 'llama-bpe';
const LLAMA3_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

interface PreTokenizer {
  type?: string;
  use_regex?: boolean;
  pattern?: { Regex?: string };
  pretokenizers?: PreTokenizer[];
}

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] };
  added_tokens?: AddedToken[];
  pre_tokenizer?: PreTokenizer | null;
}

interface TokenizerConfigJson {
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  bos_token?: string | { content: string } | null;
  eos_token?: string | { content: string } | null;
  chat_template?: string;
}

export interface SpecialIds {
  bosTokenId?: number;
  eosTokenIds: number[];
}

function readJson<T>(file: string): T | undefined {
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as T) : undefined;
}

function preTokenizerName(pre: PreTokenizer | null | undefined, file: string): string {
  if (pre?.type === 'ByteLevel' && pre.use_regex !== false) return GPT2_PRE;
  const parts = pre?.type === 'Sequence' ? (pre.pretokenizers ?? []) : [];
  if (parts.length === 2 && parts[0]?.type === 'Split' && parts[0].pattern?.Regex === LLAMA3_SPLIT_REGEX && parts[1]?.type === 'ByteLevel' && parts[1].use_regex === false) {
    return LLAMA3_PRE;
  }
  throw new Error(`${file}: pre_tokenizer ${JSON.stringify(pre)} is not one this converter maps to llama.cpp (GPT-2 ByteLevel or Llama 3's Split)`);
}

function tokenContent(token: TokenizerConfigJson['bos_token']): string | undefined {
  return typeof token === 'string' ? token : (token?.content ?? undefined);
}

/** tokenizer.ggml.* metadata for the tokenizer in `modelDir`, padded to `vocabSize` tokens. */
export function ggufTokenizerMetadata(modelDir: string, vocabSize: number, special: SpecialIds): [string, GgufValue][] {
  const file = path.join(modelDir, 'tokenizer.json');
  const tokenizer = readJson<TokenizerJson>(file);
  if (!tokenizer) throw new Error(`${file} is missing; llama.cpp needs the tokenizer inside the GGUF`);
  const config = readJson<TokenizerConfigJson>(path.join(modelDir, 'tokenizer_config.json')) ?? {};
  if (tokenizer.model?.type !== 'BPE' || !tokenizer.model.vocab) throw new Error(`${file}: only BPE tokenizers are converted (model.type ${tokenizer.model?.type})`);

  const tokens: string[] = Array.from({ length: vocabSize }, (_, i) => `[PAD${i}]`);
  const types: number[] = new Array<number>(vocabSize).fill(TOKEN_TYPE.unused);
  const place = (id: number, content: string, type: number): void => {
    if (id >= vocabSize) throw new Error(`${file}: token ${JSON.stringify(content)} has id ${id}, beyond vocab_size ${vocabSize}`);
    tokens[id] = content;
    types[id] = type;
  };
  for (const [content, id] of Object.entries(tokenizer.model.vocab)) place(id, content, TOKEN_TYPE.normal);
  const added = tokenizer.added_tokens ?? [];
  for (const t of added) place(t.id, t.content, t.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined);

  const merges = (tokenizer.model.merges ?? []).map((m) => (typeof m === 'string' ? m : m.join(' ')));
  const idOf = (content: string | undefined): number | undefined => added.find((t) => t.content === content)?.id;
  const bos = idOf(tokenContent(config.bos_token)) ?? special.bosTokenId;
  const eos = idOf(tokenContent(config.eos_token)) ?? special.eosTokenIds[0];

  const out: [string, GgufValue][] = [
    ['tokenizer.ggml.model', str('gpt2')],
    ['tokenizer.ggml.pre', str(preTokenizerName(tokenizer.pre_tokenizer, file))],
    ['tokenizer.ggml.tokens', { kind: 'array', element: 'string', values: tokens }],
    ['tokenizer.ggml.token_type', { kind: 'array', element: 'i32', values: types }],
    ['tokenizer.ggml.merges', { kind: 'array', element: 'string', values: merges }],
  ];
  if (bos !== undefined) out.push(['tokenizer.ggml.bos_token_id', u32(bos)]);
  if (eos !== undefined) out.push(['tokenizer.ggml.eos_token_id', u32(eos)]);
  if (config.add_bos_token !== undefined) out.push(['tokenizer.ggml.add_bos_token', bool(config.add_bos_token)]);
  if (config.add_eos_token !== undefined) out.push(['tokenizer.ggml.add_eos_token', bool(config.add_eos_token)]);
  if (config.chat_template) out.push(['tokenizer.chat_template', str(config.chat_template)]);
  return out;
}
