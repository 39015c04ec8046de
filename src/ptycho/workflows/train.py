"""``train``: fit the PINN on a dataset and write a model bundle (docs/model.md)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ptycho.config.train import ML_ESTIMATE_MAX_PHOTONS, RESIDUAL_MIN_PHOTONS, SUPPORTED_N, ModelConfig, TrainConfig
from ptycho.data.dataset import Dataset
from ptycho.data.grouping import Groups, make_groups
from ptycho.errors import ConfigError, DataError
from ptycho.physics.probe import probe_energy
from ptycho.seeding import seed_stream
from ptycho.registry import Components
from ptycho.workflows.probe_setup import IterativeInit, probe_from_file, refine_iteratively, wants_refinement
from ptycho.workflows.train_bundle import check_bundle_target, continue_bundle, kept_after_lost_worker
from ptycho.workflows.train_fit import TrainingData, build_trainer, estimate_network_input, run_epochs, write_training_figures

if TYPE_CHECKING:
    from ptycho.distribute.strategy import Distribution


@dataclass(frozen=True)
class TrainResult:
    out: Path
    epochs: int
    history: dict[str, Any]
    n_groups: int
    patterns_per_epoch: int
    seconds: float
    stopped_early: bool
    nan_recoveries: int
    worker: int = 0
    """This process's worker number in a multi-worker training (0, the chief, wrote ``out``)."""
    workers: int = 1

    @property
    def patterns_per_second(self) -> float:
        """Training throughput from the epochs after the first (which pays for compilation);
        from all epochs when only one ran."""
        seconds = list(self.history.get("seconds", []))
        if len(seconds) > 1:
            seconds = seconds[1:]
        return self.patterns_per_epoch * len(seconds) / max(sum(seconds), 1e-9) if seconds else 0.0


def resolve_model_config(config: TrainConfig, dataset: Dataset) -> ModelConfig:
    """Fill ``N`` and ``gridsize`` from the data, checking an explicit ``N`` against it, and
    raise the amplitude head's ceiling (``model.amplitude_max``, unless set) to what the data's
    photon gauge shows (:func:`amplitude_scale`), so a bright object is not clipped, and decide
    ``model.estimate_residual`` and ``model.estimate_engine`` (unless set) from the dose
    (:data:`~ptycho.config.train.RESIDUAL_MIN_PHOTONS`, :data:`~ptycho.config.train.ML_ESTIMATE_MAX_PHOTONS`)
    and, for the engine, the probe's modes (the ML engine takes one)."""
    N = dataset.N
    if config.model.N is not None and config.model.N != N:
        raise DataError(
            f"{dataset.source}: patterns are {N}×{N} but the model was asked for N={config.model.N}; "
            f"drop `train.model.N`, simulate with `simulate.N` = {config.model.N}, or crop or bin larger patterns "
            f"with `import.N` = {config.model.N} (`ptycho import`)"
        )
    if N not in SUPPORTED_N:
        raise DataError(f"{dataset.source}: pattern size {N} is not supported; use one of {SUPPORTED_N} "
                        f"(crop or bin the patterns with `import.N`)")
    gridsize = config.model.gridsize or int(dataset.metadata.get("gridsize", 1))
    trainable = config.model.probe_trainable or wants_refinement(config.refine_probe, dataset)
    update: dict[str, Any] = {"N": N, "gridsize": gridsize, "seed": config.seed, "probe_trainable": trainable}
    if "amplitude_max" not in config.model.model_fields_set:  # unset: as large as the data need
        ceiling = AMPLITUDE_HEADROOM * amplitude_scale(dataset)
        if ceiling > AMPLITUDE_SLACK * config.model.amplitude_max:
            update["amplitude_max"] = round(ceiling, 3)
    photons = probe_energy(dataset.probe)
    if config.model.estimate_residual is None:
        update["estimate_residual"] = photons >= RESIDUAL_MIN_PHOTONS
    if config.model.estimate_engine is None:
        one_mode = np.ndim(dataset.probe) == 2
        update["estimate_engine"] = "ml" if photons < ML_ESTIMATE_MAX_PHOTONS and one_mode else "rpie"
    elif config.model.uses_global_estimate:  # set: refuse before any pass runs, not at the estimate
        from ptycho.iterative.streaming import check_engine_takes_probe

        check_engine_takes_probe(config.model.estimate_engine, dataset.probe)
    return config.model.model_copy(update=update)


AMPLITUDE_HEADROOM = 2.0
"""The amplitude head's ceiling over the data's largest window amplitude (pixels exceed their
window's mean); 2 keeps the default ceiling 2 for objects up to unit amplitude."""
AMPLITUDE_SLACK = 1.25
"""The default ceiling is raised only when the data need this much more (noise on unit-amplitude
data does not change the model)."""
AMPLITUDE_SAMPLE = 256
"""Patterns (evenly spaced) read to measure the amplitude scale."""


def amplitude_scale(dataset: Dataset) -> float:
    """The largest root-mean-square object amplitude seen by one window, from the photon gauge:
    ``√(Σ counts / Σ|P|²)`` per pattern (Parseval: the window's probe-weighted mean of ``|O|²``),
    over up to :data:`AMPLITUDE_SAMPLE` patterns. Masked pixels (``dataset.mask`` False: hot, dead,
    behind a beamstop) are left out, as they are from the loss, so a hot pixel cannot inflate the
    ceiling; where a mask hides bright pixels the scale is a lower bound."""
    photons = probe_energy(dataset.probe)
    rows = np.unique(np.linspace(0, dataset.n_patterns - 1, min(dataset.n_patterns, AMPLITUDE_SAMPLE)).astype(np.int64))
    patterns = dataset.read_patterns(rows)
    if dataset.mask is not None:
        patterns = np.where(dataset.mask, patterns, 0.0)
    totals = patterns.sum(axis=(1, 2), dtype=np.float64)
    return float(np.sqrt(totals.max() / photons)) if photons > 0 else 0.0


def split_groups(groups: Groups, fraction: float, seed: int) -> tuple[Groups, Groups | None]:
    """Random train/validation split of groups (at least one training group)."""
    n_val = int(round(groups.n_groups * fraction))
    n_val = min(n_val, groups.n_groups - 1)
    if n_val <= 0:
        return groups, None
    order = seed_stream(seed, "split").permutation(groups.n_groups)
    return groups.take(np.sort(order[n_val:])), groups.take(np.sort(order[:n_val]))


def data_info(dataset: Dataset, groups: Groups, train: Groups, val: Groups | None, config: TrainConfig,
              fingerprint: str | None = None) -> dict[str, Any]:
    """What the bundle records of the training data (``fingerprint``: the dataset's, by default now)."""
    return {
        "path": str(dataset.source),
        "fingerprint": fingerprint or dataset.fingerprint(),
        "n_patterns": dataset.n_patterns,
        "n_groups": groups.n_groups,
        "train_groups": train.n_groups,
        "val_groups": 0 if val is None else val.n_groups,
        "max_offset_px": groups.max_offset,
        "neighbors": config.neighbors,
        "nphotons": dataset.metadata.get("nphotons"),
    }


def train(
    config: TrainConfig,
    dataset_path: Path,
    out: Path,
    components: Components | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    on_step: Callable[..., None] | None = None,
    on_stage: Callable[[str], None] | None = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train a PINN on ``dataset_path`` and write the bundle to directory ``out``.

    ``out`` must be empty or missing, unless ``resume`` (continue the bundle there from its last
    epoch) or ``force`` (replace it: the old bundle stays whole until the first new checkpoint
    replaces it, files that are not the bundle's are left alone). On resume the learning rate
    goes on from the bundle's schedule unless ``config.learning_rate`` differs from the rate the
    bundle was trained with: then the new rate is used, and the history records it.
    ``on_stage(text)`` names each preparation step as it starts (reading, the input estimate,
    building and compiling the model); ``on_epoch(epoch, history)`` runs after each epoch's
    checkpoint with the history so far (``History.to_dict``).

    With ``config.strategy == "multiworker"`` every worker of the cluster calls this with the same
    config, dataset and ``out`` (both readable by every worker; ``resume`` reads the bundle on each):
    each reads only its share of every batch, and only the chief writes ``out``. This must then be
    the first use of TensorFlow in the process.

    Raises
    ------
    ConfigError
        ``out`` is a file, or holds files and neither ``resume`` nor ``force`` is set (exit code 2).
    NumericalError
        Training diverged beyond recovery (exit code 4); ``out`` keeps the last good bundle.
    ClusterError
        A worker was lost (exit code 1); ``out`` keeps the chief's last complete bundle.
    """
    from ptycho.distribute.strategy import start_distribution, stop_on_lost_worker
    from ptycho.io.datasets import load_dataset
    from ptycho.models.bundle import History

    t0 = time.perf_counter()
    distribution = start_distribution(config.strategy, config.cluster)  # before any other TensorFlow op
    out = Path(out)
    check_bundle_target(out, dataset_path, resume=resume, force=force)
    stage = on_stage or (lambda text: None)
    history = History()  # the bundle's, once a resumed one is loaded
    kept_bundle = lambda: kept_after_lost_worker(out, history.epochs)  # noqa: E731 - reads history when called
    stage(f"reading {dataset_path}")
    with stop_on_lost_worker(distribution, config.cluster, kept_bundle), load_dataset(dataset_path, mask=config.mask) as dataset:
        data = prepare_training_data(config, dataset, distribution, out, resume=resume, stage=stage)
        stage("building the model")
        trainer, history, bundle = build_trainer(data, dataset, distribution, out, components, history, resume=resume)
        estimate = estimate_network_input(data.model_config, trainer.model, dataset, stage)
        if bundle is not None:
            continue_bundle(trainer, bundle, data.config, distribution, out)
        run_epochs(trainer, history, data, dataset, estimate, distribution, out, stage=stage, on_step=on_step,
                   on_epoch=on_epoch)
    if distribution.is_chief:
        write_training_figures(out, history, data)
    with stop_on_lost_worker(distribution, config.cluster, kept_bundle):
        distribution.barrier()  # no worker reports success before the chief has written everything
    return TrainResult(out, history.epochs, history.to_dict(), data.groups.n_groups,
                       (data.train_groups.n_groups // data.batch_size) * data.batch_size * data.groups.C,
                       time.perf_counter() - t0, history.stopped_early, history.nan_recoveries,
                       distribution.cluster.rank, distribution.cluster.size)


def prepare_training_data(config: TrainConfig, dataset: Dataset, distribution: Distribution, out: Path, *,
                          resume: bool, stage: Callable[[str], None]) -> TrainingData:
    """Resolve the model from the data, refine the probe and positions (:func:`start_refinement`),
    group the positions and split the groups into training and validation.

    ``dataset`` is changed in place: its probe becomes ``config.probe_file``'s and then the refined
    one, its positions the refined ones. ``distribution`` checks that the batch splits over its
    workers.

    Raises
    ------
    ConfigError
        The groups cannot be made as configured (``train.n_groups``, ``train.neighbors``, ...).
    """
    from ptycho.models.features import group_labels

    if config.probe_file is not None:
        dataset.probe = probe_from_file(config.probe_file, dataset)
    model_config = resolve_model_config(config, dataset)
    if model_config.amplitude_max != config.model.amplitude_max:  # raised for bright data: record it, so
        config = config.model_copy(update={"model": config.model.model_copy(  # a resume builds the same model
            update={"amplitude_max": model_config.amplitude_max})})
    fingerprint = dataset.fingerprint()  # of the data as given, before any refinement
    init, positions = start_refinement(config, model_config, dataset, out, resume, stage)
    try:
        groups = make_groups(dataset.x, dataset.y, int(model_config.gridsize), n_groups=config.n_groups,
                             neighbors=config.neighbors, oversample=config.oversample, seed=config.seed,
                             labels=group_labels(model_config, dataset.n_patterns))
    except ConfigError as exc:
        raise ConfigError(f"train: {exc}") from None
    train_groups, val_groups = split_groups(groups, config.validation_split, config.seed)
    batch_size = distribution.check_global_batch(min(config.batch_size, train_groups.n_groups))
    info = data_info(dataset, groups, train_groups, val_groups, config, fingerprint)
    if init is not None:
        info.update(init.info())
    return TrainingData(config, model_config, groups, train_groups, val_groups, batch_size, info, init, positions)


def start_refinement(config: TrainConfig, model_config: ModelConfig, dataset: Dataset, out: Path,
                     resume: bool, stage: Callable[[str], None] = lambda text: None) -> tuple[IterativeInit | None, Any]:
    """Refine the probe (``model.probe_trainable``, ``train.probe_init_passes``) and/or the positions
    (``train.refine_positions``) in one run of rPIE passes before training — as many passes as the
    larger of the two asks — and put the results into ``dataset`` (in place), so groups, the network's
    input and its physics layers start from them. Returns the passes' outcome and the refined
    positions to store in the bundle (:class:`~ptycho.models.bundle.TrainingPositions`), or None.

    On ``resume`` nothing is refined again: the positions come from the bundle in ``out``.

    Raises
    ------
    ConfigError
        Resuming with ``train.refine_positions`` a bundle that stores no refined positions.
    DataError
        The bundle's positions are of another scan (another number of patterns).
    """
    from ptycho.models.bundle import TrainingPositions, read_positions

    if resume:
        if not config.refine_positions:
            return None, None
        stored = read_positions(out)
        if stored is None:
            raise ConfigError(f"train.resume: the bundle in {out} stores no refined positions; resume without "
                              "`train.refine_positions` or train afresh with it")
        if stored.x.shape != (dataset.n_patterns,):
            raise DataError(f"{out}: the bundle's refined positions are of {stored.x.size} patterns but "
                            f"{dataset.source or 'the dataset'} has {dataset.n_patterns}; resume on the dataset it was trained on")
        dataset.x, dataset.y = stored.x.copy(), stored.y.copy()
        return None, stored
    probe = bool(model_config.probe_trainable and config.probe_init_passes)
    if not (probe or config.refine_positions):
        return None, None
    passes = max(config.probe_init_passes if probe else 0, config.position_init_passes if config.refine_positions else 0)
    stage(f"{'probe' if probe else ''}{' and ' if probe and config.refine_positions else ''}"
          f"{'position' if config.refine_positions else ''} refinement: {passes} rPIE passes")
    init = refine_iteratively(dataset, passes, config.seed, probe_update=probe, refine_positions=config.refine_positions,
                              position_max_shift_px=config.position_max_shift_px)
    if probe:
        dataset.probe = init.probe
    if not config.refine_positions:
        return init, None
    dataset.x, dataset.y = init.x.copy(), init.y.copy()
    return init, TrainingPositions(init.x, init.y, init.x0, init.y0)
