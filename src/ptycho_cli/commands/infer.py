"""``ptycho infer``: per-group complex object patches from a model bundle and a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ptycho.config.infer import InferConfig
from ptycho_cli.defaults import default_of
from ptycho_cli.hookspecs import hookimpl
from ptycho_cli.options import ConfigFiles, Json, Quiet, SetItems, Verbose
from ptycho_cli.specs import CommandSpec

Opt = typer.Option


def infer_command(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(metavar="MODEL_DIR", help="Bundle written by `ptycho train`.", show_default=False)],
    dataset: Annotated[Path, typer.Argument(metavar="DATASET", help="Dataset to reconstruct.", show_default=False)],
    out: Annotated[Path, Opt("--out", "-o", help="Patches file (HDF5).")],
    batch_size: Annotated[Optional[int], Opt("--batch-size", help="Groups per forward pass.", show_default=default_of(InferConfig, "batch_size"))] = None,
    n_groups: Annotated[Optional[int], Opt("--n-groups", help="Groups to reconstruct (default one per position).")] = None,
    jit: Annotated[Optional[bool], Opt("--jit/--no-jit", help="XLA-compile the forward pass.", show_default=False)] = None,
    mask: Annotated[Optional[Path], Opt("--mask", metavar="FILE", show_default=False,
                                        help="Valid-pixel mask (True = measured) replacing the dataset's \\[default: "
                                             "the dataset's mask; for a dataset without one, the mask the model "
                                             "was trained with, if any].")] = None,
    probe: Annotated[Optional[Path], Opt("--probe", metavar="FILE", show_default=False,
                                         help="Make the input with this probe \\[default: the model's when it was "
                                              "trained with a probe file or a refined probe, else the "
                                              "dataset's].")] = None,
    refine_positions: Annotated[Optional[bool], Opt(
        "--refine-positions/--no-refine-positions", show_default=False,
        help="Refine the scan's positions first: rPIE passes with the model's probe move each position by a bounded "
             "sub-pixel offset (mean shift removed; --set position_init_passes=40, position_max_shift_px=2). "
             "Groups, the network's input and the patches file use the refined positions, so stitch places "
             "the patches there and export-ptychodus writes them \\[default: off].")] = None,
    config: ConfigFiles = None,
    set_: SetItems = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Reconstruct the object patch of every group member in one forward pass per batch.

    Groups are formed as in training (gridsize, neighbours, seed). The dataset is streamed,
    so memory does not grow with its size. The probe and the detector mask come from the model
    when it was trained with its own probe or a mask and the scan gives none; the summary and
    the patches file's provenance say which were used.

    Examples:

      ptycho infer model/ test.h5 --out patches.h5

      ptycho infer model/ legacy_scan.npz --out patches.h5 --batch-size 128

      ptycho infer model/ measured.h5 --out patches.h5 --refine-positions
    """
    from ptycho.config.infer import InferConfig
    from ptycho_cli.config_io import resolve_config
    from ptycho_cli.console import print_summary, progress_bar
    from ptycho_cli.errors import guard
    from ptycho_cli.fields import COMMAND_FLAGS

    with guard(verbose, COMMAND_FLAGS["infer"]):
        flags = {"batch_size": batch_size, "n_groups": n_groups, "jit": jit, "mask": mask,
                 "probe_file": None if probe is None else str(probe), "refine_positions": refine_positions}
        cfg = resolve_config(InferConfig, "infer", files=config or (), sets=set_ or (), flags=flags,
                             sections=ctx.obj.config_sections())
        from ptycho.workflows.infer import infer

        with progress_bar("inferring", quiet=quiet or as_json) as update:
            result = infer(cfg, model, dataset, out, ctx.obj.components(), progress=update)
        print_summary(
            "inferred",
            {
                "patches": str(result.path),
                "groups": result.n_groups,
                "gridsize": result.gridsize,
                "positions": result.positions,
                "probe": result.probe,
                "mask": result.mask,
                **({f"estimate {result.estimate_unit} (kept / run)": " ".join(
                    f"{k}/{r}" for k, r in zip(result.estimate_passes, result.estimate_passes_run))}
                   if result.estimate_passes else {}),
                "patterns/s (network)": result.patterns_per_second,
                "seconds": result.seconds,
            },
            as_json=as_json,
            quiet=quiet,
        )


@hookimpl
def ptycho_commands():
    return [CommandSpec("infer", infer_command)]
