#!/usr/bin/env python3
"""Checks the layering of src/ (issue #16) from its #include "..." lines, and file lengths.

Layers, lowest first (a directory may include its own layer and lower ones only):
  core < io < kernels < tokenizer < models < decode < quant = train < serve < cli
Further rules:
  - decode/ includes nothing from kernels/ (decoders see only the Model interface);
  - serve/ and cli/ include no model file: of models/ only the interface headers MODEL_INTERFACE;
  - models/ include of kernels/ only the seam headers KERNEL_SEAM.
Separately, no src/ file may exceed MAX_LINES lines.

Usage: scripts/check_layers.py [--src DIR] [--checks includes,lengths] [--skip-model-seam] [--graph]
  --graph            also print the include graph between directories (edges with counts)
  --skip-model-seam  leave out the models -> kernels seam rule (until the kernel seam lands)
Exit status 1 when a check fails, listing each offending include (file:line) or file.
"""
import argparse
import collections
import os
import re
import sys

LAYERS = [["core"], ["io"], ["kernels"], ["tokenizer"], ["models"], ["decode"], ["quant", "train"], ["serve"],
          ["cli"]]
RANK = {d: i for i, group in enumerate(LAYERS) for d in group}
MODEL_INTERFACE = {"models/model.h", "models/registry.h"}
KERNEL_SEAM = {"kernels/kernels.h", "kernels/weight.h", "kernels/train.h"}
MAX_LINES = 800
SOURCE_EXT = (".h", ".cpp", ".cc", ".hpp")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def sources(src):
    """(path, path relative to src with / separators) of every source file, sorted."""
    found = []
    for root, _, files in os.walk(src):
        for f in files:
            if f.endswith(SOURCE_EXT):
                path = os.path.join(root, f)
                found.append((path, os.path.relpath(path, src).replace(os.sep, "/")))
    return sorted(found, key=lambda p: p[1])


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                yield n, m.group(1)


def include_violation(src_dir, target, skip_model_seam):
    """Why `src_dir`/... may not include `target` ("dir/file.h"), or None."""
    dst_dir = target.split("/", 1)[0]
    if dst_dir not in RANK or src_dir not in RANK or dst_dir == src_dir:
        return None
    if RANK[dst_dir] > RANK[src_dir]:
        return f"lower layer {src_dir}/ includes higher layer {dst_dir}/"
    if src_dir == "decode" and dst_dir == "kernels":
        return "decode/ includes kernels/ (decoders use only the Model interface)"
    if src_dir in ("serve", "cli") and dst_dir == "models" and target not in MODEL_INTERFACE:
        return f"{src_dir}/ includes a model file (allowed: {', '.join(sorted(MODEL_INTERFACE))})"
    if src_dir == "models" and dst_dir == "kernels" and target not in KERNEL_SEAM and not skip_model_seam:
        return f"models/ includes a kernel header outside the seam (allowed: {', '.join(sorted(KERNEL_SEAM))})"
    return None


def report(problems, header, ok_line):
    """Prints the problems under `header` (or `ok_line` when there are none); True if any."""
    print(header if problems else ok_line)
    for p in problems:
        print("  " + p)
    return bool(problems)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    ap.add_argument("--checks", default="includes,lengths", help="comma-separated: includes, lengths")
    ap.add_argument("--skip-model-seam", action="store_true")
    ap.add_argument("--graph", action="store_true")
    args = ap.parse_args()
    checks = set(args.checks.split(","))
    unknown = checks - {"includes", "lengths"}
    if unknown:
        ap.error(f"unknown checks: {', '.join(sorted(unknown))}")
    if not os.path.isdir(args.src):
        ap.error(f"{args.src}: not a directory")

    bad_includes, long_files = [], []
    edges = collections.Counter()
    for path, rel in sources(args.src):
        src_dir = rel.split("/", 1)[0]
        for n, target in includes(path):
            dst_dir = target.split("/", 1)[0]
            if dst_dir in RANK and src_dir in RANK and dst_dir != src_dir:
                edges[(src_dir, dst_dir)] += 1
            why = include_violation(src_dir, target, args.skip_model_seam)
            if why:
                bad_includes.append(f"src/{rel}:{n}: #include \"{target}\": {why}")
        with open(path, encoding="utf-8", errors="replace") as f:
            n_lines = sum(1 for _ in f)
        if n_lines > MAX_LINES:
            long_files.append(f"src/{rel}: {n_lines} lines (limit {MAX_LINES})")

    if args.graph:
        print("include graph between src/ directories (edges: includer -> included, #include lines):")
        for (a, b), count in sorted(edges.items(), key=lambda e: (RANK[e[0][0]], e[0][0], RANK[e[0][1]], e[0][1])):
            print(f"  {a} -> {b}: {count}")
    failed = False
    if "includes" in checks:
        failed |= report(bad_includes, f"{len(bad_includes)} include(s) break the layering:", "includes: layering OK")
    if "lengths" in checks:
        failed |= report(long_files, f"{len(long_files)} file(s) over {MAX_LINES} lines:",
                         f"lengths: every file within {MAX_LINES} lines")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
