"""Compare a reconstructed complex object with its ground truth (docs/reconstruction.md#evaluation)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ptycho.errors import DataError
from ptycho.metrics.frc import THRESHOLD_HALF, FRCResult, fourier_ring_correlation
from ptycho.metrics.image import image_metrics, legacy_phase_ssim, mean_ratio_rescale
from ptycho.metrics.registration import RegisterOn, apply_shift, estimate_shift, remove_phase_offset

MAX_SHIFT_FRACTION = 0.125
"""A registration shift beyond this fraction of the smaller image side is rejected: the
reconstruction does not resemble the truth (an untrained model, a wrong dataset), so the shift is
noise, and cutting its margin would leave little to score. It is then scored unregistered."""
MIN_SIDE_PX = 16
"""Smallest image side scored after support and margin cropping."""


@dataclass(frozen=True, eq=False)
class ComparisonResult:
    """The outcome of :func:`compare_objects`.

    Attributes
    ----------
    shift : (dy, dx)
        Shift in pixels applied to the reconstruction to register it to the truth.
    recon_aligned, truth_aligned : (h, w) complex array
        The scored images: registered, margin-cropped, phase-aligned reconstruction and the
        matching crop of the truth.
    metrics : dict
        ``{"amplitude": {...}, "amplitude_rescaled": {...}, "phase": {...}, "frc": {...},
        "amplitude_mean": {"recon", "truth", "ratio"}, "phase_ssim_legacy": float,
        "shift_px": [dy, dx]}``; per-image dicts as :func:`~ptycho.metrics.image.image_metrics`.
    frc : FRCResult
        FRC of the complex aligned images.
    """

    shift: tuple[float, float]
    recon_aligned: np.ndarray
    truth_aligned: np.ndarray
    metrics: dict[str, Any]
    frc: FRCResult


def _check_inputs(recon: np.ndarray, truth: np.ndarray) -> None:
    if recon.ndim != 2 or truth.ndim != 2:
        raise DataError(f"comparison needs 2-D objects, got shapes {recon.shape} and {truth.shape}")
    if recon.shape != truth.shape:
        raise DataError(
            f"reconstruction shape {recon.shape} differs from ground-truth shape {truth.shape}; "
            "crop both to the scanned area first"
        )
    if recon.size == 0:
        raise DataError(f"cannot compare empty images (shape {recon.shape})")
    for name, image in (("reconstruction", recon), ("ground truth", truth)):
        bad = int(np.count_nonzero(~np.isfinite(image)))
        if bad:
            raise DataError(f"{name} contains {bad} NaN/Inf pixels")


def _check_size(shape: tuple[int, ...], stage: str) -> None:
    if min(shape) < MIN_SIDE_PX:
        raise DataError(
            f"image is {shape[0]}×{shape[1]} px after {stage}; "
            f"at least {MIN_SIDE_PX}×{MIN_SIDE_PX} is needed"
        )


def _support_bbox(support: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, slice]:
    if support.shape != shape:
        raise DataError(f"support mask shape {support.shape} differs from image shape {shape}")
    rows = np.flatnonzero(support.any(axis=1))
    cols = np.flatnonzero(support.any(axis=0))
    if rows.size == 0:
        raise DataError("support mask selects no pixels")
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _none_if_nan(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def compare_objects(
    recon: np.ndarray,
    truth: np.ndarray,
    *,
    support: np.ndarray | None = None,
    register: bool = True,
    upsample: int = 100,
    phase_ramp: bool = False,
    register_on: RegisterOn = "complex",
) -> ComparisonResult:
    """Register a reconstruction to its ground truth and compute every metric of docs/reconstruction.md#evaluation.

    Steps: crop both to the bounding box of ``support``; estimate the sub-pixel shift
    (:func:`~ptycho.metrics.registration.estimate_shift` on ``register_on``), Fourier-shift the
    reconstruction and crop ``ceil(max|shift|) + 1`` px from every side of both images so that
    wrapped-around pixels are never scored; remove the global phase offset (and, with
    ``phase_ramp``, a linear ramp), fitted over the support; then score amplitude (absolute and
    after :func:`~ptycho.metrics.image.mean_ratio_rescale`), phase and FRC.

    The reconstructed phase is scored on the branch nearest the truth's,
    ``angle(truth) + angle(recon·conj(truth))``, so a 2π wrap is not counted as an error; the
    legacy phase SSIM uses the plain wrapped ``angle`` of both, as the earlier implementation did.

    Parameters
    ----------
    recon, truth : (H, W) complex array
        Reconstructed and true object over the same (scanned) region.
    support : (H, W) bool array, optional
        Pixels to score; both images are cropped to its bounding box and the phase offset is fitted
        on it.
    register : bool
        Estimate and undo a translation (default). If False the shift is (0, 0) and no margin is cut.
        A shift beyond :data:`MAX_SHIFT_FRACTION` of the image is rejected with a warning (unregistered).
    upsample : int
        Registration precision is ``1/upsample`` px.
    phase_ramp : bool
        Also remove a linear phase ramp.
    register_on : {"complex", "amplitude", "phase"}
        What the registration correlates.

    Returns
    -------
    ComparisonResult

    Raises
    ------
    DataError
        Mismatched shapes, empty images, NaN/Inf pixels, or fewer than 16×16 px left to score.
    """
    recon = np.asarray(recon)
    truth = np.asarray(truth)
    _check_inputs(recon, truth)
    recon, truth, mask = _crop_to_support(recon.astype(np.complex128), truth.astype(np.complex128), support)
    shift = (0.0, 0.0)
    if register:
        recon, truth, mask, shift = _register(recon, truth, mask, upsample=upsample, on=register_on)
    if not mask.any():
        raise DataError("support mask selects no pixels after the registration margin is cut")
    recon = remove_phase_offset(recon, truth, mask=mask, ramp=phase_ramp)
    frc = fourier_ring_correlation(recon, truth)
    metrics = _score(recon, truth, frc)
    metrics["shift_px"] = [shift[0], shift[1]]
    return ComparisonResult(shift=shift, recon_aligned=recon, truth_aligned=truth, metrics=metrics, frc=frc)


def _crop_to_support(recon: np.ndarray, truth: np.ndarray,
                     support: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both images and the support mask cropped to the support's bounding box (all pixels
    without a support); checks that at least :data:`MIN_SIDE_PX` a side is left."""
    if support is None:
        _check_size(truth.shape, "input")
        return recon, truth, np.ones(truth.shape, bool)
    support = np.asarray(support, bool)
    bbox = _support_bbox(support, truth.shape)
    _check_size(truth[bbox].shape, "cropping to the support")
    return recon[bbox], truth[bbox], support[bbox]


def _register(recon: np.ndarray, truth: np.ndarray, mask: np.ndarray, *, upsample: int,
              on: RegisterOn) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """Shift ``recon`` onto ``truth`` and cut ``ceil(max|shift|) + 1`` px from every side of the
    three images, so that pixels the Fourier shift wrapped around are never scored. A shift beyond
    :data:`MAX_SHIFT_FRACTION` of the image is rejected with a warning (the shift is then (0, 0))."""
    shift = estimate_shift(truth, recon, upsample=upsample, on=on)
    if max(abs(shift[0]), abs(shift[1])) > MAX_SHIFT_FRACTION * min(truth.shape):
        warnings.warn(f"registration found a ({shift[0]:.1f}, {shift[1]:.1f}) px shift, more than "
                      f"{MAX_SHIFT_FRACTION:g} of the {truth.shape[0]}×{truth.shape[1]} px image: the reconstruction "
                      "does not resemble the truth; scoring it unregistered", UserWarning,
                      stacklevel=3)  # points at compare_objects' caller
        shift = (0.0, 0.0)
    recon = apply_shift(recon, shift)
    margin = math.ceil(max(abs(shift[0]), abs(shift[1]))) + 1
    inner = (slice(margin, -margin), slice(margin, -margin))
    if min(truth.shape) <= 2 * margin:
        raise DataError(f"registration shift {shift} px leaves nothing of a {truth.shape} image")
    recon, truth, mask = recon[inner], truth[inner], mask[inner]
    _check_size(truth.shape, f"cutting a {margin} px registration margin")
    return recon, truth, mask, shift


def _score(recon: np.ndarray, truth: np.ndarray, frc: FRCResult) -> dict[str, Any]:
    """The metrics of aligned images (:class:`ComparisonResult` ``metrics``, but ``shift_px``).

    The reconstructed phase is scored on the branch nearest the truth's; the legacy phase SSIM on
    the plain wrapped phases."""
    amp_recon, amp_truth = np.abs(recon), np.abs(truth)
    phase_truth = np.angle(truth)
    phase_recon = phase_truth + np.angle(recon * np.conj(truth))
    recon_mean, truth_mean = float(amp_recon.mean()), float(amp_truth.mean())
    if recon_mean > 0:
        rescaled = image_metrics(mean_ratio_rescale(amp_recon, amp_truth), amp_truth)
    else:  # an all-zero reconstruction cannot be rescaled; score it, don't crash
        rescaled = {key: float("nan") for key in ("mae", "mse", "psnr", "ssim", "ms_ssim", "psnr255")}
    return {
        "amplitude": image_metrics(amp_recon, amp_truth),
        "amplitude_rescaled": rescaled,
        "phase": image_metrics(phase_recon, phase_truth),
        "frc": {
            "frc50_cycles_per_px": _none_if_nan(frc.cutoff_half),
            "frc50_px": _none_if_nan(frc.cutoff_half_px),
            "frc1_7_cycles_per_px": _none_if_nan(frc.cutoff_one_seventh),
            "frc1_7_px": _none_if_nan(frc.cutoff_one_seventh_px),
            "frc50_first_drop_cycles_per_px": _none_if_nan(frc.first_drop(THRESHOLD_HALF)),
        },
        "amplitude_mean": {
            "recon": recon_mean,
            "truth": truth_mean,
            "ratio": recon_mean / truth_mean if truth_mean > 0 else float("nan"),
        },
        "phase_ssim_legacy": legacy_phase_ssim(np.angle(recon), phase_truth),
    }
