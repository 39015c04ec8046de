"""``train``: fit the PINN on a dataset and write a model bundle (docs/model.md)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptycho.config.train import SUPPORTED_N, ModelConfig, TrainConfig
from ptycho.data.dataset import Dataset
from ptycho.data.grouping import Groups, make_groups
from ptycho.errors import ConfigError, DataError, NumericalError, field
from ptycho.physics.probe import probe_energy
from ptycho.seeding import seed_stream
from ptycho.registry import Components
from ptycho.workflows.probe_setup import IterativeInit, probe_from_file, refine_iteratively, wants_refinement

REFINEMENT_FIGURE = "refinement.png"
"""Written into the bundle with ``refine_positions``: the position shifts and the probe modes."""


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
    photon gauge shows (:func:`amplitude_scale`), so a bright object is not clipped."""
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
    from ptycho.data.pipeline import batch_rows, tf_group_batches
    from ptycho.distribute.strategy import start_distribution, stop_on_lost_worker
    from ptycho.figures.loss import loss_figure
    from ptycho.io.config_file import resolved_config_text
    from ptycho.io.datasets import load_dataset
    from ptycho.models.bundle import History, save_bundle
    from ptycho.models.features import group_labels, input_estimate
    from ptycho.models.physics import canvas_size
    from ptycho.models.pinn import PINN, PhysicsSettings
    from ptycho.models.training import Diverged, Trainer

    t0 = time.perf_counter()
    distribution = start_distribution(config.strategy, config.cluster)  # before any other TensorFlow op
    components = components or Components.builtin()
    out = Path(out)
    check_bundle_target(out, dataset_path, resume=resume, force=force)
    stage = on_stage or (lambda text: None)
    history = History()
    kept_bundle = lambda: _kept_after_lost_worker(out, history.epochs)  # noqa: E731 - reads history when called
    stage(f"reading {dataset_path}")
    with stop_on_lost_worker(distribution, config.cluster, kept_bundle), load_dataset(dataset_path, mask=config.mask) as dataset:
        if config.probe_file is not None:
            dataset.probe = probe_from_file(config.probe_file, dataset)
        model_config = resolve_model_config(config, dataset)
        if model_config.amplitude_max != config.model.amplitude_max:  # raised for bright data: record it, so
            config = config.model_copy(update={"model": config.model.model_copy(  # a resume builds the same model
                update={"amplitude_max": model_config.amplitude_max})})
        gridsize = int(model_config.gridsize)
        fingerprint = dataset.fingerprint()  # of the data as given, before any refinement
        init, positions = start_refinement(config, model_config, dataset, out, resume, stage)
        try:
            groups = make_groups(dataset.x, dataset.y, gridsize, n_groups=config.n_groups,
                                 neighbors=config.neighbors, oversample=config.oversample, seed=config.seed,
                                 labels=group_labels(model_config, dataset.n_patterns))
        except ConfigError as exc:
            raise ConfigError(f"train: {exc}") from None
        train_groups, val_groups = split_groups(groups, config.validation_split, config.seed)
        batch_size = distribution.check_global_batch(min(config.batch_size, train_groups.n_groups))
        info = data_info(dataset, groups, train_groups, val_groups, config, fingerprint)
        if init is not None:
            info.update(init.info())
        stage("building the model")
        strategy = distribution.strategy
        with strategy.scope():
            if resume:
                bundle = _resume_bundle(out, model_config, components)
                model, history = bundle.model, bundle.history
            else:
                physics = PhysicsSettings.from_probe(dataset.probe, gridsize, canvas_size(groups.max_offset, dataset.N))
                model = PINN(model_config, physics, dataset.probe, components)
            model.valid_pixels = dataset.mask
            trainer = Trainer(model, config, strategy, mask=dataset.mask, global_batch=batch_size)
        if model_config.probe_trainable:  # the estimate is made with the model's (refined) probe
            dataset.probe = model.probe_variables.numpy()
        if model_config.estimate != "none":
            stage(f"input estimate ({model_config.estimate}) of {dataset.n_patterns} positions")
        estimate = input_estimate(model_config, dataset)
        if resume:
            distribution.require_same(f"bundle to resume in {out} (every worker must read the same one)",
                                      bundle_identity(bundle))
            continue_schedule(trainer, bundle, config)

        def epoch_batches(epoch: int):
            rows = batch_rows(train_groups.n_groups, batch_size, shuffle=True, seed=config.seed, epoch=epoch,
                              drop_remainder=True)
            own = [distribution.cluster.share(r) for r in rows]  # this worker's groups of each global batch
            return tf_group_batches(dataset, train_groups, own, estimate), len(rows)

        val_batches = None
        if val_groups is not None:
            own_val = distribution.cluster.share(np.arange(val_groups.n_groups))
            val_rows = [own_val[r] for r in batch_rows(len(own_val), batch_size, shuffle=False)]
            val_batches = lambda: tf_group_batches(dataset, val_groups, val_rows, estimate=estimate)  # noqa: E731

        resolved = {"config.yaml": resolved_config_text("train", config)}

        def checkpoint(epoch: int, hist: History, report: bool = True) -> None:
            if distribution.is_chief:
                save_bundle(out, model, train_config=config, history=hist, data_info=info,
                            optimizer_state=trainer.optimizer_state(), extra_files=resolved, positions=positions)
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
    if distribution.is_chief:
        loss_figure(out / "loss.png", history.to_dict(), loss_name=config.loss)
        if init is not None and init.refine_positions:
            from ptycho.figures.refinement import refinement_figure

            refinement_figure(out / REFINEMENT_FIGURE, x0=init.x0, y0=init.y0, x=init.x, y=init.y, probe=init.probe)
    with stop_on_lost_worker(distribution, config.cluster, kept_bundle):
        distribution.barrier()  # no worker reports success before the chief has written everything
    return TrainResult(out, history.epochs, history.to_dict(), groups.n_groups,
                       (train_groups.n_groups // batch_size) * batch_size * groups.C,
                       time.perf_counter() - t0, history.stopped_early, history.nan_recoveries,
                       distribution.cluster.rank, distribution.cluster.size)


def _kept_after_lost_worker(out: Path, epochs: int) -> str:
    if not epochs:
        return "no epoch was completed, so no bundle was written"
    return (f"{out} keeps the chief's last complete bundle (epoch {epochs}); restart every worker with "
            f"{field('train.resume')} to continue it")


def bundle_identity(bundle: Any) -> int:
    """A 52-bit number that differs between bundles with different epochs or weights (from the
    manifest's weights hash), to check that every worker resumes the same bundle."""
    digest = int(bundle.manifest.get("files", {}).get("model.weights.h5", "0" * 12)[:10], 16)  # 40 bits
    return (bundle.history.epochs % 4096) << 40 | digest


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


def check_bundle_target(out: Path, dataset_path: Path, *, resume: bool, force: bool) -> None:
    """Refuse an output that would silently replace work: a file, a folder that holds files while
    neither ``resume`` nor ``force`` is set (leftovers of killed writers do not count), or one
    whose bundle files would overwrite the dataset."""
    from ptycho.io.atomic import is_stale_temp_name
    from ptycho.io.datasets import dataset_inputs
    from ptycho.io.paths import check_output_dir, refuse_overwriting_inputs
    from ptycho.models.bundle import OWNED_FILES, has_bundle

    refuse_overwriting_inputs([out / name for name in OWNED_FILES], dataset_inputs(dataset_path), "train")

    if out.exists() and not out.is_dir():
        raise ConfigError(f"train: {out} is a file; a model bundle is a directory, choose another output")
    check_output_dir(out, "model bundle directory")
    if resume or force or not out.is_dir():
        return
    kept = [p.name for p in out.iterdir() if not is_stale_temp_name(p.name)]
    if kept:
        what = "a model bundle" if has_bundle(out) else f"{len(kept)} file(s) ({', '.join(sorted(kept)[:3])})"
        raise ConfigError(f"train: {out} already holds {what}; continue it with `train.resume`, replace it "
                          "with `train.force` or choose an empty output directory")


def continue_schedule(trainer: Any, bundle: Any, config: TrainConfig) -> None:
    """Resume the optimizer where the bundle left it; a learning rate other than the bundle's
    (``config.learning_rate`` changed) replaces the stored schedule's rate."""
    state = bundle.optimizer_state()
    if state is not None:
        trainer.load_optimizer_state(state)  # includes the rate the next epoch would have run at
    elif bundle.history.learning_rate:
        trainer.set_learning_rate(bundle.history.learning_rate[-1])
    if config.learning_rate != bundle.train_config.learning_rate:
        trainer.set_learning_rate(config.learning_rate)


def stored_train_settings(out: Path) -> dict[str, Any]:
    """The train settings of the bundle in ``out`` (its ``config.json``), the base a resumed run's
    settings are layered on; empty if there is no readable bundle."""
    import json

    from ptycho.models.bundle import bundle_file

    try:
        stored = json.loads(bundle_file(Path(out), "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    train = stored.get("train") if isinstance(stored, dict) else None
    return dict(train) if isinstance(train, dict) else {}


def _resume_bundle(out: Path, model_config: ModelConfig, components: Components) -> Any:
    from ptycho.models.bundle import has_bundle, load_bundle

    if not has_bundle(out):
        raise ConfigError(f"train.resume: no bundle to resume in {out}; train once without `train.resume` first")
    bundle = load_bundle(out, components)
    stored = bundle.model.config
    if stored != model_config:
        diff = {k: (getattr(stored, k), getattr(model_config, k)) for k in type(stored).model_fields
                if getattr(stored, k) != getattr(model_config, k)}
        raise ConfigError(f"train.resume: the bundle in {out} was built with a different model: {diff}")
    return bundle
