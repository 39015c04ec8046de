"""What ``export-ptychodus`` takes from ptycho's files for a product (the rules: the module
docstring of :mod:`ptycho.workflows.export`): the physical values, the positions, the probe and
the loss curve, each checked against the others.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ptycho.config.export import ExportConfig
from ptycho.data.dataset import Dataset
from ptycho.data.validation import BOUNDS_TOL_PX
from ptycho.errors import DataError, field
from ptycho.io.atomic import one_line
from ptycho.io.objects import ObjectImage

REQUIRED_PHYSICS = ("photon_energy_eV", "detector_distance_m", "pixel_size_m")
"""Physical values a product needs: fields of :class:`ExportConfig`, else the dataset metadata."""
CENTRE_TOL_PX = 0.5
"""A probe centre may lie at most half a pixel beyond the object's edge pixel centres."""


def resolve_physics(config: ExportConfig, metadata: dict[str, Any], dataset_path: Path) -> dict[str, float]:
    """Energy, distance and pixel size from the config, else the dataset metadata.

    Raises
    ------
    DataError
        Naming every value that is missing or invalid at once (not one per run).
    """
    values: dict[str, float] = {}
    missing, invalid = [], []
    for key in REQUIRED_PHYSICS:
        value = getattr(config, key)
        if value is None:
            value = metadata.get(key)
            if value is None:
                missing.append(key)
                continue
            try:
                value = float(value)
            except (TypeError, ValueError):
                value = float("nan")
            if not math.isfinite(value) or value <= 0:
                invalid.append(f"{key} = {metadata.get(key)!r}")
                continue
        values[key] = float(value)
    if missing or invalid:
        parts = []
        if missing:
            parts.append(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in the dataset metadata "
                         "and not given")
        if invalid:
            parts.append(f"the metadata hold {', '.join(invalid)} (expected positive numbers)")
        fields = ", ".join(field(f"export.{key}") for key in [*missing, *(i.split(' = ')[0] for i in invalid)])
        raise DataError(f"{dataset_path}: {'; '.join(parts)}; set {fields} (a Ptychodus product needs them)")
    return values


def check_provenance(image: ObjectImage, ds: Dataset, object_path: Path, dataset_path: Path) -> None:
    """An object stitched from another dataset (per its recorded fingerprint) is refused."""
    provenance = image.metadata.get("provenance") or {}
    recorded = provenance.get("dataset_fingerprint") if isinstance(provenance, dict) else None
    if recorded and recorded != ds.fingerprint():
        raise DataError(f"{object_path}: was stitched from patches of dataset {provenance.get('dataset', '?')}, "
                        f"not {dataset_path} (fingerprints differ); pass the dataset the patches were inferred from")


def scan_positions(image: ObjectImage, ds: Dataset, object_path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Global positions to export and where they came from: the refined ones the object records
    (docs/positions.md#outputs) in place of their patterns', else the dataset's.

    Raises
    ------
    DataError
        Recorded positions of patterns the dataset does not have.
    """
    if image.positions is None:
        return np.asarray(ds.x, np.float64), np.asarray(ds.y, np.float64), "dataset"
    index = image.positions.index
    if index.size and int(index.max()) >= ds.n_patterns:
        raise DataError(f"{object_path}: records refined positions of pattern {int(index.max())} but the dataset has "
                        f"{ds.n_patterns} patterns; pass the dataset the object was reconstructed from")
    x, y = image.positions.apply(ds.x, ds.y)
    return x, y, f"object (refined, {index.size} of {ds.n_patterns})"


def relative_positions(image: ObjectImage, ds: Dataset, object_path: Path, x: np.ndarray | None = None,
                       y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Positions (the dataset's unless ``x``, ``y`` are given, global pixels) in pixels of the
    object array, and how many windows reach outside it.

    Raises
    ------
    DataError
        A probe centre outside the object: the object and the dataset do not belong together.
    """
    H, W = image.shape
    x = np.asarray(ds.x if x is None else x, np.float64) - image.origin_x
    y = np.asarray(ds.y if y is None else y, np.float64) - image.origin_y
    out = (x < -CENTRE_TOL_PX) | (x > W - 1 + CENTRE_TOL_PX) | (y < -CENTRE_TOL_PX) | (y > H - 1 + CENTRE_TOL_PX)
    if out.any():
        raise DataError(
            f"{object_path}: {int(out.sum())} of {out.size} probe centres of the dataset lie outside the {H}×{W} "
            f"object at origin ({image.origin_x:g}, {image.origin_y:g}) (first at x={(x + image.origin_x)[out][0]:g}, "
            f"y={(y + image.origin_y)[out][0]:g}); the object and the dataset do not belong together")
    half = (ds.N - 1) / 2
    tol = BOUNDS_TOL_PX  # the same slack the dataset validation allows
    outside = (x - half < -tol) | (x + half > W - 1 + tol) | (y - half < -tol) | (y + half > H - 1 + tol)
    return x, y, int(outside.sum())


def export_probe(ds: Dataset, model_dir: Path | None, image: ObjectImage | None = None,
                 object_path: Path | None = None, override: Path | None = None) -> tuple[np.ndarray, str]:
    """The probe to export and where it came from (module docstring of :mod:`ptycho.workflows.export`):
    ``override`` (``export.probe``), else the model's, else the refined probe the object file
    records (``ptycho iterative`` with ``iterative.probe_update``), else the dataset's."""
    if override is not None:
        from ptycho.io.datasets import load_probe

        return _matching(load_probe(override), ds, Path(override), "probe"), f"file {override} (export.probe)"
    if model_dir is None:
        refined = None if image is None or object_path is None else result_probe(image, Path(object_path), ds)
        return refined or (np.asarray(ds.probe, np.complex64), "dataset")
    return _model_probe(ds, Path(model_dir))


def _matching(probe: np.ndarray, ds: Dataset, path: Path, what: str) -> np.ndarray:
    """``probe`` as complex64 if it is ``N×N`` like the dataset's patterns (DataError otherwise)."""
    if probe.shape[-2:] != (ds.N, ds.N):
        raise DataError(f"{path}: {what} is {probe.shape[-2]}×{probe.shape[-1]} but the dataset's patterns are "
                        f"{ds.N}×{ds.N}; it does not belong to this dataset")
    return np.asarray(probe, np.complex64)


def result_probe(image: ObjectImage, object_path: Path, ds: Dataset) -> tuple[np.ndarray, str] | None:
    """The refined probe beside an iterative result (``metadata["refined_probe"]``, or for object
    files written before that key, ``<stem>.probe.npz`` when the run updated the probe), None
    when the result did not refine one.

    Raises
    ------
    DataError
        The result records a refined probe but its file is missing or does not fit the dataset.
    """
    from ptycho.io.datasets import load_probe

    meta = image.metadata
    name = meta.get("refined_probe")
    options = meta.get("options") if isinstance(meta.get("options"), dict) else {}
    if name is None and meta.get("created_by") == "ptycho iterative" and options.get("probe_update"):
        name = f"{object_path.stem}.probe.npz"
    if not name:
        return None
    path = object_path.with_name(str(name))
    if not path.is_file():
        raise DataError(f"{object_path}: the result refined its probe ({name}) but {path} is missing; set "
                        f"{field('export.probe')} to the probe file to export (the dataset, to export its probe)")
    return _matching(load_probe(path), ds, path, "refined probe"), f"result (refined, {path.name})"


def _model_probe(ds: Dataset, model_dir: Path) -> tuple[np.ndarray, str]:
    """The probe ``infer`` makes the model's input with (:func:`~ptycho.workflows.infer_inputs.choose_probe`):
    the bundle's when training did not use its dataset's own (read from a file or refined), else the
    dataset's; times √scale_correction."""
    from ptycho.models.bundle import bundle_file, read_bundle_json
    from ptycho.models.bundle_sources import probe_from_config
    from ptycho.models.bundle_versions import upgraded_config

    probe, source = np.asarray(ds.probe, np.complex64), "dataset"
    config_path = bundle_file(model_dir, "config.json")
    if not config_path.is_file():
        raise DataError(f"{model_dir}: not a model bundle (no config.json); pass the folder written by `ptycho train`")
    try:
        config = upgraded_config(read_bundle_json(config_path))
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{config_path}: not a model bundle's config (no model and train sections)") from None
    record = probe_from_config(config, config_path)
    if record.replaces_datasets:
        path = bundle_file(model_dir, "probe.npy")
        try:
            probe = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read the trained probe ({one_line(exc)})") from None
        if probe.ndim not in (2, 3) or probe.shape[-1] != probe.shape[-2] or probe.dtype.kind not in "fc" \
                or probe.size == 0:
            raise DataError(f"{path}: trained probe has shape {probe.shape} and dtype {probe.dtype}; expected a "
                            "square complex (N, N) array or (K, N, N) modes")
        if probe.shape[-2:] != (ds.N, ds.N):
            raise DataError(f"{path}: trained probe is {probe.shape[-2]}×{probe.shape[-1]} but the dataset's patterns "
                            f"are {ds.N}×{ds.N}; the model and the dataset do not match")
        if not np.isfinite(probe).all():
            raise DataError(f"{path}: trained probe contains NaN or Inf values")
        probe, source = probe.astype(np.complex64), f"model: {record.describe()}"
    scale_path = bundle_file(model_dir, "scale.json")
    scale = float(read_bundle_json(scale_path).get("scale_correction", 1.0)) if scale_path.is_file() else 1.0
    if not math.isfinite(scale) or scale <= 0:
        raise DataError(f"{scale_path}: scale_correction = {scale}; expected a positive number")
    if scale != 1.0:
        probe, source = (probe * np.sqrt(scale)).astype(np.complex64), f"{source} × √scale ({scale:.6g})"
    return probe, source


def export_losses(model_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs int64, losses float64)`` from the bundle's ``history.json`` (empty without one)."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.float64))
    if model_dir is None:
        return empty
    from ptycho.models.bundle import bundle_file, read_bundle_json

    path = bundle_file(Path(model_dir), "history.json")
    if not path.is_file():
        warnings.warn(f"{path}: not found; the product gets an empty loss curve", UserWarning, stacklevel=2)
        return empty
    history = read_bundle_json(path)
    try:
        values = np.asarray(history.get("loss", []), np.float64).reshape(-1)
        epochs = np.asarray(history.get("epoch", range(1, len(values) + 1)), np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: 'epoch'/'loss' must be lists of numbers ({one_line(exc)})") from None
    if epochs.shape != values.shape:
        raise DataError(f"{path}: {epochs.size} epochs but {values.size} loss values; expected one per epoch")
    return epochs, values
