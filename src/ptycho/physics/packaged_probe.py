"""Probes shipped with the package (``src/ptycho/resources``), resampled to any pattern size.

``aberrated`` (``probe.kind = "aberrated"``): a structured, aberrated ring-shaped probe — annular
aperture, defocus + astigmatism + coma + trefoil wavefront, Fresnel edge fringes and a few per cent
of amplitude structure — stored once at ``N = 64`` in ``probe_aberrated.npz`` (key ``probe``,
complex64). ``resources/make_probe_aberrated.py`` is the script that wrote it.

**Resampling** (:func:`resample_probe`) keeps the probe's size *relative to the window*: the
``N0×N0`` probe is read as samples of one band-limited field over the window, and the ``N×N``
result samples that same field on a coarser (``N < N0``) or finer (``N > N0``) grid. It is done in
Fourier space — crop (``N < N0``, an ideal low-pass) or zero-pad (``N > N0``) the centred spectrum
— after a sub-pixel Fourier shift that keeps the window centre ``(N−1)/2`` (docs/conventions.md#windows) on the old
centre ``(N0−1)/2``. At ``N = 32`` the crop drops 0.2 % of the probe's energy. The probe is then
normalised to the photon budget by the simulation, like every probe.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from ptycho.errors import DataError

PACKAGED_PROBES = {"aberrated": "probe_aberrated.npz"}
"""Probe kind → file under ``ptycho/resources``."""


def load_packaged_probe(name: str) -> np.ndarray:
    """The stored probe ``name`` (key ``probe``), complex64, as shipped (unnormalised size ``N0``)."""
    try:
        filename = PACKAGED_PROBES[name]
    except KeyError:
        raise DataError(f"no packaged probe '{name}'; available: {', '.join(sorted(PACKAGED_PROBES))}") from None
    resource = resources.files("ptycho").joinpath("resources", filename)
    try:
        with resource.open("rb") as fh, np.load(fh, allow_pickle=False) as data:
            probe = np.asarray(data["probe"])
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"packaged probe {filename}: cannot read ({exc}); reinstall ptycho") from exc
    if probe.ndim != 2 or probe.shape[0] != probe.shape[1] or not np.all(np.isfinite(probe)):
        raise DataError(f"packaged probe {filename}: expected a finite square 2-D array, got shape {probe.shape}")
    return probe.astype(np.complex64)


def resample_probe(probe: np.ndarray, N: int) -> np.ndarray:
    """Resample a square probe to ``N×N`` by Fourier cropping/zero-padding (module docstring).

    Parameters
    ----------
    probe : (N0, N0) complex
    N : int, the new side (even or odd)

    Returns
    -------
    (N, N) complex64, same field relative to the window; not normalised.
    """
    probe = np.asarray(probe, dtype=np.complex128)
    N0 = probe.shape[0]
    if N == N0:
        return probe.astype(np.complex64)
    if N < 1:
        raise ValueError(f"probe size must be positive (got {N})")
    r = N0 / N  # old pixels per new pixel
    # New sample j sits at old coordinate r·j + (r−1)/2 (centres aligned): shift by (r−1)/2 first.
    shift = (r - 1) / 2.0
    f = np.fft.fftfreq(N0)
    ramp = np.exp(2j * np.pi * shift * (f[:, None] + f[None, :]))
    spectrum = np.fft.fftshift(np.fft.fft2(probe) * ramp)
    out = np.zeros((N, N), np.complex128)
    c0, c1 = N0 // 2, N // 2  # DC index of a centred spectrum
    half = min(N0, N) // 2
    lo0, lo1 = c0 - half, c1 - half
    size = min(N0, N)
    out[lo1:lo1 + size, lo1:lo1 + size] = spectrum[lo0:lo0 + size, lo0:lo0 + size]
    return np.fft.ifft2(np.fft.ifftshift(out)).astype(np.complex64)


def aberrated_probe(N: int, config: object = None, arg: str | None = None) -> np.ndarray:
    """The packaged aberrated probe at pattern size ``N`` (a :class:`~ptycho.registry.ProbeSpec`
    maker; ``config`` and ``arg`` are unused: the probe is fixed)."""
    return resample_probe(load_packaged_probe("aberrated"), N)
