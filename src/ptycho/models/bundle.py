"""Model bundles (docs/formats.md#model-bundles): a directory of plain files, never pickled code.

``config.json``      validated train/model config + physics settings + data fingerprint
``model.weights.h5`` network weights (Keras ``save_weights``)
``probe.npy``        (N, N) complex64 probe, √counts (trained, if the probe was trainable)
``scale.json``       input normalisation and the trainable scale correction
``history.json``     per-epoch losses and learning rates
``optimizer.npz``    optimizer state, for resuming (``train(resume=True)``)
``manifest.json``    format version, package versions, dataset fingerprint, file hashes (written last)
``loss.png``         the loss curves

Loading rebuilds the network from ``config.json`` and loads the weights. Every file is written
atomically; the manifest is written last, so a bundle with a manifest is complete.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ptycho import __version__
from ptycho.config.train import ModelConfig, TrainConfig
from ptycho.errors import DataError
from ptycho.io.atomic import atomic_output, write_json_atomic
from ptycho.models.pinn import PINN, PhysicsSettings
from ptycho.registry import Components

BUNDLE_FORMAT = "ptycho-model"
BUNDLE_VERSION = 3
"""2: ``model.estimate`` (global rPIE input). Version 1 bundles, which predate it, used the group estimate.
3: leave-fold-out global estimates (``model.estimate_folds``, ``estimate_alpha``, ``estimate_batch_size``);
version 2 bundles read one estimate of every pattern, 2 rPIE passes at alpha 0.1 in minibatches of 8."""
VERSION_2_ESTIMATE = {"estimate_folds": 0, "global_passes": 2, "estimate_alpha": 0.1, "estimate_batch_size": 8}
"""The global estimate of version 2 bundles (their config has no such fields: these were the behaviour)."""
REQUIRED_FILES = ("config.json", "model.weights.h5", "probe.npy", "scale.json", "manifest.json")


@dataclass
class History:
    """Per-epoch training record."""

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    nan_recoveries: int = 0
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.loss)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": list(range(1, self.epochs + 1)),
            "loss": self.loss,
            "val_loss": self.val_loss,
            "learning_rate": self.learning_rate,
            "seconds": self.seconds,
            "nan_recoveries": self.nan_recoveries,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "History":
        return cls(
            loss=list(data.get("loss", [])),
            val_loss=list(data.get("val_loss", [])),
            learning_rate=list(data.get("learning_rate", [])),
            seconds=list(data.get("seconds", [])),
            nan_recoveries=int(data.get("nan_recoveries", 0)),
            stopped_early=bool(data.get("stopped_early", False)),
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)


def all_finite(model: PINN) -> bool:
    """True when every network weight, the probe and the scale are finite."""
    values = [v.numpy() for v in model.network.weights] + [v.numpy() for v in model.physics_variables]
    return all(np.all(np.isfinite(v)) for v in values)


def save_bundle(
    out: Path,
    model: PINN,
    *,
    train_config: TrainConfig,
    history: History,
    data_info: dict[str, Any],
    optimizer_state: list[np.ndarray] | None = None,
) -> Path:
    """Write a complete bundle to directory ``out``. Refuses to write non-finite weights."""
    from ptycho._tf import tf

    if not all_finite(model):
        raise ValueError("refusing to save a model with non-finite weights")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "model": model.config.model_dump(mode="json"),
        "physics": {
            "N": model.physics.N,
            "gridsize": model.physics.gridsize,
            "probe_photons": model.physics.probe_photons,
            "input_scale": model.physics.input_scale,
            "canvas_size": model.physics.canvas_size,
        },
        "train": train_config.model_dump(mode="json"),
        "data": data_info,
    }
    write_json_atomic(out / "config.json", config)
    with atomic_output(out / "model.weights.h5") as tmp:
        model.network.save_weights(str(tmp))
    _save_npy(out / "probe.npy", model.probe.numpy().astype(np.complex64))
    write_json_atomic(
        out / "scale.json",
        {"input_scale": model.physics.input_scale, "scale_correction": float(model.scale.numpy()),
         "probe_photons": model.physics.probe_photons},
    )
    write_json_atomic(out / "history.json", history.to_dict())
    if optimizer_state is not None:
        with atomic_output(out / "optimizer.npz") as tmp:
            np.savez(tmp, **{f"v{i:04d}": np.asarray(v) for i, v in enumerate(optimizer_state)})
    files = [n for n in ("config.json", "model.weights.h5", "probe.npy", "scale.json", "history.json", "optimizer.npz")
             if (out / n).exists()]  # optimizer.npz too: resuming trusts it
    import h5py
    import keras

    manifest = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "versions": {"ptycho": __version__, "tensorflow": tf().__version__, "keras": keras.__version__,
                     "numpy": np.__version__, "h5py": h5py.__version__},
        "dataset_fingerprint": data_info.get("fingerprint"),
        "epochs": history.epochs,
        "files": {name: _sha256(out / name) for name in files},
    }
    write_json_atomic(out / "manifest.json", manifest)
    return out


@dataclass
class Bundle:
    """A loaded bundle: the model plus its stored records."""

    path: Path
    model: PINN
    train_config: TrainConfig
    history: History
    data_info: dict[str, Any]
    manifest: dict[str, Any]

    def optimizer_state(self) -> list[np.ndarray] | None:
        path = self.path / "optimizer.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return [data[k] for k in sorted(data.files)]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the bundle is incomplete or corrupt") from exc


def load_bundle(path: Path, components: Components | None = None, *, verify: bool = True) -> Bundle:
    """Rebuild the model from ``config.json`` and load weights, probe and scale.

    Raises
    ------
    DataError
        Missing files, a hash mismatch, or an unknown format (exit code 3).
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: model bundle not found (expected a directory written by `ptycho train`)")
    missing = [n for n in REQUIRED_FILES if not (path / n).is_file()]
    if missing:
        raise DataError(f"{path}: incomplete model bundle, missing {', '.join(missing)}; retrain or copy the whole folder")
    manifest = _read_json(path / "manifest.json")
    config = _read_json(path / "config.json")
    if config.get("format") != BUNDLE_FORMAT or int(config.get("format_version", 0)) > BUNDLE_VERSION:
        raise DataError(f"{path}: not a ptycho model bundle of a supported version")
    if verify:
        for name, digest in manifest.get("files", {}).items():
            if not (path / name).is_file() or _sha256(path / name) != digest:
                raise DataError(f"{path}/{name}: does not match the manifest (changed or corrupt file)")
    if int(config.get("format_version", 0)) < 2:  # before model.estimate: the group ePIE estimate
        config["model"] = {"estimate": "group", **config["model"]}
        config["train"]["model"] = {"estimate": "group", **config["train"].get("model", {})}
    if int(config.get("format_version", 0)) < 3:  # before leave-fold-out estimates
        config["model"] = {**config["model"], **VERSION_2_ESTIMATE}
        config["train"]["model"] = {**config["train"].get("model", {}), **VERSION_2_ESTIMATE}
    model_config = ModelConfig.model_validate(config["model"])
    phys = config["physics"]
    physics = PhysicsSettings(int(phys["N"]), int(phys["gridsize"]), float(phys["probe_photons"]),
                              float(phys["input_scale"]), phys.get("canvas_size"))
    probe = np.load(path / "probe.npy", allow_pickle=False)
    model = PINN(model_config, physics, probe, components or Components.builtin())
    try:
        model.network.load_weights(str(path / "model.weights.h5"))
    except Exception as exc:  # noqa: BLE001 - any reader failure means a bad bundle
        raise DataError(f"{path}/model.weights.h5: cannot load weights ({exc})") from exc
    scale = _read_json(path / "scale.json")
    model.scale.assign(float(scale.get("scale_correction", 1.0)))
    history_path = path / "history.json"
    history = History.from_dict(_read_json(history_path)) if history_path.is_file() else History()
    return Bundle(path, model, TrainConfig.model_validate(config["train"]), history, config.get("data", {}), manifest)
