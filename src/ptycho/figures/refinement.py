"""The figure a scientist checks after refinement: where the positions moved, and the probe modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptycho.figures.common import new_figure, save_figure, show_image

ARROW_SCALE = 10.0
"""Shifts are drawn this many times longer than they are (sub-pixel moves on a scan of many pixels)."""


def refinement_figure(path: Path, *, x0: np.ndarray, y0: np.ndarray, x: np.ndarray, y: np.ndarray,
                      probe: np.ndarray) -> Path:
    """Position shifts (arrows ×:data:`ARROW_SCALE` from the initial positions, and their
    histogram) beside the amplitude of every probe mode with its share of the power.

    Parameters
    ----------
    x0, y0 : (M,) initial positions; x, y : (M,) refined positions (global object pixels)
    probe : (N, N) or (K, N, N) complex, √counts
    """
    modes = probe[None] if np.ndim(probe) == 2 else np.asarray(probe)
    fig, axes = new_figure(1, 2 + len(modes), size=(4.2 * (2 + len(modes)), 4.2))
    dx, dy = x - x0, y - y0
    shift = np.hypot(dx, dy)
    ax = axes[0, 0]
    ax.quiver(x0, y0, dx * ARROW_SCALE, dy * ARROW_SCALE, shift, angles="xy", scale_units="xy", scale=1,
              cmap="viridis", width=0.004)
    ax.set_aspect("equal")
    ax.invert_yaxis()  # rows grow downwards, as in the object images
    ax.set_title(f"position shifts ×{ARROW_SCALE:g} (RMS {np.sqrt(np.mean(shift**2)):.3g} px)", fontsize=9)
    axes[0, 1].hist(shift, bins=30, color="tab:blue")
    axes[0, 1].set_xlabel("|shift| (px)")
    axes[0, 1].set_title(f"max {shift.max():.3g} px, mean offset ({dx.mean():.2g}, {dy.mean():.2g})", fontsize=9)
    powers = np.sum(np.abs(modes.astype(np.complex128)) ** 2, axis=(1, 2))
    for k, mode in enumerate(modes):
        show_image(fig, axes[0, 2 + k], np.abs(mode), f"probe mode {k}: {100 * powers[k] / powers.sum():.3g} % "
                   "of the power", cmap="magma")
    return save_figure(fig, path)
