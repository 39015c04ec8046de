"""The figure a scientist checks after refinement: where the positions moved, and the probe modes —
and, when the truth is known (a simulated scan), how far both are from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptycho.figures.common import new_figure, save_figure, show_image

ARROW_SCALE = 10.0
"""Shifts are drawn this many times longer than they are (sub-pixel moves on a scan of many pixels)."""
PHASE_FLOOR = 0.02
"""Probe phase is shown only where the mode's amplitude exceeds this fraction of its maximum."""
VIEW_FLOOR = 1e-3
"""The probe panels show the square holding every pixel of the dominant mode brighter than this fraction of
its peak intensity (weak modes may spread over the whole window)."""


@dataclass(frozen=True)
class RefinementTruth:
    """What a simulated scan's refinement is compared with.

    Attributes
    ----------
    probe : (N, N) or (K, N, N) complex
        The true probe, in the frame of the refined one (registered and phased by the caller: a
        probe is only defined up to a global phase and, with its object, a translation).
    x, y : (M,) float
        True positions (global object pixels).
    """

    probe: np.ndarray
    x: np.ndarray
    y: np.ndarray


def _modes(probe: np.ndarray) -> np.ndarray:
    return probe[None] if np.ndim(probe) == 2 else np.asarray(probe)


def _view(*probes: np.ndarray) -> tuple[slice, slice]:
    """A centred square (at least N/4) holding every bright pixel of the dominant modes of ``probes``."""
    intensity = sum(np.abs(_modes(p)[0]) ** 2 for p in probes)
    N = intensity.shape[-1]
    rows, cols = np.nonzero(intensity > VIEW_FLOOR * intensity.max())
    half = max(N // 8, int(np.max(np.abs(np.concatenate([rows, cols]) - (N - 1) / 2))) + 2)
    lo, hi = max(0, N // 2 - half), min(N, N // 2 + half)
    return slice(lo, hi), slice(lo, hi)


def _probe_panels(fig, axes, probe: np.ndarray, label: str, view: tuple[slice, slice]) -> None:
    """Amplitude and phase of every mode, with its share of the power, along ``axes``."""
    modes = _modes(probe)
    powers = np.sum(np.abs(modes.astype(np.complex128)) ** 2, axis=(1, 2))
    for k, mode in enumerate(modes):
        amp = np.abs(mode[view])
        phase = np.where(amp > PHASE_FLOOR * amp.max(), np.angle(mode[view]), np.nan)
        show_image(fig, axes[2 * k], amp, f"{label} mode {k}: {100 * powers[k] / powers.sum():.3g} % of the power",
                   cmap="magma")
        show_image(fig, axes[2 * k + 1], phase, f"{label} mode {k} phase (rad)", cmap="twilight", vmin=-np.pi, vmax=np.pi)


def _shift_panels(arrows, hist, x0, y0, dx, dy, what: str) -> None:
    shift = np.hypot(dx, dy)
    arrows.quiver(x0, y0, dx * ARROW_SCALE, dy * ARROW_SCALE, shift, angles="xy", scale_units="xy", scale=1,
                  cmap="viridis", width=0.004)
    arrows.set_aspect("equal")
    arrows.invert_yaxis()  # rows grow downwards, as in the object images
    arrows.set_title(f"{what} ×{ARROW_SCALE:g} (RMS {np.sqrt(np.mean(shift**2)):.3g} px)", fontsize=9)
    hist.hist(shift, bins=30, color="tab:blue")
    hist.set_xlabel("|shift| (px)")
    hist.set_title(f"max {shift.max():.3g} px, mean offset ({dx.mean():.2g}, {dy.mean():.2g})", fontsize=9)


def _error_panels(scatter, hist, x0, y0, x, y, truth: RefinementTruth) -> None:
    """Errors of the initial and refined positions against the truth, mean shift removed."""
    def centred(a, b):
        d = np.stack([a - truth.x, b - truth.y])
        return d - d.mean(axis=1, keepdims=True)

    start, end = centred(x0, y0), centred(x, y)
    rms = [float(np.sqrt(np.mean(np.sum(d**2, axis=0)))) for d in (start, end)]
    scatter.scatter(*start, s=6, color="0.6", label=f"initial − true (RMS {rms[0]:.3g} px)")
    scatter.scatter(*end, s=6, color="tab:red", label=f"refined − true (RMS {rms[1]:.3g} px)")
    scatter.set_aspect("equal")
    scatter.invert_yaxis()
    scatter.set_xlabel("Δx (px)")
    scatter.set_ylabel("Δy (px)")
    scatter.legend(fontsize=7, loc="upper right")
    scatter.set_title("position errors, mean shift removed", fontsize=9)
    bins = np.linspace(0, max(np.hypot(*start).max(), np.hypot(*end).max()), 31)
    hist.hist(np.hypot(*start), bins=bins, color="0.6", label="initial")
    hist.hist(np.hypot(*end), bins=bins, color="tab:red", alpha=0.7, label="refined")
    hist.set_xlabel("|error| (px)")
    hist.legend(fontsize=7)


def refinement_figure(path: Path, *, x0: np.ndarray, y0: np.ndarray, x: np.ndarray, y: np.ndarray,
                      probe: np.ndarray, truth: RefinementTruth | None = None) -> Path:
    """Position shifts (arrows ×:data:`ARROW_SCALE` from the initial positions, and their
    histogram) beside the amplitude and phase of every probe mode with its share of the power.
    With ``truth``, a second row: the initial and refined positions' errors against the true
    ones (scatter and histogram) beside the true probe's modes.

    Parameters
    ----------
    x0, y0 : (M,) initial positions; x, y : (M,) refined positions (global object pixels)
    probe : (N, N) or (K, N, N) complex, √counts
    truth : the true probe (in the refined one's frame) and positions, for a simulated scan
    """
    K = len(_modes(probe))
    rows = 1 if truth is None else 2
    fig, axes = new_figure(rows, 2 + 2 * K, size=(3.6 * (2 + 2 * K), 3.6 * rows))
    view = _view(probe) if truth is None else _view(probe, truth.probe)
    _shift_panels(axes[0, 0], axes[0, 1], x0, y0, x - x0, y - y0, "position shifts")
    _probe_panels(fig, axes[0, 2:], probe, "refined" if truth is not None else "probe", view)
    if truth is not None:
        _error_panels(axes[1, 0], axes[1, 1], x0, y0, x, y, truth)
        true_modes = _modes(truth.probe)
        _probe_panels(fig, axes[1, 2:2 + 2 * len(true_modes)], true_modes[:K], "true", view)
        for ax in axes[1, 2 + 2 * min(K, len(true_modes)):]:
            ax.set_axis_off()
    return save_figure(fig, path)
