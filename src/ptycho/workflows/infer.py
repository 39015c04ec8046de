"""``infer``: a trained bundle and a dataset → per-group complex object patches (docs/reconstruction.md#inference)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ptycho.config.infer import GROUP_AVERAGE_MAX_PHOTONS, InferConfig
from ptycho.data.dataset import Dataset
from ptycho.errors import DataError
from ptycho.physics.probe import probe_energy
from ptycho.registry import Components

if TYPE_CHECKING:
    from ptycho.data.grouping import Groups
    from ptycho.iterative.streaming import GlobalEstimate
    from ptycho.models.pinn import PINN

Progress = Callable[[int, int], None]
DOSE_WARNING = 1.1  # warn when the dataset's photon scale differs from training by more than 10 %
SATURATION = 0.99
"""An amplitude at this fraction of ``model.amplitude_max`` or above counts as saturated."""
SATURATED_FRACTION = 0.01
"""Saturated pixels beyond this fraction of all reconstructed pixels are reported."""


@dataclass(frozen=True)
class InferResult:
    path: Path
    n_groups: int
    n_patterns: int
    gridsize: int
    seconds: float
    inference_seconds: float
    steady_groups: int = 0
    steady_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each stage, summing to ``seconds``: ``load`` (the bundle), ``prepare`` (opening
    the dataset, checks, position refinement with ``refine_positions``, grouping), ``estimate`` (the
    global-estimate input, 0 when the model reads none), ``network`` (``inference_seconds``: every
    batch, the first one's compilation included) and ``io`` (reading the batches, writing the
    patches, the rest)."""
    positions: str = "dataset"
    """Where the patches' positions came from: ``"dataset"``, or ``"refined: …"``."""
    estimate_passes: tuple[int, ...] = ()
    """The passes of each (fold's) global estimate the network read; empty without one."""
    estimate_passes_run: tuple[int, ...] = ()
    """The passes each estimate ran (the held-out continuation runs a few past the one it keeps)."""
    probe: str = "dataset"
    """The probe the input was made with: ``"dataset"``, ``"file …"`` or ``"model: …"`` (the bundle's;
    :func:`~ptycho.workflows.infer_inputs.choose_probe`)."""
    mask: str = "none"
    """The detector mask used: ``"none"``, ``"dataset"``, ``"file …"`` or ``"model: …"`` (the bundle's
    training mask; :func:`~ptycho.workflows.infer_inputs.choose_mask`)."""
    estimate_engine: str | None = None
    """``"rpie"`` or ``"ml"`` (the passes are then ML iterations); None without a global estimate."""

    @property
    def estimate_unit(self) -> str:
        """What ``estimate_passes`` count: ``"ML iterations"`` or ``"rPIE passes"``."""
        return "ML iterations" if self.estimate_engine == "ml" else "rPIE passes"

    @property
    def patterns_per_second(self) -> float:
        """Patterns through the network per second in steady state: I/O, set-up and the first
        batch (which pays for tracing and compilation) excluded; all batches if there is only one."""
        if self.steady_groups and self.steady_seconds > 0:
            return self.steady_groups * self.gridsize**2 / self.steady_seconds
        return self.n_groups * self.gridsize**2 / max(self.inference_seconds, 1e-9)


def check_compatible(dataset: Dataset, physics, tolerance: float) -> None:
    """Refuse data the bundle cannot reconstruct: another pattern size, too few positions for a
    group, or a photon scale far from training's (the network's input normalisation)."""
    where = dataset.source or "dataset"
    if dataset.N != physics.N:
        raise DataError(f"{where}: patterns are {dataset.N}×{dataset.N} but the model was trained on "
                        f"{physics.N}×{physics.N}; use a model trained at N={dataset.N}")
    if dataset.n_patterns < physics.C:
        raise DataError(f"{where}: {dataset.n_patterns} positions, but the model's gridsize "
                        f"{physics.gridsize} needs at least {physics.C}")
    photons = probe_energy(dataset.probe)
    ratio = photons / physics.probe_photons
    if not (1 / tolerance <= ratio <= tolerance):
        raise DataError(f"{where}: probe carries {photons:.3g} photons per pattern but the model was trained "
                        f"at {physics.probe_photons:.3g} ({ratio:.3g}×); train a model at this dose")
    if not (1 / DOSE_WARNING <= ratio <= DOSE_WARNING):
        warnings.warn(f"{where}: photon scale differs from training by {ratio:.3g}×", stacklevel=2)


def warn_if_saturated(saturated: int, total: int, amplitude_max: float, out: Path) -> None:
    """Say so when the amplitude head sits at its ceiling for more than :data:`SATURATED_FRACTION`
    of the pixels: the object is brighter than the model can express, and is clipped."""
    if total and saturated / total > SATURATED_FRACTION:
        warnings.warn(f"{out}: {100 * saturated / total:.1f} % of the reconstructed amplitudes sit at the model's "
                      f"ceiling {amplitude_max:g} (clipped); retrain with a larger `train.model.amplitude_max`",
                      UserWarning, stacklevel=2)


def refine_positions(dataset: Dataset, config: InferConfig, seed: int) -> dict[str, object]:
    """With ``infer.refine_positions``: refine the scan's positions in rPIE passes with the probe the
    input is made with (the iterative engines' refinement, docs/positions.md) and put them into
    ``dataset`` (in place), so groups, the network's input and the patches file use them. Returns
    what the patches file's provenance records: ``positions`` = ``"refined: …"`` (``stitch`` then
    writes the positions into the object file) with the RMS and largest shift; empty without."""
    if not config.refine_positions:
        return {}
    from ptycho.workflows.probe_setup import refine_iteratively

    init = refine_iteratively(dataset, config.position_init_passes, seed, refine_positions=True,
                              position_max_shift_px=config.position_max_shift_px)
    dataset.x, dataset.y = init.x.copy(), init.y.copy()
    info = init.info()
    return {"positions": f"refined: {init.passes} rPIE passes (infer.refine_positions), RMS shift "
                         f"{info['position_rms_shift_px']:.3g} px",
            "position_rms_shift_px": info["position_rms_shift_px"], "position_max_shift_px": info["position_max_shift_px"],
            "position_init_passes": init.passes}


@dataclass(frozen=True)
class NetworkPass:
    """What :func:`stream_patches` measured of the network's pass over every group."""

    seconds: float
    """Network time of every batch, the first one's compilation included."""
    steady_groups: int
    """Groups after the first (compiling) batch, and their network time."""
    steady_seconds: float
    saturated: int
    """Reconstructed amplitudes at :data:`SATURATION` of the model's ceiling or above."""


def infer(
    config: InferConfig,
    model_dir: Path,
    dataset_path: Path,
    out: Path,
    components: Components | None = None,
    *,
    progress: Progress | None = None,
) -> InferResult:
    """Reconstruct the object patch of every group member and stream them to ``out`` (HDF5)."""
    from ptycho.data.grouping import make_groups
    from ptycho.io.config_file import config_path_for, write_resolved_config
    from ptycho.io.datasets import dataset_inputs, load_dataset
    from ptycho.io.paths import check_output_file, refuse_overwriting_inputs
    from ptycho.models.bundle import bundle_inputs, load_bundle
    from ptycho.models.features import group_labels, input_estimate
    from ptycho.physics.probe import effective_diameter_px
    from ptycho.workflows.infer_inputs import choose_mask, choose_probe

    t0 = time.perf_counter()
    out = check_output_file(out)
    refuse_overwriting_inputs([out, config_path_for(out)], {**dataset_inputs(dataset_path), **bundle_inputs(model_dir),
                                                            "probe file": config.probe_file, "mask file": config.mask},
                              "infer")
    bundle = load_bundle(Path(model_dir), components or Components.builtin())
    model, physics, trained = bundle.model, bundle.model.physics, bundle.train_config
    t_loaded = time.perf_counter()
    with load_dataset(dataset_path, mask=config.mask) as dataset:
        check_compatible(dataset, physics, config.dose_tolerance)
        n_patterns = dataset.n_patterns  # read while the file is open
        fingerprint = dataset.fingerprint()  # of the data as given: export-ptychodus pairs them by it
        probe_used = choose_probe(dataset, bundle, config.probe_file)
        mask_used = choose_mask(dataset, bundle, config.mask)
        refined = refine_positions(dataset, config, trained.seed)
        groups = make_groups(dataset.x, dataset.y, physics.gridsize, n_groups=config.n_groups,
                             neighbors=trained.neighbors, oversample=trained.oversample, seed=trained.seed,
                             labels=group_labels(model.config, dataset.n_patterns))
        model.valid_pixels = dataset.mask
        t_prepared = time.perf_counter()
        config = with_group_average(config, dataset)
        estimate = input_estimate(model.config, dataset)
        t_estimated = time.perf_counter()
        provenance = {"model": str(model_dir), "model_fingerprint": bundle.data_info.get("fingerprint"),
                      "dataset": str(dataset_path), "dataset_fingerprint": fingerprint,
                      "object_fingerprint": dataset.object_fingerprint(),
                      "gridsize": physics.gridsize, "N": physics.N,
                      "probe": probe_used, "mask": mask_used,
                      "probe_diameter_px": effective_diameter_px(np.asarray(dataset.probe)),
                      "group_average": physics.C > 1 and config.group_average,
                      **estimate_record(estimate), **refined}
        network = stream_patches(model, dataset, groups, estimate, out, provenance, config, progress)
    warn_if_saturated(network.saturated, groups.n_groups * physics.C * physics.N**2, model.config.amplitude_max, out)
    write_resolved_config(Path(out), "infer", config)
    total = time.perf_counter() - t0
    stages = {"load": t_loaded - t0, "prepare": t_prepared - t_loaded, "estimate": t_estimated - t_prepared,
              "network": network.seconds}
    stages["io"] = total - sum(stages.values())
    return InferResult(Path(out), groups.n_groups, n_patterns, physics.gridsize, total, network.seconds,
                       network.steady_groups, network.steady_seconds, stages, str(refined.get("positions", "dataset")),
                       () if estimate is None else estimate.passes, () if estimate is None else estimate.passes_run,
                       probe_used, mask_used, None if estimate is None else estimate.engine)


def with_group_average(config: InferConfig, dataset: Dataset) -> InferConfig:
    """``config`` with ``group_average`` decided when unset: on when the scan's patterns hold fewer
    than :data:`~ptycho.config.infer.GROUP_AVERAGE_MAX_PHOTONS` photons (its probe's photon gauge)."""
    if config.group_average is not None:
        return config
    return config.model_copy(update={"group_average": bool(probe_energy(dataset.probe) < GROUP_AVERAGE_MAX_PHOTONS)})


def estimate_record(estimate: GlobalEstimate | None) -> dict[str, object]:
    """The provenance of the network's input estimate: its engine and the passes each fold kept and ran."""
    return {"estimate_engine": None if estimate is None else estimate.engine,
            "estimate_passes": [] if estimate is None else list(estimate.passes),
            "estimate_passes_run": [] if estimate is None else list(estimate.passes_run)}


def stream_patches(model: PINN, dataset: Dataset, groups: Groups, estimate: GlobalEstimate | None, out: Path,
                   provenance: dict[str, object], config: InferConfig, progress: Progress | None) -> NetworkPass:
    """Run the network over every group in batches of ``infer.batch_size`` and write each batch's
    object patches to the patches file ``out`` as it comes (``PatchesWriter``).

    Parameters
    ----------
    model : PINN
        The bundle's model; ``model.reconstructed_patches`` gives (batch, C, N, N) complex patches
        (``infer.group_average``).
    dataset : Dataset
        Open; its patterns are read batch by batch.
    groups : Groups
        The groups to reconstruct, in order.
    estimate : GlobalEstimate or None
        The network's input estimate (:func:`~ptycho.models.features.input_estimate`).
    provenance : dict
        Recorded in the patches file.
    """
    from ptycho._tf import tf
    from ptycho.data.pipeline import batch_rows, read_group_batch
    from ptycho.io.patches import PatchesWriter
    from ptycho.models.physics import canvas_size

    tf_, physics = tf(), model.physics
    batch = min(config.batch_size, groups.n_groups)
    size = max(canvas_size(groups.max_offset, physics.N), physics.canvas_size or 0) if physics.C > 1 else None
    forward = tf_.function(lambda c, ox, oy, est: model.reconstructed_patches(
        c, ox, oy, est, canvas_size=size, group_average=config.group_average), jit_compile=config.jit)
    xs, ys = groups.positions()
    object_shape = None if dataset.object is None else tuple(dataset.object.shape)
    seconds, steady_groups, steady_seconds, saturated = 0.0, 0, 0.0, 0
    with PatchesWriter(out, groups.n_groups, physics.C, physics.N, provenance, object_shape) as writer:
        for rows in batch_rows(groups.n_groups, batch, shuffle=False):
            arrays = read_group_batch(dataset, groups, rows, estimate)
            pad = batch - len(rows)
            if pad:  # fixed batch shape: XLA compiles once
                arrays = tuple(np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) for a in arrays)
            t1 = time.perf_counter()
            patches = forward(*(tf_.constant(a) for a in arrays)).numpy()[: len(rows)]
            elapsed = time.perf_counter() - t1
            seconds += elapsed
            if rows[0] > 0:  # after the first (compiling) batch
                steady_groups, steady_seconds = steady_groups + len(rows), steady_seconds + elapsed
            writer.write(int(rows[0]), patches, xs[rows], ys[rows], groups.index[rows])
            saturated += int(np.count_nonzero(np.abs(patches) >= SATURATION * model.config.amplitude_max))
            if progress:
                progress(int(rows[-1]) + 1, groups.n_groups)
    return NetworkPass(seconds, steady_groups, steady_seconds, saturated)
