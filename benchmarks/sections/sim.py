"""Section ``sim``: simulation throughput and peak memory, against a plain NumPy loop.

The baseline is the straightforward per-pattern implementation of the same forward model on the
same scene: cut the window at the nearest whole pixel → × probe → ``np.fft.fft2(norm="ortho")`` →
``|·|²`` → ``fftshift`` → ``rng.poisson``, into an in-memory array. ptycho does more per pattern
(bilinear sub-pixel windows, HDF5 output), so the ratio is conservative.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.child import ChildError, current_rss_mb, import_tensorflow, peak_rss_mb
from benchmarks.context import Context, sim_config
from benchmarks.report import Section, Target, row

TARGET_PATTERNS_PER_S = 2000.0
TARGET_PEAK_RSS_MB = 1000.0  # 1 GB (10⁹ bytes)
EARLIER = "~130–210 patterns/s"


def task_numpy_baseline(config: dict[str, Any], n: int) -> dict[str, Any]:
    """Per-pattern NumPy forward model + Poisson noise for the first ``n`` positions of the scene."""
    import numpy as np

    from ptycho.config.simulate import SimulateConfig
    from ptycho.registry import Components
    from ptycho.workflows.simulate import build_scene

    cfg = SimulateConfig.model_validate(config)
    scene = build_scene(cfg, Components.builtin())
    obj, probe, N = scene.object, scene.probe, cfg.N
    rng = np.random.default_rng(cfg.seed)
    half = (N - 1) / 2
    n = min(n, len(scene.x))
    out = np.empty((n, N, N), np.float32)
    t0 = time.perf_counter()
    for i in range(n):
        col = int(round(scene.x[i] - half))
        r = int(round(scene.y[i] - half))
        wave = obj[r:r + N, col:col + N] * probe
        intensity = np.abs(np.fft.fft2(wave, norm="ortho")) ** 2
        out[i] = rng.poisson(np.fft.fftshift(intensity))
    seconds = time.perf_counter() - t0
    return {"n_patterns": n, "seconds": seconds, "patterns_per_second": n / seconds,
            "mean_total_counts": float(out.sum(axis=(1, 2), dtype=np.float64).mean())}


def task_simulate_timed(config: dict[str, Any], out: str) -> dict[str, Any]:
    """``simulate`` to HDF5, timed after TensorFlow is imported (import time excluded)."""
    import_s = import_tensorflow()
    from ptycho.config.simulate import SimulateConfig
    from ptycho.workflows.simulate import simulate

    cfg = SimulateConfig.model_validate(config)
    rss_ready = current_rss_mb()
    t0 = time.perf_counter()
    result = simulate(cfg, Path(out), preview=False)
    wall = time.perf_counter() - t0
    return {"n_patterns": result.n_patterns, "wall_s": wall, "simulate_seconds": result.seconds,
            "patterns_per_second": result.n_patterns / wall, "mean_total_counts": result.mean_total_counts,
            "tf_import_s": import_s, "rss_after_import_mb": rss_ready, "peak_rss_mb": peak_rss_mb(),
            "file_mb": Path(out).stat().st_size / 1e6}


def run(ctx: Context) -> Section:
    s = ctx.sizes
    sec = Section("sim", f"simulation throughput and memory (N={s.sim_N}, default scene, HDF5 output)")
    largest = max(s.sim_sizes)
    base_cfg = sim_config(s.sim_N, largest)
    baseline = None
    try:
        baseline = ctx.child("sim", "numpy_baseline", config=base_cfg, n=s.sim_baseline_patterns)
        sec.raw["numpy_baseline"] = baseline
        sec.add(row("NumPy per-pattern baseline", baseline["patterns_per_second"], unit="patterns/s",
                    config=f"N={s.sim_N}, {baseline['n_patterns']} patterns, in memory",
                    note="same scene; nearest-pixel windows, no file output"))
    except ChildError as exc:
        sec.error("NumPy per-pattern baseline", exc)
    runs: dict[int, dict[str, Any]] = {}
    for n in s.sim_sizes:
        cfg = sim_config(s.sim_N, n)
        path = ctx.work / "data" / f"sim-{n}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            r = ctx.child("sim", "simulate_timed", config=cfg, out=str(path))
        except ChildError as exc:
            sec.error(f"simulate {n:,} patterns", exc)
            continue
        ctx.register(path, cfg)
        runs[n] = r
        label = f"N={s.sim_N}, {n:,} patterns"
        sec.add(row("ptycho simulate throughput", r["patterns_per_second"], unit="patterns/s", config=label,
                    target=Target(">=", TARGET_PATTERNS_PER_S), reference=EARLIER,
                    note="wall time of simulate() incl. scene, XLA compile and HDF5 writing; TF import excluded"))
        if baseline:
            sec.add(row("speed-up over NumPy baseline", r["patterns_per_second"] / baseline["patterns_per_second"],
                        unit="×", config=label))
        target = Target("<", TARGET_PEAK_RSS_MB, label="< 1,000 MB") if n == largest else None
        sec.add(row("peak RSS of simulate", r["peak_rss_mb"], unit="MB", config=label, target=target,
                    note=f"process peak; {r['rss_after_import_mb']:.0f} MB after importing TensorFlow"))
    sec.raw["runs"] = {str(k): v for k, v in runs.items()}
    if len(runs) >= 2:
        small, big = runs[min(runs)], runs[max(runs)]
        sec.add(row("peak RSS ratio largest / smallest", big["peak_rss_mb"] / small["peak_rss_mb"], unit="×",
                    config=f"{max(runs):,} vs {min(runs):,} patterns", note="≈1 means memory does not grow with size"))
    if baseline and runs:
        r = runs[min(runs)]
        sec.add(row("mean counts per pattern, ptycho / NumPy baseline",
                    r["mean_total_counts"] / baseline["mean_total_counts"], unit="×",
                    note="sanity check that both compute the same forward model (≈1; different position subsets)"))
    if ctx.quick:
        sec.notes.append("quick mode: N=32 and small sizes; the targets are for N=64 and 10⁵ patterns")
    return sec
