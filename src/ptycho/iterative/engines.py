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

**Mixed states** (a probe ``(K, N, N)``, docs/reconstruction.md#mixed-state-reconstruction): one
exit wave per mode, ``ψ_jk = P_k · E_j O``; the modulus constraint acts on the summed intensity,
every mode's wave scaled by the same ratio (:func:`~ptycho.iterative.modulus.modulus_correction`);
the object step sums ``P̄_k Δψ_jk`` and ``|P_k|²`` over modes, and each mode is updated with its own
``Σ_j Ō_j Δψ_jk`` over the shared denominator. With ``orthogonalise_modes`` the modes are made
orthogonal after every iteration (a unitary mixing: the same counts). An ``(N, N)`` probe runs the
coherent formulas above unchanged; a ``(1, N, N)`` probe gives the same numbers.

**Positions** (``refine_positions``, :mod:`ptycho.iterative.positions`): from the same ``Δψ``, a
least-squares sub-pixel shift of each window of the batch, applied after the batch's update.

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
from ptycho.errors import ConfigError, NumericalError
from ptycho.iterative.modulus import fft_valid, measured_modulus, modulus_correction
from ptycho.iterative.positions import PositionState, least_squares_shifts
from ptycho.iterative.results import IterationState, ReconstructionResult, cut_result
from ptycho.physics.modes import orthogonalise_modes, resize_modes, summed_intensity
from ptycho.physics.operators.geometry import Windows, block_extent, check_probe_shape, window_geometry
from ptycho.physics.operators.numpy_ops import backfield, extract, extract_with_gradients, farfield, place
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
            _hold_probe_power(obj, probe, probe_power, cfg)
            return sq_error

        return ml_iteration, {"regulariser": solver.kind, "regulariser_weight": solver.weight}
    return (lambda obj, probe, windows, positions: _iteration(
        obj, probe, probe_power, windows, modulus, valid, rng.permutation(len(windows)), cfg, positions)), {}


def _hold_probe_power(obj: np.ndarray, probe: np.ndarray, probe_power: float, cfg: IterativeConfig) -> None:
    """With ``probe_update``: the modes orthogonalised (``orthogonalise_modes``, the counts
    unchanged), the probe back to the photon gauge, the inverse factor on the object."""
    if cfg.probe_update:
        if cfg.orthogonalise_modes and probe.ndim == 3:
            probe[...] = orthogonalise_modes(probe)
        scale = math.sqrt(probe_power / max(probe_energy(probe), 1e-300))
        probe *= np.float32(scale)
        obj *= np.float32(1.0 / scale)


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


def _iteration(obj: np.ndarray, probe: np.ndarray, probe_power: float, windows: Windows, modulus: np.ndarray,
               valid: np.ndarray | None, order: np.ndarray, cfg: IterativeConfig,
               positions: PositionState | None = None) -> float:
    """One pass over every position in ``order``, minibatch by minibatch, updating ``obj`` (and
    ``probe``: its modes orthogonalised with ``orthogonalise_modes``, renormalised to
    ``probe_power``) in place; returns ``Σ(|Ψ| − A)²``. With ``positions``, each batch's positions
    move by their least-squares shifts, and the offsets are held at zero mean at the end."""
    sq_error = 0.0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # non-finite: the caller raises
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start:start + cfg.batch_size]
            shifts = None if positions is None else np.empty((len(batch), 2))
            sq_error += minibatch_step(obj, probe, windows.take(batch), modulus[batch], cfg, valid, shifts)
            if positions is not None:
                positions.move(batch, shifts)
    if positions is not None:
        positions.constrain()
    _hold_probe_power(obj, probe, probe_power, cfg)
    return sq_error


def minibatch_step(obj: np.ndarray, probe: np.ndarray, windows: Windows, modulus: np.ndarray, cfg: IterativeConfig,
                   valid: np.ndarray | None = None, shifts: np.ndarray | None = None) -> float:
    """Update ``obj`` (and ``probe``) in place from one minibatch; return its ``Σ(|Ψ| − A)²``
    (over ``valid`` pixels, unshifted layout, when given: :func:`~ptycho.iterative.modulus.fft_valid`).

    ``probe`` is ``(N, N)`` or ``(K, N, N)`` modes. With ``shifts`` (a ``(B, 2)`` array), the
    least-squares position shift ``(δx, δy)`` of each window is written there (from the waves
    before this update, :func:`~ptycho.iterative.positions.least_squares_shifts`). The object step
    is formed on the sub-canvas the batch's windows span (a view of ``obj``).
    """
    if shifts is None:
        patches = extract(obj, windows)  # (B, N, N) O_j
    else:
        patches, d_dx, d_dy = extract_with_gradients(obj, windows)
    modes = probe.ndim == 3
    spectra = farfield(patches[:, None] * probe if modes else patches * probe)
    delta, sq_error = modulus_correction(spectra, modulus, valid)
    dpsi = backfield(delta)  # (B, [K,] N, N) Δψ_j = ψ'_j − ψ_j
    if shifts is not None:
        shifts[...] = least_squares_shifts(dpsi, probe, d_dx, d_dy)
    r0, r1, c0, c1 = block_extent(windows)
    local = windows.shifted(-r0, -c0)
    weighted = np.conj(probe) * dpsi
    num = place(weighted.sum(axis=1) if modes else weighted, local, (r1 - r0, c1 - c0))
    den = place(np.broadcast_to(summed_intensity(probe), patches.shape), local, (r1 - r0, c1 - c0))
    den_max = float(den.max())
    if cfg.engine == "rpie":
        step = num / ((1.0 - cfg.alpha) * den + cfg.alpha * den_max)
    else:
        step = num * (cfg.alpha / den_max)
    if cfg.probe_update:
        pnum = np.sum(np.conj(patches[:, None] if modes else patches) * dpsi, axis=0)
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
