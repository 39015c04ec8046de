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
* torch runs ``threads`` intra-op threads (default 1): on a busy 2-core machine its OpenMP threads
  spin against each other (one LSQML epoch took 9× longer with torch's default of 2).

pty-chi Fourier-shifts the *probe* by each position's sub-pixel residual and cuts the object at the
rounded position, where ptycho interpolates the *object* bilinearly: the two forward models agree
to float32 rounding only for windows on whole pixels of both (and pty-chi's rounding of a centre
``k + ½`` shifts the probe by half a pixel), and differ by a few per cent in intensity otherwise —
a model error that limits pty-chi on ptycho's data at high dose, not at low dose.
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
    """Handed to the callback after every epoch: ``image()`` is the object as an ObjectImage."""

    epoch: int
    seconds: float  # LSQML epochs so far (set-up and callbacks excluded)
    image: Callable[..., Any]  # image(raw=False): raw=True keeps the values outside the support


def _support(x: np.ndarray, y: np.ndarray, probe: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from ptycho.physics.operators.geometry import window_geometry
    from ptycho.physics.operators.numpy_ops import place

    windows = window_geometry(x, y, probe.shape[-1])
    illumination = place(np.broadcast_to(np.abs(probe) ** 2, (len(x), *probe.shape)), windows, shape)
    return illumination > SUPPORT_FRACTION * illumination.max()


def _options(epochs: int, batch_size: int, seed: int, shape: tuple[int, int], counts: np.ndarray,
             probe: np.ndarray, x: np.ndarray, y: np.ndarray) -> Any:
    import ptychi.api as api

    options = api.LSQMLOptions()
    options.data_options.data = counts
    options.data_options.fft_shift = True
    options.object_options.initial_guess = np.ones((1, *shape), np.complex64)
    options.object_options.optimizable = True
    options.object_options.determine_position_origin_coords_by = api.ObjectPosOriginCoordsMethods.SPECIFIED
    options.object_options.position_origin_coords = np.zeros(2)
    options.object_options.remove_object_probe_ambiguity.enabled = False  # the probe is fixed: keep the gauge
    options.probe_options.initial_guess = (probe / probe.shape[-1]).astype(np.complex64)[None, None]
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
    return options


def reconstruct_lsqml(dataset: Any, epochs: int, *, batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
                      threads: int | None = DEFAULT_THREADS,
                      callback: Callable[[EpochState], None] | None = None) -> dict[str, Any]:
    """LSQML-Poisson on a ptycho dataset with its probe fixed, for ``epochs`` epochs.

    Parameters
    ----------
    dataset : ptycho.data.dataset.Dataset
        Needs its ``object`` (the frame of the reconstruction).
    threads : int, optional
        ``torch.set_num_threads`` (this process); None leaves torch's default.
    callback : callable, optional
        Called with an :class:`EpochState` after every epoch (its time is not counted).

    Returns
    -------
    dict with ``object`` (H, W) complex64, ``support`` (H, W) bool, ``seconds`` (epochs only),
    ``setup_seconds`` (import of pty-chi excluded) and ``version``.
    """
    ok, version = available()
    if not ok:
        raise RuntimeError(version)
    import torch
    from ptycho.io.objects import ObjectImage
    from ptychi.api.task import PtychographyTask

    t0 = time.perf_counter()
    counts = np.asarray(dataset.read_patterns(), np.float32)
    x, y = np.asarray(dataset.x, np.float64), np.asarray(dataset.y, np.float64)
    probe = np.asarray(dataset.probe, np.complex64)
    shape = tuple(int(s) for s in dataset.object.shape[-2:])
    support = _support(x, y, probe, shape)
    torch.set_default_device("cpu")
    if threads is not None:
        torch.set_num_threads(threads)
    task = PtychographyTask(_options(epochs, batch_size, seed, shape, counts, probe, x, y))
    setup = time.perf_counter() - t0

    def image(raw: bool = False) -> Any:
        obj = task.get_data_to_cpu("object", as_numpy=True)[0].astype(np.complex64)
        return ObjectImage(obj if raw else np.where(support, obj, 0).astype(np.complex64), support.copy(), 0.0, 0.0,
                           {"created_by": f"pty-chi LSQML-Poisson ({version})"})

    seconds = 0.0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        task.run(1)
        seconds += time.perf_counter() - start
        if callback is not None:
            callback(EpochState(epoch, seconds, image))
    result = image()
    return {"object": result.object, "support": result.support, "image": result, "seconds": seconds,
            "setup_seconds": setup, "version": version}
