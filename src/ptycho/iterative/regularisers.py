"""The object regularisers ``R(O)`` of the maximum-likelihood engine's objective
(:mod:`ptycho.iterative.ml`: smoothed total variation, gradient penalty or none): value, gradient
and line derivatives, and the default weight ``μ`` of ``μ · R(O)``.

**Default weight** (``regulariser_weight = None``): ``μ = REGULARISER_SCALE · √(mean D)`` with
``D`` in counts per object pixel, averaged over the illuminated pixels. The data term's curvature
grows like ``D`` and the noise of an unregularised estimate like ``1/√D``, so the prior matters at
low dose or sparse coverage and fades away at high dose (the relative weight ``μ/D ∝ 1/√D``).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["REGULARISER_SCALE", "TV_SMOOTHING", "default_regulariser_weight", "regulariser_terms"]

TV_SMOOTHING = 1e-2
"""``η`` of the smoothed total variation, in transmission units (objects are of order 1)."""
REGULARISER_SCALE = 0.5
"""``c`` of the default weight ``μ = c·√(mean illumination)`` (module docstring)."""


def default_regulariser_weight(illumination: np.ndarray, support_fraction: float) -> float:
    """``REGULARISER_SCALE · √(mean D)`` over the pixels whose illumination ``D`` (counts per
    pixel) exceeds ``support_fraction`` of its maximum."""
    lit = illumination[illumination > support_fraction * float(illumination.max())]
    return REGULARISER_SCALE * math.sqrt(max(float(lit.mean()) if lit.size else 0.0, 0.0))


def _forward_differences(obj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(O[r, c+1] − O[r, c], O[r+1, c] − O[r, c])``, zero past the last column / row."""
    dx = np.zeros_like(obj)
    dy = np.zeros_like(obj)
    dx[:, :-1] = obj[:, 1:] - obj[:, :-1]
    dy[:-1, :] = obj[1:, :] - obj[:-1, :]
    return dx, dy


def _difference_adjoint(ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`_forward_differences` applied to ``(ux, uy)``."""
    out = np.zeros_like(ux)
    out[:, 1:] += ux[:, :-1]
    out[:, :-1] -= ux[:, :-1]
    out[1:, :] += uy[:-1, :]
    out[:-1, :] -= uy[:-1, :]
    return out


def regulariser_terms(obj: np.ndarray, kind: str, direction: np.ndarray | None = None) -> tuple[float, np.ndarray | None, float, float]:
    """Value and Wirtinger gradient ``∂R/∂Ō`` of the regulariser at ``obj``, and with a
    ``direction`` ``d`` its first and second derivatives along ``O + t·d`` at ``t = 0``.

    Parameters
    ----------
    obj : (H, W) complex
    kind : {"tv", "gradient", "none"}
    direction : (H, W) complex, optional

    Returns
    -------
    value, gradient (None for ``"none"`` or when ``direction`` is given), first, second
    """
    if kind == "none":
        return 0.0, None, 0.0, 0.0
    ox, oy = _forward_differences(obj)
    if kind == "gradient":
        if direction is None:
            value = float(np.vdot(ox, ox).real + np.vdot(oy, oy).real)
            return value, _difference_adjoint(ox, oy), 0.0, 0.0
        dx, dy = _forward_differences(direction)
        first = 2.0 * float(np.vdot(ox, dx).real + np.vdot(oy, dy).real)
        return 0.0, None, first, 2.0 * float(np.vdot(dx, dx).real + np.vdot(dy, dy).real)
    norm2 = np.abs(ox) ** 2 + np.abs(oy) ** 2 + TV_SMOOTHING**2
    root = np.sqrt(norm2)
    if direction is None:
        return float(root.sum()), _difference_adjoint(ox / (2 * root), oy / (2 * root)), 0.0, 0.0
    dx, dy = _forward_differences(direction)
    cross = (np.conj(ox) * dx + np.conj(oy) * dy).real  # Re⟨∇O, ∇d⟩ per pixel
    size2 = np.abs(dx) ** 2 + np.abs(dy) ** 2
    first = float((cross / root).sum())
    second = float(((size2 * norm2 - cross**2) / (norm2 * root)).sum())
    return 0.0, None, first, second
