"""CXI detector and sample orientation: ``basis_vectors`` and the sample ``orientation``.

CXI 1.6 gives a detector's orientation as ``entry_1/instrument_1/detector_1/basis_vectors``:
two lab-frame vectors (metres), the step of one pixel along the slowest (first row) and the
fastest (second row) changing axis of a frame; stored ``(2, 3)`` (x, y, z components), or
``(M, 2, 3)`` one per frame. The lab frame is CXI's: x horizontal, y up, z along the beam.

ptycho's patterns are ``[row, column]`` with rows along +y and columns along +x, the frame in which
the sample translation's x and y are the columns and rows (as Ptychodus reads CXI). A detector
whose basis vectors describe that frame — slow ``(0, +dy, 0)``, fast ``(+dx, 0, 0)`` — is used as
stored; one whose axes are flipped or swapped (a signed permutation of x and y) is transposed and
flipped into it, pixel by pixel (patterns and mask alike; the probe and the positions are
lab-frame quantities and stay as they are). Anything else — a detector rotated by another angle,
tilted out of the x–y plane, or skewed — is refused: resampling it is not an axis relabelling.

The sample geometry's ``orientation`` (``entry_1/sample_1/geometry_1/orientation``: the
direction cosines of the sample's x and y axes in the lab frame, ``(6,)`` or ``(2, 3)``) does not
change the data: the translations are lab-frame already, so the object is reconstructed in the
lab frame. It is checked like the basis vectors and recorded in the metadata, so a sample mounted
flipped or turned by 90° is known to be seen mirrored or turned in the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from ptycho.errors import DataError

__all__ = ["BASIS_KEY", "Orientation", "OrientedPatterns", "detector_orientation", "sample_orientation"]

BASIS_KEY = "entry_1/instrument_1/detector_1/basis_vectors"
SAMPLE_ORIENTATION_KEY = "entry_1/sample_1/geometry_1/orientation"
AXIS_TOL = 1e-6
"""Largest off-axis component, relative to a vector's length, still taken as exactly on an axis."""


@dataclass(frozen=True)
class Orientation:
    """How stored frames map to ptycho's (rows +y, columns +x): transpose, then flip.

    Attributes
    ----------
    slow, fast : str
        Lab axis of a step along the stored slow / fast axis (``"+y"``, ``"-x"``, …).
    transpose : bool
        The stored slow axis runs along x (swap the two frame axes first).
    flip_rows, flip_cols : bool
        After the transpose, the rows run along −y / the columns along −x (reverse them).
    vectors : (2, 3) list of float
        The basis vectors as stored (metres).
    """

    slow: str
    fast: str
    transpose: bool
    flip_rows: bool
    flip_cols: bool
    vectors: list[list[float]]

    @property
    def identity(self) -> bool:
        return not (self.transpose or self.flip_rows or self.flip_cols)

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """``(…, n_slow, n_fast)`` stored frames (or masks) → ``(…, rows, columns)`` in ptycho's frame."""
        out = np.swapaxes(frames, -1, -2) if self.transpose else frames
        if self.flip_rows:
            out = out[..., ::-1, :]
        if self.flip_cols:
            out = out[..., ::-1]
        return np.ascontiguousarray(out)

    def describe(self) -> str:
        steps = [s for s, on in (("transposed", self.transpose), ("rows reversed", self.flip_rows),
                                 ("columns reversed", self.flip_cols)) if on]
        return (f"CXI detector basis vectors: slow axis {self.slow}, fast axis {self.fast} → patterns and mask "
                + (", ".join(steps) if steps else "used as stored") + " (rows +y, columns +x)")

    def record(self) -> dict[str, Any]:
        return {"basis_vectors_m": self.vectors, "slow": self.slow, "fast": self.fast, "transposed": self.transpose,
                "rows_reversed": self.flip_rows, "columns_reversed": self.flip_cols}


class OrientedPatterns:
    """A stored ``(M, n_slow, n_fast)`` pattern stack read through an :class:`Orientation`: indexing
    along the first axis reads from the file (an ``h5py.Dataset`` stays on disk) and reorients."""

    def __init__(self, stored: Any, orientation: Orientation) -> None:
        self.stored, self.orientation = stored, orientation
        M, a, b = stored.shape
        self.shape = (M, b, a) if orientation.transpose else (M, a, b)
        self.dtype, self.ndim = stored.dtype, 3

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.orientation.apply(np.asarray(self.stored[key]))


def _axis_of(vector: np.ndarray) -> str | None:
    """``"+x"``, ``"-y"``, … when ``vector`` lies on a lab x or y axis, else None."""
    length = float(np.linalg.norm(vector))
    if not np.isfinite(length) or length <= 0:
        return None
    unit = vector / length
    k = int(np.argmax(np.abs(unit)))
    off_axis = np.delete(np.abs(unit), k)
    if k == 2 or off_axis.max() > AXIS_TOL:
        return None
    return ("+" if unit[k] > 0 else "-") + "xy"[k]


def _pair(raw: np.ndarray, key: str, where: str) -> np.ndarray:
    """The one ``(2, 3)`` pair of a ``(2, 3)``, ``(6,)`` or per-frame ``(M, 2, 3)`` field."""
    arr = np.asarray(raw, np.float64)
    if arr.shape == (6,):
        arr = arr.reshape(2, 3)
    if arr.ndim == 3 and arr.shape[1:] == (2, 3):
        if not (arr == arr[:1]).all():
            raise DataError(f"{where}: '{key}' changes from frame to frame; ptycho needs one detector orientation "
                            "for the whole scan")
        arr = arr[0]
    if arr.shape != (2, 3):
        raise DataError(f"{where}: '{key}' has shape {np.shape(raw)}; expected (2, 3) (slow and fast pixel steps, "
                        "x y z in metres) or (M, 2, 3)")
    return arr


def _signed_permutation(pair: np.ndarray, key: str, where: str, what: str) -> tuple[str, str]:
    axes = (_axis_of(pair[0]), _axis_of(pair[1]))
    if None in axes or axes[0][1] == axes[1][1]:  # type: ignore[index]
        shown = "; ".join("(" + ", ".join(f"{c:.6g}" for c in row) + ")" for row in pair)
        raise DataError(f"{where}: '{key}' = {shown} is not a flip or transpose of the x–y plane ({what} rotated by "
                        "another angle, tilted or skewed); only axis flips and transposes can be imported")
    return axes  # type: ignore[return-value]


def detector_orientation(f: h5py.File, where: str) -> Orientation | None:
    """The detector's :class:`Orientation` from its basis vectors, None when the file has none.

    Raises
    ------
    DataError
        Basis vectors of the wrong shape, changing per frame, or not a signed permutation of
        the lab x and y axes (named, with their values).
    """
    if BASIS_KEY not in f:
        return None
    pair = _pair(f[BASIS_KEY][()], BASIS_KEY, where)
    slow, fast = _signed_permutation(pair, BASIS_KEY, where, "a detector")
    transpose = slow[1] == "x"
    along_y, along_x = (fast, slow) if transpose else (slow, fast)
    return Orientation(slow, fast, transpose, along_y[0] == "-", along_x[0] == "-", pair.tolist())


def sample_orientation(f: h5py.File, where: str) -> dict[str, Any] | None:
    """The sample's axes in the lab frame (recorded, not applied: module docstring), None if absent."""
    if SAMPLE_ORIENTATION_KEY not in f:
        return None
    pair = _pair(f[SAMPLE_ORIENTATION_KEY][()], SAMPLE_ORIENTATION_KEY, where)
    x_axis, y_axis = _signed_permutation(pair, SAMPLE_ORIENTATION_KEY, where, "a sample")
    return {"direction_cosines": pair.tolist(), "sample_x": x_axis, "sample_y": y_axis,
            "lab_frame": x_axis == "+x" and y_axis == "+y"}
