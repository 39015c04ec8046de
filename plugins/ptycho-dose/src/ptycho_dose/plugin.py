"""The ``ptycho dose`` command and the ``dose-<high|low>-<nll|mae>`` A/B variants (entry point
``dose`` in the group ``ptycho``).

Only Typer and :mod:`ptycho_cli.api` are imported at module level; the study (and TensorFlow)
load inside the command body, so ``ptycho --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ptycho_cli.api import (
    CommandSpec,
    ConfigFiles,
    Json,
    Quiet,
    SetItems,
    VariantSpec,
    Verbose,
    hookimpl,
)
from ptycho_dose.config import DOSE_HIGH, DOSE_LOW, LOSSES, SECTION, variant_settings

Opt = typer.Option
LOSS_NAMES = {"nll": "Poisson NLL on counts", "mae": "MAE on amplitudes"}


def dose_command(
    ctx: typer.Context,
    out: Annotated[Path, Opt("--out", "-o", help="Study folder: metrics.md/.json, dose_comparison*.png, runs/<arm>/.")],
    full: Annotated[bool, Opt("--full", help="Full size: N=64, gridsize 2, 256-px object, 2000 training / 512 test "
                                              "positions, 20 epochs, n_filters_scale 2 (flags and --set still win).")] = False,
    doses: Annotated[Optional[str], Opt("--doses", show_default=False,
                                        help="Comma list of photons per pattern, one figure row each (default 1e9,1e4).")] = None,
    losses: Annotated[Optional[str], Opt("--losses", show_default=False,
                                         help="Comma list of nll, mae (default both).")] = None,
    N: Annotated[Optional[int], Opt("--N", help="Pattern size (default 32; --full 64).", show_default=False)] = None,
    gridsize: Annotated[Optional[int], Opt("--gridsize", help="Group side (default 1; --full 2).", show_default=False)] = None,
    size: Annotated[Optional[int], Opt("--size", help="Object side in pixels (default 96).", show_default=False)] = None,
    n_images: Annotated[Optional[int], Opt("--n-images", help="Training positions (default 256); the test scan has half.",
                                           show_default=False)] = None,
    epochs: Annotated[Optional[int], Opt("--epochs", help="Training epochs (default 5).", show_default=False)] = None,
    seed: Annotated[Optional[int], Opt("--seed", help="Seed of object, scans, noise, weights (default 0).",
                                       show_default=False)] = None,
    config: ConfigFiles = None,
    set_: SetItems = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Dose study: high (1e9) vs low (1e4) photons × Poisson NLL vs MAE loss, with a six-panel figure.

    Each arm is one pipeline run (simulate with Poisson noise at its dose → train with its loss → infer → stitch → evaluate) on the same object and scans; the model reconstructs a second, independent scan of the object, scored against the truth. Writes OUT/dose_comparison.png (per dose: a diffraction pattern on a log scale and the NLL and MAE reconstructions; dose_comparison_phase.png for the phase), OUT/metrics.md and metrics.json (SSIM, PSNR, MAE, amplitude mean ratio, FRC, NaN flags, train time) and the runs in OUT/runs/. Defaults take a minute or two on a laptop CPU. --set takes study keys (epochs=10) or pipeline keys for every arm (pipeline.train.learning_rate=5e-4).

    Examples:

      ptycho dose --out dose/

      ptycho dose --full --out dose-full/

      ptycho dose --doses 1e9,1e6,1e4 --epochs 10 --out dose-3/
    """
    from ptycho_cli.api import guard, resolve_config, run_study_command

    with guard(verbose):
        from ptycho_dose.config import FULL_SETTINGS, DoseConfig

        flags = {"doses": doses, "losses": losses, "N": N, "gridsize": gridsize, "object_size": size,
                 "n_images": n_images, "epochs": epochs, "seed": seed}
        # --full < --config files (their dose: section, or flat) < --set < flags
        cfg = resolve_config(DoseConfig, SECTION, files=config or (), sets=set_ or (), flags=flags,
                             base=FULL_SETTINGS if full else {}, sections=ctx.obj.config_sections())
        from ptycho_dose.study import TERMINAL_COLUMNS, plan, run_study, table_rows

        result = run_study_command("dose", cfg, out, ctx.obj.components(), plan=plan, run=run_study,
                                   table=lambda rows: table_rows(rows, TERMINAL_COLUMNS), title="dose × loss",
                                   unit="arm", as_json=as_json, quiet=quiet)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@hookimpl
def ptycho_commands():
    return [CommandSpec("dose", dose_command, config_section=SECTION)]


@hookimpl
def ptycho_ab_variants():
    """``dose-<high|low>-<nll|mae>``: the photon count and the loss of one arm of the study
    (``ptycho debug-ab dose-low-nll dose-low-mae``)."""
    return [
        VariantSpec(f"dose-{label}-{loss}", variant_settings(dose, loss), f"{dose:.0e} photons per pattern, {LOSS_NAMES[loss]}")
        for label, dose in (("high", DOSE_HIGH), ("low", DOSE_LOW))
        for loss in LOSSES
    ]
