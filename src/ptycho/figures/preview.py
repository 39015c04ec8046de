"""The preview figure of a simulated dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptycho.figures.common import new_figure, phase_display, save_figure, show_image
from ptycho.physics.modes import summed_intensity

PROBE_LIT = 0.05
"""Probe pixels above this fraction of the peak amplitude have their phase shown."""


def simulation_preview(
    path: Path,
    *,
    obj: np.ndarray,
    probe: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    patterns: np.ndarray,
) -> Path:
    """Object amplitude and phase, probe amplitude and phase, scan positions over the object,
    and up to three diffraction patterns on a log scale.

    Parameters
    ----------
    obj : (H, W) complex
    probe : (N, N) or (K, N, N) complex
        A mixed state shows ``√Σ_k|P_k|²`` and the phase of its first mode.
    x, y : (M,) float64 positions
    patterns : (k, N, N) float32 counts, k ≤ 3 shown
    """
    fig, axes = new_figure(2, 4, size=(15, 7))
    show_image(fig, axes[0, 0], np.abs(obj), "object amplitude")
    show_image(fig, axes[0, 1], np.angle(obj), "object phase (rad)", **phase_display(np.angle(obj)))
    modes = 1 if np.ndim(probe) == 2 else len(probe)
    first = probe if np.ndim(probe) == 2 else probe[0]
    amplitude = np.sqrt(summed_intensity(probe))
    show_image(fig, axes[0, 2], amplitude, "probe amplitude (√counts)" if modes == 1 else
               f"probe √Σ|P_k|² over {modes} modes", cmap="magma")
    lit = np.abs(first) > PROBE_LIT * np.abs(first).max()  # the phase of an unlit pixel is noise
    probe_phase = np.where(lit, np.angle(first), np.nan)
    show_image(fig, axes[0, 3], probe_phase, "probe phase (rad), where lit" if modes == 1 else
               "mode 0 phase (rad), where lit", **phase_display(probe_phase))
    ax = axes[1, 0]
    ax.imshow(np.abs(obj), cmap="gray", interpolation="nearest")
    ax.plot(x, y, ".", ms=2, color="tab:orange")
    ax.set_title(f"scan: {len(x)} positions", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    for k in range(3):
        ax = axes[1, k + 1]
        if k < len(patterns):
            show_image(fig, ax, np.log10(1.0 + patterns[k]), f"pattern {k}: log10(1+counts)", cmap="viridis")
        else:
            ax.axis("off")
    return save_figure(fig, path)
