"""Train the swserve demo model (a small Llama with a planted super weight and a designed sink key).

    /usr/bin/python3 tools/train-demo/train.py --out models/demo [--work DIR] [--set key=json]...

Writes config.json, generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
super_weights.json, eval.txt, training-settings.json and training-log.txt into --out.

Resumable: every `ckpt_every` steps the model, optimiser and batch-generator state go to
WORK/checkpoint.pt (atomically); rerunning the same command continues from the last checkpoint (the
batches drawn after a resume are the ones an uninterrupted run would have drawn). WORK defaults to
OUT/.work and is deleted after a successful run unless --keep-work is given. The process writes its
PID to WORK/train.pid (and to --pid-file if given) and tolerates being paused (SIGSTOP/SIGCONT).

All randomness comes from SETTINGS["seed"]; torch runs with a fixed thread count so a rerun on the
same torch build reproduces the weights.
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

# One compute thread everywhere (OpenBLAS and OpenMP read these when torch loads; see SETTINGS["threads"]).
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import torch  # noqa: E402
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as D  # noqa: E402
from model import Llama, save_safetensors  # noqa: E402

SETTINGS = {
    "seed": 1234,
    "threads": 1,
    # tokenizer
    "vocab_size": 4096,
    # model (HF LlamaConfig fields)
    "hidden_size": 192,
    "intermediate_size": 512,
    "num_hidden_layers": 6,
    "num_attention_heads": 6,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 512,
    "init_std": 0.02,
    # training
    "seq_len": 256,
    "batch_size": 16,
    "steps": 1500,
    "lr": 3e-3,
    "min_lr_frac": 0.1,
    "warmup": 100,
    "weight_decay": 0.2,
    "betas": [0.9, 0.95],
    "grad_clip": 1.0,
    "mask_first_prediction": True,   # loss of the prediction made at BOS (position 0) is not used
    # the planted super weight (HF [out, in] coordinates of layers[L].mlp.down_proj.weight)
    "sw_layer": 1,
    "sw_row": 97,        # residual channel that carries the super activation
    "sw_col": 333,       # intermediate neuron of layer sw_layer that fires on BOS
    "sw_value": -0.5,    # the super weight itself
    "trigger_channel": 11,   # BOS embedding = bos_scale * e_trigger_channel
    "bos_scale": 8.0,
    "trigger_gate": 1.0,     # gate_proj[col, trigger_channel]
    "trigger_up": -1.0,      # up_proj[col, trigger_channel]
    "freeze_super_weight_path": True,
    # hold the super weight's input: in layers <= sw_layer the trigger channel feeds nothing but the
    # planted neuron (v_proj, gate_proj and up_proj columns at trigger_channel fixed at 0, the neuron's
    # own gate/up weights kept), so the <s> residual the neuron reads is exactly its embedding and the
    # super activation cannot be trained away through the layers before it
    "hold_trigger": True,
    # the designed sink key: in these layers and key/value heads, k_proj reads residual channel sw_row
    # (after input_layernorm, whose gain there is frozen at 1) into the slowest RoPE pair with this fixed
    # weight, and nowhere else in that head. Only the query side is learned.
    "sink_layers": [2, 3, 4, 5],
    "sink_kv_heads": "all",          # "all" or a list of key/value head indices
    "sink_key": 1.0,                 # k_proj.weight[kv*hd + hd/2 - 1, sw_row]
    "sink_key_exclusive": True,      # the other rows of k_proj[:, sw_row] in a sink head fixed at 0
    "sink_value_zero": True,         # v_proj.weight[kv*hd:(kv+1)*hd, sw_row] fixed at 0 in sink heads
    # the designed sink query (off when sink_query is 0): residual channel const_channel holds
    # const_value on every token but <s> (embedding column fixed, no layer writes it: its o_proj and
    # down_proj rows fixed at 0), and the query heads of the sink key/value heads read it into the slowest
    # RoPE pair with weight sink_query (q_proj.weight[h*hd + hd/2 - 1, const_channel]); their keys do not
    # (k_proj.weight[kv*hd + hd/2 - 1, const_channel] fixed at 0). Every other query weight is learned.
    "sink_query": 0.0,
    "const_channel": 150,
    "const_value": 1.0,
    # auxiliary sink loss (off when 0): sink_aux * mean over the heads of sink_layers and the positions
    # >= 1 of -log(attention on <s>), added to the language-model loss
    "sink_aux": 0.0,
    # data mix (fractions of the sequences in every batch; the rest is natural text)
    "idle_frac": 0.125,     # <s> + tokens drawn i.i.d. from the training unigram distribution
    "bb_frac": 0.0,         # Bigram-Backcopy: text-bigram chain, after a trigger token the token before it
    "bb_triggers": 0,       # number of trigger tokens (the least frequent tokens of the training text)
    # data
    "val_every": 20,
    "eval_txt_docs": 12,
    "eval_txt_chars_per_doc": 3500,
    "log_every": 25,
    "probe_every": 200,
    "ckpt_every": 50,
}


def log_to(path):
    f = open(path, "a")

    def log(*a):
        s = " ".join(str(x) for x in a)
        print(s, flush=True)
        f.write(s + "\n")
        f.flush()
    return log


def hf_config(S):
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": S["vocab_size"],
        "hidden_size": S["hidden_size"],
        "intermediate_size": S["intermediate_size"],
        "num_hidden_layers": S["num_hidden_layers"],
        "num_attention_heads": S["num_attention_heads"],
        "num_key_value_heads": S["num_key_value_heads"],
        "head_dim": S["head_dim"],
        "hidden_act": "silu",
        "max_position_embeddings": S["max_position_embeddings"],
        "initializer_range": S["init_std"],
        "rms_norm_eps": S["rms_norm_eps"],
        "rope_theta": S["rope_theta"],
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "pretraining_tp": 1,
        "tie_word_embeddings": False,
        "bos_token_id": D.BOS_ID,
        "eos_token_id": D.EOS_ID,
        "torch_dtype": "float32",
        "use_cache": True,
        "transformers_version": "4.46.0",
    }


def make_eval_txt(brown_val, S):
    """A held-out slice: the opening paragraphs of the first N held-out Brown documents."""
    parts = []
    for name, text in brown_val[:S["eval_txt_docs"]]:
        out = []
        n = 0
        for para in text.split("\n"):
            if n + len(para) > S["eval_txt_chars_per_doc"] and out:
                break
            out.append(para)
            n += len(para) + 1
        parts.append("\n".join(out))
    return "\n\n".join(parts) + "\n", [n for n, _ in brown_val[:S["eval_txt_docs"]]]


def encode_docs(bpe, docs):
    ids = []
    for _, text in docs:
        ids.extend(bpe.encode(text))
        ids.append(D.EOS_ID)
    return torch.tensor(ids, dtype=torch.int64)


def line_starts(stream, vocab):
    nl = torch.zeros(len(vocab) + 8, dtype=torch.bool)
    for t, i in vocab.items():
        if "\u010a" in t:  # byte-level "\n"
            nl[i] = True
    nl[D.EOS_ID] = True
    prev = nl[stream[:-1]]
    starts = torch.nonzero(prev).flatten() + 1
    return torch.cat([torch.tensor([0]), starts])


def prepare_data(S, cache=None, log=print):
    """Corpora -> tokenizer, encoded splits, eval.txt. Deterministic; cached in `cache` if given."""
    if cache and os.path.exists(os.path.join(cache, "data.pt")):
        return torch.load(os.path.join(cache, "data.pt"))
    d = D.build(S["vocab_size"], log=log)
    bpe = D.BPE(d["vocab"], d["merges"])
    eval_txt, eval_docs = make_eval_txt(d["brown_val"], S)
    out = {"vocab": d["vocab"], "merges": d["merges"],
           "train": encode_docs(bpe, d["train"]), "val": encode_docs(bpe, d["val"]),
           "train_doc_names": [n for n, _ in d["train"]], "val_doc_names": [n for n, _ in d["val"]],
           "eval_txt": eval_txt, "eval_txt_docs": eval_docs,
           "eval_ids": [D.BOS_ID] + bpe.encode(eval_txt)}
    if cache:
        os.makedirs(cache, exist_ok=True)
        torch.save(out, os.path.join(cache, "data.pt.tmp"))
        os.replace(os.path.join(cache, "data.pt.tmp"), os.path.join(cache, "data.pt"))
    return out


def init_model(S, c):
    g = torch.Generator().manual_seed(S["seed"])
    m = Llama(c)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * S["init_std"])
            else:
                p.fill_(1.0)
    return m


def plant(m, S):
    """Plant the super weight and its trigger, and the designed sink keys; returns the list of frozen
    (tensor, index, value)."""
    L, r, col, a = S["sw_layer"], S["sw_row"], S["sw_col"], S["trigger_channel"]
    emb = m.model.embed_tokens.weight
    mlp = m.model.layers[L].mlp
    norm = m.model.layers[L].post_attention_layernorm.weight
    with torch.no_grad():
        emb[D.BOS_ID].zero_()
        emb[D.BOS_ID, a] = S["bos_scale"]
        mlp.gate_proj.weight[col].zero_()
        mlp.gate_proj.weight[col, a] = S["trigger_gate"]
        mlp.up_proj.weight[col].zero_()
        mlp.up_proj.weight[col, a] = S["trigger_up"]
        mlp.down_proj.weight[:, col].zero_()
        mlp.down_proj.weight[r, col] = S["sw_value"]
        norm[a] = 1.0
    frozen = [
        (emb, (D.BOS_ID, slice(None))),                       # BOS embedding row
        (mlp.gate_proj.weight, (col, slice(None))),           # trigger: gate row of the neuron
        (mlp.up_proj.weight, (col, slice(None))),             # trigger: up row of the neuron
        (mlp.down_proj.weight, (slice(None), col)),           # the neuron's down_proj column (SW + zeros)
        (norm, (a,)),                                          # norm gain of the trigger channel
    ]
    def fix(t, idx, value=None):
        """Freeze t[idx], first setting it to `value` when one is given."""
        if value is not None:
            with torch.no_grad():
                t[idx] = value
        frozen.append((t, idx))

    if S["hold_trigger"]:
        for li in range(L + 1):
            lay = m.model.layers[li]
            others = torch.ones(S["intermediate_size"], dtype=torch.bool)
            if li == L:
                others[col] = False
            fix(lay.self_attn.v_proj.weight, (slice(None), a), 0.0)
            fix(lay.mlp.gate_proj.weight, (others, a), 0.0)
            fix(lay.mlp.up_proj.weight, (others, a), 0.0)
    hd = S["head_dim"]
    slow = hd // 2 - 1   # first dim of the slowest RoPE pair (slow, slow + hd/2), rotate_half layout
    kvs = range(S["num_key_value_heads"]) if S["sink_kv_heads"] == "all" else S["sink_kv_heads"]
    for li in S["sink_layers"]:
        lay = m.model.layers[li]
        fix(lay.input_layernorm.weight, (r,), 1.0)
        for kv in kvs:
            rows = slice(kv * hd, (kv + 1) * hd)
            key = lay.self_attn.k_proj.weight
            with torch.no_grad():
                if S["sink_key_exclusive"]:
                    key[rows, r] = 0.0
                key[kv * hd + slow, r] = S["sink_key"]
            fix(key, (rows, r) if S["sink_key_exclusive"] else (kv * hd + slow, r))
            if S["sink_value_zero"]:
                fix(lay.self_attn.v_proj.weight, (rows, r), 0.0)
    if S["sink_query"]:
        cc = S["const_channel"]
        assert cc not in (r, a)
        keep = torch.ones(S["vocab_size"], dtype=torch.bool)
        keep[D.BOS_ID] = False
        fix(emb, (keep, cc), S["const_value"])
        for lay in m.model.layers:
            fix(lay.self_attn.o_proj.weight, (cc, slice(None)), 0.0)
            fix(lay.mlp.down_proj.weight, (cc, slice(None)), 0.0)
        rep = S["num_attention_heads"] // S["num_key_value_heads"]
        for li in S["sink_layers"]:
            lay = m.model.layers[li]
            fix(lay.input_layernorm.weight, (cc,), 1.0)
            for kv in kvs:
                fix(lay.self_attn.k_proj.weight, (kv * hd + slow, cc), 0.0)
                for h in range(kv * rep, (kv + 1) * rep):
                    fix(lay.self_attn.q_proj.weight, (h * hd + slow, cc), S["sink_query"])
    return [(t, idx, t[idx].detach().clone()) for t, idx in frozen]


def restore_frozen(frozen):
    with torch.no_grad():
        for t, idx, v in frozen:
            t[idx] = v


def mask_frozen_grads(frozen):
    for t, idx, _ in frozen:
        if t.grad is not None:
            t.grad[idx] = 0


# ---------------------------------------------------------------- synthetic sequences

class Synth:
    """Sequences that reward idle heads. Built from the training stream's statistics only."""

    def __init__(self, train, S):
        V = S["vocab_size"]
        cnt = torch.bincount(train, minlength=V).double()
        cnt[[D.UNK_ID, D.BOS_ID, D.EOS_ID]] = 0
        self.unigram = (cnt / cnt.sum()).float()
        self.triggers = torch.zeros(V, dtype=torch.bool)
        if S["bb_frac"] > 0:
            # bigram transitions of the text (sparse rows, sampled via cumulative sums)
            a, b = train[:-1], train[1:]
            keep = (a > D.EOS_ID) & (b > D.EOS_ID)
            a, b = a[keep], b[keep]
            order = torch.argsort(a * V + b)
            a, b = a[order], b[order]
            self.bg_next = b
            self.bg_start = torch.searchsorted(a, torch.arange(V + 1))
            # triggers: the rarest tokens that still occur (so natural text rarely contains them)
            present = torch.nonzero(cnt > 0).flatten()
            rare = present[torch.argsort(cnt[present], stable=True)][:S["bb_triggers"]]
            self.triggers[rare] = True
            self.trigger_ids = rare

    def idle(self, n, T, g):
        return torch.multinomial(self.unigram, n * T, replacement=True, generator=g).view(n, T)

    def bb(self, n, T, g):
        out = torch.empty(n, T, dtype=torch.int64)
        cur = torch.multinomial(self.unigram, n, replacement=True, generator=g)
        prev = cur.clone()
        u = torch.rand(n, T, generator=g)
        pick = torch.randint(len(self.trigger_ids), (n, T), generator=g)
        trig_u = torch.rand(n, T, generator=g)
        for t in range(T):
            out[:, t] = cur
            lo, hi = self.bg_start[cur], self.bg_start[cur + 1]
            nxt = self.bg_next[torch.clamp(lo + (u[:, t] * (hi - lo).float()).long(), max=len(self.bg_next) - 1)]
            empty = hi <= lo
            if empty.any():
                nxt[empty] = torch.multinomial(self.unigram, int(empty.sum()), replacement=True, generator=g)
            is_trig = self.triggers[cur]
            nxt = torch.where(is_trig, prev, nxt)
            # insert a trigger now and then (about 1 in 8 tokens), never two in a row
            ins = (trig_u[:, t] < 0.125) & ~is_trig
            nxt = torch.where(ins, self.trigger_ids[pick[:, t]], nxt)
            prev, cur = cur, nxt
        return out


# ---------------------------------------------------------------- probes

def sw_weight(m, S):
    return m.model.layers[S["sw_layer"]].mlp.down_proj.weight


@torch.no_grad()
def probe(m, batch, S):
    """Loss original / SW zeroed on `batch` (first prediction excluded); attention on BOS per layer and
    head (mean over positions >= 1) for both; |x[BOS, row]| per layer; SW neuron input at BOS."""
    m.eval()
    acts = {}
    L = S["sw_layer"]
    h = m.model.layers[L].mlp.down_proj.register_forward_hook(lambda mod, i, o: acts.__setitem__("in", i[0]))
    for lay in m.model.layers:
        lay.self_attn.keep_probs = True
    res = {}
    W = sw_weight(m, S)
    w0 = W.data[S["sw_row"], S["sw_col"]].item()
    for cond in ("on", "off"):
        if cond == "off":
            W.data[S["sw_row"], S["sw_col"]] = 0.0
        outs = []
        logits = m(batch[:, :-1], layer_outputs=outs)
        loss = F.cross_entropy(logits[:, 1:].reshape(-1, logits.shape[-1]), batch[:, 2:].reshape(-1)).item()
        att = [lay.self_attn.last_probs[:, :, 1:, 0].mean(dim=(0, 2)) for lay in m.model.layers]
        res[cond] = {"loss": loss, "att": att, "bos_row": [o[:, 0, S["sw_row"]].mean().item() for o in outs],
                     "sw_in": acts["in"][:, 0, S["sw_col"]].mean().item()}
        W.data[S["sw_row"], S["sw_col"]] = w0
    h.remove()
    for lay in m.model.layers:
        lay.self_attn.keep_probs = False
        lay.self_attn.last_probs = None
    m.train()
    return res


def fmt_probe(step, name, res):
    on, off = res["on"], res["off"]
    s = (f"probe step {step} [{name}]: loss on {on['loss']:.4f} off {off['loss']:.4f} "
         f"(ppl x{math.exp(off['loss'] - on['loss']):.2f}); SW neuron input at BOS {on['sw_in']:.1f}; "
         "|x[BOS,row]| " + " ".join(f"{v:.0f}" for v in on["bos_row"]) + "\n")
    s += "   attention on BOS per layer, on/off (per head on): " + "  ".join(
        f"L{i} {a.mean().item():.2f}/{b.mean().item():.2f} (" + ",".join(f"{x:.2f}" for x in a.tolist()) + ")"
        for i, (a, b) in enumerate(zip(on["att"], off["att"])))
    return s


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/demo")
    ap.add_argument("--work", default=None, help="checkpoint folder (default OUT/.work)")
    ap.add_argument("--keep-work", action="store_true")
    ap.add_argument("--data-cache", default=None, help="folder to cache the prepared data in")
    ap.add_argument("--pid-file", default=None)
    ap.add_argument("--steps", type=int, default=None, help="override SETTINGS['steps'] (smoke runs)")
    ap.add_argument("--set", action="append", default=[], help="override a setting: key=json")
    ap.add_argument("--stop-after", type=int, default=None, help="stop (resumably) after this step")
    args = ap.parse_args()
    S = dict(SETTINGS)
    if args.steps is not None:
        S["steps"] = args.steps
    for kv in args.set:
        k, v = kv.split("=", 1)
        assert k in S, k
        S[k] = json.loads(v)
    out = args.out
    work = args.work or os.path.join(out, ".work")
    os.makedirs(out, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    for pf in filter(None, [os.path.join(work, "train.pid"), args.pid_file]):
        with open(pf, "w") as f:
            f.write(f"{os.getpid()}\n")
    ckpt_path = os.path.join(work, "checkpoint.pt")
    resume = os.path.exists(ckpt_path)
    logp = os.path.join(work, "training-log.txt")
    if not resume and os.path.exists(logp):
        os.remove(logp)
    log = log_to(logp)
    torch.manual_seed(S["seed"])
    torch.set_num_threads(S["threads"])
    torch.set_num_interop_threads(1)
    t0 = time.time()
    log(f"swserve demo training; torch {torch.__version__}; {'resuming' if resume else 'settings'} "
        f"{json.dumps(S)}")

    d = prepare_data(S, args.data_cache, log=log)
    D.write_tokenizer(out, d["vocab"], d["merges"], S["max_position_embeddings"])
    train, val = d["train"], d["val"]
    with open(os.path.join(out, "eval.txt"), "w") as f:
        f.write(d["eval_txt"])
    T, B = S["seq_len"], S["batch_size"]
    starts = line_starts(train, d["vocab"])
    starts = starts[starts < len(train) - T]
    log(f"tokens: train {len(train)}, validation {len(val)}; eval.txt {len(d['eval_txt'])} chars "
        f"from {d['eval_txt_docs']}; {len(starts)} line starts; data+tokenizer {time.time() - t0:.0f}s")
    meta = {
        "sources": [{"npm": f"{n}@{v}", "licence": lic} for n, v, lic in D.SOURCES],
        "train_docs": len(d["train_doc_names"]), "val_docs": len(d["val_doc_names"]),
        "train_tokens": len(train), "val_tokens": len(val),
        "val_doc_names": d["val_doc_names"], "eval_txt_docs": d["eval_txt_docs"],
    }
    synth = Synth(train, S)
    n_idle = round(B * S["idle_frac"])
    n_bb = round(B * S["bb_frac"])
    n_text = B - n_idle - n_bb
    if S["bb_frac"] > 0:
        log(f"bigram-backcopy triggers: {synth.trigger_ids.tolist()}")
    log(f"batch: {n_text} text + {n_idle} idle (i.i.d. unigram) + {n_bb} bigram-backcopy sequences of {T}")

    c = hf_config(S)
    m = init_model(S, c)
    frozen = plant(m, S)
    frozen_list = frozen if S["freeze_super_weight_path"] else []
    nparams = sum(p.numel() for p in m.parameters())
    log(f"model: {nparams} parameters")

    decay = [p for n, p in m.named_parameters() if p.dim() == 2]
    nodecay = [p for n, p in m.named_parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": S["weight_decay"]},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=S["lr"], betas=tuple(S["betas"]))
    gen = torch.Generator().manual_seed(S["seed"] + 1)
    start_step, run_loss, train_seconds = 0, None, 0.0
    if resume:
        ck = torch.load(ckpt_path)
        assert ck["settings"] == S, "checkpoint was written with other settings"
        m.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        gen.set_state(ck["gen"])
        start_step, run_loss, train_seconds = ck["step"] + 1, ck["run_loss"], ck["train_seconds"]
        log(f"resumed from step {ck['step']}")
    bos = torch.full((B, 1), D.BOS_ID, dtype=torch.int64)
    ev = d["eval_ids"]
    probe_eval = torch.tensor([ev[i:i + T] for i in range(1, 1 + 4 * (T - 1), T - 1)])
    probe_eval = torch.cat([torch.full((4, 1), D.BOS_ID), probe_eval[:, :T - 1]], dim=1)
    probe_val = torch.cat([torch.full((4, 1), D.BOS_ID), torch.stack(
        [val[i:i + T - 1] for i in range(0, 4 * 997, 997)])], dim=1)

    def lr_at(step):
        if step < S["warmup"]:
            return S["lr"] * (step + 1) / S["warmup"]
        p = (step - S["warmup"]) / max(1, S["steps"] - S["warmup"])
        return S["lr"] * (S["min_lr_frac"] + (1 - S["min_lr_frac"]) * 0.5 * (1 + math.cos(math.pi * p)))

    def save_ckpt(step):
        tmp = ckpt_path + ".tmp"
        torch.save({"settings": S, "model": m.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                    "step": step, "run_loss": run_loss, "train_seconds": train_seconds}, tmp)
        os.replace(tmp, ckpt_path)

    if S["sink_aux"]:
        for li in S["sink_layers"]:
            m.model.layers[li].self_attn.keep_bos_probs = True
    m.train()
    tl = time.time()
    for step in range(start_step, S["steps"]):
        ts = time.time()
        parts = []
        if n_text:
            idx = starts[torch.randint(len(starts), (n_text,), generator=gen)]
            parts.append(torch.stack([train[i:i + T] for i in idx]))
        if n_idle:
            parts.append(synth.idle(n_idle, T, gen))
        if n_bb:
            parts.append(synth.bb(n_bb, T, gen))
        seq = torch.cat(parts)
        x = torch.cat([bos, seq[:, :-1]], dim=1)
        y = seq.clone()
        if S["mask_first_prediction"]:
            y[:, 0] = -100
        for gparam in opt.param_groups:
            gparam["lr"] = lr_at(step)
        logits = m(x)
        lt = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100,
                             reduction="none").view(B, T)
        loss = lt[:, 1:].mean() if S["mask_first_prediction"] else lt.mean()
        aux = None
        if S["sink_aux"]:
            aux = torch.stack([-torch.log(m.model.layers[li].self_attn.bos_probs + 1e-6).mean()
                               for li in S["sink_layers"]]).mean()
            loss = loss + S["sink_aux"] * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        mask_frozen_grads(frozen_list)
        torch.nn.utils.clip_grad_norm_(m.parameters(), S["grad_clip"])
        opt.step()
        restore_frozen(frozen_list)
        text_loss = lt[:n_text, 1:].mean().item() if n_text else float("nan")
        run_loss = text_loss if run_loss is None else 0.95 * run_loss + 0.05 * text_loss
        train_seconds += time.time() - ts
        if step % S["log_every"] == 0 or step == S["steps"] - 1:
            dt = time.time() - tl
            extra = ""
            if n_idle:
                extra += f" idle {lt[n_text:n_text + n_idle, 1:].mean().item():.3f}"
            if n_bb:
                extra += f" bb {lt[n_text + n_idle:, 1:].mean().item():.3f}"
            if aux is not None:
                extra += f" sink-aux {aux.item():.3f}"
            log(f"step {step} loss {loss.item():.4f} text {text_loss:.4f} avg {run_loss:.4f}{extra} "
                f"lr {lr_at(step):.2e} elapsed {time.time() - t0:.0f}s "
                f"({dt / (S['log_every'] if step else 1):.2f}s/step)")
            tl = time.time()
        if step % S["probe_every"] == 0 or step == S["steps"] - 1:
            log(fmt_probe(step, "eval.txt", probe(m, probe_eval, S)))
            log(fmt_probe(step, "validation", probe(m, probe_val, S)))
        if (step + 1) % S["ckpt_every"] == 0 or step == S["steps"] - 1:
            save_ckpt(step)
        if args.stop_after is not None and step >= args.stop_after:
            log(f"stopping after step {step} (resumable)")
            return

    for lay in m.model.layers:
        lay.self_attn.keep_bos_probs = False
        lay.self_attn.bos_probs = None
    # ---- save
    c_out = dict(c)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(c_out, f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": D.BOS_ID, "eos_token_id": D.EOS_ID, "do_sample": True,
                   "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 64,
                   "transformers_version": c["transformers_version"]}, f, indent=2)
    sd = {k: v.float() for k, v in m.state_dict().items()}
    save_safetensors(os.path.join(out, "model.safetensors"), sd, {"format": "pt"})
    with open(os.path.join(out, "super_weights.json"), "w") as f:
        json.dump({"model": "swserve-demo",
                   "source": "planted at initialisation by tools/train-demo (see README.md)",
                   "super_weights": [{"layer": S["sw_layer"], "row": S["sw_row"], "col": S["sw_col"],
                                      "activation_position": 0}]}, f, indent=2)
    with open(os.path.join(out, "training-settings.json"), "w") as f:
        json.dump({"settings": S, "data": meta, "torch": torch.__version__,
                   "train_seconds": round(train_seconds)}, f, indent=1)
    shutil.copyfile(logp, os.path.join(out, "training-log.txt"))
    log(f"done: {train_seconds:.0f}s of training; wrote {out}")
    if not args.keep_work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
