"""Analytic FLOP counts of the iterative engines (rPIE, ePIE, ML) and of the PINN's global-estimate
pre-pass, with the conventions of :mod:`benchmarks.flops` (FFT ``5·N²·log2(N²)``, complex multiply
6, …), so that PINN and iterative times are reported the same way.

Each count follows the code of :mod:`ptycho.iterative.pie` and :mod:`ptycho.iterative.ml` term
by term (comments name the line they count). Two kinds of work:

* **per pattern visit**: bilinear extract, illumination, FFT pair, modulus step, the adjoint
  placement — ``N²``-sized and the same everywhere;
* **per minibatch or canvas**: PIE forms its step over the *bounding box* of the minibatch's
  windows (a random minibatch of a dense scan spans much of the object), ML updates and regularises
  the whole canvas once per iteration. These depend on the scan, so the counts take the positions.

The counts are for a single-mode probe at fixed positions (the benchmarks' arms): mixed-state
modes multiply the per-pattern work and position refinement adds gradient extracts, neither
counted here.

The ML count is nominal: one gradient pass and one line-search pass per iteration. A step that
raised the objective costs one more gradient pass per backtrack (not counted: the engine does not
report them), so ML's achieved FLOP/s is a lower bound.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.flops import COMPLEX_ABS, COMPLEX_ABS2, COMPLEX_BY_REAL, COMPLEX_MUL, Flops, fft2_flops

COMPLEX_SUM = 2  # one complex accumulation per element (a sum over the batch, a dot product's add)


def extract_flops(N: int, complex_valued: bool = True) -> float:
    """``numpy_ops.extract``: a row lerp over ``N×(N+1)`` then a column lerp over ``N×N`` (subtract,
    times the fraction, add: 3 operations each)."""
    per = 3 * (2 if complex_valued else 1)
    return per * (N * (N + 1) + N * N)


def place_flops(N: int, complex_valued: bool = True) -> float:
    """``numpy_ops.place``: the adjoint lerps (``spread``, same count as :func:`extract_flops`) and
    the block accumulation into the double-precision canvas, ``(N+1)²`` adds."""
    return extract_flops(N, complex_valued) + (N + 1) ** 2 * (2 if complex_valued else 1)


def pie_pattern_flops(N: int, probe_update: bool = False) -> Flops:
    """One pattern's share of ``pie.minibatch_step``, the minibatch terms left out."""
    pixels = N * N
    elementwise = (extract_flops(N)  # patches = extract(obj, windows)
                   + pixels * COMPLEX_MUL  # patches * probe
                   + pixels * (COMPLEX_ABS + 1 + 2 + 1 + 1 + COMPLEX_BY_REAL)  # modulus_correction: |Ψ|, −A, vdot, A/|Ψ|, −1, Ψ·ratio
                   + pixels * COMPLEX_MUL  # conj(P) · Δψ
                   + place_flops(N)  # num
                   + place_flops(N, complex_valued=False))  # den (|P|² per window)
    if probe_update:
        elementwise += pixels * (COMPLEX_MUL + COMPLEX_SUM + COMPLEX_ABS2 + 1)  # Σ Ō_j Δψ_j and Σ |O_j|²
    return Flops(fft=2 * fft2_flops(N), elementwise=elementwise)


def pie_minibatch_flops(area: float, N: int, engine: str, probe_update: bool = False) -> Flops:
    """The per-minibatch terms of ``minibatch_step`` on a sub-canvas of ``area`` pixels: ``|P|²``,
    ``den.max()``, the step (rPIE: ``(1−α)·den + α·max`` and the division; ePIE: a scale), the
    object update; with ``probe_update`` the same for the probe."""
    step = 4 if engine == "rpie" else COMPLEX_BY_REAL
    elementwise = N * N * COMPLEX_ABS2 + area * (1 + step + 2)
    if probe_update:
        elementwise += N * N * (1 + step + 2)
    return Flops(elementwise=elementwise)


def block_areas(x: Any, y: Any, N: int, batch: int, seed: int = 0, chunk: int | None = None,
                use: Any = None) -> np.ndarray:
    """Bounding-box area of each minibatch of one PIE pass, replaying the engine's visiting order:
    a seeded random permutation of the positions (of each ``chunk`` of them in storage order, as
    the streamed global estimate reads them; only those where ``use``, when given)."""
    from ptycho.physics.operators.geometry import block_extent, window_geometry

    windows = window_geometry(np.asarray(x, np.float64), np.asarray(y, np.float64), N)
    rng, M = np.random.default_rng(seed), len(windows)
    chunk = chunk or M
    areas = []
    for start in range(0, M, chunk):
        stop = min(start + chunk, M)
        rows = np.arange(stop - start) if use is None else np.flatnonzero(np.asarray(use)[start:stop])
        order = start + rows[rng.permutation(rows.size)]
        for b in range(0, len(order), batch):
            r0, r1, c0, c1 = block_extent(windows.take(order[b:b + batch]))
            areas.append((r1 - r0) * (c1 - c0))
    return np.asarray(areas, np.float64)


def pie_iteration_flops(x: Any, y: Any, N: int, engine: str = "rpie", batch: int = 8, probe_update: bool = False,
                        seed: int = 0, chunk: int | None = None, use: Any = None) -> Flops:
    """One rPIE/ePIE iteration on the scan ``(x, y)``: a pass over every position (or over those
    where ``use``)."""
    areas = block_areas(x, y, N, batch, seed, chunk, use)
    per_batch = sum((pie_minibatch_flops(a, N, engine, probe_update) for a in areas), Flops())
    visits = len(np.asarray(x)) if use is None else int(np.count_nonzero(use))
    return pie_pattern_flops(N, probe_update) * visits + per_batch


REGULARISER_PER_PIXEL = {"tv": 63, "gradient": 28, "none": 0}
"""``regularisers.regulariser_terms`` per canvas pixel and iteration: value and gradient (forward differences
4, ``|∇O|²+η²`` 8, root and sum 2, the two quotients 6, the adjoint 8 → 28 for TV; 16 for the
quadratic penalty) plus the derivatives along the direction (35 TV, 12 quadratic)."""
ML_CANVAS_PER_PIXEL = 22
"""ML's other per-pixel work per iteration: preconditioning, the Polak–Ribière dot products and
candidate, applying the step, adding the regulariser's gradient."""


def ml_pattern_flops(N: int, probe_update: bool = False) -> Flops:
    """One pattern's share of an ML iteration: the gradient pass and the line-search pass."""
    pixels = N * N
    gradient = (extract_flops(N) + pixels * COMPLEX_MUL  # extract, illuminate
                + pixels * (COMPLEX_ABS2 + 4 + 3 + 3 + 1 + 2 + COMPLEX_BY_REAL)  # λ, terms, diff, weight, Σ, vdot, Ψ·w
                + pixels * COMPLEX_MUL + place_flops(N))  # conj(P)·χ, placed
    k = 2 if probe_update else 1  # search directions
    line = (2 * extract_flops(N) + 2 * pixels * COMPLEX_MUL  # the estimate's and the direction's far fields
            + pixels * (COMPLEX_ABS2 + 1 + 2)  # λ + ε, weight
            + pixels * k * (COMPLEX_MUL + 1 + 2)  # slopes 2·Re(Ψ̄ ΔΨ_k), their sums with the weight
            + pixels * k * (k + 1) / 2 * (3 + 5 + COMPLEX_MUL + 3))  # Fisher and Newton terms per pair
    if probe_update:
        gradient += pixels * (COMPLEX_MUL + COMPLEX_SUM + COMPLEX_ABS2 + 1)
        line += pixels * COMPLEX_MUL
    return Flops(fft=(2 + 1 + k) * fft2_flops(N), elementwise=gradient + line)


def ml_iteration_flops(x: Any, y: Any, N: int, canvas_shape: tuple[int, int], batch: int = 64,
                       probe_update: bool = False, regulariser: str = "tv") -> Flops:
    """One nominal ML iteration on the scan ``(x, y)`` and its working canvas (module docstring)."""
    from ptycho.physics.operators.geometry import block_extent, window_geometry

    windows = window_geometry(np.asarray(x, np.float64), np.asarray(y, np.float64), N)
    M = len(windows)
    accumulate = 0.0  # g_obj[box] += placed batch (storage order)
    for start in range(0, M, batch):
        r0, r1, c0, c1 = block_extent(windows.take(np.arange(start, min(start + batch, M))))
        accumulate += 2 * (r1 - r0) * (c1 - c0)
    canvas = float(canvas_shape[0] * canvas_shape[1]) * (REGULARISER_PER_PIXEL[regulariser] + ML_CANVAS_PER_PIXEL)
    return ml_pattern_flops(N, probe_update) * M + Flops(elementwise=accumulate + canvas)


def engine_iteration_flops(dataset: Any, config: Any) -> Flops:
    """One iteration of ``ptycho.iterative.engines.reconstruct(dataset, config=config)``."""
    from ptycho.iterative.engines import canvas_for

    x, y, N = np.asarray(dataset.x), np.asarray(dataset.y), int(dataset.N)
    if config.engine == "ml":
        object_shape = None if dataset.object is None else tuple(int(s) for s in dataset.object.shape[-2:])
        shape = canvas_for(x, y, N, object_shape).shape
        return ml_iteration_flops(x, y, N, shape, config.batch_size, config.probe_update, config.regulariser)
    return pie_iteration_flops(x, y, N, config.engine, config.batch_size, config.probe_update, config.seed)


def misfit_pattern_flops(N: int) -> Flops:
    """One held-out pattern's misfit check in the global estimate (``streaming._misfit``): extract,
    illuminate, one FFT, ``|Ψ|``, the difference and its square summed."""
    return Flops(fft=fft2_flops(N), elementwise=extract_flops(N) + N * N * (COMPLEX_MUL + COMPLEX_ABS + 1 + 2))


def prepass_flops(model_config: Any, x: Any, y: Any, N: int, passes: Any = None) -> Flops:
    """The global-estimate pre-pass of a PINN reading ``model.estimate = "global"`` on the scan
    ``(x, y)`` (``ptycho.iterative.streaming.global_estimate``): rPIE passes of
    ``estimate_batch_size`` minibatches drawn per chunk, over every position or — with
    ``estimate_folds ≥ 2`` — one estimate per fold over the other folds' positions (``folds − 1``
    visits of each pattern a pass), and with the held-out continuation (``estimate_patience``) a
    misfit check of the fold's own patterns after every pass from ``global_passes`` on. ``passes``
    are the passes each fold ran (``GlobalEstimate.passes_run``, recorded by ``infer`` as
    ``estimate_passes_run``); default ``global_passes`` each. With ``estimate_engine`` ml, each
    estimate's ``estimate_ml_iterations`` ML iterations over its positions (:func:`ml_iteration_flops`
    at the ML engine's defaults). Zero when the model reads no global estimate."""
    from ptycho.config.iterative import IterativeConfig
    from ptycho.iterative.streaming import STREAM_CHUNK, estimate_folds

    if not model_config.uses_global_estimate:
        return Flops()
    seed, folds, least = int(model_config.seed), int(model_config.estimate_folds), int(model_config.global_passes)
    batch = model_config.estimate_batch_size or IterativeConfig(engine="rpie").batch_size
    labels = estimate_folds(len(np.asarray(x)), folds, seed)
    uses = [None] if labels is None else [labels != k for k in range(folds)]
    if model_config.estimate_by_ml:
        return _ml_prepass_flops(model_config, np.asarray(x), np.asarray(y), N, uses)
    runs = [least] * len(uses) if passes is None else [int(p) for p in passes]
    checked = (labels is not None and int(model_config.estimate_patience) > 0
               and int(model_config.estimate_max_passes) > least)
    total = Flops()
    for use, run in zip(uses, runs, strict=True):
        total = total + pie_iteration_flops(x, y, N, "rpie", batch, seed=seed, chunk=STREAM_CHUNK, use=use) * run
        if checked:
            total = total + misfit_pattern_flops(N) * (int(np.count_nonzero(~use)) * (run - least + 1))
    return total


def _ml_prepass_flops(model_config: Any, x: np.ndarray, y: np.ndarray, N: int, uses: list[Any]) -> Flops:
    """:func:`prepass_flops` of an ML global estimate: its iterations over each estimate's positions."""
    from ptycho.config.iterative import IterativeConfig
    from ptycho.iterative.engines import canvas_for

    defaults = IterativeConfig(engine="ml")
    shape = canvas_for(x, y, N, None).shape
    total = Flops()
    for use in uses:
        xs, ys = (x, y) if use is None else (x[use], y[use])
        iteration = ml_iteration_flops(xs, ys, N, shape, defaults.batch_size, False, defaults.regulariser)
        total = total + iteration * int(model_config.estimate_ml_iterations)
    return total
