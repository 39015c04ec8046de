"""The iterative engines on ptycho's conventions (docs/conventions.md): ePIE and rPIE with
minibatches (their update: :mod:`ptycho.iterative.pie`) and maximum likelihood
(:mod:`ptycho.iterative.ml`), the probe known or refined, with mixed-state probes and position
refinement (:mod:`ptycho.iterative.positions`) in ePIE and rPIE.

:func:`reconstruct_arrays` sets up the working canvas around the scan (with room for the windows
to move when positions are refined), runs the engine's iterations, stops with an error when one
turns non-finite, hands each iteration's state to a callback, and cuts the result to the object
frame (:mod:`ptycho.iterative.results`); :func:`reconstruct` does the same for a dataset.

The minibatches of each iteration are a random permutation of the positions drawn from
``numpy.random.default_rng(seed)``: same data and options ⇒ identical output.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ptycho.config.iterative import IterativeConfig
from ptycho.errors import ConfigError, NumericalError
from ptycho.iterative.modulus import fft_valid, measured_modulus
from ptycho.iterative.pie import hold_probe_power, pie_iteration
from ptycho.iterative.positions import PositionState
from ptycho.iterative.results import IterationState, ReconstructionResult, cut_result
from ptycho.physics.modes import resize_modes
from ptycho.physics.operators.geometry import Windows, check_probe_shape, window_geometry
from ptycho.physics.probe import probe_energy

__all__ = ["Canvas", "IterationState", "ReconstructionResult", "canvas_for", "reconstruct", "reconstruct_arrays"]


@dataclass(frozen=True)
class Canvas:
    """The working canvas: ``shape`` pixels whose pixel ``(0, 0)`` is global ``(origin_y, origin_x)``."""

    origin_x: int
    origin_y: int
    shape: tuple[int, int]


def canvas_for(x: np.ndarray, y: np.ndarray, N: int, object_shape: tuple[int, int] | None) -> Canvas:
    """A canvas holding the object frame (global pixel 0 to ``object_shape``) and every window's
    ``(N+1)×(N+1)`` bilinear block; without ``object_shape`` the frame runs from global pixel 0
    to the last block pixel. Origin 0 unless a window reaches below pixel 0."""
    half = (N - 1) / 2.0
    col0 = math.floor(float(np.min(x)) - half)
    row0 = math.floor(float(np.min(y)) - half)
    col1 = math.floor(float(np.max(x)) - half) + N + 1
    row1 = math.floor(float(np.max(y)) - half) + N + 1
    height, width = object_shape if object_shape is not None else (0, 0)
    ox, oy = min(0, col0), min(0, row0)
    return Canvas(ox, oy, (max(row1, height) - oy, max(col1, width) - ox))


def _options(config: IterativeConfig | None, overrides: dict[str, Any]) -> IterativeConfig:
    given = {k: v for k, v in overrides.items() if v is not None}
    if config is None:
        return IterativeConfig(**given)
    return IterativeConfig(**{**config.model_dump(), **given}) if given else config


def reconstruct_arrays(
    counts: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    probe: np.ndarray,
    *,
    object_shape: tuple[int, int] | None = None,
    config: IterativeConfig | None = None,
    initial_object: np.ndarray | None = None,
    callback: Callable[[IterationState], None] | None = None,
    mask: np.ndarray | None = None,
    **options: Any,
) -> ReconstructionResult:
    """ePIE / rPIE / ML on in-memory arrays (the engine behind :func:`reconstruct`).

    Parameters
    ----------
    counts : (M, N, N) float
        Diffraction in photon counts, DC-centred.
    x, y : (M,) float64
        Probe centres, object pixels (the initial ones with ``refine_positions``).
    probe : (N, N) or (K, N, N) complex64
        Known (initial) probe, √counts; ``(K, N, N)`` is a mixed state of ``K`` modes.
    object_shape : (H, W), optional
        The object frame (origin 0) the output covers.
    config : IterativeConfig, optional
        Options; keyword ``options`` (``engine=``, ``iterations=``, …) override its fields.
    initial_object : (H, W) complex, optional
        Start from this canvas (e.g. a previous result's ``object`` without ``crop_to_scan``)
        instead of ones.
    callback : callable, optional
        Called with an :class:`IterationState` after every iteration.
    mask : (N, N) bool, optional
        Valid detector pixels (DC-centred); the modulus update keeps the predicted modulus
        elsewhere and the error leaves them out (docs/measured-data.md#masks).
    """
    cfg = _options(config, options)
    counts = np.asarray(counts)
    M, N = _check_arrays(counts, x, y, probe)
    modulus, valid = measured_modulus(counts), fft_valid(mask)
    positions = PositionState(x, y, cfg)
    canvas = _canvas(x, y, N, object_shape, PositionState.margin(cfg))
    windows = window_geometry(x, y, N, canvas.origin_x, canvas.origin_y)
    probe = np.array(probe if cfg.probe_modes is None else resize_modes(probe, cfg.probe_modes), np.complex64)
    obj = _start_object(initial_object, canvas.shape)
    return _run_iterations(cfg, obj, probe, windows, positions, modulus, valid, canvas,
                           _object_frame(canvas, object_shape), callback)


def _run_iterations(cfg: IterativeConfig, obj: np.ndarray, probe: np.ndarray, windows: Windows, positions: PositionState,
                    modulus: np.ndarray, valid: np.ndarray | None, canvas: Canvas, frame: tuple[int, int, int, int],
                    callback: Callable[[IterationState], None] | None) -> ReconstructionResult:
    """Run ``cfg.iterations`` iterations of the engine (:func:`_engine`) on ``obj`` and ``probe``
    (updated in place; the probe power held at its start) from the ``(M, N, N)`` measured
    ``modulus``, moving ``positions`` where they are refined, and cut the result to ``frame``
    (:func:`_object_frame`). ``callback`` gets each iteration's state; the time it takes is not
    counted as the engine's.

    Raises
    ------
    NumericalError
        An iteration's error or the object became non-finite.
    """
    N = modulus.shape[-1]
    probe_power = probe_energy(probe)
    rng = np.random.default_rng(cfg.seed)
    measured = modulus if valid is None else np.where(valid, modulus, np.float32(0))
    total = float(np.sum(measured.astype(np.float64) ** 2)) or 1.0
    errors = np.zeros(cfg.iterations)
    origin = (canvas.origin_x, canvas.origin_y)

    iterate, info = _engine(cfg, modulus, valid, windows, canvas.shape, probe, probe_power, rng)
    t0 = time.perf_counter()
    for it in range(cfg.iterations):
        moving = positions if cfg.refine_positions and positions.active(it) else None
        errors[it] = iterate(obj, probe, windows, moving) / total
        if moving is not None:  # the windows at the positions this iteration left
            windows = moving.windows(N, *origin)
        if not (math.isfinite(errors[it]) and np.isfinite(obj).all()):
            raise NumericalError(f"{cfg.engine}: the reconstruction became non-finite at iteration {it + 1}; "
                                 + DIVERGENCE_ADVICE[cfg.engine])
        if callback is not None:
            paused = time.perf_counter()
            elapsed, done = paused - t0, it + 1
            snapshot = lambda done=done, elapsed=elapsed, at=windows: cut_result(  # noqa: E731
                obj, probe, at, origin, frame, errors[:done], elapsed, cfg, (positions.x, positions.y), info)
            callback(IterationState(done, cfg.iterations, float(errors[it]), elapsed, obj, probe, snapshot))
            t0 += time.perf_counter() - paused  # time spent in the callback is not the engine's
    return cut_result(obj, probe, windows, origin, frame, errors, time.perf_counter() - t0, cfg,
                      (positions.x, positions.y), info)


DIVERGENCE_ADVICE = {
    "rpie": "raise `iterative.alpha`/`iterative.beta` or use a smaller `iterative.batch_size`",
    "epie": "lower `iterative.alpha`/`iterative.beta` or use a smaller `iterative.batch_size`",
    "ml": "check the counts for bad patterns, or raise `iterative.alpha`",
}


Iterate = Callable[[np.ndarray, np.ndarray, Windows, "PositionState | None"], float]


def _engine(
    cfg: IterativeConfig, modulus: np.ndarray, valid: np.ndarray | None, windows: Windows, shape: tuple[int, int],
    probe: np.ndarray, probe_power: float, rng: np.random.Generator,
) -> tuple[Iterate, dict[str, Any]]:
    """The engine's iteration and what it resolved at set-up (``info``): ``iterate(obj, probe,
    windows, positions)`` updates both in place (the probe only with ``probe_update``,
    renormalised to ``probe_power``; the positions, when given, by refinement) and returns
    ``Σ(|Ψ| − A)²`` over the ``valid`` pixels, measured before the updates.

    Raises
    ------
    ConfigError
        ``ml`` with a mixed-state probe or with position refinement (rPIE and ePIE have both).
    """
    if cfg.engine == "ml":
        from ptycho.iterative.ml import MaximumLikelihood

        if probe.ndim == 3 or cfg.refine_positions:
            raise ConfigError("`iterative.engine` = ml reconstructs a one-mode probe at fixed positions; for "
                              f"{'probe modes' if probe.ndim == 3 else 'position refinement'} use rpie or epie"
                              + (" (or `iterative.probe_modes` = 1)" if probe.ndim == 3 else ""))
        solver = MaximumLikelihood(np.square(modulus), windows, shape, probe, cfg, valid=valid)

        def ml_iteration(obj: np.ndarray, probe: np.ndarray, windows: Windows, positions: PositionState | None) -> float:
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # non-finite: the caller raises
                sq_error = solver.iterate(obj, probe)
            hold_probe_power(obj, probe, probe_power, cfg)
            return sq_error

        return ml_iteration, {"regulariser": solver.kind, "regulariser_weight": solver.weight}
    return (lambda obj, probe, windows, positions: pie_iteration(
        obj, probe, probe_power, windows, modulus, valid, rng.permutation(len(windows)), cfg, positions)), {}


def _check_arrays(counts: np.ndarray, x: np.ndarray, y: np.ndarray, probe: np.ndarray) -> tuple[int, int]:
    """``(M, N)`` of a ``(M, N, N)`` stack whose positions and probe (``(N, N)`` or ``(K, N, N)``)
    match it (ValueError if not)."""
    if counts.ndim != 3 or counts.shape[1] != counts.shape[2] or counts.shape[0] == 0:
        raise ValueError(f"counts must be a non-empty (M, N, N) stack; got shape {counts.shape}")
    M, N = counts.shape[0], counts.shape[-1]
    check_probe_shape(np.shape(probe))
    if np.shape(probe)[-2:] != (N, N) or np.shape(x) != (M,) or np.shape(y) != (M,):
        raise ValueError(f"probe {np.shape(probe)}, x {np.shape(x)}, y {np.shape(y)} do not match "
                         f"{M} patterns of {N}×{N}: expected ({N}, {N}) or (K, {N}, {N}), ({M},), ({M},)")
    return M, N


def _canvas(x: np.ndarray, y: np.ndarray, N: int, object_shape: tuple[int, int] | None, margin: int) -> Canvas:
    """:func:`canvas_for`, with room for every window to move ``margin`` pixels."""
    if not margin:
        return canvas_for(x, y, N, object_shape)
    reach_x = np.array([np.min(x) - margin, np.max(x) + margin])
    reach_y = np.array([np.min(y) - margin, np.max(y) + margin])
    return canvas_for(reach_x, reach_y, N, object_shape)


def _start_object(initial_object: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """The canvas to start from: ones, or a copy of ``initial_object`` of exactly ``shape``."""
    if initial_object is None:
        return np.ones(shape, np.complex64)
    obj = np.array(initial_object, np.complex64)
    if obj.shape != shape:
        raise ValueError(f"initial_object has shape {obj.shape}; this scan needs {shape}")
    return obj


def _object_frame(canvas: Canvas, object_shape: tuple[int, int] | None) -> tuple[int, int, int, int]:
    """``(row0, row1, col0, col1)`` of the object frame on the canvas (the whole canvas without one)."""
    if object_shape is None:
        return (0, canvas.shape[0], 0, canvas.shape[1])
    return (-canvas.origin_y, -canvas.origin_y + object_shape[0], -canvas.origin_x, -canvas.origin_x + object_shape[1])


def reconstruct(
    dataset: Any,
    *,
    engine: str | None = None,
    iterations: int | None = None,
    config: IterativeConfig | None = None,
    initial_object: np.ndarray | None = None,
    callback: Callable[[IterationState], None] | None = None,
    **options: Any,
) -> ReconstructionResult:
    """Reconstruct the object of a ptycho dataset with ePIE, rPIE or maximum likelihood
    (:mod:`ptycho.iterative.ml`), the dataset's probe known.

    Parameters
    ----------
    dataset : ptycho.data.dataset.Dataset or path
        A loaded dataset, or a path for :func:`ptycho.io.datasets.load_dataset`.
    engine : {"rpie", "epie", "ml"}
    iterations : int
    config : IterativeConfig, optional
        Full options; ``engine``, ``iterations`` and other keywords (``alpha``, ``beta``,
        ``probe_update``, ``batch_size``, ``seed``, ``crop_to_scan``, ``support_fraction``)
        override its fields.
    initial_object, callback
        See :func:`reconstruct_arrays`.

    Returns
    -------
    ReconstructionResult

    Raises
    ------
    ptycho.errors.DataError
        Unreadable or invalid dataset (exit code 3).
    ptycho.errors.NumericalError
        The iterations diverged to NaN/Inf (exit code 4).
    pydantic.ValidationError
        Invalid options.
    """
    from ptycho.data.dataset import Dataset
    from ptycho.io.datasets import load_dataset

    cfg = _options(config, {"engine": engine, "iterations": iterations, **options})
    owned = not isinstance(dataset, Dataset)
    ds = load_dataset(dataset) if owned else dataset
    try:
        counts = ds.read_patterns()
        object_shape = None if ds.object is None else tuple(int(s) for s in ds.object.shape[-2:])
        return reconstruct_arrays(counts, ds.x, ds.y, ds.probe, object_shape=object_shape, config=cfg,
                                  initial_object=initial_object, callback=callback, mask=ds.mask)
    finally:
        if owned:
            ds.close()
