"""Probes (docs/simulation.md#probes): an ideal smoothed disk with optional defocus, a Gaussian, or a file.

Every maker returns a complex ``(N, N)`` probe (a file may give ``(K, N, N)`` modes) of arbitrary
scale; :func:`mixed_state` makes the modes asked for (docs/simulation.md#probe-modes) and
:func:`normalise_probe` then fixes the photon gauge ``Σ_k Σ|P_k|² = nphotons``
(docs/conventions.md#photon-gauge).
"""

from __future__ import annotations

import numpy as np

from ptycho.config.physics import ProbeConfig
from ptycho.errors import ConfigError, DataError
from ptycho.physics.modes import derive_modes, n_modes, summed_intensity


def _radius_grid(N: int) -> np.ndarray:
    """Distance of each pixel centre from the window centre ``((N−1)/2, (N−1)/2)``."""
    c = (N - 1) / 2.0
    yy, xx = np.mgrid[0:N, 0:N]
    return np.hypot(yy - c, xx - c)


def ideal_probe(N: int, config: ProbeConfig, arg: str | None = None) -> np.ndarray:
    """A disk aperture of diameter ``diameter_frac·N`` with an erf-smoothed edge of width
    ``edge_px`` and a quadratic (defocus) phase equal to ``defocus_rad`` at the disk edge.

    Returns
    -------
    (N, N) complex64
    """
    r = _radius_grid(N)
    radius = config.diameter_frac * N / 2.0
    if config.edge_px > 0:
        from scipy.special import erf

        amplitude = 0.5 * (1.0 - erf((r - radius) / config.edge_px))
    else:
        amplitude = (r <= radius).astype(np.float64)
    phase = config.defocus_rad * (r / radius) ** 2
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def gaussian_probe(N: int, config: ProbeConfig, arg: str | None = None) -> np.ndarray:
    """A Gaussian beam of standard deviation ``sigma_frac·N`` with optional defocus phase."""
    r = _radius_grid(N)
    sigma = config.sigma_frac * N
    phase = config.defocus_rad * (r / (2.0 * sigma)) ** 2
    return (np.exp(-0.5 * (r / sigma) ** 2) * np.exp(1j * phase)).astype(np.complex64)


def file_probe(N: int, config: ProbeConfig, arg: str | None = None) -> np.ndarray:
    """A probe read from a dataset, a PtychoPINN NPZ or a Ptychodus product (``file:PATH``), all
    its modes kept: ``(N, N)`` or ``(K, N, N)``."""
    from ptycho.io.datasets import load_probe

    if not arg:
        raise DataError("probe.kind: 'file:' needs a path, e.g. `simulate.probe.kind` = file:probe.npz")
    probe = load_probe(arg)
    if probe.shape[-2:] != (N, N):
        raise DataError(
            f"{arg}: probe is {probe.shape[-2]}×{probe.shape[-1]} but N={N}; "
            f"simulate with `simulate.N` = {probe.shape[-1]} or resample the probe"
        )
    return probe


def mixed_state(probe: np.ndarray, config: ProbeConfig, where: str = "probe") -> np.ndarray:
    """The probe with the modes ``config.modes`` asks for.

    A probe's own modes are kept when ``modes`` is unset or equal to their number; ``modes = K > 1``
    from a one-mode probe derives ``K`` modes (:func:`ptycho.physics.modes.derive_modes`, power
    ratio ``mode_power_ratio``). A one-mode ``(1, N, N)`` probe becomes ``(N, N)``.

    Raises
    ------
    DataError
        Not a probe shape (``(N, N)`` or ``(K ≥ 1, N, N)``).
    ConfigError
        ``modes`` differs from the number of modes of a multi-mode probe.
    """
    probe = np.asarray(probe)
    try:
        have = n_modes(probe)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None
    if probe.ndim == 3 and have == 1:
        probe = probe[0]
    wanted = config.modes
    if wanted is None or wanted == have:
        return probe
    if have > 1:
        raise ConfigError(f"{where}: the probe has {have} modes but `simulate.probe.modes` = {wanted}; leave "
                          "it unset to keep the probe's modes, or give a one-mode probe to derive modes from")
    return derive_modes(probe, wanted, config.mode_power_ratio)


def normalise_probe(probe: np.ndarray, nphotons: float) -> np.ndarray:
    """Scale ``probe`` (any number of modes) so that ``Σ|P|² = nphotons`` (photons per exposure,
    unit object).

    Raises
    ------
    DataError
        If the probe has no energy or is not finite.
    """
    energy = probe_energy(probe)
    if not np.isfinite(energy) or energy <= 0:
        raise DataError("probe: zero or non-finite energy; check the probe definition or file")
    return (probe * np.sqrt(nphotons / energy)).astype(np.complex64)


def probe_energy(probe: np.ndarray) -> float:
    """``Σ|P|²`` in photons (over every mode)."""
    return float(np.sum(np.abs(probe.astype(np.complex128)) ** 2))


def effective_diameter_px(probe: np.ndarray) -> float:
    """Diameter of the disk with the probe's participation area ``(Σ|P|²)² / Σ|P|⁴`` (``|P|²``
    summed over modes)."""
    intensity = summed_intensity(np.asarray(probe).astype(np.complex128))
    area = intensity.sum() ** 2 / max(float((intensity**2).sum()), 1e-300)
    return float(2.0 * np.sqrt(area / np.pi))
