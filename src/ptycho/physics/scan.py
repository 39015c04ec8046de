"""Scan patterns (docs/simulation.md#scans) and overlap statistics.

A window of size ``N`` at position ``x`` covers pixel centres ``x − (N−1)/2 … x + (N−1)/2``
(docs/conventions.md#windows), so the valid range of probe centres in an object of width ``W`` is
``[(N−1)/2, W − 1 − (N−1)/2]``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ptycho.config.physics import ScanConfig
from ptycho.errors import ConfigError


def valid_range(length: int, N: int, border: float = 0.0) -> tuple[float, float]:
    """Inclusive range of probe centres that keep an ``N`` window inside ``length`` pixels."""
    half = (N - 1) / 2.0
    lo, hi = half + border, length - 1 - half - border
    if hi < lo:
        raise ConfigError(
            f"object of {length} px cannot hold a {N}-px window with a {border}-px border; "
            f"increase `simulate.object.size` to at least {int(math.ceil(N + 2 * border))}"
        )
    return lo, hi


def random_scan(
    object_shape: tuple[int, int], N: int, config: ScanConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n_images`` positions drawn uniformly inside the valid range ("nongrid")."""
    ylo, yhi = valid_range(object_shape[0], N, config.border_px)
    xlo, xhi = valid_range(object_shape[1], N, config.border_px)
    x = rng.uniform(xlo, xhi, config.n_images)
    y = rng.uniform(ylo, yhi, config.n_images)
    return x.astype(np.float64), y.astype(np.float64)


def grid_scan(
    object_shape: tuple[int, int], N: int, config: ScanConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A raster centred on the object, row by row.

    Without ``step_px`` the raster is ``ceil(√n_images)`` positions per side at the largest whole
    number of pixels that fits, so window corners sit on whole pixels (no interpolation) and only
    the last row can be partial. With ``step_px`` the raster fills the object: every position
    unless ``n_images`` is set explicitly (:func:`grid_count`). ``jitter_px`` adds Gaussian
    jitter, clipped to the valid range.
    """
    ylo, yhi = valid_range(object_shape[0], N, config.border_px)
    xlo, xhi = valid_range(object_shape[1], N, config.border_px)
    if config.step_px is None:  # a centred per_side × per_side raster holding n_images
        per_side = max(1, math.ceil(math.sqrt(config.n_images)))
        span = min(yhi - ylo, xhi - xlo)
        step = max(1.0, math.floor(span / max(per_side - 1, 1)))
        ny = min(per_side, int(math.floor((yhi - ylo) / step)) + 1)
        nx = min(per_side, int(math.floor((xhi - xlo) / step)) + 1)
    else:  # the given step, filling the object
        step = config.step_px
        ny = int(math.floor((yhi - ylo) / step)) + 1
        nx = int(math.floor((xhi - xlo) / step)) + 1
    y0 = ylo + math.floor(((yhi - ylo) - (ny - 1) * step) / 2)
    x0 = xlo + math.floor(((xhi - xlo) - (nx - 1) * step) / 2)
    yy, xx = np.meshgrid(y0 + step * np.arange(ny), x0 + step * np.arange(nx), indexing="ij")
    count = grid_count(config, ny * nx)
    x, y = xx.ravel()[:count], yy.ravel()[:count]
    if config.jitter_px > 0:
        x = np.clip(x + rng.normal(0, config.jitter_px, x.shape), xlo, xhi)
        y = np.clip(y + rng.normal(0, config.jitter_px, y.shape), ylo, yhi)
    return x.astype(np.float64), y.astype(np.float64)


def grid_count(config: ScanConfig, available: int) -> int:
    """Positions a grid keeps of the ``available`` ones of its raster: all of them when a step is
    given and ``n_images`` is not (the step fills the object); else ``n_images``, with a warning
    when that cuts a stepped raster short."""
    if config.step_px is None:
        return min(config.n_images, available)
    if "n_images" not in config.model_fields_set:
        return available
    if config.n_images < available:
        warnings.warn(f"scan.n_images = {config.n_images} keeps only the first {config.n_images} of the "
                      f"{available} grid positions at step {config.step_px:g} px (the rest of the object is not "
                      "scanned); leave n_images unset to scan it all", UserWarning, stacklevel=3)
    return min(config.n_images, available)


def resolved_scan(config: ScanConfig, n_positions: int) -> ScanConfig:
    """The scan settings to record for a run that produced ``n_positions``: a stepped grid with
    ``n_images`` unset scanned every position, so the record says how many (a replay gives the
    same scan)."""
    if config.step_px is not None and "n_images" not in config.model_fields_set:
        return config.model_copy(update={"n_images": n_positions})
    return config


def disk_overlap_fraction(distance: np.ndarray, diameter: float) -> np.ndarray:
    """Area overlap of two disks of ``diameter`` at centre ``distance``, as a fraction of one disk."""
    r = diameter / 2.0
    d = np.clip(np.asarray(distance, dtype=np.float64) / (2 * r), 0.0, 1.0)
    return (2 / np.pi) * (np.arccos(d) - d * np.sqrt(1 - d**2))


def scan_overlap(x: np.ndarray, y: np.ndarray, probe_diameter_px: float) -> dict[str, float]:
    """Overlap statistics: nearest-neighbour distances and mean probe-area overlap with the
    nearest neighbour (disks of the probe's effective diameter)."""
    if len(x) < 2:
        return {"nn_distance_mean_px": float("nan"), "overlap_mean": 0.0}
    from scipy.spatial import cKDTree

    tree = cKDTree(np.stack([x, y], axis=1))
    dist, _ = tree.query(np.stack([x, y], axis=1), k=2)
    nn = dist[:, 1]
    return {
        "nn_distance_mean_px": float(nn.mean()),
        "nn_distance_max_px": float(nn.max()),
        "overlap_mean": float(disk_overlap_fraction(nn, probe_diameter_px).mean()),
    }
