#!/usr/bin/env bash
# The main job on built-in defaults, tiny and CPU-friendly (a few minutes on 2 cores):
# simulate a training scan and a separate test scan of the same object → train → infer → stitch → evaluate.
# Usage: bash examples/quickstart.sh [OUT_DIR]        (ptycho must be on PATH)
set -euo pipefail
out="${1:-demo}"
mkdir -p "$out"
common=(--object lines --N 32 --size 128 --gridsize 2 --nphotons 1e9 --seed 0)
ptycho simulate "${common[@]}" --n-images 1024 --out "$out/train.h5" --quiet
ptycho simulate "${common[@]}" --n-images 512 --set scan.seed=1 --out "$out/test.h5" --quiet
ptycho train "$out/train.h5" --out "$out/model" --epochs 8
ptycho infer "$out/model" "$out/test.h5" --out "$out/patches.h5" --quiet
ptycho stitch "$out/patches.h5" --out "$out/object.npz" --quiet
ptycho evaluate "$out/object.npz" --truth "$out/test.h5" --out "$out/eval"
echo "figures: $out/train.preview.png $out/model/loss.png $out/object.amplitude.png $out/object.phase.png $out/eval/comparison.png $out/eval/frc.png"
