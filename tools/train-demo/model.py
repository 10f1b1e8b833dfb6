"""A minimal Llama (HF LlamaForCausalLM semantics) in plain torch, plus safetensors I/O.

Semantics follow transformers' modeling_llama exactly:
  RMSNorm  y = x * rsqrt(mean(x^2) + eps) * w          (computed in float32)
  RoPE     rotate_half convention, inv_freq = theta^(-2i/head_dim), cos/sin = cat(freqs, freqs)
  attn     causal, scale 1/sqrt(head_dim), GQA: query head h uses kv head h // (H / KV)
  MLP      down_proj(silu(gate_proj(x)) * up_proj(x))
Tensor names are HF's; Linear weights are [out, in].
"""
import json
import math
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(var + self.eps))


def rope_cos_sin(T, head_dim, theta, device=None):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    t = torch.arange(T, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, H, KV, hd = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        self.H, self.KV, self.hd = H, KV, hd
        self.q_proj = nn.Linear(d, H * hd, bias=False)
        self.k_proj = nn.Linear(d, KV * hd, bias=False)
        self.v_proj = nn.Linear(d, KV * hd, bias=False)
        self.o_proj = nn.Linear(H * hd, d, bias=False)
        self.last_probs = None
        self.keep_probs = False
        self.keep_bos_probs = False   # training: keep p[:, :, 1:, 0] (attention on position 0) with its graph
        self.bos_probs = None

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.H, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.KV, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.KV, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.H // self.KV
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        att = att + mask
        p = torch.softmax(att.float(), dim=-1).to(q.dtype)
        if self.keep_probs:
            self.last_probs = p.detach()
        if self.keep_bos_probs:
            self.bos_probs = p[:, :, 1:, 0]
        y = (p @ v).transpose(1, 2).reshape(B, T, self.H * self.hd)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, I = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(d, I, bias=False)
        self.up_proj = nn.Linear(d, I, bias=False)
        self.down_proj = nn.Linear(I, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.model = Inner(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        self._rope = {}

    def rope(self, T):
        if T not in self._rope:
            self._rope[T] = rope_cos_sin(T, self.config["head_dim"], self.config["rope_theta"])
        return self._rope[T]

    def forward(self, ids, layer_outputs=None):
        """ids [B, T] -> logits [B, T, V]. If layer_outputs is a list, each layer's residual output
        is appended to it."""
        B, T = ids.shape
        cos, sin = self.rope(T)
        mask = torch.full((T, T), float("-inf")).triu(1)
        if getattr(self, "block_bos", False):   # diagnostic: no token after <s> may attend to <s>
            mask[1:, 0] = float("-inf")
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
            if layer_outputs is not None:
                layer_outputs.append(x.detach())
        return self.lm_head(self.model.norm(x))


# ---------------------------------------------------------------- safetensors (own writer/reader)

def save_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> torch tensor (float32 or float16). Writes the safetensors format."""
    header = {}
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    off = 0
    blobs = []
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        dt = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[t.dtype]
        if t.dtype == torch.bfloat16:
            b = t.view(torch.int16).numpy().tobytes()
        else:
            b = t.numpy().tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        dt = {"F32": np.float32, "F16": np.float16, "BF16": np.int16}[info["dtype"]]
        arr = np.frombuffer(data[a:b], dtype=dt).reshape(info["shape"]).copy()
        t = torch.from_numpy(arr)
        if info["dtype"] == "BF16":
            t = t.view(torch.bfloat16)
        out[name] = t.float()
    return out


def load_model(folder):
    c = json.load(open(f"{folder}/config.json"))
    m = Llama(c)
    sd = load_safetensors(f"{folder}/model.safetensors")
    if "lm_head.weight" not in sd:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    m.load_state_dict(sd, strict=True)
    m.eval()
    return m
