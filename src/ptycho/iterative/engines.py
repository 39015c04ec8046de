"""ePIE and rPIE with minibatches, on ptycho's conventions (docs/conventions.md).

**Model.** Pattern ``j`` is ``I_j = |F(P · E_j O)|²`` with ``E_j`` the bilinear window extraction
at probe centre ``(x_j, y_j)`` and ``F`` the unitary DFT — the NumPy backend of
:mod:`ptycho.physics.operators`, whose TensorFlow backend ``ptycho simulate`` uses (one geometry,
one FFT convention, one contract test for both) — and ``P`` the probe in √counts. The measured
modulus is ``A_j = √I_j``.

**One minibatch** ``S`` of ``B`` positions (all from the current estimates)::

    ψ_j  = P · E_j O                                 exit waves
    Δψ_j = F⁻¹[ F ψ_j · (A_j / |F ψ_j| − 1) ]        modulus projection minus the wave
    num  = Σ_j E_jᵀ (P̄ · Δψ_j)                       object gradient, placed by the adjoint
    D    = Σ_j E_jᵀ |P|²                             summed illumination of the batch
    rPIE: O += num / ((1 − α)·D + α·max D)
    ePIE: O += α · num / max D

and, with ``probe_update``, from the same ``ψ``::

    rPIE: P += Σ_j Ō_j Δψ_j / ((1 − β)·Σ_j|O_j|² + β·max Σ_j|O_j|²)
    ePIE: P += β · Σ_j Ō_j Δψ_j / max Σ_j|O_j|²          (O_j = E_j O)

With ``B = 1`` these are exactly serial ePIE (Maiden & Rodenburg 2009) and rPIE (Maiden, Johnson
& Li 2017). For ``B > 1`` overlapping windows of the batch are *summed* in the numerator and in
the denominator, so where windows overlap the step is their illumination-weighted average rather
than ``B`` stacked steps (stable for any ``B``; ``B = M`` is a parallel, DM-like gradient step).
The probe power is held at the dataset's ``Σ|P|²`` (the photon gauge) after each probe update,
with the inverse factor moved to the object, so amplitudes stay absolute.

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
from ptycho.errors import NumericalError
from ptycho.iterative.modulus import fft_valid, measured_modulus, modulus_correction
from ptycho.iterative.results import IterationState, ReconstructionResult, cut_result
from ptycho.physics.operators.geometry import Windows, block_extent, window_geometry
from ptycho.physics.operators.numpy_ops import backfield, extract, farfield, place
from ptycho.physics.probe import probe_energy

__all__ = ["Canvas", "IterationState", "ReconstructionResult", "canvas_for", "minibatch_step", "reconstruct", "reconstruct_arrays"]


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
        Probe centres, object pixels.
    probe : (N, N) complex64
        Known (initial) probe, √counts.
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
    canvas = canvas_for(x, y, N, object_shape)
    windows = window_geometry(x, y, N, canvas.origin_x, canvas.origin_y)
    probe = np.array(probe, np.complex64)
    probe_power = probe_energy(probe)
    obj = _start_object(initial_object, canvas.shape)
    rng = np.random.default_rng(cfg.seed)
    measured = modulus if valid is None else np.where(valid, modulus, np.float32(0))
    total = float(np.sum(measured.astype(np.float64) ** 2)) or 1.0
    errors = np.zeros(cfg.iterations)
    frame = _object_frame(canvas, object_shape)
    origin = (canvas.origin_x, canvas.origin_y)

    iterate, info = _engine(cfg, modulus, valid, windows, canvas.shape, probe, probe_power, rng)
    t0 = time.perf_counter()
    for it in range(cfg.iterations):
        errors[it] = iterate(obj, probe) / total
        if not (math.isfinite(errors[it]) and np.isfinite(obj).all()):
            raise NumericalError(f"{cfg.engine}: the reconstruction became non-finite at iteration {it + 1}; "
                                 + DIVERGENCE_ADVICE[cfg.engine])
        if callback is not None:
            paused = time.perf_counter()
            elapsed, done = paused - t0, it + 1
            snapshot = lambda done=done, elapsed=elapsed: cut_result(  # noqa: E731
                obj, probe, windows, origin, frame, errors[:done], elapsed, cfg, info)
            callback(IterationState(done, cfg.iterations, float(errors[it]), elapsed, obj, probe, snapshot))
            t0 += time.perf_counter() - paused  # time spent in the callback is not the engine's
    return cut_result(obj, probe, windows, origin, frame, errors, time.perf_counter() - t0, cfg, info)


DIVERGENCE_ADVICE = {
    "rpie": "raise `iterative.alpha`/`iterative.beta` or use a smaller `iterative.batch_size`",
    "epie": "lower `iterative.alpha`/`iterative.beta` or use a smaller `iterative.batch_size`",
    "ml": "check the counts for bad patterns, or raise `iterative.alpha`",
}


def _engine(
    cfg: IterativeConfig, modulus: np.ndarray, valid: np.ndarray | None, windows: Windows, shape: tuple[int, int],
    probe: np.ndarray, probe_power: float, rng: np.random.Generator,
) -> tuple[Callable[[np.ndarray, np.ndarray], float], dict[str, Any]]:
    """The engine's iteration and what it resolved at set-up (``info``): ``iterate(obj, probe)``
    updates both in place (the probe only with ``probe_update``, renormalised to ``probe_power``)
    and returns ``Σ(|Ψ| − A)²`` over the ``valid`` pixels, measured before the updates."""
    if cfg.engine == "ml":
        from ptycho.iterative.ml import MaximumLikelihood

        solver = MaximumLikelihood(np.square(modulus), windows, shape, probe, cfg, valid=valid)

        def ml_iteration(obj: np.ndarray, probe: np.ndarray) -> float:
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # non-finite: the caller raises
                sq_error = solver.iterate(obj, probe)
            _hold_probe_power(obj, probe, probe_power, cfg)
            return sq_error

        return ml_iteration, {"regulariser": solver.kind, "regulariser_weight": solver.weight}
    return (lambda obj, probe: _iteration(obj, probe, probe_power, windows, modulus, valid,
                                          rng.permutation(len(windows)), cfg)), {}


def _hold_probe_power(obj: np.ndarray, probe: np.ndarray, probe_power: float, cfg: IterativeConfig) -> None:
    """With ``probe_update``: the probe back to the photon gauge, the inverse factor on the object."""
    if cfg.probe_update:
        scale = math.sqrt(probe_power / max(probe_energy(probe), 1e-300))
        probe *= np.float32(scale)
        obj *= np.float32(1.0 / scale)


def _check_arrays(counts: np.ndarray, x: np.ndarray, y: np.ndarray, probe: np.ndarray) -> tuple[int, int]:
    """``(M, N)`` of a ``(M, N, N)`` stack whose positions and probe match it (ValueError if not)."""
    if counts.ndim != 3 or counts.shape[1] != counts.shape[2] or counts.shape[0] == 0:
        raise ValueError(f"counts must be a non-empty (M, N, N) stack; got shape {counts.shape}")
    M, N = counts.shape[0], counts.shape[-1]
    if np.shape(probe) != (N, N) or np.shape(x) != (M,) or np.shape(y) != (M,):
        raise ValueError(f"probe {np.shape(probe)}, x {np.shape(x)}, y {np.shape(y)} do not match "
                         f"{M} patterns of {N}×{N}: expected ({N}, {N}), ({M},), ({M},)")
    return M, N


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


def _iteration(obj: np.ndarray, probe: np.ndarray, probe_power: float, windows: Windows, modulus: np.ndarray,
               valid: np.ndarray | None, order: np.ndarray, cfg: IterativeConfig) -> float:
    """One pass over every position in ``order``, minibatch by minibatch, updating ``obj`` (and
    ``probe``, renormalised to ``probe_power``) in place; returns ``Σ(|Ψ| − A)²``."""
    sq_error = 0.0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # non-finite: the caller raises
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start:start + cfg.batch_size]
            sq_error += minibatch_step(obj, probe, windows.take(batch), modulus[batch], cfg, valid)
    _hold_probe_power(obj, probe, probe_power, cfg)
    return sq_error


def minibatch_step(obj: np.ndarray, probe: np.ndarray, windows: Windows, modulus: np.ndarray, cfg: IterativeConfig,
                   valid: np.ndarray | None = None) -> float:
    """Update ``obj`` (and ``probe``) in place from one minibatch; return its ``Σ(|Ψ| − A)²``
    (over ``valid`` pixels, unshifted layout, when given: :func:`~ptycho.iterative.modulus.fft_valid`).

    The object step is formed on the sub-canvas the batch's windows span (a view of ``obj``).
    """
    patches = extract(obj, windows)  # (B, N, N) O_j
    spectra = farfield(patches * probe)
    delta, sq_error = modulus_correction(spectra, modulus, valid)
    dpsi = backfield(delta)  # (B, N, N) Δψ_j = ψ'_j − ψ_j
    r0, r1, c0, c1 = block_extent(windows)
    local = windows.shifted(-r0, -c0)
    num = place(np.conj(probe) * dpsi, local, (r1 - r0, c1 - c0))
    den = place(np.broadcast_to(np.abs(probe) ** 2, dpsi.shape), local, (r1 - r0, c1 - c0))
    den_max = float(den.max())
    if cfg.engine == "rpie":
        step = num / ((1.0 - cfg.alpha) * den + cfg.alpha * den_max)
    else:
        step = num * (cfg.alpha / den_max)
    if cfg.probe_update:
        pnum = np.sum(np.conj(patches) * dpsi, axis=0)
        pden = np.sum(np.abs(patches) ** 2, axis=0)
        pmax = float(pden.max())
        if cfg.engine == "rpie":
            probe += (pnum / ((1.0 - cfg.beta) * pden + cfg.beta * pmax)).astype(np.complex64)
        else:
            probe += (pnum * (cfg.beta / pmax)).astype(np.complex64)
    obj[r0:r1, c0:c1] += step.astype(np.complex64)
    return sq_error


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
