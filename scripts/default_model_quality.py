#!/usr/bin/env python3
"""The two numbers a bundled default dhara is judged by (issue #17, models/*/README.md):

  held-out Brown bits/byte  `optiq eval MODEL --task perplexity` on data/heldout/brown-heldout.txt
                            (the byte tokenizer predicts one token per byte: bits/byte = nll/token / ln 2)
  self-spec tokens/round    `optiq generate --mode selfspec --max-tokens 96` from 16 held-out prompts
                            (every other paragraph longer than 200 characters of the held-out text, its
                            first 80 characters cut at a space), the model's generation_config.json
                            (repetition penalty 1.3); generated tokens / rounds over all prompts.

  python3 scripts/default_model_quality.py MODEL_DIR [MODEL_DIR ...] [--optiq build/optiq] [--threads 2]
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELDOUT = os.path.join(ROOT, "data", "heldout", "brown-heldout.txt")


def prompts(n=16):
    with open(HELDOUT, encoding="utf-8") as f:
        paragraphs = [p.strip() for p in f.read().split("\n") if len(p.strip()) > 200]
    out = []
    for p in paragraphs[0 : 2 * n : 2]:
        head = " ".join(p.split())[:80]
        out.append(head[: head.rfind(" ")])
    return out


def bits_per_byte(optiq, model, threads):
    r = subprocess.run([optiq, "eval", model, "--task", "perplexity", "--threads", str(threads)],
                       capture_output=True, text=True, check=True)
    # The table's last row: MODEL  perplexity  nll/token  tokens
    row = [line for line in r.stdout.splitlines() if line.strip()][-1].split()
    nll = float(row[-2])
    return nll / math.log(2), nll


def tokens_per_round(optiq, model, threads):
    tokens = rounds = 0
    for p in prompts():
        r = subprocess.run([optiq, "generate", "--model", model, "--mode", "selfspec", "--prompt", p,
                            "--max-tokens", "96", "--json", "--threads", str(threads)],
                           capture_output=True, text=True, check=True)
        j = json.loads(r.stdout.splitlines()[0])
        tokens += len(j["tokens"])
        rounds += len(j["accepted_per_round"])
    return tokens / rounds, tokens, rounds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--optiq", default=os.path.join(ROOT, "build", "optiq"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    print("| model | held-out bits/byte | self-spec tokens/round |")
    print("| --- | --- | --- |")
    for m in a.models:
        bpb, nll = bits_per_byte(a.optiq, m, a.threads)
        tpr, t, r = tokens_per_round(a.optiq, m, a.threads)
        print(f"| {m} | {bpb:.3f} (nll {nll:.5f} / token) | {tpr:.2f} ({t} tokens / {r} rounds) |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
