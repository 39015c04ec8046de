"""Dataset file in, object file out: what ``ptycho iterative`` runs.

The object is written in the object-file format of ``ptycho stitch``
(:func:`ptycho.io.objects.write_object`), so ``ptycho evaluate OBJECT --truth DATASET`` scores it
like any reconstruction. Beside it: ``<stem>.config.yaml`` (the resolved options, reusable with
``--config``), amplitude/phase PNGs, and with ``probe_update`` the refined probe
``<stem>.probe.npz`` (key ``probe``, every mode, usable as ``ptycho simulate --probe file:…``;
its name recorded as ``metadata["refined_probe"]``, so ``export-ptychodus`` exports it).
With ``refine_positions`` the object file carries the refined positions (``positions_*``, read by
``export-ptychodus``; docs/positions.md#outputs) and ``<stem>.refinement.png`` shows the shifts and
the probe modes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
    refinement_path: Path | None = None
    initial_x: np.ndarray | None = None
    initial_y: np.ndarray | None = None

    def position_shifts(self) -> np.ndarray | None:
        """``(M,)`` distance of each refined position from its start (pixels), None without refinement."""
        if self.initial_x is None or self.initial_y is None:
            return None
        return np.hypot(self.result.x - self.initial_x, self.result.y - self.initial_y)


def output_paths(out: Path) -> dict[str, Path]:
    """The files written beside ``out`` (``<stem>.config.yaml``, ``<stem>.probe.npz``,
    ``<stem>.refinement.png``)."""
    from ptycho.io.config_file import config_path_for

    return {"config": config_path_for(out), "probe": out.with_name(f"{out.stem}.probe.npz"),
            "refinement": out.with_name(f"{out.stem}.refinement.png")}


def run_iterative(
    config: IterativeConfig,
    dataset: Any,
    out: Path,
    *,
    figures: bool = True,
    callback: Callable[[IterationState], None] | None = None,
    fingerprint: str | None = None,
) -> IterativeRun:
    """Reconstruct ``dataset`` (a path or a loaded :class:`ptycho.data.dataset.Dataset`) with
    ``config`` and write the object file ``out`` (.npz/.h5).

    ``fingerprint``: the dataset's as loaded (:meth:`~ptycho.data.dataset.Dataset.fingerprint`),
    recorded with refined positions so that ``export-ptychodus`` pairs them with that dataset only;
    computed here when not given (give it when the caller replaced the dataset's probe).

    Raises
    ------
    ptycho.errors.ConfigError
        ``out`` has an unsupported suffix (checked before any work; exit code 2).
    ptycho.errors.DataError
        Missing, unreadable or invalid dataset (exit code 3).
    ptycho.errors.NumericalError
        The iterations diverged (exit code 4).
    """
    from ptycho.io.config_file import write_resolved_config
    from ptycho.data.dataset import Dataset
    from ptycho.io.datasets import load_dataset
    from ptycho.io.npz import save_npz_arrays
    from ptycho.io.objects import object_format, write_object

    out = Path(out)
    object_format(out)
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    try:
        n_patterns, N, source = ds.n_patterns, ds.N, ds.source or str(dataset)
        invalid = int((~ds.valid_pixels).sum())  # masked detector pixels: predicted modulus kept
        x0, y0 = np.array(ds.x, np.float64), np.array(ds.y, np.float64)
        if config.refine_positions and fingerprint is None:
            fingerprint = ds.fingerprint()
        result = reconstruct(ds, config=config, callback=callback)
    finally:
        if ds is not dataset:
            ds.close()
    metadata = _object_metadata(config, result, source=source, n_patterns=n_patterns, N=N, invalid=invalid,
                                x0=x0, y0=y0, fingerprint=fingerprint)
    paths = output_paths(out)
    if config.probe_update:  # export-ptychodus exports this probe, not the dataset's
        metadata["refined_probe"] = paths["probe"].name
    write_object(out, result.object_image(metadata))
    config_path = write_resolved_config(out, "iterative", config)
    probe_path = save_npz_arrays(paths["probe"], {"probe": result.probe}) if config.probe_update else None
    amp_path = phase_path = refinement_path = None
    if figures:
        amp_path, phase_path, refinement_path = _figures(out, result, config, x0, y0)
    refined = config.refine_positions
    return IterativeRun(out, config_path, probe_path, amp_path, phase_path, result, n_patterns, N, refinement_path,
                        x0 if refined else None, y0 if refined else None)


def _object_metadata(config: IterativeConfig, result: ReconstructionResult, *, source: str, n_patterns: int, N: int,
                     invalid: int, x0: np.ndarray, y0: np.ndarray, fingerprint: str | None) -> dict[str, Any]:
    """What the object file records of the run: versions, dataset, options, the engine's outcome
    (errors, seconds, probe modes), and with ``refine_positions`` the shifts from the initial
    positions ``(x0, y0)`` and the dataset's ``fingerprint``. ``invalid``: masked detector pixels."""
    from ptycho import __version__ as ptycho_version

    from ptycho_iterative import __version__

    metadata: dict[str, Any] = {
        "created_by": "ptycho iterative", "ptycho_iterative_version": __version__, "ptycho_version": ptycho_version,
        "dataset": source, "n_patterns": n_patterns, "N": N, "options": config.model_dump(),
        "invalid_pixels": invalid,
        "update": ("Poisson maximum likelihood, preconditioned conjugate gradients (see ptycho.iterative.ml)"
                   if config.engine == "ml" else f"minibatch {config.engine} (see ptycho.iterative.engines)"),
        **result.info,
        "interpolation": "bilinear (ptycho.physics.operators convention)",
        "errors": [float(e) for e in result.errors], "seconds": result.seconds,
        "probe_modes": int(np.shape(result.probe)[0]) if np.ndim(result.probe) == 3 else 1,
    }
    if config.refine_positions:
        shift = np.hypot(result.x - x0, result.y - y0)
        metadata["positions"] = {"refined": True, "rms_shift_px": float(np.sqrt(np.mean(shift**2))),
                                 "max_shift_px": float(shift.max())}
        metadata["provenance"] = {"dataset": source, "dataset_fingerprint": fingerprint}
    return metadata


def _figures(out: Path, result: ReconstructionResult, config: IterativeConfig, x0: np.ndarray,
             y0: np.ndarray) -> tuple[Path, Path, Path | None]:
    """The amplitude and phase PNGs beside ``out`` and, with ``refine_positions``, the refinement
    figure (the shifts from ``(x0, y0)`` and the probe modes)."""
    from ptycho.workflows.stitch import object_figures

    image = result.object_image()
    amp_path, phase_path = object_figures(out, image.object, image.support, (result.origin_x, result.origin_y))
    refinement_path = None
    if config.refine_positions:
        from ptycho.figures.refinement import refinement_figure

        refinement_path = refinement_figure(output_paths(out)["refinement"], x0=x0, y0=y0, x=result.x, y=result.y,
                                            probe=result.probe)
    return amp_path, phase_path, refinement_path
