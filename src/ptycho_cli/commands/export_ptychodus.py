"""``ptycho export-ptychodus``: write a Ptychodus product (and optionally its diffraction file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ptycho_cli.hookspecs import hookimpl
from ptycho_cli.options import ConfigFiles, Json, Quiet, SetItems, Verbose
from ptycho_cli.specs import CommandSpec

Opt = typer.Option


def export_ptychodus_command(
    ctx: typer.Context,
    object_path: Annotated[Path, typer.Argument(metavar="OBJECT", help="Object file from `ptycho stitch` (or a dataset with ground truth).", show_default=False)],
    dataset: Annotated[Path, Opt("--dataset", "-d", help="The dataset the object was reconstructed from (positions, probe, metadata).", show_default=False)],
    out: Annotated[Path, Opt("--out", "-o", help="Output product: .h5 (HDF5) or .npz; DIR/product.h5 for a workflow directory.")],
    model: Annotated[Optional[Path], Opt("--model", "-m", help="Model bundle: trained probe (if learnt) and loss curve.")] = None,
    probe: Annotated[Optional[Path], Opt("--probe", metavar="FILE", show_default=False, help="Probe to export (any file "
                     "`simulate --probe file:` reads) instead of the result's: the model's trained probe, the refined "
                     "OBJECT.probe.npz of `ptycho iterative --probe-update`, else the dataset's.")] = None,
    fmt: Annotated[Optional[str], Opt("--format", help="h5 or npz (default: from the suffix).")] = None,
    photon_energy_ev: Annotated[Optional[float], Opt("--photon-energy-ev", help="Photon energy in eV (default: dataset metadata).")] = None,
    detector_distance_m: Annotated[Optional[float], Opt("--detector-distance-m", help="Sample–detector distance in m (default: dataset metadata).")] = None,
    pixel_size_m: Annotated[Optional[float], Opt("--pixel-size-m", help="Object pixel size in m (default: dataset metadata).")] = None,
    probe_pixel_size_m: Annotated[Optional[float], Opt("--probe-pixel-size-m", help="Probe pixel size in m (default: the object's).")] = None,
    probe_photon_count: Annotated[Optional[float], Opt("--probe-photon-count", help="Photons per exposure (default: Σ|P|² of the probe).")] = None,
    exposure_time_s: Annotated[Optional[float], Opt("--exposure-time-s", help="Exposure time in s (default: dataset metadata, else 0).")] = None,
    name: Annotated[Optional[str], Opt("--name", help="Product name (default: output stem or folder).")] = None,
    comments: Annotated[Optional[str], Opt("--comments", help="Free-text comments (default: provenance).")] = None,
    with_diffraction: Annotated[bool, Opt("--with-diffraction", help="Also write Ptychodus' diffraction.h5 beside the product.")] = False,
    config: ConfigFiles = None,
    set_: SetItems = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Export a Ptychodus product: object, probe, positions in metres, metadata and loss curve.

    Writes PRODUCT (.h5 or .npz, readable by Ptychodus) and PRODUCT.config.yaml; with --with-diffraction also diffraction.h5 beside it, so that DIR/product.h5 + DIR/diffraction.h5 is a Ptychodus workflow directory (which ptycho reads back as a dataset).

    The probe written is the result's own: a model's trained (refined) probe, or the refined OBJECT.probe.npz beside an iterative result; else the dataset's. --probe FILE overrides it; the summary says which was written.

    Photon energy, detector distance and pixel size come from the flags, else the dataset metadata; a value known from neither is an error (exit code 3) naming the flag.

    Examples:

      ptycho export-ptychodus object.npz --dataset data.h5 --model model/ --out product.h5

      ptycho export-ptychodus object.h5 --dataset data.h5 --out scan.npz --photon-energy-ev 8000 --detector-distance-m 2 --pixel-size-m 1e-8

      ptycho export-ptychodus object.npz --dataset data.h5 --out run1/product.h5 --with-diffraction

      ptycho export-ptychodus rpie.npz --dataset data.h5 --out product.h5     # rpie.probe.npz, if refined

      ptycho export-ptychodus object.h5 --dataset data.h5 --out product.h5 --probe other.probe.npz
    """
    from ptycho.config.export import ExportConfig
    from ptycho_cli.config_io import resolve_config
    from ptycho_cli.console import print_summary
    from ptycho_cli.errors import guard
    from ptycho_cli.fields import COMMAND_FLAGS

    with guard(verbose, COMMAND_FLAGS["export-ptychodus"]):
        flags = {
            "format": fmt, "photon_energy_eV": photon_energy_ev, "detector_distance_m": detector_distance_m,
            "pixel_size_m": pixel_size_m, "probe_pixel_size_m": probe_pixel_size_m,
            "probe_photon_count": probe_photon_count, "exposure_time_s": exposure_time_s, "name": name,
            "comments": comments, "with_diffraction": True if with_diffraction else None, "probe": probe,
        }
        cfg = resolve_config(ExportConfig, "export", files=config or (), sets=set_ or (), flags=flags,
                             sections=ctx.obj.config_sections())
        from ptycho.workflows.export import export_ptychodus

        result = export_ptychodus(cfg, object_path, dataset, out, model_dir=model)
        print_summary(
            "exported",
            {
                "product": str(result.path),
                "format": result.format,
                "diffraction": str(result.diffraction_path) if result.diffraction_path else "-",
                "workflow directory": result.workflow_directory,
                "config": str(result.config_path),
                "positions": result.n_positions,
                "positions from": result.positions_source,
                "object": "×".join(map(str, result.object_shape)),
                "N": result.N,
                "probe": result.probe_source,
                "probe photons": result.probe_photon_count,
                "photon energy (eV)": result.photon_energy_eV,
                "detector distance (m)": result.detector_distance_m,
                "pixel size (m)": result.pixel_size_m,
                "detector pixel (m)": result.detector_pixel_size_m,
                "loss epochs": result.loss_epochs,
                "windows beyond object": result.windows_outside,
                "seconds": result.seconds,
            },
            as_json=as_json,
            quiet=quiet,
        )


@hookimpl
def ptycho_commands():
    return [CommandSpec("export-ptychodus", export_ptychodus_command)]
