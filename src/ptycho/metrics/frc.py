"""Fourier ring correlation between two images (docs/reconstruction.md#evaluation).

``FRC(k) = Re Σ_{ring k} F1·conj(F2) / sqrt(Σ_{ring k} |F1|² · Σ_{ring k} |F2|²)``

Rings are one frequency-pixel wide (``1/N`` cycles/pixel for an ``N×N`` image): ring ``k`` holds
the spatial frequencies whose radius, in frequency pixels, rounds to ``k``; its centre is at
``k/N`` cycles/pixel. Rings run from DC (ring 0, one point) up to Nyquist (0.5 cycles/pixel); the
corners beyond Nyquist are left out. Non-square images are cropped to their central square,
because a ring is only isotropic when both axes share one frequency spacing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.signal import windows

from ptycho.errors import DataError

THRESHOLD_HALF = 0.5
THRESHOLD_ONE_SEVENTH = 1.0 / 7.0


@dataclass(frozen=True, eq=False)
class FRCResult:
    """An FRC curve.

    Attributes
    ----------
    frequency : (R,) float array
        Ring centres in cycles/pixel, from 0 to 0.5.
    frc : (R,) float array
        Correlation per ring, in [-1, 1]; NaN for a ring where either image has no power.
    n_points : (R,) int array
        Number of Fourier samples in each ring.
    """

    frequency: np.ndarray
    frc: np.ndarray
    n_points: np.ndarray

    def resolution(self, threshold: float) -> float | None:
        """Resolution cut-off (cycles/pixel): the frequency beyond which the curve stays below
        ``threshold``.

        Linearly interpolated between the last ring at or above the threshold and the next ring.
        Rings with NaN correlation (no power) are skipped. Returns 0.0 if no ring reaches the
        threshold and ``None`` if the curve never falls below it up to Nyquist. A dip below the
        threshold at low frequency that recovers (low-frequency phase error, not lost detail) does
        not count here; :meth:`first_drop` reports it.
        """
        valid = np.isfinite(self.frc)  # rings without power (or empty rings) are skipped
        frequency, frc = self.frequency[valid], self.frc[valid]
        above = np.flatnonzero(frc >= threshold)
        if above.size == 0:
            return 0.0
        i = int(above[-1])
        if i == len(frc) - 1:
            return None
        return _interpolate(frequency, frc, i, threshold)

    def first_drop(self, threshold: float) -> float | None:
        """First frequency (cycles/pixel) where the curve falls below ``threshold`` (the classic
        first-crossing reading); ``None`` if it never does."""
        valid = np.isfinite(self.frc)
        frequency, frc = self.frequency[valid], self.frc[valid]
        below = np.flatnonzero(frc < threshold)
        if below.size == 0:
            return None
        i = int(below[0])
        return float(frequency[0]) if i == 0 else _interpolate(frequency, frc, i - 1, threshold)

    def resolution_px(self, threshold: float) -> float | None:
        """Resolution in pixels, ``1/frequency`` of :meth:`resolution`; ``None`` if not crossed or 0."""
        f = self.resolution(threshold)
        return None if f is None or f <= 0 else 1.0 / f

    @property
    def cutoff_half(self) -> float | None:
        """FRC-0.5 crossing in cycles/pixel (``None`` if never crossed)."""
        return self.resolution(THRESHOLD_HALF)

    @property
    def cutoff_one_seventh(self) -> float | None:
        """FRC-1/7 crossing in cycles/pixel (``None`` if never crossed)."""
        return self.resolution(THRESHOLD_ONE_SEVENTH)

    @property
    def cutoff_half_px(self) -> float | None:
        """FRC-0.5 resolution in pixels."""
        return self.resolution_px(THRESHOLD_HALF)

    @property
    def cutoff_one_seventh_px(self) -> float | None:
        """FRC-1/7 resolution in pixels."""
        return self.resolution_px(THRESHOLD_ONE_SEVENTH)


def _interpolate(frequency: np.ndarray, frc: np.ndarray, i: int, threshold: float) -> float:
    """Frequency where the line from ring ``i`` (≥ threshold) to ring ``i+1`` (< threshold) crosses."""
    f0, f1, c0, c1 = frequency[i], frequency[i + 1], frc[i], frc[i + 1]
    return float(f0 + (c0 - threshold) / (c0 - c1) * (f1 - f0))


def _central_square(image: np.ndarray) -> np.ndarray:
    n = min(image.shape)
    y0 = (image.shape[0] - n) // 2
    x0 = (image.shape[1] - n) // 2
    return image[y0 : y0 + n, x0 : x0 + n]


def fourier_ring_correlation(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_rings: int | None = None,
    window: Literal["hann"] | None = None,
) -> FRCResult:
    """Fourier ring correlation of two real or complex images.

    Parameters
    ----------
    a, b : (H, W) array, real or complex
        Images of the same shape; if ``H != W`` both are cropped to the central ``min(H, W)``
        square.
    n_rings : int, optional
        Number of rings spanning 0 … 0.5 cycles/pixel. Default ``N//2 + 1`` (width one frequency
        pixel). Otherwise rings have width ``(N//2)/(n_rings − 1)`` frequency pixels.
    window : {None, "hann"}
        Apodisation applied to both images before the FFT (default none). ``"hann"`` suppresses
        the edge discontinuity streaks of non-periodic images.

    Returns
    -------
    FRCResult
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or a.shape != b.shape:
        raise DataError(f"FRC needs two 2-D images of one shape, got {a.shape} and {b.shape}")
    a, b = _central_square(a), _central_square(b)
    n = a.shape[0]
    if n < 2:
        raise DataError(f"FRC needs images of at least 2×2 pixels, got {a.shape}")
    half = n // 2
    n_rings = half + 1 if n_rings is None else int(n_rings)
    if n_rings < 2:
        raise ValueError(f"n_rings must be at least 2, got {n_rings}")
    if window == "hann":
        w1 = windows.hann(n, sym=False)
        a = a * np.outer(w1, w1)
        b = b * np.outer(w1, w1)
    elif window is not None:
        raise ValueError(f"window must be None or 'hann', got {window!r}")

    f1 = np.fft.fft2(a)
    f2 = np.fft.fft2(b)
    freq = np.fft.fftfreq(n) * n  # frequency pixels
    radius = np.hypot(freq[:, None], freq[None, :])
    width = half / (n_rings - 1)
    ring = np.floor(radius / width + 0.5).astype(np.int64).ravel()
    keep = ring < n_rings
    ring = ring[keep]

    def ring_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(ring, weights=values.ravel()[keep], minlength=n_rings)

    cross = ring_sum(np.real(f1 * np.conj(f2)))
    power1 = ring_sum(np.abs(f1) ** 2)
    power2 = ring_sum(np.abs(f2) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        frc = cross / np.sqrt(power1 * power2)
    n_points = np.bincount(ring, minlength=n_rings)
    frequency = np.arange(n_rings) * width / n
    return FRCResult(frequency=frequency, frc=frc, n_points=n_points)
