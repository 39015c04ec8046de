#!/usr/bin/env bash
# The main job on built-in defaults, tiny and CPU-friendly: simulate → train → infer → stitch → evaluate.
# Usage: bash examples/quickstart.sh [OUT_DIR]    (ptycho must be on PATH)
set -euo pipefail
out="${1:-demo}"
mkdir -p "$out"
ptycho simulate --object lines --N 32 --size 128 --n-images 512 --out "$out/train.h5"
echo "(train/infer/stitch/evaluate arrive with their issues)"
