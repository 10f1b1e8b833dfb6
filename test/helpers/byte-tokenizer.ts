import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ByteTokenizerInfo {
  bosId: number;
  eosId: number;
  vocabSize: number;
}

export const BYTE_TOKENIZER_BOS = '<s>';
export const BYTE_TOKENIZER_EOS = '</s>';
export const BYTE_TOKENIZER_BOS_ID = 256;
export const BYTE_TOKENIZER_EOS_ID = 257;
export const BYTE_TOKENIZER_VOCAB_SIZE = 258;

export const BYTE_TOKENIZER_CHAT_TEMPLATE =
  "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

/**
 * GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to U+0100 upwards.
 * Returned indexed by byte value.
 */
export function byteLevelAlphabet(): string[] {
  const direct: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) direct.push(b);
  for (let b = 0xa1; b <= 0xac; b++) direct.push(b);
  for (let b = 0xae; b <= 0xff; b++) direct.push(b);
  const chars: string[] = new Array<string>(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (direct.includes(b)) chars[b] = String.fromCodePoint(b);
    else chars[b] = String.fromCodePoint(256 + next++);
  }
  return chars;
}

/** Token ids of `text` without BOS: the id of a byte token is the byte value. */
export function byteTokenIds(text: string): number[] {
  return [...Buffer.from(text, 'utf8')];
}

function specialTokenProps(content: string): Record<string, unknown> {
  return { content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

function specialToken(id: number, content: string): Record<string, unknown> {
  return { id, ...specialTokenProps(content) };
}

export interface ByteTokenizerOptions {
  /** BPE merges in byte-level characters; each result gets the next id after the special tokens. */
  merges?: [string, string][];
  /** false leaves out the TemplateProcessing post-processor (no BOS from encoding). */
  postProcessor?: boolean;
}

export function byteTokenizerJson(options: ByteTokenizerOptions = {}): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  byteLevelAlphabet().forEach((ch, byte) => {
    vocab[ch] = byte;
  });
  const merges = options.merges ?? [];
  merges.forEach(([left, right], i) => (vocab[left + right] = BYTE_TOKENIZER_VOCAB_SIZE + i));
  const bosPiece = { SpecialToken: { id: BYTE_TOKENIZER_BOS, type_id: 0 } };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      specialToken(BYTE_TOKENIZER_BOS_ID, BYTE_TOKENIZER_BOS),
      specialToken(BYTE_TOKENIZER_EOS_ID, BYTE_TOKENIZER_EOS),
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: options.postProcessor === false ? null : {
      type: 'TemplateProcessing',
      single: [bosPiece, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        bosPiece,
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: BYTE_TOKENIZER_BOS, type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: {
        [BYTE_TOKENIZER_BOS]: { id: BYTE_TOKENIZER_BOS, ids: [BYTE_TOKENIZER_BOS_ID], tokens: [BYTE_TOKENIZER_BOS] },
      },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

export function byteTokenizerConfig(): Record<string, unknown> {
  return {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: BYTE_TOKENIZER_BOS,
    eos_token: BYTE_TOKENIZER_EOS,
    unk_token: null,
    pad_token: null,
    // Clean-up would rewrite " ." into "." and break exact decode round trips.
    clean_up_tokenization_spaces: false,
    model_max_length: 1000000,
    tokenizer_class: 'PreTrainedTokenizerFast',
    chat_template: BYTE_TOKENIZER_CHAT_TEMPLATE,
    added_tokens_decoder: {
      [String(BYTE_TOKENIZER_BOS_ID)]: specialTokenProps(BYTE_TOKENIZER_BOS),
      [String(BYTE_TOKENIZER_EOS_ID)]: specialTokenProps(BYTE_TOKENIZER_EOS),
    },
  };
}

/**
 * Writes tokenizer.json + tokenizer_config.json for a merge-free byte-level BPE:
 * ids 0..255 are the bytes (token strings from GPT-2's bytes_to_unicode), 256 = `<s>`, 257 = `</s>`.
 */
export function writeByteTokenizer(dir: string): ByteTokenizerInfo {
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(byteTokenizerJson(), null, 2));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(byteTokenizerConfig(), null, 2));
  return { bosId: BYTE_TOKENIZER_BOS_ID, eosId: BYTE_TOKENIZER_EOS_ID, vocabSize: BYTE_TOKENIZER_VOCAB_SIZE };
}
