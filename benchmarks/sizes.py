"""The sizes of a full and a ``--quick`` run, in one place.

The full sizes are the scenarios the project's targets and the benchmark issue name; the quick sizes only
exercise every code path (tiny N, few patterns, few epochs) and their numbers mean little.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Sizes:
    mode: str
    # sim
    sim_N: int
    sim_sizes: tuple[int, ...]
    sim_baseline_patterns: int
    # train (step throughput)
    train_N: int
    train_positions: int
    train_batch: int
    train_filters: int
    train_gridsizes: tuple[int, ...]
    train_batches: int  # distinct batches per timed epoch
    train_epochs: int  # timed epochs (after a warm-up epoch that compiles)
    # cluster (one process vs two local workers)
    cluster_N: int
    cluster_positions: int
    cluster_batch: int  # global batch
    cluster_filters: int
    cluster_epochs: int
    # infer
    infer_gridsizes: tuple[int, ...]
    infer_large_gridsizes: tuple[int, ...]  # gridsizes also run at the largest size
    # quality
    quality_N: int
    quality_object_size: int | None
    quality_train_positions: int
    quality_test_positions: int
    quality_doses: tuple[float, ...]
    quality_gridsizes: tuple[int, ...]
    quality_epochs: int
    quality_filters: int
    iterative_iterations: int
    # sweep
    sweep_N: int
    sweep_positions: int
    sweep_epochs: int
    sweep_jit: bool
    sweep_cases: tuple[tuple[int, float, str, bool, bool], ...] = field(default=())
    # per-child time limit (seconds)
    child_timeout_s: float = 4 * 3600
    # regimes (the regime map: dose × overlap × object)
    regimes_N: int = 64
    regimes_object_size: int = 384
    regimes_doses: tuple[float, ...] = (1e3, 1e4, 1e5, 1e6, 1e9)
    regimes_overlaps: tuple[str, ...] = ("dense", "sparse", "free")
    regimes_objects: tuple[str, ...] = ("lines", "siemens", "gold")
    regimes_iterations: int = 100  # rPIE and ML iterations, every one scored
    regimes_budget: int = 20  # rPIE's fixed budget
    regimes_ptychi_epochs: int = 100  # 0: no pty-chi arm
    regimes_pinn_epochs: int = 10  # 0: no PINN arm
    # the machine's float32 matmul rate (runs with train/infer/quality/regimes/settings): n×n GEMM, best of repeats
    matmul_n: int = 2048
    matmul_repeats: int = 5
    # settings (XLA × batch × threads for train and infer; train_N/positions/filters/epochs, sim_N from above)
    settings_gridsizes: tuple[int, ...] = (1, 2)
    settings_threads: tuple[int, ...] = (0, 1, 2)  # TensorFlow intra- and inter-op threads; 0 = its own choice
    settings_train_batches: tuple[int, ...] = (8, 16, 32, 64)
    settings_infer_batches: tuple[int, ...] = (16, 64, 256)
    settings_train_groups: int = 256  # groups per timed training epoch (whole batches)
    settings_infer_patterns: int = 4000  # positions of the infer dataset
    # realistic (the gold-balls specimen and probe, wrong probe guess, position errors)
    realistic_N: int = 128
    realistic_dose: float = 1e6  # photons per pattern
    realistic_stride: int = 2  # every stride-th raster row and column of the real scan, per scan
    realistic_extent_px: float | None = None  # keep positions within this span of the scan corner
    realistic_iterations: int = 200  # ptycho iterative
    realistic_epochs: int = 5  # ptycho train (N=128 epochs are long on 2 cores)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SWEEP_DOSES = (1e4, 1e5, 1e6, 1e7, 1e8, 1e9)
SWEEP_PROBES = ("ideal", "gaussian", "aberrated")
SWEEP_GRIDSIZES = (1, 2, 3)
SWEEP_PROBE_OPTION_DOSES = (1e4, 1e9)  # every probe option at both dose extremes


def full_sweep_cases() -> tuple[tuple[int, float, str, bool, bool], ...]:
    """``(gridsize, photons, probe kind, probe_trainable, scale_trainable)`` of the full sweep: every
    dose with the default probe, and every probe option alone and all together at both dose
    extremes, at each gridsize (one factor at a time around the default, not the full product)."""
    cases = []
    for gs in SWEEP_GRIDSIZES:
        cases += [(gs, dose, "ideal", False, False) for dose in SWEEP_DOSES]
        for dose in SWEEP_PROBE_OPTION_DOSES:
            cases += [(gs, dose, "gaussian", False, False), (gs, dose, "aberrated", False, False),
                      (gs, dose, "ideal", True, False), (gs, dose, "ideal", False, True),
                      (gs, dose, "aberrated", True, True)]
    return tuple(cases)


QUICK_SWEEP_CASES = (
    # every gridsize, both dose extremes, every probe kind and each trainable option at least once
    (1, 1e4, "gaussian", True, False),
    (2, 1e9, "aberrated", False, True),
    (3, 1e6, "ideal", False, False),
)

FULL = Sizes(
    mode="full",
    sim_N=64, sim_sizes=(10_000, 100_000), sim_baseline_patterns=2000,
    train_N=64, train_positions=2000, train_batch=16, train_filters=2, train_gridsizes=(1, 2),
    train_batches=20, train_epochs=3,
    cluster_N=64, cluster_positions=1000, cluster_batch=16, cluster_filters=2, cluster_epochs=3,
    infer_gridsizes=(1, 2), infer_large_gridsizes=(1, 2),
    quality_N=64, quality_object_size=None, quality_train_positions=2000, quality_test_positions=1000,
    quality_doses=(1e9, 1e4), quality_gridsizes=(1, 2), quality_epochs=20, quality_filters=2,
    iterative_iterations=100,
    sweep_N=32, sweep_positions=128, sweep_epochs=3, sweep_jit=True, sweep_cases=full_sweep_cases(),
)

QUICK = replace(
    FULL,  # same scenarios, tiny sizes: only what differs from FULL
    mode="quick",
    sim_N=32, sim_sizes=(2000, 10_000), sim_baseline_patterns=500,
    train_N=32, train_positions=256, train_filters=1, train_batches=3, train_epochs=1,
    cluster_N=32, cluster_positions=128, cluster_batch=8, cluster_filters=1, cluster_epochs=2,
    quality_N=32, quality_train_positions=256, quality_test_positions=128, quality_doses=(1e4,),
    quality_epochs=2, quality_filters=1, iterative_iterations=10,
    sweep_epochs=2, sweep_jit=False, sweep_cases=QUICK_SWEEP_CASES,
    child_timeout_s=600,
    regimes_N=32, regimes_object_size=112, regimes_doses=(1e4,), regimes_overlaps=("dense", "free"),
    regimes_objects=("lines", "gold"), regimes_iterations=4, regimes_budget=2, regimes_ptychi_epochs=2,
    regimes_pinn_epochs=1, matmul_n=512, matmul_repeats=3,
    settings_gridsizes=(1,), settings_threads=(0, 1), settings_train_batches=(8, 16), settings_infer_batches=(16, 64),
    settings_train_groups=32, settings_infer_patterns=500,
    realistic_N=64, realistic_stride=4, realistic_extent_px=30.0, realistic_iterations=12, realistic_epochs=1,
)


def override(sizes: Sizes, assignments: list[str]) -> Sizes:
    """``sizes`` with ``NAME=VALUE`` assignments applied; VALUE is JSON (``20``, ``[1, 2]``,
    ``true``) or, failing that, a string.

    Raises
    ------
    ValueError
        Unknown name or malformed assignment.
    """
    import dataclasses
    import json

    names = {f.name for f in dataclasses.fields(Sizes)}
    changes: dict[str, Any] = {}
    for text in assignments:
        name, sep, raw = text.partition("=")
        name = name.strip()
        if not sep or name not in names or name == "mode":
            raise ValueError(f"--size {text!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(names - {'mode'}))}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        changes[name] = value
    return dataclasses.replace(sizes, **changes)
