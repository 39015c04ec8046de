#!/usr/bin/env bash
# The main job on built-in defaults, tiny and CPU-friendly (a few minutes on 2 cores): a low-dose
# scan (1e4 photons per pattern), where the network's learnt prior beats rPIE, which fits the noise.
# simulate a training scan and a separate test scan of the same object → train → infer → stitch;
# rPIE and the maximum-likelihood solver on the same test scan; all three scored side by side.
# Usage: bash examples/quickstart.sh [OUT_DIR]        (ptycho and the ptycho-iterative plugin on PATH)
set -euo pipefail
out="${1:-demo}"
mkdir -p "$out"
common=(--object lines --N 32 --size 128 --nphotons 1e4 --seed 0)
ptycho simulate "${common[@]}" --n-images 1024 --out "$out/train.h5" --quiet
ptycho simulate "${common[@]}" --n-images 512 --set scan.seed=1 --out "$out/test.h5" --quiet
ptycho train "$out/train.h5" --out "$out/model" --epochs 8
ptycho infer "$out/model" "$out/test.h5" --out "$out/patches.h5" --quiet
ptycho stitch "$out/patches.h5" --out "$out/pinn.npz" --quiet
ptycho iterative "$out/test.h5" --engine rpie --iterations 20 --out "$out/rpie.npz" --quiet
ptycho iterative "$out/test.h5" --engine ml --iterations 50 --out "$out/ml.npz" --quiet
ptycho evaluate "$out/pinn.npz" "$out/rpie.npz" "$out/ml.npz" --truth "$out/test.h5" --out "$out/eval"
echo "figures: $out/eval/side_by_side.png $out/model/loss.png $out/train.preview.png"
