import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import { createDetokenizer, createStopMatcher } from "../../src/engine/detokenizer.js";
import { createTextTokenizer, loadTokenizer, type TextTokenizer } from "../../src/engine/tokenizer.js";
import { BYTE_TOKENIZER_BOS_ID, BYTE_TOKENIZER_EOS_ID, byteLevelAlphabet, byteTokenizerJson } from "../helpers/byte-tokenizer.js";

// A tiny GPT-2-style byte-level BPE tokenizer: ids 0..255 are the raw bytes, then <s>, </s>, then merges.

const BOS_ID = BYTE_TOKENIZER_BOS_ID;
const EOS_ID = BYTE_TOKENIZER_EOS_ID;

const BYTE_CHARS = byteLevelAlphabet();

function byteLevel(text: string): string {
  return Array.from(Buffer.from(text, "utf8"), (b) => BYTE_CHARS[b]).join("");
}

/** Merges as [left, right] in byte-level characters; each result becomes a vocabulary entry after the added tokens. */
const MERGES: [string, string][] = [
  ["h", "e"],
  [byteLevel(" "), "t"],
  [byteLevel(" t"), "he"],
  // The first two bytes of 日 (E6 97 A5): a token that ends mid-character.
  [byteLevel("日").slice(0, 1), byteLevel("日").slice(1, 2)],
  ["l", "l"],
];
const MERGED_IDS = new Map(MERGES.map(([left, right], index) => [left + right, EOS_ID + 1 + index]));

function tokenizerJson(options: { postProcessor?: boolean } = {}): Record<string, unknown> {
  return byteTokenizerJson({ merges: MERGES, postProcessor: options.postProcessor });
}

const TOKENIZER_CONFIG = {
  bos_token: { content: "<s>", lstrip: false, normalized: false, rstrip: false, single_word: false },
  eos_token: "</s>",
  chat_template: [
    { name: "tool_use", template: "TOOLS" },
    { name: "default", template: "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}" },
  ],
};

function testTokenizer(config: Record<string, unknown> = TOKENIZER_CONFIG, json = tokenizerJson()): TextTokenizer {
  return createTextTokenizer({ tokenizerJson: json, tokenizerConfig: config, generationConfig: { eos_token_id: [EOS_ID, 5] } });
}

const MULTIBYTE_TEXT = "héllo ✓ 日本 the end";

describe("TextTokenizer", () => {
  const tokenizer = testTokenizer();
  const byte = (char: string): number => Buffer.from(char, "utf8")[0];

  const encodeCases: { name: string; text: string; addSpecialTokens?: boolean; ids: number[] }[] = [
    { name: "adds BOS through the post-processor", text: "the", ids: [BOS_ID, byte("t"), MERGED_IDS.get("he")!] },
    { name: "applies chained merges", text: " the", addSpecialTokens: false, ids: [MERGED_IDS.get(byteLevel(" the"))!] },
    { name: "skips BOS without special tokens", text: "hello", addSpecialTokens: false, ids: [MERGED_IDS.get("he")!, MERGED_IDS.get("ll")!, byte("o")] },
    { name: "recognises special tokens in text", text: "a</s>", addSpecialTokens: false, ids: [byte("a"), EOS_ID] },
  ];
  for (const { name, text, addSpecialTokens, ids } of encodeCases) {
    it(`encode ${name}`, () => assert.deepEqual(tokenizer.encode(text, { addSpecialTokens }), ids));
  }

  it("add_bos_token overrides the post-processor, as transformers does", () => {
    const withoutBos = testTokenizer({ ...TOKENIZER_CONFIG, add_bos_token: false });
    assert.deepEqual(withoutBos.encode("a"), [byte("a")]);
    const bosAdded = testTokenizer({ ...TOKENIZER_CONFIG, add_bos_token: true }, tokenizerJson({ postProcessor: false }));
    assert.deepEqual(bosAdded.encode("a"), [BOS_ID, byte("a")]);
    assert.deepEqual(bosAdded.encode("a", { addSpecialTokens: false }), [byte("a")]);
  });

  it("decodes multi-byte text and optionally skips special tokens", () => {
    const ids = [...tokenizer.encode(MULTIBYTE_TEXT), EOS_ID];
    assert.equal(tokenizer.decode(ids), `<s>${MULTIBYTE_TEXT}</s>`);
    assert.equal(tokenizer.decode(ids, { skipSpecialTokens: true }), MULTIBYTE_TEXT);
    assert.equal(tokenizer.decode([]), "");
    assert.equal(tokenizer.decode([BOS_ID], { skipSpecialTokens: true }), "");
  });

  it("shows single-token text as vLLM does", () => {
    assert.equal(tokenizer.tokenText(MERGED_IDS.get(byteLevel(" the"))!), " the");
    assert.equal(tokenizer.tokenText(MERGED_IDS.get(byteLevel("日").slice(0, 2))!), "\uFFFD");
    assert.equal(tokenizer.tokenText(EOS_ID), "</s>");
  });

  it("exposes special tokens, eos ids, vocabulary size and the default chat template", () => {
    assert.equal(tokenizer.bosId, BOS_ID);
    assert.deepEqual(tokenizer.eosIds, [EOS_ID, 5]);
    assert.equal(tokenizer.bosToken, "<s>");
    assert.equal(tokenizer.eosToken, "</s>");
    assert.equal(tokenizer.vocabSize, EOS_ID + 1 + MERGES.length);
    assert.equal(tokenizer.chatTemplate, TOKENIZER_CONFIG.chat_template[1].template);
    assert.ok(tokenizer.isSpecialToken(BOS_ID) && !tokenizer.isSpecialToken(byte("a")));
  });

  it("works without tokenizer_config.json, taking ids from generation_config.json", () => {
    const bare = createTextTokenizer({ tokenizerJson: tokenizerJson(), generationConfig: { bos_token_id: BOS_ID, eos_token_id: EOS_ID } });
    assert.equal(bare.bosId, BOS_ID);
    assert.deepEqual(bare.eosIds, [EOS_ID]);
    assert.equal(bare.eosToken, "</s>");
    assert.equal(bare.chatTemplate, undefined);
  });
});

describe("loadTokenizer", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  async function modelDir(files: Record<string, string>): Promise<string> {
    const dir = await mkdtemp(path.join(tmpdir(), "swserve-tokenizer-"));
    dirs.push(dir);
    for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
    return dir;
  }

  it("reads the model folder, preferring chat_template.jinja", async () => {
    const dir = await modelDir({
      "tokenizer.json": JSON.stringify(tokenizerJson()),
      "tokenizer_config.json": JSON.stringify({ ...TOKENIZER_CONFIG, chat_template: "FROM CONFIG" }),
      "generation_config.json": JSON.stringify({ eos_token_id: 7 }),
      "chat_template.jinja": "FROM FILE",
    });
    const tokenizer = await loadTokenizer(dir);
    assert.deepEqual(tokenizer.eosIds, [EOS_ID, 7]);
    assert.equal(tokenizer.chatTemplate, "FROM FILE");
    assert.equal(tokenizer.decode(tokenizer.encode(MULTIBYTE_TEXT), { skipSpecialTokens: true }), MULTIBYTE_TEXT);
  });

  const errorCases: { name: string; files: Record<string, string>; message: RegExp }[] = [
    { name: "missing tokenizer.json", files: {}, message: /tokenizer\.json not found/ },
    { name: "malformed tokenizer.json", files: { "tokenizer.json": "{oops" }, message: /tokenizer\.json is not valid JSON/ },
    { name: "tokenizer.json that is not an object", files: { "tokenizer.json": "[]" }, message: /tokenizer\.json must hold a JSON object/ },
    {
      name: "malformed tokenizer_config.json",
      files: { "tokenizer.json": JSON.stringify(tokenizerJson()), "tokenizer_config.json": "nope" },
      message: /tokenizer_config\.json is not valid JSON/,
    },
    {
      name: "tokenizer.json the library rejects",
      files: { "tokenizer.json": JSON.stringify({ model: {} }) },
      message: /tokenizer\.json: cannot build the tokenizer/,
    },
  ];
  for (const { name, files, message } of errorCases) {
    it(`fails clearly on ${name}`, async () => {
      const dir = await modelDir(files);
      await assert.rejects(loadTokenizer(dir), message);
    });
  }
});

describe("incremental detokenizer", () => {
  const tokenizer = testTokenizer();

  function stream(ids: number[], promptIds: number[] = [], skipSpecialTokens?: boolean): string[] {
    const detokenizer = createDetokenizer(tokenizer, promptIds, { skipSpecialTokens });
    return [...ids.map((id) => detokenizer.push(id)), detokenizer.flush()];
  }

  it("streams one token at a time to exactly decode(all), never splitting a character", () => {
    const ids = tokenizer.encode(MULTIBYTE_TEXT, { addSpecialTokens: false });
    // Byte-level tokens: é, ✓, 日 and 本 each span several tokens.
    assert.ok(ids.length > [...MULTIBYTE_TEXT].length - 4);
    const deltas = stream(ids);
    for (const delta of deltas) assert.ok(!delta.includes("\uFFFD"), `delta ${JSON.stringify(delta)}`);
    assert.equal(deltas.join(""), tokenizer.decode(ids));
    assert.equal(deltas.join(""), MULTIBYTE_TEXT);
    // The token holding the first two bytes of 日 emits nothing; the next one completes the character.
    const partial = ids.indexOf(MERGED_IDS.get(byteLevel("日").slice(0, 2))!);
    assert.equal(deltas[partial], "");
    assert.equal(deltas[partial + 1], "日");
  });

  it("uses prompt tokens as context and skips special tokens by default", () => {
    const prompt = tokenizer.encode("héllo");
    const ids = [...tokenizer.encode(" 日本 the", { addSpecialTokens: false }), EOS_ID];
    assert.equal(stream(ids, prompt).join(""), " 日本 the");
    assert.equal(stream(ids, prompt, false).join(""), " 日本 the</s>");
  });

  it("flushes a trailing partial character at the end", () => {
    const ids = [byte("a"), ...Buffer.from("日", "utf8").subarray(0, 2)];
    const deltas = stream(ids);
    assert.deepEqual(deltas, ["a", "", "", "\uFFFD"]);
    assert.equal(deltas.join(""), tokenizer.decode(ids));
  });

  function byte(char: string): number {
    return Buffer.from(char, "utf8")[0];
  }
});

describe("stop matcher", () => {
  const cases: { name: string; stops: string[]; deltas: string[]; emitted: string; stopString?: string }[] = [
    { name: "no stop strings passes text through", stops: [], deltas: ["ab", "c"], emitted: "abc" },
    { name: "stop inside one delta", stops: ["STOP"], deltas: ["abSTOPcd"], emitted: "ab", stopString: "STOP" },
    { name: "stop split across several deltas", stops: ["STOP"], deltas: ["ab", "S", "T", "O", "Pxyz"], emitted: "ab", stopString: "STOP" },
    { name: "two stop strings: the earliest wins", stops: ["world", "lo"], deltas: ["hel", "lo wor", "ld"], emitted: "hel", stopString: "lo" },
    { name: "second of two stop strings", stops: ["###", "\n\n"], deltas: ["one\n", "\ntwo"], emitted: "one", stopString: "\n\n" },
    { name: "partial prefix that is not a stop is emitted", stops: ["STOP"], deltas: ["ab", "ST", "ay"], emitted: "abSTay" },
    { name: "held prefix is released by flush", stops: ["STOP"], deltas: ["ab", "STO"], emitted: "abSTO" },
    { name: "overlapping prefix restarts the match", stops: ["aab"], deltas: ["a", "a", "a", "b", "c"], emitted: "a", stopString: "aab" },
    { name: "text after a stop is dropped", stops: ["x"], deltas: ["1x2", "3"], emitted: "1", stopString: "x" },
  ];
  for (const { name, stops, deltas, emitted, stopString } of cases) {
    it(name, () => {
      const matcher = createStopMatcher(stops);
      let text = "";
      let matched: string | undefined;
      for (const delta of deltas) {
        const result = matcher.push(delta);
        text += result.emit;
        matched ??= result.stopString;
        assert.equal(result.stopped, matched !== undefined);
      }
      text += matcher.flush();
      assert.equal(text, emitted);
      assert.equal(matched, stopString);
    });
  }

  it("never shows part of a stop string before it completes", () => {
    const matcher = createStopMatcher(["</answer>"]);
    const shown = ["4", "2<", "/ans", "wer", ">"].map((delta) => matcher.push(delta).emit);
    assert.deepEqual(shown, ["4", "2", "", "", ""]);
  });
});
