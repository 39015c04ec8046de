"""The refined training positions a bundle may hold (``positions.npz``, format 4 on;
docs/formats.md#model-bundles)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptycho.errors import DataError

POSITIONS_FILE = "positions.npz"
POSITION_KEYS = ("x", "y", "x_initial", "y_initial")
"""The arrays of ``positions.npz``: refined ``x``, ``y`` and the dataset's ``x_initial``, ``y_initial``."""


@dataclass(frozen=True, eq=False)
class TrainingPositions:
    """The refined positions a model was trained at (``train.refine_positions``).

    Attributes
    ----------
    x, y : (M,) float64
        Refined probe centres of the training scan, global object pixels.
    x0, y0 : (M,) float64
        The dataset's positions they were refined from.
    """

    x: np.ndarray
    y: np.ndarray
    x0: np.ndarray
    y0: np.ndarray

    def __post_init__(self) -> None:
        shapes = {np.shape(a) for a in (self.x, self.y, self.x0, self.y0)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"training positions must be four (M,) arrays; got shapes {sorted(shapes)}")

    @property
    def shifts(self) -> np.ndarray:
        """``(M,)`` distance of each refined position from the dataset's (pixels)."""
        return np.hypot(self.x - self.x0, self.y - self.y0)


def read_positions(file: Path) -> TrainingPositions | None:
    """The refined training positions in ``file`` (a bundle's committed ``positions.npz``), or None
    when there is none (trained without ``train.refine_positions``, or a bundle older than format 4).

    Raises
    ------
    DataError
        An unreadable or inconsistent ``positions.npz``.
    """
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = [np.asarray(data[k], np.float64) for k in POSITION_KEYS]
        positions = TrainingPositions(*arrays)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{file}: cannot read the refined positions ({exc}); retrain or copy the whole bundle") from None
    if not all(np.isfinite(a).all() for a in arrays):
        raise DataError(f"{file}: the refined positions hold NaN or Inf; retrain")
    return positions
