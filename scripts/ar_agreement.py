#!/usr/bin/env python3
"""Greedy-AR token agreement of quantized models with a reference, on prompts from held-out text.

Usage: scripts/ar_agreement.py REFERENCE_DIR MODEL_DIR [MODEL_DIR...] [--n 16] [--tokens 64]
Prompts: the first 48 characters of evenly spaced lines of the last 200,000 bytes of
shared/data/brown.txt. Reports, per model, the fraction of generated positions equal to the
reference's and the mean length of the common prefix. Uses `optiq generate --json` (default
sampling = greedy, repetition penalty from generation_config.json).
"""
import argparse
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def generate(optiq, model, prompt, n_tokens):
    out = subprocess.run([optiq, "generate", "--model", model, "--prompt", prompt, "--max-tokens", str(n_tokens),
                          "--json", "--threads", "1"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["tokens"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--optiq", default=os.path.join(ROOT, "build", "optiq"))
    ap.add_argument("--text", default=os.path.join(ROOT, "..", "shared", "data", "brown.txt"))
    a = ap.parse_args()
    data = open(a.text, "rb").read()[-200_000:].decode("utf-8", errors="ignore")
    lines = [l for l in data.split("\n") if len(l) > 100]
    prompts = [lines[i * len(lines) // a.n][:48] for i in range(a.n)]
    ref = [generate(a.optiq, a.reference, p, a.tokens) for p in prompts]
    print(f"greedy AR, {a.n} held-out prompts x {a.tokens} tokens, reference {a.reference}")
    for m in a.models:
        same = total = prefix = 0
        for p, r in zip(prompts, ref):
            g = generate(a.optiq, m, p, a.tokens)
            n = min(len(g), len(r))
            same += sum(1 for i in range(n) if g[i] == r[i])
            total += max(len(g), len(r))
            k = 0
            while k < n and g[k] == r[k]:
                k += 1
            prefix += k
        print(f"{m}: position agreement {same / total:.3f}, mean common prefix {prefix / a.n:.1f} tokens")


if __name__ == "__main__":
    main()
