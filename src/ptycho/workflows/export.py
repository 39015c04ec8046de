"""``export-ptychodus``: a stitched object, a dataset and (optionally) a model → a Ptychodus product.

* **Object** — the object file's array, unchanged, as the product's one layer.
* **Probe** — every incoherent mode (Ptychodus ``(1, K, N, N)``) of the bundle's trained probe
  when the model learnt it (``config.json`` ``model.probe_trainable``), else of the dataset's; with a model, times ``√scale_correction``
  (``scale.json``), since the PINN multiplies predicted counts by that scale. Probe and patterns
  must be ``N×N`` alike.
* **Positions** — the refined ones the object file records (``iterative.refine_positions``
  in ``ptycho iterative``, or ``stitch`` of patches inferred at refined positions), else the
  dataset's; global object pixels → relative to the object file's origin →
  metres with ``center_x_m = dx·(origin_x + (W−1)/2)``, so ``x_m = dx·x_global`` (the world frame is
  ptycho's global pixel frame, whatever crop was exported) and Ptychodus' own mapping gives back
  the pixel positions in the exported array.
* **Metadata** — photon energy, detector distance and object pixel size from the config, else the
  dataset metadata, else an error naming the config field to set.
* **Losses** — ``history.json`` of the bundle (``epoch``, ``loss``), else empty.

``with_diffraction`` also writes ``diffraction.h5`` beside the product (Ptychodus' diffraction
layout, detector pixel ``λz/(N·dx)``): with the product named ``product.h5`` the folder is a
Ptychodus workflow directory. Both files appear together or not at all.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptycho import __version__
from ptycho.config.export import ExportConfig
from ptycho.data.dataset import Dataset
from ptycho.data.validation import BOUNDS_TOL_PX
from ptycho.errors import DataError, field
from ptycho.io.atomic import atomic_output, one_line
from ptycho.io.objects import ObjectImage, read_object
from ptycho.physics.probe import probe_energy
from ptycho.io.ptychodus import (
    DIFFRACTION_FILE, PRODUCT_FILE, PtychodusProduct, detector_pixel_size_m, product_format, world_center_m,
    write_ptychodus_diffraction, write_ptychodus_product,
)

REQUIRED_PHYSICS = ("photon_energy_eV", "detector_distance_m", "pixel_size_m")
"""Physical values a product needs: fields of :class:`ExportConfig`, else the dataset metadata."""
CENTRE_TOL_PX = 0.5
"""A probe centre may lie at most half a pixel beyond the object's edge pixel centres."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_ptychodus` wrote."""

    path: Path
    format: str
    config_path: Path
    diffraction_path: Path | None
    workflow_directory: bool
    n_positions: int
    object_shape: tuple[int, int]
    N: int
    photon_energy_eV: float
    detector_distance_m: float
    pixel_size_m: float
    probe_pixel_size_m: float
    detector_pixel_size_m: float
    probe_photon_count: float
    probe_source: str
    loss_epochs: int
    positions_source: str
    windows_outside: int
    seconds: float


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


def _check_provenance(image: ObjectImage, ds: Dataset, object_path: Path, dataset_path: Path) -> None:
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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read ({one_line(exc)}); the model bundle is incomplete or corrupt") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a JSON object")
    return value


def export_probe(ds: Dataset, model_dir: Path | None) -> tuple[np.ndarray, str]:
    """The probe to export and where it came from (module docstring)."""
    probe, source = np.asarray(ds.probe, np.complex64), "dataset"
    if model_dir is None:
        return probe, source
    from ptycho.models.bundle import bundle_file

    model_dir = Path(model_dir)
    if not bundle_file(model_dir, "config.json").is_file():
        raise DataError(f"{model_dir}: not a model bundle (no config.json); pass the folder written by `ptycho train`")
    config = _read_json(bundle_file(model_dir, "config.json"))
    if bool((config.get("model") or {}).get("probe_trainable", False)):
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
        probe, source = probe.astype(np.complex64), "model (trained)"
    scale_path = bundle_file(model_dir, "scale.json")
    scale = float(_read_json(scale_path).get("scale_correction", 1.0)) if scale_path.is_file() else 1.0
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
    from ptycho.models.bundle import bundle_file

    path = bundle_file(Path(model_dir), "history.json")
    if not path.is_file():
        warnings.warn(f"{path}: not found; the product gets an empty loss curve", UserWarning, stacklevel=2)
        return empty
    history = _read_json(path)
    try:
        values = np.asarray(history.get("loss", []), np.float64).reshape(-1)
        epochs = np.asarray(history.get("epoch", range(1, len(values) + 1)), np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: 'epoch'/'loss' must be lists of numbers ({one_line(exc)})") from None
    if epochs.shape != values.shape:
        raise DataError(f"{path}: {epochs.size} epochs but {values.size} loss values; expected one per epoch")
    return epochs, values


def default_name(out: Path) -> str:
    """``product.h5`` in a workflow folder is named after the folder, anything else after its stem."""
    if out.name == PRODUCT_FILE and out.resolve().parent.name:
        return out.resolve().parent.name
    return out.stem


def export_ptychodus(config: ExportConfig, object_path: Path, dataset_path: Path, out: Path,
                     model_dir: Path | None = None) -> ExportResult:
    """Write a Ptychodus product (and, with ``with_diffraction``, its ``diffraction.h5``) and the
    resolved config ``<stem>.config.yaml`` beside it, each atomically.

    Raises
    ------
    ConfigError
        Unknown format or a suffix that does not match it (exit code 2).
    DataError
        Missing physical metadata (names the field), unreadable inputs, a probe that does not
        match the patterns, positions outside the object, an object stitched from another
        dataset (exit code 3).
    """
    from ptycho.io.config_file import config_path_for, write_resolved_config
    from ptycho.io.datasets import dataset_inputs, load_dataset
    from ptycho.io.paths import check_output_file, refuse_overwriting_inputs
    from ptycho.models.bundle import bundle_inputs

    t0 = time.perf_counter()
    out, object_path, dataset_path = check_output_file(out), Path(object_path), Path(dataset_path)
    fmt = product_format(out, config.format)
    outputs = [out, config_path_for(out), *([out.with_name(DIFFRACTION_FILE)] if config.with_diffraction else [])]
    inputs = {"object": object_path, **dataset_inputs(dataset_path), **(bundle_inputs(model_dir) if model_dir else {})}
    refuse_overwriting_inputs(outputs, inputs, "export-ptychodus")
    image = read_object(object_path)
    ds = load_dataset(dataset_path, check_bounds="off")
    N = ds.N  # the result reports it after the file is closed
    try:
        physics = resolve_physics(config, ds.metadata, dataset_path)
        product, probe_source, positions_source, windows_outside = build_product(
            config, image, ds, physics, model_dir, (out, object_path, dataset_path))
        det_dx = detector_pixel_size_m(product.photon_energy_eV, product.detector_distance_m, N,
                                       product.probe_pixel_width_m)
        diffraction_path = out.with_name(DIFFRACTION_FILE) if config.with_diffraction else None
        if diffraction_path is not None:
            with atomic_output(diffraction_path) as tmp:  # both files or neither
                write_ptychodus_diffraction(tmp, ds.diffraction, product.indexes, (det_dx, det_dx), ds.mask)
                write_ptychodus_product(out, product, format=fmt)
        else:
            write_ptychodus_product(out, product, format=fmt)
    finally:
        ds.close()
    resolved = config.model_copy(update={
        **physics, "format": fmt, "name": product.name, "comments": product.comments,
        "probe_pixel_size_m": product.probe_pixel_width_m, "exposure_time_s": product.exposure_time_s,
        "probe_photon_count": product.probe_photon_count,
    })
    config_path = write_resolved_config(out, "export", resolved)
    workflow = diffraction_path is not None and out.name == PRODUCT_FILE
    if diffraction_path is not None and not workflow:
        warnings.warn(f"{out}: Ptychodus opens a workflow directory only when the product is named {PRODUCT_FILE} "
                      f"(HDF5); {diffraction_path.name} was written beside it", UserWarning, stacklevel=2)
    return ExportResult(
        path=out, format=fmt, config_path=config_path, diffraction_path=diffraction_path, workflow_directory=workflow,
        n_positions=len(product.x), object_shape=image.shape, N=N, photon_energy_eV=product.photon_energy_eV,
        detector_distance_m=product.detector_distance_m, pixel_size_m=product.pixel_width_m,
        probe_pixel_size_m=product.probe_pixel_width_m, detector_pixel_size_m=det_dx,
        probe_photon_count=product.probe_photon_count, probe_source=probe_source,
        loss_epochs=int(product.loss_epochs.size), positions_source=positions_source, windows_outside=windows_outside,
        seconds=time.perf_counter() - t0,
    )


def build_product(config: ExportConfig, image: ObjectImage, ds: Dataset, physics: dict[str, float],
                  model_dir: Path | None, paths: tuple[Path, Path, Path]) -> tuple[PtychodusProduct, str, str, int]:
    """The product for ``image`` reconstructed from ``ds`` (open), where its probe and its
    positions came from, and how many windows reach past the object.

    ``physics``: :func:`resolve_physics`; ``paths``: ``(out, object_path, dataset_path)``, for the
    product's name and comments and for error messages. Values the config leaves unset come
    from the dataset metadata (exposure), the probe (``Σ|P|²``) or the inputs (comments).
    """
    out, object_path, dataset_path = paths
    _check_provenance(image, ds, object_path, dataset_path)
    global_x, global_y, positions_source = scan_positions(image, ds, object_path)
    x, y, windows_outside = relative_positions(image, ds, object_path, global_x, global_y)  # reported, not
    # an error: a stitched object covers the central crops, so edge windows reach past it by design
    probe, probe_source = export_probe(ds, model_dir)
    epochs, losses = export_losses(model_dir)
    dx = physics["pixel_size_m"]
    probe_dx = config.probe_pixel_size_m or dx
    exposure = config.exposure_time_s
    if exposure is None:
        exposure = float(ds.metadata.get("exposure_time_s", 0.0) or 0.0)
    photons = config.probe_photon_count
    if photons is None:
        photons = probe_energy(probe)
    comments = config.comments
    if comments is None:
        comments = (f"exported by ptycho {__version__} from object {object_path}, dataset {dataset_path}"
                    + (f", model {model_dir}" if model_dir else "") + f"; probe from {probe_source}")
    H, W = image.shape
    product = PtychodusProduct(
        object=image.object, probe=probe, x=x, y=y, indexes=np.arange(ds.n_patterns, dtype=np.int64),
        pixel_width_m=dx, pixel_height_m=dx, probe_pixel_width_m=probe_dx, probe_pixel_height_m=probe_dx,
        center_x_m=world_center_m(image.origin_x, W, dx), center_y_m=world_center_m(image.origin_y, H, dx),
        photon_energy_eV=physics["photon_energy_eV"], detector_distance_m=physics["detector_distance_m"],
        name=config.name or default_name(out), comments=comments, probe_photon_count=photons,
        exposure_time_s=exposure, mass_attenuation_m2_per_kg=config.mass_attenuation_m2_per_kg,
        tomography_angle_deg=config.tomography_angle_deg, loss_epochs=epochs, loss_values=losses,
    )
    return product, probe_source, positions_source, windows_outside
