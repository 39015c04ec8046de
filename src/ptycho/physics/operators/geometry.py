"""The window geometry, defined once for every backend (:mod:`ptycho.physics.operators`).

A window of side ``N`` centred at ``(x, y)`` covers the pixel centres ``x − (N−1)/2 … x + (N−1)/2``
(and likewise in ``y``): its first pixel centre, the *window start*, is ``x − (N−1)/2``. A start
off whole pixels is read by **bilinear interpolation** from the ``(N+1)×(N+1)`` block of whole
pixels whose first pixel is ``floor(start)``, weighted by the fractional part ``start − floor(start)``
in ``[0, 1)``. A whole-pixel start has fraction 0: the window is an exact copy of ``N×N`` pixels
(the block's last row and column get weight 0).

:func:`window_start` and :func:`split_start` are plain arithmetic on ``float64`` arrays or tensors,
so the NumPy and the TensorFlow backends call the same two functions; :class:`Windows` is the
precomputed NumPy form that the iterative engines keep for a whole scan.

Shapes: ``B`` windows, ``N`` window side, ``(H, W)`` the canvas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


def window_start(centre: Any, N: int) -> Any:
    """First pixel centre of a window of side ``N`` centred at ``centre`` (pixels, float64)."""
    return centre - (N - 1) / 2.0


def split_start(start: Any, floor: Callable[[Any], Any]) -> tuple[Any, Any]:
    """``(floor(start), start − floor(start))``: the bilinear block corner and the fraction in ``[0, 1)``.

    ``floor`` is the backend's (``numpy.floor`` or ``tf.floor``); both results keep ``start``'s
    float dtype. A position gradient (for position refinement) flows through the fraction only.
    """
    corner = floor(start)
    return corner, start - corner


@dataclass(frozen=True)
class Windows:
    """Where ``B`` windows of side ``N`` read one canvas (NumPy; precomputed once per scan).

    Attributes
    ----------
    iy, ix : (B,) int64
        Canvas row/column of each window's ``(N+1)×(N+1)`` bilinear block corner.
    fy, fx : (B,) float32
        Fractional offsets in ``[0, 1)``: the window's first pixel centre is at
        ``(iy + fy, ix + fx)``. Position refinement differentiates the bilinear weights with
        respect to these (``∂/∂fx`` of the window is the column difference of its block:
        :func:`~ptycho.physics.operators.numpy_ops.extract_with_gradients`), which is why they are
        kept apart from the whole-pixel corner.
    N : int
    """

    iy: np.ndarray
    ix: np.ndarray
    fy: np.ndarray
    fx: np.ndarray
    N: int

    def __len__(self) -> int:
        return len(self.ix)

    def take(self, index: np.ndarray) -> Windows:
        """The windows at ``index`` (a minibatch)."""
        return Windows(self.iy[index], self.ix[index], self.fy[index], self.fx[index], self.N)

    def shifted(self, rows: int, cols: int) -> Windows:
        """The same windows on a canvas whose origin moved by ``(−rows, −cols)`` pixels."""
        return Windows(self.iy + rows, self.ix + cols, self.fy, self.fx, self.N)


def window_geometry(x: np.ndarray, y: np.ndarray, N: int, origin_x: float = 0.0, origin_y: float = 0.0) -> Windows:
    """Bilinear blocks of windows centred at global ``(x, y)`` on a canvas whose pixel ``(0, 0)``
    is global pixel ``(origin_y, origin_x)``.

    Parameters
    ----------
    x, y : (B,) float64
        Window centres, global object pixels.
    N : int
    origin_x, origin_y : float
        Whole-pixel origin of the canvas.
    """
    ix, fx = split_start(window_start(np.asarray(x, np.float64), N) - origin_x, np.floor)
    iy, fy = split_start(window_start(np.asarray(y, np.float64), N) - origin_y, np.floor)
    return Windows(iy.astype(np.int64), ix.astype(np.int64), fy.astype(np.float32), fx.astype(np.float32), int(N))


def block_extent(windows: Windows) -> tuple[int, int, int, int]:
    """``(row0, row1, col0, col1)`` (half-open) of the canvas pixels the blocks touch."""
    n = windows.N + 1
    return int(windows.iy.min()), int(windows.iy.max()) + n, int(windows.ix.min()), int(windows.ix.max()) + n


def check_inside(windows: Windows, shape: tuple[int, int]) -> None:
    """Raise ``ValueError`` if a window's bilinear block leaves an ``(H, W)`` canvas."""
    if not len(windows):
        return
    H, W = shape
    r0, r1, c0, c1 = block_extent(windows)
    if r0 < 0 or c0 < 0 or r1 > H or c1 > W:
        raise ValueError(f"windows reach rows {r0}…{r1 - 1}, cols {c0}…{c1 - 1} outside the {H}×{W} canvas")


def check_probe_shape(shape: tuple[int, ...]) -> int:
    """The mode axis of a probe of ``shape``: 0 for a coherent ``(N, N)`` probe, ``K ≥ 1`` for a
    mixed-state ``(K, N, N)`` one (a ``(1, N, N)`` probe is a mixed state of one mode).

    Raises
    ------
    ValueError
        Another rank, a non-square probe, or ``K = 0`` modes.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or shape[-1] != shape[-2]:
        raise ValueError(f"a probe is (N, N) or (K, N, N) modes; got shape {shape}")
    if len(shape) == 3 and shape[0] == 0:
        raise ValueError(f"a mixed-state probe needs at least one mode; got shape {shape}")
    return 0 if len(shape) == 2 else shape[0]
