"""Taps: the numbers ``debug-ab`` records at every stage, their tolerances, and the comparison
(the functions that measure them from each stage's output: :mod:`ptycho.debug.recorders`).

Each tap is a scalar (or bool) with a built-in :class:`Tolerance` (named constants below). Two
values agree when ``|a − b| ≤ atol + rtol·max(|a|, |b|)``; both NaN (or both missing) agree, one
NaN (or one missing) does not. Identical configs and seeds give bit-identical pipelines on one
machine, so the tolerances only decide whether a *real* difference between the arms is large
enough to report; they are loose where a stage is noisy (metrics) and tight where it is exact.
Override any of them with ``debug_ab.tolerances.<stage>.<tap or *>.rtol|atol``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ptycho.config.pipeline import ToleranceConfig


@dataclass(frozen=True)
class Tolerance:
    """``|a − b| ≤ atol + rtol·max(|a|, |b|)`` means "the same"."""

    rtol: float
    atol: float

    def agree(self, a: Any, b: Any) -> bool:
        if a is None or b is None:
            return a is None and b is None
        if isinstance(a, (bool, str)) or isinstance(b, (bool, str)):
            return a == b
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        return abs(a - b) <= self.atol + self.rtol * max(abs(a), abs(b))


EXACT = Tolerance(rtol=0.0, atol=0.0)
"""Counts and flags: positions, groups, epochs, NaN counts, recoveries."""
DATA = Tolerance(rtol=1e-4, atol=1e-9)
"""Simulated data: deterministic for a seed, so anything beyond float round-off is real."""
GEOMETRY = Tolerance(rtol=1e-3, atol=1e-6)
"""Scan and group geometry in pixels, overlap fractions, probe diameter."""
FRACTION = Tolerance(rtol=0.0, atol=1e-4)
"""Fractions of pixels (zero counts)."""
SCALE = Tolerance(rtol=1e-4, atol=0.0)
"""Photon and input scales of the model."""
LOSS = Tolerance(rtol=1e-3, atol=1e-9)
"""Training losses: XLA on one machine repeats them to round-off."""
OUTPUT = Tolerance(rtol=1e-3, atol=1e-4)
"""Statistics of reconstructed amplitude/phase."""
COVERAGE = Tolerance(rtol=0.0, atol=1e-3)
"""Fraction of the stitched canvas that holds data."""
SSIM = Tolerance(rtol=0.0, atol=0.02)
PSNR_DB = Tolerance(rtol=0.0, atol=0.5)
ERROR = Tolerance(rtol=0.05, atol=1e-3)
"""MAE of amplitude / phase."""
RESOLUTION = Tolerance(rtol=0.1, atol=0.0)
RATIO = Tolerance(rtol=0.0, atol=0.02)


def _stats(prefix: str) -> dict[str, tuple[Tolerance, str]]:
    return {f"{prefix}_{s}": (OUTPUT, f"{s} of the {prefix}") for s in ("mean", "std", "min", "max")}


TAPS: dict[str, dict[str, tuple[Tolerance, str]]] = {
    "simulate": {
        "n_patterns": (EXACT, "training scan positions"),
        "probe_energy": (DATA, "Σ|P|², photons per exposure"),
        "probe_diameter_px": (GEOMETRY, "probe effective diameter (participation area), px"),
        "nn_distance_mean_px": (GEOMETRY, "mean nearest-neighbour distance of scan positions, px"),
        "nn_distance_max_px": (GEOMETRY, "largest nearest-neighbour distance, px"),
        "overlap_mean": (GEOMETRY, "mean probe-area overlap with the nearest neighbour"),
        "counts_mean": (DATA, "mean total counts per pattern"),
        "counts_max": (DATA, "largest total counts of a pattern"),
        "counts_total": (DATA, "total counts in the training data"),
        "pixel_max": (DATA, "brightest pixel, counts"),
        "zero_fraction": (FRACTION, "fraction of pixels with zero counts"),
        "nonfinite": (EXACT, "NaN/Inf values in the diffraction"),
        "object_amplitude_mean": (DATA, "mean ground-truth amplitude"),
        "object_phase_mean": (DATA, "mean ground-truth phase, rad"),
        "test_n_patterns": (EXACT, "test scan positions"),
        "test_counts_mean": (DATA, "mean total counts per test pattern"),
        "test_nonfinite": (EXACT, "NaN/Inf values in the test diffraction"),
    },
    "group": {
        "gridsize": (EXACT, "group side g (C = g² members)"),
        "n_groups": (EXACT, "training groups"),
        "offset_mean_px": (GEOMETRY, "mean |offset| of a member from its group centroid, px"),
        "offset_max_px": (GEOMETRY, "largest member offset along either axis, px"),
    },
    "train": {
        "photon_scale": (SCALE, "photons per exposure the model is calibrated to (Σ|P|²)"),
        "input_scale": (SCALE, "network input scale N/√Σ|P|²"),
        "scale_correction": (LOSS, "trainable scale correction"),
        "epochs": (EXACT, "epochs trained"),
        "loss_first": (LOSS, "training loss, first epoch"),
        "loss_final": (LOSS, "training loss, last epoch"),
        "val_loss_best": (LOSS, "best validation loss"),
        "nan_recoveries": (EXACT, "non-finite epochs recovered from"),
        "stopped_early": (EXACT, "early stopping triggered"),
        "weights_nonfinite": (EXACT, "NaN/Inf values in weights, probe and scale"),
    },
    "infer": {
        "n_groups": (EXACT, "test groups reconstructed"),
        **_stats("amplitude"), **_stats("phase"),
        "nonfinite": (EXACT, "NaN/Inf values in the patches"),
    },
    "stitch": {
        "height": (EXACT, "stitched canvas rows"),
        "width": (EXACT, "stitched canvas columns"),
        "coverage": (COVERAGE, "fraction of the canvas holding data"),
        **_stats("amplitude"), **_stats("phase"),
        "nonfinite": (EXACT, "NaN/Inf values in the object"),
    },
    "evaluate": {
        "amplitude_ssim": (SSIM, "SSIM of amplitude"),
        "phase_ssim": (SSIM, "SSIM of phase"),
        "amplitude_psnr": (PSNR_DB, "PSNR of amplitude, dB"),
        "phase_psnr": (PSNR_DB, "PSNR of phase, dB"),
        "amplitude_mae": (ERROR, "MAE of amplitude (absolute gauge)"),
        "phase_mae": (ERROR, "MAE of phase, rad"),
        "amplitude_rescaled_ssim": (SSIM, "SSIM of amplitude after mean-ratio rescale"),
        "amplitude_mean_ratio": (RATIO, "mean amplitude, reconstruction / truth"),
        "frc50_px": (RESOLUTION, "FRC-0.5 resolution, px"),
    },
}
"""Every tap: stage → name → (default tolerance, description)."""
KEY_TAPS = {
    "simulate": ("probe_energy", "overlap_mean", "counts_mean"),
    "group": ("n_groups", "offset_max_px"),
    "train": ("loss_first", "loss_final", "nan_recoveries"),
    "infer": ("amplitude_mean", "phase_std"),
    "stitch": ("coverage", "amplitude_mean"),
    "evaluate": ("amplitude_ssim", "phase_ssim", "frc50_px"),
}
"""Taps the terminal summary always shows."""


def tolerance_for(stage: str, tap: str, overrides: Mapping[str, Mapping[str, ToleranceConfig]] | None = None) -> Tolerance:
    """The tolerance of ``stage.tap``: a ``tap`` override, else a ``*`` override, else built in
    (a tap without a built-in tolerance is compared exactly)."""
    default = TAPS.get(stage, {}).get(tap, (EXACT, ""))[0]
    stage_over = (overrides or {}).get(stage, {})
    rtol, atol = default.rtol, default.atol
    for key in ("*", tap):
        if key in stage_over:
            o = stage_over[key]
            rtol = o.rtol if o.rtol is not None else rtol
            atol = o.atol if o.atol is not None else atol
    return Tolerance(rtol, atol)


@dataclass(frozen=True)
class TapComparison:
    stage: str
    name: str
    a: Any
    b: Any
    tolerance: Tolerance
    diverged: bool

    @property
    def abs_diff(self) -> float | None:
        try:
            return abs(float(self.a) - float(self.b))
        except (TypeError, ValueError):
            return None

    @property
    def rel_diff(self) -> float | None:
        d = self.abs_diff
        if d is None:
            return None
        scale = max(abs(float(self.a)), abs(float(self.b)))
        return 0.0 if d == 0 else (d / scale if scale > 0 else math.inf)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "a": self.a, "b": self.b, "abs_diff": self.abs_diff, "rel_diff": self.rel_diff,
                "rtol": self.tolerance.rtol, "atol": self.tolerance.atol, "diverged": self.diverged,
                "description": TAPS.get(self.stage, {}).get(self.name, (None, ""))[1]}


def compare_taps(stage: str, a: Mapping[str, Any], b: Mapping[str, Any],
                 overrides: Mapping[str, Mapping[str, ToleranceConfig]] | None = None) -> list[TapComparison]:
    """Side-by-side comparison of one stage's taps, in the built-in order, then any extras."""
    order = list(TAPS.get(stage, {}))
    names = order + sorted((set(a) | set(b)) - set(order))
    rows = []
    for name in names:
        if name not in a and name not in b:
            continue
        tol = tolerance_for(stage, name, overrides)
        va, vb = a.get(name), b.get(name)
        rows.append(TapComparison(stage, name, va, vb, tol, not tol.agree(va, vb)))
    return rows
