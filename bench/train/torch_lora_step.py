#!/usr/bin/env python3
"""The PyTorch peer of bench/train_bench.cpp: one LoRA training step (forward, mean next-token CE,
backward) of dhara on the CPU, the way a PyTorch user would write it, on the same checkpoint and
shapes: rank-r LoRA (y = W x + scale·(x A) B) on q/k/v/o/gate/up/down of every layer, frozen base
weights, `batch` random sequences of `seq` tokens.

  /usr/bin/python3 bench/train/torch_lora_step.py --model DIR [--seq 512] [--batch 4] [--rank 8]
        [--steps 3] [--threads 2] [--dtype float32|bfloat16] [--grad-checkpoint]

Prints one JSON line per step and a summary (tokens/s median, peak RSS). Reads bf16/f32 safetensors
checkpoints (a quantized base has no PyTorch CPU kernel; PyTorch users run such models dense).
"""
import argparse
import json
import math
import resource
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def load_safetensors(path, dtype):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[b:e]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype=np.float32)
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {info['dtype']} (dense bf16/f32 only)")
        out[name] = torch.from_numpy(arr.copy().reshape(info["shape"])).to(dtype)
    return out


class Dhara(torch.nn.Module):
    def __init__(self, cfg, w, rank, scale, dtype):
        super().__init__()
        self.cfg, self.w, self.scale, self.dtype = cfg, w, scale, dtype
        C, H, Hkv, D = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        F_ = cfg["intermediate_size"]
        self.lora = torch.nn.ParameterDict()
        shapes = {"q_proj": (C, H * D), "k_proj": (C, Hkv * D), "v_proj": (C, Hkv * D), "o_proj": (H * D, C),
                  "gate_proj": (C, F_), "up_proj": (C, F_), "down_proj": (F_, C)}
        for l in range(cfg["num_hidden_layers"]):
            for m, (i, o) in shapes.items():
                key = f"{l}_{m}"
                self.lora[key + "_a"] = torch.nn.Parameter(torch.empty(i, rank).uniform_(-1 / math.sqrt(i), 1 / math.sqrt(i)))
                self.lora[key + "_b"] = torch.nn.Parameter(torch.zeros(rank, o))

    def linear(self, x, l, name, prefix):
        w = self.w[prefix + name + ".weight"]
        y = F.linear(x.to(w.dtype), w).float()
        a, b = self.lora[f"{l}_{name.split('.')[-1]}_a"], self.lora[f"{l}_{name.split('.')[-1]}_b"]
        return y + self.scale * ((x @ a) @ b)

    def norm(self, x, w):
        eps = self.cfg["rms_norm_eps"]
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w.float()

    def canon(self, x, name):
        w = self.w.get(name)
        if w is None:
            return x
        k = w.shape[-1]
        y = F.conv1d(F.pad(x.transpose(1, 2), (k - 1, 0)), w.float(), groups=x.shape[-1]).transpose(1, 2)
        return x + y

    def rope(self, x, inv_freq, T):
        pos = torch.arange(T, dtype=torch.float32)
        ang = pos[:, None] * inv_freq.float()[None, :]
        cos, sin = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

    def layer(self, x, l):
        cfg, w = self.cfg, self.w
        p = f"model.layers.{l}."
        B, T, C = x.shape
        H, Hkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        h = self.canon(self.norm(x, w[p + "input_layernorm.weight"]), p + "canon_a.conv.weight")
        q = self.canon(self.linear(h, l, "self_attn.q_proj", p), p + "self_attn.canon_b_q.conv.weight")
        k = self.canon(self.linear(h, l, "self_attn.k_proj", p), p + "self_attn.canon_b_k.conv.weight")
        v = self.canon(self.linear(h, l, "self_attn.v_proj", p), p + "self_attn.canon_b_v.conv.weight")
        inv = w[p + "self_attn.rotary_emb.inv_freq"]
        q = self.rope(q.view(B, T, H, D), inv, T)
        k = self.rope(k.view(B, T, Hkv, D), inv, T)
        q = self.norm(q, w[p + "self_attn.q_norm.weight"]).transpose(1, 2)
        k = self.norm(k, w[p + "self_attn.k_norm.weight"]).transpose(1, 2)
        v = v.view(B, T, Hkv, D).transpose(1, 2)
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        att = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H * D)
        x = x + self.linear(att, l, "self_attn.o_proj", p)
        h2 = self.canon(self.norm(x, w[p + "post_attention_layernorm.weight"]), p + "canon_c.conv.weight")
        m = F.silu(self.linear(h2, l, "mlp.gate_proj", p)) * self.linear(h2, l, "mlp.up_proj", p)
        m = self.canon(m, p + "mlp.canon_d.conv.weight")
        return x + self.linear(m, l, "mlp.down_proj", p)

    def forward(self, tokens, grad_checkpoint):
        w, cfg = self.w, self.cfg
        E = w["model.embed_tokens.weight"]
        x = E[tokens].float()
        for l in range(cfg["num_hidden_layers"]):
            x = checkpoint(self.layer, x, l, use_reentrant=False) if grad_checkpoint else self.layer(x, l)
        x = self.norm(x, w["model.norm.weight"])
        z = F.linear(x[:, :-1].to(E.dtype), E).float()
        cap = cfg.get("logit_softcap", 30.0)
        z = cap * torch.tanh(z / cap)
        return F.cross_entropy(z.reshape(-1, z.shape[-1]), tokens[:, 1:].reshape(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--grad-checkpoint", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    cfg = json.load(open(a.model + "/config.json"))
    w = load_safetensors(a.model + "/model.safetensors", getattr(torch, a.dtype))
    for k in list(w):
        if k.endswith(".conv.weight"):
            w[k] = w[k].float()
    model = Dhara(cfg, w, a.rank, 2.0, getattr(torch, a.dtype))
    tokens = torch.randint(0, cfg["vocab_size"] - 1, (a.batch, a.seq))
    tps = []
    for step in range(a.steps):
        t0 = time.perf_counter()
        loss = model(tokens, a.grad_checkpoint)
        loss.backward()
        sec = time.perf_counter() - t0
        tps.append(a.batch * a.seq / sec)
        print(json.dumps({"step": step, "seconds": round(sec, 3), "tokens_per_s": round(tps[-1], 1),
                          "loss": round(loss.item(), 5)}), flush=True)
    tps.sort()
    print(json.dumps({"peer": "pytorch " + torch.__version__, "model": a.model, "seq": a.seq, "batch": a.batch,
                      "rank": a.rank, "threads": a.threads, "dtype": a.dtype, "grad_checkpoint": a.grad_checkpoint,
                      "tokens_per_s_median": round(tps[len(tps) // 2], 1), "tokens_per_s_min": round(tps[0], 1),
                      "tokens_per_s_max": round(tps[-1], 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
