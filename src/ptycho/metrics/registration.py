"""Sub-pixel registration and phase-gauge alignment of a reconstruction to a ground truth (docs/reconstruction.md#evaluation).

A ptychographic reconstruction is only defined up to a translation, a global phase offset and
(when the probe position reference drifts) a linear phase ramp. These functions remove those
ambiguities before any metric is computed.

Conventions: arrays are ``(y, x)``; shifts are ``(dy, dx)`` in pixels, positive meaning the content
moves towards larger indices; phases are in radians.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage
from scipy.signal import windows
from skimage.registration import phase_cross_correlation

from ptycho.errors import DataError

RegisterOn = Literal["complex", "amplitude", "phase"]

REGISTRATION_PASSES = 2
"""Windowed registration passes: the second removes the bias of the window; more change nothing."""


def _registration_image(image: np.ndarray, on: RegisterOn) -> np.ndarray:
    if on == "complex":
        return np.asarray(image)
    if on == "amplitude":
        return np.abs(image).astype(np.float64)
    if on == "phase":
        # exp(i·φ) carries the phase without the 2π jumps a wrapped phase map would have.
        return np.exp(1j * np.angle(image))
    raise ValueError(f"on must be 'complex', 'amplitude' or 'phase', got {on!r}")


def _hann2d(shape: tuple[int, int]) -> np.ndarray:
    return np.outer(windows.hann(shape[0]), windows.hann(shape[1]))


def estimate_shift(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    upsample: int = 100,
    on: RegisterOn = "complex",
    window: Literal["hann"] | None = "hann",
    normalization: Literal["phase"] | None = None,
) -> tuple[float, float]:
    """Estimate the sub-pixel translation that registers ``moving`` onto ``reference``.

    Uses :func:`skimage.registration.phase_cross_correlation` with the upsampled-DFT refinement.

    Parameters
    ----------
    reference, moving : (H, W) array, real or complex
        Images of the same shape.
    upsample : int
        Upsampling factor; the shift is resolved to ``1/upsample`` pixel.
    on : {"complex", "amplitude", "phase"}
        What is correlated. ``"complex"`` (default) cross-correlates the complex images, which uses
        amplitude and phase contrast together and is the most robust for ptychographic objects.
        ``"amplitude"`` uses ``|image|``; ``"phase"`` uses ``exp(i·angle(image))``.
    window : {"hann", None}
        ``"hann"`` (default): subtract each image's mean and apodise both with a 2-D Hann window
        before correlating, so the wrap-around edges of non-periodic crops do not pull the peak
        towards zero shift (a 0.1–0.2 px bias otherwise); a second pass then re-estimates the
        residual after Fourier-shifting ``moving``, removing the bias of a window fixed in the
        reference frame. ``None``: one plain pass, exact for periodic images.
    normalization : {None, "phase"}
        ``None`` (default): plain cross-correlation, robust to noise. ``"phase"``: whitened
        phase correlation, sharper peak but sensitive to noise and to edges.

    Returns
    -------
    (dy, dx) : tuple of float
        Shift in pixels such that ``apply_shift(moving, (dy, dx))`` aligns with ``reference``.
    """
    reference = np.asarray(reference)
    moving = np.asarray(moving)
    if reference.ndim != 2 or reference.shape != moving.shape:
        raise DataError(
            f"cannot register images of shapes {reference.shape} and {moving.shape}; "
            "expected two 2-D images of the same shape"
        )
    if window not in ("hann", None):
        raise ValueError(f"window must be 'hann' or None, got {window!r}")
    ref = _registration_image(reference, on)
    mov = _registration_image(moving, on)
    if window is None:
        shift, _, _ = phase_cross_correlation(ref, mov, upsample_factor=upsample, normalization=normalization)
        return float(shift[0]), float(shift[1])
    apodise = _hann2d(ref.shape)
    ref = (ref - ref.mean()) * apodise
    total = np.zeros(2)
    for _ in range(REGISTRATION_PASSES):
        shifted = apply_shift(mov, tuple(total))
        shift, _, _ = phase_cross_correlation(
            ref, (shifted - shifted.mean()) * apodise, upsample_factor=upsample, normalization=normalization
        )
        total += shift
    return float(total[0]), float(total[1])


def apply_shift(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """Translate an image by an exact (periodic, band-limited) Fourier shift.

    Parameters
    ----------
    image : (H, W) array, real or complex
    shift : (dy, dx)
        Shift in pixels; content moves towards larger indices for positive values.

    Returns
    -------
    (H, W) array
        Shifted image; real input gives real output (the imaginary residue is dropped), complex
        gives complex. Pixels within ``ceil(|shift|)`` of an edge hold wrapped-around content.
    """
    image = np.asarray(image)
    shifted = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(image), shift))
    if np.iscomplexobj(image):
        return shifted.astype(image.dtype, copy=False)
    out_dtype = image.dtype if np.issubdtype(image.dtype, np.floating) else np.float64
    return shifted.real.astype(out_dtype, copy=False)


def _centred_coords(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.meshgrid(
        np.arange(shape[0]) - (shape[0] - 1) / 2,
        np.arange(shape[1]) - (shape[1] - 1) / 2,
        indexing="ij",
    )
    return yy, xx


def estimate_phase_offset(
    recon: np.ndarray,
    truth: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    ramp: bool = False,
) -> tuple[float, float, float]:
    """Fit the phase ``offset + slope_y·y' + slope_x·x'`` that maps ``recon`` onto ``truth``.

    ``y' = y − (H−1)/2`` and ``x' = x − (W−1)/2`` are centred pixel coordinates.

    Parameters
    ----------
    recon, truth : (H, W) complex array
    mask : (H, W) bool array, optional
        Pixels used for the fit (default: all).
    ramp : bool
        Also fit a linear phase ramp. The slopes are first estimated wrap-free from the angle of
        the summed products of neighbouring pixels of ``z = truth·conj(recon)``, then refined by
        least squares on the (now small, unwrapped) residual phase ``angle(z·exp(−i·ramp))``.

    Returns
    -------
    (offset, slope_y, slope_x) : tuple of float
        Radians, radians/pixel, radians/pixel. The offset is ``angle(Σ truth·conj(recon))`` over
        the mask after the ramp is removed, exact for a constant offset. Slopes are 0 if not ``ramp``.
    """
    recon = np.asarray(recon)
    truth = np.asarray(truth)
    if recon.shape != truth.shape or recon.ndim != 2:
        raise DataError(
            f"phase alignment needs two 2-D images of one shape, got {recon.shape} and {truth.shape}"
        )
    weight = np.ones(recon.shape, bool) if mask is None else np.asarray(mask, bool)
    if not weight.any():
        raise DataError("phase alignment mask selects no pixels")
    z = np.where(weight, truth * np.conj(recon), 0)
    slope_y = slope_x = 0.0
    if ramp:
        yy, xx = _centred_coords(z.shape)
        # Angle of the summed neighbour products: the mean phase gradient, immune to 2π wraps.
        slope_y = float(np.angle(np.sum(z[1:, :] * np.conj(z[:-1, :]))))
        slope_x = float(np.angle(np.sum(z[:, 1:] * np.conj(z[:, :-1]))))
        residual = z * np.exp(-1j * (slope_y * yy + slope_x * xx))
        residual = residual * np.exp(-1j * np.angle(np.sum(residual)))
        sel = weight & (np.abs(z) > 0)
        design = np.stack([np.ones(sel.sum()), yy[sel], xx[sel]], axis=1)
        coef, *_ = np.linalg.lstsq(design, np.angle(residual[sel]), rcond=None)
        slope_y += float(coef[1])
        slope_x += float(coef[2])
        z = z * np.exp(-1j * (slope_y * yy + slope_x * xx))
    offset = float(np.angle(np.sum(z)))
    return offset, slope_y, slope_x


def remove_phase_offset(
    recon: np.ndarray,
    truth: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    ramp: bool = False,
) -> np.ndarray:
    """Remove the global phase offset (and optionally a linear phase ramp) of ``recon`` relative to ``truth``.

    Parameters
    ----------
    recon, truth : (H, W) complex array
    mask : (H, W) bool array, optional
        Pixels used for the fit; the correction is applied everywhere.
    ramp : bool
        Also fit and remove a linear phase ramp (see :func:`estimate_phase_offset`).

    Returns
    -------
    (H, W) complex array
        ``recon · exp(i·(offset + slope_y·y' + slope_x·x'))``, same dtype as ``recon``.
    """
    offset, slope_y, slope_x = estimate_phase_offset(recon, truth, mask=mask, ramp=ramp)
    yy, xx = _centred_coords(np.shape(recon))
    correction = np.exp(1j * (offset + slope_y * yy + slope_x * xx))
    recon = np.asarray(recon)
    out = recon * correction
    return out.astype(recon.dtype, copy=False) if np.iscomplexobj(recon) else out
