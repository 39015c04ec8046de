"""Fitting the PINN for ``train``: the model and its trainer, the batches of each epoch, and the
epochs with their checkpoints (docs/model.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ptycho.config.train import ModelConfig, TrainConfig
from ptycho.data.dataset import Dataset
from ptycho.data.grouping import Groups
from ptycho.errors import NumericalError
from ptycho.models.history import History
from ptycho.registry import Components
from ptycho.workflows.probe_setup import IterativeInit
from ptycho.workflows.train_bundle import resume_bundle

if TYPE_CHECKING:
    from ptycho.distribute.cluster import ClusterInfo
    from ptycho.distribute.strategy import Distribution
    from ptycho.iterative.streaming import GlobalEstimate
    from ptycho.models.bundle import Bundle, TrainingPositions
    from ptycho.models.pinn import PINN
    from ptycho.models.training import Trainer

REFINEMENT_FIGURE = "refinement.png"
"""Written into the bundle with ``refine_positions``: the position shifts and the probe modes."""


@dataclass(frozen=True)
class TrainingData:
    """What :func:`~ptycho.workflows.train.train` fits on, prepared from the dataset by
    :func:`~ptycho.workflows.train.prepare_training_data`."""

    config: TrainConfig
    """The run's config, with the amplitude ceiling the data raised recorded (a resume builds the same model)."""
    model_config: ModelConfig
    groups: Groups
    train_groups: Groups
    val_groups: Groups | None
    batch_size: int
    """Groups per step over all workers: ``train.batch_size``, at most the training groups."""
    info: dict[str, Any]
    """What the bundle records of the data (:func:`~ptycho.workflows.train.data_info`, and the refinement passes' outcome)."""
    init: IterativeInit | None
    """The rPIE passes' outcome (probe and/or position refinement), or None."""
    positions: TrainingPositions | None
    """The refined positions the bundle stores, or None."""


def build_trainer(data: TrainingData, dataset: Dataset, distribution: Distribution, out: Path,
                  components: Components | None, history: History, *,
                  resume: bool) -> tuple[Trainer, History, Bundle | None]:
    """A new PINN for ``dataset``, or on ``resume`` the bundle's model in ``out``, and its
    :class:`~ptycho.models.training.Trainer`, both made in the distribution's strategy scope.

    Returns the trainer, the history to go on from (``history`` for a new model, the bundle's on
    resume) and the resumed bundle (None for a new model).
    """
    from ptycho.models.physics import canvas_size
    from ptycho.models.pinn import PINN, PhysicsSettings
    from ptycho.models.training import Trainer

    components = components or Components.builtin()
    bundle = None
    with distribution.strategy.scope():
        if resume:
            bundle = resume_bundle(out, data.model_config, components)
            model, history = bundle.model, bundle.history
        else:
            physics = PhysicsSettings.from_probe(dataset.probe, int(data.model_config.gridsize),
                                                 canvas_size(data.groups.max_offset, dataset.N))
            model = PINN(data.model_config, physics, dataset.probe, components)
        model.valid_pixels = dataset.mask
        trainer = Trainer(model, data.config, distribution.strategy, mask=dataset.mask, global_batch=data.batch_size)
    return trainer, history, bundle


def estimate_network_input(model_config: ModelConfig, model: PINN, dataset: Dataset,
                           stage: Callable[[str], None]) -> GlobalEstimate | None:
    """The network's input estimate at every position (``model.estimate``), made with the model's
    probe when it is trained (the refined or resumed one, written into ``dataset.probe``)."""
    from ptycho.models.features import input_estimate

    if model_config.probe_trainable:
        dataset.probe = model.probe_variables.numpy()
    if model_config.estimate != "none":
        stage(f"input estimate ({model_config.estimate}) of {dataset.n_patterns} positions")
    estimate = input_estimate(model_config, dataset)
    if estimate is not None and estimate.engine == "ml":
        stage(f"input estimate: {model_config.estimate_ml_iterations} ML iterations per estimate "
              f"(estimate_engine ml, estimate_ml_iterations)")
    elif estimate is not None:
        stage(f"input estimate: {', '.join(map(str, estimate.passes))} rPIE passes kept, "
              f"{', '.join(map(str, estimate.passes_run))} run (global_passes "
              f"{model_config.global_passes}, estimate_max_passes {model_config.estimate_max_passes}, "
              f"estimate_patience {model_config.estimate_patience})")
    return estimate


def run_epochs(trainer: Trainer, history: History, data: TrainingData, dataset: Dataset, estimate: GlobalEstimate | None,
               distribution: Distribution, out: Path, *, stage: Callable[[str], None], on_step: Callable[..., None] | None,
               on_epoch: Callable[[int, dict[str, Any]], None] | None) -> None:
    """Train up to ``train.epochs`` (:meth:`~ptycho.models.training.Trainer.fit`, which recovers from
    non-finite losses), writing the bundle to ``out`` after every good epoch and at the end
    (the chief only), each worker reading its share of every batch.

    Raises
    ------
    NumericalError
        Training diverged beyond recovery; ``out`` keeps the last good epoch's bundle.
    """
    from ptycho.figures.loss import loss_figure
    from ptycho.io.config_file import resolved_config_text
    from ptycho.models.bundle import save_bundle
    from ptycho.models.bundle_sources import training_mask, training_probe
    from ptycho.models.training import Diverged

    config = data.config
    resolved = {"config.yaml": resolved_config_text("train", config)}
    probe = training_probe(data.model_config.probe_trainable, config.probe_file)  # what infer needs to know
    mask = training_mask(config.mask, dataset.mask)
    epoch_batches, val_batches = batch_sources(data, dataset, estimate, distribution.cluster)

    def checkpoint(epoch: int, hist: History, report: bool = True) -> None:
        if distribution.is_chief:
            save_bundle(out, trainer.model, train_config=config, history=hist, data_info=data.info,
                        optimizer_state=trainer.optimizer_state(), extra_files=resolved, positions=data.positions,
                        probe=probe, mask=mask)
        if report and on_epoch:
            on_epoch(epoch, hist.to_dict())

    try:
        stage(f"epoch {history.epochs + 1}: compiling the training step, then training")
        trainer.fit(history, epoch_batches, val_batches, on_step=on_step, on_epoch=checkpoint)
    except Diverged as exc:
        kept = f"the last good model (epoch {history.epochs}) is in {out}" if history.epochs else "no model was written"
        if history.epochs and distribution.is_chief:
            loss_figure(out / "loss.png", history.to_dict(), loss_name=config.loss)
        raise NumericalError(
            f"training diverged: {exc}; {kept}; try a lower `train.learning_rate` or check the data for bad patterns"
        ) from None
    if history.epochs:
        checkpoint(history.epochs, history, report=False)


def batch_sources(data: TrainingData, dataset: Dataset, estimate: GlobalEstimate | None,
                  cluster: ClusterInfo) -> tuple[Callable, Callable | None]:
    """``epoch_batches(epoch)``, the epoch's shuffled training batches (this worker's share of each
    global batch of ``data.batch_size`` groups) and their count, and ``val_batches()``, this
    worker's validation groups in order (None without validation groups), as
    :meth:`~ptycho.models.training.Trainer.fit` takes them."""
    from ptycho.data.pipeline import batch_rows, tf_group_batches

    config, train_groups, val_groups, batch_size = data.config, data.train_groups, data.val_groups, data.batch_size

    def epoch_batches(epoch: int):
        rows = batch_rows(train_groups.n_groups, batch_size, shuffle=True, seed=config.seed, epoch=epoch,
                          drop_remainder=True)
        own = [cluster.share(r) for r in rows]  # this worker's groups of each global batch
        return tf_group_batches(dataset, train_groups, own, estimate), len(rows)

    if val_groups is None:
        return epoch_batches, None
    own_val = cluster.share(np.arange(val_groups.n_groups))
    val_rows = [own_val[r] for r in batch_rows(len(own_val), batch_size, shuffle=False)]
    return epoch_batches, lambda: tf_group_batches(dataset, val_groups, val_rows, estimate=estimate)


def write_training_figures(out: Path, history: History, data: TrainingData) -> None:
    """The loss curves (``loss.png``) and, with ``train.refine_positions``, the refinement figure."""
    from ptycho.figures.loss import loss_figure

    loss_figure(out / "loss.png", history.to_dict(), loss_name=data.config.loss)
    init = data.init
    if init is not None and init.refine_positions:
        from ptycho.figures.refinement import refinement_figure

        refinement_figure(out / REFINEMENT_FIGURE, x0=init.x0, y0=init.y0, x=init.x, y=init.y, probe=init.probe)
