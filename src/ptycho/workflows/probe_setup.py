"""The probe and positions a run starts from: the dataset's, a probe read from a file (``probe_file``),
and — when the probe or the positions are refined — the result of a few iterative passes over the
scan with probe update and/or position refinement (:func:`refine_iteratively`).

A measured scan rarely comes with an accurate probe: an analytical model of the optics, or one
reconstructed from another scan. The network's input (the global estimate) and its physics layers
both use the probe, so a wrong probe poisons both. Refinement therefore starts *before* training:
``probe_init_passes`` rPIE passes with probe update, from which the probe (and the estimate the
network reads) are made; training then refines it further, jointly with the network
(:mod:`ptycho.models.probe`). Positions are refined the same way (``refine_positions``, the
iterative engines' refinement, docs/positions.md): groups and the network's input are then made at
the refined positions, and the bundle stores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ptycho.data.dataset import Dataset
from ptycho.errors import DataError
from ptycho.physics.probe import probe_energy

PROBE_GUESS_KEY = "probe_is_guess"
"""Dataset metadata flag: the stored probe is a model or a guess (importers set it), so training
refines it unless told otherwise."""


def probe_from_file(path: str | Path, dataset: Dataset) -> np.ndarray:
    """The probe in ``path`` (any file a ``file:`` probe accepts), scaled to the dataset's photon
    gauge (its probe's power), for a dataset of ``N×N`` patterns.

    Raises
    ------
    DataError
        Unreadable file, or a probe of another size than the patterns.
    """
    from ptycho.io.datasets import load_probe

    probe = load_probe(path)
    if probe.shape[-1] != dataset.N:
        raise DataError(f"{path}: probe is {probe.shape[-2]}×{probe.shape[-1]} but the patterns of "
                        f"{dataset.source or 'the dataset'} are {dataset.N}×{dataset.N}; give a probe of that size")
    power = probe_energy(probe)
    if not np.isfinite(power) or power <= 0:
        raise DataError(f"{path}: the probe has no energy")
    return at_photon_gauge(probe, probe_energy(dataset.probe))


GAUGE_MATCH_RTOL = 1e-6
"""A probe whose power is this close to the gauge's is already there (float32 rounding is ≈ 6e-8 per
value): it is kept as it is, so a probe scaled once is never changed by scaling it again."""


def at_photon_gauge(probe: np.ndarray, photons: float) -> np.ndarray:
    """``probe`` (``(N, N)`` or ``(K, N, N)``, √counts) scaled so that ``Σ|P|² = photons``, complex64.

    A probe already at that power (:data:`GAUGE_MATCH_RTOL`) is returned unscaled: the bundle's copy
    of a file's probe, put at the gauge again by ``infer``, equals the file's probe put at the gauge
    once, to the bit.
    """
    power = probe_energy(probe)
    if abs(photons / power - 1.0) <= GAUGE_MATCH_RTOL:
        return np.asarray(probe, np.complex64)
    return (probe * np.sqrt(photons / power)).astype(np.complex64)


def wants_refinement(requested: bool | None, dataset: Dataset) -> bool:
    """``requested``, or (when None) whether the dataset marks its probe as a guess."""
    if requested is not None:
        return bool(requested)
    return bool(dataset.metadata.get(PROBE_GUESS_KEY, False))


@dataclass(frozen=True, eq=False)
class IterativeInit:
    """The outcome of the rPIE passes that start a run: a refined probe and/or refined positions.

    Attributes
    ----------
    probe : (N, N) or (K, N, N) complex64
        The probe after the passes (the starting one unless ``probe_update``), √counts.
    x, y : (M,) float64
        The positions after the passes (the starting ones unless ``refine_positions``).
    x0, y0 : (M,) float64
        The starting positions.
    passes : int
    probe_update, refine_positions : bool
        What the passes refined.
    seconds : float
    errors : list of float
        Normalised Fourier error of each pass.
    """

    probe: np.ndarray
    x: np.ndarray
    y: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    passes: int
    probe_update: bool
    refine_positions: bool
    seconds: float
    errors: list[float] = field(default_factory=list)

    @property
    def shifts(self) -> np.ndarray:
        """``(M,)`` distance of every position from its start (pixels)."""
        return np.hypot(self.x - self.x0, self.y - self.y0)

    def info(self) -> dict[str, Any]:
        """What a run records of the passes (bundle ``data_info``, patches provenance)."""
        out: dict[str, Any] = {"init_passes": self.passes, "init_seconds": self.seconds,
                               "init_fourier_error": self.errors[-1] if self.errors else None}
        if self.probe_update:
            out["probe_init_passes"] = self.passes
        if self.refine_positions:
            shifts = self.shifts
            out.update({"position_init_passes": self.passes, "position_rms_shift_px": float(np.sqrt(np.mean(shifts**2))),
                        "position_max_shift_px": float(shifts.max())})
        return out


def refine_iteratively(dataset: Dataset, passes: int, seed: int, *, probe_update: bool = False,
                       refine_positions: bool = False, position_max_shift_px: float | None = None) -> IterativeInit:
    """``passes`` rPIE passes over the whole scan from the dataset's probe and a unit object, with
    probe update (its power held at the photon gauge) and/or position refinement (the engines' own,
    :mod:`ptycho.iterative.positions`: bounded sub-pixel offsets, mean shift removed, moving after
    ``IterativeConfig.position_start`` passes). The dataset itself is left unchanged."""
    from ptycho.iterative.engines import reconstruct

    options: dict[str, Any] = {"probe_update": probe_update, "refine_positions": refine_positions}
    if position_max_shift_px is not None:
        options["position_max_shift_px"] = position_max_shift_px
    x0, y0 = np.array(dataset.x, np.float64), np.array(dataset.y, np.float64)
    result = reconstruct(dataset, engine="rpie", iterations=passes, seed=seed, **options)
    return IterativeInit(result.probe.astype(np.complex64), result.x, result.y, x0, y0, passes, probe_update,
                         refine_positions, result.seconds, [float(e) for e in result.errors])
