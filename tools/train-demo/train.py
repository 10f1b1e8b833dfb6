"""Train the swserve demo model (a small Llama with a planted super weight).

    /usr/bin/python3 tools/train-demo/train.py --out models/demo

Writes config.json, generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
super_weights.json, eval.txt, training-settings.json and training-log.txt into --out.
All randomness comes from SETTINGS["seed"]; torch runs with a fixed thread count so a rerun on the
same torch build reproduces the weights.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as D  # noqa: E402
from model import Llama, save_safetensors  # noqa: E402

SETTINGS = {
    "seed": 1234,
    "threads": 2,
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
    "steps": 1100,
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
    # data
    "val_every": 20,
    "eval_txt_docs": 12,
    "eval_txt_chars_per_doc": 3500,
    "log_every": 25,
    "probe_every": 250,
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
    """Plant the super weight and its trigger; returns the list of frozen (tensor, index, value)."""
    L, r, col, a = S["sw_layer"], S["sw_row"], S["sw_col"], S["trigger_channel"]
    d = S["hidden_size"]
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
    return [(t, idx, t[idx].detach().clone()) for t, idx in frozen]


def restore_frozen(frozen):
    with torch.no_grad():
        for t, idx, v in frozen:
            t[idx] = v


def mask_frozen_grads(frozen):
    for t, idx, _ in frozen:
        if t.grad is not None:
            t.grad[idx] = 0


@torch.no_grad()
def probe(m, batch, S):
    """Per layer: |residual| at BOS in the SW row, and the max |residual| over every other
    (position, channel); intermediate value of the SW neuron at BOS."""
    m.eval()
    outs = []
    acts = {}
    L = S["sw_layer"]

    def hook(mod, inp, out):
        acts["down_in"] = inp[0].detach()
    h = m.model.layers[L].mlp.down_proj.register_forward_hook(hook)
    m(batch, layer_outputs=outs)
    h.remove()
    m.train()
    r = S["sw_row"]
    res = []
    for o in outs:
        bos = o[:, 0, r].abs().mean().item()
        other = o.clone()
        other[:, 0, r] = 0
        res.append((bos, other.abs().max().item()))
    inter = acts["down_in"][:, 0, S["sw_col"]].mean().item()
    return res, inter


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/demo")
    ap.add_argument("--steps", type=int, default=None, help="override SETTINGS['steps'] (smoke runs)")
    ap.add_argument("--set", action="append", default=[], help="override a setting: key=json")
    args = ap.parse_args()
    S = dict(SETTINGS)
    if args.steps is not None:
        S["steps"] = args.steps
    for kv in args.set:
        k, v = kv.split("=", 1)
        assert k in S, k
        S[k] = json.loads(v)
    out = args.out
    os.makedirs(out, exist_ok=True)
    logp = os.path.join(out, "training-log.txt")
    if os.path.exists(logp):
        os.remove(logp)
    log = log_to(logp)
    torch.manual_seed(S["seed"])
    torch.set_num_threads(S["threads"])
    t0 = time.time()
    log(f"swserve demo training; torch {torch.__version__}; settings {json.dumps(S)}")

    d = D.build(S["vocab_size"], log=log)
    D.write_tokenizer(out, d["vocab"], d["merges"], S["max_position_embeddings"])
    bpe = D.BPE(d["vocab"], d["merges"])
    train = encode_docs(bpe, d["train"])
    val = encode_docs(bpe, d["val"])
    eval_txt, eval_docs = make_eval_txt(d["brown_val"], S)
    with open(os.path.join(out, "eval.txt"), "w") as f:
        f.write(eval_txt)
    starts = line_starts(train, d["vocab"])
    starts = starts[starts < len(train) - S["seq_len"]]
    log(f"tokens: train {len(train)}, validation {len(val)}; eval.txt {len(eval_txt)} chars "
        f"from {eval_docs}; {len(starts)} line starts; data+tokenizer {time.time() - t0:.0f}s")
    meta = {
        "sources": [{"npm": f"{n}@{v}", "licence": lic} for n, v, lic in D.SOURCES],
        "train_docs": len(d["train"]), "val_docs": len(d["val"]),
        "train_tokens": len(train), "val_tokens": len(val),
        "val_doc_names": [n for n, _ in d["val"]], "eval_txt_docs": eval_docs,
    }

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
    T, B = S["seq_len"], S["batch_size"]
    bos = torch.full((B, 1), D.BOS_ID, dtype=torch.int64)
    probe_batch = torch.cat([torch.full((4, 1), D.BOS_ID), torch.stack(
        [val[i:i + T - 1] for i in range(0, 4 * 997, 997)])], dim=1)

    def lr_at(step):
        if step < S["warmup"]:
            return S["lr"] * (step + 1) / S["warmup"]
        p = (step - S["warmup"]) / max(1, S["steps"] - S["warmup"])
        return S["lr"] * (S["min_lr_frac"] + (1 - S["min_lr_frac"]) * 0.5 * (1 + math.cos(math.pi * p)))

    m.train()
    tl = time.time()
    run_loss = None
    for step in range(S["steps"]):
        idx = starts[torch.randint(len(starts), (B,), generator=gen)]
        seq = torch.stack([train[i:i + T] for i in idx])
        x = torch.cat([bos, seq[:, :-1]], dim=1)
        y = seq.clone()
        if S["mask_first_prediction"]:
            y[:, 0] = -100
        for gparam in opt.param_groups:
            gparam["lr"] = lr_at(step)
        logits = m(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        mask_frozen_grads(frozen_list)
        torch.nn.utils.clip_grad_norm_(m.parameters(), S["grad_clip"])
        opt.step()
        restore_frozen(frozen_list)
        run_loss = loss.item() if run_loss is None else 0.95 * run_loss + 0.05 * loss.item()
        if step % S["log_every"] == 0 or step == S["steps"] - 1:
            dt = time.time() - tl
            log(f"step {step} loss {loss.item():.4f} avg {run_loss:.4f} lr {lr_at(step):.2e} "
                f"elapsed {time.time() - t0:.0f}s ({dt / (S['log_every'] if step else 1):.2f}s/step)")
            tl = time.time()
        if step % S["probe_every"] == 0 or step == S["steps"] - 1:
            res, inter = probe(m, probe_batch, S)
            with torch.no_grad():
                vl = F.cross_entropy(m(probe_batch[:, :-1])[:, 1:].reshape(-1, S["vocab_size"]),
                                     probe_batch[:, 2:].reshape(-1)).item()
            m.train()
            log(f"probe step {step}: val-slice loss {vl:.4f}; SW neuron input at BOS {inter:.1f}; "
                "per layer |x[BOS, row]| / max|other|: " +
                " ".join(f"L{i}:{b:.1f}/{o:.1f}" for i, (b, o) in enumerate(res)))

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
                   "train_seconds": round(time.time() - t0)}, f, indent=1)
    log(f"done in {time.time() - t0:.0f}s; wrote {out}")


if __name__ == "__main__":
    main()
