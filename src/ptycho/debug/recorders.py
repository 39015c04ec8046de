"""The tap recorders of ``debug-ab``: each stage's taps (:data:`ptycho.debug.taps.TAPS`) measured
from what the stage produced, streaming where the data can be large."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ptycho.data.dataset import Dataset
from ptycho.data.grouping import Groups


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
