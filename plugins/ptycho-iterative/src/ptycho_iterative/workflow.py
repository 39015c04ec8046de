"""Dataset file in, object file out: what ``ptycho iterative`` runs.

The object is written in the object-file format of ``ptycho stitch``
(:func:`ptycho.io.objects.write_object`), so ``ptycho evaluate OBJECT --truth DATASET`` scores it
like any reconstruction. Beside it: ``<stem>.config.yaml`` (the resolved options, reusable with
``--config``), amplitude/phase PNGs, and with ``probe_update`` the refined probe
``<stem>.probe.npz`` (key ``probe``, usable as ``ptycho simulate --probe file:…``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptycho.config.iterative import IterativeConfig
from ptycho.iterative.engines import IterationState, ReconstructionResult, reconstruct


@dataclass(frozen=True)
class IterativeRun:
    """Paths written by :func:`run_iterative` and the reconstruction itself."""

    path: Path
    config_path: Path
    probe_path: Path | None
    amplitude_path: Path | None
    phase_path: Path | None
    result: ReconstructionResult
    n_patterns: int
    N: int


def output_paths(out: Path) -> dict[str, Path]:
    """The files written beside ``out`` (``<stem>.config.yaml``, ``<stem>.probe.npz``)."""
    from ptycho.io.config_file import config_path_for

    return {"config": config_path_for(out), "probe": out.with_name(f"{out.stem}.probe.npz")}


def run_iterative(
    config: IterativeConfig,
    dataset: Any,
    out: Path,
    *,
    figures: bool = True,
    callback: Callable[[IterationState], None] | None = None,
) -> IterativeRun:
    """Reconstruct ``dataset`` (a path or a loaded :class:`ptycho.data.dataset.Dataset`) with
    ``config`` and write the object file ``out`` (.npz/.h5).

    Raises
    ------
    ptycho.errors.ConfigError
        ``out`` has an unsupported suffix (checked before any work; exit code 2).
    ptycho.errors.DataError
        Missing, unreadable or invalid dataset (exit code 3).
    ptycho.errors.NumericalError
        The iterations diverged (exit code 4).
    """
    from ptycho import __version__ as ptycho_version
    from ptycho.io.config_file import write_resolved_config
    from ptycho.data.dataset import Dataset
    from ptycho.io.datasets import load_dataset
    from ptycho.io.npz import save_npz_arrays
    from ptycho.io.objects import object_format, write_object

    from ptycho_iterative import __version__

    out = Path(out)
    object_format(out)
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    try:
        n_patterns, N, source = ds.n_patterns, ds.N, ds.source or str(dataset)
        invalid = int((~ds.valid_pixels).sum())  # masked detector pixels: predicted modulus kept
        result = reconstruct(ds, config=config, callback=callback)
    finally:
        if ds is not dataset:
            ds.close()
    metadata: dict[str, Any] = {
        "created_by": "ptycho iterative", "ptycho_iterative_version": __version__, "ptycho_version": ptycho_version,
        "dataset": source, "n_patterns": n_patterns, "N": N, "options": config.model_dump(),
        "invalid_pixels": invalid,
        "update": ("Poisson maximum likelihood, preconditioned conjugate gradients (see ptycho.iterative.ml)"
                   if config.engine == "ml" else f"minibatch {config.engine} (see ptycho.iterative.engines)"),
        **result.info,
        "interpolation": "bilinear (ptycho.physics.operators convention)",
        "errors": [float(e) for e in result.errors], "seconds": result.seconds,
    }
    write_object(out, result.object_image(metadata))
    paths = output_paths(out)
    config_path = write_resolved_config(out, "iterative", config)
    probe_path = save_npz_arrays(paths["probe"], {"probe": result.probe}) if config.probe_update else None
    amp_path = phase_path = None
    if figures:
        from ptycho.workflows.stitch import object_figures

        image = result.object_image()
        amp_path, phase_path = object_figures(out, image.object, image.support, (result.origin_x, result.origin_y))
    return IterativeRun(out, config_path, probe_path, amp_path, phase_path, result, n_patterns, N)
