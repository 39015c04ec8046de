"""pty-chi's LSQML with the Poisson noise model as an external reference (optional).

pty-chi (``ptychi``, Argonne) is not a dependency of ptycho: :func:`available` says whether it can
be imported, and the benchmark skips its rows with that reason when it cannot. It is installed
beside torch with ``--no-deps``; its one ``torchvision`` import (``GaussianBlur``, used only to draw
random initial objects, which this adapter never asks for) is satisfied by a stand-in module that
raises if it is ever called, when torchvision itself is absent.

**Conventions** (ptycho's, docs/conventions.md → pty-chi's):

* counts DC-centred → pty-chi ``data`` as they are, with ``fft_shift = True`` (its forward model
  puts DC at ``[0, 0]``);
* pty-chi's far field is the *unnormalised* DFT, ptycho's the unitary one: the probe is handed over
  as ``P / N`` so that ``|DFT(P/N · O)|² = |F_ortho(P · O)|²`` and the object keeps ptycho's
  absolute gauge; ``rescale_probe_intensity_in_first_epoch`` is off and the probe is fixed;
* positions are probe centres in object pixels, and pty-chi's window at position ``p`` starts at
  ``p − (N−1)/2`` like ptycho's: the positions go in unchanged, with the position origin
  *specified* as ``(0, 0)`` so the object buffer is ptycho's object frame (pty-chi interpolates
  sub-pixel windows by Fourier shift, ptycho bilinearly);
* the object starts at ones, like ptycho's engines; its support is ptycho's (summed probe
  intensity above 5 % of its maximum), so ``benchmarks.scoring.score`` cuts it the same way;
* ``remove_object_probe_ambiguity`` is off: with the probe fixed, its rescaling of the object to a
  mean transmission of 1 would break the gauge (it gave amplitude-mean ratios of 1.4–1.6);
  with the probe optimised (:class:`Refinement`) it stays off too, for the same reason, and
  pty-chi's probe *power constraint* (``scale_object``) holds ``Σ_k Σ|P_k|²`` at the guess's after
  every epoch and divides the object by the same factor — ptycho's photon gauge, the rule of its own
  engines (docs/conventions.md#photon-gauge), an exact change of gauge since only ``P·O`` is seen;
* torch runs ``threads`` intra-op threads (default 1): on a busy 2-core machine its OpenMP threads
  spin against each other (one LSQML epoch took 9× longer with torch's default of 2).

pty-chi Fourier-shifts the *probe* by each position's sub-pixel residual and cuts the object at the
rounded position, where ptycho interpolates the *object* bilinearly: the two forward models agree
to float32 rounding only for windows on whole pixels of both (and pty-chi's rounding of a centre
``k + ½`` shifts the probe by half a pixel), and differ by a few per cent in intensity otherwise —
a model error that limits pty-chi on ptycho's data at high dose, not at low dose.

**Refinement** (``refine=Refinement(...)``): the probe is optimised from the dataset's guess
(resized to ``probe_modes`` modes with ptycho's :func:`~ptycho.physics.modes.resize_modes`, as
``ptycho iterative --probe-modes K`` does; pty-chi orthogonalises the modes every epoch), and with
``positions`` pty-chi's gradient position correction runs from epoch ``position_start`` with its
own step size and per-update limit (defaults: pty-chi's, 0.3 and 0.1 px per axis, the update also
clipped to 10 × its median absolute deviation). pty-chi has no bound on the total shift, and its
``constrain_position_mean`` would move the mean *position* (not offset) to 0, leaving ptycho's
object frame; with ``max_shift_px`` the adapter itself, after every correcting epoch, removes the
mean offset from the nominal positions and keeps every offset within ``±max_shift_px`` per axis
(:func:`~ptycho.iterative.positions.zero_mean_within_bound`, the rule of ``ptycho iterative
--refine-positions``): a common shift of every position is a shift of the object, which the counts
cannot see. The result then carries the refined ``probe`` (×N back to ptycho's scale) and the
refined positions ``x``, ``y`` (probe centres in object pixels), and the object's support is lit
by the refined probe at the refined positions, as ptycho's engines cut theirs.
"""

from __future__ import annotations

import importlib
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

SUPPORT_FRACTION = 0.05
"""ptycho's support of an iterative result (``IterativeConfig.support_fraction``)."""
DEFAULT_BATCH_SIZE = 100
"""Positions per LSQML minibatch (pty-chi's default)."""
DEFAULT_THREADS = 1
"""torch intra-op threads (module docstring); ``None`` keeps torch's own choice."""


@dataclass(frozen=True)
class Refinement:
    """What LSQML optimises beside the object (module docstring, **Refinement**).

    ``probe_modes`` None keeps the guess's modes; ``position_start`` counts epochs before the
    positions move; ``position_step`` and ``position_update_limit_px`` are pty-chi's
    ``probe_position_options.step_size`` and ``correction_options.update_magnitude_limit``;
    ``max_shift_px`` None leaves pty-chi's positions unbounded and their mean free.
    """

    probe_modes: int | None = None
    positions: bool = True
    position_start: int = 10
    position_step: float = 0.3
    position_update_limit_px: float = 0.1
    max_shift_px: float | None = 3.0


def _torchvision_stand_in() -> None:
    """Register a minimal ``torchvision.transforms`` if torchvision is not installed."""
    try:
        importlib.import_module("torchvision.transforms")
        return
    except ImportError:
        pass

    class GaussianBlur:  # pty-chi only blurs random initial guesses, which are never drawn here
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("torchvision is not installed: the benchmark's GaussianBlur stand-in cannot blur")

    package = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    transforms.GaussianBlur = GaussianBlur
    package.transforms = transforms
    sys.modules.setdefault("torchvision", package)
    sys.modules.setdefault("torchvision.transforms", transforms)


def available() -> tuple[bool, str]:
    """``(True, "ptychi X / torch Y")`` when pty-chi imports, else ``(False, reason)``."""
    try:
        import torch  # noqa: F401

        _torchvision_stand_in()
        ptychi = importlib.import_module("ptychi")
        import ptychi.api  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        return False, f"pty-chi not importable ({type(exc).__name__}: {exc})"
    import torch

    return True, f"ptychi {getattr(ptychi, '__version__', '?')} / torch {torch.__version__}"


@dataclass(frozen=True)
class EpochState:
    """Handed to the callback after every epoch: ``image()`` is the object as an ObjectImage,
    ``positions()`` the current ``(x, y)`` (the nominal ones unless they are refined)."""

    epoch: int
    seconds: float  # LSQML epochs so far (set-up and callbacks excluded)
    image: Callable[..., Any]  # image(raw=False): raw=True keeps the values outside the support
    positions: Callable[[], tuple[np.ndarray, np.ndarray]]


def _support(x: np.ndarray, y: np.ndarray, probe: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from ptycho.physics.modes import summed_intensity
    from ptycho.physics.operators.geometry import window_geometry
    from ptycho.physics.operators.numpy_ops import place

    windows = window_geometry(x, y, probe.shape[-1])
    illumination = place(np.broadcast_to(summed_intensity(probe), (len(x), *probe.shape[-2:])), windows, shape)
    return illumination > SUPPORT_FRACTION * illumination.max()


def _options(epochs: int, batch_size: int, seed: int, shape: tuple[int, int], counts: np.ndarray,
             probe: np.ndarray, x: np.ndarray, y: np.ndarray, refine: Refinement | None = None) -> Any:
    import ptychi.api as api
    from ptycho.physics.modes import as_modes

    options = api.LSQMLOptions()
    options.data_options.data = counts
    options.data_options.fft_shift = True
    options.object_options.initial_guess = np.ones((1, *shape), np.complex64)
    options.object_options.optimizable = True
    options.object_options.determine_position_origin_coords_by = api.ObjectPosOriginCoordsMethods.SPECIFIED
    options.object_options.position_origin_coords = np.zeros(2)
    options.object_options.remove_object_probe_ambiguity.enabled = False  # keeps ptycho's gauge (docstring)
    options.probe_options.initial_guess = (as_modes(probe) / probe.shape[-1]).astype(np.complex64)[None]
    options.probe_options.optimizable = False
    options.probe_position_options.position_x_px = x
    options.probe_position_options.position_y_px = y
    options.probe_position_options.optimizable = False
    rec = options.reconstructor_options
    rec.noise_model = api.NoiseModels.POISSON
    rec.num_epochs = epochs
    rec.batch_size = batch_size
    rec.default_device = api.Devices.CPU
    rec.random_seed = seed
    rec.rescale_probe_intensity_in_first_epoch = False
    rec.displayed_loss_function = None
    if refine is not None:
        _refinement_options(options, refine)
    return options


def _refinement_options(options: Any, refine: Refinement) -> None:
    """Probe optimised in ptycho's photon gauge; positions corrected when asked (module docstring)."""
    probe = options.probe_options
    probe.optimizable = True
    probe.power_constraint.enabled = True
    probe.power_constraint.probe_power = float(np.sum(np.abs(probe.initial_guess.astype(np.complex128)) ** 2))
    probe.power_constraint.scale_object = True
    positions = options.probe_position_options
    positions.optimizable = refine.positions
    positions.optimization_plan.start = refine.position_start
    positions.step_size = refine.position_step
    positions.correction_options.update_magnitude_limit = refine.position_update_limit_px


class _Run:
    """One pty-chi task on a ptycho dataset, and its state read back in ptycho's conventions."""

    def __init__(self, dataset: Any, epochs: int, batch_size: int, seed: int, refine: Refinement | None,
                 version: str) -> None:
        from ptychi.api.task import PtychographyTask

        from ptycho.physics.modes import resize_modes

        counts = np.asarray(dataset.read_patterns(), np.float32)
        self.x0, self.y0 = np.asarray(dataset.x, np.float64), np.asarray(dataset.y, np.float64)
        probe = np.asarray(dataset.probe, np.complex64)
        if refine is not None and refine.probe_modes is not None:
            probe = np.asarray(resize_modes(probe, refine.probe_modes), np.complex64)
        self.shape = tuple(int(s) for s in dataset.object.shape[-2:])
        self.refine, self.version, self.N = refine, version, probe.shape[-1]
        self.fixed_support = _support(self.x0, self.y0, probe, self.shape) if refine is None else None
        self.task = PtychographyTask(_options(epochs, batch_size, seed, self.shape, counts, probe, self.x0, self.y0,
                                              refine))

    def probe(self) -> np.ndarray:
        """``(K, N, N)`` complex64 in ptycho's scale (√counts)."""
        return (self.task.get_data_to_cpu("probe", as_numpy=True)[0] * self.N).astype(np.complex64)

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Probe centres ``(x, y)`` in object pixels, float64."""
        yx = self.task.get_data_to_cpu("probe_positions", as_numpy=True).astype(np.float64)
        return yx[:, 1], yx[:, 0]

    def support(self) -> np.ndarray:
        if self.fixed_support is not None:
            return self.fixed_support
        return _support(*self.positions(), self.probe(), self.shape)

    def image(self, raw: bool = False) -> Any:
        from ptycho.io.objects import ObjectImage

        obj = self.task.get_data_to_cpu("object", as_numpy=True)[0].astype(np.complex64)
        support = self.support()
        return ObjectImage(obj if raw else np.where(support, obj, 0).astype(np.complex64), support.copy(), 0.0, 0.0,
                           {"created_by": f"pty-chi LSQML-Poisson ({self.version})"})

    def epoch(self, epoch: int) -> None:
        """Run epoch ``epoch`` (1-based), then bound and centre the position offsets if asked."""
        import torch

        self.task.run(1)
        r = self.refine
        if r is None or not r.positions or r.max_shift_px is None or epoch <= r.position_start:
            return
        from ptycho.iterative.positions import zero_mean_within_bound

        x, y = self.positions()
        x = self.x0 + zero_mean_within_bound(x - self.x0, r.max_shift_px)
        y = self.y0 + zero_mean_within_bound(y - self.y0, r.max_shift_px)
        with torch.no_grad():
            self.task.probe_positions.set_data(torch.as_tensor(np.stack([y, x], axis=1), dtype=torch.float32))


def reconstruct_lsqml(dataset: Any, epochs: int, *, batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
                      threads: int | None = DEFAULT_THREADS,
                      callback: Callable[[EpochState], None] | None = None,
                      refine: Refinement | None = None) -> dict[str, Any]:
    """LSQML-Poisson on a ptycho dataset for ``epochs`` epochs: the probe fixed, or with
    ``refine`` the probe (and the positions) optimised too.

    Parameters
    ----------
    dataset : ptycho.data.dataset.Dataset
        Needs its ``object`` (the frame of the reconstruction).
    threads : int, optional
        ``torch.set_num_threads`` (this process); None leaves torch's default.
    callback : callable, optional
        Called with an :class:`EpochState` after every epoch (its time is not counted).
    refine : Refinement, optional
        What else to optimise (module docstring); None: the probe and positions stay fixed.

    Returns
    -------
    dict with ``object`` (H, W) complex64, ``support`` (H, W) bool, ``image`` (ObjectImage),
    ``seconds`` (epochs only), ``setup_seconds`` (import of pty-chi excluded) and ``version``;
    with ``refine`` also ``probe`` (K, N, N) complex64 (√counts) and ``x``, ``y`` (M,) float64.
    """
    ok, version = available()
    if not ok:
        raise RuntimeError(version)
    import torch

    t0 = time.perf_counter()
    torch.set_default_device("cpu")
    if threads is not None:
        torch.set_num_threads(threads)
    run = _Run(dataset, epochs, batch_size, seed, refine, version)
    setup = time.perf_counter() - t0
    seconds = 0.0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        run.epoch(epoch)
        seconds += time.perf_counter() - start
        if callback is not None:
            callback(EpochState(epoch, seconds, run.image, run.positions))
    result = run.image()
    out = {"object": result.object, "support": result.support, "image": result, "seconds": seconds,
           "setup_seconds": setup, "version": version}
    if refine is not None:
        x, y = run.positions()
        out.update(probe=run.probe(), x=x, y=y)
    return out
