"""The ``ptycho sim-lines-4x`` command and the ``lines4x-…`` A/B variants (entry point
``sim-lines-4x`` in the group ``ptycho``).

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
from ptycho_sim_lines_4x.config import (
    SCENARIOS,
    SECTION,
    VARIANT_PREFIX,
    variant_settings,
)

Opt = typer.Option


def sim_lines_4x_command(
    ctx: typer.Context,
    out: Annotated[Path, Opt("--out", "-o", help="Study folder: metrics.md/.json, figures, runs/<run>/.")],
    full: Annotated[bool, Opt("--full", help="Full size: N=64, 392-px object, 2000 training / 1000 test positions, "
                                              "20 epochs, n_filters_scale 2 (flags and --set still win).")] = False,
    scenarios: Annotated[Optional[str], Opt("--scenarios", show_default=False,
                                            help="Comma list of gs1-ideal, gs1-file, gs2-ideal, gs2-file (default all; "
                                                 "'' for the sweep only).")] = None,
    probe_scales: Annotated[Optional[str], Opt("--probe-scales", show_default=False,
                                               help="Comma list of probe amplitude factors (default 0.5,1,2,4; '' = no "
                                                    "sweep). Photons scale as the square.")] = None,
    sweep_scenario: Annotated[Optional[str], Opt("--sweep-scenario", show_default=False,
                                                 help="Scenario of the probe-scale sweep (default gs2-ideal).")] = None,
    N: Annotated[Optional[int], Opt("--N", help="Pattern size (default 32; --full 64).", show_default=False)] = None,
    size: Annotated[Optional[int], Opt("--size", help="Object side in pixels (default 96).", show_default=False)] = None,
    n_images: Annotated[Optional[int], Opt("--n-images", help="Training positions (default 256); the test scan has half.",
                                           show_default=False)] = None,
    epochs: Annotated[Optional[int], Opt("--epochs", help="Training epochs (default 5).", show_default=False)] = None,
    nphotons: Annotated[Optional[float], Opt("--nphotons", help="Photons per pattern at probe scale 1 (default 1e9).",
                                             show_default=False)] = None,
    seed: Annotated[Optional[int], Opt("--seed", help="Seed of object, scans, noise, weights (default 0).",
                                       show_default=False)] = None,
    config: ConfigFiles = None,
    set_: SetItems = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """SIM-LINES-4X: lines object, random scans, gridsize 1 and 2 × ideal and file (aberrated) probe, plus a probe-scale sweep.

    Each scenario is one pipeline run (simulate → train → infer → stitch → evaluate): the model trained on one random scan reconstructs a second, independent scan of the same object, scored against the truth. The sweep reruns one scenario with the probe amplitude ×s (photons ×s²). Writes OUT/metrics.md and metrics.json (SSIM, PSNR, MAE of amplitude and phase, amplitude mean ratio, FRC, NaN flags, train time), OUT/scenarios.png, OUT/probe_scale_sweep.png and the runs in OUT/runs/. Defaults take a few minutes on a laptop CPU. --set takes study keys (epochs=10) or pipeline keys for every run (pipeline.train.learning_rate=5e-4).

    Examples:

      ptycho sim-lines-4x --out lines4x/

      ptycho sim-lines-4x --full --out lines4x-full/

      ptycho sim-lines-4x --scenarios gs2-file --probe-scales '' --epochs 10 --out gs2-file/

      ptycho sim-lines-4x --probe-scales 0.25,1,4,16 --sweep-scenario gs1-file --out sweep/
    """
    from ptycho_cli.api import guard, resolve_config, run_study_command

    with guard(verbose):
        from ptycho_sim_lines_4x.config import FULL_SETTINGS, SimLines4xConfig

        flags = {"scenarios": scenarios, "probe_scales": probe_scales, "sweep_scenario": sweep_scenario, "N": N,
                 "object_size": size, "n_images": n_images, "epochs": epochs, "nphotons": nphotons, "seed": seed}
        # --full < --config files (their sim_lines_4x: section, or flat) < --set < flags
        cfg = resolve_config(SimLines4xConfig, SECTION, files=config or (), sets=set_ or (), flags=flags,
                             base=FULL_SETTINGS if full else {}, sections=ctx.obj.config_sections())
        from ptycho_sim_lines_4x.study import TERMINAL_COLUMNS, plan, run_study, table_rows

        result = run_study_command("sim-lines-4x", cfg, out, ctx.obj.components(), plan=plan, run=run_study,
                                   table=lambda rows: table_rows(rows, TERMINAL_COLUMNS), title="SIM-LINES-4X",
                                   as_json=as_json, quiet=quiet)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@hookimpl
def ptycho_commands():
    return [CommandSpec("sim-lines-4x", sim_lines_4x_command, config_section=SECTION)]


@hookimpl
def ptycho_ab_variants():
    """``lines4x-<scenario>`` for each scenario: the lines object, a random scan, its gridsize and
    probe (``ptycho debug-ab lines4x-gs2-ideal lines4x-gs2-file``)."""
    return [
        VariantSpec(f"{VARIANT_PREFIX}{name}", variant_settings(name),
                    f"SIM-LINES-4X {name}: lines object, random scan, gridsize {s['simulate.gridsize']}, "
                    f"{'ideal' if s['simulate.probe.kind'] == 'ideal' else 'file (aberrated)'} probe")
        for name, s in SCENARIOS.items()
    ]
