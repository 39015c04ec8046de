"""``ptycho stitch``: stitch per-position object patches into one object image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ptycho_cli.hookspecs import hookimpl
from ptycho_cli.options import ConfigFiles, Json, Quiet, SetItems, Verbose
from ptycho_cli.specs import CommandSpec

Opt = typer.Option


def stitch_command(
    ctx: typer.Context,
    patches: Annotated[Path, typer.Argument(metavar="PATCHES", help="Patches file written by `ptycho infer` (HDF5).", show_default=False)],
    out: Annotated[Path, Opt("--out", "-o", help="Output object file: .npz or .h5.")],
    crop: Annotated[Optional[int], Opt("--crop", help="Side M of the central M×M crop of each patch (default N/2, or the scan spacing + 2 px when that is wider, so sparse scans leave no holes).")] = None,
    chunk_groups: Annotated[Optional[int], Opt("--chunk-groups", help="Groups read and placed at a time (memory bound).")] = None,
    method: Annotated[Optional[str], Opt("--method", help="auto (default: lsq for gridsize 1, else average), lsq "
                                                          "(least-squares object, no interpolation blur) or average.",
                                         show_default=False)] = None,
    no_figures: Annotated[bool, Opt("--no-figures", help="Skip the amplitude and phase PNGs.")] = False,
    config: ConfigFiles = None,
    set_: SetItems = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Stitch object patches into one complex object (central crops, least squares or overlap average).

    Writes OBJECT (.npz/.h5: object, support, origin_x, origin_y, metadata), OBJECT.config.yaml and OBJECT.amplitude.png / OBJECT.phase.png.

    Examples:

      ptycho stitch patches.h5 --out object.npz

      ptycho stitch patches.h5 --out object.h5 --crop 48

      ptycho stitch patches.h5 --out object.npz --method average

      ptycho stitch patches.h5 --out object.npz --set chunk_groups=64 --json
    """
    from ptycho.config.stitch import StitchConfig
    from ptycho_cli.config_io import resolve_config
    from ptycho_cli.console import print_summary, progress_bar
    from ptycho_cli.errors import guard
    from ptycho_cli.fields import COMMAND_FLAGS

    with guard(verbose, COMMAND_FLAGS["stitch"]):
        flags = {"crop": crop, "chunk_groups": chunk_groups, "method": method}
        cfg = resolve_config(StitchConfig, "stitch", files=config or (), sets=set_ or (), flags=flags,
                             sections=ctx.obj.config_sections())
        from ptycho.io.objects import object_format
        from ptycho.io.patches import read_patches
        from ptycho.workflows.stitch import stitch

        object_format(out)  # validate inputs before the progress bar starts
        patches_file = read_patches(patches)
        cfg.crop_size(patches_file.N)  # a crop larger than N fails before any work
        with progress_bar("stitching", quiet=quiet or as_json) as update:
            result = stitch(cfg, patches_file, out, figures=not no_figures, progress=update)
        print_summary(
            "stitched",
            {
                "object": str(result.path),
                "config": str(result.config_path),
                "amplitude": str(result.amplitude_path) if result.amplitude_path else "-",
                "phase": str(result.phase_path) if result.phase_path else "-",
                "shape": "×".join(map(str, result.shape)),
                "origin (x, y)": f"{result.origin_x:g}, {result.origin_y:g}",
                "crop": result.crop,
                "N": result.N,
                "groups": result.n_groups,
                "patches": result.n_patches,
                "coverage": result.coverage,
                "seconds": result.seconds,
            },
            as_json=as_json,
            quiet=quiet,
        )


@hookimpl
def ptycho_commands():
    return [CommandSpec("stitch", stitch_command)]
