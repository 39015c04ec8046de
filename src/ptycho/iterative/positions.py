"""Position refinement in the iterative engines: per-position sub-pixel offsets, gradient-based
(docs/positions.md).

The exit wave of position ``j`` is ``ψ_j = P · E(x_j, y_j) O``. A small shift ``δ = (δx, δy)``
changes it by ``δx·g_x + δy·g_y`` with ``g_x = P · ∂E O/∂x`` (the derivative of the bilinear
window, :func:`~ptycho.physics.operators.numpy_ops.extract_with_gradients`; with probe modes one
``g`` per mode). The modulus projection says how the wave should change, ``Δψ_j = ψ'_j − ψ_j``;
the shift that explains most of it is the least-squares solution of ``δx·g_x + δy·g_y ≈ Δψ_j``,
the 2×2 normal equations::

    [Re⟨g_x,g_x⟩ Re⟨g_x,g_y⟩] [δx]   [Re⟨g_x,Δψ⟩]
    [Re⟨g_y,g_x⟩ Re⟨g_y,g_y⟩] [δy] = [Re⟨g_y,Δψ⟩]      ⟨a,b⟩ = Σ_k Σ_r ā b

(pty-chi's and tike's gradient correction, solved jointly in x and y so that oriented features —
an edge determines only its normal — do not move a position along the edge; a small Tikhonov
term keeps such systems regular). Each position then moves by ``position_step`` times that shift,
at most :data:`MAX_UPDATE_PX` per axis per visit, within ``position_max_shift_px`` of where it
started. After every iteration the offsets are projected so that their **mean is zero** in each
axis while the bound still holds: a common shift of all positions is a shift of the object, which
the data cannot see, and left free it would let the object drift. Updates start after
``position_start`` iterations, once the object is roughly right.

Shapes: ``M`` positions, ``B`` in a minibatch, ``K`` modes, ``N`` window side.
"""

from __future__ import annotations

import math

import numpy as np

from ptycho.config.iterative import IterativeConfig
from ptycho.physics.operators.geometry import Windows, window_geometry

__all__ = ["MAX_UPDATE_PX", "PositionState", "least_squares_shifts", "zero_mean_within_bound"]

MAX_UPDATE_PX = 0.25
"""Largest move of one position in one visit, per axis (pixels): a linearisation of a bilinear
window is good to a fraction of a pixel, and a bad early estimate must not throw a position far."""
TIKHONOV = 1e-3
"""Relative weight of the regulariser added to the 2×2 normal equations (fraction of their mean
diagonal)."""
BISECTION_STEPS = 80


def least_squares_shifts(dpsi: np.ndarray, probe: np.ndarray, d_dx: np.ndarray, d_dy: np.ndarray) -> np.ndarray:
    """The shift of each window that best explains its exit-wave change (module docstring).

    Parameters
    ----------
    dpsi : (B, N, N) or (B, K, N, N) complex
        ``Δψ``, per mode with a ``(K, N, N)`` probe.
    probe : (N, N) or (K, N, N) complex
    d_dx, d_dy : (B, N, N) complex
        Derivatives of the object windows with respect to the window centre.

    Returns
    -------
    (B, 2) float64 ``(δx, δy)`` in pixels; 0 where the window has no contrast to move against.
    """
    if probe.ndim == 3:
        d_dx, d_dy = d_dx[:, None], d_dy[:, None]
    gx, gy = probe * d_dx, probe * d_dy
    axes = tuple(range(1, dpsi.ndim))

    def inner(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sum((np.conj(a) * b).real, axis=axes, dtype=np.float64)

    a, b, c = inner(gx, gx), inner(gx, gy), inner(gy, gy)
    rhs_x, rhs_y = inner(gx, dpsi), inner(gy, dpsi)
    damping = TIKHONOV * 0.5 * (a + c)
    a, c = a + damping, c + damping
    det = a * c - b * b
    ok = det > 0
    safe = np.where(ok, det, 1.0)
    dx = np.where(ok, (c * rhs_x - b * rhs_y) / safe, 0.0)
    dy = np.where(ok, (a * rhs_y - b * rhs_x) / safe, 0.0)
    return np.stack([dx, dy], axis=1)


def zero_mean_within_bound(offset: np.ndarray, bound: float) -> np.ndarray:
    """``clip(offset − c, −bound, bound)`` with the ``c`` that makes its mean exactly zero.

    ``mean(clip(offset − c))`` falls monotonically from ``+bound`` to ``−bound`` as ``c`` runs over
    ``[min − bound, max + bound]``; without clipping ``c`` is the mean, else bisection finds it.
    """
    offset = np.asarray(offset, np.float64)
    centred = offset - offset.mean()
    if np.all(np.abs(centred) <= bound):
        return centred
    lo, hi = float(offset.min()) - bound, float(offset.max()) + bound
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if np.clip(offset - mid, -bound, bound).mean() > 0:
            lo = mid
        else:
            hi = mid
    return np.clip(offset - 0.5 * (lo + hi), -bound, bound)


class PositionState:
    """The scan's positions while they are refined (global object pixels, float64).

    Parameters
    ----------
    x, y : (M,) float64
        Initial positions (the dataset's).
    config : IterativeConfig
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, config: IterativeConfig):
        self.x0, self.y0 = np.array(x, np.float64), np.array(y, np.float64)
        self.x, self.y = self.x0.copy(), self.y0.copy()
        self.step, self.bound = float(config.position_step), float(config.position_max_shift_px)
        self.start = int(config.position_start)

    @staticmethod
    def margin(config: IterativeConfig) -> int:
        """Pixels a canvas needs around the initial windows to hold every refined one."""
        return int(math.ceil(config.position_max_shift_px)) + 1 if config.refine_positions else 0

    def active(self, completed: int) -> bool:
        """Whether the iteration after ``completed`` iterations moves positions."""
        return completed >= self.start

    def windows(self, N: int, origin_x: int, origin_y: int) -> Windows:
        return window_geometry(self.x, self.y, N, origin_x, origin_y)

    def move(self, index: np.ndarray, shifts: np.ndarray) -> None:
        """Apply ``position_step`` times the least-squares ``shifts`` ``(B, 2)`` of positions ``index``,
        each at most :data:`MAX_UPDATE_PX` per axis and within the bound of its start."""
        if not np.isfinite(shifts).all():
            shifts = np.where(np.isfinite(shifts), shifts, 0.0)
        move = np.clip(self.step * shifts, -MAX_UPDATE_PX, MAX_UPDATE_PX)
        self.x[index] = self.x0[index] + np.clip(self.x[index] + move[:, 0] - self.x0[index], -self.bound, self.bound)
        self.y[index] = self.y0[index] + np.clip(self.y[index] + move[:, 1] - self.y0[index], -self.bound, self.bound)

    def constrain(self) -> None:
        """Remove the mean offset in each axis, keeping every offset within the bound."""
        self.x = self.x0 + zero_mean_within_bound(self.x - self.x0, self.bound)
        self.y = self.y0 + zero_mean_within_bound(self.y - self.y0, self.bound)
