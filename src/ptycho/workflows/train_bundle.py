"""The bundle directory ``train`` writes: checking the output, and resuming the bundle in it
(docs/model.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ptycho.config.train import ModelConfig, TrainConfig
from ptycho.errors import ConfigError, field
from ptycho.registry import Components

if TYPE_CHECKING:
    from ptycho.distribute.strategy import Distribution
    from ptycho.models.bundle import Bundle
    from ptycho.models.training import Trainer


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


def resume_bundle(out: Path, model_config: ModelConfig, components: Components) -> Bundle:
    """Load the bundle in ``out`` to continue training it.

    Raises
    ------
    ConfigError
        ``out`` holds no bundle, or its model was built with a config other than ``model_config``.
    """
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


def continue_bundle(trainer: Trainer, bundle: Bundle, config: TrainConfig, distribution: Distribution,
                    out: Path) -> None:
    """Check that every worker of ``distribution`` resumes the same bundle (:func:`bundle_identity`),
    then resume the optimizer where the bundle left it; a learning rate other than the bundle's
    (``config.learning_rate`` changed) replaces the stored schedule's rate."""
    distribution.require_same(f"bundle to resume in {out} (every worker must read the same one)",
                              bundle_identity(bundle))
    state = bundle.optimizer_state()
    if state is not None:
        trainer.load_optimizer_state(state)  # includes the rate the next epoch would have run at
    elif bundle.history.learning_rate:
        trainer.set_learning_rate(bundle.history.learning_rate[-1])
    if config.learning_rate != bundle.train_config.learning_rate:
        trainer.set_learning_rate(config.learning_rate)


def stored_train_settings(out: Path) -> dict[str, Any]:
    """The train settings of the bundle in ``out`` (its ``config.json``, with the fields of later
    formats filled in as its format behaved: :func:`~ptycho.models.bundle_versions.upgraded_config`),
    the base a resumed run's settings are layered on; empty if there is no readable bundle."""
    import json

    from ptycho.models.bundle import bundle_file
    from ptycho.models.bundle_versions import upgraded_config

    try:
        stored = json.loads(bundle_file(Path(out), "config.json").read_text(encoding="utf-8"))
        stored = upgraded_config(stored)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    train = stored.get("train") if isinstance(stored, dict) else None
    return dict(train) if isinstance(train, dict) else {}


def bundle_identity(bundle: Bundle) -> int:
    """A 52-bit number that differs between bundles with different epochs or weights (from the
    manifest's weights hash), to check that every worker resumes the same bundle."""
    digest = int(bundle.manifest.get("files", {}).get("model.weights.h5", "0" * 12)[:10], 16)  # 40 bits
    return (bundle.history.epochs % 4096) << 40 | digest


def kept_after_lost_worker(out: Path, epochs: int) -> str:
    """What ``out`` keeps when a worker is lost after ``epochs`` complete epochs, and how to go on."""
    if not epochs:
        return "no epoch was completed, so no bundle was written"
    return (f"{out} keeps the chief's last complete bundle (epoch {epochs}); restart every worker with "
            f"{field('train.resume')} to continue it")
