"""A global rPIE (or maximum-likelihood) estimate of a whole scan, streamed from its dataset: the
PINN's input.

A network that sees one group of patterns cannot recover the object's low spatial frequencies
(a single pattern transfers them weakly, and each group's phase offset is free); only the overlap
across the *whole* scan fixes them. A few rPIE passes over every position do exactly that, at a
cost far below the network's own (measured in ``benchmarks/RESULTS.md``). The PINN
reads each group member's window of this estimate as input channels (``model.estimate =
"global"``), so training and inference see estimates made the same way.

**Leave-fold-out estimates** (``folds ≥ 2``, ``model.estimate_folds``). Trained through the
Poisson likelihood of pattern ``j``, a network whose input window was fitted to pattern ``j``
itself learns to pass that pattern's noise through: copying its input already fits the noise. So the
positions are split at random into folds, one estimate is made per fold from the patterns of the
*other* folds, and each position reads the estimate of its own fold. The noise of the input is then
independent of the noise of the pattern the loss compares against, and the best the network can
do is to predict the object, not the noise — it learns to denoise (the principle of Noise2Noise and
of J-invariant denoisers). Inference builds its input the same way, so the network sees estimates of
the kind it was trained on. Groups of several positions (``gridsize > 1``) take all their members
from one fold (:func:`ptycho.data.grouping.make_groups` ``labels``).

**When to stop** (``patience`` and ``max_passes``: ``model.estimate_patience``,
``model.estimate_max_passes``). How many passes help depends on the dose: with a focused probe at
1e6 photons per pattern, 10 passes at alpha 0.1 reach phase SSIM 0.75 and 40 reach 0.83, while at
1e4 the estimate is flat from 10 passes on and then slowly fits the noise (docs/model.md). The
held-out fold tells which case a scan is in, from the data alone: the patterns of fold ``k`` are
never fitted by estimate ``k``, so their misfit ``Σ(|F(P·O_j)| − A_j)²`` falls while the estimate
gains information and rises once it fits noise (or stops changing) — a validation loss. After the
``passes`` every estimate gets, each fold's estimate goes on while that misfit falls, keeps its
pass of lowest held-out misfit and stops ``patience`` passes after it.

**Engines** (``model.estimate_engine``). rPIE fits every pattern's modulus; at low dose that fits
the Poisson noise too. The maximum-likelihood engine (:mod:`ptycho.iterative.ml`: the Poisson
likelihood with a regulariser) gives a far better estimate there, at the cost of holding the
patterns one estimate is made from in memory (the other folds': (folds − 1)/folds of the scan). The held-out continuation works for either; the model runs ML for a
fixed number of iterations (``model.estimate_ml_iterations``).

Memory (rPIE) is the canvas plus one chunk of patterns: the dataset is read ``chunk`` patterns at a
time, in storage order, and each chunk's positions are visited in a seeded random order in
minibatches (:func:`ptycho.iterative.pie.minibatch_step`). Same dataset, passes and seed ⇒ same
estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ptycho.config.iterative import IterativeConfig
from ptycho.data.dataset import Dataset
from ptycho.errors import ConfigError, NumericalError
from ptycho.iterative.engines import canvas_for
from ptycho.iterative.modulus import fft_valid, measured_modulus, modulus_misfit
from ptycho.iterative.pie import minibatch_step
from ptycho.physics.operators.geometry import Windows, window_geometry
from ptycho.physics.operators.numpy_ops import extract, farfield
from ptycho.seeding import seed_stream

STREAM_CHUNK = 1024
"""Patterns read from the dataset at a time."""
MISFIT_BATCH = 256
"""Held-out patterns whose far field is formed at once when the misfit is measured."""


@dataclass(frozen=True, eq=False)
class GlobalEstimate:
    """The estimate(s) on one canvas and every position's window on it.

    With ``folds`` (a leave-fold-out estimate) there is one object per fold, each made from the
    patterns of every *other* fold, and position ``j`` reads the object of its own fold
    ``folds[j]``: its input never contains its own pattern's noise (module docstring).

    Attributes
    ----------
    objects : tuple of (H, W) complex64
        Ones where no probe reached; one per fold, or one for the whole scan.
    origin_x, origin_y : int
        Global object pixel of canvas pixel ``(0, 0)``.
    windows : Windows
        The dataset's positions on this canvas.
    folds : (M,) int64 or None
        Each position's fold.
    passes : tuple of int
        The rPIE passes each object is the result of (more than ``passes`` where the held-out
        misfit kept falling).
    passes_run : tuple of int
        The passes each fold ran: up to ``patience`` more than it kept, the cost to count.
    engine : str
        ``"rpie"`` (passes are rPIE passes) or ``"ml"`` (ML iterations).
    """

    objects: tuple[np.ndarray, ...]
    origin_x: int
    origin_y: int
    windows: Windows
    folds: np.ndarray | None = None
    passes: tuple[int, ...] = ()
    passes_run: tuple[int, ...] = ()
    engine: str = "rpie"

    @property
    def object(self) -> np.ndarray:
        """The whole-scan estimate (the first fold's with folds)."""
        return self.objects[0]

    def patches(self, index: np.ndarray) -> np.ndarray:
        """The ``N×N`` input windows of positions ``index`` (any shape ``S``): ``S + (N, N)`` complex64."""
        index = np.asarray(index, dtype=np.int64)
        flat = index.ravel()
        if self.folds is None:
            out = extract(self.object, self.windows.take(flat))
        else:
            out = np.empty((flat.size, self.windows.N, self.windows.N), np.complex64)
            fold = self.folds[flat]
            for k, obj in enumerate(self.objects):
                rows = np.flatnonzero(fold == k)
                if rows.size:
                    out[rows] = extract(obj, self.windows.take(flat[rows]))
        return out.reshape(*index.shape, self.windows.N, self.windows.N)


def estimate_folds(n_patterns: int, folds: int, seed: int) -> np.ndarray | None:
    """Each position's fold, ``(M,)`` int64, balanced and seeded; None for fewer than 2 folds."""
    if folds < 2:
        return None
    order = seed_stream(seed, "estimate folds").permutation(n_patterns)
    labels = np.empty(n_patterns, np.int64)
    labels[order] = np.arange(n_patterns) % folds
    return labels


def check_engine_takes_probe(engine: str, probe: np.ndarray) -> None:
    """ConfigError when ``engine`` is ml and ``probe`` has incoherent modes ``(K, N, N)``: the ML
    engine takes one mode."""
    if engine == "ml" and np.ndim(probe) == 3:
        raise ConfigError(f"the model's input estimate is made by ML (`train.model.estimate_engine` = ml), which "
                          f"takes a one-mode probe, and this probe has {np.shape(probe)[0]} modes; give a "
                          "one-mode probe or train with `train.model.estimate_engine` = rpie")


def global_estimate(dataset: Dataset, passes: int, *, folds: int = 0, alpha: float | None = None,
                    batch_size: int | None = None, patience: int = 0, max_passes: int | None = None,
                    engine: str = "rpie", chunk: int = STREAM_CHUNK, seed: int = 0) -> GlobalEstimate:
    """``passes`` rPIE passes (``engine`` ``"rpie"``) or ML iterations (``"ml"``) with the dataset's
    probe, starting from a unit object: over every position, or — with ``folds ≥ 2`` — one estimate
    per fold over the positions of the other folds.

    With folds, ``patience ≥ 1`` and ``max_passes > passes``, each fold's estimate goes on after
    ``passes`` while the misfit ``Σ(|Ψ| − A)²`` of the fold's own patterns, which it never fitted,
    keeps falling: it stops at ``max_passes`` or once ``patience`` passes in a row have not lowered
    it, and keeps its pass of lowest misfit from ``passes`` on (module docstring, *when to stop*).
    Only that one number, where to stop, depends on fold ``k``'s own patterns.
    ``alpha`` and ``batch_size`` (rPIE's) default to those of
    :class:`~ptycho.config.iterative.IterativeConfig`; ML has its defaults (Poisson likelihood, the
    default regulariser) and holds the patterns of one estimate in memory.

    Raises
    ------
    ConfigError
        ``engine`` ml with a mixed-state probe.
    NumericalError
        The estimate became non-finite (exit code 4).
    """
    check_engine_takes_probe(engine, dataset.probe)
    options = {k: v for k, v in {"alpha": alpha, "batch_size": batch_size}.items() if v is not None}
    config = IterativeConfig(engine="rpie", iterations=max(passes, 1), seed=seed, **options)
    x, y, N = np.asarray(dataset.x), np.asarray(dataset.y), dataset.N
    canvas = canvas_for(x, y, N, None)
    windows = window_geometry(x, y, N, canvas.origin_x, canvas.origin_y)
    labels = estimate_folds(dataset.n_patterns, folds, seed)
    uses = [None] if labels is None else [labels != k for k in range(folds)]
    longest = passes if labels is None or patience < 1 else max(passes, max_passes or passes)
    valid = fft_valid(dataset.mask)  # masked pixels keep their predicted modulus

    def advance(use: np.ndarray | None) -> Callable[[np.ndarray, np.ndarray], None]:
        if engine == "ml":
            return _ml_iterations(dataset, windows, canvas.shape, seed, chunk, use, valid)
        return _rpie_passes(dataset, windows, config, chunk, seed, use, valid)

    # one estimate at a time: an ML estimate's patterns are released before the next fold's are read
    runs = [_estimate(dataset, windows, np.ones(canvas.shape, np.complex64), (passes, longest, patience),
                      advance(use), chunk, use, valid) for use in uses]
    return GlobalEstimate(tuple(obj for obj, _, _ in runs), canvas.origin_x, canvas.origin_y, windows, labels,
                          tuple(kept for _, kept, _ in runs), tuple(ran for _, _, ran in runs), engine)


def _estimate(dataset: Dataset, windows: Windows, obj: np.ndarray, schedule: tuple[int, int, int],
              advance: Callable[[np.ndarray, np.ndarray], None], chunk: int,
              use: np.ndarray | None, valid: np.ndarray | None) -> tuple[np.ndarray, int, int]:
    """Passes of ``advance(obj, probe)`` (one rPIE pass or ML iteration over the positions where
    ``use``, in place) on ``obj`` for ``schedule = (passes, longest, patience)``: ``passes``, then up
    to ``longest`` while the misfit of the other positions falls. Returns the estimate, the number of
    passes it is the result of and the number run (up to ``patience`` more)."""
    passes, longest, patience = schedule
    probe = np.array(dataset.probe, np.complex64)
    best, best_misfit, kept, done = obj, np.inf, passes, 0
    while done < longest:
        done += 1
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # checked below
            advance(obj, probe)
        if not np.isfinite(obj).all():
            raise NumericalError("the global estimate became non-finite; check the data for bad patterns "
                                 "or train with `train.model.estimate` = group")
        if longest == passes or done < passes:
            continue
        misfit = _misfit(dataset, obj, probe, windows, ~use, valid, chunk)
        if done == passes or misfit < best_misfit:
            best, best_misfit, kept = obj.copy(), misfit, done
        elif done - kept >= patience:
            break
    return (obj, passes, passes) if longest == passes else (best, kept, done)


def _rpie_passes(dataset: Dataset, windows: Windows, config: IterativeConfig, chunk: int, seed: int,
                 use: np.ndarray | None, valid: np.ndarray | None) -> Callable[[np.ndarray, np.ndarray], None]:
    """One rPIE pass over the positions where ``use`` (all without it), streamed a chunk at a time,
    each chunk's positions in a seeded random order in minibatches; ``valid`` detector pixels
    (:func:`~ptycho.iterative.modulus.fft_valid`) or None."""
    rng = np.random.default_rng(seed)

    def advance(obj: np.ndarray, probe: np.ndarray) -> None:
        for start in range(0, dataset.n_patterns, chunk):
            stop = min(start + chunk, dataset.n_patterns)
            rows_in_chunk = np.arange(stop - start) if use is None else np.flatnonzero(use[start:stop])
            if rows_in_chunk.size == 0:
                continue
            modulus = measured_modulus(dataset.read_patterns(slice(start, stop)))
            order = rows_in_chunk[rng.permutation(rows_in_chunk.size)]
            for b in range(0, len(order), config.batch_size):
                rows = order[b:b + config.batch_size]
                minibatch_step(obj, probe, windows.take(rows + start), modulus[rows], config, valid)

    return advance


def _ml_iterations(dataset: Dataset, windows: Windows, shape: tuple[int, int], seed: int, chunk: int,
                   use: np.ndarray | None, valid: np.ndarray | None) -> Callable[[np.ndarray, np.ndarray], None]:
    """One iteration of the maximum-likelihood engine (:class:`~ptycho.iterative.ml.MaximumLikelihood`,
    its defaults) over the positions where ``use`` (all without it); their counts are read once, a
    chunk at a time, and held."""
    from ptycho.iterative.ml import MaximumLikelihood

    rows = np.arange(dataset.n_patterns) if use is None else np.flatnonzero(use)
    counts = np.empty((rows.size, dataset.N, dataset.N), np.float32)
    filled = 0
    for start in range(0, dataset.n_patterns, chunk):
        picked = rows[(rows >= start) & (rows < start + chunk)] - start
        if picked.size:
            patterns = dataset.read_patterns(slice(start, min(start + chunk, dataset.n_patterns)))
            counts[filled:filled + picked.size] = np.square(measured_modulus(patterns[picked]))
            filled += picked.size
    config = IterativeConfig(engine="ml", iterations=1, seed=seed)
    solver = MaximumLikelihood(counts, windows.take(rows), shape, np.array(dataset.probe, np.complex64),
                               config, valid=valid)
    return lambda obj, probe: solver.iterate(obj, probe)  # the probe stays (no probe update)


def _misfit(dataset: Dataset, obj: np.ndarray, probe: np.ndarray, windows: Windows, rows: np.ndarray,
            valid: np.ndarray | None, chunk: int) -> float:
    """``Σ(|F(P·O_j)| − A_j)²`` over the positions where ``rows``, a chunk of patterns at a time."""
    misfit = 0.0
    for start in range(0, dataset.n_patterns, chunk):
        stop = min(start + chunk, dataset.n_patterns)
        picked = np.flatnonzero(rows[start:stop])
        if picked.size == 0:
            continue
        modulus = measured_modulus(dataset.read_patterns(slice(start, stop)))
        for b in range(0, picked.size, MISFIT_BATCH):
            sel = picked[b:b + MISFIT_BATCH]
            patches = extract(obj, windows.take(sel + start))
            waves = patches[:, None] * probe if probe.ndim == 3 else patches * probe
            misfit += modulus_misfit(farfield(waves), modulus[sel], valid)
    return misfit
