"""Taps: the numbers ``debug-ab`` records at every stage, their tolerances, and the comparison.

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
from pathlib import Path
from typing import Any

import numpy as np

from ptycho.config.pipeline import ToleranceConfig
from ptycho.data.dataset import Dataset
from ptycho.data.grouping import Groups


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


# --------------------------------------------------------------------------- tap recorders

def _running_stats(finite: np.ndarray, acc: dict[str, float]) -> None:
    """Add the (already finite) values to the running count, sums, min and max in ``acc``."""
    finite = finite.astype(np.float64)
    if finite.size:
        acc["n"] = acc.get("n", 0) + finite.size
        acc["sum"] = acc.get("sum", 0.0) + float(finite.sum())
        acc["sum2"] = acc.get("sum2", 0.0) + float(np.square(finite).sum())
        acc["min"] = min(acc.get("min", math.inf), float(finite.min()))
        acc["max"] = max(acc.get("max", -math.inf), float(finite.max()))


def _finish_stats(prefix: str, acc: dict[str, float]) -> dict[str, float]:
    n = acc.get("n", 0)
    if not n:
        return {f"{prefix}_{s}": math.nan for s in ("mean", "std", "min", "max")}
    mean = acc["sum"] / n
    var = max(acc["sum2"] / n - mean**2, 0.0)
    return {f"{prefix}_mean": mean, f"{prefix}_std": math.sqrt(var), f"{prefix}_min": acc["min"], f"{prefix}_max": acc["max"]}


def complex_stats(blocks: Any) -> dict[str, Any]:
    """Amplitude/phase mean, std, min, max and the NaN/Inf count over complex blocks."""
    amp: dict[str, float] = {}
    phase: dict[str, float] = {}
    nonfinite = 0
    for block in blocks:
        block = np.asarray(block)
        bad = ~np.isfinite(block)
        nonfinite += int(np.count_nonzero(bad))
        good = block[~bad]
        _running_stats(np.abs(good), amp)
        _running_stats(np.angle(good), phase)
    return {**_finish_stats("amplitude", amp), **_finish_stats("phase", phase), "nonfinite": nonfinite}


def count_statistics(dataset: Dataset, chunk: int = 256) -> tuple[dict[str, Any], np.ndarray]:
    """Count taps of a dataset's diffraction, streamed, and its mean pattern ``(N, N)``."""
    M, N = dataset.n_patterns, dataset.N
    totals = np.empty(M, np.float64)
    mean_pattern = np.zeros((N, N), np.float64)
    zeros = nonfinite = 0
    pixel_max = -math.inf
    for start in range(0, M, chunk):
        block = dataset.read_patterns(slice(start, min(start + chunk, M))).astype(np.float64)
        bad = ~np.isfinite(block)
        nonfinite += int(np.count_nonzero(bad))
        block = np.where(bad, 0.0, block)
        totals[start:start + len(block)] = block.reshape(len(block), -1).sum(axis=1)
        mean_pattern += block.sum(axis=0)
        zeros += int(np.count_nonzero(block == 0))
        pixel_max = max(pixel_max, float(block.max()))
    taps = {
        "counts_mean": float(totals.mean()), "counts_max": float(totals.max()), "counts_total": float(totals.sum()),
        "pixel_max": pixel_max, "zero_fraction": zeros / float(M * N * N), "nonfinite": nonfinite,
    }
    return taps, (mean_pattern / M).astype(np.float32)


def simulate_taps(train: Dataset, test: Dataset) -> tuple[dict[str, Any], np.ndarray]:
    """Taps of the simulated training and test data (probe, scan overlap, counts, truth), and
    the training data's mean pattern (for the figure)."""
    from ptycho.physics.probe import effective_diameter_px, probe_energy
    from ptycho.physics.scan import scan_overlap

    diameter = effective_diameter_px(train.probe)
    overlap = scan_overlap(train.x, train.y, diameter)
    counts, mean_pattern = count_statistics(train)
    test_counts, _ = count_statistics(test)
    taps: dict[str, Any] = {
        "n_patterns": train.n_patterns, "probe_energy": probe_energy(train.probe), "probe_diameter_px": diameter,
        "nn_distance_mean_px": overlap.get("nn_distance_mean_px", math.nan),
        "nn_distance_max_px": overlap.get("nn_distance_max_px", math.nan),
        "overlap_mean": overlap.get("overlap_mean", math.nan), **counts,
    }
    if train.object is not None:
        taps["object_amplitude_mean"] = float(np.abs(train.object).mean())
        taps["object_phase_mean"] = float(np.angle(train.object).mean())
    taps.update(test_n_patterns=test.n_patterns, test_counts_mean=test_counts["counts_mean"],
                test_nonfinite=test_counts["nonfinite"])
    return taps, mean_pattern


def group_taps(groups: Groups, gridsize: int) -> dict[str, Any]:
    """Group-offset statistics of the training groups."""
    radius = np.hypot(groups.offset_x, groups.offset_y)
    return {"gridsize": gridsize, "n_groups": groups.n_groups,
            "offset_mean_px": float(radius.mean()) if radius.size else 0.0, "offset_max_px": groups.max_offset}


def train_taps(history: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """Scale, losses, recoveries and weight health of a trained :class:`~ptycho.models.pinn.PINN`."""
    weights = [np.asarray(v.numpy()) for v in model.network.weights] + [np.asarray(v.numpy()) for v in model.physics_variables]
    loss = [float(v) for v in history.get("loss", [])]
    val = [float(v) for v in history.get("val_loss", []) if v is not None and math.isfinite(float(v))]
    return {
        "photon_scale": float(model.physics.probe_photons), "input_scale": float(model.physics.input_scale),
        "scale_correction": float(np.asarray(model.scale.numpy())), "epochs": len(loss),
        "loss_first": loss[0] if loss else math.nan, "loss_final": loss[-1] if loss else math.nan,
        "val_loss_best": min(val) if val else math.nan,
        "nan_recoveries": int(history.get("nan_recoveries", 0)), "stopped_early": bool(history.get("stopped_early", False)),
        "weights_nonfinite": int(sum(np.count_nonzero(~np.isfinite(w)) for w in weights)),
    }


def infer_taps(patches_path: Path, chunk_groups: int = 256) -> dict[str, Any]:
    """Amplitude/phase statistics and NaN/Inf count of every inferred patch.

    Reads the raw ``patches`` dataset (not :meth:`PatchesFile.iter_chunks`, which refuses NaN:
    here NaN is what we count)."""
    import h5py

    with h5py.File(patches_path, "r") as f:
        dset = f["patches"]
        G = int(dset.shape[0])
        stats = complex_stats(np.asarray(dset[s:s + chunk_groups]) for s in range(0, G, chunk_groups))
    return {"n_groups": G, **stats}


def stitch_taps(image: Any) -> dict[str, Any]:
    """Canvas size, coverage and amplitude/phase statistics over the support of an
    :class:`~ptycho.io.objects.ObjectImage`."""
    H, W = image.shape
    stats = complex_stats([image.object[image.support]])
    stats["nonfinite"] = int(np.count_nonzero(~np.isfinite(image.object)))
    return {"height": H, "width": W, "coverage": float(np.mean(image.support)), **stats}


def evaluate_taps(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers of ``metrics.json``."""
    def get(*path: str) -> Any:
        node: Any = metrics
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        return math.nan if node is None else node

    return {
        "amplitude_ssim": get("amplitude", "ssim"), "phase_ssim": get("phase", "ssim"),
        "amplitude_psnr": get("amplitude", "psnr"), "phase_psnr": get("phase", "psnr"),
        "amplitude_mae": get("amplitude", "mae"), "phase_mae": get("phase", "mae"),
        "amplitude_rescaled_ssim": get("amplitude_rescaled", "ssim"),
        "amplitude_mean_ratio": get("amplitude_mean", "ratio"), "frc50_px": get("frc", "frc50_px"),
    }
