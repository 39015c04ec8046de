"""A global rPIE estimate of a whole scan, streamed from its dataset: the PINN's input.

A network that sees one group of patterns cannot recover the object's low spatial frequencies
(a single pattern transfers them weakly, and each group's phase offset is free); only the overlap
across the *whole* scan fixes them. A few rPIE passes over every position do exactly that, at a
cost far below the network's own (measured in ``benchmarks/RESULTS.md``). The PINN
reads each group member's window of this estimate as input channels (``model.estimate =
"global"``), so training and inference see estimates made the same way.

Memory is the canvas plus one chunk of patterns: the dataset is read ``chunk`` patterns at a time,
in storage order, and each chunk's positions are visited in a seeded random order in minibatches
(:func:`ptycho.iterative.engines.minibatch_step`). Same dataset, passes and seed ⇒ same estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptycho.config.iterative import IterativeConfig
from ptycho.data.dataset import Dataset
from ptycho.errors import NumericalError
from ptycho.iterative.engines import canvas_for, minibatch_step
from ptycho.iterative.modulus import fft_valid, measured_modulus
from ptycho.physics.operators.geometry import Windows, window_geometry
from ptycho.physics.operators.numpy_ops import extract

STREAM_CHUNK = 1024
"""Patterns read from the dataset at a time."""


@dataclass(frozen=True, eq=False)
class GlobalEstimate:
    """The estimate on its canvas and every position's window on it.

    Attributes
    ----------
    object : (H, W) complex64
        Ones where no probe reached.
    origin_x, origin_y : int
        Global object pixel of canvas pixel ``(0, 0)``.
    windows : Windows
        The dataset's positions on this canvas.
    """

    object: np.ndarray
    origin_x: int
    origin_y: int
    windows: Windows

    def patches(self, index: np.ndarray) -> np.ndarray:
        """The ``N×N`` windows of positions ``index`` (any shape ``S``): ``S + (N, N)`` complex64."""
        index = np.asarray(index, dtype=np.int64)
        out = extract(self.object, self.windows.take(index.ravel()))
        return out.reshape(*index.shape, self.windows.N, self.windows.N)


def global_estimate(dataset: Dataset, passes: int, *, chunk: int = STREAM_CHUNK, seed: int = 0) -> GlobalEstimate:
    """``passes`` rPIE passes over every position of ``dataset`` with its probe (default rPIE
    options of :class:`~ptycho.config.iterative.IterativeConfig`), starting from a unit object.

    Raises
    ------
    NumericalError
        The estimate became non-finite (exit code 4).
    """
    config = IterativeConfig(engine="rpie", iterations=max(passes, 1), seed=seed)
    x, y, N = np.asarray(dataset.x), np.asarray(dataset.y), dataset.N
    canvas = canvas_for(x, y, N, None)
    windows = window_geometry(x, y, N, canvas.origin_x, canvas.origin_y)
    obj = np.ones(canvas.shape, np.complex64)
    probe = np.array(dataset.probe, np.complex64)
    rng = np.random.default_rng(seed)
    valid = fft_valid(dataset.mask)  # masked pixels keep their predicted modulus
    for _ in range(passes):
        for start in range(0, dataset.n_patterns, chunk):
            stop = min(start + chunk, dataset.n_patterns)
            modulus = measured_modulus(dataset.read_patterns(slice(start, stop)))
            order = rng.permutation(stop - start)
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # checked below
                for b in range(0, len(order), config.batch_size):
                    rows = order[b:b + config.batch_size]
                    minibatch_step(obj, probe, windows.take(rows + start), modulus[rows], config, valid)
        if not np.isfinite(obj).all():
            raise NumericalError("the global rPIE estimate became non-finite; check the data for bad patterns "
                                 "or train with `train.model.estimate` = group")
    return GlobalEstimate(obj, canvas.origin_x, canvas.origin_y, windows)
