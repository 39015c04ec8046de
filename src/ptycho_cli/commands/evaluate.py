"""``ptycho evaluate``: score a reconstruction against its ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ptycho.config.evaluate import EvaluateConfig
from ptycho_cli.defaults import default_of
from ptycho_cli.hookspecs import hookimpl
from ptycho_cli.options import ConfigFiles, Json, Quiet, SetItems, Verbose
from ptycho_cli.specs import CommandSpec
from ptycho_cli.tables import metrics_table

Opt = typer.Option

__all__ = ["evaluate_command", "metrics_table"]


def evaluate_command(
    ctx: typer.Context,
    objects: Annotated[list[Path], typer.Argument(metavar="OBJECT...", help="Object file(s) written by `ptycho stitch` or `ptycho iterative`; several are scored side by side.", show_default=False)],
    truth: Annotated[Path, Opt("--truth", "-t", help="Ground truth: a dataset with an object, or an object file.")],
    out: Annotated[Path, Opt("--out", "-o", help="Output directory for metrics.json and the figures.")],
    phase_ramp: Annotated[bool, Opt("--phase-ramp", help="Also remove a linear phase ramp.")] = False,
    no_register: Annotated[bool, Opt("--no-register", help="Do not estimate or undo a sub-pixel shift.")] = False,
    upsample: Annotated[Optional[int], Opt("--upsample", help="Registration precision is 1/UPSAMPLE px.", show_default=default_of(EvaluateConfig, "upsample"))] = None,
    config: ConfigFiles = None,
    set_: SetItems = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Score a reconstructed object against ground truth (registration, phase offset, metrics, FRC).

    Scores the largest rectangle fully inside the reconstruction's support. Writes EVAL_DIR/metrics.json, comparison.png, frc.png and config.yaml.

    With several objects (e.g. the PINN's and rPIE's reconstructions of one scan), all are scored on the pixels every one of them supports, one table compares them, and EVAL_DIR/side_by_side.png shows them with the truth.

    Examples:

      ptycho evaluate object.npz --truth data.h5 --out eval/

      ptycho evaluate object.h5 --truth truth_object.npz --out eval/ --phase-ramp

      ptycho evaluate object.npz --truth data.h5 --out eval/ --no-register --json

      ptycho evaluate pinn.npz rpie.npz --truth test.h5 --out eval/
    """
    from ptycho.config.evaluate import EvaluateConfig
    from ptycho_cli.config_io import resolve_config
    from ptycho_cli.console import print_summary, stdout
    from ptycho_cli.errors import guard
    from ptycho_cli.fields import COMMAND_FLAGS

    with guard(verbose, COMMAND_FLAGS["evaluate"]):
        flags = {"registration": False if no_register else None, "phase_ramp": True if phase_ramp else None, "upsample": upsample}
        cfg = resolve_config(EvaluateConfig, "evaluate", files=config or (), sets=set_ or (), flags=flags,
                             sections=ctx.obj.config_sections())
        if len(objects) > 1:
            return _side_by_side(cfg, objects, truth, out, quiet=quiet, as_json=as_json)
        from ptycho.workflows.evaluate import evaluate

        obj = objects[0]
        result = evaluate(cfg, obj, truth, out)
        if not quiet and not as_json:
            stdout().print(metrics_table(result.metrics, title=f"{obj} vs {truth}"))
        rows = {
            "metrics": str(result.metrics_path),
            "comparison": str(result.comparison_path),
            "frc": str(result.frc_path),
            "config": str(result.config_path),
        }
        if as_json:
            rows = {**rows, "results": result.metrics}
        print_summary("evaluated", rows, as_json=as_json, quiet=quiet)


def _side_by_side(cfg: EvaluateConfig, objects: list[Path], truth: Path, out: Path, *, quiet: bool, as_json: bool) -> None:
    from ptycho.workflows.side_by_side import evaluate_side_by_side
    from ptycho_cli.console import print_summary, stdout
    from ptycho_cli.tables import side_by_side_table

    result = evaluate_side_by_side(cfg, objects, truth, out)
    if not quiet and not as_json:
        stdout().print(side_by_side_table(result.metrics, title=f"vs {truth}"))
    rows = {"metrics": str(result.metrics_path), "figure": str(result.figure_path)}
    if as_json:
        rows = {**rows, "results": result.metrics}
    print_summary("evaluated side by side", rows, as_json=as_json, quiet=quiet)


@hookimpl
def ptycho_commands():
    return [CommandSpec("evaluate", evaluate_command)]
