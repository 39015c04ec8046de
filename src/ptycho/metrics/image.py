"""Metrics between two real images: MAE, MSE, PSNR, SSIM, MS-SSIM, and the earlier conventions (docs/reconstruction.md#evaluation).

Headline metrics use the **truth's own range** ``truth.max() − truth.min()`` as the data range, so
they are comparable across objects of different contrast. The earlier implementation's conventions
(``psnr255``, :func:`legacy_phase_ssim`, :func:`mean_ratio_rescale`) are kept for comparison with
old numbers only.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from ptycho.errors import DataError

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Per-scale exponents of Wang, Simoncelli & Bovik (2003), finest scale first."""

SSIM_WIN_SIZE = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03
LEGACY_PEAK = 255.0


def _as_real_pair(recon: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    recon = np.asarray(recon)
    truth = np.asarray(truth)
    if np.iscomplexobj(recon) or np.iscomplexobj(truth):
        raise DataError("image metrics need real images (amplitude or phase), got a complex array")
    if recon.ndim != 2 or recon.shape != truth.shape:
        raise DataError(
            f"image metrics need two 2-D images of one shape, got {recon.shape} and {truth.shape}"
        )
    if min(recon.shape) < SSIM_WIN_SIZE:
        raise DataError(
            f"image metrics need images of at least {SSIM_WIN_SIZE}×{SSIM_WIN_SIZE} pixels, "
            f"got {recon.shape}"
        )
    return recon.astype(np.float64), truth.astype(np.float64)


def _ssim_terms(x: np.ndarray, y: np.ndarray, data_range: float) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure term, computed exactly as skimage's default SSIM.

    7×7 uniform window, sample covariance, K1=0.01, K2=0.03, a border of 3 px excluded from the
    mean. Returns ``(mean(l·cs), mean(cs))``.
    """
    def filt(a: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(a, size=SSIM_WIN_SIZE)

    n_window = SSIM_WIN_SIZE**2
    cov_norm = n_window / (n_window - 1)
    ux, uy = filt(x), filt(y)
    vx = cov_norm * (filt(x * x) - ux * ux)
    vy = cov_norm * (filt(y * y) - uy * uy)
    vxy = cov_norm * (filt(x * y) - ux * uy)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    luminance = (2 * ux * uy + c1) / (ux**2 + uy**2 + c1)
    contrast_structure = (2 * vxy + c2) / (vx + vy + c2)
    pad = (SSIM_WIN_SIZE - 1) // 2
    inner = (slice(pad, -pad), slice(pad, -pad))
    return float(np.mean((luminance * contrast_structure)[inner])), float(np.mean(contrast_structure[inner]))


def _average_pool2(a: np.ndarray) -> np.ndarray:
    h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
    a = a[:h, :w]
    return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])


def ms_ssim_scales(shape: tuple[int, int]) -> int:
    """Number of MS-SSIM scales used for an image: the most (≤ 5) whose coarsest level is ≥ 7 px.

    Scale ``s`` (1-based) has side ``floor(side / 2**(s−1))``, so ``s`` scales need
    ``min(shape) ≥ 7·2**(s−1)``: 5 scales from 112 px, 1 scale below 14 px.
    """
    side = min(shape)
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and side // 2**scales >= SSIM_WIN_SIZE:
        scales += 1
    return scales


def ms_ssim(recon: np.ndarray, truth: np.ndarray, *, data_range: float) -> float:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003).

    ``MS-SSIM = max(SSIM_M, 0)**w_M · Π_{j<M} max(CS_j, 0)**w_j`` where ``CS_j`` is the mean
    contrast-structure term at scale ``j``, ``SSIM_M`` the full SSIM at the coarsest scale ``M``, and
    each coarser scale is a 2×2 average pooling of the previous one (an odd last row/column is
    dropped). ``M`` is given by :func:`ms_ssim_scales`; the first ``M`` standard weights are
    renormalised to sum to 1. With one scale this equals skimage's SSIM (clipped at 0).

    Parameters
    ----------
    recon, truth : (H, W) float array
    data_range : float
        Range used for the stabilising constants at every scale.
    """
    x, y = _as_real_pair(recon, truth)
    scales = ms_ssim_scales(x.shape)
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales]) / np.sum(MS_SSIM_WEIGHTS[:scales])
    value = 1.0
    for j, weight in enumerate(weights):
        ssim_j, cs_j = _ssim_terms(x, y, data_range)
        term = ssim_j if j == scales - 1 else cs_j
        value *= max(term, 0.0) ** weight
        x, y = _average_pool2(x), _average_pool2(y)
    return float(value)


def psnr255(recon: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in the earlier implementation's 255-peak convention.

    Both images are scaled by ``255 / truth.max()`` (``recon·255/truth.max()`` against
    ``truth·255/truth.max()``) and ``PSNR = 10·log10(255² / mean((recon_s − truth_s)²))``. NaN if
    ``truth.max() ≤ 0``; ``inf`` for identical images. Not comparable across objects of different
    contrast — kept only to compare with old numbers.
    """
    x, y = _as_real_pair(recon, truth)
    peak = y.max()
    if peak <= 0:
        return float("nan")
    mse = np.mean((x * LEGACY_PEAK / peak - y * LEGACY_PEAK / peak) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(LEGACY_PEAK**2 / mse))


def image_metrics(
    recon: np.ndarray, truth: np.ndarray, *, data_range: float | None = None
) -> dict[str, float]:
    """MAE, MSE, PSNR, SSIM, MS-SSIM and the legacy ``psnr255`` of a real image against its truth.

    Parameters
    ----------
    recon, truth : (H, W) float array
        Same shape, at least 7×7. Computed in float64.
    data_range : float, optional
        Range for PSNR/SSIM/MS-SSIM; default ``truth.max() − truth.min()``. If that range is 0
        (a constant truth), ``psnr``, ``ssim`` and ``ms_ssim`` are NaN.

    Returns
    -------
    dict
        ``mae``, ``mse``, ``psnr`` (dB, ``inf`` for identical images), ``ssim`` (skimage default
        window), ``ms_ssim``, ``psnr255`` (see :func:`psnr255`). Values may be NaN/inf; JSON
        writers must map those to null.
    """
    x, y = _as_real_pair(recon, truth)
    data_range = float(y.max() - y.min()) if data_range is None else float(data_range)
    mse = float(mean_squared_error(y, x))
    out = {"mae": float(np.mean(np.abs(x - y))), "mse": mse}
    if data_range > 0:
        psnr = float("inf") if mse == 0 else peak_signal_noise_ratio(y, x, data_range=data_range)
        out["psnr"] = float(psnr)
        out["ssim"] = float(structural_similarity(y, x, data_range=data_range))
        out["ms_ssim"] = ms_ssim(x, y, data_range=data_range)
    else:
        out["psnr"] = out["ssim"] = out["ms_ssim"] = float("nan")
    out["psnr255"] = psnr255(x, y)
    return out


def legacy_phase_ssim(recon_phase: np.ndarray, truth_phase: np.ndarray) -> float:
    """SSIM of phases in the earlier implementation's convention — **inflated for weak phase objects**.

    Both phases are mapped ``φ → (φ + π) / (2π)`` and compared with ``data_range = 1``. Because the
    stabilising constants then scale with 2π rather than with the object's actual phase range, a
    weak phase object (range ≪ 2π) scores close to 1 even with substantial errors. Report it only
    beside the headline phase SSIM of :func:`image_metrics`.

    Parameters
    ----------
    recon_phase, truth_phase : (H, W) float array
        Phases in radians, nominally in [−π, π].
    """
    x, y = _as_real_pair(recon_phase, truth_phase)
    return float(structural_similarity((y + np.pi) / (2 * np.pi), (x + np.pi) / (2 * np.pi), data_range=1.0))


def mean_ratio_rescale(recon_amp: np.ndarray, truth_amp: np.ndarray) -> np.ndarray:
    """Rescale a reconstructed amplitude to the truth's mean (the earlier implementation's rescale).

    Parameters
    ----------
    recon_amp, truth_amp : (H, W) float array

    Returns
    -------
    (H, W) float64 array
        ``recon_amp · mean(truth_amp) / mean(recon_amp)``.
    """
    x, y = np.asarray(recon_amp, np.float64), np.asarray(truth_amp, np.float64)
    recon_mean = x.mean()
    if not np.isfinite(recon_mean) or recon_mean == 0:
        raise DataError(f"cannot rescale a reconstructed amplitude with mean {recon_mean}")
    return x * (y.mean() / recon_mean)
