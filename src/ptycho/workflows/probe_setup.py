"""The probe a run starts from: the dataset's, one read from a file (``probe_file``), and — when the
probe is refined — the result of a few iterative passes with probe update over the scan.

A measured scan rarely comes with an accurate probe: an analytical model of the optics, or one
reconstructed from another scan. The network's input (the global estimate) and its physics layers
both use the probe, so a wrong probe poisons both. Refinement therefore starts *before* training:
``probe_init_passes`` rPIE passes with probe update, from which the probe (and the estimate the
network reads) are made; training then refines it further, jointly with the network
(:mod:`ptycho.models.probe`).
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
    return (probe * np.sqrt(probe_energy(dataset.probe) / power)).astype(np.complex64)


def wants_refinement(requested: bool | None, dataset: Dataset) -> bool:
    """``requested``, or (when None) whether the dataset marks its probe as a guess."""
    if requested is not None:
        return bool(requested)
    return bool(dataset.metadata.get(PROBE_GUESS_KEY, False))


@dataclass(frozen=True)
class ProbeInit:
    """The outcome of the iterative passes that initialise a refined probe."""

    probe: np.ndarray
    passes: int
    seconds: float
    errors: list[float] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {"probe_init_passes": self.passes, "probe_init_seconds": self.seconds,
                "probe_init_fourier_error": self.errors[-1] if self.errors else None}


def refine_probe_iteratively(dataset: Dataset, passes: int, seed: int) -> ProbeInit:
    """``passes`` rPIE passes with probe update over the whole scan, from the dataset's probe and a
    unit object; the probe's power stays at the photon gauge."""
    from ptycho.iterative.engines import reconstruct

    result = reconstruct(dataset, engine="rpie", iterations=passes, probe_update=True, seed=seed)
    return ProbeInit(result.probe.astype(np.complex64), passes, result.seconds, [float(e) for e in result.errors])
