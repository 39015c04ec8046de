"""``ptycho import``: other tools' files → the canonical dataset; and the built-in importers.

A built-in command (not a garden plugin): measured data enter every workflow through it, its
conversions are the core's (:mod:`ptycho.workflows.import_data`), and each *format* is the
pluggable part, registered on the ``ptycho_importers`` hook like a third-party one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ptycho_cli.hookspecs import hookimpl
from ptycho_cli.options import ConfigFiles, Json, Quiet, SetItems, Verbose
from ptycho_cli.specs import CommandSpec

Opt = typer.Option


def import_command(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(metavar="SRC", help="CXI, tike or pty-chi NPZ, PtychoPINN NPZ, Ptychodus product "
                                           "(or workflow folder), or a ptycho dataset.", show_default=False)],
    out: Annotated[Path, Opt("--out", "-o", help="Canonical dataset to write (.h5, or .npz for small data).")],
    fmt: Annotated[Optional[str], Opt("--format", help="Importer name (default: recognised from the file; "
                                      "`ptycho plugins` lists them).")] = None,
    dc: Annotated[Optional[str], Opt("--dc", help="Zero frequency of the source patterns: corner, centre or auto "
                                     "(the format's convention, else detected).")] = None,
    N: Annotated[Optional[int], Opt("--N", help="Output pattern size (default: the source's).")] = None,
    reduce: Annotated[Optional[str], Opt("--reduce", help="Patterns larger than --N: crop (central pixels) or "
                                         "bin (sum blocks).")] = None,
    probe: Annotated[Optional[Path], Opt("--probe", help="Probe file to use instead of the file's.")] = None,
    mask: Annotated[Optional[Path], Opt("--mask", help="Valid-pixel mask (True = measured) in the source's "
                                        "layout: .npy, or .npz/.h5 key 'mask'.")] = None,
    probe_power: Annotated[Optional[str], Opt("--probe-power", help="keep, counts, or auto (keep unless far "
                                              "from the photons estimated from the counts).")] = None,
    photon_energy_ev: Annotated[Optional[float], Opt("--photon-energy-ev", help="Photon energy in eV.")] = None,
    detector_distance_m: Annotated[Optional[float], Opt("--detector-distance-m",
                                                        help="Sample–detector distance, m.")] = None,
    detector_pixel_size_m: Annotated[Optional[float], Opt("--detector-pixel-size-m", help="Detector pixel, m.")] = None,
    overwrite: Annotated[bool, Opt("--overwrite", help="Replace an existing output file.")] = False,
    config: ConfigFiles = None,
    set_: SetItems = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Convert another tool's scan into a ptycho dataset, recording every conversion in its metadata.

    Detects the format, puts the zero frequency at the centre (refusing when it cannot tell:
    give --dc), turns flipped or transposed CXI detectors (basis_vectors) into ptycho's frame,
    converts positions to object pixels (metres ÷ λz/(N·dx_detector)), keeps every
    probe mode (a mixed-state probe (K, N, N)), turns the file's detector mask
    into valid pixels, masks hot and dead pixels it finds, and crops or bins larger patterns.
    Prints what it did. Bad input exits with code 3 and writes nothing.

    Examples:

      ptycho import scan.cxi --out scan.h5

      ptycho import tike_arrays.npz --out scan.h5 --photon-energy-ev 8800 --detector-distance-m 2

      ptycho import ptychi_arrays.npz --out scan.h5

      ptycho import scan.cxi --out scan64.h5 --N 64 --reduce bin --mask beamstop.npy

      ptycho import detector_images.h5 --format cxi --dc centre --out scan.h5
    """
    from ptycho.config.importing import ImportConfig
    from ptycho_cli.config_io import resolve_config
    from ptycho_cli.console import print_summary
    from ptycho_cli.errors import guard
    from ptycho_cli.fields import COMMAND_FLAGS

    with guard(verbose, COMMAND_FLAGS["import"]):
        flags = {
            "format": fmt, "dc": dc, "N": N, "reduce": reduce, "probe": probe, "mask": mask,
            "probe_power": probe_power, "photon_energy_eV": photon_energy_ev,
            "detector_distance_m": detector_distance_m, "detector_pixel_size_m": detector_pixel_size_m,
            "overwrite": True if overwrite else None,
        }
        cfg = resolve_config(ImportConfig, "import", files=config or (), sets=set_ or (), flags=flags,
                             sections=ctx.obj.config_sections())
        from ptycho.workflows.import_data import import_dataset

        result = import_dataset(cfg, source, out, ctx.obj.components().importers)
        rows = {
            "dataset": str(result.path), "format": result.format, "patterns": result.n_patterns,
            "source patterns": "×".join(map(str, result.source_shape)), "N": result.N,
            "zero frequency": result.zero_frequency, "reduction": result.reduction,
            "object pixel (m)": result.pixel_size_m if result.pixel_size_m is not None else "unknown",
            "probe": f"{result.probe} ({result.probe_modes} mode{'s' if result.probe_modes > 1 else ''})",
            "probe photons": result.probe_photons, "photons estimated": result.photons_estimated,
            "valid pixels": result.valid_pixels, "bad pixels found": result.bad_pixels,
        }
        rows.update({f"step {i + 1}": step for i, step in enumerate(result.steps)})
        rows["seconds"] = result.seconds
        print_summary("imported", rows, as_json=as_json, quiet=quiet)


@hookimpl
def ptycho_commands():
    return [CommandSpec("import", import_command, config_section="import")]


@hookimpl
def ptycho_importers():
    from ptycho.io.importers import builtin_importer_specs

    return builtin_importer_specs()
