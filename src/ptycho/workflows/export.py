"""``export-ptychodus``: a stitched object, a dataset and (optionally) a model → a Ptychodus product.

* **Object** — the object file's array, unchanged, as the product's one layer.
* **Probe** — every incoherent mode (Ptychodus ``(1, K, N, N)``) of, in this order: the file
  ``export.probe`` (any probe file ``load_probe`` reads, exported as it is); with a model, the
  probe ``infer`` makes its input with: the bundle's when training did not use its dataset's own
  (the bundle's ``probe`` record: ``train.probe_file`` or refined), else the dataset's, times ``√scale_correction``
  (``scale.json``), since the PINN multiplies predicted counts by that scale; without a model, the
  refined probe an iterative result records (``metadata["refined_probe"]``, its
  ``<stem>.probe.npz`` beside the object file; a missing file is an error, never a silent
  fallback), else the dataset's. Probe and patterns must be ``N×N`` alike.
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

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptycho import __version__
from ptycho.config.export import ExportConfig
from ptycho.data.dataset import Dataset
from ptycho.io.atomic import atomic_output
from ptycho.io.objects import ObjectImage, read_object
from ptycho.physics.probe import probe_energy
from ptycho.io.ptychodus import (
    DIFFRACTION_FILE, PRODUCT_FILE, PtychodusProduct, detector_pixel_size_m, product_format, world_center_m,
    write_ptychodus_diffraction, write_ptychodus_product,
)
from ptycho.workflows.export_inputs import (
    check_provenance, export_losses, export_probe, relative_positions, resolve_physics, scan_positions,
)


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
    inputs = {"object": object_path, **dataset_inputs(dataset_path), **(bundle_inputs(model_dir) if model_dir else {}),
              **({"probe": Path(config.probe)} if config.probe is not None else {})}
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

    ``physics``: :func:`~ptycho.workflows.export_inputs.resolve_physics`; ``paths``: ``(out, object_path, dataset_path)``, for the
    product's name and comments and for error messages. Values the config leaves unset come
    from the dataset metadata (exposure), the probe (``Σ|P|²``) or the inputs (comments).
    """
    out, object_path, dataset_path = paths
    check_provenance(image, ds, object_path, dataset_path)
    global_x, global_y, positions_source = scan_positions(image, ds, object_path)
    x, y, windows_outside = relative_positions(image, ds, object_path, global_x, global_y)  # reported, not
    # an error: a stitched object covers the central crops, so edge windows reach past it by design
    probe, probe_source = export_probe(ds, model_dir, image, object_path, config.probe)
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
