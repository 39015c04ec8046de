"""Model bundles (docs/formats.md#model-bundles): a directory of plain files, never pickled code.

``config.json``      validated train/model config + physics settings + data fingerprint
``model.weights.h5`` network weights (Keras ``save_weights``)
``probe.npy``        (N, N) complex64 probe (or (K, N, N) modes), √counts (trained, if the probe was trainable)
``scale.json``       input normalisation and the trainable scale correction
``history.json``     per-epoch losses and learning rates
``optimizer.npz``    optimizer state, for resuming (``train(resume=True)``)
``positions.npz``    with ``train.refine_positions``: the refined training positions ``x``, ``y`` and the
                     dataset's ``x_initial``, ``y_initial``, (M,) float64 object pixels
``mask.npy``         with a detector mask in training: the (N, N) bool valid pixels it excluded
``manifest.json``    format version, package versions, dataset fingerprint, file hashes (written last)
``loss.png``         the loss curves

Loading rebuilds the network from ``config.json`` and loads the weights. A checkpoint replaces the
whole set at once (:mod:`ptycho.io.transaction`): a kill at any moment leaves the previous bundle
or the new one, and readers find the committed version of each file with :func:`bundle_file`.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptycho import __version__
from ptycho.config.train import ModelConfig, TrainConfig
from ptycho.errors import DataError, PtychoError
from ptycho.io.atomic import atomic_output, one_line, write_json_atomic, write_text_atomic
from ptycho.io.transaction import commit_files, committed_path, has_commit
from ptycho.models.bundle_positions import POSITION_KEYS, POSITIONS_FILE, TrainingPositions
from ptycho.models.bundle_positions import read_positions as read_positions_file
from ptycho.models.bundle_sources import (
    MASK_FILE,
    TrainingMask,
    TrainingProbe,
    mask_from_config,
    probe_from_config,
    training_probe,
)
from ptycho.models.bundle_versions import BUNDLE_VERSION, upgraded_config
from ptycho.models.history import History
from ptycho.models.pinn import PINN, PhysicsSettings
from ptycho.registry import Components

BUNDLE_FORMAT = "ptycho-model"
MANIFEST = "manifest.json"
REQUIRED_FILES = ("config.json", "model.weights.h5", "probe.npy", "scale.json", MANIFEST)
OWNED_FILES = (*REQUIRED_FILES, "history.json", "optimizer.npz", POSITIONS_FILE, MASK_FILE, "config.yaml", "loss.png")
"""Every name a checkpoint may write; one a new checkpoint lacks is removed (no stale optimizer
state, no loss curve of an earlier training)."""
MESSAGE_LIMIT = 300
"""Characters of a library's error message quoted in ours."""


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


def bundle_config(model: PINN, train_config: TrainConfig, data_info: dict[str, Any],
                  probe: TrainingProbe | None = None, mask: TrainingMask | None = None) -> dict[str, Any]:
    """The content of ``config.json``: everything needed to rebuild the network, and where its probe
    and mask came from (by default: refined when trainable, else the dataset's; no mask)."""
    probe = probe or training_probe(model.config.probe_trainable, None)
    return {
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
        "probe": probe.to_json(),
        "mask": (mask or TrainingMask()).to_json(),
    }


def _manifest(folder: Path, names: list[str], history: History, data_info: dict[str, Any]) -> dict[str, Any]:
    from ptycho._tf import tf

    import h5py
    import keras

    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "versions": {"ptycho": __version__, "tensorflow": tf().__version__, "keras": keras.__version__,
                     "numpy": np.__version__, "h5py": h5py.__version__},
        "dataset_fingerprint": data_info.get("fingerprint"),
        "epochs": history.epochs,
        "files": {name: _sha256(folder / name) for name in names},
    }


def save_bundle(
    out: Path,
    model: PINN,
    *,
    train_config: TrainConfig,
    history: History,
    data_info: dict[str, Any],
    optimizer_state: list[np.ndarray] | None = None,
    extra_files: dict[str, str] | None = None,
    positions: TrainingPositions | None = None,
    probe: TrainingProbe | None = None,
    mask: TrainingMask | None = None,
) -> Path:
    """Write a complete bundle to directory ``out``, replacing the one there all or nothing.

    The files go to a staging folder and are switched in by one rename
    (:func:`ptycho.io.transaction.commit_files`): a process killed at any moment leaves either the
    previous complete bundle or this one, never a mixture. Refuses to write non-finite weights.

    Parameters
    ----------
    extra_files : dict, optional
        ``{name: text}`` written with the bundle but not hashed in its manifest (``config.yaml``,
        the resolved train config users read and replay).
    positions : TrainingPositions, optional
        The refined training positions (``train.refine_positions``), written as ``positions.npz``;
        without them an earlier bundle's file is removed (it does not belong to this model).
    probe : TrainingProbe, optional
        Where the model's probe came from (default: refined when trainable, else the dataset's).
    mask : TrainingMask, optional
        The detector mask training excluded, written as ``mask.npy`` (default: none).
    """
    if not all_finite(model):
        raise ValueError("refusing to save a model with non-finite weights")
    out = Path(out)

    def write(staging: Path) -> list[str]:
        write_json_atomic(staging / "config.json", bundle_config(model, train_config, data_info, probe, mask))
        with atomic_output(staging / "model.weights.h5") as tmp:
            model.network.save_weights(str(tmp))
        _save_npy(staging / "probe.npy", model.probe.numpy().astype(np.complex64))
        write_json_atomic(
            staging / "scale.json",
            {"input_scale": model.physics.input_scale, "scale_correction": float(model.scale.numpy()),
             "probe_photons": model.physics.probe_photons},
        )
        write_json_atomic(staging / "history.json", history.to_dict())
        hashed = ["config.json", "model.weights.h5", "probe.npy", "scale.json", "history.json"]
        if optimizer_state is not None:  # hashed too: resuming trusts it
            with atomic_output(staging / "optimizer.npz") as tmp:
                np.savez(tmp, **{f"v{i:04d}": np.asarray(v) for i, v in enumerate(optimizer_state)})
            hashed.append("optimizer.npz")
        if positions is not None:
            with atomic_output(staging / POSITIONS_FILE) as tmp:
                np.savez(tmp, **dict(zip(POSITION_KEYS, (positions.x, positions.y, positions.x0, positions.y0))))
            hashed.append(POSITIONS_FILE)
        if mask is not None and mask.valid is not None:
            _save_npy(staging / MASK_FILE, np.asarray(mask.valid, bool))
            hashed.append(MASK_FILE)
        for name, text in (extra_files or {}).items():
            write_text_atomic(staging / name, text)
        write_json_atomic(staging / MANIFEST, _manifest(staging, hashed, history, data_info))
        return [*hashed, *(extra_files or {}), MANIFEST]

    commit_files(out, write, commit_file=MANIFEST, owned=OWNED_FILES)
    return out


def read_positions(path: Path) -> TrainingPositions | None:
    """The refined training positions of the bundle directory ``path``, or None
    (:func:`ptycho.models.bundle_positions.read_positions`)."""
    return read_positions_file(bundle_file(Path(path), POSITIONS_FILE))


def bundle_file(path: Path, name: str) -> Path:
    """The committed version of one bundle file (an interrupted checkpoint may hold it aside)."""
    return committed_path(path, name, MANIFEST)


def bundle_inputs(path: Path) -> dict[str, Path]:
    """The files of the bundle at ``path`` by role (``model file config.json`` …), for output checks."""
    return {f"model file {name}": bundle_file(Path(path), name) for name in OWNED_FILES}


def has_bundle(path: Path) -> bool:
    """True when ``path`` holds a committed bundle (a manifest, installed or pending)."""
    return has_commit(path, MANIFEST)


@dataclass
class Bundle:
    """A loaded bundle: the model plus its stored records."""

    path: Path
    model: PINN
    train_config: TrainConfig
    history: History
    data_info: dict[str, Any]
    manifest: dict[str, Any]
    positions: TrainingPositions | None = None
    probe_source: TrainingProbe = TrainingProbe("dataset")
    """Where ``model.probe`` came from (``infer`` uses it unless it is the dataset's)."""
    mask: TrainingMask = TrainingMask()
    """The detector mask training excluded (``infer`` applies it to a scan without one)."""

    def optimizer_state(self) -> list[np.ndarray] | None:
        """The Adam state of the last checkpoint, or None if the manifest lists none."""
        if "optimizer.npz" not in self.manifest.get("files", {}):
            return None
        path = bundle_file(self.path, "optimizer.npz")
        try:
            with np.load(path, allow_pickle=False) as data:
                values = [data[k] for k in sorted(data.files)]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: cannot read the optimizer state ({_short(exc)}); "
                            "train without resuming, or restore the bundle from a copy") from None
        if any(v.dtype.kind not in "biuf" for v in values):
            raise DataError(f"{path}: the optimizer state holds non-numeric arrays; expected plain numbers")
        return values


def _short(exc: BaseException, limit: int = MESSAGE_LIMIT) -> str:
    """An exception's message on one line, cut to ``limit`` characters (library messages can list
    every variable of a network)."""
    text = one_line(exc)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_bundle_json(path: Path) -> dict[str, Any]:
    """The JSON object in a bundle's file ``path``.

    Raises
    ------
    DataError
        The file is unreadable, not JSON, or holds another JSON value than an object.
    """
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read ({_short(exc)}); the bundle is incomplete or corrupt") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: holds a JSON {type(value).__name__}; expected a JSON object")
    return value


def _read_probe(path: Path) -> np.ndarray:
    try:
        probe = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the probe ({_short(exc)}); the bundle is corrupt") from None
    if not isinstance(probe, np.ndarray) or probe.dtype.kind not in "fc" or probe.ndim not in (2, 3) \
            or probe.shape[-1] != probe.shape[-2] or probe.size == 0:
        raise DataError(f"{path}: expected a complex (N, N) probe or (K, N, N) modes; found "
                        f"{getattr(probe, 'dtype', type(probe).__name__)} {getattr(probe, 'shape', '')}")
    return probe


def _settings(path: Path, config: dict[str, Any]) -> tuple[ModelConfig, PhysicsSettings, TrainConfig]:
    """The model, physics and train settings of ``config.json``; DataError if they do not validate."""
    from pydantic import ValidationError

    try:
        config = upgraded_config(config)
        phys = config["physics"]
        physics = PhysicsSettings(int(phys["N"]), int(phys["gridsize"]), float(phys["probe_photons"]),
                                  float(phys["input_scale"]), phys.get("canvas_size"))
        return ModelConfig.model_validate(config["model"]), physics, TrainConfig.model_validate(config["train"])
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise DataError(f"{path}/config.json: invalid bundle settings ({_short(exc)}); "
                        "the file was edited or is corrupt; retrain or restore it") from None


def load_bundle(path: Path, components: Components | None = None, *, verify: bool = True) -> Bundle:
    """Rebuild the model from ``config.json`` and load weights, probe and scale.

    Reads the committed version of every file (:func:`bundle_file`), so a bundle whose last
    checkpoint was interrupted loads as the checkpoint before or the one after, never a mixture.

    Raises
    ------
    DataError
        Missing files, a hash mismatch, an unreadable or non-numeric file, or an unknown format
        (exit code 3).
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: model bundle not found (expected a directory written by `ptycho train`)")
    files = {name: bundle_file(path, name) for name in OWNED_FILES}
    missing = [n for n in REQUIRED_FILES if not files[n].is_file()]
    if missing:
        raise DataError(f"{path}: incomplete model bundle, missing {', '.join(missing)}; retrain or copy the whole folder")
    manifest = read_bundle_json(files[MANIFEST])
    config = read_bundle_json(files["config.json"])
    if config.get("format") != BUNDLE_FORMAT or not isinstance(config.get("format_version"), int) \
            or config["format_version"] > BUNDLE_VERSION:
        raise DataError(f"{path}: not a ptycho model bundle of a supported version")
    listed = manifest.get("files", {})
    if verify:
        if not isinstance(listed, dict):
            raise DataError(f"{files[MANIFEST]}: 'files' is not a mapping of names to hashes")
        for name, digest in listed.items():
            where = bundle_file(path, str(name))
            if not where.is_file() or _sha256(where) != digest:
                raise DataError(f"{path}/{name}: does not match the manifest (changed or corrupt file)")
    model_config, physics, train_config = _settings(path, config)
    probe = _read_probe(files["probe.npy"])
    try:
        model = PINN(model_config, physics, probe, components or Components.builtin())
        with warnings.catch_warnings(record=True) as skipped:  # Keras warns of each part it skips
            warnings.simplefilter("always")
            model.network.load_weights(str(files["model.weights.h5"]))
    except PtychoError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure means a bad bundle
        raise DataError(f"{path}/model.weights.h5: cannot load weights ({_short(exc)}); "
                        "config.json and the weights do not belong together") from None
    if skipped:  # a partly loaded network would give silently wrong results
        raise DataError(f"{path}/model.weights.h5: {len(skipped)} part(s) of the weights do not fit the network "
                        f"config.json describes ({_short(skipped[0].message)}); the files do not belong together")
    scale = read_bundle_json(files["scale.json"])
    try:
        model.scale.assign(float(scale.get("scale_correction", 1.0)))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{files['scale.json']}: scale_correction is not a number ({_short(exc)})") from None
    history_path = files["history.json"]
    history = History.from_dict(read_bundle_json(history_path)) if history_path.is_file() else History()
    upgraded = upgraded_config(config)  # valid: _settings read it
    probe_source = probe_from_config(upgraded, files["config.json"])
    mask = mask_from_config(upgraded, files[MASK_FILE], physics.N, files["config.json"])
    return Bundle(path, model, train_config, history, config.get("data", {}), manifest, read_positions(path),
                  probe_source, mask)
