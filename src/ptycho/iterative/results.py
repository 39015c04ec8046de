"""What the iterative engines return: the state handed to a callback after each iteration, and the
final reconstruction cut to the region the probe reached (:mod:`ptycho.iterative.engines`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ptycho.config.iterative import IterativeConfig
from ptycho.physics.modes import summed_intensity
from ptycho.physics.operators.geometry import Windows
from ptycho.physics.operators.numpy_ops import place

__all__ = ["IterationState", "ReconstructionResult", "cut_result"]


@dataclass(frozen=True)
class IterationState:
    """Handed to ``callback`` after every iteration.

    ``object`` (the working canvas) and ``probe`` are the live arrays, and :meth:`result` reads
    them too: use both inside the callback. :meth:`result` copies the run so far into a
    :class:`ReconstructionResult` that is cut and supported exactly like the final one (e.g. to
    score several iteration budgets in one run).
    """

    iteration: int  # 1-based count of completed iterations
    iterations: int
    error: float
    seconds: float
    object: np.ndarray
    probe: np.ndarray
    _snapshot: Callable[[], "ReconstructionResult"] = field(repr=False, compare=False)

    def result(self) -> "ReconstructionResult":
        """A copy of the reconstruction after this iteration."""
        return self._snapshot()


@dataclass(frozen=True, eq=False)
class ReconstructionResult:
    """What :func:`reconstruct` returns.

    Attributes
    ----------
    object : (H, W) complex64
        The estimate on the written canvas (ones where no probe reached).
    probe : (N, N) or (K, N, N) complex64
        Final probe (√counts), every mode; the dataset's probe unless ``probe_update`` (or
        ``probe_modes``).
    support : (H, W) bool
        Summed probe intensity above ``support_fraction`` of its maximum.
    origin_x, origin_y : int
        Global object pixel of canvas pixel ``(0, 0)``.
    errors : (iterations,) float64
        Normalised Fourier-modulus error ``Σ(|Ψ| − A)² / ΣA²`` of each iteration, measured on
        the exit waves before each minibatch's update.
    seconds : float
        Wall time of the iterations (data preparation and time spent in ``callback`` excluded).
    config : IterativeConfig
    info : dict
        What the engine resolved itself (ml: ``regulariser`` and the ``regulariser_weight`` used).
    x, y : (M,) float64
        The positions the object was reconstructed with (global object pixels): refined with
        ``refine_positions``, else the input ones.
    """

    object: np.ndarray
    probe: np.ndarray
    support: np.ndarray
    origin_x: int
    origin_y: int
    errors: np.ndarray
    seconds: float
    config: IterativeConfig
    x: np.ndarray
    y: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds_per_iteration(self) -> float:
        return self.seconds / max(len(self.errors), 1)

    def object_image(self, metadata: dict[str, Any] | None = None) -> Any:
        """The result as a :class:`ptycho.io.objects.ObjectImage` (0 outside the support), as
        ``ptycho stitch`` writes it; with ``refine_positions`` it carries the refined positions."""
        from ptycho.io.objects import ObjectImage, ScanPositions

        obj = np.where(self.support, self.object, 0).astype(np.complex64)
        positions = None
        if self.config.refine_positions:
            positions = ScanPositions(np.arange(len(self.x), dtype=np.int64), self.x.copy(), self.y.copy())
        return ObjectImage(obj, self.support.copy(), float(self.origin_x), float(self.origin_y), dict(metadata or {}),
                           positions)


def support_and_frame(
    illumination: np.ndarray, fraction: float, frame: tuple[int, int, int, int], crop: bool
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Support mask and the written region ``(row0, row1, col0, col1)`` of the canvas: the
    support's bounding box with ``crop``, else ``frame`` grown to hold every supported pixel."""
    support = illumination > fraction * illumination.max()
    rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
    bbox = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    if crop:
        return support, bbox
    return support, (min(frame[0], bbox[0]), max(frame[1], bbox[1]), min(frame[2], bbox[2]), max(frame[3], bbox[3]))


def cut_result(obj: np.ndarray, probe: np.ndarray, windows: Windows, origin: tuple[int, int],
               frame: tuple[int, int, int, int], errors: np.ndarray, seconds: float,
               cfg: IterativeConfig, positions: tuple[np.ndarray, np.ndarray],
               info: dict[str, Any] | None = None) -> ReconstructionResult:
    """The working canvas ``obj`` (global pixel ``origin`` = ``(origin_x, origin_y)`` at its
    pixel 0) as a result: cut to the written region (:func:`support_and_frame`), every array
    copied, so the engine can go on updating its own. ``windows`` lie at ``positions`` ``(x, y)``
    (global pixels); the support is lit by every mode of ``probe``."""
    M, N = len(windows), windows.N
    illumination = place(np.broadcast_to(summed_intensity(probe), (M, N, N)), windows, obj.shape)
    support, (r0, r1, c0, c1) = support_and_frame(illumination, cfg.support_fraction, frame, cfg.crop_to_scan)
    return ReconstructionResult(
        object=obj[r0:r1, c0:c1].copy(), probe=probe.copy(), support=support[r0:r1, c0:c1],
        origin_x=origin[0] + c0, origin_y=origin[1] + r0, errors=errors.copy(), seconds=seconds, config=cfg,
        info=dict(info or {}),
        x=np.array(positions[0], np.float64), y=np.array(positions[1], np.float64),
    )
