"""Detector realities: valid-pixel masks, bad-pixel detection, the photon gauge of measured data,
and where the zero frequency of a pattern lies.

**Mask polarity** (docs/measured-data.md#masks). A mask marks the pixels that were
*measured*: ``True`` (or 1) = valid, as pty-chi's ``valid_pixel_mask``. It selects the pixels of a
loss directly and needs no inversion at the point of use; formats that flag *bad* pixels (CXI's
bit field, Ptychodus' ``bad_pixels``) are inverted when read.

**Photon gauge.** The probe carries ``Σ|P|² =`` expected photons per pattern for a unit object
(docs/conventions.md#photon-gauge). For measured data that number is estimated from the counts
(:func:`photon_estimate`): the median over patterns of each pattern's total over valid pixels,
divided by the share of the probe's far-field power those pixels receive. Masked pixels never
enter the totals, pixels that :func:`find_bad_pixels` flags (hot, saturated or dead) neither, and
a few patterns with cosmic rays or missing frames cannot move a median.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptycho.errors import DataError

__all__ = [
    "DC_RATIO", "DEAD_NEIGHBOUR_COUNTS", "HOT_FACTOR", "DcDetection", "detect_dc", "find_bad_pixels",
    "neighbour_extremes", "photon_estimate", "valid_power_fraction",
]

HOT_FACTOR = 50.0
"""A pixel whose median over patterns exceeds this many times the largest median of its eight
neighbours is hot or saturated: an oversampled far-field pattern varies smoothly at the pixel
scale (its autocorrelation fits in half the window), so no real speckle stands this far alone."""
HOT_MIN_COUNTS = 10.0
"""…and holds at least this many counts (a lone count on a dark background is no hot pixel)."""
DEAD_NEIGHBOUR_COUNTS = 5.0
"""A pixel whose median is 0 while every neighbour's median is at least this is dead: a Poisson
pixel of mean ≥ 5 reads 0 in fewer than 1 % of exposures, so its median cannot be 0."""
DC_RATIO = 4.0
"""Mean valid counts near the array centre vs near its corners beyond which the zero frequency
is taken to be at the centre (or, inverted, at the corner); anything between is ambiguous."""
DC_RADIUS_FRACTION = 1 / 8
"""Radius of the discs (at the centre and at the four corners) compared, as a fraction of N."""
DC_MIN_VALID_FRACTION = 0.25
"""A disc with fewer valid pixels than this (a beamstop over the centre) cannot testify: the
patterns are then ambiguous rather than wrongly called DC-at-corner."""


def neighbour_extremes(image: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the largest and smallest value among its valid 8-neighbours (edges clipped).

    Parameters
    ----------
    image : (H, W) float
    valid : (H, W) bool

    Returns
    -------
    high, low : (H, W) float64; ``high = -inf`` and ``low = +inf`` where no neighbour is valid.
    """
    H, W = image.shape
    hi = np.pad(np.where(valid, image, -np.inf).astype(np.float64), 1, constant_values=-np.inf)
    lo = np.pad(np.where(valid, image, np.inf).astype(np.float64), 1, constant_values=np.inf)
    high = np.full((H, W), -np.inf)
    low = np.full((H, W), np.inf)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == dx == 0:
                continue
            high = np.maximum(high, hi[1 + dy:1 + dy + H, 1 + dx:1 + dx + W])
            low = np.minimum(low, lo[1 + dy:1 + dy + H, 1 + dx:1 + dx + W])
    return high, low


def find_bad_pixels(patterns: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hot (or saturated) and dead pixels among the valid ones of a sample of patterns.

    Parameters
    ----------
    patterns : (k, N, N) float, counts (any layout; neighbours are array neighbours)
    valid : (N, N) bool

    Returns
    -------
    hot, dead : (N, N) bool
    """
    median = np.median(np.asarray(patterns, np.float64), axis=0)
    high, low = neighbour_extremes(median, valid)
    hot = valid & (median >= HOT_MIN_COUNTS) & (median > HOT_FACTOR * np.maximum(high, 0.0))
    dead = valid & (median == 0) & np.isfinite(low) & (low >= DEAD_NEIGHBOUR_COUNTS)
    return hot, dead


def valid_power_fraction(probe: np.ndarray | None, valid: np.ndarray) -> float:
    """Share of a probe's far-field power on the valid pixels (1 without a probe).

    Parameters
    ----------
    probe : (N, N) or (K, N, N) complex or None, √counts (the modes' intensities add)
    valid : (N, N) bool, DC-centred like the patterns
    """
    if probe is None or valid.all():
        return 1.0
    spectrum = np.fft.fftshift(np.fft.fft2(np.asarray(probe, np.complex128), norm="ortho"), axes=(-2, -1))
    far = np.abs(spectrum) ** 2
    total = float(far.sum())
    return float(far[..., valid].sum()) / total if total > 0 else 1.0


def photon_estimate(patterns: np.ndarray, valid: np.ndarray, probe: np.ndarray | None = None) -> float:
    """Expected photons per pattern for a unit object, from measured counts (module docstring).

    Parameters
    ----------
    patterns : (k, N, N) float, counts, DC-centred (a sample of the scan is enough)
    valid : (N, N) bool, the pixels to count (mask and bad pixels already removed)
    probe : (N, N) or (K, N, N) complex, optional
        Its far field gives the share of the photons the invalid pixels would have received.

    Raises
    ------
    DataError
        No valid pixel, or no counts on the valid pixels.
    """
    if not valid.any():
        raise DataError("no valid detector pixel to count photons on; check the mask")
    totals = np.asarray(patterns, np.float64)[:, valid].sum(axis=1)
    level = float(np.median(totals))
    if not level > 0:
        raise DataError("the valid detector pixels hold no counts (median total 0); cannot estimate the "
                        "photons per pattern")
    return level / max(valid_power_fraction(probe, valid), 1e-12)


@dataclass(frozen=True)
class DcDetection:
    """Where the zero frequency of the patterns lies: ``layout`` ``"centre"``, ``"corner"`` or
    ``None`` (ambiguous), from ``ratio`` = mean counts near the centre / near the corners."""

    layout: str | None
    ratio: float


def detect_dc(mean_pattern: np.ndarray, valid: np.ndarray) -> DcDetection:
    """Tell DC-centred from DC-at-corner patterns by where the mean pattern's counts concentrate.

    Parameters
    ----------
    mean_pattern : (H, W) float, the patterns' mean, as stored
    valid : (H, W) bool, in the same layout

    Returns
    -------
    DcDetection
        ``"centre"`` when the valid counts near ``(H//2, W//2)`` exceed those near the corners
        ``DC_RATIO``-fold, ``"corner"`` for the reverse, else ``None`` (also when either disc is
        mostly masked: ratio NaN).
    """
    H, W = mean_pattern.shape
    yy, xx = np.mgrid[0:H, 0:W]
    radius = max(DC_RADIUS_FRACTION * min(H, W), 1.0)
    near_centre = np.hypot(yy - H // 2, xx - W // 2) <= radius
    corner_dy = np.minimum(yy, H - yy)  # distance to the nearest corner, wrapping like an FFT
    corner_dx = np.minimum(xx, W - xx)
    near_corner = np.hypot(corner_dy, corner_dx) <= radius

    def level(region: np.ndarray) -> float:
        use = region & valid
        if use.sum() < DC_MIN_VALID_FRACTION * region.sum():
            return np.nan
        return float(mean_pattern[use].mean())

    centre, corner = level(near_centre), level(near_corner)
    if np.isnan(centre) or np.isnan(corner):
        return DcDetection(None, np.nan)
    ratio = centre / corner if corner > 0 else (np.inf if centre > 0 else 1.0)
    if ratio >= DC_RATIO:
        return DcDetection("centre", ratio)
    if ratio <= 1 / DC_RATIO:
        return DcDetection("corner", ratio)
    return DcDetection(None, ratio)
